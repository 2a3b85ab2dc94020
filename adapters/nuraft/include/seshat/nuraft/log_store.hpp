// seshat/nuraft/log_store.hpp: seshat_log_store, seshat as NuRaft's
// nuraft::log_store (NuRaft 3.0.0, eBay/NuRaft include/libnuraft/log_store.hxx).
//
// seshat_log_store<Backend, Shard, KeyFormat> owns one group's
// seshat::log_store of nuraft_entry and answers every virtual of
// nuraft::log_store with NuRaft's contract. The log holds [start_index(),
// next_slot()); both start at 1.
//
//   next_slot()          last index + 1 (after a purge or a reset, the
//                        last purged index + 1)
//   start_index()        the last purged index + 1, or 1
//   last_entry()         the last entry; a term-0 entry (8 zero bytes) when
//                        the log holds none
//   append(e)            writes e at next_slot(), readable on return
//   write_at(i, e)       deletes [i, next_slot()), then writes e at i
//   end_of_append_batch(start, n)
//                        without parallel appending: returns once
//                        [start, start + n) is durable; with it: nothing
//   log_entries(lo, hi)  [lo, hi); nullptr when part of it is not held
//   log_entries_ext(lo, hi, hint)
//                        hint < 0: no entry; 0: [lo, hi); > 0: entries from
//                        lo until their payloads reach hint bytes, at least
//                        one
//   entry_at(i)          the entry; nullptr when i >= next_slot(); the
//                        term-0 entry when i < start_index()
//   term_at(i)           its term; 0 when i < start_index() or i >= next_slot()
//   pack(i, n) / apply_pack(i, pack)
//                        n entries from i, as NuRaft's in-memory store packs
//                        them (i32 count, then i32 size + entry each, entry :=
//                        term:u64 type:u8 data, NuRaft's log_entry::serialize);
//                        apply_pack leaves exactly the packed entries at
//                        [i, i + n) and nothing after (next_slot() == i + n);
//                        packed entries at or below the last purged index are
//                        skipped
//   compact(i)           deletes [start_index(), i]; past the last entry it
//                        resets the log so that start_index() == i + 1 (the
//                        term of i comes from expect_snapshot(), which the
//                        state machine helper calls with the snapshot it
//                        received). true on success; false (printed to
//                        stderr, nothing changed) when refused: NuRaft
//                        then asks the leader for the snapshot again
//   compact_async(i, done)
//                        compact(i), then done(result, nullptr): synchronous
//   flush()              returns once every entry written is durable
//   last_durable_index() the highest N such that [start_index(), N] is
//                        durable; never above next_slot() - 1; after
//                        write_at(i) (or apply_pack(i)) below i until the new
//                        entry i is durable
//
// Durability. Every write is seshat's log_store::append_async: readable on
// return, and its callback fires from the storage's sync thread when group
// commit made it durable (one fsync for every group's pending appends).
// With raft_params::parallel_log_appending_ (options.parallel_appending)
// append, write_at and end_of_append_batch start the write and return; the
// callback moves last_durable_index() and a notifier thread of this store
// calls raft_server::notify_log_append_completion (set_raft_server()).
// A refused or failed write (ok == false) is reported there as false, and
// to options.on_fatal, which by default prints the status and aborts:
// NuRaft's log_store cannot return an error.
//
// Generations: write_at(i) starts a new generation. A callback of an append
// of an older generation proves durable only what precedes every later
// overwrite point: it moves last_durable_index() to at most i - 1. (NuRaft's
// in-memory example store keeps the old index durable across an
// overwrite; this store does not.)
//
// Entry format in seshat's log (nuraft_entry_serializer), little-endian:
//   entry := term:u64 index:u64 type:u8 flags:u8 timestamp:u64 crc32:u32 data
//   flags bit 0: has_crc32
//
// Thread-safety: all members may be called from many threads; writes are
// serialized. Ownership: the store refers to its storage, which must outlive
// it; set_raft_server(nullptr) (or destroying the store) before the
// raft_server goes.
#pragma once

