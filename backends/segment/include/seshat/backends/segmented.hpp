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
// Not yet (docs/log-engine.md section 14, M5): checkpoint() and
// install_checkpoint(), hence store snapshots, are refused with
// invalid-argument: a checkpoint needs sealed segments to link.
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

  static result<std::unique_ptr<segmented>> open(const std::filesystem::path& dir,
                                                 const open_options& options) {
    SESHAT_RETURN_IF_ERROR(options.validate());
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

  status checkpoint(const std::filesystem::path& dir) {
    return status::invalid_argument("checkpoint into " + dir.string() + ": a " +
                                    std::string(k_name) +
                                    " store cannot make checkpoints (store snapshots) yet: the "
                                    "log engine's checkpoint needs sealed segments "
                                    "(docs/log-engine.md, M5)");
  }
  static status install_checkpoint(const std::filesystem::path& checkpoint_dir,
                                   const std::filesystem::path& store_dir) {
    return status::invalid_argument("install checkpoint " + checkpoint_dir.string() +
                                    " into the store at " + store_dir.string() + ": a " +
                                    std::string(k_name) +
                                    " store cannot install checkpoints yet (docs/log-engine.md, M5)");
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
