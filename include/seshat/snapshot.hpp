// seshat/snapshot.hpp: snapshot metadata and the snapshot manifest.
//
// A snapshot is a directory:
//
//   <snapshot>/MANIFEST.seshat   the manifest, below
//   <snapshot>/data/...          the backend's checkpoint of the store
//                                (backend.hpp, checkpoint()); opaque here
//
// storage<B>::create_snapshot makes one, storage<B>::restore_snapshot puts
// one back (storage.hpp). This header knows nothing of backends: it lists,
// sizes and checksums the files under data/ and checks them again.
//
// The manifest is text, one item a line, every line ending in "\n":
//
//   manifest  := version meta file* crc_line
//   version   := "seshat-snapshot " decimal "\n"     the format version, 1 here
//   meta      := "backend " name "\n"                k_name of the backend
//                "last-included " term " " index "\n"
//                "created-at-ms " decimal "\n"      ms since the Unix epoch
//                "size-bytes " decimal "\n"         sum of the sizes below
//                "files " decimal "\n"              how many file lines follow
//   file      := "file " size " " crc " " path "\n"
//   crc_line  := "manifest-crc " crc "\n"           of every byte before this line
//   crc       := 8 lowercase hex digits, a CRC-32C (detail/crc32c.hpp)
//   path      := relative to the snapshot, "/"-separated, under "data/", with
//                no empty, "." or ".." component and no control character
//   decimal, size, term, index := decimal digits, an unsigned 64-bit value
//
// Files are listed sorted by path. Directories are not listed; every
// regular file of the snapshot except the manifest is.
//
// Thread-safety: free functions of values; two calls on one directory at
// once are safe when neither changes it.
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "seshat/detail/crc32c.hpp"
#include "seshat/detail/digits.hpp"
#include "seshat/detail/files.hpp"
#include "seshat/log_id.hpp"
#include "seshat/status.hpp"

