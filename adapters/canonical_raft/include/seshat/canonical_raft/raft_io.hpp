// seshat/canonical_raft/raft_io.hpp: a canonical raft (libraft, C) `struct
// raft_io` whose disk half is seshat.
//
//   auto store = seshat::storage<seshat::rocksdb_backend>::open(dir);
//   auto io = seshat::canonical_raft::seshat_raft_io<seshat::rocksdb_backend>::open(
//       **store, seshat::system_shard{}, loop, uv_dir);
//   raft_init(&raft, (*io)->io(), &fsm, id, address);
//
// Disk half (seshat, one group: the system shard or a data shard):
//   load          term and vote (log_store::read_vote), the snapshot, the
//                 log's first index and its entries
//   bootstrap     entry 1: the configuration (RAFT_CHANGE), term 1
//   recover       a configuration entry appended after the last one
//   set_term, set_vote
//                 log_store::save_vote: durable before they return
//   append        log_store::append_async; raft's callback runs on the loop
//                 (uv_async_t) once seshat's sync thread reports the entries
//                 durable
//   truncate      log_store::truncate
//   snapshot_put  the snapshot (meta, configuration, data) in one synced
//                 record of the group's state family, key state("craft_snapshot");
//                 then log_store::purge(index - trailing), or, with
//                 trailing 0 (an installed snapshot), log_store::reset_to
//   snapshot_get  that record
// Network and timer half: raft_uv with the raft_uv_tcp transport
// (io_core.hpp).
//
// Each raft entry is stored as a raft_entry_record (term, index, raft entry
// type, payload bytes) through seshat::boost_serializer.
//
// Payload sizes: raft_uv's TCP transport (libraft 0.15) sends an
// AppendEntries' payloads back to back, unpadded, but the receiver decodes
// each as padded to a multiple of 8 bytes. Give raft_apply() buffers whose
// length is a multiple of 8 (as dqlite does), or a follower receiving more
// than one entry in a message sees shifted payloads. The adapter stores
// payloads as they are and returns them with their exact length.
//
// Ownership: the storage must outlive the seshat_raft_io, which must outlive
// the raft instance using it (until raft_close's callback has run).
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "seshat/canonical_raft/io_core.hpp"
#include "seshat/key_format.hpp"
#include "seshat/log_store.hpp"
#include "seshat/serializer.hpp"
#include "seshat/shard.hpp"
#include "seshat/storage.hpp"

namespace seshat::canonical_raft {

// One raft log entry as seshat stores it.
struct raft_entry_record {
  std::uint64_t term = 0;
  std::uint64_t index = 0;
  std::uint16_t type = 0;  // RAFT_COMMAND, RAFT_BARRIER, RAFT_CHANGE
  std::string payload;

  template <class Archive>
  void serialize(Archive& a, unsigned /*version*/) {
    a & term & index & type & payload;
  }
};

namespace detail {

inline void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out += static_cast<char>(v >> (8 * i));
}
inline bool take_u64(std::string_view& in, std::uint64_t& v) {
  if (in.size() < 8) return false;
  v = 0;
  for (int i = 0; i < 8; ++i) v |= std::uint64_t{static_cast<unsigned char>(in[i])} << (8 * i);
  in.remove_prefix(8);
  return true;
}
inline bool take_bytes(std::string_view& in, std::string_view& out) {
  std::uint64_t n = 0;
  if (!take_u64(in, n) || n > in.size()) return false;
  out = in.substr(0, n);
  in.remove_prefix(n);
  return true;
}

constexpr std::string_view k_snapshot_magic = "seshat-craft-snapshot-1";

// snapshot record := magic index term configuration_index n_servers
//                    (id role address_len address)* data_len data   (u64le)
inline std::string encode_snapshot(const raft_snapshot& s) {
  std::string out(k_snapshot_magic);
  put_u64(out, s.index);
  put_u64(out, s.term);
  put_u64(out, s.configuration_index);
  put_u64(out, s.configuration.n);
  for (unsigned i = 0; i < s.configuration.n; ++i) {
    const raft_server& srv = s.configuration.servers[i];
    put_u64(out, srv.id);
    put_u64(out, static_cast<std::uint64_t>(srv.role));
    const std::size_t len = srv.address ? std::strlen(srv.address) : 0;
    put_u64(out, len);
    out.append(srv.address ? srv.address : "", len);
  }
  std::uint64_t size = 0;
  for (unsigned i = 0; i < s.n_bufs; ++i) size += s.bufs[i].len;
  put_u64(out, size);
  for (unsigned i = 0; i < s.n_bufs; ++i)
    out.append(static_cast<const char*>(s.bufs[i].base), s.bufs[i].len);
  return out;
}

// A raft_malloc'd snapshot with one buffer, as raft expects from load and
// snapshot_get; nullptr when the record does not decode.
inline raft_snapshot* decode_snapshot(std::string_view in) {
  if (in.substr(0, k_snapshot_magic.size()) != k_snapshot_magic) return nullptr;
  in.remove_prefix(k_snapshot_magic.size());
  auto* s = static_cast<raft_snapshot*>(raft_calloc(1, sizeof(raft_snapshot)));
  if (!s) return nullptr;
  raft_configuration_init(&s->configuration);
  std::uint64_t index = 0, term = 0, conf_index = 0, n = 0;
  std::string_view data;
  bool ok = take_u64(in, index) && take_u64(in, term) && take_u64(in, conf_index) &&
            take_u64(in, n);
  for (std::uint64_t i = 0; ok && i < n; ++i) {
    std::uint64_t id = 0, role = 0;
    std::string_view address;
    ok = take_u64(in, id) && take_u64(in, role) && take_bytes(in, address);
    if (ok) {
      std::string a(address);
      ok = raft_configuration_add(&s->configuration, id, a.c_str(), static_cast<int>(role)) == 0;
    }
  }
  ok = ok && take_bytes(in, data) && in.empty();
  if (ok) {
    s->bufs = static_cast<raft_buffer*>(raft_calloc(1, sizeof(raft_buffer)));
    ok = s->bufs != nullptr;
  }
  if (ok) {
    s->n_bufs = 1;
    s->bufs[0].len = data.size();
    s->bufs[0].base = raft_malloc(data.empty() ? 1 : data.size());
    ok = s->bufs[0].base != nullptr;
    if (ok && !data.empty()) std::memcpy(s->bufs[0].base, data.data(), data.size());
  }
  if (!ok) {
    raft_configuration_close(&s->configuration);
    if (s->bufs) {
      raft_free(s->bufs[0].base);
      raft_free(s->bufs);
    }
    raft_free(s);
    return nullptr;
  }
  s->index = index;
  s->term = term;
  s->configuration_index = conf_index;
  return s;
}

}  // namespace detail

