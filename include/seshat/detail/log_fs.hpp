// seshat/detail/log_fs.hpp: the log engine's small file-system interface
// (docs/log-engine.md section 11). Every file and directory operation of the
// engine goes through a log_fs, so that tests can give it a file system of
// their own: memory_log_fs here (a map of byte vectors, for unit tests and
// the fuzz target), the fault version in tests/fault_env/.
//
//   open(path, {create_exclusive, direct, read_only}) -> file
//   pwrite(file, offset, pieces, {dsync})   whole, or an error
//   pread(file, offset, buffer) -> bytes read (fewer only at the end of the file)
//   datasync(file)  allocate(file, size)  write_zeroes(file, offset, length) -> done or not supported
//   size(file)  link_count(file)  close(file)
//   create_directory(path)  rename(from, to)  replace(from, to)  link(from, to)  unlink(path)
//   sync_directory(path)  list(directory)
//   probe(directory) -> what the file system takes: O_DIRECT and its block, RWF_DSYNC, write-zeroes
//
// Errors: every failure is io-error naming the call, the path (and the byte
// offset and length, for reads and writes) and the OS's error by text and
// name ("pwritev2 /d/seg-1.log at byte 4096, 512 bytes: Invalid argument
// (EINVAL)"); os_error() gives its number to the callers that act on one
// (EINVAL from an O_DIRECT write: nothing was written; ENOSPC).
//
// Thread-safety: posix_log_fs holds no state; memory_log_fs takes one mutex
// per call. A file handle may be used from several threads at once for
// reads and writes of distinct ranges; close it once, after every other use.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "seshat/status.hpp"

#ifndef FALLOC_FL_WRITE_ZEROES
#define FALLOC_FL_WRITE_ZEROES 0x80  // Linux 6.17 (uapi/linux/falloc.h)
#endif

namespace seshat::detail {

// A status from a log_fs call, with the OS's error number when the OS
// refused the call (0 otherwise, and on success).
class [[nodiscard]] fs_status : public status {
 public:
  fs_status() = default;
  fs_status(status s, int os_error = 0) : status(std::move(s)), os_error_(os_error) {}  // NOLINT
  int os_error() const noexcept { return os_error_; }

 private:
  int os_error_ = 0;
};

// A T from a log_fs call, or its failure with the OS's error number.
template <class T>
class [[nodiscard]] fs_result : public result<T> {
 public:
  fs_result(T value) : result<T>(std::move(value)) {}  // NOLINT: implicit by design
  fs_result(fs_status s) : result<T>(static_cast<status&>(s)), os_error_(s.os_error()) {}  // NOLINT
  int os_error() const noexcept { return os_error_; }

 private:
  int os_error_ = 0;
};

// "EINVAL" for EINVAL, or "errno 22" where the C library has no name.
inline std::string errno_name(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  if (const char* name = ::strerrorname_np(err)) return name;
#endif
  return "errno " + std::to_string(err);
}

// The io-error of `call` on `path` (with `where`, e.g. " at byte 4096, 512
// bytes") refused by the OS with `err`.
inline fs_status os_failure(std::string_view call, const std::filesystem::path& path, int err,
                            std::string_view where = {}) {
  return {status::io_error(std::string(call) + " " + path.string() + std::string(where) + ": " +
                           std::strerror(err) + " (" + errno_name(err) + ")"),
          err};
}

inline std::string byte_range(std::uint64_t offset, std::uint64_t length) {
  return " at byte " + std::to_string(offset) + ", " + std::to_string(length) + " bytes";
}

// An open file of a log_fs. Copyable handle; the log_fs owns what it names.
struct log_file {
  int fd = -1;  // posix_log_fs: the descriptor; memory_log_fs: its handle number
  std::filesystem::path path;
  bool direct = false;
  bool read_only = false;
};

struct open_flags {
  bool create_exclusive = false;  // create the file; refused (EEXIST) when it exists
  bool direct = false;            // O_DIRECT: aligned offsets, lengths and buffers
  bool read_only = false;
};

struct write_flags {
  bool dsync = false;  // RWF_DSYNC: durable on return (this write's range, and the file's size)
};

// What probe() found a directory's file system to take.
struct probe_result {
  std::uint32_t direct_block = 0;  // the smallest O_DIRECT write alignment taken: 512, 4096; 0 none
  bool dsync = false;              // pwritev2 with RWF_DSYNC
  bool write_zeroes = false;       // fallocate(FALLOC_FL_WRITE_ZEROES)
  std::string notes;               // why each "no", for the log ("O_DIRECT: open refused (EINVAL)")
};

class log_fs {
 public:
  virtual ~log_fs() = default;