#include <libnuraft/nuraft.hxx>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "seshat/log_store.hpp"

namespace seshat::nuraft {

template <class T>
using ptr = ::nuraft::ptr<T>;

// One NuRaft log entry as seshat's log keeps it.
struct nuraft_entry {
  std::uint64_t term = 0;
  std::uint64_t index = 0;
  std::uint8_t type = 0;  // nuraft::log_val_type
  bool has_crc32 = false;
  std::uint64_t timestamp = 0;
  std::uint32_t crc32 = 0;
  std::string data;
};

namespace detail {
inline void put_le(std::string& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out += static_cast<char>(v >> (8 * i));
}
inline std::uint64_t get_le(std::string_view in, std::size_t at, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
  return v;
}
}  // namespace detail

// The Serializer of nuraft_entry (format in the file comment).
struct nuraft_entry_serializer {
  static constexpr std::string_view k_name = "nuraft_entry_serializer";
  static constexpr std::size_t k_header = 8 + 8 + 1 + 1 + 8 + 4;
  static void encode(const nuraft_entry& e, std::string& out) {
    detail::put_le(out, e.term, 8);
    detail::put_le(out, e.index, 8);
    detail::put_le(out, e.type, 1);
    detail::put_le(out, e.has_crc32 ? 1 : 0, 1);
    detail::put_le(out, e.timestamp, 8);
    detail::put_le(out, e.crc32, 4);
    out += e.data;
  }
  static status decode(std::string_view in, nuraft_entry& e) {
    if (in.size() < k_header)
      return status::corrupted_data("nuraft entry of " + std::to_string(in.size()) +
                                    " bytes is shorter than its " + std::to_string(k_header) +
                                    "-byte header");
    const std::uint64_t flags = detail::get_le(in, 17, 1);
    if (flags & ~1u)
      return status::corrupted_data("nuraft entry flags " + std::to_string(flags) +
                                    ": only bit 0 (has_crc32) is defined");
    e.term = detail::get_le(in, 0, 8);
    e.index = detail::get_le(in, 8, 8);
    e.type = static_cast<std::uint8_t>(detail::get_le(in, 16, 1));
    e.has_crc32 = flags & 1;
    e.timestamp = detail::get_le(in, 18, 8);
    e.crc32 = static_cast<std::uint32_t>(detail::get_le(in, 26, 4));
    e.data.assign(in.substr(k_header));
    return {};
  }
};

inline nuraft_entry to_seshat(std::uint64_t index, const ::nuraft::log_entry& le) {
  nuraft_entry e;
  e.term = le.get_term();
  e.index = index;
  e.type = static_cast<std::uint8_t>(le.get_val_type());
  e.has_crc32 = le.has_crc32();
  e.timestamp = le.get_timestamp();
  e.crc32 = le.get_crc32();
  if (!le.is_buf_null()) {
    const ::nuraft::buffer& b = le.get_buf();
    e.data.assign(reinterpret_cast<const char*>(b.data_begin()), b.size());
  }
  return e;
}

inline ptr<::nuraft::log_entry> to_nuraft(const nuraft_entry& e) {
  ptr<::nuraft::buffer> buf = ::nuraft::buffer::alloc(e.data.size());
  if (!e.data.empty()) std::memcpy(buf->data_begin(), e.data.data(), e.data.size());
  return ::nuraft::cs_new<::nuraft::log_entry>(e.term, buf,
                                               static_cast<::nuraft::log_val_type>(e.type),
                                               e.timestamp, e.has_crc32, e.crc32, false);
}

// NuRaft's "no entry here": term 0, 8 zero bytes (as its in-memory store).
inline ptr<::nuraft::log_entry> dummy_entry() {
  ptr<::nuraft::buffer> buf = ::nuraft::buffer::alloc(sizeof(std::uint64_t));
  std::memset(buf->data_begin(), 0, buf->size());
  return ::nuraft::cs_new<::nuraft::log_entry>(0, buf);
}

struct log_store_options {
  // raft_params::parallel_log_appending_ is set: writes return at once,
  // completions go to raft_server::notify_log_append_completion.
  bool parallel_appending = false;
  // Called, once per failure, with what went wrong when a write is refused
  // or fails. Default: print it and std::abort() (NuRaft has no error path).
  std::function<void(const status&)> on_fatal;
};

template <class Backend, class Shard = system_shard, class KeyFormat = binary_key_format>
class seshat_log_store : public ::nuraft::log_store {
 public:
  using log_type = seshat::log_store<nuraft_entry, nuraft_entry_serializer, Backend, Shard, KeyFormat>;
  using storage_type = storage<Backend>;

