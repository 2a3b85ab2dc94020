// seshat/detail/log_compactor.hpp: the background compaction of the log
// ranges a store deleted. Not part of the public API.
//
// Why: a range delete (a purge, a truncation) leaves the deleted entries on
// disk, in write-ahead logs and in table files under tombstones, until the
// engine compacts them away, which for a log that is purged all day may be
// never. So storage reports every log range it deletes (deleted()) and
// every log byte it writes (written()); once a log family took
// `after_bytes` since its last compaction, the next range deleted in it
// schedules the compaction of every range of the family deleted since. A
// thread owned by the compactor runs it (backend::compact_range per
// range, which on RocksDB first flushes the memtables so that the WALs go
// too): the deleting call returns without waiting for it.
//
// Bounded: one compaction runs at a time; ranges scheduled meanwhile are
// merged (overlapping or adjacent ranges become one, and past
// k_max_ranges a family's ranges become their hull), so the work queued is
// at most one pass per family.
//
// Errors: no exception leaves it. The first failed compaction is latched:
// compaction stops until the store is reopened, and wait() returns that
// failure (naming the family and the range). A failed compaction costs only
// disk space: the deletes it follows are done and durable.
//
// Thread-safety: every member may be called from many threads at once,
// except restart(), which REQUIRES that no other member runs. The compact
// function runs on the compactor's thread only.
#pragma once

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "seshat/column_family.hpp"
#include "seshat/detail/printable.hpp"
#include "seshat/status.hpp"

namespace seshat::detail {

class log_compactor {
 public:
  // compact(cf, begin, end) compacts [begin, end) of cf (backend::compact_range).
  using compact_fn = std::function<status(column_family, std::string_view, std::string_view)>;
  static constexpr std::size_t k_max_ranges = 64;

  // `after_bytes`: the log bytes a family takes between two compactions
  // (0: every range deleted is compacted at once, in the background).
  // `store`: the store's path, for errors.
  log_compactor(compact_fn compact, std::uint64_t after_bytes, std::string store)
      : compact_(std::move(compact)), after_bytes_(after_bytes), store_(std::move(store)) {}
  log_compactor(const log_compactor&) = delete;
  log_compactor& operator=(const log_compactor&) = delete;
  ~log_compactor() { stop(); }

  // Counts `bytes` of keys and values written to the log family `cf`.
  void written(column_family cf, std::uint64_t bytes) noexcept {
    std::lock_guard lock(mutex_);
    family_of(cf).written += bytes;
  }

  // Records that [begin, end) of the log family `cf` was deleted, and
  // schedules the family's compaction when it took `after_bytes` since the
  // last one. Never blocks on a compaction.
  void deleted(column_family cf, std::string_view begin, std::string_view end) noexcept {
    try {
      std::lock_guard lock(mutex_);
      if (stopped_ || !failure_.ok()) return;
      family& f = family_of(cf);
      add(f.deleted, std::string(begin), std::string(end));
      if (f.written < after_bytes_) return;
      f.written = 0;
      for (auto& r : f.deleted) add(f.scheduled, std::move(r.first), std::move(r.second));
      f.deleted.clear();
      if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
      wake_.notify_all();
    } catch (...) {
      // Out of memory or no thread: the ranges stay on disk until a later
      // compaction (or the engine's own) takes them. Nothing is lost.
    }
  }

  // Waits until no compaction is scheduled or running, then returns the
  // first failure since open (ok when none).
  status wait() {
    std::unique_lock lock(mutex_);
    idle_.wait(lock, [&] { return !running_ && !any_scheduled(); });
    return failure_;
  }

  // The first failure since open (ok when none).
  status failure() const {
    std::lock_guard lock(mutex_);
    return failure_;
  }

  // Ends the thread: a compaction running finishes, scheduled ones are
  // dropped (space only: the next open's compactions or the engine's take
  // them). Idempotent. Before the backend closes.
  void stop() noexcept {
    std::thread t;
    {
      std::lock_guard lock(mutex_);
      stopped_ = true;
      for (auto& f : families_) f = {};
      t = std::move(thread_);
      wake_.notify_all();
      idle_.notify_all();
    }
    if (t.joinable()) t.join();
  }

  // After stop(), with the backend reopened: compacts again, from nothing
  // recorded and no failure. REQUIRES: no other member running.
  void restart() {
    std::lock_guard lock(mutex_);
    stopped_ = false;
    failure_ = {};
  }

 private:
  using range = std::pair<std::string, std::string>;
  struct family {
    std::uint64_t written = 0;      // log bytes since the last compaction
    std::vector<range> deleted;     // deleted since, not yet scheduled
    std::vector<range> scheduled;   // for the thread
  };

  family& family_of(column_family cf) { return families_[index_of(cf) % families_.size()]; }

  bool any_scheduled() const {
    return std::any_of(families_.begin(), families_.end(),
                       [](const family& f) { return !f.scheduled.empty(); });
  }

  // Adds [b, e) to `to`, merged with a range it overlaps or touches; past
  // k_max_ranges, `to` becomes the one range that covers them all.
  static void add(std::vector<range>& to, std::string b, std::string e) {
    if (e <= b) return;
    for (auto& r : to)
      if (b <= r.second && r.first <= e) {
        r.first = std::min(r.first, b);
        r.second = std::max(r.second, e);
        return;
      }
    to.emplace_back(std::move(b), std::move(e));
    if (to.size() <= k_max_ranges) return;
    range hull = to.front();
    for (const auto& r : to) {
      hull.first = std::min(hull.first, r.first);
      hull.second = std::max(hull.second, r.second);
    }
    to.assign(1, std::move(hull));
  }

  void run() noexcept {
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return stopped_ || any_scheduled(); });
      if (stopped_) return;
      for (std::size_t i = 0; i < families_.size() && !stopped_; ++i) {
        std::vector<range> work;
        work.swap(families_[i].scheduled);
        if (work.empty()) continue;
        running_ = true;
        lock.unlock();
        status s = compact_all(static_cast<column_family>(i), work);
        lock.lock();
        running_ = false;
        if (!s.ok() && failure_.ok()) failure_ = std::move(s);
        if (!failure_.ok())
          for (auto& f : families_) f = {};  // latched: no more compactions
      }
      idle_.notify_all();
    }
  }

  status compact_all(column_family cf, const std::vector<range>& work) noexcept {
    try {
      for (const auto& [b, e] : work) {
        status s = compact_(cf, b, e);
        if (!s.ok())
          return s.with_context("background compaction of the deleted log range ['" +
                                printable(b) + "', '" + printable(e) + "') of column family " +
                                std::string(name_of(cf)) + " of the store at " + store_ + ": ");
      }
      return {};
    } catch (const std::exception& e) {
      return status::backend_error("background compaction of column family " +
                                   std::string(name_of(cf)) + " of the store at " + store_ +
                                   ": " + e.what());
    } catch (...) {
      return status::backend_error("background compaction of column family " +
                                   std::string(name_of(cf)) + " of the store at " + store_ +
                                   ": unknown exception");
    }
  }

  const compact_fn compact_;
  const std::uint64_t after_bytes_;
  const std::string store_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;  // the thread: work or stop
  std::condition_variable idle_;  // wait(): nothing scheduled or running
  std::array<family, k_column_family_count> families_;
  std::thread thread_;
  bool running_ = false;
  bool stopped_ = false;
  status failure_;
};

}  // namespace seshat::detail
