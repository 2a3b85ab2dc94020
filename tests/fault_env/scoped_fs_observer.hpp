// scoped_fs_observer: a test's detail::fs_observer (the seam of
// seshat/detail/files.hpp through which seshat's own file-system steps are
// seen or failed), installed as the process's observer while it lives. Every
// step it does not handle goes on to the observer it replaced, so that
// observers nest (a test's fault injector over a fault environment's feed of
// the durability model); the destructor puts that one back.
//
// Ownership: on the stack of the test, or owned by an object that outlives
// every store that runs meanwhile. Install and remove them in LIFO order.
#pragma once

#include <filesystem>

#include "seshat/detail/files.hpp"

namespace seshat::test {

class scoped_fs_observer : public detail::fs_observer {
 public:
  scoped_fs_observer() : previous_(detail::g_fs_observer.exchange(this)) {}
  ~scoped_fs_observer() { detail::g_fs_observer.store(previous_); }
  scoped_fs_observer(const scoped_fs_observer&) = delete;
  scoped_fs_observer& operator=(const scoped_fs_observer&) = delete;

  int before(detail::fs_step step, const std::filesystem::path& p) override {
    return previous_ != nullptr ? previous_->before(step, p) : 0;
  }
  void after(detail::fs_step step, const std::filesystem::path& p) override {
    if (previous_ != nullptr) previous_->after(step, p);
  }
  void renamed(const std::filesystem::path& from, const std::filesystem::path& to,
               bool exchanged) override {
    if (previous_ != nullptr) previous_->renamed(from, to, exchanged);
  }

 private:
  detail::fs_observer* const previous_;
};

}  // namespace seshat::test
