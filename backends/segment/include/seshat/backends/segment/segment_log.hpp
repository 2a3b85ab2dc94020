// seshat/backends/segment/segment_log.hpp: segment_log, seshat's own log
// engine (docs/log-engine.md): the entries, vote, committed id and last
// purged id of every group of a store, in preallocated segment files
// written in place by rounds that commit the pending work of every group
// with one write and one sync.
//
//   append(g, first, entries, sync)   one entries record; readable on return;
//                                     durable on return when sync, else written
//                                     (survives a process crash)
//   append_async(g, first, entries, done)
//                                     readable on return; done(status) once, on
//                                     the engine's writer thread, after the round
//                                     that synced it; refused: `done` is left
//                                     with the caller, not moved from
//   read(g, lo, hi, visit), term_at(g, i), state(g)
//   truncate_from(g, since, sync)     deletes [since, last]
//   purge_to(g, id)                   deletes [first, id.index]; id: the last purged
//   reset(g, id)                      deletes every entry; the log continues after id
//   save_vote(g, v), save_committed(g, id)      durable on return
//   sync()                            every staged operation durable
//   checkpoint(dir)                   a copy of the durable log in the new dir
//   io(), io_note()                   the I/O mode in effect, and why it is not
//                                     options.io's (O_DIRECT refused), if it is not
//   close()
//
// Appends continue the log: first == last + 1 once the group holds an entry
// or a purge point (any first >= 1 before: the caller keeps the floor, as
// log_store does), terms never below the last; else invalid-log-index, and
// nothing changes. Every operation is one record, staged into the open frame
// under the engine's mutex (staging.hpp), applied to the in-memory index at once
// (group_index.hpp) and written by the next round:
//   - a synchronous caller leads a round itself when none is running
//     (raft-engine's leader of queue), else waits and the first waiter leads
//     the next one, taking everything staged meanwhile;
//   - append_async work is rounded by the writer thread once stagings pause
//     for idle_gap_us, or max_linger_us after the first; or at once when as
//     many append_async calls are staged as each of the last two bursts had
//     (a burst: the calls between two pauses of idle_gap_us, as a Raft
//     thread's appends to its groups each round), as group_sync.hpp does
//     for the KV path.
// A round (round_writer.hpp): one pwritev2 of every staged byte of a
// segment, then (durable rounds) one fdatasync, or one RWF_DSYNC write
// (segment_io::dsync; segment_io::direct: on an O_DIRECT descriptor, from
// the start of the block holding the round's start). When a
// round spans two segments, the older one's part is written and synced
// first. Callbacks fire in staging order, only after their round's sync.
//
// Maintenance (sections 5 and 8), on a thread of its own: the next segment
// is prepared ahead (segment_log_options::prepare_ahead: created, filled per
// `fill` and durable under its seg- name before the writer moves to it, so
// that round writes and syncs only its frame; the writer creates one itself
// only when none is ready or the record needs a larger one), each segment
// the writer moved on from is sealed (segment_file.hpp), and the oldest segments no
// group needs are freed, oldest first, once the records that made them
// unneeded are durable (unlink, directory fsync); a group that needs the
// oldest segment only for its vote, committed or purge point gets a `state`
// record in the open segment first. close() seals what is left.
//
// Fail-stop (section 10): the first failed write, sync or segment creation
// latches the engine (detail::write_latch): that round's callers and
// callbacks get the error, every later write, sync and close fails with
// io-error naming it, until the engine is reopened. Reads go on.
//
// Every file access goes through the detail::log_fs given to open(). Errors
// are seshat::status naming the log directory, the segment and the byte
// offset; no exception leaves the engine.
//
// Thread-safety: every member may be called from any thread, except close()
// and the destructor from a callback. Ownership: the engine refers to its
// log_fs, which must outlive it.
#pragma once

#if defined(__linux__)
#include <sys/prctl.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "seshat/backends/segment/group_index.hpp"
#include "seshat/backends/segment/log_checkpoint.hpp"
#include "seshat/backends/segment/options.hpp"
#include "seshat/backends/segment/record_reader.hpp"
#include "seshat/backends/segment/recovery.hpp"
#include "seshat/backends/segment/round_writer.hpp"
#include "seshat/backends/segment/segment_file.hpp"
#include "seshat/backends/segment/staging.hpp"
#include "seshat/detail/backend_guard.hpp"
#include "seshat/detail/log_fs.hpp"
#include "seshat/detail/segment_format.hpp"
#include "seshat/detail/write_latch.hpp"
#include "seshat/hard_state.hpp"
#include "seshat/log_id.hpp"
#include "seshat/status.hpp"

namespace seshat {

// A group's address in the engine: {family, id} (segment_format.hpp).
using log_group = detail::segment::group_address;
// One entry to append: its term and the Serializer's bytes.
using log_entry_input = detail::segment::entry_input;

// A group's state, from memory. `last` is the last entry's id, else the last
// purged id, else nothing (log_store's log_state); `first` is the first
// entry's index, nothing when the group holds no entry.
struct segment_group_state {
  std::optional<vote> vote_value;
  std::optional<log_id> committed;
  std::optional<log_id> last_purged;
  std::optional<log_id> last;
  std::optional<std::uint64_t> first;
  friend bool operator==(const segment_group_state&, const segment_group_state&) = default;
};

class segment_log {
 public:
  using callback = std::function<void(status)>;
  using visit_fn = detail::segment::visit_fn;

  // Opens (creating it, durably, when absent) the log in `dir`: recovery
  // from sealed segments' footers and by scanning the others (recovery.hpp),
  // then a new segment to write into (or the last one, when it holds no frame). REQUIRES: `dir`'s parent exists; no other
  // engine has `dir` open.
  static result<std::unique_ptr<segment_log>> open(detail::log_fs& fs, std::filesystem::path dir,
                                                   segment_log_options options = {}) {
    try {
      SESHAT_RETURN_IF_ERROR(validate(options));
      std::unique_ptr<segment_log> log(new segment_log(fs, std::move(dir), options));
      SESHAT_RETURN_IF_ERROR(log->start());
      return log;
    } catch (...) {
      return detail::current_exception_status("log engine open", "");
    }
  }

  segment_log(const segment_log&) = delete;
  segment_log& operator=(const segment_log&) = delete;
  ~segment_log() { close().ignore(); }

  // ---- writing ---------------------------------------------------------------

  status append(const log_group& g, std::uint64_t first, std::span<const log_entry_input> entries,
                bool sync) {
    return guarded("append", [&] {
      std::unique_lock lk(mu_);
      SESHAT_ASSIGN_OR_RETURN(const std::uint64_t ticket, stage_entries(g, first, entries));
      return await(lk, ticket, sync);
    });
  }

