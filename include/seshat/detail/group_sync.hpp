// seshat/detail/group_sync.hpp: group commit of write-ahead-log syncs.
//
// Callers hand in a callback; a background thread runs one sync for every
// callback that arrived before that sync started, then fires them all with
// its status. While a sync runs, new callbacks gather for the next one, so
// under load many callers share each fsync.
//
// Thread-safety: request() may be called from many threads at once.
// Callbacks run on the background thread, one after another: they must not
// block for long, and must not call stop().
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "seshat/status.hpp"

namespace seshat::detail {

class group_sync {
 public:
  using callback = std::function<void(status)>;

  // `sync` makes every write that returned before it was called durable.
  explicit group_sync(std::function<status()> sync) : sync_(std::move(sync)) {}
  group_sync(const group_sync&) = delete;
  group_sync& operator=(const group_sync&) = delete;
  ~group_sync() { stop(); }

  // Fires `done` once every write that returned before this call is durable.
  void request(callback done) {
    std::unique_lock lock(mutex_);
    if (stopped_) {
      lock.unlock();
      done(status::backend_error("sync requested after the store was closed"));
      return;
    }
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
    pending_.push_back(std::move(done));
    wake_.notify_one();
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

  // How many syncs ran (each served one or more requests).
  std::uint64_t syncs() const {
    std::lock_guard lock(mutex_);
    return syncs_;
  }

 private:
  void run() {
    std::vector<callback> batch;
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return stopped_ || !pending_.empty(); });
      if (pending_.empty()) return;  // stopped and drained
      batch.swap(pending_);
      ++syncs_;
      lock.unlock();
      const status s = sync_();
      for (auto& done : batch) done(s);
      batch.clear();
      lock.lock();
    }
  }

  std::function<status()> sync_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<callback> pending_;
  std::thread thread_;
  bool stopped_ = false;
  std::uint64_t syncs_ = 0;
};

}  // namespace seshat::detail