namespace seshat {

// What a store snapshot holds (a copy of the whole store, every group:
// storage::create_snapshot), as recorded in its manifest. Not the snapshot
// of one Raft group's state machine: that is raft_snapshot_meta
// (snapshot_file.hpp).
struct store_snapshot_meta {
  log_id last_included;            // the last log entry the snapshot covers
  std::uint64_t created_at_ms = 0; // wall clock, ms since the Unix epoch
  std::uint64_t size_bytes = 0;    // bytes of the files under data/
  std::string backend;             // k_name of the backend that made it
  friend bool operator==(const store_snapshot_meta&, const store_snapshot_meta&) = default;
};

inline constexpr std::string_view k_manifest_file = "MANIFEST.seshat";
inline constexpr std::string_view k_snapshot_data_dir = "data";
inline constexpr std::uint64_t k_snapshot_format_version = 1;

namespace detail {

// One file of a snapshot, as the manifest lists it.
struct manifest_file {
  std::string path;  // relative to the snapshot, "/"-separated
  std::uint64_t size = 0;
  std::uint32_t crc = 0;
};

struct manifest {
  store_snapshot_meta meta;
  std::vector<manifest_file> files;
};

inline constexpr std::uint64_t k_max_manifest_bytes = std::uint64_t{64} << 20;

inline std::string hex32(std::uint32_t v) { return padded_digits(v, 8, 16); }

inline bool parse_hex32(std::string_view s, std::uint32_t* out) {
  const auto v = parse_digits<std::uint32_t>(s, 8, 16);
  if (v) *out = *v;
  return v.has_value();
}

// At most 20 digits: a u64's longest spelling.
inline bool parse_u64(std::string_view s, std::uint64_t* out) {
  const auto v = s.size() <= 20 ? parse_digits(s) : std::nullopt;
  if (v) *out = *v;
  return v.has_value();
}

// A path a manifest may name (see the grammar above).
inline bool valid_manifest_path(std::string_view p) {
  const std::string prefix = std::string(k_snapshot_data_dir) + "/";
  if (p.substr(0, prefix.size()) != prefix) return false;
  for (char c : p)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) return false;
  std::size_t start = 0;
  for (;;) {
    const std::size_t end = p.find('/', start);
    const std::string_view part = p.substr(start, end == std::string_view::npos ? p.npos : end - start);
    if (part.empty() || part == "." || part == "..") return false;
    if (end == std::string_view::npos) return true;
    start = end + 1;
  }
}

inline std::string encode_manifest(const manifest& m) {
  std::string out = "seshat-snapshot " + std::to_string(k_snapshot_format_version) + "\n";
  out += "backend " + m.meta.backend + "\n";
  out += "last-included " + std::to_string(m.meta.last_included.term) + " " +
         std::to_string(m.meta.last_included.index) + "\n";
  out += "created-at-ms " + std::to_string(m.meta.created_at_ms) + "\n";
  out += "size-bytes " + std::to_string(m.meta.size_bytes) + "\n";
  out += "files " + std::to_string(m.files.size()) + "\n";
  for (const auto& f : m.files)
    out += "file " + std::to_string(f.size) + " " + hex32(f.crc) + " " + f.path + "\n";
  out += "manifest-crc " + hex32(crc32c(out)) + "\n";
  return out;
}

// Parses a manifest; `where` names it in errors. Checks, in this order: the
// version line (another version: version-mismatch), the crc line and the
// checksum, then every other line (snapshot-failed naming the line).
inline result<manifest> decode_manifest(std::string_view text, const std::string& where) {
  auto garbled = [&](const std::string& why) {
    return status::snapshot_failed("garbled manifest " + where + ": " + why);
  };
  // The version, before anything else: another version may mean another grammar.
  const std::size_t first_end = text.find('\n');
  const std::string_view first = text.substr(0, first_end);
  constexpr std::string_view k_version_prefix = "seshat-snapshot ";
  std::uint64_t version = 0;
  if (first_end == std::string_view::npos || first.substr(0, k_version_prefix.size()) != k_version_prefix ||
      !parse_u64(first.substr(k_version_prefix.size()), &version))
    return garbled("line 1 is not 'seshat-snapshot <version>'");
  if (version != k_snapshot_format_version)
    return status::version_mismatch("snapshot manifest " + where + " has format version " +
                                    std::to_string(version) + "; this seshat reads version " +
                                    std::to_string(k_snapshot_format_version));

  // The checksum line: the last one.
  if (text.empty() || text.back() != '\n') return garbled("it does not end with a newline (truncated?)");
  const std::size_t crc_start = text.rfind('\n', text.size() - 2) + 1;  // npos + 1 == 0
  const std::string_view crc_line = text.substr(crc_start, text.size() - 1 - crc_start);
  constexpr std::string_view k_crc_prefix = "manifest-crc ";
  std::uint32_t stored_crc = 0;
  if (crc_line.substr(0, k_crc_prefix.size()) != k_crc_prefix ||
      !parse_hex32(crc_line.substr(k_crc_prefix.size()), &stored_crc))
    return garbled("its last line is not 'manifest-crc <8 hex digits>' (truncated?)");
  const std::string_view body = text.substr(0, crc_start);
  const std::uint32_t actual_crc = crc32c(body);
  if (actual_crc != stored_crc)
    return status::snapshot_failed("manifest checksum mismatch in " + where + ": expected crc32c " +
                                   hex32(stored_crc) + " (stored), got " + hex32(actual_crc));

  // The rest, line by line.
  std::vector<std::string_view> lines;
  for (std::size_t pos = 0; pos < body.size();) {
    const std::size_t end = body.find('\n', pos);
    lines.push_back(body.substr(pos, end - pos));
    pos = end + 1;
  }
  std::size_t at = 1;  // index of the next line; line 1 was the version
  auto line_no = [&](std::size_t i) { return "line " + std::to_string(i + 1); };
  auto field = [&](std::string_view key) -> result<std::string_view> {
    if (at >= lines.size()) return garbled("missing '" + std::string(key) + "' line");
    const std::string prefix = std::string(key) + " ";
    if (lines[at].substr(0, prefix.size()) != prefix)
      return garbled(line_no(at) + " should start with '" + prefix + "'");
    return lines[at++].substr(prefix.size());
  };
  auto number = [&](std::string_view key, std::string_view v, std::uint64_t* out) -> status {
    if (!parse_u64(v, out))
      return garbled(line_no(at - 1) + ": " + std::string(key) + " '" + std::string(v) +
                     "' is not a number");
    return {};
  };

  manifest m;
  SESHAT_ASSIGN_OR_RETURN(const std::string_view backend, field("backend"));
  if (backend.empty()) return garbled(line_no(at - 1) + ": empty backend name");
  m.meta.backend = std::string(backend);
  SESHAT_ASSIGN_OR_RETURN(const std::string_view last, field("last-included"));
  const std::size_t space = last.find(' ');
  if (space == std::string_view::npos) return garbled(line_no(at - 1) + ": want 'last-included <term> <index>'");
  SESHAT_RETURN_IF_ERROR(number("term", last.substr(0, space), &m.meta.last_included.term));
  SESHAT_RETURN_IF_ERROR(number("index", last.substr(space + 1), &m.meta.last_included.index));
  SESHAT_ASSIGN_OR_RETURN(const std::string_view created, field("created-at-ms"));
  SESHAT_RETURN_IF_ERROR(number("created-at-ms", created, &m.meta.created_at_ms));
  SESHAT_ASSIGN_OR_RETURN(const std::string_view size, field("size-bytes"));
  SESHAT_RETURN_IF_ERROR(number("size-bytes", size, &m.meta.size_bytes));
  SESHAT_ASSIGN_OR_RETURN(const std::string_view count_text, field("files"));
  std::uint64_t count = 0;
  SESHAT_RETURN_IF_ERROR(number("files", count_text, &count));
  if (count != lines.size() - at)
    return garbled("it announces " + std::to_string(count) + " files but lists " +
                   std::to_string(lines.size() - at));

  std::set<std::string_view> seen;
  std::uint64_t total = 0;
  for (; at < lines.size(); ++at) {
    const std::string_view line = lines[at];
    constexpr std::string_view k_file = "file ";
    const std::size_t s1 = line.find(' ', k_file.size());
    const std::size_t s2 = s1 == std::string_view::npos ? s1 : line.find(' ', s1 + 1);
    if (line.substr(0, k_file.size()) != k_file || s2 == std::string_view::npos)
      return garbled(line_no(at) + " is not 'file <size> <crc> <path>'");
    manifest_file f;
    if (!parse_u64(line.substr(k_file.size(), s1 - k_file.size()), &f.size))
      return garbled(line_no(at) + ": the size is not a number");
    if (!parse_hex32(line.substr(s1 + 1, s2 - s1 - 1), &f.crc))
      return garbled(line_no(at) + ": the checksum is not 8 lowercase hex digits");
    const std::string_view path = line.substr(s2 + 1);
    if (!valid_manifest_path(path))
      return garbled(line_no(at) + ": '" + std::string(path) +
                     "' is not a relative path under data/");
    if (!seen.insert(path).second) return garbled(line_no(at) + ": '" + std::string(path) + "' is listed twice");
    if (total + f.size < total) return garbled("the file sizes overflow");
    total += f.size;
    f.path = std::string(path);
    m.files.push_back(std::move(f));
  }
  if (total != m.meta.size_bytes)
    return garbled("size-bytes is " + std::to_string(m.meta.size_bytes) +
                   " but the files add up to " + std::to_string(total));
  return m;
}

// The size and CRC-32C of a file's contents. With `sync`, fsyncs it too.
struct file_digest {
  std::uint64_t size = 0;
  std::uint32_t crc = 0;
};

inline result<file_digest> digest_file(const std::filesystem::path& p, bool sync) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_status("open", p, errno);
  file_digest d;
  std::string buffer(std::size_t{1} << 20, '\0');
  for (;;) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      return errno_status("read", p, err);
    }
    if (n == 0) break;
    d.crc = crc32c_extend(d.crc, std::string_view(buffer.data(), static_cast<std::size_t>(n)));
    d.size += static_cast<std::uint64_t>(n);
  }
  if (sync && ::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    return errno_status("fsync", p, err);
  }
  ::close(fd);
  return d;
}