  // Stages the append and returns; `done` is called once, on the writer
  // thread, with the status of the round that synced it. Refused (returned)
  // as append would refuse it: `done` is then neither called nor moved
  // from, it stays the caller's (storage hands it back to its own caller).
  status append_async(const log_group& g, std::uint64_t first,
                      std::span<const log_entry_input> entries, callback&& done) {
    return guarded("append_async", [&] {
      std::unique_lock lk(mu_);
      SESHAT_ASSIGN_OR_RETURN(const std::uint64_t ticket, stage_entries(g, first, entries));
      if (ticket == 0) {  // nothing staged: nothing to wait for
        to_fire_.push_back({std::move(done), status{}});
        writer_cv_.notify_all();
        return status{};
      }
      const auto now = clock::now();
      callbacks_.push_back({ticket, now, std::move(done)});
      if (now - last_async_ >= std::chrono::microseconds(options_.idle_gap_us))
        burst_appends_ = 0;  // a quiet gap before it: a new burst
      ++burst_appends_;
      ++unrounded_async_;
      last_async_ = now;
      // The writer waits for the first one, and for a burst of the size
      // that starts a round early.
      if (unrounded_async_ == 1 || unrounded_async_ == burst_) writer_cv_.notify_all();
      // A producer faster than the disk is slowed, not buffered without
      // bound: past k_max_staged_bytes it waits for a round (whose outcome
      // `done` reports).
      if (staging_.staged_bytes() > k_max_staged_bytes) await(lk, ticket, false).ignore();
      return status{};
    });
  }

  // Deletes [since, last]. Nothing to do when since > last. Refused
  // (compacted) when since is at or below the last purged index.
  status truncate_from(const log_group& g, std::uint64_t since, bool sync) {
    return guarded("truncate", [&]() -> status {
      std::unique_lock lk(mu_);
      SESHAT_RETURN_IF_ERROR(writable(g));
      auto it = groups_.find(g);
      if (it == groups_.end() || !it->second.has_entries() || since > it->second.last_index())
        return {};
      if (const auto& p = it->second.last_purged(); p && since <= p->index)
        return status::compacted(where(g) + "truncate from index " + std::to_string(since) +
                                 ": entries up to " + std::to_string(p->index) + " are purged");
      SESHAT_ASSIGN_OR_RETURN(const std::uint64_t ticket,
                              stage_record(detail::segment::truncate_record{g, since}));
      return await(lk, ticket, sync);
    });
  }

  // Records `id` as the last purged id and deletes [first, id.index],
  // durably. Nothing to do when id.index is at or below the last purged
  // index. Refused: unavailable past the last index, invalid-argument when
  // id.term is not the entry's.
  status purge_to(const log_group& g, const log_id& id) {
    return guarded("purge", [&]() -> status {
      std::unique_lock lk(mu_);
      SESHAT_RETURN_IF_ERROR(writable(g));
      auto it = groups_.find(g);
      if (it != groups_.end() && it->second.last_purged() && id.index <= it->second.last_purged()->index)
        return {};
      if (it == groups_.end() || !it->second.has_entries() || id.index > it->second.last_index())
        return status::unavailable(where(g) + "purge up to index " + std::to_string(id.index) +
                                   " is past the last index " +
                                   (it == groups_.end() ? std::string("(empty log)")
                                                        : std::to_string(it->second.last_index())));
      if (auto t = it->second.term_at(id.index); t && *t != id.term)
        return status::invalid_argument(where(g) + "purge up to " + to_string(id) +
                                        ": entry " + std::to_string(id.index) + " has term " +
                                        std::to_string(*t));
      SESHAT_ASSIGN_OR_RETURN(const std::uint64_t ticket,
                              stage_record(detail::segment::purge_record{g, id}));
      return await(lk, ticket, true);
    });
  }

  // Deletes every entry and records `id` as the last purged id, durably:
  // the next append is at id.index + 1. Refused: invalid-argument when
  // id.index is below the last purged index, invalid-log-index past
  // k_max_log_index.
  status reset(const log_group& g, const log_id& id) {
    return guarded("reset", [&]() -> status {
      if (id.index > k_max_log_index)
        return status::invalid_log_index(where(g) + "reset to " + to_string(id) + ": " +
                                         past_max_index(id.index));
      std::unique_lock lk(mu_);
      SESHAT_RETURN_IF_ERROR(writable(g));
      auto it = groups_.find(g);
      if (it != groups_.end() && it->second.last_purged() && id.index < it->second.last_purged()->index)
        return status::invalid_argument(where(g) + "reset to " + to_string(id) +
                                        " goes back before the last purged " +
                                        to_string(*it->second.last_purged()));
      SESHAT_ASSIGN_OR_RETURN(const std::uint64_t ticket,
                              stage_record(detail::segment::reset_record{g, id}));
      return await(lk, ticket, true);
    });
  }

  status save_vote(const log_group& g, const vote& v) {
    return guarded("save_vote", [&]() -> status {
      std::unique_lock lk(mu_);
      SESHAT_RETURN_IF_ERROR(writable(g));
      SESHAT_ASSIGN_OR_RETURN(const std::uint64_t ticket,
                              stage_record(detail::segment::vote_record{g, v}));
      return await(lk, ticket, true);
    });
  }

  status save_committed(const log_group& g, const log_id& id) {
    return guarded("save_committed", [&]() -> status {
      std::unique_lock lk(mu_);
      SESHAT_RETURN_IF_ERROR(writable(g));
      SESHAT_ASSIGN_OR_RETURN(const std::uint64_t ticket,
                              stage_record(detail::segment::committed_record{g, id}));
      return await(lk, ticket, true);
    });
  }

  // Makes every operation staged so far durable (a no-op when it is).
  status sync() {
    return guarded("sync", [&]() -> status {
      std::unique_lock lk(mu_);
      if (closing_) return closed_error("sync");
      SESHAT_RETURN_IF_ERROR(latch_.refusal(where() + "sync"));
      return await(lk, staged_ops_, true);
    });
  }

  // Writes a copy of the log into the new directory `dir` (its parent must
  // exist): what a power loss right after the call's round would leave, so
  // every operation that returned before the call (and append_async work
  // staged before it) is in it, later ones are not. How:
  //   1 a durable round of everything staged (as sync());
  //   2 under the engine's mutex, the segments as they are then: for each,
  //     whether it is sealed, and its written end; freeing is held off
  //     until the copy is done (a freed segment may hold what only records
  //     staged later make unneeded), and a segment being freed right then
  //     is left out (the records that made it unneeded are durable, so
  //     they are in the copy);
  //   3 outside it: create `dir`; each sealed segment hard-linked (never
  //     written again by this engine: log_checkpoint.hpp), each other one
  //     copied up to that written end (bytes below it never change while
  //     the engine is open; the rest reads as zeros, as after a crash),
  //     fdatasynced; then fsync of `dir` and of its parent.
  // Writes go on meanwhile. On failure `dir` may be left partly written:
  // the caller removes it. Refused: closed, or latched (the latch's io-error).
  status checkpoint(const std::filesystem::path& dir) {
    return guarded("checkpoint", [&]() -> status {
      struct piece {
        std::shared_ptr<segment_state> seg;
        bool link = false;
        std::uint64_t end = 0;
      };
      std::vector<piece> pieces;
      std::shared_lock files(files_mu_);  // close() waits for the copy
      {
        std::unique_lock lk(mu_);
        if (closing_) return closed_error("checkpoint");
        SESHAT_RETURN_IF_ERROR(latch_.refusal(where() + "checkpoint"));
        SESHAT_RETURN_IF_ERROR(await(lk, staged_ops_, true));
        for (const auto& [seq, seg] : segments_)
          if (seg->on_disk && seg != freeing_) pieces.push_back({seg, seg->sealed, seg->written_end});
        ++checkpoints_;
      }
      status s = [&]() -> status {
        SESHAT_RETURN_IF_ERROR(fs_.create_directory(dir));
        for (const piece& p : pieces) {
          const std::filesystem::path to = dir / p.seg->path.filename();
          if (p.link && fs_.link(p.seg->path, to).ok()) continue;  // else: another file system
          SESHAT_RETURN_IF_ERROR(detail::segment::copy_file_prefix(fs_, p.seg->file, to, p.seg->size, p.end));
        }
        SESHAT_RETURN_IF_ERROR(fs_.sync_directory(dir));
        return fs_.sync_directory(dir.parent_path().empty() ? std::filesystem::path(".") : dir.parent_path());
      }();
      std::unique_lock lk(mu_);
      --checkpoints_;
      free_hint_ = true;
      maintenance_cv_.notify_all();
      return s.with_context(where() + "checkpoint into " + dir.string() + ": ");
    });
  }

