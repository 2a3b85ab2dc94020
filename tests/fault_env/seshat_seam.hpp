// seshat_seam: what seshat does on the file system itself, outside the
// engine's Env (detail/files.hpp's fs_observer seam), fed to a fault
// environment: every directory fsync of seshat's own (of a new store's
// parents, of its marker's directory, of LevelDB's store directory after
// the older-log pass, ...) reaches the durability model as
// directory_synced, as the engines' directory syncs do through their Env,
// and its renames of directories as directory_renamed.
// Without it the model would not know that seshat made a directory entry
// durable, and a power loss would undo it.
//
// Installs itself as the process's observer while it lives
// (scoped_fs_observer). Ownership: owned by a fault environment, which
// outlives every store it serves. Thread-safety: the model locks.
#pragma once

#include <filesystem>

#include "fault_env/durability_model.hpp"
#include "fault_env/scoped_fs_observer.hpp"
#include "seshat/detail/files.hpp"

namespace seshat::test {

class seshat_sync_feed final : public scoped_fs_observer {
 public:
  explicit seshat_sync_feed(durability_model& model) : model_(model) {}

  void after(detail::fs_step step, const std::filesystem::path& p) override {
    if (step == detail::fs_step::sync_directory) model_.directory_synced(p);
    scoped_fs_observer::after(step, p);
  }
  // Directories only: the files seshat writes itself are not tracked.
  void renamed(const std::filesystem::path& from, const std::filesystem::path& to,
               bool exchanged) override {
    std::error_code ec;
    if (std::filesystem::is_directory(to, ec)) model_.directory_renamed(from, to, exchanged);
    scoped_fs_observer::renamed(from, to, exchanged);
  }

 private:
  durability_model& model_;
};

}  // namespace seshat::test
