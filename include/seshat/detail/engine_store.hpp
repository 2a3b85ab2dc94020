// seshat/detail/engine_store.hpp: what the on-disk backends (RocksDB and
// LevelDB) do alike around their engine, written once: the mapping of the
// engine's status, the engine's lock on a store directory, the open
// sequence up to the engine's own open, a checkpoint's sealing, and
// install_checkpoint. A backend file holds only what is particular to its
// engine. Templates on the engine's types (both engines' Status, Env and
// FileLock have the same shape), so that this header includes neither
// engine. Not part of the public API.
//
// open() of an on-disk backend (open_engine_dir, then the engine, then
// finish_engine_dir):
//   1. the options are checked (invalid-config);
//   2. `<dir>.restore`, left by an interrupted install_checkpoint, is
//      removed (detail/directory_swap.hpp);
//   3. the directory is checked and prepared before the engine touches it
//      (detail/store_marker.hpp: a wrong directory is refused unchanged; a
//      new store gets its marker saying "creating");
//   4. its canonical path is what the engine is given: the engines key
//      their in-process lock tables by the path as spelled, so one spelling
//      per directory makes a second open through another (d/store/., a
//      symlink) fail as locked instead of opening the store twice;
//   5. under the engine's lock: an interrupted creation is cleared, or, for
//      an existing store, the engine's logs are checked
//      (detail/wal_check.hpp; the logs of a store open elsewhere are live,
//      never cut). A finished store without its engine's CURRENT file is
//      refused (corrupted-data), never recreated empty;
//   6. the engine opens (or creates) its files; a held LOCK is said as
//      detail/already_open.hpp says it;
//   7. a new store's marker is rewritten without "creating".
//
// checkpoint(dir): detail/checkpoint_dir.hpp (make_checkpoint_dir around
// the engine's copy, then seal_checkpoint).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "seshat/detail/already_open.hpp"
#include "seshat/detail/backend_guard.hpp"
#include "seshat/detail/checkpoint_dir.hpp"
#include "seshat/detail/directory_swap.hpp"
#include "seshat/detail/files.hpp"
#include "seshat/detail/store_marker.hpp"
#include "seshat/options.hpp"
#include "seshat/status.hpp"

namespace seshat::detail {

// The file both engines' databases cannot be opened without.
inline constexpr std::string_view k_engine_current_file = "CURRENT";

// The engine's message ("IO error: ..."), without the dangling ": " of a
// status that has no detail ("NotFound: ").
template <class EngineStatus>
std::string engine_message(const EngineStatus& s) {
  std::string m = s.ToString();
  while (!m.empty() && (m.back() == ' ' || m.back() == ':')) m.pop_back();
  return m;
}

// An engine's status (RocksDB's or LevelDB's) as a seshat status:
// "<context>: <the engine's message>". NotFound becomes not-found,
// Corruption corrupted-data, IOError io-error, anything else backend-error.
template <class EngineStatus>
status from_engine(const EngineStatus& s, const std::string& context) {
  if (s.ok()) return {};
  std::string m = context + ": " + engine_message(s);
  if (s.IsNotFound()) return status::not_found(std::move(m));
  if (s.IsCorruption()) return status::corrupted_data(std::move(m));
  if (s.IsIOError()) return status::io_error(std::move(m));
  return status::backend_error(std::move(m));
}

// An engine status that is deliberately dropped (RocksDB's may insist on
// being looked at).
template <class EngineStatus>
void ignore_engine_status(const EngineStatus& s) {
  if constexpr (requires { s.PermitUncheckedError(); }) s.PermitUncheckedError();
}

// The engine's own lock on the store in a directory: the name its DB::Open
// locks (`<dir>/LOCK`, in the process-wide table of its default Env and with
// fcntl). Held while seshat changes the directory without the engine, so
// that no open of the store, here or in another process, runs meanwhile.
// Released when destroyed.
template <class Env, class FileLock>
class engine_lock {
 public:
  engine_lock() = default;
  engine_lock(const engine_lock&) = delete;
  engine_lock& operator=(const engine_lock&) = delete;
  ~engine_lock() {
    if (lock_ != nullptr) ignore_engine_status(Env::Default()->UnlockFile(lock_));
  }

  // Takes the lock on the store whose canonical path is `canonical` (the
  // name open() gives the engine). io-error when the store is open (or
  // being opened) elsewhere, in this process or another, said as open()
  // says it (detail/already_open.hpp); `store` names it, `context` leads.
  status take(const std::filesystem::path& canonical, const std::string& store,
              const std::string& context) {
    const auto locked = Env::Default()->LockFile(canonical.string() + "/LOCK", &lock_);
    if (locked.ok()) return {};
    lock_ = nullptr;
    if (const auto holder = lock_holder_of(locked.ToString()); holder != lock_holder::none)
      return already_open(store, holder).with_context(context);
    return from_engine(locked, context + "the store is open (cannot take its LOCK)");
  }