  // Runs a last round, fires the callbacks, stops the writer and
  // maintenance threads, seals every segment not sealed yet and closes the files. After a latched failure it writes nothing and returns
  // the latch's io-error. Later calls return ok. REQUIRES: not from a callback.
  status close() {
    return guarded("close", [&]() -> status {
      std::unique_lock lk(mu_);
      if (closing_) return {};
      if (writer_.joinable() && std::this_thread::get_id() == writer_.get_id())
        return status::invalid_argument(where() + "close from an append_async callback");
      closing_ = true;  // refuses new work; what is staged goes in the last round
      closed_.store(true, std::memory_order_release);
      status s;
      if (started_) s = latch_.latched() ? latch_.refusal(where() + "close") : await(lk, staged_ops_, true);
      stop_ = true;
      writer_cv_.notify_all();
      maintenance_cv_.notify_all();
      lk.unlock();
      if (writer_.joinable()) writer_.join();
      if (maintenance_.joinable()) maintenance_.join();
      std::unique_lock files(files_mu_);
      lk.lock();
      // Seal what the maintenance thread has not, and the open segment, so
      // that the next open reads footers only.
      if (s.ok() && started_ && !latch_.latched()) {
        if (open_seg_ && open_seg_->written_end > detail::segment::k_header_bytes)
          to_seal_.push_back(open_seg_);
        while (s.ok() && !to_seal_.empty()) s = seal_front(lk);
      }
      for (auto& [seq, seg] : segments_) {
        if (seg->on_disk) {
          status c = fs_.close(seg->file);
          if (s.ok() && !c.ok()) s = c.with_context(where());
        }
        if (seg->direct_file.fd >= 0) fs_.close(seg->direct_file).ignore();
      }
      segments_.clear();
      for (auto& f : free_) fs_.close(f->file).ignore();  // the next open deletes them
      free_.clear();
      return s;
    });
  }

  // ---- reading ---------------------------------------------------------------

  // Visits the entries [lo, hi) in order. Refused: invalid-argument when
  // hi < lo, compacted when lo is at or below the last purged index,
  // unavailable when part of the range is not in the log; corrupted-data
  // (naming segment and byte) when stored bytes do not check.
  status read(const log_group& g, std::uint64_t lo, std::uint64_t hi, const visit_fn& visit) const {
    return guarded("read", [&]() -> status {
      std::shared_lock files(files_mu_);
      std::vector<planned_read> plan;
      {
        std::unique_lock lk(mu_);
        if (closing_) return closed_error("read");
        SESHAT_ASSIGN_OR_RETURN(plan, plan_read(g, lo, hi));
      }
      for (const planned_read& p : plan) {
        detail::segment::fetch_fn fetch = [&](std::uint64_t off, std::size_t len, std::string& out) -> status {
          if (!p.in_file) {
            const std::uint64_t from = std::min<std::uint64_t>(off - std::min(off, p.memory_base), p.memory.size());
            out.assign(p.memory, static_cast<std::size_t>(from), len);
            return {};
          }
          out.resize(len);
          auto n = fs_.pread(p.file, off, std::span<char>(out.data(), out.size()));
          if (!n.ok()) return n.status();
          out.resize(*n);
          return {};
        };
        status s = detail::segment::read_record_entries(fetch, p.seq, p.offset, p.limit, g, p.record_first,
                                                        p.record_end, p.first, p.end, visit);
        if (!s.ok()) {
          if (s.is(errc::corrupted_data) || s.is(errc::io_error))
            return s.with_context(where() + detail::segment::segment_name(p.seq) + ", ");
          return s;
        }
      }
      return status{};
    });
  }

  // The entries [lo, hi)'s payloads (read's refusals).
  result<std::vector<std::string>> read(const log_group& g, std::uint64_t lo, std::uint64_t hi) const {
    std::vector<std::string> out;
    if (lo < hi && hi - lo <= k_read_reserve_limit) out.reserve(static_cast<std::size_t>(hi - lo));
    status s = read(g, lo, hi, [&](std::uint64_t, std::string_view payload) {
      out.emplace_back(payload);
      return status{};
    });
    if (!s.ok()) return s;
    return out;
  }

  // The term of entry i (or of the last purged id at its index); unavailable
  // when the group holds neither.
  result<std::uint64_t> term_at(const log_group& g, std::uint64_t i) const {
    std::unique_lock lk(mu_);
    auto it = groups_.find(g);
    std::optional<std::uint64_t> t;
    if (it != groups_.end()) t = it->second.term_at(i);
    if (!t) return status::unavailable(where(g) + "no entry " + std::to_string(i));
    return *t;
  }

  segment_group_state state(const log_group& g) const {
    std::unique_lock lk(mu_);
    auto it = groups_.find(g);
    if (it == groups_.end()) return {};
    const detail::segment::group_log& gl = it->second;
    std::optional<std::uint64_t> first;
    if (gl.has_entries()) first = gl.first_index();
    return {gl.vote_value(), gl.committed(), gl.last_purged(), gl.last_id(), first};
  }

  // Every group the log holds something of, in order.
  std::vector<log_group> groups() const {
    std::unique_lock lk(mu_);
    std::vector<log_group> out;
    out.reserve(groups_.size());
    for (const auto& [g, gl] : groups_) out.push_back(g);
    std::sort(out.begin(), out.end());
    return out;
  }

  const std::filesystem::path& directory() const { return dir_; }

  // Whether close() has begun: from then on every write and read is
  // refused. Lock-free, for a store that refuses its other half's calls at
  // the same moment (segmented<B>).
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }

  // How rounds are written now: segment_io::direct, dsync or write_fdatasync
  // (options.io, or what the engine fell back to: io_note says why).
  segment_io io() const {
    std::unique_lock lk(mu_);
    if (direct_) return segment_io::direct;
    return dsync_ ? segment_io::dsync : segment_io::write_fdatasync;
  }
  // Why the engine writes in another mode than options.io asked for, once
  // it does ("log engine <dir>: O_DIRECT refused ...: continuing with
  // page-cache writes"); empty otherwise.
  std::string io_note() const {
    std::unique_lock lk(mu_);
    return io_note_;
  }

  // How many durable rounds (one write and one sync each, or one RWF_DSYNC
  // write) succeeded since open.
  std::uint64_t durable_rounds() const { return durable_rounds_.load(std::memory_order_relaxed); }

  // Makes every staged operation durable, then waits until the maintenance
  // thread has sealed and freed all it can (it does so in the background
  // anyway: for tests and benchmarks that measure the outcome). The latch's
  // refusals as sync().
  status settle() {
    return guarded("settle", [&]() -> status {
      std::unique_lock lk(mu_);
      if (closing_) return closed_error("settle");
      SESHAT_RETURN_IF_ERROR(latch_.refusal(where() + "settle"));
      SESHAT_RETURN_IF_ERROR(await(lk, staged_ops_, true));
      const std::uint64_t ask = ++settle_asked_;
      free_hint_ = true;
      maintenance_cv_.notify_all();
      settled_cv_.wait(lk, [&] { return settle_done_ >= ask; });
      return latch_.refusal(where() + "settle");
    });
  }

