// seshat/backends/segmented.hpp: segmented<B>, a store whose Raft logs and
// hard state live in seshat's own log engine (segment_log), beside a
// key-value backend B (RocksDB, LevelDB or memory) for everything else
// (docs/log-engine.md section 2).
//
//   using store = seshat::storage<seshat::segmented<seshat::rocksdb_backend>>;
//   using log = seshat::log_store<entry, seshat::boost_serializer,
//                                 seshat::segmented<seshat::rocksdb_backend>,
//                                 seshat::data_shard>;
//
// segmented<B> models `backend` (backend.hpp) by forwarding every key-value
// member to the B it owns, and `log_backend` (log_backend.hpp) with log():
// storage<B>'s log operations, and log_store's vote, committed id and last
// purged id, go to the engine. Routing:
//   - log entries and the hard state of every group: the engine, in log/;
//   - the state machine (data_kv, system_data), `applied`, `membership` and
//     every other key of the state families: B, in kv/;
//   - a key-value write (put, del, batch) to system_raft_log or
//     data_raft_log: refused with invalid-argument, nothing written (one
//     log, never two). Key-value reads of those families see nothing.
// No operation needs a write atomic across the two halves (an install
// writes the state machine, then reset_to, and log_store repairs the order
// at open), so each half is crash-safe on its own.
//
// On disk, in the store's directory:
//   SESHAT_STORE   the marker (detail/store_marker.hpp), backend
//                  "<B>+segments": a plain B store is refused as a
//                  segmented one and the other way round (version-mismatch);
//   LOCK           held (fcntl, store_lock.hpp) while the store is open: a
//                  second open, here or in another process, is refused;
//   kv/            B's store;
//   log/           the engine's segments (open_options::log tunes them,
//                  open_options::environment.log_fs is its file system).
// Creation follows the marker's rule: the marker says "creating" until B
// and the engine both opened; an open that finds a finished store whose kv/
// or log/ is missing refuses (corrupted-data), never recreating it empty.
//
// Checkpoints (store snapshots: storage's create_snapshot and
// restore_snapshot). checkpoint(dir) writes into the new directory `dir`:
//   log/           the engine's checkpoint (segment_log::checkpoint): after
//                  a durable round, its sealed segments hard-linked (no
//                  engine writes a sealed segment again) and the others
//                  copied up to their written end, so the copy is the log a
//                  power loss right after that round would leave;
//   kv/            then B's checkpoint;
//   SESHAT_STORE   the marker, last, then an fsync of `dir` and its parent
//                  (detail::seal_checkpoint).
// The log half is taken first: the operations that touch both halves write
// B first and the log after (an install writes the state machine, then
// reset_to; a purge follows the snapshot it relies on), so a checkpoint
// whose B is the later half is a state a crash between those two steps
// could leave, which log_store repairs at open. What is written to either
// half while the checkpoint runs is in it or not, each write whole; an
// entry appended and applied meanwhile may be applied in kv/ without being
// in log/ (the snapshot's last_included, which the caller gives, is what a
// Raft layer installs from).
// install_checkpoint(checkpoint, store) builds `<store>.restore` (marker
// first, durably; log/ with the sealed segments hard-linked and the others
// copied, log_checkpoint.hpp; kv/ by B::install_checkpoint into it, which
// links what B never modifies; every file and directory fsynced), then
// swaps it with the store in one renameat2(RENAME_EXCHANGE) and fsyncs the
// parent (detail/directory_swap.hpp): a crash leaves the old store or the
// new one, both halves, and open() removes the leftover. A memory B keeps
// no files: its state is installed by B::install_checkpoint before the
// swap (after every check, so that a bad checkpoint changes nothing).
//
// Thread-safety: as B and segment_log, every member may be called from
// many threads. close() closes the engine (its last round), then B.
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <algorithm>
#include <array>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "seshat/backend.hpp"
#include "seshat/backends/segment/segment_log.hpp"
#include "seshat/backends/segment/store_lock.hpp"
#include "seshat/column_family.hpp"
#include "seshat/detail/checkpoint_dir.hpp"
#include "seshat/detail/directory_swap.hpp"
#include "seshat/detail/files.hpp"
#include "seshat/detail/log_fs.hpp"
#include "seshat/detail/store_marker.hpp"
#include "seshat/options.hpp"
#include "seshat/status.hpp"