  // Opens the group's log in `store` (buffered: durability comes from the
  // group-commit callbacks) and makes what it holds durable (one sync).
  // Fails as log_store::open does.
  static result<ptr<seshat_log_store>> open(storage_type& store, Shard shard = Shard{},
                                            log_store_options options = {}) {
    auto log = log_type::open(store, shard, seshat::log_store_options{sync_policy::buffered, 1});
    if (!log.ok()) return log.status();
    SESHAT_RETURN_IF_ERROR(store.sync_wal());
    ptr<seshat_log_store> self(new seshat_log_store(store, std::move(*log), std::move(options)));
    self->durable_ = self->next_slot() - 1;
    return self;
  }

  ~seshat_log_store() override {
    {
      std::unique_lock lock(mutex_);
      // Every pending callback refers to this store: wait for them.
      idle_.wait(lock, [&] { return in_flight_ == 0; });
      stop_ = true;
      wake_.notify_all();
    }
    if (notifier_.joinable()) notifier_.join();
  }

  // The seshat log (for the state machine helper's snapshot_manager).
  log_type& log() { return *log_; }

  // The server whose notify_log_append_completion the completions call
  // (parallel appending). nullptr detaches it: returns once no call to the
  // old one runs.
  void set_raft_server(::nuraft::raft_server* server) {
    {
      std::lock_guard lock(server_mutex_);
      server_ = server;
    }
    // Completions before this call notified no one: tell the new server.
    std::lock_guard lock(mutex_);
    notify_pending_ = server != nullptr;
    wake_.notify_all();
  }

  // The state machine helper received the snapshot `id` and will install it
  // through `install` when compact(id.index) comes (NuRaft compacts before
  // apply_snapshot): install() must leave the log reset or purged to
  // id.index and return success.
  void expect_snapshot(log_id id, std::function<status()> install) {
    std::lock_guard write(write_mutex_);
    expected_ = expected_snapshot{id, std::move(install)};
  }

  // ---- nuraft::log_store ----------------------------------------------------

  ::nuraft::ulong next_slot() const override {
    const log_state st = log_->get_log_state();
    return st.last ? st.last->index + 1 : 1;
  }

  ::nuraft::ulong start_index() const override {
    const log_state st = log_->get_log_state();
    return st.last_purged ? st.last_purged->index + 1 : 1;
  }

  ptr<::nuraft::log_entry> last_entry() const override {
    const log_state st = log_->get_log_state();
    if (!st.last || (st.last_purged && st.last->index == st.last_purged->index))
      return dummy_entry();
    auto e = log_->entry_at(st.last->index);
    return e.ok() ? to_nuraft(*e) : dummy_entry();
  }

  ::nuraft::ulong append(ptr<::nuraft::log_entry>& entry) override {
    std::lock_guard write(write_mutex_);
    const std::uint64_t index = next_slot();
    write_from(index, {to_seshat(index, *entry)});
    return index;
  }

  void write_at(::nuraft::ulong index, ptr<::nuraft::log_entry>& entry) override {
    std::lock_guard write(write_mutex_);
    const std::uint64_t next = next_slot();
    if (index > next || index < start_index())
      return fatal(status::invalid_log_index(
          where() + "write_at(" + std::to_string(index) + ") outside [start_index " +
          std::to_string(start_index()) + ", next_slot " + std::to_string(next) + "]"));
    if (index < next) {
      if (status s = log_->truncate(index); !s.ok()) return fatal(s);
      overwrite_from(index);
    }
    write_from(index, {to_seshat(index, *entry)});
  }

