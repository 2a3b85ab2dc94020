// seshat/detail/counters.hpp: the counters behind storage_metrics
// (metrics.hpp), counted where each operation happens. Not part of the
// public API.
//
// Every count is a relaxed atomic add: no lock and no allocation where
// storage and log_store count (the one lock here, the group registry's, is
// taken when a log opens or closes and when metrics are read). A reader
// loads each counter on its own: metrics read while writes run may be a few
// operations apart from one counter to the next, never torn within one.
//
// Where the counting happens (keep it to these places):
//   storage<B>    count_read / count_write (per family), timed_sync (every
//                 WAL sync), sync_async (group-commit requests)
//   storage_batch family_tally: what a batch writes, per family
//   log_store     append_entries / append_async (appends, syncs), entries,
//                 truncate, purge, through its log_counters; its extent is
//                 read through the group_registry while it is open
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "seshat/column_family.hpp"
#include "seshat/metrics.hpp"
#include "seshat/shard.hpp"
#include "seshat/status.hpp"

namespace seshat::detail {

using metrics_clock = std::chrono::steady_clock;

// Counters written by different threads are kept this far apart.
inline constexpr std::size_t k_cache_line = 64;

// Durations in the buckets of k_latency_bounds.
class latency_histogram {
 public:
  void record(std::chrono::nanoseconds d) noexcept {
    const auto ns = static_cast<std::uint64_t>(d.count() < 0 ? 0 : d.count());
    std::size_t i = 0;
    while (i < k_bounds_ns.size() && ns > k_bounds_ns[i]) ++i;
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(ns, std::memory_order_relaxed);
  }

  latency_metrics read() const noexcept {
    latency_metrics m;
    for (std::size_t i = 0; i < counts_.size(); ++i)
      m.counts[i] = counts_[i].load(std::memory_order_relaxed);
    m.sum_seconds = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) * 1e-9;
    return m;
  }

 private:
  static constexpr std::array<std::uint64_t, k_latency_bounds.size()> k_bounds_ns = [] {
    std::array<std::uint64_t, k_latency_bounds.size()> ns{};
    for (std::size_t i = 0; i < ns.size(); ++i)
      ns[i] = static_cast<std::uint64_t>(k_latency_bounds[i] * 1e9 + 0.5);
    return ns;
  }();
  std::array<std::atomic<std::uint64_t>, k_latency_bounds.size() + 1> counts_{};
  std::atomic<std::uint64_t> sum_ns_{0};
};

// What one batch writes to each family, tallied as it is built (a batch
// belongs to one thread: plain integers), and how long its synced write
// took (so that log_store reads the clock no second time).
struct family_tally {
  std::array<std::uint32_t, k_column_family_count> ops{};
  std::array<std::uint64_t, k_column_family_count> bytes{};
  std::chrono::nanoseconds synced_in{0};
  void note(column_family cf, std::size_t n) noexcept {
    ++ops[index_of(cf)];
    bytes[index_of(cf)] += n;
  }
};

// One group's log. Owned by the storage's group_registry (shared with the
// log_store open on the group), so counts outlive a log_store.
struct log_counters {
  // What the appending and reading threads count...
  std::atomic<std::uint64_t> appends{0}, entries_appended{0}, bytes_appended{0};
  std::atomic<std::uint64_t> reads{0}, entries_read{0}, truncations{0}, purges{0};
  // ...and, on cache lines of their own, what the group-commit thread counts
  // (append_async's syncs): the two threads never write one line.
  alignas(k_cache_line) std::atomic<std::uint64_t> entries_synced{0};
  latency_histogram sync_seconds;

  // REQUIRES: one caller at a time (the group's one log_store, under its
  // write lock), so the adds need no locked instruction.
  void appended(std::uint64_t entries, std::uint64_t bytes) noexcept {
    add_one_writer(appends, 1);
    add_one_writer(entries_appended, entries);
    add_one_writer(bytes_appended, bytes);
  }
  // `entries` were made durable by a synced write that took `took`.
  void synced(std::uint64_t entries, std::chrono::nanoseconds took) noexcept {
    sync_seconds.record(took);
    entries_synced.fetch_add(entries, std::memory_order_relaxed);
  }
  void read(std::uint64_t entries) noexcept {
    reads.fetch_add(1, std::memory_order_relaxed);
    entries_read.fetch_add(entries, std::memory_order_relaxed);
  }
  static void add(std::atomic<std::uint64_t>& c) noexcept { c.fetch_add(1, std::memory_order_relaxed); }
  // `c += n` where only one thread writes `c` at a time (readers still see
  // whole values): a load and a store, no read-modify-write.
  static void add_one_writer(std::atomic<std::uint64_t>& c, std::uint64_t n) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
};

// A log's bounds as its log_store knows them (see group_metrics).
struct log_extent {
  std::uint64_t first = 0, last = 0, entries = 0;
};

// The logs of one storage, keyed by group: their counters (kept for the
// storage's life) and, while a log_store is open on a group, how to read
// its extent. Thread-safety: all members may be called from many threads.
class group_registry {
  using key = std::pair<bool, shard_id>;  // (!system, shard): the system group sorts first
  struct group {
    std::shared_ptr<log_counters> counters;
    std::function<log_extent()> extent;  // empty while no log_store is open on it
  };
  // Shared with every tracking handle: a handle destroyed after its storage
  // (against the contract) detaches harmlessly.
  struct state {
    std::mutex mutex;
    std::map<key, group> groups;
  };

