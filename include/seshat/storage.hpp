// seshat/storage.hpp: storage<B>, pure persistence over a backend.
//
// storage<B> stores bytes in the six column families of a backend B (see
// backend.hpp) and knows nothing of Raft. It adds to the backend:
//   - sync where a family requires it: a write touching system_raft_state
//     or data_raft_state is durable before it returns;
//   - the log layer, on bytes: every log of the store (one per family and
//     group, log_address in key_format.hpp) is appended with a gap check,
//     read by half-open ranges, truncated before or from an index, and its
//     first/last index cached. log_store (log_store.hpp) is built on it and
//     writes no log key of its own;
//   - group commit (detail/group_sync.hpp): append_log_async's entries of
//     every log wait in one pending batch, written as one synced write per
//     round, readable meanwhile from each log's read overlay; every other
//     write of the store writes them first;
//   - on a backend with its own log engine (log_backend<B>, log_backend.hpp:
//     segmented<B>), the log operations' reads and writes go to the engine
//     instead, with the same checks, bounds and errors: the engine rounds
//     append_log_async itself, and the key format only spells the keys
//     a read's visitor is shown;
//   - metrics on demand (metrics.hpp);
//   - snapshots of the whole store (snapshot.hpp): create_snapshot,
//     validate_snapshot, restore_snapshot.
//
// Logs. A log holds entries at consecutive indices [first, last].
// append_log(a, i, ...) accepts only i == last + 1 or, on an empty log,
// i == its floor (1 for a new log; otherwise where the last truncation that
// emptied it left it). The key format F of each call spells the keys
// (key_format.hpp); with the default, decimal_key_format, the system
// group's keys are log_key.hpp's, and a column family alone names its
// system group's log (append_log(column_family::system_raft_log, 1, "x")).
// storage caches first/last/floor per log and assumes its log operations
// are the only writers of log keys (a batch that touches a log family
// drops that family's caches, which are then read again).
//
// Snapshots. create_snapshot(dir, last_included) writes, into a new
// directory `dir`, the backend's point-in-time checkpoint of all six
// families (dir/data) and a manifest of its files (dir/MANIFEST.seshat);
// writes may continue meanwhile and are in the snapshot or not, whole.
// restore_snapshot(dir) checks the snapshot and replaces the store's state
// with it, atomically even across a crash, and leaves the storage open.
//
// Thread-safety: all members may be called from many threads at once;
// appends to one log family are serialized. close() too: a read it meets
// (read_log, a log_store's entries) returns what it read whole or fails
// with the backend's closed-store error (backend.hpp). Except
// restore_snapshot: it REQUIRES that no other call on this storage is in
// flight, and that no iterator from it is alive (a live iterator keeps a
// LevelDB or RocksDB store locked after close, which makes the restore fail).
// Ownership: storage owns its backend; close() or the destructor closes it.
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "seshat/backend.hpp"
#include "seshat/column_family.hpp"
#include "seshat/detail/counters.hpp"
#include "seshat/detail/directory_swap.hpp"
#include "seshat/detail/files.hpp"
#include "seshat/detail/group_sync.hpp"
#include "seshat/detail/log_compactor.hpp"
#include "seshat/detail/open_groups.hpp"
#include "seshat/detail/printable.hpp"
#include "seshat/key_format.hpp"
#include "seshat/log_backend.hpp"
#include "seshat/log_id.hpp"
#include "seshat/metrics.hpp"
#include "seshat/options.hpp"
#include "seshat/snapshot.hpp"
#include "seshat/status.hpp"
#include "seshat/storage_batch.hpp"

namespace seshat {

// Who keeps a log's floor, the index an empty log accepts next, across a
// reopen (storage::open_log):
//   stored()                storage, under the key format's floor key
//                           (key_format.hpp), written with the truncation
//                           that moves it; the default;
//   kept_by_caller(next)    the caller, which passes it at every open:
//                           storage writes no floor key and takes `next` as
//                           the floor until a truncation moves it (log_store
//                           keeps last purged + 1, or options.first_index).
struct log_floor {
  static constexpr log_floor stored() { return {}; }
  static constexpr log_floor kept_by_caller(std::uint64_t next) { return {true, next}; }
  bool by_caller = false;
  std::uint64_t index = 1;
};

// What a log append wrote (storage::append_log_encoded), for its caller's
// metrics: the bytes of its keys and values, and how long its sync took
// (zero when it was not synced).
struct log_append_info {
  std::uint64_t bytes = 0;
  std::chrono::nanoseconds synced_in{0};
};

template <backend B>
class storage {
 public:
  using backend_type = B;
  using batch = storage_batch<B>;
  using iterator = typename B::iterator;

  // Opens the store in `dir` (see backend.hpp for every way this can fail).
  static result<std::unique_ptr<storage>> open(const std::filesystem::path& dir,
                                               const open_options& options = {}) {
    auto opened = B::open(dir, options);
    if (!opened.ok()) return opened.status();
    return std::unique_ptr<storage>(new storage(std::move(*opened), dir, options));
  }

  storage(const storage&) = delete;
  storage& operator=(const storage&) = delete;

  ~storage() {
    compactor_.stop();
    group_sync_.stop();
  }

  // Waits for a background compaction running (see wait_for_compaction)
  // and drops the ones scheduled; writes and syncs what group commit holds
  // pending (append_log_async's entries) and fires every pending callback;
  // then closes the backend.
  status close() {
    compactor_.stop();
    group_sync_.stop();
    return backend_->close();
  }
  B& backend() { return *backend_; }

  // The store's directory and options, as given to open().
  const std::filesystem::path& directory() const { return dir_; }
  const open_options& options() const { return options_; }

  // ---- keys and values ----------------------------------------------------

  // ---- keys and values: a read of a log family sees what
  // append_log_async left pending (it writes it first, unsynced, when there
  // is any; pending entries are in log families only).

  // The value of `key`; not-found when absent.
  result<std::string> get(column_family cf, std::string_view key) {
    if (holds_log(cf)) SESHAT_RETURN_IF_ERROR(write_pending());
    std::string value;
    SESHAT_RETURN_IF_ERROR(backend_->get(cf, key, &value));
    counters_.read(cf, 1, value.size());
    return value;
  }

  result<bool> exists(column_family cf, std::string_view key) {
    if (holds_log(cf)) SESHAT_RETURN_IF_ERROR(write_pending());
    std::string value;
    status s = backend_->get(cf, key, &value);
    if (s.is(errc::not_found)) return false;
    if (!s.ok()) return s;
    counters_.read(cf, 1, 0);
    return true;
  }

  status put(column_family cf, std::string_view key, std::string_view value) {
    batch b = new_batch();
    b.put(cf, key, value);
    return write(b);
  }

  status del(column_family cf, std::string_view key) {
    batch b = new_batch();
    b.del(cf, key);
    return write(b);
  }

  batch new_batch() { return batch(backend_->new_batch()); }

  // Writes `b` atomically; synced when b.sync(). An empty batch is refused.
  // What append_log_async left pending reaches the backend first.
  status write(batch& b) {
    if (b.empty()) return status::invalid_argument("write of an empty batch");
    const auto start = b.sync() ? sync_clock() : detail::metrics_clock::time_point{};
    status s = write_in_order(b.batch_, write_options{b.sync()});
    forget_logs(b.log_families_);
    if (!s.ok()) return s;
    if (b.sync()) b.tally_.synced_in = record_sync(start);
    counters_.written(b.tally_);
    return {};
  }