  void end_of_append_batch(::nuraft::ulong start, ::nuraft::ulong cnt) override {
    if (options_.parallel_appending || cnt == 0) return;
    wait_durable(start + cnt - 1);
  }

  ptr<std::vector<ptr<::nuraft::log_entry>>> log_entries(::nuraft::ulong start,
                                                         ::nuraft::ulong end) override {
    if (end < start) return nullptr;
    auto got = log_->entries(start, end);
    if (!got.ok()) return nullptr;
    auto out = ::nuraft::cs_new<std::vector<ptr<::nuraft::log_entry>>>();
    out->reserve(got->size());
    for (const nuraft_entry& e : *got) out->push_back(to_nuraft(e));
    return out;
  }

  ptr<std::vector<ptr<::nuraft::log_entry>>> log_entries_ext(
      ::nuraft::ulong start, ::nuraft::ulong end, ::nuraft::int64 hint) override {
    if (hint <= 0) {
      if (hint == 0) return log_entries(start, end);
      return ::nuraft::cs_new<std::vector<ptr<::nuraft::log_entry>>>();
    }
    if (end < start) return nullptr;
    auto out = ::nuraft::cs_new<std::vector<ptr<::nuraft::log_entry>>>();
    std::uint64_t bytes = 0;
    for (std::uint64_t lo = start; lo < end;) {
      const std::uint64_t hi = std::min<std::uint64_t>(end, lo + k_read_chunk);
      auto got = log_->entries(lo, hi);
      if (!got.ok()) return nullptr;
      for (const nuraft_entry& e : *got) {
        out->push_back(to_nuraft(e));
        bytes += e.data.size();
        if (bytes >= static_cast<std::uint64_t>(hint)) return out;
      }
      lo = hi;
    }
    return out;
  }

  ptr<::nuraft::log_entry> entry_at(::nuraft::ulong index) override {
    if (index >= next_slot()) return nullptr;
    if (index < start_index()) return dummy_entry();
    auto e = log_->entry_at(index);
    return e.ok() ? to_nuraft(*e) : nullptr;
  }

  ::nuraft::ulong term_at(::nuraft::ulong index) override {
    if (index < start_index() || index >= next_slot()) return 0;
    auto t = log_->term_at(index);
    return t.ok() ? *t : 0;
  }

  ptr<::nuraft::buffer> pack(::nuraft::ulong index, ::nuraft::int32 cnt) override {
    std::vector<ptr<::nuraft::buffer>> bufs;
    std::size_t total = sizeof(::nuraft::int32);
    if (cnt > 0) {
      auto got = log_->entries(index, index + static_cast<std::uint64_t>(cnt));
      if (!got.ok()) {
        fatal(got.status().with_context(where() + "pack: "));
        return nullptr;
      }
      for (const nuraft_entry& e : *got) {
        bufs.push_back(to_nuraft(e)->serialize());
        total += sizeof(::nuraft::int32) + bufs.back()->size();
      }
    }
    ptr<::nuraft::buffer> out = ::nuraft::buffer::alloc(total);
    out->pos(0);
    out->put(static_cast<::nuraft::int32>(bufs.size()));
    for (auto& b : bufs) {
      out->put(static_cast<::nuraft::int32>(b->size()));
      out->put(*b);
    }
    out->pos(0);
    return out;
  }

