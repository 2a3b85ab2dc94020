// seshat/detail/group_sync.hpp: group commit, one write and one sync per
// round.
//
// Callers hand in a callback (request()), or operations to write with a
// callback (submit()). The operations of every caller gather in one pending
// batch; a background thread runs rounds: a round takes the pending batch
// together with every callback that arrived before it, writes the batch to
// the engine as one synced write (or, when no operation is pending, only
// syncs), then fires those callbacks with that status. While a round runs,
// new requests gather for the next one, so under load many callers share
// each write and each fsync.
//
// Linger: a burst of requests (a Raft thread appending to many groups one
// after another) should share one round rather than race it. So the thread
// starts a round only once no request has arrived for k_idle_gap, or
// k_max_linger after the first pending one, whichever comes first. A lone
// request waits k_idle_gap (50 us, well under one fsync) before its round.
// Bursts of one size (a burst: the requests between two quiet gaps, as a
// Raft thread's appends to its 64 groups each round): once the last two
// bursts had the same size, the round starts as soon as that many requests
// are pending, without waiting for the gap. A burst of another size (the
// groups changed, or a thread was descheduled in the middle of one) waits
// for the gap (a larger one after a first round of the old size), and two
// alike make its size the new trigger: a size seen once does not split the
// next bursts' rounds.
//
// Order: every other write of the store goes through write_after() or
// flush() (or checks idle() first: nothing submitted waits), which write
// the pending batch first, after the round in flight: what was submitted
// reaches the engine before any write issued after submit() returned, and
// one caller's submissions in the order it made them. The callbacks of a
// batch written that way stay for the next round, whose sync makes it
// durable (a synced write syncs every earlier write: backend.hpp).
//
// Generations: the pending batch has a number, one more than the last batch
// taken; submit() returns the one its operations went into, and written()
// is the number of the last batch that is in the engine. Batches are taken
// and written one at a time, in order (write_mutex_), so every operation of
// generation <= written() is in the engine: a log that keeps its pending
// entries readable (storage's read overlay) forgets them by that test, with
// no call back from the writer.
//
// Failure: once a round's write or sync fails, or a write of pending
// operations does, those operations are lost or of unknown durability, and
// with them the order of everything submitted after. So the first failure
// stops group commit until restart() (the store's reopen): the callbacks
// still pending fire with it; submit(), request() and write_after() return it.
//
// Thread-safety: every member except restart() may be called from many
// threads at once. Callbacks run on the background thread, one after
// another, with no lock held: they must not block for long, and must not
// call stop().
#pragma once

#include <atomic>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "seshat/detail/counters.hpp"
#include "seshat/status.hpp"

#if defined(__linux__)
#include <sys/prctl.h>
#endif

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

template <class Batch>
class group_sync {
 public:
  using callback = std::function<void(status)>;
  using clock = std::chrono::steady_clock;
  using synced_tally = detail::synced_tally;
  static constexpr std::chrono::microseconds k_idle_gap{50};
  static constexpr std::chrono::microseconds k_max_linger{2000};

  // `new_batch()` makes an empty engine batch. `write(batch, sync)` writes
  // `batch` atomically, durable before it returns when `sync` (and with it
  // every write that returned before); write(nullptr, true) only syncs
  // every write that returned before it; write(nullptr, false) does nothing.
  group_sync(std::function<Batch()> new_batch, std::function<status(Batch*, bool)> write)
      : new_batch_(std::move(new_batch)), write_(std::move(write)) {}
  group_sync(const group_sync&) = delete;
  group_sync& operator=(const group_sync&) = delete;
  ~group_sync() { stop(); }

  // Fires `done` once every write that returned before this call, and every
  // operation submitted before it, is durable; first counts `tally` when the
  // round succeeded. Refused (done fires at once with the error) after
  // stop() and after a failure (see above).
  void request(callback done, synced_tally tally = {}) {
    std::unique_lock lock(mutex_);
    status refused = refusal_locked();
    if (!refused.ok()) {
      lock.unlock();
      done(refused);
      return;
    }
    enqueue_locked(std::move(done), tally);
  }

  // Adds the operations `add(batch)` puts into the pending batch (`bytes`:
  // about how many bytes they hold), to be written with the next round or
  // write_after(), and `done`, fired (after counting `tally`) once they are
  // durable. Returns the generation they went into. Refused after stop() or
  // a failure: then nothing is added, `done` is left as it is, and the
  // error is returned.
  template <class Add>
  result<std::uint64_t> submit(Add&& add, std::size_t bytes, callback& done,
                               synced_tally tally = {}) {
    std::unique_lock lock(mutex_);
    SESHAT_RETURN_IF_ERROR(refusal_locked());
    if (!batch_) {
      if (spare_) batch_.swap(spare_);  // the last batch written, emptied
      else batch_.emplace(new_batch_());
    }
    add(*batch_);
    pending_bytes_.store(pending_bytes_.load(std::memory_order_relaxed) + bytes,
                         std::memory_order_relaxed);
    // Before the caller publishes what it submitted (a log's last index):
    // whoever sees that sees !idle() too.
    submitted_.store(staged_, std::memory_order_release);
    enqueue_locked(std::move(done), tally);
    return staged_;
  }