// Every entry under `dir` but the manifest, by "/"-separated relative path,
// with its type (symlinks not followed). Directories are left out.
inline result<std::map<std::string, std::filesystem::file_type>> list_snapshot_files(
    const std::filesystem::path& dir, std::vector<std::filesystem::path>* dirs = nullptr) {
  namespace fs = std::filesystem;
  std::map<std::string, fs::file_type> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const auto type = it->symlink_status(ec).type();
    if (ec) break;
    if (type == fs::file_type::directory) {
      if (dirs) dirs->push_back(it->path());
      continue;
    }
    const std::string rel = it->path().lexically_relative(dir).generic_string();
    if (rel == k_manifest_file) continue;
    out.emplace(rel, type);
  }
  if (ec) return status::snapshot_failed("cannot list snapshot " + dir.string() + ": " + ec.message());
  return out;
}

}  // namespace detail

// Writes the manifest of the snapshot in `dir`: lists every file under
// dir/data, fsyncs it and records its size and CRC-32C, fsyncs the
// directories, then writes MANIFEST.seshat durably (a temporary file renamed
// into place, and the directory fsynced). Returns `meta` with size_bytes
// set to the total. snapshot-failed when dir/data is missing or holds
// anything but regular files and directories, or a path the grammar does
// not allow; io-error when a file cannot be read or written.
inline result<store_snapshot_meta> write_manifest(const std::filesystem::path& dir,
                                                store_snapshot_meta meta) {
  const std::filesystem::path data = dir / k_snapshot_data_dir;
  std::error_code ec;
  if (!std::filesystem::is_directory(data, ec))
    return status::snapshot_failed("write manifest of " + dir.string() + ": " + data.string() +
                                   " is not a directory");
  if (meta.backend.empty() || meta.backend.find_first_of(" \n\r") != std::string::npos)
    return status::invalid_argument("write manifest of " + dir.string() + ": backend name '" +
                                    meta.backend + "' is empty or has a space or newline");
  std::vector<std::filesystem::path> dirs;
  auto listed = detail::list_snapshot_files(dir, &dirs);
  if (!listed.ok()) return listed.status();
  detail::manifest m;
  meta.size_bytes = 0;
  for (const auto& [path, type] : *listed) {
    if (type != std::filesystem::file_type::regular)
      return status::snapshot_failed("write manifest of " + dir.string() + ": " + path +
                                     " is not a regular file");
    if (!detail::valid_manifest_path(path))
      return status::snapshot_failed("write manifest of " + dir.string() + ": " + path +
                                     " is not a path a manifest can list (outside data/, or a "
                                     "control character in it)");
    auto d = detail::digest_file(dir / path, true);
    if (!d.ok()) return d.status().with_context("write manifest of " + dir.string() + ": ");
    m.files.push_back({path, d->size, d->crc});
    meta.size_bytes += d->size;
  }
  for (auto d = dirs.rbegin(); d != dirs.rend(); ++d)
    SESHAT_RETURN_IF_ERROR(detail::fsync_path(*d, true));
  m.meta = meta;
  SESHAT_RETURN_IF_ERROR(detail::write_file_durably(dir / k_manifest_file, detail::encode_manifest(m)));
  return meta;
}