  void apply_pack(::nuraft::ulong index, ::nuraft::buffer& pack) override {
    std::vector<nuraft_entry> entries;
    pack.pos(0);
    const ::nuraft::int32 n = pack.get_int();
    for (::nuraft::int32 i = 0; i < n; ++i) {
      const ::nuraft::int32 size = pack.get_int();
      ptr<::nuraft::buffer> one = ::nuraft::buffer::alloc(static_cast<std::size_t>(size));
      pack.get(one);
      one->pos(0);
      entries.push_back(to_seshat(index + static_cast<std::uint64_t>(i),
                                  *::nuraft::log_entry::deserialize(*one)));
    }
    std::lock_guard write(write_mutex_);
    const std::uint64_t start = start_index(), next = next_slot();
    const std::uint64_t lo = std::max<std::uint64_t>(index, start);
    const std::size_t skip = static_cast<std::size_t>(lo - index);
    if (skip >= entries.size()) return;  // all of it is compacted here
    if (lo > next) {
      // A gap: the log continues after the packed entry before lo, whose
      // term is unknown here; the first packed term keeps terms ordered.
      const std::uint64_t term = entries[skip == 0 ? 0 : skip - 1].term;
      if (status s = log_->reset_to(log_id{term, lo - 1}); !s.ok()) return fatal(s);
      reset_durable(lo - 1);
    } else if (lo < next) {
      if (status s = log_->truncate(lo); !s.ok()) return fatal(s);
      overwrite_from(lo);
    }
    write_from(lo, std::vector<nuraft_entry>(entries.begin() + skip, entries.end()));
  }

  bool compact(::nuraft::ulong last_log_index) override {
    std::lock_guard write(write_mutex_);
    const log_state st = log_->get_log_state();
    if (expected_ && expected_->id.index == last_log_index) {
      expected_snapshot expected = std::move(*expected_);
      expected_.reset();
      status s = expected.install();
      if (!s.ok()) return refuse(s.with_context(where() + "compact(" +
                                                std::to_string(last_log_index) +
                                                ") installing the received snapshot: "));
      if (next_slot() - 1 == last_log_index) {
        reset_durable(last_log_index);  // reset: nothing after it, older callbacks prove nothing past it
      } else {
        std::lock_guard lock(mutex_);  // purged: [start, last_log_index] is gone
        durable_ = std::max<std::uint64_t>(durable_, last_log_index);
      }
      return true;
    }
    if (st.last_purged && last_log_index <= st.last_purged->index) return true;
    if (st.last && last_log_index <= st.last->index) {
      status s = log_->purge(last_log_index);
      return s.ok() || refuse(s);
    }
    return refuse(status::invalid_argument(
        where() + "compact(" + std::to_string(last_log_index) + ") is past the last index " +
        std::to_string(next_slot() - 1) +
        " and no received snapshot ends there: the term to reset the log to is unknown"));
  }

  void compact_async(::nuraft::ulong last_log_index,
                     const ::nuraft::async_result<bool>::handler_type& when_done) override {
    bool ok = compact(last_log_index);
    ptr<std::exception> none;
    when_done(ok, none);
  }

  bool flush() override { return wait_durable(next_slot() - 1); }

  ::nuraft::ulong last_durable_index() override {
    const std::uint64_t last = next_slot() - 1;
    std::lock_guard lock(mutex_);
    return std::min(durable_, last);
  }

 private:
  static constexpr std::uint64_t k_read_chunk = 64;

  struct expected_snapshot {
    log_id id;
    std::function<status()> install;
  };

  seshat_log_store(storage_type& store, std::unique_ptr<log_type> log, log_store_options options)
      : store_(store), log_(std::move(log)), options_(std::move(options)) {
    caps_.push_back(k_no_cap);
    if (options_.parallel_appending) notifier_ = std::thread([this] { notify_loop(); });
  }

  static constexpr std::uint64_t k_no_cap = ~std::uint64_t{0};

  std::string where() const {
    return Shard::is_system ? std::string("nuraft log (system group): ")
                            : "nuraft log (data shard " + std::to_string(log_->shard()) + "): ";
  }

  void fatal(const status& s) { report(s); }
  // A refused compaction: NuRaft takes false as "ask the leader again".
  bool refuse(const status& s) const {
    std::fprintf(stderr, "seshat nuraft log store: %s\n", s.to_string().c_str());
    return false;
  }
  bool report(const status& s) {
    if (options_.on_fatal) {
      options_.on_fatal(s);
    } else {
      std::fprintf(stderr, "seshat nuraft log store: %s\n", s.to_string().c_str());
      std::abort();
    }
    return false;
  }