  // The generation of the last batch in the engine: every operation
  // submit() put in a generation <= this is in it.
  std::uint64_t written() const { return written_.load(std::memory_order_acquire); }
  // True when every operation submitted so far is in the engine.
  bool idle() const {
    return written_.load(std::memory_order_acquire) >= submitted_.load(std::memory_order_acquire);
  }
  // True once a failure stopped group commit (see above).
  bool failed() const { return failed_flag_.load(std::memory_order_acquire); }
  // Bytes submitted and not yet taken by a round or a write_after().
  std::size_t pending_bytes() const { return pending_bytes_.load(std::memory_order_relaxed); }

  // Writes the pending batch (unsynced), after the round in flight, then
  // returns `write_own()`, which writes the caller's own operations: they
  // reach the engine after everything submitted before. The pending batch's
  // callbacks stay for the next round. Returns the failure that stopped
  // group commit, if one did, writing nothing; a failed write of the
  // pending batch stops it.
  template <class WriteOwn>
  status write_after(WriteOwn&& write_own) {
    std::lock_guard write(write_mutex_);
    SESHAT_RETURN_IF_ERROR(write_pending_locked(false));
    return write_own();
  }

  // Writes the pending batch, after the round in flight; synced when `sync`
  // (then every write that returned before is durable too, even with
  // nothing pending). Its callbacks stay for the next round. Fails as
  // write_after().
  status flush(bool sync) {
    std::lock_guard write(write_mutex_);
    return write_pending_locked(sync);
  }

  // Runs a last round for what is pending, then ends the thread. Idempotent.
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
  // one) and forgets a failure, and with it the operations it lost.
  // REQUIRES: no other call running at the same time. Does nothing when not
  // stopped.
  void restart() {
    std::lock_guard lock(mutex_);
    if (!stopped_) return;
    // stop() joined the thread; nothing started one since (request() refuses).
    stopped_ = false;
    failed_ = status();
    failed_flag_.store(false, std::memory_order_release);
    if (batch_) ++staged_;
    batch_.reset();
    spare_.reset();
    pending_bytes_.store(0, std::memory_order_relaxed);
    written_.store(submitted_.load(std::memory_order_relaxed), std::memory_order_release);
  }

  // How many rounds ran (each served one or more requests).
  std::uint64_t syncs() const {
    std::lock_guard lock(mutex_);
    return syncs_;
  }

 private:
  struct pending_request {
    callback done;
    synced_tally tally;
  };

  // REQUIRES: mutex_ held.
  status refusal_locked() const {
    if (stopped_) return status::backend_error("sync requested after the store was closed");
    return failed_;
  }

  // REQUIRES: mutex_ held.
  void enqueue_locked(callback&& done, synced_tally tally) {
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
    pending_.push_back({std::move(done), tally});
    const auto now = clock::now();
    if (now - last_request_ >= k_idle_gap) burst_requests_ = 0;  // a quiet gap: a new burst
    ++burst_requests_;
    last_request_ = now;
    if (pending_.size() == 1 || pending_.size() == burst_) wake_.notify_one();
  }

  // Moves the pending batch, if any, into `out` and returns its generation.
  // REQUIRES: mutex_ and write_mutex_ held.
  std::uint64_t take_locked(std::optional<Batch>& out) {
    if (!batch_) return 0;
    out.swap(batch_);
    pending_bytes_.store(0, std::memory_order_relaxed);
    return staged_++;
  }

  // Takes the pending batch and writes it (with nothing pending: syncs when
  // `sync`). REQUIRES: write_mutex_ held, mutex_ not.
  status write_pending_locked(bool sync) {
    std::optional<Batch> pending;
    std::uint64_t generation = 0;
    {
      std::lock_guard lock(mutex_);
      SESHAT_RETURN_IF_ERROR(failed_);
      generation = take_locked(pending);
    }
    if (!pending) return sync ? write_(nullptr, true) : status{};
    status s = write_(&*pending, sync);
    recycle(pending);
    if (!s.ok()) return fail(s);
    written_.store(generation, std::memory_order_release);
    return s;
  }

