// seshat/storage.hpp: storage<B>, pure persistence over a backend.
//
// storage<B> stores bytes in the six column families of a backend B (see
// backend.hpp) and knows nothing of Raft. It adds to the backend:
//   - sync where a family requires it: a write touching system_raft_state
//     or data_raft_state is durable before it returns;
//   - log helpers on bytes (log_key.hpp): append with a gap check, read of a
//     half-open range, truncation of a prefix or a suffix, first/last index;
//   - metrics on demand (metrics.hpp), counted as operations happen
//     (detail/counters.hpp);
//   - snapshots of the whole store (snapshot.hpp): create_snapshot,
//     validate_snapshot, restore_snapshot.
//
// Log helpers. A log family holds entries at consecutive indices
// [first, last]. append_log(cf, i, ...) accepts only i == last + 1 or, on an
// empty log, i == its floor (1 for a new log; otherwise where the last
// truncation that emptied it left it: log_key.hpp). The helpers cache first/last per family;
// they assume they are the only writers of log keys (a batch that touches a
// log family drops the cache, which is then read again).
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
#include <functional>
#include <cstdint>
#include <filesystem>
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
#include "seshat/detail/open_groups.hpp"
#include "seshat/log_id.hpp"
#include "seshat/log_key.hpp"
#include "seshat/metrics.hpp"
#include "seshat/options.hpp"
#include "seshat/snapshot.hpp"
#include "seshat/status.hpp"
#include "seshat/storage_batch.hpp"

namespace seshat {

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

  ~storage() { group_sync_.stop(); }

  // Fires every pending sync_async callback, then closes the backend.
  status close() {
    group_sync_.stop();
    return backend_->close();
  }
  B& backend() { return *backend_; }

  // The store's directory and options, as given to open().
  const std::filesystem::path& directory() const { return dir_; }
  const open_options& options() const { return options_; }

  // ---- keys and values ----------------------------------------------------

  // The value of `key`; not-found when absent.
  result<std::string> get(column_family cf, std::string_view key) {
    std::string value;
    SESHAT_RETURN_IF_ERROR(backend_->get(cf, key, &value));
    counters_.read(cf, 1, value.size());
    return value;
  }

