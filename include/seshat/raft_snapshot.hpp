// seshat/raft_snapshot.hpp: snapshot_manager, the Raft-level snapshots of
// one group (modelled on openraft's RaftSnapshotBuilder and the snapshot
// half of RaftStateMachine).
//
// snapshot_manager<Entry, Serializer, Backend, Shard, KeyFormat, Trigger>
// works with the group's state_machine_store and log_store (same Entry,
// Backend, Shard and KeyFormat; one storage):
//
//   build_snapshot()         writes a snapshot of the state machine (its
//                            data, applied log id, membership) at a
//                            consistent applied log id; applies go on
//   maybe_build(e, b)        build_snapshot() when the trigger is due
//   get_current_snapshot()   the latest snapshot's meta and a reader
//   begin_receiving_snapshot(meta) -> snapshot_receiver
//                            write_chunk(offset, bytes)..., finish() ->
//                            received_snapshot, checked whole
//   install_snapshot(meta, received)
//                            files it as a kept snapshot, makes it the
//                            group's state machine, then fixes the log
//                            (purge, or reset when it disagrees)
//
// A snapshot is one file (format: snapshot_file.hpp) in the group's
// snapshot directory, by default a sibling of the store's directory,
//   <store directory>.snapshots/<shard id>/snapshot-<seq>.seshat
// seq: 20 decimal digits, counting up per group; the highest is the current
// snapshot. The two latest are kept; older ones are deleted once no
// snapshot_reader reads them. Files are written under a ".tmp" name,
// fsynced, renamed and the directory fsynced: a crash leaves whole
// snapshots and ".tmp" files, which open() deletes.
//
// Crash safety of install_snapshot. Invariant (at rest, after open()): the
// state machine is at or past the newest kept snapshot, and the log agrees
// with the applied state. The received file is kept (renamed to its
// snapshot-<seq> name, directory fsynced) before the state machine is
// replaced in one atomic write (old or new, never a mixture); the log is
// fixed after it. After a crash at any point the node can serve the
// snapshot its state came from: open() finishes an install whose file was
// kept but whose state was not replaced, and makes a log that does not
// hold the applied log id agree with it (see open()).
//
// Thread-safety: all members may be called from many threads; builds and
// installs of one manager are serialized. One manager per group in a
// storage (open() refuses a second); keep one per snapshot directory too.
// Ownership: the manager refers to its state_machine_store and log_store,
// which must outlive it; readers, receivers and received snapshots may
// outlive it.
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "seshat/detail/digits.hpp"
#include "seshat/detail/directory_swap.hpp"
#include "seshat/detail/files.hpp"
#include "seshat/log_store.hpp"
#include "seshat/snapshot_file.hpp"
#include "seshat/snapshot_trigger.hpp"
#include "seshat/state_machine_store.hpp"

namespace seshat {

namespace detail {
// The steps of snapshot_manager::install_snapshot after which a test may
// stop it as a crash would: nothing more is done, nothing is cleaned up.
enum class install_step { file_kept, state_replaced, log_fixed };
// Declared for tests only (tests/raft_snapshot_test.cpp defines it): sets a
// manager's stop point.
template <class Manager>
struct install_crash_seam;
}  // namespace detail

struct snapshot_options {
  // Where the group's snapshot files live; empty: the storage's directory
  // + ".snapshots/<shard id>" ("/data/store" -> "/data/store.snapshots/7").
  std::filesystem::path directory;
};

// A kept snapshot: its meta and a reader of its bytes (openraft's Snapshot).
struct raft_snapshot {
  raft_snapshot_meta meta;
  snapshot_reader reader;
};

template <class Entry, class Serializer, class Backend, class Shard = system_shard,
          class KeyFormat = binary_key_format, class Trigger = snapshot_trigger>
class snapshot_manager {
  static_assert(log_entry<Entry>,
                "seshat::snapshot_manager: Entry must be default-constructible, copyable and "
                "expose its log id (see seshat::log_store).");
  static_assert(serializer_for<Serializer, Entry>,
                "seshat::snapshot_manager: Serializer must encode and decode Entry (see "
                "seshat::log_store).");
  static_assert(backend<Backend>,
                "seshat::snapshot_manager: Backend must model seshat::backend (see "
                "seshat/backend.hpp): rocksdb_backend, leveldb_backend or memory_backend.");
  static_assert(shard_policy<Shard>,
                "seshat::snapshot_manager: Shard must be seshat::system_shard or "
                "seshat::data_shard (or provide log_family, state_family, is_system and id()).");
  static_assert(key_format<KeyFormat>,
                "seshat::snapshot_manager: KeyFormat must be seshat::binary_key_format or "
                "seshat::decimal_key_format (see seshat/key_format.hpp).");
  static_assert(snapshot_trigger_policy<Trigger>,
                "seshat::snapshot_manager: Trigger must provide `bool due(std::uint64_t "
                "entries, std::uint64_t log_bytes) const` (see seshat/snapshot_trigger.hpp).");

