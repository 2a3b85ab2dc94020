// seshat/detail/files.hpp: small durable file helpers for the on-disk
// backends. Not part of the public API.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "seshat/status.hpp"

namespace seshat::detail {

inline status errno_status(std::string_view what, const std::filesystem::path& p, int err) {
  return status::io_error(std::string(what) + " " + p.string() + ": " + std::strerror(err));
}

// ---- test seam --------------------------------------------------------------
//
// The file-system steps seshat takes itself, outside any engine's Env: a test
// installs an fs_observer to see them (a fault environment's durability
// model learns of seshat's directory fsyncs this way) or to fail one (its
// errno is returned as if the OS had refused). Not part of the API; with no
// observer installed (outside tests) a step costs one atomic load.
enum class fs_step {
  create_directory,  // mkdir of a directory (create_directories_durably)
  write_file,        // a file written and fsynced (write_file_durably, before its rename)
  rename,            // a rename, of a file or a directory
  sync_directory,    // fsync of a directory (fsync_path)
};

class fs_observer {
 public:
  // Before the step on `p`: 0 to go on, or an errno to fail the step with
  // (the step is then not taken).
  virtual int before(fs_step, const std::filesystem::path&) { return 0; }
  // After the step on `p` succeeded (for a rename, `p` is the new name).
  virtual void after(fs_step, const std::filesystem::path&) {}
  // After `from` was renamed to `to` (`exchanged`: the two swapped).
  virtual void renamed(const std::filesystem::path&, const std::filesystem::path&, bool) {}

 protected:
  ~fs_observer() = default;
};

// The installed observer, or null. A test sets it; it must outlive every
// store that runs meanwhile.
inline std::atomic<fs_observer*> g_fs_observer{nullptr};

inline int before_step(fs_step s, const std::filesystem::path& p) {
  fs_observer* o = g_fs_observer.load(std::memory_order_acquire);
  return o ? o->before(s, p) : 0;
}
inline void after_step(fs_step s, const std::filesystem::path& p) {
  if (fs_observer* o = g_fs_observer.load(std::memory_order_acquire)) o->after(s, p);
}
inline void after_rename(const std::filesystem::path& from, const std::filesystem::path& to,
                         bool exchanged = false) {
  if (fs_observer* o = g_fs_observer.load(std::memory_order_acquire)) {
    o->after(fs_step::rename, to);
    o->renamed(from, to, exchanged);
  }
}

// ---- paths and durable directory operations -----------------------------------

// `dir` without a trailing separator ("a/b/" and "a/b/." are "a/b").
inline std::filesystem::path without_trailing_separator(const std::filesystem::path& dir) {
  std::filesystem::path d = dir.lexically_normal();
  while (!d.empty() && !d.has_filename() && d.has_relative_path()) d = d.parent_path();
  return d;
}

// The directory that holds `p` ("." for a bare name).
inline std::filesystem::path parent_of(const std::filesystem::path& p) {
  std::filesystem::path parent = without_trailing_separator(p).parent_path();
  return parent.empty() ? std::filesystem::path(".") : parent;
}

// fsyncs a file or a directory.
inline status fsync_path(const std::filesystem::path& p, bool directory) {
  if (directory)
    if (int err = before_step(fs_step::sync_directory, p)) return errno_status("fsync", p, err);
  int fd = ::open(p.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) return errno_status("open", p, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return errno_status("fsync", p, err);
  if (directory) after_step(fs_step::sync_directory, p);
  return {};
}

// Creates `dir` and every missing directory above it, each made durable in
// its parent (the parent is fsynced after each creation), so that after a
// crash the path exists as far as it was created, and nothing created is
// lost once this returns. Levels that exist are left alone. Every directory
// seshat creates goes through here (or, for a single directory, through
// create_directory and a parent fsync). Fails with io-error naming the
// path: a level that exists but is not a directory, or the OS's refusal;
// invalid-argument for an empty path.
inline status create_directories_durably(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  if (dir.empty()) return status::invalid_argument("cannot create a directory: the path is empty");
  std::error_code ec;
  std::vector<fs::path> missing;  // deepest first
  for (fs::path p = without_trailing_separator(dir); !p.empty(); p = p.parent_path()) {
    const auto st = fs::status(p, ec);
    if (st.type() == fs::file_type::directory) break;
    if (fs::exists(st))
      return status::io_error("cannot create " + dir.string() + ": " + p.string() +
                              " exists and is not a directory");
    missing.push_back(p);
    if (!p.has_relative_path() || p.parent_path() == p) break;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (int err = before_step(fs_step::create_directory, *it))
      return errno_status("cannot create directory", *it, err);
    if (::mkdir(it->c_str(), 0755) != 0) {
      const int err = errno;
      if (err != EEXIST || !fs::is_directory(*it, ec))  // EEXIST: made meanwhile by another
        return errno_status("cannot create directory", *it, err);
    }
    after_step(fs_step::create_directory, *it);
    SESHAT_RETURN_IF_ERROR(fsync_path(parent_of(*it), true));
  }
  return {};
}

// What tells one directory from another: its device and inode, or nothing
// when `dir` is not a directory (a memory store's name). A directory
// swapped into `dir`'s place by a rename has another identity.
struct directory_identity {
  dev_t device = 0;
  ino_t inode = 0;
  bool operator==(const directory_identity&) const = default;
};
inline std::optional<directory_identity> identity_of(const std::filesystem::path& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return std::nullopt;
  return directory_identity{st.st_dev, st.st_ino};
}

// Deletes `p` and everything under it, then fsyncs its parent so that the
// deletion is durable; nothing to do when `p` does not exist.
inline status remove_all_durably(const std::filesystem::path& p) {
  std::error_code ec;
  const auto removed = std::filesystem::remove_all(p, ec);
  if (ec) return status::io_error("cannot remove " + p.string() + ": " + ec.message());
  if (removed == 0) return {};
  return fsync_path(parent_of(p), true);
}

// Replaces `p` with `contents` so that after a crash `p` holds either its old
// contents or the new ones: write a temporary file, fsync it, rename it over
// `p`, fsync the directory.
inline status write_file_durably(const std::filesystem::path& p, std::string_view contents) {
  std::filesystem::path tmp = p;
  tmp += ".tmp";
  if (int err = before_step(fs_step::write_file, tmp)) return errno_status("create", tmp, err);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno_status("create", tmp, errno);
  std::size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return errno_status("write", tmp, err);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    return errno_status("fsync", tmp, err);
  }
  ::close(fd);
  after_step(fs_step::write_file, tmp);
  if (int err = before_step(fs_step::rename, tmp)) return errno_status("rename", tmp, err);
  if (::rename(tmp.c_str(), p.c_str()) != 0) return errno_status("rename", tmp, errno);
  after_rename(tmp, p);
  return fsync_path(parent_of(p), true);
}

// The whole contents of a small file.
inline result<std::string> read_small_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return status::io_error("cannot read " + p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Bytes taken by the regular files under `dir`.
inline result<std::uint64_t> directory_size(const std::filesystem::path& dir) {
  std::error_code ec;
  std::uint64_t total = 0;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code fec;
    if (it->is_regular_file(fec)) {
      auto size = it->file_size(fec);
      if (!fec) total += size;
    }
  }
  if (ec) return status::io_error("cannot list " + dir.string() + ": " + ec.message());
  return total;
}

}  // namespace seshat::detail