  // Opens `path` for reading and writing (read_only: reading), creating it
  // with create_exclusive.
  virtual fs_result<log_file> open(const std::filesystem::path& path, open_flags flags) = 0;
  // Writes the concatenation of `pieces` at `offset`, whole or not at all
  // reported (a short write is continued; a failure may leave part written).
  virtual fs_status pwrite(const log_file& f, std::uint64_t offset,
                           std::span<const std::string_view> pieces, write_flags flags) = 0;
  // Reads into `buffer` from `offset`; fewer bytes only at the end of the file.
  virtual fs_result<std::size_t> pread(const log_file& f, std::uint64_t offset,
                                       std::span<char> buffer) = 0;
  virtual fs_status datasync(const log_file& f) = 0;
  // Makes the file at least `size` bytes with its blocks allocated
  // (fallocate mode 0: unwritten extents, reading as zeros).
  virtual fs_status allocate(const log_file& f, std::uint64_t size) = 0;
  // Zeroes [offset, offset + length) with written blocks, without sending
  // the zeros (FALLOC_FL_WRITE_ZEROES); false: the file system or device
  // does not support it (nothing done).
  virtual fs_result<bool> write_zeroes(const log_file& f, std::uint64_t offset,
                                       std::uint64_t length) = 0;
  virtual fs_result<std::uint64_t> size(const log_file& f) = 0;
  virtual fs_result<std::uint64_t> link_count(const log_file& f) = 0;
  virtual fs_status close(const log_file& f) = 0;

  // Creates one directory (its parent must exist); sync the parent to make it durable.
  virtual fs_status create_directory(const std::filesystem::path& path) = 0;
  // Renames `from` to `to`; refused (EEXIST) when `to` exists.
  virtual fs_status rename(const std::filesystem::path& from, const std::filesystem::path& to) = 0;
  // Renames `from` to `to`, replacing `to` when it exists (rename(2)): the
  // file `to` named lives on under its other names, if any.
  virtual fs_status replace(const std::filesystem::path& from, const std::filesystem::path& to) = 0;
  // A second name `to` for the file `from`; refused (EEXIST) when `to` exists.
  virtual fs_status link(const std::filesystem::path& from, const std::filesystem::path& to) = 0;
  virtual fs_status unlink(const std::filesystem::path& path) = 0;
  // Makes the directory's entries (creations, renames, removals) durable.
  virtual fs_status sync_directory(const std::filesystem::path& path) = 0;
  // The names in `directory`, sorted, without "." and "..".
  virtual fs_result<std::vector<std::string>> list(const std::filesystem::path& directory) = 0;