 public:
  using state_machine_type = state_machine_store<Entry, Backend, Shard, KeyFormat>;
  using log_type = log_store<Entry, Serializer, Backend, Shard, KeyFormat>;
  static constexpr std::size_t k_retained = 2;
  // The suffix open() gives a snapshot file it cannot read.
  static constexpr std::string_view k_damaged = ".damaged";

  // The snapshots of the group of `sm` and `log`. Creates the directory,
  // deletes ".tmp" leftovers, reads the headers (magic, version, meta) of
  // the snapshots newest first: one whose header does not read is renamed
  // "<name>.damaged" and not used; the two latest readable ones are kept,
  // older ones deleted. Then finishes an install a crash interrupted: when
  // the newest snapshot is past the applied state (it has a last log id
  // and the state machine applied nothing or a lower index), the state
  // machine is replaced from it and the log fixed, as install_snapshot
  // does (one whose records do not read is renamed "<name>.damaged" too,
  // and the next newest is looked at). Last, makes the log agree with the
  // applied state: when the log neither holds the applied log id nor has
  // purged past it (it ends before it, or holds another term there), it is
  // reset to it (log_store::reset_to). REQUIRES: `sm` and `log` outlive the
  // manager. invalid-argument when they are not of one group, or when the
  // group has a snapshot manager open already (destroying it allows a new
  // one); the
  // snapshot's error (snapshot-failed, io-error) when an unreadable one
  // cannot be renamed; io-error for the directory.
  static result<std::unique_ptr<snapshot_manager>> open(state_machine_type& sm, log_type& log,
                                                        snapshot_options options = {},
                                                        Trigger trigger = {}) {
    namespace fs = std::filesystem;
    if (sm.shard() != log.shard())
      return status::invalid_argument("snapshot manager: the state machine is of shard " +
                                      std::to_string(sm.shard()) + ", the log of shard " +
                                      std::to_string(log.shard()));
    auto claim = sm.underlying_storage().claim_group(detail::group_role::snapshots,
                                                     Shard::is_system, sm.shard());
    if (!claim.ok()) return claim.status();
    fs::path dir = options.directory;
    if (dir.empty())
      dir = detail::sibling_path(sm.underlying_storage().directory(), ".snapshots") /
            std::to_string(sm.shard());
    std::unique_ptr<snapshot_manager> m(new snapshot_manager(sm, log, std::move(dir), trigger));
    m->claim_ = std::move(*claim);
    SESHAT_RETURN_IF_ERROR(m->load());
    SESHAT_RETURN_IF_ERROR(m->recover());
    return m;
  }

  snapshot_manager(const snapshot_manager&) = delete;
  snapshot_manager& operator=(const snapshot_manager&) = delete;

  const std::filesystem::path& directory() const { return dir_; }

  // ---- building -------------------------------------------------------------

  // Writes a snapshot of the state machine as of its applied log id: the
  // applied state and a data iterator are taken together under the apply
  // lock, then the data is streamed without it (applies continue). Makes it
  // the current snapshot and drops all but the two latest. Returns its meta;
  // its id is "<term>-<index>-<seq>" ("none-<seq>" when nothing is
  // applied). On failure nothing is left behind.
  result<raft_snapshot_meta> build_snapshot() {
    std::lock_guard op(op_mutex_);
    auto view = sm_.open_snapshot_view();
    if (!view.ok()) return view.status();
    const std::uint64_t seq = next_seq();
    raft_snapshot_meta meta;
    meta.last_log_id = view->state.last_applied;
    meta.membership = view->state.membership;
    meta.shard = sm_.shard();
    meta.snapshot_id = (meta.last_log_id ? std::to_string(meta.last_log_id->term) + "-" +
                                               std::to_string(meta.last_log_id->index)
                                         : std::string("none")) +
                       "-" + std::to_string(seq);
    const std::filesystem::path final_path = file_path(seq);
    detail::temp_file tmp(final_path.string() + ".tmp");
    auto written = write_snapshot(*view->data, meta, tmp.file());
    if (!written.ok())
      return written.status().with_context(where() + "build of snapshot '" + meta.snapshot_id +
                                           "': ");
    meta.size_bytes = *written;
    SESHAT_RETURN_IF_ERROR(keep(tmp, final_path, seq, meta));
    return meta;
  }