  // Records the first failure; returns `s`.
  status fail(status s) {
    std::lock_guard lock(mutex_);
    if (failed_.ok()) {
      failed_ = s;
      failed_flag_.store(true, std::memory_order_release);
    }
    return s;
  }

  void run() {
#if defined(__linux__)
    // The linger is a few tens of microseconds: without this, Linux may
    // oversleep it by its default timer slack (50 us) on every round.
    ::prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
#endif
    std::vector<pending_request> round;
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return stopped_ || !pending_.empty(); });
      if (pending_.empty()) return;  // stopped and drained
      const auto deadline = clock::now() + k_max_linger;
      while (!stopped_ && pending_.size() < burst_) {
        const auto quiet_at = last_request_ + k_idle_gap;
        const auto now = clock::now();
        if (now >= quiet_at) {  // the burst ended
          burst_ = burst_requests_ == last_burst_ ? last_burst_ : k_no_burst;
          last_burst_ = burst_requests_;
          break;
        }
        if (now >= deadline) break;
        // enqueue_locked wakes it early once the burst is complete.
        wake_.wait_until(lock, std::min(quiet_at, deadline));
      }
      lock.unlock();
      const status s = run_round(round);
      // One clock read a round: every request of it became durable now.
      const auto synced_at = s.ok() ? metrics_clock::now() : metrics_clock::time_point{};
      for (auto& r : round) {
        const metrics_clock::time_point untimed{};
        if (s.ok() && r.tally.counters)
          r.tally.counters->synced(r.tally.entries, r.tally.start == untimed
                                                        ? std::chrono::nanoseconds{0}
                                                        : synced_at - r.tally.start);
        r.done(s);
      }
      round.clear();
      lock.lock();
    }
  }

  // Takes the callbacks and the batch pending now, together, and writes the
  // batch synced (or only syncs). Every callback taken is for an operation
  // of this batch or of one written before (by write_after), which this
  // round's sync makes durable.
  status run_round(std::vector<pending_request>& round) {
    std::lock_guard write(write_mutex_);
    std::optional<Batch> batch;
    std::uint64_t generation = 0;
    {
      std::lock_guard lock(mutex_);
      round.swap(pending_);
      ++syncs_;
      SESHAT_RETURN_IF_ERROR(failed_);
      generation = take_locked(batch);
    }
    const bool wrote = batch.has_value();
    status s = write_(wrote ? &*batch : nullptr, true);
    recycle(batch);
    if (!s.ok()) return fail(s);
    if (wrote) written_.store(generation, std::memory_order_release);
    return s;
  }

  // Keeps a written batch, emptied, for the next submit() (its buffer
  // stays: a round's batch does not grow from nothing again), unless one is
  // kept already or it held more than k_max_spare_bytes.
  void recycle(std::optional<Batch>& written) {
    if constexpr (requires(Batch& b) {
                    b.clear();
                    { b.byte_size() } -> std::convertible_to<std::size_t>;
                  }) {
      if (!written || written->byte_size() > k_max_spare_bytes) return;
      written->clear();
      std::lock_guard lock(mutex_);
      if (!spare_) spare_.swap(written);
    }
  }
  static constexpr std::size_t k_max_spare_bytes = std::size_t{4} << 20;

  const std::function<Batch()> new_batch_;
  const std::function<status(Batch*, bool)> write_;
  // Held while a batch is taken and written, and while write_after's own
  // batch is written: batches reach the engine in generation order, each
  // before any write issued after it was submitted. Taken before mutex_.
  std::mutex write_mutex_;
  mutable std::mutex mutex_;  // guards what follows
  std::condition_variable wake_;
  std::vector<pending_request> pending_;  // fire at the next round's end
  std::optional<Batch> batch_;            // the operations submitted since the last take
  std::optional<Batch> spare_;            // empty, for the next batch_ (recycle)
  std::uint64_t staged_ = 1;              // batch_'s generation
  status failed_;                         // the first failure (see above)
  std::thread thread_;
  clock::time_point last_request_;
  // Requests since the last quiet gap; how many the last burst a quiet gap
  // ended had; the size that starts a round early (the last two bursts'),
  // or k_no_burst.
  static constexpr std::size_t k_no_burst = std::numeric_limits<std::size_t>::max();
  std::size_t burst_requests_ = 0;
  std::size_t last_burst_ = 0;
  std::size_t burst_ = k_no_burst;
  bool stopped_ = false;
  std::uint64_t syncs_ = 0;
  std::atomic<std::uint64_t> submitted_{0};  // the generation of the last submit
  std::atomic<std::uint64_t> written_{0};    // the last generation in the engine
  std::atomic<bool> failed_flag_{false};     // failed_ is set
  std::atomic<std::size_t> pending_bytes_{0};
};

}  // namespace seshat::detail