  // What `directory`'s file system takes, found by trying it on
  // `directory/probe.tmp` (removed after; one left by a crash is replaced):
  // an O_DIRECT open, then aligned O_DIRECT writes of 512, then 4096 bytes;
  // a pwritev2 with RWF_DSYNC; FALLOC_FL_WRITE_ZEROES. A refusal with
  // EINVAL, EOPNOTSUPP or ENOSYS is a "no"; any other failure is returned.
  fs_result<probe_result> probe(const std::filesystem::path& directory) {
    const std::filesystem::path path = directory / "probe.tmp";
    probe_result out;
    if (fs_status s = unlink(path); !s.ok() && s.os_error() != ENOENT) return s;
    auto f = open(path, {.create_exclusive = true});
    if (!f.ok()) return fs_status(f.status(), f.os_error());
    auto finish = [&](fs_status s) -> fs_status {
      fs_status closed = close(*f);
      fs_status removed = unlink(path);
      if (!s.ok()) return s;
      if (!closed.ok()) return closed;
      return removed;
    };
    auto refusal = [](int err) { return err == EINVAL || err == EOPNOTSUPP || err == ENOSYS; };
    if (fs_status s = allocate(*f, 8192); !s.ok()) return finish(s);
    const std::string block(4096, '\0');
    const std::string_view one[] = {block};
    if (fs_status s = pwrite(*f, 0, one, {.dsync = true}); s.ok()) {
      out.dsync = true;
    } else if (refusal(s.os_error())) {
      out.notes += "RWF_DSYNC: refused (" + errno_name(s.os_error()) + "); ";
    } else {
      return finish(s);
    }
    if (auto z = write_zeroes(*f, 0, 4096); z.ok()) {
      out.write_zeroes = *z;
      if (!*z) out.notes += "write-zeroes: not supported; ";
    } else {
      return finish(fs_status(z.status(), z.os_error()));
    }
    if (fs_status s = finish({}); !s.ok()) return s;

    auto d = open(path, {.create_exclusive = true, .direct = true});
    if (!d.ok()) {
      if (!refusal(d.os_error())) return fs_status(d.status(), d.os_error());
      out.notes += "O_DIRECT: open refused (" + errno_name(d.os_error()) + ")";
      (void)unlink(path);  // created before O_DIRECT was refused on some systems
      return out;
    }
    f = std::move(d);
    if (fs_status s = allocate(*f, 8192); !s.ok()) return finish(s);
    void* raw = nullptr;
    if (::posix_memalign(&raw, 4096, 4096) != 0) return finish(fs_status(status::io_error("probe: out of memory")));
    std::unique_ptr<void, decltype(&std::free)> buffer(raw, &std::free);
    std::memset(raw, 0, 4096);
    for (std::uint32_t b : {512u, 4096u}) {
      const std::string_view piece[] = {std::string_view(static_cast<const char*>(raw), b)};
      fs_status s = pwrite(*f, b, piece, {.dsync = out.dsync});
      if (s.ok()) {
        out.direct_block = b;
        break;
      }
      if (!refusal(s.os_error())) return finish(s);
      out.notes += "O_DIRECT: " + std::to_string(b) + "-byte write refused (" +
                   errno_name(s.os_error()) + "); ";
    }
    if (fs_status s = finish({}); !s.ok()) return s;
    return out;
  }
};

// ---- posix_log_fs -------------------------------------------------------------------

// The real file system.
class posix_log_fs final : public log_fs {
 public:
  fs_result<log_file> open(const std::filesystem::path& path, open_flags flags) override {
    int mode = flags.read_only ? O_RDONLY : O_RDWR;
    if (flags.create_exclusive) mode |= O_CREAT | O_EXCL;
    if (flags.direct) mode |= O_DIRECT;
    const int fd = ::open(path.c_str(), mode | O_CLOEXEC, 0644);
    if (fd < 0) return os_failure(flags.direct ? "open (O_DIRECT)" : "open", path, errno);
    return log_file{fd, path, flags.direct, flags.read_only};
  }