  // An iterator over `cf` that sees it as it is now (snapshot isolation).
  // Should writing what is pending fail, it sees the backend without it
  // (the failure stops group commit: its callbacks and every later write
  // report it).
  std::unique_ptr<iterator> new_iterator(column_family cf) {
    if (holds_log(cf)) write_pending().ignore();
    return backend_->new_iterator(cf);
  }

  // ---- logs ----------------------------------------------------------------
 private:
  struct log_cache;  // below

 public:
  //
  // The one log layer: every log of the store, log_store's included, is
  // written and read through these. A log is named by its log_address
  // (family and group) and its keys are spelled by the KeyFormat F
  // (key_format.hpp; decimal_key_format by default, whose system group keys
  // are log_key.hpp's). Values are the caller's bytes, unchanged.
  //
  // A log holds consecutive indices [first, last]. An append at i is
  // accepted only when i == last + 1 or, on an empty log, i == its floor
  // (log_floor). Refusals name the log (describe(log_address)), the index
  // and what was expected, and write nothing. storage caches each log's
  // first, last and floor; it assumes its log operations are the only
  // writers of a log's keys (a batch that touches a log family drops that
  // family's caches, which are then read again).

  // Opens the log at `a` with its floor kept by `floor`'s owner, and reads
  // its first and last index. A log used without open_log has its floor
  // kept by storage. corrupted-data when a key in the log's range is not a
  // log key of F, or a stored floor does not parse.
  template <key_format F = decimal_key_format>
  status open_log(log_address a, log_floor floor = log_floor::stored()) {
    SESHAT_RETURN_IF_ERROR(check_log_family(a));
    log_cache& c = cache_of<F>(a);
    std::lock_guard lock(c.mutex);
    c.floor_by_caller = floor.by_caller;
    if (floor.by_caller) c.floor = floor.index;
    c.loaded = false;
    return load_log<F>(a, c);
  }

  // Appends `entry` at `index` (see above for which index is accepted).
  template <key_format F = decimal_key_format>
  status append_log(log_address a, std::uint64_t index, std::string_view entry,
                    write_options options = {}) {
    const std::array<std::string_view, 1> one{entry};
    return append_log<F>(a, index, one, options);
  }

  // Appends `entries` at [first_index, first_index + size), atomically.
  template <key_format F = decimal_key_format, std::ranges::input_range R>
    requires std::convertible_to<std::ranges::range_reference_t<R>, std::string_view>
  status append_log(log_address a, std::uint64_t first_index, const R& entries,
                    write_options options = {}) {
    return append_log_encoded<F>(
        a, first_index, entries,
        [](const auto& entry, std::uint64_t, std::string_view& value) {
          value = entry;
          return status{};
        },
        options);
  }

  // Appends one entry per item of `items` at [first_index, ...), atomically:
  // `encode(item, index, value)` points `value` at entry `index`'s bytes
  // (valid until its next call). A non-ok status from it refuses the
  // append: it is returned and nothing is written. For log_store, which
  // serializes straight into its buffer (no copy per entry). An encode
  // that also takes `(item, index, std::string& out, term)`, appending the
  // entry's bytes to `out`, is called so on a log engine, with out the
  // append's own buffer (engine_entries), so that they are not copied.
  template <key_format F = decimal_key_format, std::ranges::input_range R, class Encode>
  status append_log_encoded(log_address a, std::uint64_t first_index, const R& items,
                            Encode&& encode, write_options options = {},
                            log_append_info* info = nullptr) {
    auto log = find_log<F>(a);
    if (!log.ok()) return log.status();
    return append_log_encoded(*log, first_index, items, encode, options, info);
  }

  // The log at `a`, found once: a log_store keeps it, so that its appends
  // skip the store-wide lookup of an address (a lock every thread takes).
  // Valid for the storage's life. invalid-argument when `a.cf` holds no log.
  template <key_format F>
  class found_log {
   public:
    const log_address& address() const noexcept { return address_; }

   private:
    friend class storage;
    found_log(log_address a, log_cache* c) : address_(a), cache_(c) {}
    log_address address_;
    log_cache* cache_;
  };
  template <key_format F = decimal_key_format>
  result<found_log<F>> find_log(log_address a) {
    SESHAT_RETURN_IF_ERROR(check_log_family(a));
    return found_log<F>(a, &cache_of<F>(a));
  }

  // As above, on a log found by find_log.
  template <key_format F, std::ranges::input_range R, class Encode>
  status append_log_encoded(const found_log<F>& log, std::uint64_t first_index, const R& items,
                            Encode&& encode, write_options options = {},
                            log_append_info* info = nullptr) {
    const log_address& a = log.address_;
    if constexpr (k_log_engine) {
      return with_log<F>(log, [&](log_cache& c) -> status {
        engine_entries& e = c.engine;
        std::uint64_t count = 0, bytes = 0;
        SESHAT_RETURN_IF_ERROR(encode_for_engine<F>(a, c, first_index, items, encode, e, count, bytes));
        if (count == 0) return {};
        const auto start = options.sync ? sync_clock() : detail::metrics_clock::time_point{};
        SESHAT_RETURN_IF_ERROR(
            backend_->log().append(group_of(a), first_index, e.inputs(), options.sync));
        if (options.sync) {
          const auto took = record_sync(start);
          if (info) info->synced_in = took;
        }
        extend(c, first_index, count);
        counters_.written(a.cf, count, bytes);
        if (info) info->bytes = bytes;
        return {};
      });
    }
    return with_log<F>(log, [&](log_cache& c) -> status {
      auto wb = backend_->new_batch();
      std::uint64_t count = 0, bytes = 0;
      SESHAT_RETURN_IF_ERROR(encode_log<F>(
          a, c, first_index, items, encode,
          [&](std::string_view key, std::string_view value, std::uint64_t) {
            wb.put(a.cf, key, value);
          },
          count, bytes));
      if (count == 0) return {};
      status s = synced_write(wb, options, info ? &info->synced_in : nullptr);
      prune_held(c);
      SESHAT_RETURN_IF_ERROR(s);
      extend(c, first_index, count);
      counters_.written(a.cf, count, bytes);
      compactor_.written(a.cf, bytes);
      if (info) info->bytes = bytes;
      return {};
    });
  }

  // As append_log_encoded, but the entries go to group commit: they join
  // the store's pending batch, which the group-commit thread writes with
  // every other log's pending entries as one synced write per round, and
  // `done` is called (from that thread, after counting `tally`) once they
  // are durable. Readable on return: until they are in the backend,
  // read_log and read_log_entry read them from the log's read overlay. Any
  // later write of the store (any log operation, write(), sync_wal(), a
  // snapshot) writes them first, so writes reach the backend in the order
  // of the calls. An empty `items` only asks for a sync (sync_async).
  // Refused (the error returned, nothing written, `done` left as it is)
  // as append_log_encoded is, after close(), and after a failed group-commit
  // write or sync until the store is reopened.
  template <key_format F = decimal_key_format, std::ranges::input_range R, class Encode>
  status append_log_async(log_address a, std::uint64_t first_index, const R& items,
                          Encode&& encode, std::function<void(status)>& done,
                          detail::synced_tally tally = {}, log_append_info* info = nullptr) {
    SESHAT_RETURN_IF_ERROR(check_log_family(a));
    return append_log_async(found_log<F>(a, &cache_of<F>(a)), first_index, items, encode, done,
                            tally, info);
  }

