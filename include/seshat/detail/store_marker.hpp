// seshat/detail/store_marker.hpp: the marker file that makes a directory a
// seshat store. Used by the on-disk backends before they open their engine,
// so that a wrong directory is refused before anything in it is changed.
//
// The file `SESHAT_STORE` in the store's directory:
//
//   marker  := "seshat-store\n" "schema " schema "\n" "backend " name "\n"
//   schema  := decimal   the on-disk schema version (seshat/version.hpp)
//   name    := k_name of the backend that made the store ("rocksdb", ...)
#pragma once

#include <charconv>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include "seshat/detail/files.hpp"
#include "seshat/options.hpp"
#include "seshat/status.hpp"
#include "seshat/version.hpp"

namespace seshat::detail {

inline constexpr std::string_view k_marker_file = "SESHAT_STORE";

struct store_marker {
  std::uint32_t schema = 0;
  std::string backend;
};

inline std::string encode_marker(const store_marker& m) {
  return "seshat-store\nschema " + std::to_string(m.schema) + "\nbackend " + m.backend + "\n";
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
  auto [ptr, ec] = std::from_chars(schema.data(), schema.data() + schema.size(), m.schema);
  if (ec != std::errc() || ptr != schema.data() + schema.size())
    return bad("schema is not a number: '" + std::string(schema) + "'");
  m.backend = backend;
  return m;
}

// Makes sure `dir` is (or becomes) a seshat store of backend `name`.
// Returns true when the store is new, false when it already existed.
// Changes nothing on failure.
inline result<bool> prepare_store_dir(const std::filesystem::path& dir, std::string_view name,
                                      const open_options& options) {
  std::error_code ec;
  const auto marker_path = dir / k_marker_file;
  const bool exists = std::filesystem::exists(dir, ec);
  if (exists && !std::filesystem::is_directory(dir, ec))
    return status::invalid_argument(dir.string() + " is not a directory");

  if (exists && std::filesystem::exists(marker_path, ec)) {
    auto text = read_small_file(marker_path);
    if (!text.ok()) return text.status();
    auto marker = decode_marker(*text, marker_path);
    if (!marker.ok()) return marker.status();
    if (marker->backend != name)
      return status::version_mismatch("store at " + dir.string() + " was made by the " +
                                      marker->backend + " backend, not " + std::string(name));
    if (marker->schema > k_schema_version)
      return status::version_mismatch("store at " + dir.string() + " has schema " +
                                      std::to_string(marker->schema) +
                                      ", newer than this seshat's schema " +
                                      std::to_string(k_schema_version));
    return false;
  }

  const bool empty = !exists || std::filesystem::is_empty(dir, ec);
  if (!empty)
    return status::invalid_argument(dir.string() + " is not a seshat store: it holds files but no " +
                                    std::string(k_marker_file));
  if (!options.create_if_missing)
    return status::not_found("no seshat store at " + dir.string() +
                             " and create_if_missing is off");
  // The directory and its missing parents, each durable in its parent: a
  // power loss must not take away a store that open() reported created.
  SESHAT_RETURN_IF_ERROR(create_directories_durably(dir));
  SESHAT_RETURN_IF_ERROR(
      write_file_durably(marker_path, encode_marker({k_schema_version, std::string(name)})));
  return true;
}

}  // namespace seshat::detail
