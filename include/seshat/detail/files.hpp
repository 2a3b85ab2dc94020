// seshat/detail/files.hpp: small durable file helpers for the on-disk
// backends. Not part of the public API.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>

#include "seshat/status.hpp"

namespace seshat::detail {

inline status errno_status(std::string_view what, const std::filesystem::path& p, int err) {
  return status::io_error(std::string(what) + " " + p.string() + ": " + std::strerror(err));
}

// fsyncs a file or a directory.
inline status fsync_path(const std::filesystem::path& p, bool directory) {
  int fd = ::open(p.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) return errno_status("open", p, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return errno_status("fsync", p, err);
  return {};
}

// Replaces `p` with `contents` so that after a crash `p` holds either its old
// contents or the new ones: write a temporary file, fsync it, rename it over
// `p`, fsync the directory.
inline status write_file_durably(const std::filesystem::path& p, std::string_view contents) {
  std::filesystem::path tmp = p;
  tmp += ".tmp";
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
  if (::rename(tmp.c_str(), p.c_str()) != 0) return errno_status("rename", tmp, errno);
  return fsync_path(p.parent_path().empty() ? "." : p.parent_path(), true);
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
