// seshat/detail/already_open.hpp: the error of opening a store that is open
// already, said the same way by every backend. RocksDB and LevelDB report a
// held LOCK file in words of their own ("lock hold by current process",
// "Resource temporarily unavailable"); seshat says who holds it. Not part of
// the public API.
#pragma once

#include <string>
#include <string_view>

#include "seshat/status.hpp"

namespace seshat::detail {

enum class lock_holder {
  none,             // the engine's error is not about a held lock
  this_process,     // the engine's in-process lock table holds the store
  another_process,  // the fcntl lock on the store's LOCK file is held elsewhere
};

// Who holds the store, from an engine's error when it could not take the
// store's LOCK file. `message` is the engine's status text.
inline lock_holder lock_holder_of(std::string_view message) {
  auto has = [&](std::string_view s) { return message.find(s) != std::string_view::npos; };
  // RocksDB 7.8 (env/io_posix.cc) and LevelDB 1.23 (util/env_posix.cc).
  if (has("lock hold by current process") || has("already held by process"))
    return lock_holder::this_process;
  // fcntl(F_SETLK) refused: EAGAIN or EACCES, both "held by another process".
  const bool locking = has("While lock file") || (has("lock ") && has("/LOCK"));
  if (locking && (has("Resource temporarily unavailable") || has("Permission denied")))
    return lock_holder::another_process;
  return lock_holder::none;
}

// io-error: "the store at P is already open in this process ...".
// REQUIRES: holder != lock_holder::none.
inline status already_open(const std::string& path, lock_holder holder) {
  if (holder == lock_holder::this_process)
    return status::io_error("the store at " + path +
                            " is already open in this process: use the open storage (one per "
                            "directory), or close it first");
  return status::io_error("the store at " + path +
                          " is already open in another process (it holds the store's LOCK "
                          "file): stop that process, or open another directory");
}

}  // namespace seshat::detail