  // How many entries were applied since the current snapshot (since the
  // start when there is none): what a trigger policy counts.
  result<std::uint64_t> entries_since_snapshot() const {
    auto applied = sm_.applied_state();
    if (!applied.ok()) return applied.status();
    if (!applied->last_applied) return std::uint64_t{0};
    std::lock_guard lock(mutex_);
    const std::uint64_t since = files_.empty() || !files_.rbegin()->second->meta.last_log_id
                                    ? 0
                                    : files_.rbegin()->second->meta.last_log_id->index;
    return applied->last_applied->index > since ? applied->last_applied->index - since : 0;
  }

  // build_snapshot() when trigger.due(entries_since_last, log_bytes_since_last);
  // nothing otherwise.
  result<std::optional<raft_snapshot_meta>> maybe_build(std::uint64_t entries_since_last,
                                                   std::uint64_t log_bytes_since_last) {
    if (!trigger_.due(entries_since_last, log_bytes_since_last))
      return std::optional<raft_snapshot_meta>();
    SESHAT_ASSIGN_OR_RETURN(raft_snapshot_meta built, build_snapshot());
    return std::optional<raft_snapshot_meta>(std::move(built));
  }

  // The latest snapshot (built or installed), or nothing when there is none.
  // Its reader keeps the file from retention while it lives.
  result<std::optional<raft_snapshot>> get_current_snapshot() const {
    std::shared_ptr<const detail::snapshot_file> latest;
    {
      std::lock_guard lock(mutex_);
      if (files_.empty()) return std::optional<raft_snapshot>();
      latest = files_.rbegin()->second;
    }
    SESHAT_ASSIGN_OR_RETURN(snapshot_reader reader, snapshot_reader::open(latest));
    return std::optional<raft_snapshot>(raft_snapshot{latest->meta, std::move(reader)});
  }

  // ---- receiving and installing ---------------------------------------------

  // Starts receiving the snapshot `meta` describes into a temporary file of
  // the snapshot directory. snapshot-failed when it is of another group,
  // older than what is applied, or smaller than any snapshot can be.
  result<snapshot_receiver> begin_receiving_snapshot(const raft_snapshot_meta& meta) {
    const std::string context =
        where() + "receive of snapshot '" + detail::printable(meta.snapshot_id) + "': ";
    if (meta.shard != sm_.shard())
      return status::snapshot_failed(context + "it is a snapshot of shard " +
                                     std::to_string(meta.shard));
    SESHAT_RETURN_IF_ERROR(check_not_older(meta, context));
    if (meta.size_bytes < detail::k_min_snapshot_bytes)
      return status::snapshot_failed(context + "its size, " + std::to_string(meta.size_bytes) +
                                     " bytes, is below the smallest snapshot's (" +
                                     std::to_string(detail::k_min_snapshot_bytes) + ")");
    const std::filesystem::path path = dir_ / ("receive-" + seq_digits(next_seq()) + ".tmp");
    detail::unique_fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd) return detail::errno_status("create", path, errno).with_context(context);
    return snapshot_receiver(detail::temp_file(path), std::move(fd), meta, sm_.data_key(""),
                             context);
  }

