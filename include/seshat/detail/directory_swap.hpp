// seshat/detail/directory_swap.hpp: replacing a whole store directory
// atomically, for the on-disk backends' install_checkpoint (see
// seshat/backend.hpp). Not part of the public API. Linux only.
//
// install_directory(checkpoint, store) works in three steps:
//
//   1. Build `<store>.restore`, a sibling of the store: the checkpoint's
//      SESHAT_STORE marker first (fsynced with the directory, so that a
//      partial copy is recognisable as seshat's), then every other file,
//      hard-linked when the caller says the file is immutable and the file
//      system allows it, copied otherwise. Every file and directory is
//      fsynced.
//   2. Swap `<store>` and `<store>.restore` with one renameat2(RENAME_EXCHANGE)
//      (or move `<store>.restore` to `<store>` with RENAME_NOREPLACE when
//      there is no store yet), then fsync the parent directory.
//   3. Delete `<store>.restore`, which now holds the old store, its marker
//      last.
//
// Crash semantics: the exchange is a single atomic file-system operation
// and everything it publishes was fsynced before it, so after a crash
// `<store>` holds either the old store or the new one, whole. What may be
// left is `<store>.restore` (a partial copy, or the old store):
// remove_restore_leftover(), which the on-disk backends call at the start
// of open(), deletes it.
//
// A file system that refuses RENAME_EXCHANGE (some network and FUSE file
// systems) gets an io-error that says so, with nothing changed.
//
// Thread-safety: free functions; the caller guarantees that nothing else
// uses the store directory (it is closed, and nobody opens it) meanwhile.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "seshat/detail/files.hpp"
#include "seshat/detail/store_marker.hpp"
#include "seshat/status.hpp"

namespace seshat::detail {

inline constexpr std::string_view k_restore_suffix = ".restore";

// `dir` + `suffix` as a sibling of `dir`: ("a/store/", ".restore") -> "a/store.restore".
inline std::filesystem::path sibling_path(const std::filesystem::path& dir, std::string_view suffix) {
  std::filesystem::path d = without_trailing_separator(dir);
  std::filesystem::path name = d.filename();
  name += std::string(suffix);
  return d.parent_path() / name;
}

// Where install_directory builds the new contents of `store_dir`.
inline std::filesystem::path restore_temp_path(const std::filesystem::path& store_dir) {
  return sibling_path(store_dir, k_restore_suffix);
}

// True when `inner` is `outer` or lies under it (after resolving symlinks
// and ".." as far as the paths exist).
inline bool is_within(const std::filesystem::path& inner, const std::filesystem::path& outer) {
  std::error_code ec;
  const auto a = std::filesystem::weakly_canonical(inner, ec);
  if (ec) return false;
  const auto b = std::filesystem::weakly_canonical(outer, ec);
  if (ec) return false;
  auto ai = a.begin();
  for (auto bi = b.begin(); bi != b.end(); ++bi, ++ai) {
    if (bi->empty()) continue;  // a trailing separator
    if (ai == a.end() || *ai != *bi) return false;
  }
  return true;
}

// renameat2(2) on two paths relative to the working directory.
inline int renameat2_paths(const std::filesystem::path& from, const std::filesystem::path& to,
                           unsigned flags) {
#if defined(RENAME_EXCHANGE)
  return ::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags);
#elif defined(SYS_renameat2)
  return static_cast<int>(::syscall(SYS_renameat2, AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), flags));
#else
  (void)from, (void)to, (void)flags;
  errno = ENOSYS;
  return -1;
#endif
}

inline constexpr unsigned k_rename_noreplace = 1u << 0;  // RENAME_NOREPLACE
inline constexpr unsigned k_rename_exchange = 1u << 1;   // RENAME_EXCHANGE

inline bool rename_flags_unsupported(int err) {
  return err == EINVAL || err == ENOSYS || err == EOPNOTSUPP || err == ENOTSUP;
}

// Swaps the directory entries `a` and `b` atomically (both must exist).
inline status exchange_directories(const std::filesystem::path& a, const std::filesystem::path& b) {
  if (int err = before_step(fs_step::rename, a))
    return errno_status("renameat2(RENAME_EXCHANGE) " + a.string() + " with", b, err);
  if (renameat2_paths(a, b, k_rename_exchange) == 0) {
    after_rename(a, b, true);
    return {};
  }
  const int err = errno;
  if (rename_flags_unsupported(err))
    return status::io_error("cannot swap " + a.string() + " and " + b.string() +
                            " atomically: the file system does not support renameat2 with "
                            "RENAME_EXCHANGE (" + std::strerror(err) + ")");
  return errno_status("renameat2(RENAME_EXCHANGE) " + a.string() + " with", b, err);
}

