// seshat/detail/checkpoint_dir.hpp: the directory of a backend's
// checkpoint(dir), made the same way by every backend: refused when it
// exists, removed again (durably) when anything fails, and, for the on-disk
// backends, sealed: a copy of the store's SESHAT_STORE marker (so that it
// is a store open() accepts) and an fsync of every file, of the directory
// and of its parent, so that it is durable when checkpoint() returns. Not
// part of the public API.
#pragma once

#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

#include "seshat/detail/backend_guard.hpp"
#include "seshat/detail/files.hpp"
#include "seshat/detail/store_marker.hpp"
#include "seshat/status.hpp"

namespace seshat::detail {

// Makes `target` a store open() accepts, durably, after the engine wrote
// its files there: a copy of the marker of the store in `store_dir`, then
// an fsync of every file in it, of it, and of its parent.
inline status seal_checkpoint(const std::filesystem::path& store_dir,
                              const std::filesystem::path& target) {
  SESHAT_ASSIGN_OR_RETURN(const std::string marker, read_small_file(store_dir / k_marker_file));
  SESHAT_RETURN_IF_ERROR(write_file_durably(target / k_marker_file, marker));
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(target, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    if (it->is_regular_file(ec)) SESHAT_RETURN_IF_ERROR(fsync_path(it->path(), false));
  if (ec) return status::io_error("cannot list " + target.string() + ": " + ec.message());
  SESHAT_RETURN_IF_ERROR(fsync_path(target, true));
  return fsync_path(parent_of(target), true);
}

// For a make_checkpoint_dir `write` that makes the directory itself:
// creates `target` and sets `owned`; invalid-argument when it cannot (it
// was made meanwhile by someone else, whose it then is).
inline status claim_checkpoint_dir(const std::filesystem::path& target, bool& owned) {
  std::error_code ec;
  if (!std::filesystem::create_directory(target, ec) || ec)
    return status::invalid_argument("cannot create it: " +
                                    (ec ? ec.message() : std::string("it already exists")));
  owned = true;
  return {};
}

// checkpoint(dir) of every backend: refuses (invalid-argument) a `dir`
// that is empty or exists, then runs `write(target, owned)`, which writes
// the checkpoint into the new directory `target` (`dir` without a trailing
// separator), creating it, and sets `owned` once it has. On failure (a
// status or an exception) a `target` it owns is removed durably. Errors
// start with "checkpoint of <store> into <target>: ".
template <class Write>
status make_checkpoint_dir(const std::string& store, const std::filesystem::path& dir,
                           Write&& write) {
  const std::filesystem::path target = without_trailing_separator(dir);
  bool owned = false;
  try {
    const std::string context = "checkpoint of " + store + " into " + target.string() + ": ";
    std::error_code ec;
    if (target.empty())
      return status::invalid_argument(context + "the path is empty: give a directory to create");
    if (std::filesystem::exists(std::filesystem::symlink_status(target, ec)))
      return status::invalid_argument(context + "it already exists");
    status s = std::forward<Write>(write)(target, owned);
    if (s.ok()) return {};
    if (owned) remove_all_durably(target).ignore();
    return s.with_context(context);
  } catch (...) {
    if (owned) remove_all_durably(target).ignore();
    return current_exception_status("checkpoint", store);
  }
}

}  // namespace seshat::detail