namespace seshat {

namespace detail {
// "<B::k_name>+segments", as a constant.
template <class B>
struct segmented_name {
  static constexpr std::string_view suffix = "+segments";
  static constexpr auto chars = [] {
    std::array<char, B::k_name.size() + suffix.size()> out{};
    std::copy(B::k_name.begin(), B::k_name.end(), out.begin());
    std::copy(suffix.begin(), suffix.end(), out.begin() + B::k_name.size());
    return out;
  }();
  static constexpr std::string_view value{chars.data(), chars.size()};
};
}  // namespace detail

template <backend B>
class segmented {
 public:
  using kv_backend = B;
  using batch = typename B::batch;
  using iterator = typename B::iterator;
  static constexpr std::string_view k_name = detail::segmented_name<B>::value;

  // The subdirectories of the store's directory.
  static constexpr std::string_view k_kv_dir = "kv";
  static constexpr std::string_view k_log_dir = "log";
  // Whether B keeps its store in files (not so the memory backend, whose
  // syncs are free because nothing is on a disk: backend.hpp).
  static constexpr bool k_kv_on_disk = !requires { requires B::k_syncs_are_free; };

  static result<std::unique_ptr<segmented>> open(const std::filesystem::path& dir,
                                                 const open_options& options) {
    SESHAT_RETURN_IF_ERROR(options.validate());
    SESHAT_RETURN_IF_ERROR(detail::remove_restore_leftover(dir));  // of an interrupted install
    SESHAT_ASSIGN_OR_RETURN(const detail::store_dir found,
                            detail::prepare_store_dir(dir, k_name, options));
    const bool existing = found == detail::store_dir::existing;
    auto lock = std::make_unique<detail::store_lock>();
    SESHAT_RETURN_IF_ERROR(lock->take(dir));
    if (existing) SESHAT_RETURN_IF_ERROR(check_halves(dir));
    // A finished store's halves are opened, never created: check_halves
    // saw both. A new one (or one whose creation was interrupted) creates
    // each; both creations are crash-safe on their own.
    open_options kv_options = options;
    kv_options.create_if_missing = !existing;
    auto kv = B::open(dir / k_kv_dir, kv_options);
    if (!kv.ok()) {
      if (existing && kv.status().is(errc::not_found)) return missing_half(dir, k_kv_dir);
      return kv.status();
    }
    std::unique_ptr<segmented> s(new segmented(dir, std::move(*kv), std::move(lock), options));
    segment_log_options log_options = options.log;
    log_options.recovery = options.recovery;
    auto log = segment_log::open(s->fs(), dir / k_log_dir, log_options);
    if (!log.ok()) {
      s->kv_->close().ignore();
      return log.status();
    }
    s->log_ = std::move(*log);
    if (!existing) {
      status finished = detail::finish_store_creation(dir, k_name)
                            .with_context("open: finish the creation of the store at " +
                                          dir.string() + ": ");
      if (!finished.ok()) {
        s->close().ignore();
        return finished;
      }
    }
    return s;
  }

  segmented(const segmented&) = delete;
  segmented& operator=(const segmented&) = delete;
  ~segmented() { close().ignore(); }

  // The log engine: storage<segmented<B>> routes its log operations here.
  segment_log& log() { return *log_; }
  const segment_log& log() const { return *log_; }
  // The key-value half.
  B& kv() { return *kv_; }

  // ---- the key-value half ------------------------------------------------------

  // Once close() began, both halves refuse at once: a key-value call then
  // fails as closed (as B's would after B's close), whichever half a
  // caller met closed first.
  status get(column_family cf, std::string_view key, std::string* value) {
    SESHAT_RETURN_IF_ERROR(refuse_if_closed("get"));
    return kv_->get(cf, key, value);
  }
  status put(column_family cf, std::string_view key, std::string_view value, write_options wo) {
    SESHAT_RETURN_IF_ERROR(refuse_if_closed("put"));
    SESHAT_RETURN_IF_ERROR(refuse_log_family(cf));
    return kv_->put(cf, key, value, wo);
  }
  status del(column_family cf, std::string_view key, write_options wo) {
    SESHAT_RETURN_IF_ERROR(refuse_if_closed("del"));
    SESHAT_RETURN_IF_ERROR(refuse_log_family(cf));
    return kv_->del(cf, key, wo);
  }
  batch new_batch() { return kv_->new_batch(); }
  // Refused whole, nothing written, when an operation touches a log family.
  status write(batch& b, write_options wo) {
    SESHAT_RETURN_IF_ERROR(refuse_if_closed("write"));
    for (const auto& op : b) SESHAT_RETURN_IF_ERROR(refuse_log_family(op.cf));
    return kv_->write(b, wo);
  }
  // After close() began, B is closed first (idempotent), so the iterator is
  // B's closed one: not valid, its status() saying why.
  std::unique_ptr<iterator> new_iterator(column_family cf) {
    if (log_->closed()) kv_->close().ignore();
    return kv_->new_iterator(cf);
  }

