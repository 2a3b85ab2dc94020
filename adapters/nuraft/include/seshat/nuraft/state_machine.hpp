// seshat/nuraft/state_machine.hpp: seshat_state_machine, a nuraft::
// state_machine whose state is a seshat state_machine_store and whose
// snapshots are snapshot_manager files.
//
// seshat_state_machine<Backend, Shard, KeyFormat> applies NuRaft's
// committed entries through the user's function
//   apply(index, nuraft::buffer& data, seshat::state_machine_batch&) -> ptr<buffer>
// (its writes and the applied log id in one atomic write, see
// state_machine_store::apply), and serves NuRaft's snapshot calls:
//
//   commit(i, data)       apply() of entry i; an index already applied is
//                         skipped (nothing written, nullptr returned)
//   commit_config(i, c)   a no-op entry at i that sets the membership to c's
//                         voters and learners (seshat::membership, ids only)
//   last_commit_index()   the applied index, 0 before the first apply
//   create_snapshot(s, done)
//                         snapshot_manager::build_snapshot() at s's index
//                         (NuRaft calls it from its commit thread, so nothing
//                         is applied past s meanwhile); done(true) when the
//                         snapshot ends exactly at s
//   last_snapshot()       the snapshot NuRaft knows (s, with its config)
//   read_logical_snp_obj  object 0: the seshat raft_snapshot_meta; objects 1..n:
//                         the file in chunks of k_chunk_bytes
//   save_logical_snp_obj  object 0 begins a snapshot_receiver; the last one
//                         finishes it (checked whole) and hands the log store
//                         expect_snapshot(id of s, install)
//   apply_snapshot(s)     true once the received snapshot is installed
//
// The install order. NuRaft 3.0.0 (handle_snapshot_sync.cxx) calls, on the
// last object: save_logical_snp_obj, then log_store::compact(s.idx) (with no
// term, after pausing its commit thread), then apply_snapshot(s). The
// snapshot is installed at compact(): snapshot_manager::install_snapshot
// keeps the file, replaces the state machine in one atomic write and fixes
// the log (purged to s.idx, or reset to (s.term, s.idx): the term is the
// received snapshot's last log term). A crash at any point leaves either the
// old state with its log or the new state with the kept snapshot (which the
// next open finishes installing); never a log reset past a state machine
// that is behind it. apply_snapshot then finds it installed.
//
// The NuRaft snapshot (its index, term and cluster config) is kept as the
// record state("nuraft_snapshot") of the group's state family:
//   record := id_size:u64le seshat_snapshot_id nuraft_snapshot::serialize()
// written after each build and install. last_snapshot() after a restart is
// that record when its id is the current seshat snapshot's; otherwise (a
// crash between the snapshot file and the record) a snapshot of the file's
// last log id with an empty config of log index 0, which no receiver
// applies as a configuration.
//
// Thread-safety: NuRaft's calls may come from its threads at once; commits
// are serialized by NuRaft, snapshot calls by this class. Ownership: refers
// to its storage and log store, which must outlive it.
#pragma once

#include <libnuraft/nuraft.hxx>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include "seshat/nuraft/log_store.hpp"
#include "seshat/nuraft/state_mgr.hpp"
#include "seshat/raft_snapshot.hpp"
#include "seshat/state_machine_store.hpp"

namespace seshat::nuraft {

template <class Backend, class Shard = system_shard, class KeyFormat = binary_key_format>
class seshat_state_machine : public ::nuraft::state_machine {
 public:
  using log_store_type = seshat_log_store<Backend, Shard, KeyFormat>;
  using store_type = state_machine_store<nuraft_entry, Backend, Shard, KeyFormat>;
  using snapshots_type =
      snapshot_manager<nuraft_entry, nuraft_entry_serializer, Backend, Shard, KeyFormat>;
  using storage_type = storage<Backend>;
  using apply_function = std::function<ptr<::nuraft::buffer>(
      std::uint64_t index, ::nuraft::buffer& data, state_machine_batch& batch)>;
  static constexpr std::size_t k_chunk_bytes = std::size_t{1} << 20;
  static constexpr column_family k_state_family = Shard::state_family;

  // Opens the group's state machine and snapshots in `store` (which also
  // finishes an install a crash interrupted, see snapshot_manager::open).
  // REQUIRES: `store` and `log` outlive the result.
  static result<ptr<seshat_state_machine>> open(storage_type& store, Shard shard,
                                                ptr<log_store_type> log, apply_function apply,
                                                snapshot_options snapshots = {}) {
    auto sm = store_type::open(store, shard);
    if (!sm.ok()) return sm.status();
    ptr<seshat_state_machine> self(
        new seshat_state_machine(store, shard, std::move(log), std::move(apply),
                                 std::make_unique<store_type>(std::move(*sm))));
    auto snaps = snapshots_type::open(*self->sm_, self->log_->log(), std::move(snapshots));
    if (!snaps.ok()) return snaps.status();
    self->snaps_ = std::move(*snaps);
    SESHAT_RETURN_IF_ERROR(self->load_last_snapshot());
    return self;
  }