  // Makes the received snapshot the group's state machine and its current
  // snapshot. 1: files it as snapshot-<seq>.seshat (renamed, directory
  // fsynced), before anything else changes, so that from here on a crash
  // leaves it for open() to finish the install. 2: in ONE atomic write
  // (state_machine_store::replace_all): deletes the group's data, puts every
  // record, stores the applied log id and membership; the snapshot is the
  // current one from then on. 3: the log: when it holds an entry at
  // meta.last_log_id with the same term, it is purged up to it; otherwise
  // it is reset to it (every entry deleted, meta.last_log_id recorded as
  // last purged). snapshot-failed, nothing changed, when `meta` is not the
  // received snapshot's or it is older than what is applied (its index
  // below the applied index); invalid-argument when `snapshot` was already
  // installed. On a failed write in step 1 or 2, nothing is installed, the
  // file goes back to its temporary name and `snapshot` may be installed
  // again (should that put-back fail, the error says so, `snapshot` is
  // consumed and the next open() installs the file).
  status install_snapshot(const raft_snapshot_meta& meta, received_snapshot& snapshot) {
    const std::string context =
        where() + "install of snapshot '" + detail::printable(meta.snapshot_id) + "': ";
    if (!snapshot) return status::invalid_argument(context + "it was installed already");
    if (snapshot.meta() != meta)
      return status::snapshot_failed(context + "the meta given is not the received snapshot's ('" +
                                     detail::printable(snapshot.meta().snapshot_id) + "' at " +
                                     detail::id_text(snapshot.meta().last_log_id) + ")");
    if (meta.shard != sm_.shard())
      return status::snapshot_failed(context + "it is a snapshot of shard " +
                                     std::to_string(meta.shard));
    std::lock_guard op(op_mutex_);
    SESHAT_RETURN_IF_ERROR(check_not_older(meta, context));
    const std::uint64_t seq = next_seq();
    const std::filesystem::path received = snapshot.file_.file(), kept = file_path(seq);
    // Undoes step 1 after a failure (not a crash): `failed` with what became of the file.
    auto put_back = [&](const status& failed) {
      status back = detail::rename_no_replace(kept, received);
      if (back.ok()) back = detail::fsync_path(dir_, true);
      if (back.ok()) return failed.with_context(context, "; nothing was installed");
      snapshot.file_.release();
      return failed.with_context(context,
                                 "; nothing was installed, and the received file "
                                 "cannot be put back (" +
                                     back.message() + "): it stays as " + kept.string() +
                                     ", which the next open installs");
    };

    SESHAT_RETURN_IF_ERROR(
        detail::rename_no_replace(received, kept).with_context(context, "; nothing was installed"));
    if (status synced = detail::fsync_path(dir_, true); !synced.ok()) return put_back(synced);
    SESHAT_RETURN_IF_ERROR(stop_if(detail::install_step::file_kept));

    if (status replaced = replace_from(kept, meta); !replaced.ok()) return put_back(replaced);
    snapshot.file_.release();
    add_current(seq, kept, meta);
    SESHAT_RETURN_IF_ERROR(stop_if(detail::install_step::state_replaced));

    if (meta.last_log_id)
      SESHAT_RETURN_IF_ERROR(fix_log(*meta.last_log_id, true)
                                 .with_context(context + "the state machine and its snapshot are "
                                                         "installed, but fixing the log failed "
                                                         "(the next open fixes it): "));
    return stop_if(detail::install_step::log_fixed);
  }

 private:
  snapshot_manager(state_machine_type& sm, log_type& log, std::filesystem::path dir,
                   Trigger trigger)
      : sm_(sm), log_(log), dir_(std::move(dir)), trigger_(trigger) {}

  std::string where() const {
    return describe_group(Shard::is_system, sm_.shard()) + ": ";
  }

  static std::string seq_digits(std::uint64_t seq) { return detail::padded_digits(seq, 20); }
  std::filesystem::path file_path(std::uint64_t seq) const {
    return dir_ / ("snapshot-" + seq_digits(seq) + ".seshat");
  }
  // The seq of a snapshot file's name, if it is one.
  static std::optional<std::uint64_t> seq_of(const std::string& name) {
    constexpr std::string_view k_prefix = "snapshot-", k_suffix = ".seshat";
    if (name.size() != k_prefix.size() + 20 + k_suffix.size() || !name.starts_with(k_prefix) ||
        !name.ends_with(k_suffix))
      return std::nullopt;
    return detail::parse_digits(std::string_view(name).substr(k_prefix.size(), 20), 20);
  }

  std::uint64_t next_seq() {
    std::lock_guard lock(mutex_);
    return next_seq_++;
  }

  status check_not_older(const raft_snapshot_meta& meta, const std::string& context) const {
    SESHAT_ASSIGN_OR_RETURN(const applied_state applied, sm_.applied_state());
    const std::optional<log_id>& last = applied.last_applied;
    if (last && (!meta.last_log_id || meta.last_log_id->index < last->index))
      return status::snapshot_failed(context + "it ends at " + detail::id_text(meta.last_log_id) +
                                     ", before the applied " + to_string(*last));
    return {};
  }