  // Segment files: those the engine holds open, and those it has freed since open.
  std::uint64_t segment_count() const {
    std::unique_lock lk(mu_);
    std::uint64_t n = 0;
    for (const auto& [seq, seg] : segments_) n += seg->on_disk ? 1 : 0;
    return n;
  }
  std::uint64_t freed_segments() const {
    std::unique_lock lk(mu_);
    return freed_segments_;
  }
  // Segments the maintenance thread prepared ahead since open.
  std::uint64_t prepared_segments() const {
    std::unique_lock lk(mu_);
    return prepared_segments_;
  }
  // Of those, the ones that were freed segments recycled; and the freed
  // segments kept for recycling now (free-*.log files).
  std::uint64_t recycled_segments() const {
    std::unique_lock lk(mu_);
    return recycled_segments_;
  }
  std::uint64_t free_segment_count() const {
    std::unique_lock lk(mu_);
    return free_.size();
  }

 private:
  using clock = std::chrono::steady_clock;
  static constexpr std::size_t k_max_staged_bytes = std::size_t{16} << 20;
  // read() reserves its result for ranges up to this many entries, before it
  // knows the range is held (so a refused huge range allocates nothing).
  static constexpr std::uint64_t k_read_reserve_limit = 4096;
  // What one carried group takes in the open segment, at most: its `state`
  // record (76 bytes with every field) and its seal reserve.
  static constexpr std::uint64_t k_carry_bytes = 76 + detail::segment::k_summary_bound_bytes;
  using segment_state = detail::segment::segment_state;

  struct waiting_callback {
    std::uint64_t ticket = 0;
    clock::time_point staged;
    callback done;
  };
  struct planned_read {
    std::uint64_t seq = 0;
    std::uint32_t offset = 0;
    std::uint64_t record_first = 0, first = 0, end = 0;
    std::uint64_t record_end = 0;  // the record holds at least [record_first, record_end)
    std::uint64_t limit = 0;   // the record ends at or below this segment offset
    bool in_file = false;
    detail::log_file file;     // in_file
    std::string memory;        // !in_file: the record's bytes, copied under the mutex
    std::uint64_t memory_base = 0;
  };

  segment_log(detail::log_fs& fs, std::filesystem::path dir, segment_log_options options)
      : fs_(fs), dir_(std::move(dir)), options_(options) {}

  std::string where() const { return "log engine " + dir_.string() + ": "; }
  std::string where(const log_group& g) const { return where() + detail::segment::to_string(g) + ": "; }
  status closed_error(std::string_view op) const {
    return status::backend_error(where() + std::string(op) + ": the log engine is closed");
  }

  template <class F>
  status guarded(std::string_view op, F&& f) const {
    try {
      return f();
    } catch (...) {
      return detail::current_exception_status("log engine " + std::string(op), dir_.string());
    }
  }

  status start() {
    if (auto listed = fs_.list(dir_); !listed.ok()) {
      if (listed.os_error() != ENOENT) return listed.status().with_context(where());
      SESHAT_RETURN_IF_ERROR(fs_.create_directory(dir_).with_context(where()));
      const std::filesystem::path parent = dir_.parent_path().empty() ? "." : dir_.parent_path();
      SESHAT_RETURN_IF_ERROR(fs_.sync_directory(parent).with_context(where()));
    }
    if (options_.io == segment_io::dsync || options_.io == segment_io::direct) {
      SESHAT_ASSIGN_OR_RETURN(auto probe, fs_.probe(dir_));
      dsync_ = probe.dsync;
      if (options_.io == segment_io::direct && probe.direct_block != 0)
        direct_ = std::make_unique<detail::segment::direct_writer>(probe.direct_block);
      else if (options_.io == segment_io::direct)
        io_note_ = where() + "O_DIRECT refused by the file system (" + probe.notes +
                   "): continuing with page-cache writes";
    }
    SESHAT_ASSIGN_OR_RETURN(auto rec, detail::segment::recover(fs_, dir_, options_.recovery));
    for (auto& s : rec.segments) segments_[s->seq] = s;
    groups_.reserve(rec.groups.size());
    for (auto& [g, gl] : rec.groups) groups_.emplace(g, std::move(gl));
    rec.groups.clear();
    for (const auto& [g, gl] : groups_) repin({}, pins_of(gl));
    next_seq_ = rec.next_seq;
    if (rec.last_is_empty && rec.segments.back()->size == options_.segment_bytes) {
      open_seg_ = rec.segments.back();
    } else {
      open_seg_ = new_segment_state(options_.segment_bytes);
      auto f = detail::segment::create_segment(fs_, dir_, *open_seg_, segment_fill::allocate, direct_block());
      if (!f.ok()) return f.status().with_context(where());
      open_seg_->file = *f;
      open_seg_->on_disk = true;
    }
    staging_.start(open_seg_, rec.next_number);
    last_written_ = open_seg_;
    started_ = true;
    writer_ = std::thread([this] { writer_loop(); });
    maintenance_ = std::thread([this] { maintenance_loop(); });
    return {};
  }

  // The header's block for a segment created now (O_DIRECT mode), else 0. Under mu_.
  std::uint16_t direct_block() const {
    return direct_ ? static_cast<std::uint16_t>(direct_->block()) : 0;
  }

  std::shared_ptr<segment_state> new_segment_state(std::uint64_t size) {
    auto s = std::make_shared<segment_state>();
    s->seq = next_seq_++;
    s->size = size;
    s->path = dir_ / detail::segment::segment_name(s->seq);
    segments_[s->seq] = s;
    return s;
  }

  // ---- staging (under mu_) ---------------------------------------------------

  status writable(const log_group& g) const {
    if (closing_) return closed_error("write");
    if (!detail::segment::valid(g))
      return status::invalid_argument(where() + detail::segment::to_string(g) +
                                      ": expected family 0 (system_raft_log) with id 0 or "
                                      "family 3 (data_raft_log) with id > 0");
    if (!latch_.latched()) return {};  // the context is built only for a refusal
    return latch_.refusal(where(g) + "write");
  }

  // Checks and stages an entries record; its ticket (0: nothing to stage).
  result<std::uint64_t> stage_entries(const log_group& g, std::uint64_t first,
                                      std::span<const log_entry_input> entries) {
    SESHAT_RETURN_IF_ERROR(writable(g));
    if (entries.empty()) return std::uint64_t{0};
    auto it = groups_.find(g);
    if (it != groups_.end() && it->second.known()) {
      const std::uint64_t expected = it->second.last_index() + 1;
      if (first != expected)
        return status::invalid_log_index(where(g) + "append at index " + std::to_string(first) +
                                         ": expected " + std::to_string(expected) +
                                         " (the log's last index + 1)");
      if (auto last = it->second.last_id(); last && entries.front().term < last->term)
        return status::invalid_log_index(where(g) + "append of term " +
                                         std::to_string(entries.front().term) + " at index " +
                                         std::to_string(first) + " after term " +
                                         std::to_string(last->term));
    } else if (first == 0) {
      return status::invalid_log_index(where(g) + "append at index 0: the first index is 1");
    }
    auto shape = detail::segment::shape_entries(first, entries);
    if (!shape.ok()) return shape.status().with_context(where(g));
    // Written straight into the open frame (place), checked above.
    auto encode = [&](std::string& out, std::uint64_t seq) {
      detail::segment::put_entries(out, seq, g, first, entries, *shape);
    };
    detail::segment::entries_record e;
    e.runs = std::move(runs_buffer_);  // its capacity, kept from the last append
    e.runs.clear();
    e.group = g;
    e.first = first;
    e.count = static_cast<std::uint32_t>(entries.size());
    for (const log_entry_input& x : entries) {
      if (e.runs.empty() || e.runs.back().term != x.term) e.runs.push_back({x.term, 0});
      ++e.runs.back().count;
    }
    return place(g, encode, std::move(e), it != groups_.end() ? &it->second : nullptr,
                 shape->bytes);
  }