// Renames `from` to `to`, failing if `to` exists.
inline status rename_no_replace(const std::filesystem::path& from, const std::filesystem::path& to) {
  if (int err = before_step(fs_step::rename, from))
    return errno_status("rename " + from.string() + " to", to, err);
  if (renameat2_paths(from, to, k_rename_noreplace) == 0) {
    after_rename(from, to);
    return {};
  }
  const int err = errno;
  if (rename_flags_unsupported(err)) {
    // No RENAME_NOREPLACE here: rename(2) refuses a non-empty target, and an
    // empty one is checked for just before.
    std::error_code ec;
    if (std::filesystem::exists(to, ec))
      return status::io_error("cannot rename " + from.string() + " to " + to.string() +
                              ": the target exists");
    if (::rename(from.c_str(), to.c_str()) == 0) {
      after_rename(from, to);
      return {};
    }
    return errno_status("rename " + from.string() + " to", to, errno);
  }
  return errno_status("rename " + from.string() + " to", to, err);
}

// Copies the regular file `from` to the new file `to` and fsyncs it.
inline status copy_file_durably(const std::filesystem::path& from, const std::filesystem::path& to) {
  const int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return errno_status("open", from, errno);
  const int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (out < 0) {
    const int err = errno;
    ::close(in);
    return errno_status("create", to, err);
  }
  status result;
  std::vector<char> buffer(std::size_t{1} << 20);
  for (;;) {
    const ssize_t n = ::read(in, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      result = errno_status("read", from, errno);
      break;
    }
    if (n == 0) break;
    std::size_t done = 0;
    while (done < static_cast<std::size_t>(n)) {
      const ssize_t w = ::write(out, buffer.data() + done, static_cast<std::size_t>(n) - done);
      if (w < 0) {
        if (errno == EINTR) continue;
        result = errno_status("write", to, errno);
        break;
      }
      done += static_cast<std::size_t>(w);
    }
    if (!result.ok()) break;
  }
  if (result.ok() && ::fsync(out) != 0) result = errno_status("fsync", to, errno);
  ::close(in);
  ::close(out);
  return result;
}

// Hard-links `from` as `to` when `may_link` and the file system allows it
// (same file system, links supported), copies it otherwise; then fsyncs `to`.
// Sets *linked to what was done.
inline status link_or_copy(const std::filesystem::path& from, const std::filesystem::path& to,
                           bool may_link, bool* linked = nullptr) {
  if (linked) *linked = false;
  if (may_link && ::link(from.c_str(), to.c_str()) == 0) {
    if (linked) *linked = true;
    return fsync_path(to, false);
  }
  return copy_file_durably(from, to);
}

// Deletes the directory `dir` and everything in it, its SESHAT_STORE marker
// last: killed half-way, it leaves a directory that still has its marker
// (or is empty), which remove_restore_leftover() recognises as seshat's.
inline std::error_code remove_marked_tree(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(dir, ec))) return {};
  const fs::path marker = dir / k_marker_file;
  std::vector<fs::path> children;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
    if (it->path() != marker) children.push_back(it->path());
  if (ec) return ec;
  for (const auto& child : children) {
    fs::remove_all(child, ec);
    if (ec) return ec;
  }
  fs::remove(marker, ec);
  if (ec) return ec;
  fs::remove(dir, ec);
  return ec;
}

// True when `tmp` is a directory that install_directory may have left: empty,
// or holding a SESHAT_STORE marker.
inline bool is_restore_leftover(const std::filesystem::path& tmp) {
  std::error_code ec;
  const auto st = std::filesystem::symlink_status(tmp, ec);
  if (ec || st.type() != std::filesystem::file_type::directory) return false;
  return std::filesystem::is_empty(tmp, ec) || std::filesystem::exists(tmp / k_marker_file, ec);
}

// Deletes `<store_dir>.restore` when a crashed install_directory left it:
// a directory that is empty or holds a SESHAT_STORE marker (a partial copy,
// or the old store after the swap). Anything else of that name is not
// seshat's and is left alone.

inline status remove_restore_leftover(const std::filesystem::path& store_dir) {
  const std::filesystem::path tmp = restore_temp_path(store_dir);
  if (!is_restore_leftover(tmp)) return {};
  std::error_code ec = remove_marked_tree(tmp);
  if (ec)
    return status::io_error("cannot remove " + tmp.string() +
                            " (left by an interrupted restore): " + ec.message());
  return fsync_path(parent_of(tmp), true);
}