  // Every earlier write durable: the engine's staged work (one round, a
  // no-op when none is staged), then B's.
  status sync_wal() {
    SESHAT_RETURN_IF_ERROR(log_->sync());
    return kv_->sync_wal();
  }
  status compact_range(column_family cf, std::string_view begin, std::string_view end) {
    if (holds_log(cf)) return {};  // the engine's segments are freed by the engine
    return kv_->compact_range(cf, begin, end);
  }
  result<std::uint64_t> approximate_size(column_family cf, std::string_view begin,
                                         std::string_view end) {
    return kv_->approximate_size(cf, begin, end);
  }
  // B's bytes and the log directory's.
  result<std::uint64_t> disk_usage() {
    SESHAT_ASSIGN_OR_RETURN(const std::uint64_t kv, kv_->disk_usage());
    SESHAT_ASSIGN_OR_RETURN(const std::uint64_t log, detail::directory_size(log_->directory()));
    return kv + log;
  }

  // The engine (its last round), then B; the first failure is returned.
  // Idempotent.
  status close() {
    status s = log_ ? log_->close() : status{};
    status k = kv_ ? kv_->close() : status{};
    if (lock_) lock_->release();
    return s.ok() ? k : s;
  }

  // See the top of this file. invalid-argument when `dir` exists; on
  // failure `dir` is removed again.
  status checkpoint(const std::filesystem::path& dir) {
    SESHAT_RETURN_IF_ERROR(refuse_if_closed("checkpoint"));
    return detail::make_checkpoint_dir(
        "store at " + dir_.string(), dir, [&](const std::filesystem::path& target, bool& owned) -> status {
          SESHAT_RETURN_IF_ERROR(detail::claim_checkpoint_dir(target, owned));
          SESHAT_RETURN_IF_ERROR(log_->checkpoint(target / k_log_dir));
          SESHAT_RETURN_IF_ERROR(kv_->checkpoint(target / k_kv_dir));
          return detail::seal_checkpoint(dir_, target);
        });
  }