  // As above, on a log found by find_log (log_store's appends: no lookup of
  // the address).
  template <key_format F, std::ranges::input_range R, class Encode>
  status append_log_async(const found_log<F>& log, std::uint64_t first_index, const R& items,
                          Encode&& encode, std::function<void(status)>& done,
                          detail::synced_tally tally = {}, log_append_info* info = nullptr) {
    const log_address& a = log.address_;
    if constexpr (k_log_engine) return append_to_engine_async<F>(log, first_index, items, encode, done, tally, info);
    bool nothing = false;
    status s = with_log<F>(log, [&](log_cache& c) -> status {
      prune_held(c);
      // The entries go into the overlay first (generation 0 until submit
      // says theirs; no reader sees them before: c.mutex is held), and the
      // pending batch takes them from there: one copy each, into a string
      // an earlier entry left (log_cache::spare).
      const std::size_t held_before = c.held.size();
      auto unstage = [&] {
        while (c.held.size() > held_before) {
          recycle(c, std::move(c.held.back().value));
          c.held.pop_back();
        }
      };
      std::uint64_t count = 0, bytes = 0;
      status encoded = encode_log<F>(
          a, c, first_index, items, encode,
          [&](std::string_view, std::string_view value, std::uint64_t) {
            std::string copy;
            if (!c.spare.empty()) {
              copy = std::move(c.spare.back());
              c.spare.pop_back();
            }
            copy.assign(value);
            c.held.push_back({0, std::move(copy)});
          },
          count, bytes);
      if (!encoded.ok()) {
        unstage();
        return encoded;
      }
      nothing = count == 0;
      if (nothing) return {};
      auto add = [&](typename B::batch& wb) {
        std::uint64_t index = first_index;
        for (std::size_t i = held_before; i < c.held.size(); ++i) {
          c.key.resize(c.prefix.size());
          F::append_index(c.key, index++);
          wb.put(a.cf, c.key, c.held[i].value);
        }
      };
      auto generation = group_sync_.submit(add, bytes, done, tally);
      if (!generation.ok()) {
        unstage();
        return generation.status();
      }
      counters_.group_commit_requested();
      if (held_before == 0) c.held_from = first_index;
      for (std::size_t i = held_before; i < c.held.size(); ++i) c.held[i].generation = *generation;
      extend(c, first_index, count);
      counters_.written(a.cf, count, bytes);
      compactor_.written(a.cf, bytes);
      if (info) info->bytes = bytes;
      return {};
    });
    // Outside the log's lock: a refusal calls `done` at once.
    if (s.ok() && nothing) sync_async(std::move(done), tally);
    // A producer faster than the backend writes the pending batch itself:
    // it stays bounded. A failure stops group commit, and reaches `done`
    // from the next round.
    if (s.ok() && group_sync_.pending_bytes() >= k_max_pending_bytes)
      group_sync_.flush(false).ignore();
    return s;
  }

  // Writes what append_log_async left pending, unsynced, after the round in
  // flight: every call that returned before is then in the backend's WAL
  // (a process crash keeps it). For a call that writes nothing itself (a
  // truncation past the end, a purge of what is purged): it too returns
  // only with every earlier call written, as a call that writes does. ok at
  // once when nothing is pending; after a failed round, its error.
  // On a log engine (which rounds append_log_async itself), it makes what
  // the engine staged durable instead (a no-op when nothing is staged).
  status write_pending() {
    if constexpr (k_log_engine) return backend_->log().sync();
    if (group_sync_.idle() && !group_sync_.failed()) return {};
    return group_sync_.flush(false);
  }

  // What may wait in group commit's pending batch before append_log_async
  // writes it itself.
  static constexpr std::size_t k_max_pending_bytes = std::size_t{1} << 20;

  // Calls `visit(index, key, value)` for each entry of [start, end), in
  // order; a non-ok status from it ends the read and is returned. Fails with
  // invalid-log-index naming the first index of the range that the log does
  // not hold (the entries before it were visited). Takes no lock: it reads
  // what an iterator made at the call sees (on a log engine it takes the
  // log's lock to read its bounds, then reads without it). Never throws:
  // what `visit` throws is a backend-error.
  template <key_format F = decimal_key_format, class Visit>
    requires std::invocable<Visit&, std::uint64_t, std::string_view, std::string_view>
  status read_log(log_address a, std::uint64_t start, std::uint64_t end, Visit&& visit) try {
    SESHAT_RETURN_IF_ERROR(check_log_family(a));
    auto range = [&] {
      return "read of [" + std::to_string(start) + ", " + std::to_string(end) + ")";
    };
    if (end < start) return status::invalid_argument(describe(a) + ": " + range() + ": end is before start");
    if (start == end) return {};
    const group_keys<F> keys(a);
    std::string key;
    if constexpr (k_log_engine) {
      // The engine reads only a range it holds whole: the part of [start,
      // end) the log holds is read, and the first index past it named, as
      // the key-value read does.
      std::uint64_t held_end = start;
      {
        log_cache& c = cache_of<F>(a);
        std::lock_guard lock(c.mutex);
        SESHAT_RETURN_IF_ERROR(load_log<F>(a, c));
        if (c.first && start >= *c.first && start <= *c.last) held_end = std::min(end, *c.last + 1);
      }
      std::uint64_t bytes = 0, index = start;
      status s;
      if (held_end > start)
        s = backend_->log().read(group_of(a), start, held_end,
                                 [&](std::uint64_t i, std::string_view payload) -> status {
                                   keys.log_into(key, i);
                                   bytes += payload.size();
                                   index = i + 1;
                                   return visit(i, std::string_view(key), payload);
                                 });
      counters_.read(a.cf, index - start, bytes);
      // Refused by the engine: truncated or purged since the bounds were read.
      if (s.is(errc::compacted) || s.is(errc::unavailable) || (s.ok() && index < end))
        return status::invalid_log_index(describe(a) + ": " + range() + ": entry " +
                                         std::to_string(index) + " is not in the log");
      return s;
    }
    keys.log_into(key, start);
    // [start, stored_end) is read from the backend, then [stored_end,
    // stored_end + held.size()) from the log's read overlay.
    std::uint64_t stored_end = end;
    std::vector<std::string> held;
    std::unique_ptr<iterator> it;
    if (group_sync_.idle()) {
      it = backend_->new_iterator(a.cf);
    } else {
      log_cache& c = cache_of<F>(a);
      std::lock_guard lock(c.mutex);
      prune_held(c);
      const std::uint64_t held_end = c.held_from + c.held.size();
      if (!c.held.empty() && end > c.held_from) {
        stored_end = std::max(start, c.held_from);
        for (std::uint64_t i = stored_end; i < std::min(end, held_end); ++i)
          held.push_back(c.held[static_cast<std::size_t>(i - c.held_from)].value);
      }
      // Under the lock: no truncation of the log comes between the two.
      it = backend_->new_iterator(a.cf);
    }
    it->seek(key);
    std::uint64_t bytes = 0;
    std::uint64_t index = start;
    // Each key is compared with the one expected next (`key`, advanced in
    // place), not parsed: a log key spells one index only.
    for (; index < stored_end; ++index, it->next()) {
      if (!it->valid() || it->key() != std::string_view(key)) {
        SESHAT_RETURN_IF_ERROR(it->status());
        counters_.read(a.cf, index - start, bytes);
        return status::invalid_log_index(describe(a) + ": " + range() + ": entry " +
                                         std::to_string(index) + " is not in the log");
      }
      const std::string_view value = it->value();
      bytes += value.size();
      SESHAT_RETURN_IF_ERROR(visit(index, it->key(), value));
      if (index + 1 < stored_end) keys.next_log_key(key, index);
    }
    for (const std::string& value : held) {
      keys.log_into(key, index);
      bytes += value.size();
      SESHAT_RETURN_IF_ERROR(visit(index++, std::string_view(key), std::string_view(value)));
    }
    counters_.read(a.cf, index - start, bytes);
    if (index < end)
      return status::invalid_log_index(describe(a) + ": " + range() + ": entry " +
                                       std::to_string(index) + " is not in the log");
    return {};
  } catch (const std::exception& e) {
    return status::backend_error(describe(a) + ": read of [" + std::to_string(start) + ", " +
                                 std::to_string(end) + "): " + e.what());
  }