  // The state machine's data (reads: get, for_each).
  store_type& store() { return *sm_; }
  snapshots_type& snapshots() { return *snaps_; }
  // How many snapshots this process installed (received from a leader).
  std::uint64_t installs() const { return installs_; }

  // ---- nuraft::state_machine ---------------------------------------------

  ptr<::nuraft::buffer> commit(const ::nuraft::ulong log_idx, ::nuraft::buffer& data) override {
    ptr<::nuraft::buffer> reply;
    apply_at(log_idx, [&](state_machine_batch& batch) {
      data.pos(0);
      reply = apply_(log_idx, data, batch);
    });
    return reply;
  }

  void commit_config(const ::nuraft::ulong log_idx,
                     ptr<::nuraft::cluster_config>& new_conf) override {
    apply_at(log_idx, [&](state_machine_batch& batch) {
      membership m;
      for (const auto& server : new_conf->get_servers())
        (server->is_learner() ? m.learners : m.voters)
            .push_back(static_cast<std::uint64_t>(server->get_id()));
      batch.set_membership(std::move(m));
    });
  }

  ::nuraft::ulong last_commit_index() override {
    auto applied = sm_->applied_state();
    return applied.ok() && applied->last_applied ? applied->last_applied->index : 0;
  }

  void create_snapshot(::nuraft::snapshot& s,
                       ::nuraft::async_result<bool>::handler_type& when_done) override {
    bool ok = false;
    {
      // Built without mutex_ (snapshot_manager serializes builds): NuRaft
      // asks last_snapshot() meanwhile.
      auto built = snaps_->build_snapshot();
      if (!built.ok()) {
        warn(built.status().with_context("create_snapshot: "));
      } else if (!built->last_log_id || built->last_log_id->index != s.get_last_log_idx()) {
        warn(status::snapshot_failed("create_snapshot at index " +
                                     std::to_string(s.get_last_log_idx()) + ": built at " +
                                     seshat::detail::id_text(built->last_log_id)));
      } else {
        std::lock_guard lock(mutex_);
        status kept = keep_last_snapshot(built->snapshot_id, s);
        if (!kept.ok()) warn(kept.with_context("create_snapshot: "));
        ok = kept.ok();
      }
    }
    ptr<std::exception> none;
    when_done(ok, none);
  }

  ptr<::nuraft::snapshot> last_snapshot() override {
    std::lock_guard lock(mutex_);
    return last_;
  }

  int read_logical_snp_obj(::nuraft::snapshot& s, void*& ctx, ::nuraft::ulong obj_id,
                           ptr<::nuraft::buffer>& data_out, bool& is_last_obj) override {
    auto* reading = static_cast<raft_snapshot*>(ctx);
    if (!reading) {
      auto current = snaps_->get_current_snapshot();
      if (!current.ok() || !*current || !(*current)->meta.last_log_id ||
          (*current)->meta.last_log_id->index != s.get_last_log_idx()) {
        warn(status::snapshot_failed("read of snapshot at index " +
                                     std::to_string(s.get_last_log_idx()) +
                                     ": it is not the current snapshot"));
        return -1;
      }
      reading = new raft_snapshot(std::move(**current));
      ctx = reading;
    }
    if (obj_id == 0) {
      data_out = to_buffer(encode_meta(reading->meta));
      is_last_obj = false;
      return 0;
    }
    const std::uint64_t offset = (obj_id - 1) * k_chunk_bytes;
    auto chunk = reading->reader.read_chunk(offset, k_chunk_bytes);
    if (!chunk.ok()) {
      warn(chunk.status());
      return -1;
    }
    data_out = to_buffer(*chunk);
    is_last_obj = offset + chunk->size() >= reading->reader.size();
    return 0;
  }

  void free_user_snp_ctx(void*& ctx) override {
    delete static_cast<raft_snapshot*>(ctx);
    ctx = nullptr;
  }

  void save_logical_snp_obj(::nuraft::snapshot& s, ::nuraft::ulong& obj_id,
                            ::nuraft::buffer& data, bool is_first_obj, bool is_last_obj) override {
    std::optional<log_id> received;
    {
      std::lock_guard lock(mutex_);
      received = save_object(s, obj_id, data, is_first_obj, is_last_obj);
    }
    // Outside mutex_: compact() calls install_pending() with the log's lock held.
    if (received) log_->expect_snapshot(*received, [this] { return install_pending(); });
  }