// Replaces the contents of `store_dir` with those of `checkpoint_dir` (see
// the top of this file). `may_link(name)` says whether a file of that name
// is never modified in place by the engine, so that sharing it by a hard
// link between the checkpoint and the store is safe. Both directories must
// be on one file system for links; otherwise every file is copied.
// REQUIRES: `checkpoint_dir` holds a SESHAT_STORE marker; nothing uses
// `store_dir` meanwhile. On failure before the swap, `store_dir` is
// unchanged and the partial copy is removed. After the swap only the
// parent's fsync can fail: its error is returned with the new contents in
// place (not yet durable). A failure to delete the old contents is ignored:
// the next open() removes them.
template <class MayLink>
status install_directory(const std::filesystem::path& checkpoint_dir,
                         const std::filesystem::path& store_dir, MayLink&& may_link) {
  namespace fs = std::filesystem;
  const fs::path store = without_trailing_separator(store_dir);
  const fs::path tmp = restore_temp_path(store);
  const fs::path parent = parent_of(store);
  const std::string context =
      "install checkpoint " + checkpoint_dir.string() + " into " + store.string() + ": ";
  std::error_code ec;

  if (is_within(checkpoint_dir, store))
    return status::invalid_argument(context + "the checkpoint lies inside the store directory, "
                                              "which the install replaces");
  if (!fs::is_regular_file(checkpoint_dir / k_marker_file, ec))
    return status::invalid_argument(context + "the checkpoint has no " +
                                    std::string(k_marker_file) + " marker");

  // A leftover from an earlier, interrupted install; anything else there is
  // not ours to delete.
  if (fs::exists(fs::symlink_status(tmp, ec)) && !is_restore_leftover(tmp))
    return status::invalid_argument(context + tmp.string() +
                                    " exists and is not a leftover of seshat's; move it away");
  ec = remove_marked_tree(tmp);
  if (ec) return status::io_error(context + "cannot remove " + tmp.string() + ": " + ec.message());

  auto fail = [&](const status& s) {
    if (!remove_marked_tree(tmp)) fsync_path(parent, true).ignore();
    return s.with_context(context, " (the store is unchanged)");
  };

  if (!fs::create_directory(tmp, ec) || ec)
    return fail(status::io_error("cannot create " + tmp.string() + ": " +
                                 (ec ? ec.message() : std::string("it exists"))));
  // The marker first, durably: from here a partial copy is recognisably ours.
  if (status s = copy_file_durably(checkpoint_dir / k_marker_file, tmp / k_marker_file); !s.ok())
    return fail(s);
  if (status s = fsync_path(tmp, true); !s.ok()) return fail(s);
  if (status s = fsync_path(parent, true); !s.ok()) return fail(s);

  // Everything else. Directories are made before the files in them.
  std::vector<fs::path> dirs{tmp};
  for (auto it = fs::recursive_directory_iterator(checkpoint_dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const fs::path rel = it->path().lexically_relative(checkpoint_dir);
    const fs::path target = tmp / rel;
    const auto type = it->symlink_status(ec).type();
    if (ec) break;
    if (type == fs::file_type::directory) {
      fs::create_directory(target, ec);
      if (ec) break;
      dirs.push_back(target);
    } else if (type == fs::file_type::regular) {
      if (rel == fs::path(k_marker_file)) continue;
      if (status s = link_or_copy(it->path(), target, may_link(rel.filename().string()));
          !s.ok())
        return fail(s);
    } else {
      return fail(status::invalid_argument(it->path().string() +
                                           " is neither a regular file nor a directory"));
    }
  }
  if (ec) return fail(status::io_error("cannot copy " + checkpoint_dir.string() + ": " + ec.message()));
  for (auto d = dirs.rbegin(); d != dirs.rend(); ++d)
    if (status s = fsync_path(*d, true); !s.ok()) return fail(s);

  // The switch.
  const bool had_store = fs::exists(store, ec);
  if (ec) return fail(status::io_error("cannot stat " + store.string() + ": " + ec.message()));
  if (status s = had_store ? exchange_directories(tmp, store) : rename_no_replace(tmp, store);
      !s.ok())
    return fail(s);
  if (status s = fsync_path(parent, true); !s.ok())
    return s.with_context(context + "the new contents are in place, but ");

  // The old contents, now at `tmp`.
  if (!remove_marked_tree(tmp)) fsync_path(parent, true).ignore();
  return {};
}

}  // namespace seshat::detail