 public:
  // A log_store's hold on its group's entry: counts through counters();
  // destroying it stops the reads of the extent.
  class tracking {
   public:
    tracking() = default;
    tracking(tracking&& o) noexcept
        : state_(std::move(o.state_)), key_(o.key_), counters_(std::move(o.counters_)) {}
    tracking& operator=(tracking&& o) noexcept {
      if (this != &o) {
        detach();
        state_ = std::move(o.state_);
        key_ = o.key_;
        counters_ = std::move(o.counters_);
      }
      return *this;
    }
    tracking(const tracking&) = delete;
    tracking& operator=(const tracking&) = delete;
    ~tracking() { detach(); }

    // REQUIRES: obtained from track() (not default-constructed).
    log_counters& counters() const noexcept { return *counters_; }

   private:
    friend class group_registry;
    tracking(std::shared_ptr<state> s, key k, std::shared_ptr<log_counters> c)
        : state_(std::move(s)), key_(k), counters_(std::move(c)) {}
    void detach() noexcept {
      if (!state_) return;
      std::function<log_extent()> gone;  // destroyed outside the lock
      {
        std::lock_guard lock(state_->mutex);
        auto it = state_->groups.find(key_);
        if (it != state_->groups.end()) gone.swap(it->second.extent);
      }
      state_.reset();
    }
    std::shared_ptr<state> state_;
    key key_{};
    std::shared_ptr<log_counters> counters_;
  };

  // The group's counters (made on its first open), with `extent` read by
  // read() until the returned tracking is destroyed. `extent` must not call
  // into this registry. backend-error when out of memory.
  result<tracking> track(bool system, shard_id shard, std::function<log_extent()> extent) {
    try {
      const key k{!system, shard};
      std::lock_guard lock(state_->mutex);
      group& g = state_->groups[k];
      if (!g.counters) g.counters = std::make_shared<log_counters>();
      g.extent = std::move(extent);
      return tracking(state_, k, g.counters);
    } catch (...) {
      return status::backend_error("cannot track the log of " +
                                   std::string(system ? "the system group"
                                                      : "data shard " + std::to_string(shard)) +
                                   ": out of memory");
    }
  }

  // Appends every group's metrics to `out`, system group first, then by shard.
  void read(std::vector<group_metrics>& out) const {
    std::lock_guard lock(state_->mutex);
    for (const auto& [k, g] : state_->groups) {
      const log_counters& c = *g.counters;
      group_metrics m;
      m.system = !k.first;
      m.shard = k.second;
      m.open = static_cast<bool>(g.extent);
      if (m.open) {
        const log_extent e = g.extent();
        m.first_index = e.first;
        m.last_index = e.last;
        m.entries = e.entries;
      }
      auto load = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
      m.appends = load(c.appends);
      m.entries_appended = load(c.entries_appended);
      m.bytes_appended = load(c.bytes_appended);
      m.sync_seconds = c.sync_seconds.read();
      m.entries_synced = load(c.entries_synced);
      m.reads = load(c.reads);
      m.entries_read = load(c.entries_read);
      m.truncations = load(c.truncations);
      m.purges = load(c.purges);
      out.push_back(m);
    }
  }

 private:
  std::shared_ptr<state> state_ = std::make_shared<state>();
};

// A storage's own counters.
class store_counters {
 public:
  void read(column_family cf, std::uint64_t keys, std::uint64_t bytes) noexcept {
    family& f = families_[index_of(cf)];
    f.reads.fetch_add(keys, std::memory_order_relaxed);
    f.bytes_read.fetch_add(bytes, std::memory_order_relaxed);
  }
  void written(column_family cf, std::uint64_t ops, std::uint64_t bytes) noexcept {
    family& f = families_[index_of(cf)];
    f.writes.fetch_add(ops, std::memory_order_relaxed);
    f.bytes_written.fetch_add(bytes, std::memory_order_relaxed);
  }
  void written(const family_tally& t) noexcept {
    for (std::size_t i = 0; i < t.ops.size(); ++i)
      if (t.ops[i] != 0) written(static_cast<column_family>(i), t.ops[i], t.bytes[i]);
  }
  latency_histogram& syncs() noexcept { return syncs_; }
  void group_commit_requested() noexcept {
    group_commit_requests_.fetch_add(1, std::memory_order_relaxed);
  }

  // Fills the counters of `m` (everything but what storage measures).
  void read(storage_metrics& m) const noexcept {
    for (std::size_t i = 0; i < families_.size(); ++i) {
      const family& f = families_[i];
      family_metrics& out = m.families[i];
      out.reads = f.reads.load(std::memory_order_relaxed);
      out.writes = f.writes.load(std::memory_order_relaxed);
      out.bytes_read = f.bytes_read.load(std::memory_order_relaxed);
      out.bytes_written = f.bytes_written.load(std::memory_order_relaxed);
      m.reads += out.reads;
      m.writes += out.writes;
      m.bytes_read += out.bytes_read;
      m.bytes_written += out.bytes_written;
    }
    m.sync_seconds = syncs_.read();
    m.group_commit_requests = group_commit_requests_.load(std::memory_order_relaxed);
  }

 private:
  struct family {
    std::atomic<std::uint64_t> reads{0}, writes{0}, bytes_read{0}, bytes_written{0};
  };
  std::array<family, k_column_family_count> families_;
  latency_histogram syncs_;  // also written by the group-commit thread
  alignas(k_cache_line) std::atomic<std::uint64_t> group_commit_requests_{0};
};

}  // namespace seshat::detail