  template <class Record>
  result<std::uint64_t> stage_record(Record r) {
    auto encode = [&](std::string& out, std::uint64_t) {
      detail::segment::encode_record(out, r);
      return status{};
    };
    const log_group g = r.group;
    return place(g, encode, Record(r));
  }

  // Encodes the record with `encode(out, seq)` into the open frame (a new
  // frame, in a new segment when it does not fit), applies it to g's index
  // (`found`, when the caller looked it up already) and returns its ticket.
  // An entries record is encoded once, straight into the frame: `size` is
  // its size (shape_entries), and its encode cannot fail. Any other is
  // encoded into record_bytes_ first (for its size), then copied.
  template <class Encode, class Body>
  result<std::uint64_t> place(const log_group& g, Encode& encode, Body body,
                              detail::segment::group_log* found = nullptr,
                              std::size_t size = 0) {
    using namespace detail::segment;
    std::size_t runs = 0;
    if constexpr (std::is_same_v<Body, entries_record>) runs = body.runs.size();
    constexpr bool entries = std::is_same_v<Body, entries_record>;
    std::string& rec = record_bytes_;  // staging_.add copies it: reused, not reallocated
    if constexpr (!entries) {
      rec.clear();
      SESHAT_RETURN_IF_ERROR(encode(rec, staging_.open_segment().seq));
      size = rec.size();
    }
    std::uint64_t growth = open_seg_->seal_growth(g, runs, entries);
    if (!staging_.fits(size, growth)) {
      growth = k_summary_bound_bytes + (entries ? 8 + 12 * runs : 0);
      const std::uint64_t fit = staging_buffer::segment_bytes_for(size, growth);
      if (fit > k_max_segment_bytes)
        return status::invalid_argument(where(g) + "a record of " + std::to_string(size) +
                                        " bytes: at most " +
                                        std::to_string(k_max_segment_bytes - (fit - size)));
      to_seal_.push_back(open_seg_);  // the writer moves on: its seal comes next
      const std::uint64_t want = std::max(options_.segment_bytes, (fit + 4095) / 4096 * 4096);
      // The prepared segment (or the one being prepared: the round that
      // writes into it waits for its preparation, run_round), else none
      // (or too small: it stays, empty, until freed in order) and the
      // round that writes into this one creates it. Only one newer than
      // the open segment: the one being prepared may be the open one
      // already (taken by an earlier move, its preparation still running),
      // and moving to it again would stage over its frames from byte 4096.
      std::shared_ptr<segment_state> next = prepared_ ? prepared_ : preparing_;
      if (next && next->seq <= open_seg_->seq) next.reset();
      if (next && next->size >= want) {
        open_seg_ = std::move(next);
        segments_[open_seg_->seq] = open_seg_;
      } else {
        open_seg_ = new_segment_state(want);
      }
      prepared_.reset();
      staging_.switch_to(open_seg_);
      free_hint_ = true;
      maintenance_cv_.notify_all();
      if constexpr (!entries) {
        rec.clear();
        SESHAT_RETURN_IF_ERROR(encode(rec, open_seg_->seq));
      }
    }
    record r;
    if constexpr (entries)
      r.offset = staging_.add(size, [&](std::string& out) { encode(out, open_seg_->seq); });
    else
      r.offset = staging_.add(rec);
    r.size = static_cast<std::uint32_t>(size);
    r.body = std::move(body);
    detail::segment::group_log& gl = found ? *found : groups_[g];
    const group_pins before = pins_of(gl);
    gl.apply(r, open_seg_->seq).ignore();  // checked above: cannot refuse
    repin(before, pins_of(gl));
    open_seg_->note_for_seal(r, growth);
    if constexpr (entries) runs_buffer_ = std::move(std::get<entries_record>(r.body).runs);
    if constexpr (std::is_same_v<Body, purge_record> || std::is_same_v<Body, reset_record> ||
                  std::is_same_v<Body, truncate_record>)
      free_hint_ = true;  // may leave the oldest segment unneeded
    return ++staged_ops_;
  }

  // The segments a group needs (section 8): that of its first live entry and
  // that of its oldest needed hard-state record (0: none). Each segment
  // counts the groups that pin it so, so that freeing looks at the oldest
  // segments, not at every group.
  struct group_pins {
    std::uint64_t entries = 0, state = 0;
  };
  static group_pins pins_of(const detail::segment::group_log& gl) {
    return {gl.entries_seq(), gl.hard_state_seq()};
  }
  void repin(const group_pins& before, const group_pins& after) {
    auto move = [&](std::uint64_t from, std::uint64_t to, std::uint32_t segment_state::*count) {
      if (from == to) return;
      if (auto it = segments_.find(from); from != 0 && it != segments_.end()) --(*it->second.*count);
      if (auto it = segments_.find(to); to != 0 && it != segments_.end()) ++(*it->second.*count);
    };
    move(before.entries, after.entries, &segment_state::entry_pins);
    move(before.state, after.state, &segment_state::state_pins);
  }

  // ---- rounds ----------------------------------------------------------------

  // Waits until operation `ticket` is durable (or written, when !durable),
  // leading rounds while none runs. Under mu_ (held by `lk`).
  status await(std::unique_lock<std::mutex>& lk, std::uint64_t ticket, bool durable) {
    for (;;) {
      if ((durable ? durable_ops_ : written_ops_) >= ticket) return {};
      if (latch_.latched())
        return ticket <= failed_upto_ ? round_error_ : latch_.refusal(where() + "write");
      if (!round_running_) {
        run_round(lk, durable);
        continue;
      }
      round_cv_.wait(lk);
    }
  }