  fs_status pwrite(const log_file& f, std::uint64_t offset, std::span<const std::string_view> pieces,
                   write_flags flags) override {
    std::vector<iovec> iov;
    std::uint64_t total = 0;
    for (std::string_view p : pieces) {
      if (p.empty()) continue;
      iov.push_back({const_cast<char*>(p.data()), p.size()});
      total += p.size();
    }
    std::size_t first = 0;  // the first iovec not fully written
    std::uint64_t at = offset;
    const char* call = flags.dsync ? "pwritev2 (RWF_DSYNC)" : "pwritev2";
    while (first < iov.size()) {
      const int n = static_cast<int>(std::min<std::size_t>(iov.size() - first, IOV_MAX));
      const ssize_t w = ::pwritev2(f.fd, iov.data() + first, n, static_cast<off_t>(at),
                                   flags.dsync ? RWF_DSYNC : 0);
      if (w < 0) {
        if (errno == EINTR) continue;
        return os_failure(call, f.path, errno, byte_range(at, total - (at - offset)));
      }
      at += static_cast<std::uint64_t>(w);
      for (auto left = static_cast<std::size_t>(w); left > 0;) {
        if (left >= iov[first].iov_len) {
          left -= iov[first].iov_len;
          ++first;
        } else {
          iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
          iov[first].iov_len -= left;
          left = 0;
        }
      }
    }
    return {};
  }

  fs_result<std::size_t> pread(const log_file& f, std::uint64_t offset, std::span<char> buffer) override {
    std::size_t done = 0;
    while (done < buffer.size()) {
      const ssize_t r = ::pread(f.fd, buffer.data() + done, buffer.size() - done,
                                static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        return os_failure("pread", f.path, errno, byte_range(offset + done, buffer.size() - done));
      }
      if (r == 0) break;
      done += static_cast<std::size_t>(r);
    }
    return done;
  }

  fs_status datasync(const log_file& f) override {
    if (::fdatasync(f.fd) != 0) return os_failure("fdatasync", f.path, errno);
    return {};
  }

  fs_status allocate(const log_file& f, std::uint64_t size) override {
    if (::fallocate(f.fd, 0, 0, static_cast<off_t>(size)) == 0) return {};
    const int err = errno;
    if (err != EOPNOTSUPP) return os_failure("fallocate", f.path, err, byte_range(0, size));
    // No fallocate here: posix_fallocate writes the blocks instead.
    if (int e = ::posix_fallocate(f.fd, 0, static_cast<off_t>(size)); e != 0)
      return os_failure("posix_fallocate", f.path, e, byte_range(0, size));
    return {};
  }

  fs_result<bool> write_zeroes(const log_file& f, std::uint64_t offset, std::uint64_t length) override {
    if (::fallocate(f.fd, FALLOC_FL_WRITE_ZEROES, static_cast<off_t>(offset),
                    static_cast<off_t>(length)) == 0)
      return true;
    const int err = errno;
    if (err == EOPNOTSUPP || err == EINVAL || err == ENOSYS) return false;
    return os_failure("fallocate (FALLOC_FL_WRITE_ZEROES)", f.path, err, byte_range(offset, length));
  }

  fs_result<std::uint64_t> size(const log_file& f) override {
    struct stat st {};
    if (::fstat(f.fd, &st) != 0) return os_failure("fstat", f.path, errno);
    return static_cast<std::uint64_t>(st.st_size);
  }

  fs_result<std::uint64_t> link_count(const log_file& f) override {
    struct stat st {};
    if (::fstat(f.fd, &st) != 0) return os_failure("fstat", f.path, errno);
    return static_cast<std::uint64_t>(st.st_nlink);
  }

  fs_status close(const log_file& f) override {
    if (::close(f.fd) != 0) return os_failure("close", f.path, errno);
    return {};
  }

  fs_status create_directory(const std::filesystem::path& path) override {
    if (::mkdir(path.c_str(), 0755) != 0) return os_failure("mkdir", path, errno);
    return {};
  }

  fs_status rename(const std::filesystem::path& from, const std::filesystem::path& to) override {
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return {};
    int err = errno;
    if (err == EINVAL || err == ENOSYS) {  // no RENAME_NOREPLACE here
      struct stat st {};
      if (::lstat(to.c_str(), &st) == 0) return os_failure("rename " + from.string() + " to", to, EEXIST);
      if (::rename(from.c_str(), to.c_str()) == 0) return {};
      err = errno;
    }
    return os_failure("rename " + from.string() + " to", to, err);
  }

