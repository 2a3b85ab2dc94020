// seshat/detail/store_marker.hpp: the marker file that makes a directory a
// seshat store. Used by the on-disk backends before they open their engine,
// so that a wrong directory is refused before anything in it is changed.
//
// The file `SESHAT_STORE` in the store's directory:
//
//   marker  := "seshat-store\n" "schema " schema "\n" "backend " name "\n" [ state ]
//   schema  := decimal   the on-disk schema version (seshat/version.hpp)
//   name    := k_name of the backend that made the store ("rocksdb", ...)
//   state   := "state creating\n"   the engine's first open has not finished
//
// Anything after that is ignored. Creation, in open() (prepare_store_dir,
// then the engine's first open, then finish_store_creation):
//   1. the directory and its missing parents, each durable in its parent;
//   2. the marker with "state creating", durably (SESHAT_STORE.tmp, fsync,
//      rename, fsync of the directory);
//   3. the engine creates its files;
//   4. the directory is fsynced, and the marker rewritten durably without
//      the state line: from here on the store exists.
// A crash before 4 leaves a marker that says "creating" (or, inside 2, a
// directory holding only SESHAT_STORE.tmp): the next open with
// create_if_missing deletes what the engine left (everything but the
// marker and the engine's LOCK, which the backend holds meanwhile) and
// creates again. A finished store whose engine files are missing is never
// recreated: that is corrupted data.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "seshat/detail/digits.hpp"
#include "seshat/detail/files.hpp"
#include "seshat/options.hpp"
#include "seshat/status.hpp"
#include "seshat/version.hpp"