  // One round: takes every staged byte, has round_writer.hpp write it,
  // durable when `durable` or when it carries a callback, then wakes the
  // callers and queues the covered callbacks. Under mu_, which it releases
  // while writing. REQUIRES: no round running.
  void run_round(std::unique_lock<std::mutex>& lk, bool durable) {
    using namespace detail::segment;
    round_running_ = true;
    // A staged frame in the segment being prepared: its round waits for it.
    while (preparing_ && staging_.holds(*preparing_)) prepared_cv_.wait(lk);
    if (latch_.latched()) {  // the preparation failed: the callers see the latch
      round_running_ = false;
      round_cv_.notify_all();
      writer_cv_.notify_all();
      return;
    }
    unrounded_async_ = 0;  // this round takes every staged append_async
    const std::deque<staging_buffer::chunk>& chunks = staging_.take();
    const std::uint64_t upto = staged_ops_;
    if (!callbacks_.empty() && callbacks_.front().ticket <= upto) durable = true;
    round_plan plan;
    plan.dsync = dsync_;
    plan.direct = direct_.get();
    for (std::size_t i = 0; i < chunks.size(); ++i) {
      const staging_buffer::chunk& c = chunks[i];
      plan.steps.push_back({c.seg.get(), !c.seg->on_disk, c.seg->file, c.seg->direct_file, c.base,
                            c.bytes, durable || i + 1 < chunks.size(), c.seg->written_end,
                            c.seg->synced_end});
    }
    segment_state* prev = last_written_.get();
    if (prev && prev->written_end > prev->synced_end &&
        (plan.steps.empty() ? durable : plan.steps.front().seg != prev)) {
      plan.flush = prev;
      plan.flush_file = prev->file;
    }
    lk.unlock();
    status failed;
    try {
      failed = write_round(fs_, dir_, plan);
    } catch (...) {
      failed = detail::current_exception_status("log engine round", dir_.string());
    }
    lk.lock();
    for (const round_step& st : plan.steps)  // opened by this round: closed with the segment
      if (st.direct_file.fd >= 0) st.seg->direct_file = st.direct_file;
    if (!plan.direct_refused.empty() && direct_) {  // the engine leaves O_DIRECT mode, once
      direct_.reset();
      io_note_ = where() + plan.direct_refused;
    }
    if (!failed.ok()) {
      latch_.note(failed).ignore();
      if (!latch_.latched()) latch_.note(status::io_error(failed.message())).ignore();
      round_error_ = failed;
      failed_upto_ = upto;
      while (!callbacks_.empty() && callbacks_.front().ticket <= upto) {
        to_fire_.push_back({std::move(callbacks_.front().done), failed});
        callbacks_.pop_front();
      }
      // The chunks stay in staging_: reads go on from them.
    } else {
      if (plan.flush) plan.flush->synced_end = plan.flush->written_end;
      for (const round_step& st : plan.steps) {
        if (st.create) {
          st.seg->file = st.file;
          st.seg->on_disk = true;
        }
        st.seg->written_end = st.written;
        st.seg->synced_end = st.synced;
      }
      if (!chunks.empty()) last_written_ = chunks.back().seg;
      written_ops_ = upto;
      if (durable) {
        durable_ops_ = upto;
        durable_rounds_.fetch_add(1, std::memory_order_relaxed);
      }
      while (!callbacks_.empty() && callbacks_.front().ticket <= durable_ops_) {
        to_fire_.push_back({std::move(callbacks_.front().done), status{}});
        callbacks_.pop_front();
      }
      staging_.written();
    }
    round_running_ = false;
    round_cv_.notify_all();
    writer_cv_.notify_all();
    if (!to_seal_.empty() || free_hint_) maintenance_cv_.notify_all();
  }