  fs_status replace(const std::filesystem::path& from, const std::filesystem::path& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0)
      return os_failure("rename " + from.string() + " over", to, errno);
    return {};
  }

  fs_status link(const std::filesystem::path& from, const std::filesystem::path& to) override {
    if (::link(from.c_str(), to.c_str()) != 0) return os_failure("link " + from.string() + " to", to, errno);
    return {};
  }

  fs_status unlink(const std::filesystem::path& path) override {
    if (::unlink(path.c_str()) != 0) return os_failure("unlink", path, errno);
    return {};
  }

  fs_status sync_directory(const std::filesystem::path& path) override {
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return os_failure("open directory", path, errno);
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0) return os_failure("fsync directory", path, err);
    return {};
  }

  fs_result<std::vector<std::string>> list(const std::filesystem::path& directory) override {
    std::error_code ec;
    std::vector<std::string> names;
    for (std::filesystem::directory_iterator it(directory, ec), end; !ec && it != end; it.increment(ec))
      names.push_back(it->path().filename().string());
    if (ec) return os_failure("list", directory, ec.value());
    std::sort(names.begin(), names.end());
    return names;
  }
};

// ---- memory_log_fs ------------------------------------------------------------------

// A file system in memory: files are byte vectors, directories sets of
// names. Nothing is durable or lost: syncs only check their arguments. It
// answers as a file system with `caps` would: O_DIRECT refused at open with
// EINVAL when caps.direct_block is 0, else offsets, lengths and buffer
// addresses not multiples of it refused with EINVAL (nothing written);
// RWF_DSYNC refused with EOPNOTSUPP unless caps.dsync; write_zeroes
// supported when caps.write_zeroes. The root "/" exists.
class memory_log_fs final : public log_fs {
 public:
  struct capabilities {
    std::uint32_t direct_block = 512;
    bool dsync = true;
    bool write_zeroes = false;
  };
  memory_log_fs() : memory_log_fs(capabilities{}) {}
  explicit memory_log_fs(capabilities caps) : caps_(caps) { dirs_.insert("/"); }

  // The bytes of the file at `path` (empty when there is none): for tests.
  std::string contents(const std::filesystem::path& path) const {
    std::lock_guard lock(mu_);
    auto it = names_.find(norm(path));
    return it == names_.end() ? std::string() : it->second->bytes;
  }

  fs_result<log_file> open(const std::filesystem::path& path, open_flags flags) override {
    std::lock_guard lock(mu_);
    const std::string p = norm(path);
    if (!dirs_.count(parent(p))) return os_failure("open", path, ENOENT);
    if (flags.direct && caps_.direct_block == 0) return os_failure("open (O_DIRECT)", path, EINVAL);
    auto it = names_.find(p);
    if (flags.create_exclusive) {
      if (it != names_.end() || dirs_.count(p)) return os_failure("open", path, EEXIST);
      it = names_.emplace(p, std::make_shared<node>()).first;
      it->second->links = 1;
    } else if (it == names_.end()) {
      return os_failure("open", path, dirs_.count(p) ? EISDIR : ENOENT);
    }
    const int handle = next_handle_++;
    open_[handle] = it->second;
    return log_file{handle, path, flags.direct, flags.read_only};
  }