  // Reads the directory: see open().
  status load() {
    namespace fs = std::filesystem;
    std::error_code ec;
    // Each new level durable in its parent: a kept snapshot must not vanish
    // with its directory at a power loss.
    SESHAT_RETURN_IF_ERROR(detail::create_directories_durably(dir_).with_context(where()));
    std::map<std::uint64_t, fs::path> found;
    std::uint64_t highest = 0;  // of every snapshot name, set-aside ones too: seqs are not reused
    for (auto it = fs::directory_iterator(dir_, ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.ends_with(".tmp")) {
        fs::remove(it->path(), ec);
        if (ec) break;
      } else if (auto seq = seq_of(name)) {
        found.emplace(*seq, it->path());
        highest = std::max(highest, *seq);
      } else if (name.ends_with(k_damaged)) {
        if (auto set_aside = seq_of(name.substr(0, name.size() - k_damaged.size())))
          highest = std::max(highest, *set_aside);
      }
    }
    if (ec) return status::io_error(where() + "cannot list " + dir_.string() + ": " + ec.message());
    // Newest first: a file whose header does not read is renamed
    // "<name>.damaged" (kept for inspection, never used), so that it neither
    // blocks the node nor costs it an older good snapshot; the two newest
    // readable ones are kept and older ones deleted.
    next_seq_ = highest + 1;
    for (auto it = found.rbegin(); it != found.rend(); ++it) {
      const auto& [seq, path] = *it;
      if (files_.size() == k_retained) {
        fs::remove(path, ec);
        continue;
      }
      auto parser = detail::snapshot_parser::open(path);
      status s = parser.ok() ? parser->preamble() : parser.status();
      auto meta = s.ok() ? parser->meta() : result<raft_snapshot_meta>(s);
      if (!meta.ok()) {
        SESHAT_RETURN_IF_ERROR(set_aside(path, meta.status()));
        continue;
      }
      files_.emplace(seq, std::make_shared<detail::snapshot_file>(path, std::move(*meta)));
    }
    return {};
  }

