// seshat/detail/group_sync.hpp: group commit of write-ahead-log syncs.
//
// Callers hand in a callback; a background thread runs one sync for every
// callback that arrived before that sync started, then fires them all with
// its status. While a sync runs, new callbacks gather for the next one, so
// under load many callers share each fsync.
//
// Linger: a burst of requests (a Raft thread appending to many groups one
// after another) should share one sync rather than race it. So the thread
// starts a sync only once no request has arrived for k_idle_gap, or
// k_max_linger after the first pending one, whichever comes first. A lone
// request waits k_idle_gap (50 us, well under one fsync) before its sync.
//
// Thread-safety: request() may be called from many threads at once.
// Callbacks run on the background thread, one after another: they must not
// block for long, and must not call stop().
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "seshat/detail/counters.hpp"
#include "seshat/status.hpp"

namespace seshat::detail {

// What a request's sync counts for its group, once it succeeded: `entries`
// entries synced, and the time since `start` (log_store::append_async's
// metrics, kept beside the callback so that no wrapper is allocated). A
// `start` at the epoch is a backend whose syncs are not timed
// (storage::sync_clock): 0 s is recorded.
struct synced_tally {
  log_counters* counters = nullptr;
  std::uint64_t entries = 0;
  metrics_clock::time_point start{};
};

class group_sync {
 public:
  using callback = std::function<void(status)>;
  using clock = std::chrono::steady_clock;
  static constexpr std::chrono::microseconds k_idle_gap{50};
  static constexpr std::chrono::microseconds k_max_linger{2000};

  // `sync` makes every write that returned before it was called durable.
  explicit group_sync(std::function<status()> sync) : sync_(std::move(sync)) {}
  group_sync(const group_sync&) = delete;
  group_sync& operator=(const group_sync&) = delete;
  ~group_sync() { stop(); }

  using synced_tally = detail::synced_tally;

  // Fires `done` once every write that returned before this call is durable;
  // first counts `tally` when the sync succeeded.
  void request(callback done, synced_tally tally = {}) {
    std::unique_lock lock(mutex_);
    if (stopped_) {
      lock.unlock();
      done(status::backend_error("sync requested after the store was closed"));
      return;
    }
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
    pending_.push_back({std::move(done), tally});
    last_request_ = clock::now();
    if (pending_.size() == 1) wake_.notify_one();
  }

  // Syncs and fires what is pending, then ends the thread. Idempotent.
  void stop() {
    {
      std::lock_guard lock(mutex_);
      if (stopped_) return;
      stopped_ = true;
      wake_.notify_one();
    }
    if (thread_.joinable()) thread_.join();
  }

  // After stop(): accepts requests again (a new thread starts with the next
  // one). REQUIRES: no request() or stop() running at the same time.
  // Does nothing when not stopped.
  void restart() {
    std::lock_guard lock(mutex_);
    if (!stopped_) return;
    // stop() joined the thread; nothing started one since (request() refuses).
    stopped_ = false;
  }

  // How many syncs ran (each served one or more requests).
  std::uint64_t syncs() const {
    std::lock_guard lock(mutex_);
    return syncs_;
  }

 private:
  void run() {
    std::vector<pending_request> batch;
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return stopped_ || !pending_.empty(); });
      if (pending_.empty()) return;  // stopped and drained
      const auto deadline = clock::now() + k_max_linger;
      while (!stopped_) {
        const auto quiet_at = last_request_ + k_idle_gap;
        const auto now = clock::now();
        if (now >= quiet_at || now >= deadline) break;
        lock.unlock();
        std::this_thread::sleep_until(std::min(quiet_at, deadline));
        lock.lock();
      }
      batch.swap(pending_);
      ++syncs_;
      lock.unlock();
      const status s = sync_();
      // One clock read a round: every request of it became durable now.
      const auto synced_at = s.ok() ? metrics_clock::now() : metrics_clock::time_point{};
      for (auto& r : batch) {
        const metrics_clock::time_point untimed{};
        if (s.ok() && r.tally.counters)
          r.tally.counters->synced(r.tally.entries, r.tally.start == untimed
                                                        ? std::chrono::nanoseconds{0}
                                                        : synced_at - r.tally.start);
        r.done(s);
      }
      batch.clear();
      lock.lock();
    }
  }

  struct pending_request {
    callback done;
    synced_tally tally;
  };

  std::function<status()> sync_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<pending_request> pending_;
  std::thread thread_;
  clock::time_point last_request_;
  bool stopped_ = false;
  std::uint64_t syncs_ = 0;
};

}  // namespace seshat::detail