  fs_status pwrite(const log_file& f, std::uint64_t offset, std::span<const std::string_view> pieces,
                   write_flags flags) override {
    std::lock_guard lock(mu_);
    std::uint64_t total = 0;
    for (std::string_view p : pieces) total += p.size();
    const char* call = flags.dsync ? "pwritev2 (RWF_DSYNC)" : "pwritev2";
    auto n = file(f);
    if (!n) return os_failure(call, f.path, EBADF, byte_range(offset, total));
    if (f.read_only) return os_failure(call, f.path, EBADF, byte_range(offset, total));
    if (flags.dsync && !caps_.dsync) return os_failure(call, f.path, EOPNOTSUPP, byte_range(offset, total));
    if (f.direct) {
      const std::uint64_t b = caps_.direct_block;
      bool aligned = offset % b == 0;
      for (std::string_view p : pieces)
        aligned = aligned && p.size() % b == 0 && reinterpret_cast<std::uintptr_t>(p.data()) % b == 0;
      if (!aligned) return os_failure(call, f.path, EINVAL, byte_range(offset, total));
    }
    if (offset + total > n->bytes.size()) n->bytes.resize(offset + total, '\0');
    std::uint64_t at = offset;
    for (std::string_view p : pieces) {
      std::memcpy(n->bytes.data() + at, p.data(), p.size());
      at += p.size();
    }
    return {};
  }

  fs_result<std::size_t> pread(const log_file& f, std::uint64_t offset, std::span<char> buffer) override {
    std::lock_guard lock(mu_);
    auto n = file(f);
    if (!n) return os_failure("pread", f.path, EBADF, byte_range(offset, buffer.size()));
    if (f.direct && (offset % caps_.direct_block != 0 || buffer.size() % caps_.direct_block != 0))
      return os_failure("pread", f.path, EINVAL, byte_range(offset, buffer.size()));
    if (offset >= n->bytes.size()) return std::size_t{0};
    const std::size_t count = std::min<std::uint64_t>(buffer.size(), n->bytes.size() - offset);
    std::memcpy(buffer.data(), n->bytes.data() + offset, count);
    return count;
  }

  fs_status datasync(const log_file& f) override {
    std::lock_guard lock(mu_);
    if (!file(f)) return os_failure("fdatasync", f.path, EBADF);
    return {};
  }

  fs_status allocate(const log_file& f, std::uint64_t size) override {
    std::lock_guard lock(mu_);
    auto n = file(f);
    if (!n || f.read_only) return os_failure("fallocate", f.path, EBADF, byte_range(0, size));
    if (size > n->bytes.size()) n->bytes.resize(size, '\0');
    return {};
  }

  fs_result<bool> write_zeroes(const log_file& f, std::uint64_t offset, std::uint64_t length) override {
    std::lock_guard lock(mu_);
    auto n = file(f);
    if (!n || f.read_only)
      return os_failure("fallocate (FALLOC_FL_WRITE_ZEROES)", f.path, EBADF, byte_range(offset, length));
    if (!caps_.write_zeroes) return false;
    if (offset + length > n->bytes.size()) n->bytes.resize(offset + length, '\0');
    std::memset(n->bytes.data() + offset, 0, length);
    return true;
  }

  fs_result<std::uint64_t> size(const log_file& f) override {
    std::lock_guard lock(mu_);
    auto n = file(f);
    if (!n) return os_failure("fstat", f.path, EBADF);
    return std::uint64_t{n->bytes.size()};
  }

  fs_result<std::uint64_t> link_count(const log_file& f) override {
    std::lock_guard lock(mu_);
    auto n = file(f);
    if (!n) return os_failure("fstat", f.path, EBADF);
    return std::uint64_t{n->links};
  }

  fs_status close(const log_file& f) override {
    std::lock_guard lock(mu_);
    if (open_.erase(f.fd) == 0) return os_failure("close", f.path, EBADF);
    return {};
  }

  fs_status create_directory(const std::filesystem::path& path) override {
    std::lock_guard lock(mu_);
    const std::string p = norm(path);
    if (dirs_.count(p) || names_.count(p)) return os_failure("mkdir", path, EEXIST);
    if (!dirs_.count(parent(p))) return os_failure("mkdir", path, ENOENT);
    dirs_.insert(p);
    return {};
  }