  bool apply_snapshot(::nuraft::snapshot& s) override {
    {
      std::lock_guard lock(mutex_);
      if (pending_ && pending_->meta.last_log_id->index == s.get_last_log_idx()) {
        // compact() did not install it (it compacted within the log).
        if (!install_locked().ok()) return false;
      }
    }
    auto applied = sm_->applied_state();
    return applied.ok() && applied->last_applied &&
           applied->last_applied->index == s.get_last_log_idx() &&
           applied->last_applied->term == s.get_last_log_term();
  }

 private:
  struct receiving {
    raft_snapshot_meta meta;
    snapshot_receiver receiver;
    std::uint64_t offset;
  };
  struct pending {
    raft_snapshot_meta meta;
    received_snapshot received;
    ptr<::nuraft::buffer> nuraft_snapshot;
  };

  seshat_state_machine(storage_type& store, Shard shard, ptr<log_store_type> log,
                       apply_function apply, std::unique_ptr<store_type> sm)
      : store_(store),
        keys_(Shard::is_system, shard.id()),
        log_(std::move(log)),
        apply_(std::move(apply)),
        sm_(std::move(sm)) {}

  void warn(const status& s) const {
    std::fprintf(stderr, "seshat nuraft state machine: %s\n", s.to_string().c_str());
  }

  // Applies f(batch) as entry `index`, after no-op entries for any index
  // NuRaft applied without us (none in 3.0.0: every committed entry comes
  // through commit or commit_config). Skips an index already applied.
  template <class F>
  void apply_at(std::uint64_t index, F&& f) {
    auto applied = sm_->applied_state();
    if (!applied.ok()) return warn(applied.status());
    const std::uint64_t last = applied->last_applied ? applied->last_applied->index : 0;
    if (index <= last) return;
    std::vector<nuraft_entry> entries;
    for (std::uint64_t i = last + 1; i <= index; ++i) {
      nuraft_entry e;
      e.index = i;
      auto term = log_->log().term_at(i);
      e.term = term.ok() ? *term : (entries.empty() ? 0 : entries.back().term);
      entries.push_back(std::move(e));
    }
    status s = sm_->apply(std::span<const nuraft_entry>(entries),
                          [&](const nuraft_entry& e, state_machine_batch& batch) {
                            if (e.index == index) f(batch);
                          });
    if (!s.ok()) warn(s.with_context("commit of index " + std::to_string(index) + ": "));
  }

  // save_logical_snp_obj under mutex_: the id of a snapshot received whole.
  std::optional<log_id> save_object(::nuraft::snapshot& s, ::nuraft::ulong& obj_id,
                                    ::nuraft::buffer& data, bool is_first_obj, bool is_last_obj) {
    if (obj_id == 0) {
      receiving_.reset();
      auto meta = decode_meta(to_view(data));
      status s_ok = meta.status();
      if (s_ok.ok() && (!meta->last_log_id || meta->last_log_id->index != s.get_last_log_idx() ||
                        meta->last_log_id->term != s.get_last_log_term()))
        s_ok = status::snapshot_failed("snapshot meta at " + seshat::detail::id_text(meta->last_log_id) +
                                       " is not NuRaft's snapshot (term " +
                                       std::to_string(s.get_last_log_term()) + ", index " +
                                       std::to_string(s.get_last_log_idx()) + ")");
      if (s_ok.ok()) {
        auto receiver = snaps_->begin_receiving_snapshot(*meta);
        if (receiver.ok())
          receiving_.emplace(receiving{*meta, std::move(*receiver), 0});
        else
          s_ok = receiver.status();
      }
      if (!s_ok.ok()) {
        warn(s_ok.with_context("receive of snapshot object 0: "));
        return std::nullopt;  // obj_id stays 0: the leader sends the meta again
      }
      obj_id = 1;
      return std::nullopt;
    }
    if (!receiving_) {
      obj_id = 0;
      return std::nullopt;
    }
    (void)is_first_obj;
    status written = receiving_->receiver.write_chunk(receiving_->offset, to_view(data));
    if (!written.ok()) {
      warn(written);
      receiving_.reset();
      obj_id = 0;
      return std::nullopt;
    }
    receiving_->offset += data.size();
    obj_id += 1;
    if (!is_last_obj) return std::nullopt;
    auto finished = receiving_->receiver.finish();
    if (!finished.ok()) {
      warn(finished.status());
      receiving_.reset();
      obj_id = 0;
      return std::nullopt;
    }
    pending_.emplace(pending{receiving_->meta, std::move(*finished), s.serialize()});
    receiving_.reset();
    return pending_->meta.last_log_id;
  }

  // Installs the pending received snapshot (log_store::compact calls it).
  status install_pending() {
    std::lock_guard lock(mutex_);
    if (!pending_) return status::snapshot_failed("no received snapshot to install");
    return install_locked();
  }