  // Streams the group's data from `data` into the new file `path`, fsynced;
  // returns its size.
  result<std::uint64_t> write_snapshot(typename storage<Backend>::iterator& data,
                                       const raft_snapshot_meta& meta,
                                       const std::filesystem::path& path) {
    detail::unique_fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd) return detail::errno_status("create", path, errno);
    detail::snapshot_encoder out(meta);
    std::string chunk;
    const std::string prefix = sm_.data_key(""), end = sm_.data_end();
    for (; data.valid() && data.key() < end; data.next()) {
      // Refuse to pass corruption on: the receiver would refuse it anyway.
      auto value = stored_value::decode(data.value(), column_family::data_kv, data.key());
      if (!value.ok()) return value.status();
      out.add(data.key(), data.value());
      if (out.buffered() >= detail::k_snapshot_io_bytes) {
        out.drain(chunk);
        SESHAT_RETURN_IF_ERROR(detail::write_all(fd.get(), chunk, path));
      }
    }
    SESHAT_RETURN_IF_ERROR(data.status());
    out.finish();
    out.drain(chunk);
    SESHAT_RETURN_IF_ERROR(detail::write_all(fd.get(), chunk, path));
    if (::fsync(fd.get()) != 0) return detail::errno_status("fsync", path, errno);
    return out.size();
  }

  // Renames the finished temporary file to `final_path`, fsyncs the
  // directory, makes it the current snapshot and applies retention.
  status keep(detail::temp_file& tmp, const std::filesystem::path& final_path, std::uint64_t seq,
              const raft_snapshot_meta& meta) {
    SESHAT_RETURN_IF_ERROR(detail::rename_no_replace(tmp.file(), final_path));
    tmp.release();
    status synced = detail::fsync_path(dir_, true);
    add_current(seq, final_path, meta);
    return synced;
  }

  // Makes the kept file `path` the current snapshot; all but the two latest
  // are deleted once no reader reads them.
  void add_current(std::uint64_t seq, const std::filesystem::path& path,
                   const raft_snapshot_meta& meta) {
    auto file = std::make_shared<detail::snapshot_file>(path, meta);
    std::lock_guard lock(mutex_);
    files_.emplace(seq, std::move(file));
    while (files_.size() > k_retained) {
      files_.begin()->second->obsolete = true;  // deleted with its last reader
      files_.erase(files_.begin());
    }
  }

  // Step 2 of an install: the group's state machine becomes the snapshot
  // file `path`, read and checked again as it goes (its header must be
  // `meta`), in one atomic write.
  status replace_from(const std::filesystem::path& path, const raft_snapshot_meta& meta) {
    return sm_.replace_all(
        applied_state{meta.last_log_id, meta.membership}, [&](auto& put) -> status {
          auto parser = detail::snapshot_parser::open(path);
          if (!parser.ok()) return parser.status();
          SESHAT_RETURN_IF_ERROR(parser->preamble());
          auto header = parser->meta();
          if (!header.ok()) return header.status();
          if (*header != meta)
            return status::snapshot_failed("the file changed since it was received");
          return parser->records(sm_.data_key(""), put);
        });
  }

  // The end of open(): a newest snapshot past the applied state is an
  // install a crash interrupted: the state machine is replaced from it and
  // the log fixed, as install_snapshot does. One whose records do not read
  // (snapshot-failed) is set aside as "<name>.damaged" and the next newest
  // is looked at. Then the log is made to agree with the applied state.
  status recover() {
    for (;;) {
      auto applied = sm_.applied_state();
      if (!applied.ok()) return applied.status();
      const std::optional<log_id>& last = applied->last_applied;
      if (files_.empty()) break;
      const auto newest = files_.rbegin()->second;
      const std::optional<log_id>& id = newest->meta.last_log_id;
      if (!id || (last && id->index <= last->index)) break;
      const std::string context =
          where() + "finishing the install of snapshot " + newest->path.string() + ": ";
      status replaced = replace_from(newest->path, newest->meta);
      if (replaced.ok()) return fix_log(*id, true).with_context(context + "fixing the log: ");
      if (!replaced.is(errc::snapshot_failed)) return replaced.with_context(context);
      SESHAT_RETURN_IF_ERROR(set_aside(newest->path, replaced));
      files_.erase(std::prev(files_.end()));
    }
    auto applied = sm_.applied_state();
    if (!applied.ok()) return applied.status();
    if (applied->last_applied) return fix_log(*applied->last_applied, false);
    return {};
  }

  // Renames the unreadable snapshot `path` "<name>.damaged" (kept for
  // inspection, never used again); `why` and the OS error when it cannot be.
  status set_aside(const std::filesystem::path& path, const status& why) {
    std::filesystem::path damaged = path;
    damaged += k_damaged;
    std::error_code ec;
    std::filesystem::rename(path, damaged, ec);
    if (ec)
      return why.with_context(where() + "snapshot " + path.string() + ": ",
                              " (and it cannot be renamed: " + ec.message() + ")");
    return {};
  }

  // Makes the log agree with a state machine that applied `id`: nothing
  // when the log purged past it; when it holds `id` itself, a purge up to
  // it if `purge`; otherwise (it ends before it, or holds another term
  // there) a reset to it.
  status fix_log(const log_id& id, bool purge) {
    const log_state state = log_.get_log_state();
    if (state.last_purged && state.last_purged->index >= id.index &&
        (state.last_purged->index > id.index || state.last_purged->term == id.term))
      return {};
    if (state.last && state.last->index >= id.index &&
        (!state.last_purged || state.last_purged->index < id.index)) {
      auto term = log_.term_at(id.index);
      if (!term.ok()) return term.status();
      if (*term == id.term) return purge ? log_.purge(id.index) : status{};
    }
    return log_.reset_to(id);
  }

  template <class>
  friend struct detail::install_crash_seam;
  // Tests only: install_snapshot stops right after this step, as a crash would.
  std::optional<detail::install_step> stop_after_;
  status stop_if(detail::install_step step) const {
    if (stop_after_ != step) return {};
    constexpr const char* k_names[] = {"file_kept", "state_replaced", "log_fixed"};
    return status::io_error(where() + "install stopped after " + k_names[static_cast<int>(step)] +
                            " (a simulated crash)");
  }

  state_machine_type& sm_;
  log_type& log_;
  const std::filesystem::path dir_;
  const Trigger trigger_;
  detail::open_groups::claim claim_;  // this group's snapshots, in sm_'s storage

  std::mutex op_mutex_;  // serializes builds and installs

  mutable std::mutex mutex_;  // guards what follows
  std::uint64_t next_seq_ = 1;
  std::map<std::uint64_t, std::shared_ptr<detail::snapshot_file>> files_;  // by seq; the kept ones
};

}  // namespace seshat