  fs_status rename(const std::filesystem::path& from, const std::filesystem::path& to) override {
    std::lock_guard lock(mu_);
    const std::string a = norm(from), b = norm(to);
    auto it = names_.find(a);
    if (it == names_.end()) return os_failure("rename " + from.string() + " to", to, ENOENT);
    if (names_.count(b) || dirs_.count(b)) return os_failure("rename " + from.string() + " to", to, EEXIST);
    if (!dirs_.count(parent(b))) return os_failure("rename " + from.string() + " to", to, ENOENT);
    auto n = it->second;
    names_.erase(it);
    names_.emplace(b, std::move(n));
    return {};
  }

  fs_status replace(const std::filesystem::path& from, const std::filesystem::path& to) override {
    std::lock_guard lock(mu_);
    const std::string a = norm(from), b = norm(to);
    auto it = names_.find(a);
    if (it == names_.end()) return os_failure("rename " + from.string() + " over", to, ENOENT);
    if (dirs_.count(b)) return os_failure("rename " + from.string() + " over", to, EISDIR);
    if (!dirs_.count(parent(b))) return os_failure("rename " + from.string() + " over", to, ENOENT);
    if (a == b) return {};
    auto n = it->second;
    names_.erase(it);
    if (auto old = names_.find(b); old != names_.end()) {
      --old->second->links;
      names_.erase(old);
    }
    names_.emplace(b, std::move(n));
    return {};
  }

  fs_status link(const std::filesystem::path& from, const std::filesystem::path& to) override {
    std::lock_guard lock(mu_);
    const std::string a = norm(from), b = norm(to);
    auto it = names_.find(a);
    if (it == names_.end()) return os_failure("link " + from.string() + " to", to, ENOENT);
    if (names_.count(b) || dirs_.count(b)) return os_failure("link " + from.string() + " to", to, EEXIST);
    if (!dirs_.count(parent(b))) return os_failure("link " + from.string() + " to", to, ENOENT);
    ++it->second->links;
    names_.emplace(b, it->second);
    return {};
  }

  fs_status unlink(const std::filesystem::path& path) override {
    std::lock_guard lock(mu_);
    auto it = names_.find(norm(path));
    if (it == names_.end()) return os_failure("unlink", path, dirs_.count(norm(path)) ? EISDIR : ENOENT);
    --it->second->links;
    names_.erase(it);
    return {};
  }

  fs_status sync_directory(const std::filesystem::path& path) override {
    std::lock_guard lock(mu_);
    if (!dirs_.count(norm(path))) return os_failure("open directory", path, ENOENT);
    return {};
  }

  fs_result<std::vector<std::string>> list(const std::filesystem::path& directory) override {
    std::lock_guard lock(mu_);
    const std::string d = norm(directory);
    if (!dirs_.count(d)) return os_failure("list", directory, ENOENT);
    std::vector<std::string> out;
    auto child = [&](const std::string& p) {
      if (p != d && parent(p) == d) out.push_back(std::filesystem::path(p).filename().string());
    };
    for (const auto& [p, n] : names_) child(p);
    for (const std::string& p : dirs_) child(p);
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  struct node {
    std::string bytes;
    std::uint64_t links = 0;
  };
  static std::string norm(const std::filesystem::path& p) {
    std::string s = std::filesystem::path("/").append(p.string()).lexically_normal().string();
    while (s.size() > 1 && s.back() == '/') s.pop_back();
    return s;
  }
  static std::string parent(const std::string& p) {
    const std::string s = std::filesystem::path(p).parent_path().string();
    return s.empty() ? "/" : s;
  }
  std::shared_ptr<node> file(const log_file& f) const {
    auto it = open_.find(f.fd);
    return it == open_.end() ? nullptr : it->second;
  }

  capabilities caps_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<node>> names_;
  std::set<std::string> dirs_;
  std::map<int, std::shared_ptr<node>> open_;
  int next_handle_ = 3;
};

}  // namespace seshat::detail