template <class Backend, class Shard = system_shard, class KeyFormat = binary_key_format>
class seshat_raft_io final : public io_core {
 public:
  using storage_type = storage<Backend>;
  using log_type = log_store<raft_entry_record, boost_serializer, Backend, Shard, KeyFormat>;

  // Opens the group's log in `store` and sets up raft_uv on `loop` (its
  // directory `uv_dir` must exist). REQUIRES: `store` outlives the result.
  static result<std::unique_ptr<seshat_raft_io>> open(storage_type& store, Shard shard,
                                                      uv_loop_t* loop, const std::string& uv_dir) {
    auto log = log_type::open(store, shard);
    if (!log.ok()) return log.status();
    std::unique_ptr<seshat_raft_io> io(new seshat_raft_io(store, shard, std::move(*log)));
    if (int rv = io->init_network(loop, uv_dir); rv != 0)
      return status::backend_error(std::string("canonical raft io: ") + io->errmsg());
    return io;
  }

  // The group's log (for reading terms, or inspection).
  log_type& log() { return *log_; }

 private:
  seshat_raft_io(storage_type& store, Shard shard, std::unique_ptr<log_type> log)
      : store_(store), keys_(Shard::is_system, shard.id()), log_(std::move(log)) {}

  int fail(const status& s, int code = RAFT_IOERR) {
    set_error(s.to_string());
    return code;
  }

  std::uint64_t next_index() const {
    const log_state st = log_->get_log_state();
    return st.last ? st.last->index + 1 : 1;
  }

  std::optional<vote> current_vote() const {
    auto v = log_->read_vote();
    return v.ok() ? *v : std::nullopt;
  }

  int append_sync(const raft_configuration* conf, std::uint64_t term, std::uint64_t index) {
    raft_buffer buf{};
    if (int rv = raft_configuration_encode(conf, &buf); rv != 0) {
      set_error("raft_configuration_encode failed");
      return rv;
    }
    raft_entry_record e{term, index, RAFT_CHANGE,
                        std::string(static_cast<const char*>(buf.base), buf.len)};
    raft_free(buf.base);
    std::vector<raft_entry_record> one{std::move(e)};
    if (status s = log_->append(one); !s.ok()) return fail(s);
    return 0;
  }