  result<bool> exists(column_family cf, std::string_view key) {
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
  status write(batch& b) {
    if (b.empty()) return status::invalid_argument("write of an empty batch");
    const auto start = b.sync() ? detail::metrics_clock::now() : detail::metrics_clock::time_point{};
    status s = backend_->write(b.batch_, write_options{b.sync()});
    for (column_family cf : k_all_column_families)
      if (b.log_families_ & (1u << index_of(cf))) forget_bounds(cf);
    if (!s.ok()) return s;
    if (b.sync()) b.tally_.synced_in = counters_.syncs().record_since(start);
    counters_.written(b.tally_);
    return {};
  }

  // An iterator over `cf` that sees it as it is now (snapshot isolation).
  std::unique_ptr<iterator> new_iterator(column_family cf) { return backend_->new_iterator(cf); }

  // ---- log helpers --------------------------------------------------------

  // Appends `entry` at `index`. See the class comment for which index is
  // accepted; any other is refused with invalid-log-index and nothing is
  // written.
  status append_log(column_family cf, std::uint64_t index, std::string_view entry,
                    write_options options = {}) {
    const std::array<std::string_view, 1> one{entry};
    return append_log(cf, index, one, options);
  }

  // Appends `entries` at [first_index, first_index + size), atomically.
  template <std::ranges::input_range R>
    requires std::convertible_to<std::ranges::range_reference_t<R>, std::string_view>
  status append_log(column_family cf, std::uint64_t first_index, const R& entries,
                    write_options options = {}) {
    SESHAT_RETURN_IF_ERROR(check_log_family(cf));
    log_bounds& bounds = bounds_[index_of(cf)];
    std::lock_guard lock(bounds.mutex);
    SESHAT_RETURN_IF_ERROR(load_bounds(cf, bounds));
    const std::uint64_t expected = bounds.last ? *bounds.last + 1 : bounds.floor;
    if (first_index != expected)
      return status::invalid_log_index(
          std::string(name_of(cf)) + ": append at index " + std::to_string(first_index) +
          ", expected " + std::to_string(expected) +
          (bounds.last ? " (last index is " + std::to_string(*bounds.last) + ")"
                       : std::string(" (the log is empty)")));
    auto wb = backend_->new_batch();
    std::string key(log_key::k_prefix);
    std::uint64_t index = first_index;
    std::uint64_t bytes = 0;
    for (auto&& entry : entries) {
      if (index > k_max_log_index)
        return status::invalid_log_index(std::string(name_of(cf)) + ": append at index " +
                                         std::to_string(first_index) + ": entry " +
                                         past_max_index(index) + " (nothing written)");
      const std::string_view value = entry;
      key.resize(log_key::k_prefix.size());
      key += log_key::digits(index++);
      wb.put(cf, key, value);
      bytes += key.size() + value.size();
    }
    if (index == first_index) return {};
    SESHAT_RETURN_IF_ERROR(synced_write(wb, options));
    if (!bounds.first) bounds.first = first_index;
    bounds.last = index - 1;
    counters_.written(cf, index - first_index, bytes);
    return {};
  }

  // The entries at [start, end). Fails with invalid-log-index naming the
  // first index of the range that the log does not hold. Never throws: out
  // of memory for the entries is a backend-error.
  result<std::vector<std::string>> read_log(column_family cf, std::uint64_t start,
                                            std::uint64_t end) try {
    SESHAT_RETURN_IF_ERROR(check_log_family(cf));
    if (end < start)
      return status::invalid_argument(std::string(name_of(cf)) + ": read of [" +
                                      std::to_string(start) + ", " + std::to_string(end) +
                                      "): end is before start");
    std::vector<std::string> out;
    // The range is checked entry by entry as it is read: reserve no more
    // than a bounded guess.
    out.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(end - start, 4096)));
    auto it = backend_->new_iterator(cf);
    it->seek(log_key::encode(start));
    std::uint64_t bytes = 0;
    for (std::uint64_t index = start; index < end; ++index, it->next()) {
      if (!it->valid() || log_key::decode(it->key()) != index) {
        SESHAT_RETURN_IF_ERROR(it->status());
        return status::invalid_log_index(std::string(name_of(cf)) + ": read of [" +
                                         std::to_string(start) + ", " + std::to_string(end) +
                                         "): entry " + std::to_string(index) +
                                         " is not in the log");
      }
      out.emplace_back(it->value());
      bytes += it->value().size();
    }
    counters_.read(cf, out.size(), bytes);
    return out;
  } catch (const std::exception& e) {
    return status::backend_error(std::string(name_of(cf)) + ": read of [" + std::to_string(start) +
                                 ", " + std::to_string(end) + "): " + e.what());
  }

  // Deletes every entry before `index`, [first, index), and makes `index`
  // the floor (the index the next append takes if the log is now empty).
  // Entries at `index` and after are kept.
  status truncate_log_before(column_family cf, std::uint64_t index) {
    SESHAT_RETURN_IF_ERROR(check_log_family(cf));
    log_bounds& bounds = bounds_[index_of(cf)];
    std::lock_guard lock(bounds.mutex);
    SESHAT_RETURN_IF_ERROR(load_bounds(cf, bounds));
    if (bounds.first ? index <= *bounds.first : index <= bounds.floor) return {};
    auto wb = backend_->new_batch();
    wb.del_range(cf, log_key::k_prefix, log_key::encode(index));
    wb.put(cf, log_key::k_floor, log_key::digits(index));
    SESHAT_RETURN_IF_ERROR(backend_->write(wb, write_options{}));
    bounds.floor = index;
    if (bounds.last && *bounds.last >= index) {
      bounds.first = std::max(*bounds.first, index);
    } else {
      bounds.first.reset();
      bounds.last.reset();
    }
    counters_.written(cf, 2, 0);
    return {};
  }

  // Deletes every entry from `index` on, [index, last]. Refused with
  // invalid-log-index when `index` is below the log's first index or floor.
  status truncate_log_from(column_family cf, std::uint64_t index) {
    SESHAT_RETURN_IF_ERROR(check_log_family(cf));
    log_bounds& bounds = bounds_[index_of(cf)];
    std::lock_guard lock(bounds.mutex);
    SESHAT_RETURN_IF_ERROR(load_bounds(cf, bounds));
    const std::uint64_t first = bounds.first ? *bounds.first : bounds.floor;
    if (index < first)
      return status::invalid_log_index(std::string(name_of(cf)) + ": truncate from index " +
                                       std::to_string(index) + ", expected at least " +
                                       std::to_string(first) + " (the log's first index)");
    if (!bounds.last || index > *bounds.last) return {};
    const bool empties = index == *bounds.first;
    auto wb = backend_->new_batch();
    wb.del_range(cf, log_key::encode(index), log_key::k_end);
    // An emptied log takes its next append where its entries began.
    if (empties) wb.put(cf, log_key::k_floor, log_key::digits(index));
    SESHAT_RETURN_IF_ERROR(backend_->write(wb, write_options{}));
    if (empties) {
      bounds.first.reset();
      bounds.last.reset();
      bounds.floor = index;
    } else {
      bounds.last = index - 1;
    }
    counters_.written(cf, 1, 0);
    return {};
  }

  // The first and last index held by a log family; nothing when it is empty.
  result<std::optional<std::uint64_t>> first_log_index(column_family cf) {
    return bound(cf, &log_bounds::first);
  }
  result<std::optional<std::uint64_t>> last_log_index(column_family cf) {
    return bound(cf, &log_bounds::last);
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
    group_sync_.stop();
    const auto before = detail::identity_of(dir_);
    status closed = backend_->close();
    status installed = closed.ok() ? B::install_checkpoint(dir / k_snapshot_data_dir, dir_) : closed;
    // Which state is in place is found, not inferred from the failing step:
    // the switch puts another directory in the store's place.
    const auto after = detail::identity_of(dir_);
    const bool switched = before && after && *before != *after;
    auto reopened = B::open(dir_, options_);
    for (column_family cf : k_all_column_families) forget_bounds(cf);
    group_sync_.restart();
    if (reopened.ok()) backend_ = std::move(*reopened);
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

  // Makes every earlier write durable.
  status sync_wal() { return timed_sync(); }

  // Calls `done` once, from a background thread, when every write that
  // returned before this call is durable, with the status of the sync. Many
  // calls share one sync (group commit): under load, one fsync serves
  // every write that arrived while the previous one ran. `done` must not
  // block for long. After close() it fires at once with an error.
  void sync_async(std::function<void(status)> done) {
    counters_.group_commit_requested();
    group_sync_.request(std::move(done));
  }

  // How many syncs sync_async has run so far.
  std::uint64_t group_syncs() const { return group_sync_.syncs(); }

  // Compacts the whole family.
  status compact(column_family cf) { return backend_->compact_range(cf, {}, {}); }

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
    m.group_commits = group_sync_.syncs();
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

 private:
  // The cached extent of one log family.
  // Invariant (when loaded): first and last are both set or both empty.
  struct log_bounds {
    std::mutex mutex;
    bool loaded = false;
    std::optional<std::uint64_t> first, last;
    std::uint64_t floor = 1;
  };

  storage(std::unique_ptr<B> backend, std::filesystem::path dir, open_options options)
      : backend_(std::move(backend)),
        dir_(std::move(dir)),
        options_(options),
        group_sync_([this] { return timed_sync(); }) {}

  static status check_log_family(column_family cf) {
    if (holds_log(cf)) return {};
    return status::invalid_argument("column family " + std::string(name_of(cf)) +
                                    " holds no log");
  }

  status load_bounds(column_family cf, log_bounds& b) {
    if (b.loaded) return {};
    b.first.reset();
    b.last.reset();
    b.floor = 1;
    auto it = backend_->new_iterator(cf);
    auto index_here = [&]() -> result<std::optional<std::uint64_t>> {
      if (!it->valid() || it->key().substr(0, log_key::k_prefix.size()) != log_key::k_prefix) {
        SESHAT_RETURN_IF_ERROR(it->status());
        return std::optional<std::uint64_t>();
      }
      auto index = log_key::decode(it->key());
      if (!index)
        return status::corrupted_data(std::string(name_of(cf)) + ": key '" +
                                      std::string(it->key()) + "' is not a log key");
      return index;
    };
    it->seek(log_key::k_prefix);
    auto first = index_here();
    if (!first.ok()) return first.status();
    it->seek_for_prev(log_key::k_end);
    auto last = index_here();
    if (!last.ok()) return last.status();
    std::string floor;
    status s = backend_->get(cf, log_key::k_floor, &floor);
    if (s.ok()) {
      auto parsed = log_key::parse_digits(floor);
      if (!parsed)
        return status::corrupted_data(std::string(name_of(cf)) + ": key '" +
                                      std::string(log_key::k_floor) + "' holds '" + floor +
                                      "', not 20 digits");
      b.floor = *parsed;
    } else if (!s.is(errc::not_found)) {
      return s;
    }
    if (first->has_value() != last->has_value())
      return status::corrupted_data(std::string(name_of(cf)) + ": log bounds disagree");
    b.first = *first;
    b.last = *last;
    b.loaded = true;
    return {};
  }

  result<std::optional<std::uint64_t>> bound(column_family cf,
                                             std::optional<std::uint64_t> log_bounds::*which) {
    SESHAT_RETURN_IF_ERROR(check_log_family(cf));
    log_bounds& b = bounds_[index_of(cf)];
    std::lock_guard lock(b.mutex);
    SESHAT_RETURN_IF_ERROR(load_bounds(cf, b));
    return b.*which;
  }

  void forget_bounds(column_family cf) {
    log_bounds& b = bounds_[index_of(cf)];
    std::lock_guard lock(b.mutex);
    b.loaded = false;
  }

  // Every sync of the WAL goes through write(batch) or one of these two,
  // which time it.
  status timed_sync() {
    const auto start = detail::metrics_clock::now();
    status s = backend_->sync_wal();
    if (s.ok()) counters_.syncs().record_since(start);
    return s;
  }
  status synced_write(typename B::batch& wb, write_options options) {
    if (!options.sync) return backend_->write(wb, options);
    const auto start = detail::metrics_clock::now();
    status s = backend_->write(wb, options);
    if (s.ok()) counters_.syncs().record_since(start);
    return s;
  }

  std::unique_ptr<B> backend_;
  const std::filesystem::path dir_;
  const open_options options_;
  std::array<log_bounds, k_column_family_count> bounds_;
  detail::store_counters counters_;
  detail::group_registry groups_;
  detail::open_groups open_groups_;
  detail::group_sync group_sync_;  // last: stopped before the rest goes
};

}  // namespace seshat