 private:
  FileLock* lock_ = nullptr;
};

// What open_engine_dir found, for the engine's open.
struct engine_dir {
  std::filesystem::path canonical;  // what the engine is given (step 4 above)
  bool create = false;              // the engine creates its files
};

// Steps 1 to 5 of open() (see the top of this file) for the backend named
// `name` whose engine is `engine` ("RocksDB", for messages). `check_logs(
// canonical)` checks an existing store's logs (detail::check_logs with the
// engine's reader); it runs under the engine's lock. Refuses, with nothing
// changed, what prepare_store_dir refuses.
template <class Lock, class CheckLogs>
result<engine_dir> open_engine_dir(const std::filesystem::path& dir, std::string_view name,
                                   std::string_view engine, const open_options& options,
                                   CheckLogs&& check_logs) {
  SESHAT_RETURN_IF_ERROR(options.validate());
  SESHAT_RETURN_IF_ERROR(check_store_path(dir));
  SESHAT_RETURN_IF_ERROR(remove_restore_leftover(dir));
  SESHAT_ASSIGN_OR_RETURN(const store_dir found, prepare_store_dir(dir, name, options));
  const std::string store = dir.string();
  std::error_code ec;
  engine_dir d;
  d.canonical = std::filesystem::canonical(dir, ec);
  if (ec) return status::io_error("open: cannot resolve the store at " + store + ": " + ec.message());
  d.create = found != store_dir::existing;
  if (found == store_dir::interrupted_creation) {
    Lock lock;
    SESHAT_RETURN_IF_ERROR(
        lock.take(d.canonical, store, "open: redo the interrupted creation of the store at " + store + ": "));
    SESHAT_RETURN_IF_ERROR(clear_interrupted_creation(d.canonical));
    return d;
  }
  if (d.create) return d;
  if (!std::filesystem::exists(d.canonical / k_engine_current_file, ec))
    return status::corrupted_data(
        "open: the store at " + store + " has a " + std::string(k_marker_file) + " marker of the " +
        std::string(name) + " backend but its " + std::string(engine) + " files are missing (no " +
        std::string(k_engine_current_file) + " file); refusing to recreate it empty");
  Lock lock;
  SESHAT_RETURN_IF_ERROR(lock.take(d.canonical, store, "open: "));
  SESHAT_RETURN_IF_ERROR(std::forward<CheckLogs>(check_logs)(d.canonical));
  return d;
}

// Step 6's error: the engine's DB::Open failed with `s`.
template <class EngineStatus>
status engine_open_error(const EngineStatus& s, const std::string& store) {
  if (const auto holder = lock_holder_of(s.ToString());
      s.IsIOError() && holder != lock_holder::none)
    return already_open(store, holder).with_context("open: ");
  return from_engine(s, "open store at " + store);
}

// Step 7, after the engine's open succeeded: a new store is finished.
inline status finish_engine_dir(const engine_dir& d, const std::string& store,
                                std::string_view name) {
  if (!d.create) return {};
  return finish_store_creation(d.canonical, name)
      .with_context("open: finish the creation of the store at " + store + ": ");
}

// install_checkpoint of an on-disk backend named `name` (engine `engine`):
// the checkpoint must be a finished store of that backend with its
// engine's CURRENT file; the store must be missing, empty, or a store of
// that backend, and not open (its engine Lock is held meanwhile); then
// detail::install_directory, hard-linking the files `immutable(name)` says
// the engine never modifies in place.
template <class Lock, class Immutable>
status install_engine_checkpoint(const std::filesystem::path& checkpoint_dir,
                                 const std::filesystem::path& store_dir, std::string_view name,
                                 Immutable&& immutable) {
  namespace fs = std::filesystem;
  return guarded("install_checkpoint", store_dir.string(), [&]() -> status {
    const std::string context = "install checkpoint " + checkpoint_dir.string() +
                                " into the store at " + store_dir.string() + ": ";
    std::error_code ec;
    if (status s = check_checkpoint_marker(checkpoint_dir, name); !s.ok())
      return s.with_context(context + "the checkpoint is not a " + std::string(name) + " store: ");
    if (!fs::exists(checkpoint_dir / k_engine_current_file, ec))
      return status::corrupted_data(context + "the checkpoint has no " +
                                    std::string(k_engine_current_file) + " file");
    const bool exists = fs::exists(store_dir, ec);
    if (exists && !fs::is_empty(store_dir, ec)) {
      auto store = read_store_marker(store_dir, name);
      if (!store.ok()) return store.status().with_context(context);
    }
    // Refuses a store open here or in another process, and keeps it from
    // being opened meanwhile.
    Lock lock;
    if (exists) {
      const fs::path canonical = fs::canonical(store_dir, ec);
      if (ec) return status::io_error(context + "cannot resolve the path: " + ec.message());
      SESHAT_RETURN_IF_ERROR(lock.take(canonical, store_dir.string(), context));
    }
    return install_directory(checkpoint_dir, store_dir, immutable);
  });
}

}  // namespace seshat::detail
