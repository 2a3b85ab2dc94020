// seshat/detail/write_latch.hpp: what stops an open store after its first
// failed write or sync.
//
// After a write, a sync or a directory sync of a store fails with an I/O
// error, what reached the disk is unknown, and trying again can claim
// durability for data that is gone: Linux drops the dirty pages whose
// write-back failed and marks them clean, so a later fsync of the same file,
// even on a new descriptor, succeeds without them (PostgreSQL's
// "fsyncgate", 2018); and the engines misbehave on a log whose write failed
// (see the backends). So a backend latches the first such failure: every
// later write and sync of that open store fails with it, naming it, until
// the store is reopened (recovery then reads what really is on disk). Reads
// go on. Each backend keeps one write_latch per open store and calls
// refusal() before each write or sync, note() on each result.
//
// Thread-safety: every member may be called from any thread. latched() is
// one atomic load, cheap enough for every write.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "seshat/status.hpp"

namespace seshat::detail {

class write_latch {
 public:
  // True once a failure was noted.
  bool latched() const noexcept { return latched_.load(std::memory_order_acquire); }

  // io-error "<context>: refused, an earlier write failed (<the first
  // failure's message>); reopen the store" once latched, else ok.
  // `context` names the refused operation and the store.
  status refusal(std::string_view context) const {
    if (!latched()) return {};  // first_ is set before latched_, and never again
    return status::io_error(std::string(context) + ": refused, an earlier write failed (" + first_ +
                            "); reopen the store");
  }

  // Returns `s` (the result of a write or sync); latches it when it is the
  // first io-error noted.
  status note(status s) {
    if (s.is(errc::io_error)) {
      std::lock_guard lock(mu_);
      if (!latched_.load(std::memory_order_relaxed)) {
        first_ = s.message();
        latched_.store(true, std::memory_order_release);
      }
    }
    return s;
  }

 private:
  std::mutex mu_;      // taken by the writers of first_
  std::string first_;  // the first failure's message; set once
  std::atomic<bool> latched_{false};
};

}  // namespace seshat::detail