  // See the top of this file. Refused with nothing changed: a checkpoint
  // that is not a finished store of this kind (its marker, log/ and kv/), a
  // store directory holding another kind of store, an open store (io-error
  // "already open"), what B's install refuses.
  static status install_checkpoint(const std::filesystem::path& checkpoint_dir,
                                   const std::filesystem::path& store_dir) {
    return detail::guarded("install_checkpoint", store_dir.string(), [&]() -> status {
      namespace fs = std::filesystem;
      const fs::path store = detail::without_trailing_separator(store_dir);
      const fs::path tmp = detail::restore_temp_path(store);
      const fs::path parent = detail::parent_of(store);
      const std::string context = "install checkpoint " + checkpoint_dir.string() +
                                  " into the store at " + store.string() + ": ";
      std::error_code ec;
      if (status s = detail::check_checkpoint_marker(checkpoint_dir, k_name); !s.ok())
        return s.with_context(context + "the checkpoint is not a " + std::string(k_name) + " store: ");
      for (std::string_view half : {k_log_dir, k_kv_dir})
        if (!fs::is_directory(checkpoint_dir / half, ec))
          return status::corrupted_data(context + "the checkpoint has no " + std::string(half) +
                                        "/ directory");
      if (detail::is_within(checkpoint_dir, store))
        return status::invalid_argument(context + "the checkpoint lies inside the store directory, "
                                                  "which the install replaces");
      const bool exists = fs::exists(store, ec);
      if (exists && !fs::is_empty(store, ec)) {
        auto marker = detail::read_store_marker(store, k_name);
        if (!marker.ok()) return marker.status().with_context(context);
      }
      // Refuses a store open here or in another process, and keeps it from
      // being opened meanwhile.
      detail::store_lock lock;
      if (exists) SESHAT_RETURN_IF_ERROR(lock.take(store).with_context(context));
      if (fs::exists(fs::symlink_status(tmp, ec)) && !detail::is_restore_leftover(tmp))
        return status::invalid_argument(context + tmp.string() +
                                        " exists and is not a leftover of seshat's; move it away");
      if (std::error_code e = detail::remove_marked_tree(tmp))
        return status::io_error(context + "cannot remove " + tmp.string() + ": " + e.message());

      auto fail = [&](const status& s) {
        if (!detail::remove_marked_tree(tmp)) detail::fsync_path(parent, true).ignore();
        return s.with_context(context, " (the store is unchanged)");
      };
      if (!fs::create_directory(tmp, ec) || ec)
        return fail(status::io_error("cannot create " + tmp.string() + ": " +
                                     (ec ? ec.message() : std::string("it exists"))));
      // The marker first, durably: from here a partial copy is recognisably ours.
      if (status s = detail::copy_file_durably(checkpoint_dir / detail::k_marker_file,
                                               tmp / detail::k_marker_file);
          !s.ok())
        return fail(s);
      if (status s = detail::fsync_path(tmp, true); !s.ok()) return fail(s);
      if (status s = detail::fsync_path(parent, true); !s.ok()) return fail(s);
      detail::posix_log_fs log_fs;
      if (status s = detail::segment::install_log_dir(log_fs, checkpoint_dir / k_log_dir, tmp / k_log_dir);
          !s.ok())
        return fail(s);
      if constexpr (k_kv_on_disk) {
        // B builds kv/ durably (its own <kv>.restore, renamed into tmp, tmp fsynced).
        if (status s = B::install_checkpoint(checkpoint_dir / k_kv_dir, tmp / k_kv_dir); !s.ok())
          return fail(s);
      } else {
        // All checks are done: B's state is replaced in one step (all or nothing).
        if (status s = B::install_checkpoint(checkpoint_dir / k_kv_dir, store / k_kv_dir); !s.ok())
          return fail(s);
      }
      if (status s = detail::fsync_path(tmp, true); !s.ok()) return fail(s);
      // The switch.
      if (status s = exists ? detail::exchange_directories(tmp, store) : detail::rename_no_replace(tmp, store);
          !s.ok())
        return fail(s);
      if (status s = detail::fsync_path(parent, true); !s.ok())
        return s.with_context(context + "the new contents are in place, but ");
      lock.release();
      // The old contents, now at `tmp`.
      if (!detail::remove_marked_tree(tmp)) detail::fsync_path(parent, true).ignore();
      return status{};
    });
  }

 private:
  segmented(std::filesystem::path dir, std::unique_ptr<B> kv,
            std::unique_ptr<detail::store_lock> lock, const open_options& options)
      : dir_(std::move(dir)),
        lock_(std::move(lock)),
        kv_(std::move(kv)),
        given_fs_(options.environment.log_fs) {}

  detail::log_fs& fs() { return given_fs_ ? *given_fs_ : own_fs_; }

  status refuse_if_closed(std::string_view op) const {
    if (!log_->closed()) return {};
    return status::backend_error(std::string(op) + " on the store at " + dir_.string() +
                                 ": the store is closed");
  }

  static status refuse_log_family(column_family cf) {
    if (!holds_log(cf)) return {};
    return status::invalid_argument(
        "write to " + std::string(name_of(cf)) + ": the log families of a " +
        std::string(k_name) +
        " store are kept by its log engine: use the log operations (storage's append_log, "
        "log_store)");
  }

  // A finished store has its log directory (and B, opened without
  // create_if_missing, refuses a missing kv/ itself).
  static status check_halves(const std::filesystem::path& dir) {
    std::error_code ec;
    const bool there = std::filesystem::exists(dir / k_log_dir, ec);
    if (ec)
      return status::io_error("open: cannot look up " + (dir / k_log_dir).string() + ": " +
                              ec.message());
    return there ? status{} : missing_half(dir, k_log_dir);
  }
  static status missing_half(const std::filesystem::path& dir, std::string_view half) {
    return status::corrupted_data("open: the store at " + dir.string() + " is a " +
                                  std::string(k_name) + " store but its " + std::string(half) +
                                  "/ is missing; refusing to recreate it empty");
  }

  const std::filesystem::path dir_;
  std::unique_ptr<detail::store_lock> lock_;  // released last
  std::unique_ptr<B> kv_;
  detail::posix_log_fs own_fs_;
  detail::log_fs* given_fs_ = nullptr;
  std::unique_ptr<segment_log> log_;  // last: closed and destroyed first
};

}  // namespace seshat