  status install_locked() {
    pending p = std::move(*pending_);
    pending_.reset();
    SESHAT_RETURN_IF_ERROR(snaps_->install_snapshot(p.meta, p.received));
    ++installs_;
    p.nuraft_snapshot->pos(0);
    ptr<::nuraft::snapshot> s = ::nuraft::snapshot::deserialize(*p.nuraft_snapshot);
    return keep_last_snapshot(p.meta.snapshot_id, *s);
  }

  // Records `s` as the snapshot NuRaft knows, for seshat snapshot `id`.
  // REQUIRES: mutex_ held.
  status keep_last_snapshot(const std::string& id, ::nuraft::snapshot& s) {
    ptr<::nuraft::buffer> bytes = s.serialize();
    std::string record;
    detail::put_le(record, id.size(), 8);
    record += id;
    record += to_view(*bytes);
    SESHAT_RETURN_IF_ERROR(store_.put(k_state_family, keys_.state("nuraft_snapshot"), record));
    bytes->pos(0);
    last_ = ::nuraft::snapshot::deserialize(*bytes);
    return {};
  }

  status load_last_snapshot() {
    auto current = snaps_->get_current_snapshot();
    if (!current.ok()) return current.status();
    if (!*current || !(*current)->meta.last_log_id) return {};
    const raft_snapshot_meta& meta = (*current)->meta;
    auto stored = store_.get(k_state_family, keys_.state("nuraft_snapshot"));
    if (stored.ok() && stored->size() >= 8) {
      const std::uint64_t n = detail::get_le(*stored, 0, 8);
      if (n <= stored->size() - 8 && std::string_view(*stored).substr(8, n) == meta.snapshot_id) {
        ptr<::nuraft::buffer> b = to_buffer(std::string_view(*stored).substr(8 + n));
        last_ = ::nuraft::snapshot::deserialize(*b);
        return {};
      }
    } else if (!stored.ok() && !stored.status().is(errc::not_found)) {
      return stored.status();
    }
    last_ = ::nuraft::cs_new<::nuraft::snapshot>(meta.last_log_id->index, meta.last_log_id->term,
                                                 ::nuraft::cs_new<::nuraft::cluster_config>(),
                                                 meta.size_bytes);
    return {};
  }

  // Object 0 of a transfer: seshat's raft_snapshot_meta, little-endian:
  //   flags:u8 [term:u64 index:u64] shard:u64 size:u64 id_size:u64 id membership
  static std::string encode_meta(const raft_snapshot_meta& m) {
    std::string out;
    detail::put_le(out, m.last_log_id ? 1 : 0, 1);
    if (m.last_log_id) {
      detail::put_le(out, m.last_log_id->term, 8);
      detail::put_le(out, m.last_log_id->index, 8);
    }
    detail::put_le(out, m.shard, 8);
    detail::put_le(out, m.size_bytes, 8);
    detail::put_le(out, m.snapshot_id.size(), 8);
    out += m.snapshot_id;
    out += m.membership.encode();
    return out;
  }

  static result<raft_snapshot_meta> decode_meta(std::string_view in) {
    auto bad = [&] {
      return status::snapshot_failed("snapshot meta of " + std::to_string(in.size()) +
                                     " bytes (object 0) does not decode");
    };
    raft_snapshot_meta m;
    std::size_t at = 0;
    auto take = [&](int bytes, std::uint64_t& v) {
      if (in.size() - at < static_cast<std::size_t>(bytes)) return false;
      v = detail::get_le(in, at, bytes);
      at += bytes;
      return true;
    };
    std::uint64_t flags = 0, term = 0, index = 0, shard = 0, size = 0, id_size = 0;
    if (!take(1, flags) || flags > 1) return bad();
    if (flags && (!take(8, term) || !take(8, index))) return bad();
    if (flags) m.last_log_id = log_id{term, index};
    if (!take(8, shard) || !take(8, size) || !take(8, id_size) || id_size > in.size() - at)
      return bad();
    m.shard = shard;
    m.size_bytes = size;
    m.snapshot_id.assign(in.substr(at, id_size));
    at += id_size;
    auto membership = membership::decode(in.substr(at), k_state_family, "(snapshot meta)");
    if (!membership.ok()) return membership.status();
    m.membership = std::move(*membership);
    return m;
  }

  storage_type& store_;
  const group_keys<KeyFormat> keys_;
  const ptr<log_store_type> log_;
  const apply_function apply_;
  std::unique_ptr<store_type> sm_;
  std::unique_ptr<snapshots_type> snaps_;

  std::mutex mutex_;  // serializes snapshot calls; guards what follows
  ptr<::nuraft::snapshot> last_;
  std::optional<receiving> receiving_;
  std::optional<pending> pending_;
  std::atomic<std::uint64_t> installs_{0};
};

}  // namespace seshat::nuraft
