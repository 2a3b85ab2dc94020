// fault_plan: which file operations a fault environment makes fail, and how.
//
// A test arms it ("fail the 3rd sync from now with ENOSPC", "fail every
// write from now on with EIO"); the environment asks it before each
// operation and, when it says so, returns the error instead of doing the
// operation (nothing reaches the disk). Counts every fault it injects.
//
// Kinds: write (append, positioned append, truncate; the log engine's
// pwrite, fallocate and write-zeroes), sync (file sync or fsync, fdatasync,
// directory fsync) and create (a file opened for writing: new, reopened for
// appending or in place, hard-linked). Renames, deletes and directory creations
// (metadata) fail only in fail_all mode.
//
// Thread-safety: all members may be called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace seshat::test {

enum class fault_op { write, sync, create, metadata };
enum class fault_error { eio, enospc };

inline const char* name_of(fault_op op) {
  switch (op) {
    case fault_op::write:
      return "write";
    case fault_op::sync:
      return "sync";
    case fault_op::create:
      return "file creation";
    case fault_op::metadata:
      return "rename or delete";
  }
  return "?";
}

// The text of an injected error: names the errno as the OS would, so that
// messages read like real ones ("No space left on device").
inline std::string message_of(fault_error e) {
  return e == fault_error::enospc ? "No space left on device (injected ENOSPC)"
                                  : "Input/output error (injected EIO)";
}

class fault_plan {
 public:
  // The `nth` operation of kind `op` from now (1: the next one) fails with
  // `e`, once. Replaces an earlier fail_nth. REQUIRES: nth >= 1.
  void fail_nth(fault_op op, std::uint64_t nth, fault_error e) {
    std::lock_guard lock(mu_);
    nth_ = armed{op, nth, e};
  }

  // Every write, sync, create, rename and delete fails with `e` until
  // clear(): a disk that went away (or, for a power cut, one whose later
  // writes never land).
  void fail_all(fault_error e) {
    std::lock_guard lock(mu_);
    all_ = e;
  }

  // No more faults (the count stays).
  void clear() {
    std::lock_guard lock(mu_);
    nth_.reset();
    all_.reset();
  }

  // `hook(op, file)` runs before every operation the environment checks,
  // from now on (the process-kill test counts the steps of an open with it,
  // and kills the process at one). Not under the plan's lock.
  void before_each(std::function<void(fault_op, const std::string&)> hook) {
    std::lock_guard lock(mu_);
    hook_ =
        std::make_shared<const std::function<void(fault_op, const std::string&)>>(std::move(hook));
  }

  // The error an operation of kind `op` (on `file`) must fail with, if any
  // (counted).
  std::optional<fault_error> check(fault_op op, const std::string& file = {}) {
    std::shared_ptr<const std::function<void(fault_op, const std::string&)>> hook;
    {
      std::lock_guard lock(mu_);
      hook = hook_;
    }
    if (hook) (*hook)(op, file);
    std::lock_guard lock(mu_);
    if (all_) {
      ++injected_;
      return all_;
    }
    if (nth_ && nth_->op == op && --nth_->left == 0) {
      const fault_error e = nth_->error;
      nth_.reset();
      ++injected_;
      return e;
    }
    return std::nullopt;
  }

  // True while a fail_nth is armed and has not fired.
  bool pending() const {
    std::lock_guard lock(mu_);
    return nth_.has_value();
  }

  // Counts a fault an environment injected on its own (fault_log_fs::fail_next).
  void note_injected() {
    std::lock_guard lock(mu_);
    ++injected_;
  }

  std::uint64_t injected() const {
    std::lock_guard lock(mu_);
    return injected_;
  }

 private:
  struct armed {
    fault_op op;
    std::uint64_t left;
    fault_error error;
  };
  mutable std::mutex mu_;
  std::optional<armed> nth_;
  std::optional<fault_error> all_;
  std::uint64_t injected_ = 0;
  std::shared_ptr<const std::function<void(fault_op, const std::string&)>> hook_;
};

}  // namespace seshat::test
