// seshat/backends/segment/store_lock.hpp: store_lock, the fcntl lock a
// segmented<B> store takes on `<store>/LOCK` while it is open, so that no
// other process opens its log directory meanwhile (B locks only kv/; a
// memory B, nothing on disk). fcntl locks belong to a process, and closing
// any descriptor of the file drops them: so the paths locked here are also
// kept in a process-wide table, and a second open in this process is
// refused by it without touching the file.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>

#include "seshat/detail/already_open.hpp"
#include "seshat/detail/files.hpp"
#include "seshat/status.hpp"

namespace seshat::detail {

class store_lock {
 public:
  store_lock() = default;
  store_lock(const store_lock&) = delete;
  store_lock& operator=(const store_lock&) = delete;
  ~store_lock() { release(); }

  // Takes the lock on `dir`/LOCK (created when missing). io-error "already
  // open in this process" or "in another process" when it is held; io-error
  // naming the file for any other failure.
  status take(const std::filesystem::path& dir) {
    release();
    std::error_code ec;
    const std::filesystem::path canonical = std::filesystem::canonical(dir, ec);
    if (ec) return status::io_error("open: cannot resolve " + dir.string() + ": " + ec.message());
    const std::filesystem::path file = canonical / "LOCK";
    std::lock_guard table(table_mutex());
    if (!locked().insert(file).second)
      return already_open(dir.string(), lock_holder::this_process).with_context("open: ");
    fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      locked().erase(file);
      return errno_status("open: cannot open", file, errno);
    }
    struct flock lock {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    if (::fcntl(fd_, F_SETLK, &lock) == 0) {
      file_ = file;
      return {};
    }
    const int err = errno;
    ::close(fd_);
    fd_ = -1;
    locked().erase(file);
    if (err == EAGAIN || err == EACCES)
      return already_open(dir.string(), lock_holder::another_process).with_context("open: ");
    return errno_status("open: cannot lock", file, err);
  }

  void release() {
    if (fd_ < 0) return;
    std::lock_guard table(table_mutex());
    ::close(fd_);
    fd_ = -1;
    locked().erase(file_);
  }

 private:
  static std::mutex& table_mutex() {
    static std::mutex m;
    return m;
  }
  static std::set<std::filesystem::path>& locked() {
    static std::set<std::filesystem::path> paths;
    return paths;
  }

  int fd_ = -1;
  std::filesystem::path file_;
};

}  // namespace seshat::detail
