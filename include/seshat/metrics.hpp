// seshat/metrics.hpp: what a store reports about itself on demand.
//
// storage<B>::metrics() fills a storage_metrics: sizes it measures then
// (disk bytes, keys per family) and counters kept since the storage was
// opened, counted where each operation happens (detail/counters.hpp).
// prometheus.hpp writes them in the Prometheus text format.
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <array>
#include <cstdint>
#include <numeric>
#include <vector>

#include "seshat/column_family.hpp"
#include "seshat/shard.hpp"

namespace seshat {

// Upper bounds, in seconds, of the buckets of every latency histogram; the
// last bucket, above 10 s, is +Inf.
inline constexpr std::array<double, 16> k_latency_bounds = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025,   0.05,   0.1,     0.25,   0.5,   1,     2.5,    10};

// A latency histogram, read at one moment.
struct latency_metrics {
  // counts[i]: durations in (k_latency_bounds[i-1], k_latency_bounds[i]]
  // (not cumulative); counts.back(): above the last bound.
  std::array<std::uint64_t, k_latency_bounds.size() + 1> counts{};
  double sum_seconds = 0;  // of every duration counted
  std::uint64_t count() const { return std::accumulate(counts.begin(), counts.end(), std::uint64_t{0}); }
};

// Counters of one column family since the storage was opened.
struct family_metrics {
  std::uint64_t reads = 0;          // keys read (get, exists hits, read_log entries)
  std::uint64_t writes = 0;         // write operations (put, del, del_range, log entries)
  std::uint64_t bytes_read = 0;     // value bytes read
  std::uint64_t bytes_written = 0;  // key and value bytes written
};

// One Raft group's log (a log_store) since the storage was opened: counts
// survive closing and reopening the log_store.
struct group_metrics {
  bool system = false;  // the system group; otherwise data shard `shard`
  shard_id shard = k_system_shard;
  // Whether a log_store is open on the group now; first_index, last_index
  // and entries are read from it, and are 0 when it is not open.
  bool open = false;
  // The log holds `entries` entries, [first_index, last_index]; when it
  // holds none, first_index is where the next append goes and last_index
  // is first_index - 1 (0 when first_index is 0).
  std::uint64_t first_index = 0, last_index = 0, entries = 0;
  std::uint64_t appends = 0;           // appends that wrote (append, append_async)
  std::uint64_t entries_appended = 0;
  std::uint64_t bytes_appended = 0;    // key and encoded value bytes
  // Appends made durable: a durable append's synced write, or an
  // append_async whose callback fired with success. sync_seconds.count() of
  // them; each took its time from the write until durable.
  latency_metrics sync_seconds;
  std::uint64_t entries_synced = 0;    // entries of those appends
  std::uint64_t reads = 0;             // entries() calls that returned entries
  std::uint64_t entries_read = 0;
  std::uint64_t truncations = 0;       // truncate() calls that deleted entries
  std::uint64_t purges = 0;            // purge() calls that deleted entries
};

struct storage_metrics {
  std::uint64_t disk_bytes = 0;  // bytes the store takes on disk
  // Keys per family, by index_of(); counted only when metrics_options
  // asked for it (keys_counted), else all 0.
  bool keys_counted = false;
  std::array<std::uint64_t, k_column_family_count> keys{};
  // The sums over every family of `families`.
  std::uint64_t reads = 0;           // keys read (get, exists, log entries)
  std::uint64_t writes = 0;          // write operations (put, del, batch ops, log entries)
  std::uint64_t bytes_read = 0;      // value bytes read
  std::uint64_t bytes_written = 0;   // key and value bytes written
  std::array<family_metrics, k_column_family_count> families{};  // by index_of()
  // Every sync of the write-ahead log: synced writes, sync_wal() and group
  // commits; each took the time of its write and fsync.
  latency_metrics sync_seconds;
  std::uint64_t group_commits = 0;          // syncs run by sync_async (storage::group_syncs())
  std::uint64_t group_commit_requests = 0;  // sync_async calls served by them
  // Every group whose log was opened on this storage, system group first,
  // then by shard id.
  std::vector<group_metrics> groups;
};

// What storage<B>::metrics() measures besides its counters.
struct metrics_options {
  // Count the keys of every family: reads every key of the store, O(keys).
  bool count_keys = true;
};

}  // namespace seshat