  // The writer thread: rounds async-only work after its linger, and fires
  // every callback, in staging order, outside the mutex.
  void writer_loop() {
#if defined(__linux__)
    // The idle gap is a few tens of microseconds: without this, Linux may
    // oversleep it by its default timer slack (50 us) on every round.
    ::prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);
#endif
    std::unique_lock lk(mu_);
    std::deque<std::pair<callback, status>> firing;  // taken from to_fire_, fired outside mu_
    for (;;) {
      if (!to_fire_.empty()) {
        // All that are due, in order, with the mutex taken once for them
        // rather than once each (a round of 64 groups fires 64).
        firing.swap(to_fire_);
        lk.unlock();
        for (auto& [done, st] : firing) {
          try {
            if (done) done(st);
          } catch (...) {  // a callback's exception is its own; the writer goes on
          }
        }
        firing.clear();
        lk.lock();
        continue;
      }
      if (!callbacks_.empty() && latch_.latched() && !round_running_) {
        for (auto& c : callbacks_) to_fire_.push_back({std::move(c.done), latch_.refusal(where() + "append_async")});
        callbacks_.clear();
        continue;
      }
      if (!callbacks_.empty() && !latch_.latched()) {
        if (round_running_) {
          round_cv_.wait(lk);
          continue;
        }
        const auto linger_end = callbacks_.front().staged + std::chrono::microseconds(options_.max_linger_us);
        const auto quiet_at = last_async_ + std::chrono::microseconds(options_.idle_gap_us);
        const auto now = clock::now();
        const bool burst_complete = unrounded_async_ >= burst_;
        if (!stop_ && !burst_complete && now < std::min(linger_end, quiet_at)) {
          writer_cv_.wait_until(lk, std::min(linger_end, quiet_at));
          continue;
        }
        if (!burst_complete && now >= quiet_at) {  // a pause ended the burst
          burst_ = burst_appends_ == last_burst_ ? last_burst_ : k_no_burst;
          last_burst_ = burst_appends_;
        }
        run_round(lk, true);
        continue;
      }
      if (stop_ && callbacks_.empty()) return;  // every callback fired
      writer_cv_.wait(lk);
    }
  }

  // ---- maintenance: sealing and freeing (docs/log-engine.md section 8) ------------

  // The maintenance thread: seals the segments the writer moved on from, in
  // order, then frees the oldest segments no group needs, one at a time.
  // Its I/O runs outside mu_; a failure latches the engine as a round's does.
  void maintenance_loop() {
    std::unique_lock lk(mu_);
    auto sealable = [&] { return !to_seal_.empty() && !staging_.holds(*to_seal_.front()); };
    auto preparable = [&] { return options_.prepare_ahead && !prepared_ && !preparing_ && !closing_; };
    auto work = [&] {
      return !latch_.latched() && (preparable() || sealable() || (free_hint_ && to_seal_.empty()));
    };
    while (!stop_) {
      const std::uint64_t asked = settle_asked_;
      if (!latch_.latched() && preparable()) {  // first: the writer may need it next
        prepare_next(lk).ignore();  // a failure latched the engine
        continue;
      }
      if (!latch_.latched() && sealable()) {
        seal_front(lk).ignore();  // a failure latched the engine
        continue;
      }
      if (!latch_.latched() && free_hint_ && to_seal_.empty()) {
        free_hint_ = false;
        if (free_oldest(lk)) free_hint_ = true;  // the next oldest may be free too
        continue;
      }
      if (settle_asked_ != asked) continue;
      settle_done_ = asked;  // a pass after the request found nothing to do
      settled_cv_.notify_all();
      maintenance_cv_.wait(lk, [&] { return stop_ || settle_asked_ != asked || work(); });
    }
    settle_done_ = settle_asked_;
    settled_cv_.notify_all();
  }

  // Prepares the next segment (the oldest freed segment kept for recycling,
  // segment_file.hpp's recycle_segment, else a new file, create_segment
  // with options_.fill) as preparing_, then makes it prepared_, for place() to
  // move to (place() may take it while it is being prepared: the round
  // that writes into it waits). Its seq is taken when it starts: when the
  // writer moved past it (a record needed a larger segment), it stays an
  // empty segment among the others, freed in order like them. Under mu_
  // (held by `lk`), released for the I/O; a failure latches the engine as
  // a round's does.
  status prepare_next(std::unique_lock<std::mutex>& lk) {
    auto seg = std::make_shared<segment_state>();
    seg->seq = next_seq_++;
    seg->size = options_.segment_bytes;
    seg->path = dir_ / detail::segment::segment_name(seg->seq);
    preparing_ = seg;
    const std::uint16_t block = direct_block();
    std::shared_ptr<segment_state> reused;  // a freed segment, its blocks written: no fill
    if (!free_.empty()) {
      reused = std::move(free_.front());
      free_.pop_front();
    }
    lk.unlock();
    auto f = [&]() -> detail::fs_result<detail::log_file> {
      try {
        if (reused)
          return detail::segment::recycle_segment(fs_, dir_, reused->file, reused->path, reused->seq, *seg, block);
        return detail::segment::create_segment(fs_, dir_, *seg, options_.fill, block);
      } catch (...) {
        return detail::fs_status(detail::current_exception_status("log engine prepare", dir_.string()));
      }
    }();
    if (reused && !f.ok()) fs_.close(reused->file).ignore();
    lk.lock();
    preparing_.reset();
    prepared_cv_.notify_all();
    if (!f.ok())
      return latch_failure(f.status().with_context(where() + "preparing " + seg->path.filename().string() + ": "));
    seg->file = *f;
    seg->on_disk = true;
    segments_[seg->seq] = seg;
    if (open_seg_ && seg->seq > open_seg_->seq) prepared_ = seg;  // else taken, or passed by
    ++prepared_segments_;
    if (reused) ++recycled_segments_;
    return {};
  }

  // Seals to_seal_.front() (segment_file.hpp's write_seal) and drops it from
  // the queue. Under mu_ (held by `lk`), released for the I/O. REQUIRES: no
  // frame of it staged.
  status seal_front(std::unique_lock<std::mutex>& lk) {
    std::shared_ptr<segment_state> seg = to_seal_.front();
    if (!seg->on_disk || seg->sealed) {
      to_seal_.pop_front();
      return {};
    }
    auto seal = detail::segment::seal_bytes(*seg);
    if (!seal) {  // cannot happen: the writer reserved its room
      to_seal_.pop_front();
      return {};
    }
    const bool unsynced = seg->written_end > seg->synced_end;
    const std::uint64_t written = seg->written_end;
    lk.unlock();
    status e;
    try {
      e = detail::segment::write_seal(fs_, seg->file, unsynced, seal->first, seal->second);
    } catch (...) {
      e = detail::current_exception_status("log engine seal", dir_.string());
    }
    lk.lock();
    if (!e.ok()) return latch_failure(e.with_context(where() + "sealing " + seg->path.filename().string() + ": "));
    seg->synced_end = std::max(seg->synced_end, written);
    seg->sealed = true;
    seg->summaries.clear();
    to_seal_.pop_front();
    return {};
  }

  // Frees the oldest segment when no group needs it (the segment's pins):
  // first a `state` record for each group that needs it only for its vote,
  // committed or purge point (carried forward into the open segment), then,
  // once every record that made it unneeded is durable, unlink and fsync of
  // the directory, oldest first, so that a name a crash brings back is older
  // than every live segment and superseded by them (section 9). True when it
  // freed one. Under mu_ (held by `lk`), released for the I/O.
  //
  // Carrying pays only when it frees more than it writes: it is done for the
  // run of oldest segments that no group's entries pin (every group whose
  // hard state lies in that run is carried at once, so the whole run frees),
  // and only when the carried records take at most half of the run's bytes.
  // Otherwise the oldest segments hold mostly live hard state (idle groups'),
  // carrying it would only rewrite it, and freeing waits until busier groups'
  // dead segments follow them: so carrying converges, whatever the number of
  // idle groups, and costs at most half the bytes it frees.
  bool free_oldest(std::unique_lock<std::mutex>& lk) {
    using namespace detail::segment;
    if (segments_.empty() || closing_ || checkpoints_ > 0) return false;
    std::shared_ptr<segment_state> seg = segments_.begin()->second;
    if (seg == open_seg_ || staging_.holds(*seg)) return false;
    if (!seg->on_disk) {  // a segment never written (the writer passed it by): no file
      segments_.erase(seg->seq);
      return true;
    }
    if (seg->entry_pins > 0) return false;
    std::uint64_t ticket = staged_ops_;
    if (seg->state_pins > 0) {
      std::uint64_t carried = 0, run_bytes = 0, upto = 0;
      for (const auto& [seq, s] : segments_) {
        if (s == open_seg_ || s->entry_pins > 0 || staging_.holds(*s)) break;
        carried += s->state_pins;
        run_bytes += s->size;
        upto = seq;
      }
      if (2 * carried * k_carry_bytes > run_bytes) return false;  // mostly live: wait
      for (const auto& [g, gl] : groups_) {  // only when carrying: what it frees pays for it
        const std::uint64_t h = gl.hard_state_seq();
        if (h == 0 || h > upto) continue;
        state_record st{g, gl.vote_value(), gl.committed(), gl.last_purged(),
                        gl.last_id().value_or(log_id{0, 0})};
        auto t = stage_record(st);
        if (!t.ok()) return false;
        ticket = *t;
      }
    }
    if (!await(lk, ticket, true).ok()) return false;  // latched
    // Nothing staged since can make it needed again: entries and state go to newer segments.
    if (segments_.empty() || segments_.begin()->second != seg || closing_ || checkpoints_ > 0 ||
        seg->entry_pins > 0 || seg->state_pins > 0)
      return false;
    freeing_ = seg;  // a checkpoint from here on leaves it out
    const bool may_recycle = recyclable(*seg);
    const std::filesystem::path free_path = dir_ / detail::segment::free_name(seg->seq);
    lk.unlock();
    status e;
    bool recycled = false;
    try {
      if (may_recycle) {  // a file a checkpoint also links keeps its bytes: unlinked
        auto links = fs_.link_count(seg->file);
        recycled = links.ok() && *links == 1;
      }
      e = recycled ? fs_.rename(seg->path, free_path) : fs_.unlink(seg->path);
      if (e.ok()) e = fs_.sync_directory(dir_);
    } catch (...) {
      e = detail::current_exception_status("log engine free", dir_.string());
    }
    std::unique_lock files(files_mu_);  // no reader between its plan and its pread of this file
    lk.lock();
    freeing_.reset();
    if (!e.ok()) {
      latch_failure(e.with_context(where() + "freeing " + seg->path.filename().string() + ": ")).ignore();
      return false;
    }
    if (seg->direct_file.fd >= 0) fs_.close(seg->direct_file).ignore();
    seg->direct_file = {};
    seg->on_disk = false;
    segments_.erase(seg->seq);
    if (last_written_ == seg) last_written_.reset();
    freed_segments_++;
    if (recycled) {
      seg->path = free_path;
      seg->file.path = free_path;  // the descriptor follows the rename
      free_.push_back(seg);
    } else {
      fs_.close(seg->file).ignore();
    }
    return true;
  }

  // Whether freed segment `seg` is kept for recycling (docs/log-engine.md
  // section 5) rather than unlinked: only when segments are prepared ahead
  // (preparation recycles), under tolerate_corrupted_tail (a power loss can
  // leave a recycled segment's old bytes where an unsynced write of its new
  // life was: a tail that does not check, which absolute_consistency
  // refuses; a zero-filled segment reads as a clean end there), at the
  // usual segment size, and while the kept ones stay fewer than the
  // segments still in use, so that disk use after a purge is at most twice
  // the segments in use: about what the log held before the purge. Its
  // link count is checked when freed (a checkpoint's link: unlinked). Under mu_.
  bool recyclable(const segment_state& seg) const {
    return options_.prepare_ahead && options_.recovery == recovery_mode::tolerate_corrupted_tail &&
           seg.size == options_.segment_bytes && free_.size() < segments_.size();
  }

  // Latches `e` (a maintenance failure) and wakes every waiter to see it.
  status latch_failure(status e) {
    latch_.note(e).ignore();
    if (!latch_.latched()) latch_.note(status::io_error(e.message())).ignore();
    round_cv_.notify_all();
    writer_cv_.notify_all();
    return e;
  }

  // The records holding [lo, hi) of g, each with where its bytes are now:
  // below its segment's written end in the file, else copied from the
  // staging buffer. Under mu_.
  result<std::vector<planned_read>> plan_read(const log_group& g, std::uint64_t lo,
                                              std::uint64_t hi) const {
    using namespace detail::segment;
    if (hi < lo)
      return status::invalid_argument(where(g) + "read [" + std::to_string(lo) + ", " +
                                      std::to_string(hi) + "): hi is below lo");
    std::vector<planned_read> out;
    if (lo == hi) return out;
    auto it = groups_.find(g);
    if (it != groups_.end() && it->second.last_purged() && lo <= it->second.last_purged()->index)
      return status::compacted(where(g) + "read from index " + std::to_string(lo) +
                               ": entries up to " + std::to_string(it->second.last_purged()->index) +
                               " are purged");
    if (it == groups_.end() || !it->second.has_entries() || lo < it->second.first_index() ||
        hi > it->second.last_index() + 1)
      return status::unavailable(
          where(g) + "read [" + std::to_string(lo) + ", " + std::to_string(hi) + "): the log holds " +
          (it == groups_.end() || !it->second.has_entries()
               ? std::string("no entry")
               : "[" + std::to_string(it->second.first_index()) + ", " +
                     std::to_string(it->second.last_index() + 1) + ")"));
    for (const record_location& loc : it->second.locate(lo, hi)) {
      planned_read p;
      p.seq = loc.seq;
      p.offset = loc.offset;
      p.record_first = loc.record_first;
      p.first = loc.first;
      p.end = loc.end;
      p.record_end = loc.record_end;
      const auto& seg = segments_.at(loc.seq);
      if (loc.offset < seg->written_end) {
        p.in_file = true;
        p.file = seg->file;
        p.limit = seg->written_end;
      } else {
        SESHAT_RETURN_IF_ERROR(copy_staged(*seg, loc.offset, p));
        p.limit = p.memory_base + p.memory.size();
      }
      out.push_back(std::move(p));
    }
    return out;
  }

  // Copies the record at `offset` of `seg` from the staging buffer (the
  // round in flight, or still staged). Under mu_.
  status copy_staged(const segment_state& seg, std::uint32_t offset, planned_read& p) const {
    using namespace detail::segment;
    const staging_buffer::chunk* c = staging_.find(seg, offset);
    if (!c)
      return status::corrupted_data(where() + segment_name(seg.seq) + ", byte " +
                                    std::to_string(offset) + ": a record past the written end (" +
                                    std::to_string(seg.written_end) + ") that is not staged");
    const std::string_view rest = std::string_view(c->bytes).substr(offset - c->base);
    field_reader r(rest, offset);
    auto rec = decode_record(r);
    if (!rec.ok()) return rec.status().with_context(where() + segment_name(seg.seq) + " (staged), ");
    p.memory.assign(rest.substr(0, rec->size));
    p.memory_base = offset;
    return {};
  }

  detail::log_fs& fs_;
  const std::filesystem::path dir_;
  const segment_log_options options_;
  bool dsync_ = false;  // durable rounds use RWF_DSYNC writes
  // O_DIRECT mode (segment_io::direct, the probe allowing it): the rounds'
  // writer; reset for good when a write is refused with EINVAL. Used by
  // the round in flight outside mu_ (one round at a time).
  std::unique_ptr<detail::segment::direct_writer> direct_;
  std::string io_note_;  // io_note()

  mutable std::mutex mu_;             // guards everything below but writer_
  mutable std::shared_mutex files_mu_;  // readers share it; close takes it to close the files
  std::condition_variable round_cv_;    // a round ended
  std::condition_variable writer_cv_;   // async work staged, callbacks to fire, stop
  std::map<std::uint64_t, std::shared_ptr<segment_state>> segments_;
  std::shared_ptr<segment_state> open_seg_;     // where staging goes
  std::shared_ptr<segment_state> prepared_;     // the next one, durable and filled, or none
  std::shared_ptr<segment_state> preparing_;    // the one being prepared, or none
  std::condition_variable prepared_cv_;         // a preparation ended
  std::uint64_t prepared_segments_ = 0;         // prepared ahead since open
  std::shared_ptr<segment_state> last_written_;  // the segment the last round wrote
  detail::segment::staging_buffer staging_;
  std::string record_bytes_;  // place()'s encoding buffer
  std::vector<detail::segment::term_run> runs_buffer_;  // stage_entries' term runs, reused
  detail::segment::group_map groups_;
  std::uint64_t next_seq_ = 1;
  // Tickets: operations staged, written, durable (counting up from 1).
  std::uint64_t staged_ops_ = 0, written_ops_ = 0, durable_ops_ = 0;
  bool round_running_ = false;
  std::deque<waiting_callback> callbacks_;  // in ticket order
  std::deque<std::pair<callback, status>> to_fire_;
  clock::time_point last_async_{};
  // Bursts (the writer's early start): append_async calls staged since the
  // last round took them; since the last pause of idle_gap_us; the count of
  // the last burst a pause ended; the count that starts a round at once (the
  // last two bursts', or k_no_burst).
  static constexpr std::size_t k_no_burst = std::numeric_limits<std::size_t>::max();
  std::size_t unrounded_async_ = 0, burst_appends_ = 0, last_burst_ = 0;
  std::size_t burst_ = k_no_burst;
  detail::write_latch latch_;
  std::atomic<std::uint64_t> durable_rounds_{0};
  std::atomic<bool> closed_{false};  // closing_, readable without mu_
  status round_error_;            // the failed round's error
  std::uint64_t failed_upto_ = 0;  // the operations it carried
  bool started_ = false, closing_ = false, stop_ = false;
  std::thread writer_;
  // Maintenance (sealing, freeing): segments the writer moved on from, oldest
  // first, not sealed yet; whether the oldest segment may have become free;
  // settle() requests and the last one a pass with nothing to do answered.
  std::deque<std::shared_ptr<segment_state>> to_seal_;
  // Checkpoints copying segments (freeing waits while any is), and the
  // segment being unlinked by free_oldest, whose records are all dead.
  std::uint64_t checkpoints_ = 0;
  std::shared_ptr<segment_state> freeing_;
  std::uint64_t freed_segments_ = 0;
  // Freed segments kept for recycling, oldest first: renamed free-<seq20>.log,
  // their page-cache descriptor open (path and seq are the old life's);
  // prepare_next takes the front. Recycled since open: recycled_segments_.
  std::deque<std::shared_ptr<segment_state>> free_;
  std::uint64_t recycled_segments_ = 0;
  bool free_hint_ = true;
  std::uint64_t settle_asked_ = 0, settle_done_ = 0;
  std::condition_variable maintenance_cv_;  // work for the maintenance thread, stop
  std::condition_variable settled_cv_;      // a maintenance pass found nothing to do
  std::thread maintenance_;
};

}  // namespace seshat