// Checks the snapshot in `dir` against its manifest and returns its
// metadata. Reports the first problem, in this order:
//   1. no manifest (snapshot-failed);
//   2. the manifest: its format version (version-mismatch when it is not
//      k_snapshot_format_version), its own checksum, then its lines
//      (snapshot-failed, naming the line);
//   3. in manifest order, each listed file: missing, not a regular file, or
//      of another size (expected and got);
//   4. in path order, a file the manifest does not list (extra file);
//   5. in manifest order, each file's CRC-32C (expected and got).
// Every message names the snapshot and the file. Reads every byte of every
// file; changes nothing.
inline result<store_snapshot_meta> validate_snapshot(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  const std::string where = "snapshot " + dir.string();
  const fs::path manifest_path = dir / k_manifest_file;
  std::error_code ec;
  const auto manifest_status = fs::symlink_status(manifest_path, ec);
  if (ec || manifest_status.type() == fs::file_type::not_found)
    return status::snapshot_failed(where + ": missing manifest " + std::string(k_manifest_file));
  if (manifest_status.type() != fs::file_type::regular)
    return status::snapshot_failed(where + ": " + std::string(k_manifest_file) +
                                   " is not a regular file");
  const auto manifest_size = fs::file_size(manifest_path, ec);
  if (ec) return status::snapshot_failed(where + ": cannot stat the manifest: " + ec.message());
  if (manifest_size > detail::k_max_manifest_bytes)
    return status::snapshot_failed(where + ": the manifest is " + std::to_string(manifest_size) +
                                   " bytes, over the limit of " +
                                   std::to_string(detail::k_max_manifest_bytes));
  auto text = detail::read_small_file(manifest_path);
  if (!text.ok()) return status::snapshot_failed(where + ": " + text.status().message());
  auto m = detail::decode_manifest(*text, manifest_path.string());
  if (!m.ok()) return m.status();

  auto present = detail::list_snapshot_files(dir);
  if (!present.ok()) return present.status();
  for (const auto& f : m->files) {
    auto found = present->find(f.path);
    if (found == present->end())
      return status::snapshot_failed(where + ": missing file " + f.path + " (the manifest lists it with " +
                                     std::to_string(f.size) + " bytes)");
    if (found->second != fs::file_type::regular)
      return status::snapshot_failed(where + ": " + f.path + " is not a regular file");
    const auto size = fs::file_size(dir / f.path, ec);
    if (ec) return status::snapshot_failed(where + ": cannot stat " + f.path + ": " + ec.message());
    if (size != f.size)
      return status::snapshot_failed(where + ": size mismatch for " + f.path + ": expected " +
                                     std::to_string(f.size) + " bytes, got " + std::to_string(size));
  }
  if (present->size() != m->files.size()) {
    std::set<std::string_view> listed;
    for (const auto& f : m->files) listed.insert(f.path);
    for (const auto& [path, type] : *present)
      if (!listed.count(path))
        return status::snapshot_failed(where + ": extra file " + path + " (not in the manifest)");
  }
  for (const auto& f : m->files) {
    auto d = detail::digest_file(dir / f.path, false);
    if (!d.ok()) return status::snapshot_failed(where + ": " + d.status().message());
    if (d->size != f.size)
      return status::snapshot_failed(where + ": size mismatch for " + f.path + ": expected " +
                                     std::to_string(f.size) + " bytes, got " + std::to_string(d->size) +
                                     " (it changed while being checked)");
    if (d->crc != f.crc)
      return status::snapshot_failed(where + ": checksum mismatch for " + f.path +
                                     ": expected crc32c " + detail::hex32(f.crc) + ", got " +
                                     detail::hex32(d->crc));
  }
  return m->meta;
}

}  // namespace seshat