  // The entries at [start, end), copied. As above; out of memory for them
  // is a backend-error.
  template <key_format F = decimal_key_format>
  result<std::vector<std::string>> read_log(log_address a, std::uint64_t start,
                                            std::uint64_t end) {
    std::vector<std::string> out;
    // The range is checked entry by entry as it is read: reserve no more
    // than a bounded guess.
    if (end > start)
      out.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(end - start, 4096)));
    SESHAT_RETURN_IF_ERROR(read_log<F>(a, start, end,
                                       [&](std::uint64_t, std::string_view, std::string_view v) {
                                         out.emplace_back(v);
                                         return status{};
                                       }));
    return out;
  }

  // Calls `visit(index, key, value)` for entry `index` and returns what it
  // returns: one read, no iterator. invalid-log-index when the log does not
  // hold the entry.
  template <key_format F = decimal_key_format, class Visit>
    requires std::invocable<Visit&, std::uint64_t, std::string_view, std::string_view>
  status read_log_entry(log_address a, std::uint64_t index, Visit&& visit) {
    SESHAT_RETURN_IF_ERROR(check_log_family(a));
    std::string key, value;
    group_keys<F>(a).log_into(key, index);
    if constexpr (k_log_engine) {
      status s = backend_->log().read(group_of(a), index, index + 1,
                                      [&](std::uint64_t i, std::string_view payload) -> status {
                                        counters_.read(a.cf, 1, payload.size());
                                        return visit(i, std::string_view(key), payload);
                                      });
      if (s.is(errc::compacted) || s.is(errc::unavailable))
        return status::invalid_log_index(describe(a) + ": entry " + std::to_string(index) +
                                         " is not in the log");
      return s;
    }
    if (!group_sync_.idle()) {
      log_cache& c = cache_of<F>(a);
      std::lock_guard lock(c.mutex);
      prune_held(c);
      if (index >= c.held_from && index - c.held_from < c.held.size()) {
        value = c.held[static_cast<std::size_t>(index - c.held_from)].value;
        counters_.read(a.cf, 1, value.size());
        return visit(index, std::string_view(key), std::string_view(value));
      }
    }
    status s = backend_->get(a.cf, key, &value);
    if (s.is(errc::not_found))
      return status::invalid_log_index(describe(a) + ": entry " + std::to_string(index) +
                                       " is not in the log");
    SESHAT_RETURN_IF_ERROR(s);
    counters_.read(a.cf, 1, value.size());
    return visit(index, std::string_view(key), std::string_view(value));
  }

  // Deletes every entry before `index`, [first, index), and makes `index`
  // the floor (the index the next append takes if the log is now empty).
  // Entries at `index` and after are kept. Nothing to do when index <= first
  // (or <= the floor of an empty log). A stored floor is written in the same
  // atomic write as the deletion.
  template <key_format F = decimal_key_format>
  status truncate_log_before(log_address a, std::uint64_t index, write_options options = {}) {
    return with_log<F>(a, [&](log_cache& c) -> status {
      if (c.first ? index <= *c.first : index <= c.floor) return write_pending();
      if constexpr (k_log_engine) {
        // A purge record carries the last purged id, so the engine needs
        // its term; past the last entry, a reset (every entry goes) takes
        // the last entry's (an entry after it has no smaller term).
        auto& log = backend_->log();
        const auto g = group_of(a);
        const bool within = c.last && index - 1 <= *c.last;
        std::uint64_t term = 0;
        if (within || c.last) {
          SESHAT_ASSIGN_OR_RETURN(term, log.term_at(g, within ? index - 1 : *c.last));
        }
        SESHAT_RETURN_IF_ERROR(within ? log.purge_to(g, log_id{term, index - 1})
                                      : log.reset(g, log_id{term, index - 1}));
      } else {
        const group_keys<F> keys(a);
        auto wb = backend_->new_batch();
        const std::string begin = keys.log(0), end = keys.log(index);
        wb.del_range(a.cf, begin, end);
        if (!c.floor_by_caller) wb.put(a.cf, keys.floor(), F::floor_value(index));
        SESHAT_RETURN_IF_ERROR(synced_write_pruned(c, wb, options));
        compactor_.deleted(a.cf, begin, end);
      }
      c.floor = index;
      if (c.last && *c.last >= index) {
        c.first = std::max(*c.first, index);
      } else {
        c.first.reset();
        c.last.reset();
      }
      counters_.written(a.cf, c.floor_by_caller ? 1 : 2, 0);
      return {};
    });
  }

  // Deletes every entry from `index` on, [index, last]. Nothing to do when
  // index > last. Refused with invalid-log-index when `index` is below the
  // log's first index (or an empty log's floor). When it empties the log,
  // `index` becomes the floor.
  template <key_format F = decimal_key_format>
  status truncate_log_from(log_address a, std::uint64_t index, write_options options = {}) {
    return with_log<F>(a, [&](log_cache& c) -> status {
      const std::uint64_t first = c.first ? *c.first : c.floor;
      if (index < first)
        return status::invalid_log_index(describe(a) + ": truncate from index " +
                                         std::to_string(index) + ", expected at least " +
                                         std::to_string(first) + " (the log's first index)");
      if (!c.last || index > *c.last) return write_pending();
      const bool empties = index == *c.first;
      if constexpr (k_log_engine) {
        SESHAT_RETURN_IF_ERROR(backend_->log().truncate_from(group_of(a), index, options.sync));
      } else {
        const group_keys<F> keys(a);
        auto wb = backend_->new_batch();
        const std::string begin = keys.log(index), end = keys.log_end();
        wb.del_range(a.cf, begin, end);
        // An emptied log takes its next append where its entries began.
        if (empties && !c.floor_by_caller) wb.put(a.cf, keys.floor(), F::floor_value(index));
        SESHAT_RETURN_IF_ERROR(synced_write_pruned(c, wb, options));
        compactor_.deleted(a.cf, begin, end);
      }
      if (empties) {
        c.first.reset();
        c.last.reset();
        c.floor = index;
      } else {
        c.last = index - 1;
      }
      counters_.written(a.cf, 1, 0);
      return {};
    });
  }

  // Deletes every entry and makes `next` the floor, in one atomic write
  // together with the operations of `with` (when given; synced when
  // with->sync()). For log_store::reset_to (installing a snapshot), which
  // checks that its log does not move back. A log engine records (`term`,
  // next - 1) as the log's last purged id, durably; it takes no `with`.
  // Refused (nothing changes) with invalid-log-index when `next` - 1 is past
  // k_max_log_index, invalid-argument when `with` touches a log family or
  // is given to a log engine.
  template <key_format F = decimal_key_format>
  status reset_log(log_address a, std::uint64_t next, batch* with = nullptr,
                   std::uint64_t term = 0) {
    SESHAT_RETURN_IF_ERROR(check_log_family(a));
    if (with && with->log_families_ != 0)
      return status::invalid_argument(describe(a) + ": reset of the log with a batch that "
                                      "writes to a log family (write it separately)");
    if (with && k_log_engine)
      return status::invalid_argument(describe(a) + ": reset of the log with a batch: the " +
                                      std::string(B::k_name) +
                                      " store keeps its log apart from its keys, so no write is "
                                      "atomic with the reset (write the batch separately)");
    return with_log<F>(a, [&](log_cache& c) -> status {
      if (next > k_max_log_index + 1)
        return status::invalid_log_index(describe(a) + ": reset to next index " +
                                         std::to_string(next) + ": " + past_max_index(next - 1));
      if constexpr (k_log_engine) {
        SESHAT_RETURN_IF_ERROR(backend_->log().reset(group_of(a), log_id{term, next - 1}));
      } else {
        const group_keys<F> keys(a);
        typename B::batch own = backend_->new_batch();
        typename B::batch& wb = with ? with->batch_ : own;
        const std::string begin = keys.log(0), end = keys.log_end();
        wb.del_range(a.cf, begin, end);
        if (!c.floor_by_caller) wb.put(a.cf, keys.floor(), F::floor_value(next));
        SESHAT_RETURN_IF_ERROR(synced_write_pruned(c, wb, write_options{with && with->sync()}));
        compactor_.deleted(a.cf, begin, end);
      }
      c.first.reset();
      c.last.reset();
      c.floor = next;
      counters_.written(a.cf, 1, 0);
      if (with) counters_.written(with->tally_);
      return {};
    });
  }

  // The first and last index held by a log; nothing when it is empty.
  template <key_format F = decimal_key_format>
  result<std::optional<std::uint64_t>> first_log_index(log_address a) {
    return bound<F>(a, &log_cache::first);
  }
  template <key_format F = decimal_key_format>
  result<std::optional<std::uint64_t>> last_log_index(log_address a) {
    return bound<F>(a, &log_cache::last);
  }

  // ---- snapshots -----------------------------------------------------------

  // Writes a snapshot of the whole store into the new directory `dir` (its
  // parent is created if needed): the backend's checkpoint in dir/data, then
  // the manifest, recording `last_included` (which the caller vouches for:
  // storage does not check it against the log) and the time. The snapshot is
  // built in `<dir>.partial` and renamed to `dir` once complete and durable,
  // so a crash leaves either no `dir` or a whole one (and a `<dir>.partial`
  // that the next create_snapshot of `dir` removes). Writes may continue
  // meanwhile. Fails with snapshot-failed when `dir` exists or lies inside
  // the store's directory; on any failure nothing is left behind.
  // Note: on RocksDB the snapshot's table files are hard links to the
  // store's (immutable) files where the file system allows: do not modify a
  // snapshot's files in place.
  result<store_snapshot_meta> create_snapshot(const std::filesystem::path& dir,
                                            log_id last_included) {
    namespace fs = std::filesystem;
    const fs::path target = detail::without_trailing_separator(dir);
    const std::string context = "create snapshot " + target.string() + ": ";
    std::error_code ec;
    if (target.empty()) return status::invalid_argument(context + "empty path");
    if (fs::exists(fs::symlink_status(target, ec)))
      return status::snapshot_failed(context + "it already exists");
    if (detail::is_within(target, dir_))
      return status::snapshot_failed(context + "it lies inside the store's directory " +
                                     dir_.string());
    const fs::path work = detail::sibling_path(target, ".partial");
    if (status s = detail::remove_all_durably(work); !s.ok())
      return status::snapshot_failed(context + s.to_string());
    auto built = [&]() -> result<store_snapshot_meta> {
      // `work` and its missing parents, each durable in its parent.
      SESHAT_RETURN_IF_ERROR(detail::create_directories_durably(work));
      // The checkpoint holds every write that returned: append_log_async's too.
      SESHAT_RETURN_IF_ERROR(group_sync_.flush(false));
      SESHAT_RETURN_IF_ERROR(backend_->checkpoint(work / k_snapshot_data_dir));
      store_snapshot_meta meta;
      meta.last_included = last_included;
      meta.created_at_ms = static_cast<std::uint64_t>(
          std::chrono::duration_cast<std::chrono::milliseconds>(
              std::chrono::system_clock::now().time_since_epoch())
              .count());
      meta.backend = std::string(B::k_name);
      auto written = write_manifest(work, meta);
      if (!written.ok()) return written.status();
      SESHAT_RETURN_IF_ERROR(detail::fsync_path(detail::parent_of(work), true));
      SESHAT_RETURN_IF_ERROR(detail::rename_no_replace(work, target));
      SESHAT_RETURN_IF_ERROR(detail::fsync_path(detail::parent_of(target), true));
      return written;
    }();
    if (!built.ok()) {
      detail::remove_all_durably(work).ignore();
      const status& s = built.status();
      return s.is(errc::snapshot_failed) ? s.with_context(context)
                                         : status::snapshot_failed(context + s.to_string());
    }
    return built;
  }

  // Checks the snapshot in `dir` (see seshat::validate_snapshot for the
  // order of the checks) and that it was made by this backend
  // (version-mismatch otherwise). Changes nothing.
  static result<store_snapshot_meta> validate_snapshot(const std::filesystem::path& dir) {
    auto meta = seshat::validate_snapshot(dir);
    if (!meta.ok()) return meta;
    if (meta->backend != B::k_name)
      return status::version_mismatch("snapshot " + dir.string() + " was made by the " +
                                      meta->backend + " backend, not " + std::string(B::k_name));
    return meta;
  }

  // Replaces the store's state with the snapshot in `dir` and returns the
  // snapshot's metadata. Validates it first: an invalid snapshot is refused
  // (validate_snapshot's error) with nothing changed. Then fires pending
  // sync_async callbacks, closes the backend, installs the snapshot's
  // checkpoint (B::install_checkpoint: crash-atomic, a crash at any moment
  // leaves the old state or the new one after reopen) and reopens the store
  // with the same options; the cached log bounds are dropped. The storage is
  // usable afterwards. If the install fails, the store is reopened and the
  // install's error returned, saying which state the store holds, as found
  // after the install: its old state, or the snapshot's when the failure
  // came after the switch (an on-disk store's directory is then another
  // one: detail::identity_of), which a power loss may then undo. If
  // reopening fails, that error is returned too and the storage stays
  // closed (every call fails until it is destroyed).
  // REQUIRES: no other call on this storage in flight, no live iterator (see
  // the class comment). The snapshot directory is not changed; on RocksDB
  // and LevelDB the store may share (hard-link) its immutable table files.
  result<store_snapshot_meta> restore_snapshot(const std::filesystem::path& dir) {
    auto meta = validate_snapshot(dir);
    if (!meta.ok()) return meta.status();
    const std::string context = "restore snapshot " + dir.string() + " into " + dir_.string() + ": ";
    compactor_.stop();
    group_sync_.stop();
    const auto before = detail::identity_of(dir_);
    status closed = backend_->close();
    status installed = closed.ok() ? B::install_checkpoint(dir / k_snapshot_data_dir, dir_) : closed;
    // Which state is in place is found, not inferred from the failing step:
    // the switch puts another directory in the store's place.
    const auto after = detail::identity_of(dir_);
    const bool switched = before && after && *before != *after;
    auto reopened = B::open(dir_, options_);
    forget_logs(~0u);
    group_sync_.restart();
    if (reopened.ok()) backend_ = std::move(*reopened);
    if (reopened.ok()) compactor_.restart();
    if (!installed.ok()) {
      const std::string state =
          switched ? " (the store holds the snapshot's state, found after the install; the "
                     "switch may not survive a power loss"
                   : " (the store keeps its old state";
      return installed.with_context(
          context,
          state + (reopened.ok()
                       ? ")"
                       : "; reopening the store failed: " + reopened.status().to_string() + ")"));
    }
    if (!reopened.ok())
      return reopened.status().with_context(
          context + "the snapshot is installed, but reopening the store failed: ");
    return meta;
  }

  // ---- groups --------------------------------------------------------------

  // For the Raft layer's open(): records that a handle of `role` (a
  // log_store, state_machine_store or snapshot_manager) is open on the group,
  // until the returned claim is destroyed. invalid-argument, naming the
  // group, when one is open already: two handles on one group would
  // overwrite each other's entries.
  result<detail::open_groups::claim> claim_group(detail::group_role role, bool system,
                                                 shard_id shard) {
    return open_groups_.acquire(role, system, shard, dir_.string());
  }

  // ---- maintenance ---------------------------------------------------------

  // Makes every earlier write durable, append_log_async's pending entries
  // too (written with the sync, in one synced write).
  status sync_wal() {
    if (group_sync_.idle() && !group_sync_.failed()) return timed_sync();
    return group_sync_.flush(true);
  }

  // Calls `done` once, from a background thread, when every write that
  // returned before this call (append_log_async's included) is durable, with
  // the status of the sync. Many calls share one round (group commit): under
  // load, one write and one fsync serve every request that arrived while
  // the previous round ran. `done` must not block for long. After close(),
  // and after a failed group-commit write or sync until the store is
  // reopened, it fires at once with an error.
  void sync_async(std::function<void(status)> done) {
    counters_.group_commit_requested();
    group_sync_.request(std::move(done));
  }
  // As above, and counts `tally` (a group's synced entries and their
  // latency) once the sync succeeded: for log_store::append_async.
  void sync_async(std::function<void(status)> done, detail::synced_tally tally) {
    counters_.group_commit_requested();
    group_sync_.request(std::move(done), tally);
  }

  // How many group-commit rounds (one write and sync each) ran so far: on
  // a log engine, the engine's durable rounds too.
  std::uint64_t group_syncs() const {
    if constexpr (k_log_engine) return group_sync_.syncs() + backend_->log().durable_rounds();
    return group_sync_.syncs();
  }

  // Compacts the whole family.
  status compact(column_family cf) { return backend_->compact_range(cf, {}, {}); }

  // Purge frees the disk. Every log range that storage deletes (the log
  // operations' truncations, hence log_store's purge and truncate) is
  // compacted in the background once its family took
  // options.compact_deleted_logs_after_mb of log writes since its last
  // compaction (detail/log_compactor.hpp): the deleting call does not wait.
  // This waits until no such compaction is scheduled or running, and
  // returns the first one that failed since open (ok when none; a failure
  // stops these compactions until reopen, and costs only disk space).
  status wait_for_compaction() { return compactor_.wait(); }

  // Sizes measured now (disk bytes; keys per family when options.count_keys,
  // which reads every family) and the counters since open: per family, WAL
  // syncs, group commits, and every group whose log was opened here (its
  // extent read from its log_store while open). Never throws: out of memory
  // is a backend-error.
  result<storage_metrics> metrics(metrics_options options = {}) try {
    storage_metrics m;
    auto disk = backend_->disk_usage();
    if (!disk.ok()) return disk.status();
    m.disk_bytes = *disk;
    if (options.count_keys) {
      for (column_family cf : k_all_column_families) {
        auto it = backend_->new_iterator(cf);
        for (it->seek_to_first(); it->valid(); it->next()) ++m.keys[index_of(cf)];
        SESHAT_RETURN_IF_ERROR(it->status());
      }
      m.keys_counted = true;
    }
    counters_.read(m);
    m.group_commits = group_syncs();
    groups_.read(m.groups);
    return m;
  } catch (const std::exception& e) {
    return status::backend_error("metrics of the store at " + dir_.string() + ": " + e.what());
  }

  // For log_store::open: the counters of the group's log, kept for this
  // storage's life (a reopened log counts on), and `extent`, which metrics()
  // calls for the log's bounds until the returned tracking is destroyed.
  result<detail::group_registry::tracking> track_log(bool system, shard_id shard,
                                                      std::function<detail::log_extent()> extent) {
    return groups_.track(system, shard, std::move(extent));
  }

  // The log engine of a store that keeps its logs in one (log_backend<B>,
  // segmented<B>), and a log's group there: log_store keeps its vote,
  // committed id and last purged id in the engine.
  auto& log_engine()
    requires log_backend<B>
  {
    return backend_->log();
  }
  static detail::segment::group_address engine_group(const log_address& a) { return group_of(a); }

  // Now, for timing a sync; the epoch when B's syncs are not timed
  // (times_syncs<B>, backend.hpp): such a sync is recorded as taking 0 s.
  static detail::metrics_clock::time_point sync_clock() noexcept {
    if constexpr (times_syncs<B>) return detail::metrics_clock::now();
    return {};
  }

 private:
  // The values of one engine append, copied end to end into one buffer (an
  // encoder's view lives only until its next call), with each one's term
  // and end; inputs() views them. One per log (log_cache::engine), reused
  // by its appends under the log's mutex, so that a steady-state append
  // allocates nothing here; a buffer grown past k_max_kept_bytes by a large
  // batch is let go by the next append.
  struct engine_entries {
    static constexpr std::size_t k_max_kept_bytes = 64 * 1024;
    std::string bytes;
    std::vector<std::pair<std::uint64_t, std::size_t>> ends;  // term, end in bytes
    std::vector<detail::segment::entry_input> views;
    void clear() {
      if (bytes.capacity() > k_max_kept_bytes) std::string().swap(bytes);
      else bytes.clear();
      if (ends.capacity() > k_max_kept_bytes / 16) {
        decltype(ends)().swap(ends);
        decltype(views)().swap(views);
      }
      ends.clear();
    }
    void add(std::uint64_t term, std::string_view value) {
      bytes.append(value);
      added(term);
    }
    // The value that ends `bytes` (appended there by the encoder) is the next one.
    void added(std::uint64_t term) { ends.emplace_back(term, bytes.size()); }
    std::span<const detail::segment::entry_input> inputs() {
      views.clear();
      views.reserve(ends.size());
      std::size_t begin = 0;
      for (const auto& [term, end] : ends) {
        views.push_back({term, std::string_view(bytes).substr(begin, end - begin)});
        begin = end;
      }
      return views;
    }
  };

  // The cached extent of one log. Guarded by `mutex`, which also
  // serializes the log's writers.
  // Invariant (when loaded): first and last are both set or both empty.
  struct log_cache {  // one log's bounds, guarded by `mutex`
    std::mutex mutex;
    bool loaded = false;
    bool floor_by_caller = false;  // see log_floor
    std::optional<std::uint64_t> first, last;
    std::uint64_t floor = 1;
    std::string prefix;  // the group's key prefix under the log's format
    std::string key;     // the appends' key buffer
    // The read overlay: the values of entries [held_from, held_from +
    // held.size()) that append_log_async handed to group commit, each with
    // its batch's generation. Invariant: they are the log's last entries
    // (held_from + held.size() == last + 1 when any are held); an entry of
    // generation <= group_sync_.written() is in the backend too, and leaves
    // (prune_held). Every other write of the log writes them first
    // (synced_write_pruned), and drops them then.
    struct held_entry {
      std::uint64_t generation;
      std::string value;
    };
    std::deque<held_entry> held;
    std::uint64_t held_from = 0;
    // Buffers of entries that left the overlay, reused by the next ones (an
    // append_async allocates no string in the steady state): at most
    // k_max_spare, each of at most k_max_spare_bytes.
    static constexpr std::size_t k_max_spare = 64;
    static constexpr std::size_t k_max_spare_bytes = 64 * 1024;
    std::vector<std::string> spare;
    engine_entries engine;  // a log engine's appends' buffer (engine_entries)
  };

  storage(std::unique_ptr<B> backend, std::filesystem::path dir, open_options options)
      : backend_(std::move(backend)),
        dir_(std::move(dir)),
        options_(options),
        group_sync_([this] { return backend_->new_batch(); },
                    [this](typename B::batch* b, bool sync) -> status {
                      if (b == nullptr) return sync ? timed_sync() : status{};
                      const auto start = sync_clock();
                      SESHAT_RETURN_IF_ERROR(backend_->write(*b, write_options{sync}));
                      if (sync) record_sync(start);
                      return {};
                    }),
        compactor_(
            [this](column_family cf, std::string_view begin, std::string_view end) {
              return backend_->compact_range(cf, begin, end);
            },
            std::uint64_t{options_.compact_deleted_logs_after_mb} << 20, dir_.string()) {}

  static status check_log_family(const log_address& a) {
    if (holds_log(a.cf)) return {};
    return status::invalid_argument("column family " + std::string(name_of(a.cf)) +
                                    " holds no log");
  }

  // The cache of the log at `a` under format F, made on first use. The
  // reference stays valid as long as the storage.
  template <key_format F>
  log_cache& cache_of(const log_address& a) {
    std::lock_guard lock(logs_mutex_);
    auto [it, made] = logs_.try_emplace(log_id_key{index_of(a.cf), a.group, F::k_name});
    if (made) {
      it->second = std::make_unique<log_cache>();
      it->second->prefix = F::group_prefix(a.group == k_system_shard, a.group);
      it->second->key = it->second->prefix;
    }
    return *it->second;
  }

  // REQUIRES: c.mutex held.
  template <key_format F>
  status load_log(const log_address& a, log_cache& c) {
    if (c.loaded) return {};
    if constexpr (k_log_engine) {
      // The engine's index is in memory; a stored floor is its purge point.
      const auto st = backend_->log().state(group_of(a));
      c.first = st.first;
      c.last.reset();
      if (st.first) c.last = st.last->index;
      if (!c.floor_by_caller) c.floor = st.last_purged ? st.last_purged->index + 1 : 1;
      c.loaded = true;
      return {};
    }
    // The bounds are read from the backend: what the overlay holds goes
    // there first.
    prune_held(c);
    if (!c.held.empty()) {
      SESHAT_RETURN_IF_ERROR(group_sync_.flush(false));
      prune_held(c);
    }
    c.first.reset();
    c.last.reset();
    const group_keys<F> keys(a);
    const std::string begin = keys.log(0), end = keys.log_end();
    auto it = backend_->new_iterator(a.cf);
    auto index_here = [&]() -> result<std::optional<std::uint64_t>> {
      if (!it->valid() || it->key() < begin || it->key() >= end) {
        SESHAT_RETURN_IF_ERROR(it->status());
        return std::optional<std::uint64_t>();
      }
      auto index = keys.index_of(it->key());
      if (!index || *index > k_max_log_index)
        return status::corrupted_data(describe(a) + ": key '" + detail::printable(it->key()) +
                                      "' is not a log key" +
                                      (index ? " (" + past_max_index(*index) + ")" : ""));
      return index;
    };
    it->seek(begin);
    auto first = index_here();
    if (!first.ok()) return first.status();
    it->seek_for_prev(end);
    auto last = index_here();
    if (!last.ok()) return last.status();
    if (!c.floor_by_caller) {
      c.floor = 1;
      std::string floor;
      const std::string floor_key = keys.floor();
      status s = backend_->get(a.cf, floor_key, &floor);
      if (s.ok()) {
        auto parsed = F::parse_floor(floor);
        if (!parsed)
          return status::corrupted_data(describe(a) + ": key '" + detail::printable(floor_key) +
                                        "' holds '" + detail::printable(floor) +
                                        "', not a log index");
        c.floor = *parsed;
      } else if (!s.is(errc::not_found)) {
        return s;
      }
    }
    if (first->has_value() != last->has_value())
      return status::corrupted_data(describe(a) + ": log bounds disagree");
    c.first = *first;
    c.last = *last;
    c.loaded = true;
    return {};
  }

  // Runs fn(cache) with the log's cache locked and loaded: the one way a
  // log operation reaches the bounds it checks and updates.
  template <key_format F, class Fn>
  status with_log(const log_address& a, Fn&& fn) {
    SESHAT_RETURN_IF_ERROR(check_log_family(a));
    return with_log<F>(found_log<F>(a, &cache_of<F>(a)), fn);
  }
  template <key_format F, class Fn>
  status with_log(const found_log<F>& log, Fn&& fn) {
    log_cache& c = *log.cache_;
    std::lock_guard lock(c.mutex);
    SESHAT_RETURN_IF_ERROR(load_log<F>(log.address_, c));
    return fn(c);
  }

  // `done` once its entries are durable, after counting `tally` (log_store's
  // metrics) when the round synced them.
  struct counted_done {
    std::function<void(status)> done;
    detail::synced_tally tally;
    void operator()(status synced) {
      if (synced.ok())
        tally.counters->synced(tally.entries, tally.start == detail::metrics_clock::time_point{}
                                                  ? std::chrono::nanoseconds{0}
                                                  : sync_clock() - tally.start);
      done(std::move(synced));
    }
  };

  // append_log_async on a log engine: the engine stages the entries
  // (readable at once) and calls `done`, after counting `tally`, from its
  // writer thread once a round synced them. `done` is moved, never copied:
  // into the engine when it takes the append, and back to the caller when
  // the engine refuses it (the engine leaves a refused callback with its
  // caller), so `done` stays the caller's on refusal.
  template <key_format F, class R, class Encode>
  status append_to_engine_async(const found_log<F>& log, std::uint64_t first_index, const R& items,
                                Encode& encode, std::function<void(status)>& done,
                                detail::synced_tally tally, log_append_info* info) {
    const log_address& a = log.address_;
    bool nothing = false;
    status s = with_log<F>(log, [&](log_cache& c) -> status {
      engine_entries& e = c.engine;
      std::uint64_t count = 0, bytes = 0;
      SESHAT_RETURN_IF_ERROR(encode_for_engine<F>(a, c, first_index, items, encode, e, count, bytes));
      nothing = count == 0;
      if (nothing) return {};
      if (!tally.counters) {
        SESHAT_RETURN_IF_ERROR(
            backend_->log().append_async(group_of(a), first_index, e.inputs(), std::move(done)));
      } else {
        std::function<void(status)> counted = counted_done{std::move(done), tally};
        status staged = backend_->log().append_async(group_of(a), first_index, e.inputs(), std::move(counted));
        if (!staged.ok()) {
          done = std::move(counted.template target<counted_done>()->done);  // back to the caller
          return staged;
        }
      }
      counters_.group_commit_requested();
      extend(c, first_index, count);
      counters_.written(a.cf, count, bytes);
      if (info) info->bytes = bytes;
      return {};
    });
    // Outside the log's lock: nothing to stage asks only for a sync.
    if (s.ok() && nothing) sync_async(std::move(done), tally);
    return s;
  }

  template <key_format F>
  result<std::optional<std::uint64_t>> bound(const log_address& a,
                                             std::optional<std::uint64_t> log_cache::*which) {
    std::optional<std::uint64_t> out;
    SESHAT_RETURN_IF_ERROR(with_log<F>(a, [&](log_cache& c) {
      out = c.*which;
      return status{};
    }));
    return out;
  }

  // Drops the cache of every log in the families of `families` (bit
  // index_of(cf) set): something else wrote there.
  void forget_logs(unsigned families) {
    if (families == 0) return;
    std::lock_guard lock(logs_mutex_);
    for (auto& [id, c] : logs_) {
      if (!(families & (1u << id.cf))) continue;
      std::lock_guard cache(c->mutex);
      c->loaded = false;
    }
  }

  // Whether B keeps its logs in a log engine (log_backend.hpp).
  static constexpr bool k_log_engine = log_backend<B>;

  static detail::segment::group_address group_of(const log_address& a) {
    return {static_cast<std::uint8_t>(index_of(a.cf)), a.group};
  }

  // encode(item, index, value, term) when the caller's encoder gives the
  // entry's term (log_store's does), else encode(item, index, value) with
  // term 0: a log engine keeps each entry's term, the KV layer does not.
  template <class Encode, class Item>
  static status encode_item(Encode& encode, const Item& item, std::uint64_t index,
                            std::string_view& value, std::uint64_t& term) {
    if constexpr (std::is_invocable_v<Encode&, const Item&, std::uint64_t, std::string_view&,
                                      std::uint64_t&>) {
      return encode(item, index, value, term);
    } else {
      term = 0;
      return encode(item, index, value);
    }
  }


  // encode_log for a log engine: the values and terms into `e` (sized for
  // `items` first when its size is known). Both engine appends use it.
  // REQUIRES: c.mutex held.
  template <key_format F, class R, class Encode>
  status encode_for_engine(const log_address& a, log_cache& c, std::uint64_t first_index,
                           const R& items, Encode& encode, engine_entries& e, std::uint64_t& count,
                           std::uint64_t& bytes) {
    e.clear();
    if constexpr (std::ranges::sized_range<R>) e.ends.reserve(std::ranges::size(items));
    using item = std::ranges::range_reference_t<const R&>;
    if constexpr (std::is_invocable_r_v<status, Encode&, item, std::uint64_t, std::string&,
                                        std::uint64_t&>) {
      // The encoder appends each value to e.bytes itself: no copy. After
      // the first, room for as many more of its size (one reallocation).
      auto into = [&](const auto& it, std::uint64_t index, std::string_view& value,
                      std::uint64_t& term) -> status {
        const std::size_t at = e.bytes.size();
        SESHAT_RETURN_IF_ERROR(encode(it, index, e.bytes, term));
        if constexpr (std::ranges::sized_range<R>)
          if (at == 0) e.bytes.reserve(e.bytes.size() * (std::ranges::size(items) + 1));
        value = std::string_view(e.bytes).substr(at);
        return {};
      };
      return encode_log<F>(
          a, c, first_index, items, into,
          [&](std::string_view, std::string_view, std::uint64_t term) { e.added(term); }, count,
          bytes);
    } else {
      return encode_log<F>(
          a, c, first_index, items, encode,
          [&](std::string_view, std::string_view value, std::uint64_t term) { e.add(term, value); },
          count, bytes);
    }
  }

  // Checks that an append at `first_index` continues the log of `c`, then
  // encodes each item (see append_log_encoded) and calls put(key, value,
  // term) for it; `count` and `bytes` say how many entries and key and value
  // bytes. REQUIRES: c.mutex held.
  template <key_format F, class R, class Encode, class Put>
  status encode_log(const log_address& a, log_cache& c, std::uint64_t first_index, const R& items,
                    Encode& encode, Put&& put, std::uint64_t& count, std::uint64_t& bytes) {
    const std::uint64_t expected = c.last ? *c.last + 1 : c.floor;
    if (first_index != expected)
      return status::invalid_log_index(
          describe(a) + ": append at index " + std::to_string(first_index) + ", expected " +
          std::to_string(expected) +
          (c.last ? " (last index is " + std::to_string(*c.last) + ")"
                  : std::string(" (the log is empty)")));
    std::string& key = c.key;
    std::uint64_t index = first_index;
    for (auto&& item : items) {
      std::string_view value;
      std::uint64_t term = 0;
      SESHAT_RETURN_IF_ERROR(encode_item(encode, item, index, value, term));
      if (index > k_max_log_index)
        return status::invalid_log_index(describe(a) + ": append at index " +
                                         std::to_string(first_index) + ": entry " +
                                         past_max_index(index) + " (nothing written)");
      key.resize(c.prefix.size());
      F::append_index(key, index++);
      put(std::string_view(key), value, term);
      bytes += key.size() + value.size();
    }
    count = index - first_index;
    return {};
  }

  // The log of `c` now ends with the `count` entries from `first`.
  // REQUIRES: c.mutex held.
  static void extend(log_cache& c, std::uint64_t first, std::uint64_t count) {
    if (!c.first) c.first = first;
    c.last = first + count - 1;
  }

  // Drops the overlay's entries that are in the backend. REQUIRES: c.mutex
  // held.
  void prune_held(log_cache& c) {
    const std::uint64_t written = group_sync_.written();
    while (!c.held.empty() && c.held.front().generation <= written) {
      recycle(c, std::move(c.held.front().value));
      c.held.pop_front();
      ++c.held_from;
    }
  }

  // Keeps `value`'s buffer for a later overlay entry (up to
  // log_cache::k_max_spare of them). REQUIRES: c.mutex held.
  static void recycle(log_cache& c, std::string&& value) {
    if (c.spare.size() < log_cache::k_max_spare && value.capacity() <= log_cache::k_max_spare_bytes)
      c.spare.push_back(std::move(value));
  }

  // synced_write of a change to the log of `c`, then prune_held: the write
  // wrote the overlay's entries first. REQUIRES: c.mutex held.
  status synced_write_pruned(log_cache& c, typename B::batch& wb, write_options options) {
    status s = synced_write(wb, options);
    prune_held(c);
    return s;
  }

  // Writes `wb` after what group commit holds pending (group_sync's
  // write_after), or at once when nothing is pending.
  status write_in_order(typename B::batch& wb, write_options options) {
    if (group_sync_.idle() && !group_sync_.failed()) return backend_->write(wb, options);
    return group_sync_.write_after([&] { return backend_->write(wb, options); });
  }

  // Every sync of the WAL goes through write(batch), synced_write,
  // timed_sync or group commit's write, which time it.
  status timed_sync() {
    const auto start = sync_clock();
    status s = backend_->sync_wal();
    if (s.ok()) record_sync(start);
    return s;
  }
  // Records a sync that began at `start` (from sync_clock()) and ended now.
  std::chrono::nanoseconds record_sync(detail::metrics_clock::time_point start) noexcept {
    const std::chrono::nanoseconds took = sync_clock() - start;
    counters_.syncs().record(took);
    return took;
  }
  // Writes `wb`; when synced, the sync is timed and `*took` (if given) says
  // how long it took.
  status synced_write(typename B::batch& wb, write_options options,
                      std::chrono::nanoseconds* took = nullptr) {
    if (!options.sync) return write_in_order(wb, options);
    const auto start = sync_clock();
    status s = write_in_order(wb, options);
    if (!s.ok()) return s;
    const auto elapsed = record_sync(start);
    if (took) *took = elapsed;
    return s;
  }

  std::unique_ptr<B> backend_;
  const std::filesystem::path dir_;
  const open_options options_;
  // Every log used so far, by family, group and key format.
  struct log_id_key {
    std::size_t cf;
    shard_id group;
    std::string_view format;
    auto operator<=>(const log_id_key&) const = default;
  };
  std::mutex logs_mutex_;  // guards logs_ (the map, not the caches)
  std::map<log_id_key, std::unique_ptr<log_cache>> logs_;
  detail::store_counters counters_;
  detail::group_registry groups_;
  detail::open_groups open_groups_;
  detail::group_sync<typename B::batch> group_sync_;  // stopped before the rest goes
  detail::log_compactor compactor_;                     // last: stopped first
};

}  // namespace seshat