namespace seshat::detail {

inline constexpr std::string_view k_marker_file = "SESHAT_STORE";

inline constexpr std::string_view k_marker_temp_file = "SESHAT_STORE.tmp";
inline constexpr std::string_view k_creating_line = "state creating\n";

struct store_marker {
  std::uint32_t schema = 0;
  std::string backend;
  bool creating = false;  // the engine's first open has not finished
};

inline std::string encode_marker(const store_marker& m) {
  return "seshat-store\nschema " + std::to_string(m.schema) + "\nbackend " + m.backend + "\n" +
         (m.creating ? std::string(k_creating_line) : std::string());
}

inline result<store_marker> decode_marker(std::string_view text, const std::filesystem::path& file) {
  auto bad = [&](std::string_view why) {
    return status::corrupted_data(file.string() + ": " + std::string(why));
  };
  auto take_line = [&](std::string_view prefix, std::string_view& out) {
    if (text.substr(0, prefix.size()) != prefix) return false;
    auto end = text.find('\n');
    if (end == std::string_view::npos) return false;
    out = text.substr(prefix.size(), end - prefix.size());
    text.remove_prefix(end + 1);
    return true;
  };
  std::string_view header, schema, backend;
  if (!take_line("seshat-store", header) || !header.empty()) return bad("not a seshat store marker");
  if (!take_line("schema ", schema)) return bad("missing schema line");
  if (!take_line("backend ", backend) || backend.empty()) return bad("missing backend line");
  store_marker m;
  const auto number = parse_digits<std::uint32_t>(schema);
  if (!number) return bad("schema is not a number: '" + std::string(schema) + "'");
  m.schema = *number;
  m.backend = backend;
  m.creating = text.substr(0, k_creating_line.size()) == k_creating_line;
  return m;
}

// invalid-argument when `dir` cannot name a store (it is empty).
inline status check_store_path(const std::filesystem::path& dir) {
  if (!dir.empty()) return {};
  return status::invalid_argument("open: the store's path is empty: give the directory of the "
                                  "store (created when missing)");
}

// The marker of the store in `dir`, checked against backend `name`:
// invalid-argument when there is none, corrupted-data when it does not
// parse, version-mismatch when another backend or a newer schema made it.
// Changes nothing.
inline result<store_marker> read_store_marker(const std::filesystem::path& dir,
                                              std::string_view name) {
  const auto marker_path = dir / k_marker_file;
  std::error_code ec;
  const bool found = std::filesystem::exists(marker_path, ec);
  if (ec)
    return status::io_error("cannot look up " + marker_path.string() + ": " + ec.message());
  if (!found)
    return status::invalid_argument(dir.string() + " is not a seshat store: it has no " +
                                    std::string(k_marker_file));
  SESHAT_ASSIGN_OR_RETURN(const std::string text, read_small_file(marker_path));
  SESHAT_ASSIGN_OR_RETURN(store_marker marker, decode_marker(text, marker_path));
  if (marker.backend != name)
    return status::version_mismatch("store at " + dir.string() + " was made by the " +
                                    marker.backend + " backend, not " + std::string(name));
  if (marker.schema > k_schema_version)
    return status::version_mismatch(
        "store at " + dir.string() + " has schema " + std::to_string(marker.schema) +
        ", newer than this seshat's schema " + std::to_string(k_schema_version));
  return marker;
}

// What open() found in the store's directory (prepare_store_dir).
enum class store_dir {
  existing,              // a finished store: the engine opens its files
  created,               // a new store: the marker says "creating", the engine creates its files
  interrupted_creation,  // a creation that did not finish: clear_interrupted_creation,
                         // then the engine creates its files
};

// Makes sure `dir` is (or becomes) a seshat store of backend `name`, and
// says what the engine must do (see store_dir and the top of this file).
// Refuses a wrong directory unchanged: an empty path, not a directory, files
// but no marker, another backend's or a newer marker; a directory the OS
// cannot look up or list is an io-error naming it. When the store is
// missing (or its creation was interrupted), creates it only with
// create_if_missing.
inline result<store_dir> prepare_store_dir(const std::filesystem::path& dir, std::string_view name,
                                           const open_options& options) {
  SESHAT_RETURN_IF_ERROR(check_store_path(dir));
  std::error_code ec;
  // Every question asked of the file system may fail (a directory without
  // search permission, an I/O error): that is reported as what it is.
  auto os_error = [&](std::string_view what, const std::filesystem::path& p) {
    return status::io_error("open: cannot " + std::string(what) + " " + p.string() + ": " +
                            ec.message());
  };
  const auto marker_path = dir / k_marker_file;
  const bool exists = std::filesystem::exists(dir, ec);
  if (ec) return os_error("look up", dir);
  if (exists && !std::filesystem::is_directory(dir, ec))
    return ec ? os_error("look up", dir) : status::invalid_argument(dir.string() + " is not a directory");

  const bool has_marker = exists && std::filesystem::exists(marker_path, ec);
  if (ec) return os_error("look up", marker_path);
  if (has_marker) {
    SESHAT_ASSIGN_OR_RETURN(const store_marker marker, read_store_marker(dir, name));
    if (!marker.creating) return store_dir::existing;
    if (!options.create_if_missing)
      return status::not_found("the store at " + dir.string() +
                               " was never finished (its creation was interrupted) and "
                               "create_if_missing is off");
    return store_dir::interrupted_creation;
  }

  // A marker write interrupted before its rename leaves only its temporary
  // file: that directory is as good as empty.
  bool only_temp = false;
  if (exists && std::filesystem::exists(dir / k_marker_temp_file, ec)) {
    only_temp = true;
    for (auto it = std::filesystem::directory_iterator(dir, ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
      if (it->path().filename() != k_marker_temp_file) only_temp = false;
  }
  if (ec) return os_error("list", dir);
  const bool empty = !exists || only_temp || std::filesystem::is_empty(dir, ec);
  if (ec) return os_error("list", dir);
  if (!empty)
    return status::invalid_argument(dir.string() + " is not a seshat store: it holds files but no " +
                                    std::string(k_marker_file));
  if (!options.create_if_missing)
    return status::not_found("no seshat store at " + dir.string() +
                             " and create_if_missing is off");
  if (only_temp) SESHAT_RETURN_IF_ERROR(remove_all_durably(dir / k_marker_temp_file));
  // The directory and its missing parents, each durable in its parent: a
  // power loss must not take away a store that open() reported created.
  SESHAT_RETURN_IF_ERROR(create_directories_durably(dir));
  SESHAT_RETURN_IF_ERROR(
      write_file_durably(marker_path, encode_marker({k_schema_version, std::string(name), true})));
  return store_dir::created;
}

// Deletes what an interrupted creation left in `dir`: everything but the
// marker and the engine's LOCK file, then fsyncs the directory.
// REQUIRES: the caller holds the engine's lock on `dir` (so that no other
// open is creating it meanwhile), and prepare_store_dir said
// interrupted_creation.
inline status clear_interrupted_creation(const std::filesystem::path& dir) {
  std::error_code ec;
  std::vector<std::filesystem::path> left;
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const auto file = it->path().filename();
    if (file != k_marker_file && file != "LOCK") left.push_back(it->path());
  }
  for (const auto& p : left) {
    if (ec) break;
    std::filesystem::remove_all(p, ec);
  }
  if (ec)
    return status::io_error("cannot clear the interrupted creation of the store at " +
                            dir.string() + ": " + ec.message());
  return fsync_path(dir, true);
}

// Marks the store in `dir` finished, after the engine's first open
// succeeded: fsyncs the directory (the engine's new entries), then rewrites
// the marker durably without its "creating" state.
inline status finish_store_creation(const std::filesystem::path& dir, std::string_view name) {
  SESHAT_RETURN_IF_ERROR(fsync_path(dir, true));
  return write_file_durably(dir / k_marker_file,
                            encode_marker({k_schema_version, std::string(name), false}));
}

// The checkpoint in `dir` is a finished store of backend `name` (what an
// install requires of it). Changes nothing.
inline status check_checkpoint_marker(const std::filesystem::path& dir, std::string_view name) {
  SESHAT_ASSIGN_OR_RETURN(const store_marker marker, read_store_marker(dir, name));
  if (marker.creating)
    return status::corrupted_data(dir.string() + ": its " + std::string(k_marker_file) +
                                  " says its creation never finished");
  return {};
}

}  // namespace seshat::detail