  int do_load(raft_term* term, raft_id* voted_for, raft_snapshot** snapshot,
              raft_index* start_index, raft_entry** entries, size_t* n_entries) override {
    const std::optional<vote> v = current_vote();
    *term = v ? v->term : 0;
    *voted_for = v && v->voted_for ? *v->voted_for : 0;
    *snapshot = nullptr;
    *entries = nullptr;
    *n_entries = 0;

    auto blob = store_.get(Shard::state_family, keys_.state("craft_snapshot"));
    if (blob.ok()) {
      *snapshot = detail::decode_snapshot(*blob);
      if (!*snapshot) {
        set_error("canonical raft io: the stored snapshot record does not decode");
        return RAFT_CORRUPT;
      }
    } else if (!blob.status().is(errc::not_found)) {
      return fail(blob.status());
    }

    const log_state st = log_->get_log_state();
    const std::uint64_t first = st.last_purged ? st.last_purged->index + 1 : 1;
    const std::uint64_t last = st.last ? st.last->index : 0;
    *start_index = first;
    if (last < first) return 0;
    auto read = log_->entries(first, last + 1);
    if (!read.ok()) return fail(read.status(), RAFT_CORRUPT);
    auto* out = static_cast<raft_entry*>(raft_calloc(read->size(), sizeof(raft_entry)));
    if (!out) return RAFT_NOMEM;
    for (std::size_t i = 0; i < read->size(); ++i) {
      const raft_entry_record& r = (*read)[i];
      out[i].term = r.term;
      out[i].type = r.type;
      out[i].buf.len = r.payload.size();
      out[i].buf.base = nullptr;
      out[i].batch = nullptr;
      if (!r.payload.empty()) {
        out[i].buf.base = raft_malloc(r.payload.size());
        if (!out[i].buf.base) return RAFT_NOMEM;  // leaks the earlier ones: out of memory anyway
        std::memcpy(out[i].buf.base, r.payload.data(), r.payload.size());
      }
    }
    *entries = out;
    *n_entries = read->size();
    return 0;
  }

  int do_bootstrap(const raft_configuration* conf) override {
    const log_state st = log_->get_log_state();
    const std::optional<vote> v = current_vote();
    if (st.last || (v && v->term > 0)) {
      set_error("canonical raft io: the store is not pristine");
      return RAFT_CANTBOOTSTRAP;
    }
    if (int rv = append_sync(conf, 1, 1); rv != 0) return rv;
    if (status s = log_->save_vote(vote{1, std::nullopt, false}); !s.ok()) return fail(s);
    return 0;
  }

  int do_recover(const raft_configuration* conf) override {
    const log_state st = log_->get_log_state();
    const std::optional<vote> v = current_vote();
    std::uint64_t term = st.last ? st.last->term : 0;
    if (v && v->term > term) term = v->term;
    if (term == 0) term = 1;
    return append_sync(conf, term, next_index());
  }

  int do_set_term(raft_term term) override {
    const std::optional<vote> v = current_vote();
    if (v && v->term == term) return 0;
    if (status s = log_->save_vote(vote{term, std::nullopt, false}); !s.ok()) return fail(s);
    return 0;
  }

  int do_set_vote(raft_id server_id) override {
    const std::optional<vote> v = current_vote();
    vote next{v ? v->term : 0, std::nullopt, false};
    if (server_id != 0) next.voted_for = server_id;
    if (v && *v == next) return 0;
    if (status s = log_->save_vote(next); !s.ok()) return fail(s);
    return 0;
  }

  void do_append(const raft_entry entries[], unsigned n,
                 std::function<void(int)> durable) override {
    std::vector<raft_entry_record> records;
    records.reserve(n);
    std::uint64_t index = next_index();
    for (unsigned i = 0; i < n; ++i, ++index)
      records.push_back(raft_entry_record{
          entries[i].term, index, entries[i].type,
          std::string(static_cast<const char*>(entries[i].buf.base), entries[i].buf.len)});
    status s = log_->append_async(records, [durable = std::move(durable)](status st) {
      durable(st.ok() ? 0 : RAFT_IOERR);
    });
    if (!s.ok()) set_error(s.to_string());  // the callback already reported it
  }

  int do_truncate(raft_index index) override {
    if (status s = log_->truncate(index); !s.ok()) return fail(s);
    return 0;
  }

  int do_snapshot_put(unsigned trailing, const raft_snapshot* snapshot) override {
    auto batch = store_.new_batch();
    batch.put(Shard::state_family, keys_.state("craft_snapshot"), detail::encode_snapshot(*snapshot));
    batch.set_sync();
    if (status s = store_.write(batch); !s.ok()) return fail(s);
    if (trailing == 0) {
      // An installed snapshot replaces the whole log.
      if (status s = log_->reset_to(log_id{snapshot->term, snapshot->index}); !s.ok()) return fail(s);
      return 0;
    }
    if (snapshot->index <= trailing) return 0;
    std::uint64_t upto = snapshot->index - trailing;
    const log_state st = log_->get_log_state();
    if (!st.last) return 0;
    if (upto > st.last->index) upto = st.last->index;
    if (st.last_purged && upto <= st.last_purged->index) return 0;
    if (status s = log_->purge(upto); !s.ok()) return fail(s);
    return 0;
  }

  int do_snapshot_get(raft_snapshot** snapshot) override {
    auto blob = store_.get(Shard::state_family, keys_.state("craft_snapshot"));
    if (!blob.ok()) {
      *snapshot = nullptr;
      return fail(blob.status(), blob.status().is(errc::not_found) ? RAFT_NOTFOUND : RAFT_IOERR);
    }
    *snapshot = detail::decode_snapshot(*blob);
    if (!*snapshot) {
      set_error("canonical raft io: the stored snapshot record does not decode");
      return RAFT_CORRUPT;
    }
    return 0;
  }

  storage_type& store_;
  const group_keys<KeyFormat> keys_;
  std::unique_ptr<log_type> log_;
};

}  // namespace seshat::canonical_raft