  // Entries from `index` on will be rewritten: what older generations'
  // callbacks prove stops before it. REQUIRES: write_mutex_ held.
  void overwrite_from(std::uint64_t index) {
    std::lock_guard lock(mutex_);
    for (std::uint64_t& cap : caps_) cap = std::min(cap, index - 1);
    caps_.push_back(k_no_cap);
    durable_ = std::min(durable_, index - 1);
  }

  // The log was reset (synced) to end at `last`: everything up to it is
  // durable, nothing older proves more. REQUIRES: write_mutex_ held.
  void reset_durable(std::uint64_t last) {
    std::lock_guard lock(mutex_);
    for (std::uint64_t& cap : caps_) cap = std::min(cap, last);
    caps_.push_back(k_no_cap);
    durable_ = last;
    settled_.notify_all();
  }

  // Appends `entries` (numbered from `index`) through append_async.
  // REQUIRES: write_mutex_ held.
  void write_from(std::uint64_t index, std::vector<nuraft_entry> entries) {
    if (entries.empty()) return;
    const std::uint64_t last = index + entries.size() - 1;
    std::size_t generation;
    {
      std::lock_guard lock(mutex_);
      generation = caps_.size() - 1;
      ++in_flight_;
    }
    // On refusal append_async calls the callback at once with the error.
    (void)log_->append_async(std::span<const nuraft_entry>(entries),
                             [this, generation, last](status s) { on_durable(generation, last, s); });
  }

  void on_durable(std::size_t generation, std::uint64_t last, const status& s) {
    std::unique_lock lock(mutex_);
    if (s.ok()) {
      durable_ = std::max(durable_, std::min(last, caps_[generation]));
    } else if (!failed_) {
      failed_ = s;
      lock.unlock();
      report(s.with_context(where() + "append up to index " + std::to_string(last) + ": "));
      lock.lock();
    }
    notify_pending_ = true;
    wake_.notify_all();
    settled_.notify_all();
    if (--in_flight_ == 0) idle_.notify_all();
  }

  // Returns once [start, index] is durable (false when a write failed).
  bool wait_durable(std::uint64_t index) {
    {
      std::lock_guard lock(mutex_);
      if (failed_) return false;
      if (durable_ >= index) return true;
      ++in_flight_;
    }
    // A sync that starts now covers every write that returned: the ones
    // up to `index` (of the current generation).
    std::size_t generation;
    {
      std::lock_guard lock(mutex_);
      generation = caps_.size() - 1;
    }
    store_.sync_async([this, generation, index](status s) { on_durable(generation, index, s); });
    std::unique_lock lock(mutex_);
    settled_.wait(lock, [&] { return failed_ || durable_ >= index || caps_[generation] < index; });
    return !failed_;
  }

  void notify_loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return stop_ || notify_pending_; });
      if (stop_) return;
      notify_pending_ = false;
      const bool ok = !failed_;
      lock.unlock();
      {
        std::lock_guard server(server_mutex_);
        if (server_) server_->notify_log_append_completion(ok);
      }
      lock.lock();
    }
  }

  storage_type& store_;
  std::unique_ptr<log_type> log_;
  const log_store_options options_;

  std::mutex write_mutex_;  // serializes writes; guards expected_
  std::optional<expected_snapshot> expected_;

  std::mutex mutex_;  // guards what follows
  std::condition_variable settled_, wake_, idle_;
  std::uint64_t durable_ = 0;
  std::vector<std::uint64_t> caps_;  // per generation: the most its callbacks prove
  std::optional<status> failed_;
  std::size_t in_flight_ = 0;
  bool notify_pending_ = false, stop_ = false;

  std::mutex server_mutex_;
  ::nuraft::raft_server* server_ = nullptr;
  std::thread notifier_;
};

}  // namespace seshat::nuraft
