// seshat/options.hpp: options for opening a store and for writing.
//
// Every numeric option has an allowed range; validate() refuses a value
// outside it with an invalid-config error that names the field and range.
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <cstdint>
#include <string>

#include "seshat/status.hpp"

// The engines' file-system environments, named here without their headers:
// the core never includes a backend.
namespace rocksdb {
class Env;
}
namespace leveldb {
class Env;
}
namespace seshat::detail {
class log_fs;  // detail/log_fs.hpp
}

namespace seshat {

// The file-system environment a backend does its file I/O through. Null (the
// default) is the engine's own default environment. Meant for tests that
// inject disk faults or simulate a power loss (tests/fault_env/), and for
// users who need their own Env (a throttled or encrypted one, say).
// Ownership: not owned; an environment must outlive every store opened with
// it, including the reopen of storage::restore_snapshot and the checkpoints
// the store makes. The memory backend ignores both fields; each disk backend
// reads only its own.
struct backend_environment {
  rocksdb::Env* rocksdb = nullptr;  // Options::env of rocksdb_backend
  leveldb::Env* leveldb = nullptr;  // Options::env of leveldb_backend
  // The file system of a store's log engine (segmented<B>: its log/
  // directory); null: the operating system's (detail::posix_log_fs).
  detail::log_fs* log_fs = nullptr;
};

// What opening a store does with a damaged write-ahead log. Before the
// engine replays its logs, seshat reads them (detail/wal_check.hpp) and finds
// the first damage: zeros where a record should start, a torn or cut-short
// record, a checksum mismatch, a piece of a record whose start is missing.
// Whether the damage lies inside what was synced is told by durability
// markers: after every sync that succeeded the backend writes a small
// unsynced record "the logs were durable up to here" (docs/format.md,
// section 2); a whole marker anywhere in the logs that shows the damaged
// bytes durable makes it damage inside synced data. In both modes:
//   - damage inside synced data refuses the open: corrupted_data naming the
//     log file, the offset, what is wrong there and how far the marker shows
//     the log durable. Nothing is changed;
//   - a log with no damage opens as it is.
// What a marker cannot show: the writes of the last sync before a power
// loss, when no marker written after that sync reached the disk; damage
// there is taken for an unsynced tail.
enum class recovery_mode {
  // Damage past what was synced is the tail a power loss leaves (unsynced
  // pages lost, torn or reordered: the kernel writes an unsynced append page
  // by page, in any order): the log is cut at the end of its last whole
  // record before the damage, and every later log emptied, durably, before
  // the engine opens. The store then holds exactly the writes before the
  // damage: every acknowledged one, and a prefix of the others; never a
  // later write past a hole.
  tolerate_corrupted_tail,
  // Any damage refuses the open (corrupted_data naming the log file and the
  // offset, and whether the damage lies past what was synced), a torn tail
  // after a power loss included; for stores that were closed cleanly. The
  // engines run in their strict modes too: RocksDB kAbsoluteConsistency,
  // LevelDB paranoid_checks (which also checks table files as it reads
  // them).
  absolute_consistency,
};

// How a log engine's durable round is made durable (docs/log-engine.md
// section 5).
enum class segment_io {
  // pwritev2, then fdatasync: works on every file system (the default).
  write_fdatasync,
  // pwritev2 with RWF_DSYNC (one system call); where the probe at open finds
  // RWF_DSYNC refused, the engine uses write_fdatasync instead.
  dsync,
  // O_DIRECT: each round is one pwritev2 (RWF_DSYNC when durable) from the
  // start of the block holding its start, padded with zeros to whole blocks
  // (the probe's block, 512 or 4096), from an aligned buffer; the last
  // partial block's bytes are kept in memory and written again, the same
  // bytes, by the next round. Reads go through the page cache. Where the
  // probe at open finds O_DIRECT refused, the engine runs as dsync; a
  // direct write refused later with EINVAL (nothing written) is done again
  // as dsync and the engine stays dsync (segment_log::io_note says why).
  direct,
};

// How a log engine's segment prepared ahead gets its blocks
// (segment_log_options::fill).
enum class segment_fill {
  zeros,     // written zeros, then fdatasync, before the segment's header
  allocate,  // fallocate only: unwritten extents
};

// How seshat's log engine (segment_log, and the log of a segmented<B>
// store) lays out and syncs its segments. Checked when the engine opens
// (backends/segment/options.hpp's validate).
struct segment_log_options {
  // The size of every segment file, fixed when it is created; a frame larger
  // than a segment gets a segment of its own, sized to fit. Range
  // [16 KiB, 1 GiB].
  std::uint64_t segment_bytes = std::uint64_t{1} << 20;
  segment_io io = segment_io::write_fdatasync;
  // Whether the engine's maintenance thread prepares the next segment ahead
  // (durable under its name before the writer needs it), so that the round
  // that moves to a new segment writes and syncs only its frame. Off: the
  // round that first writes into a segment creates it (fallocate only).
  // Preparation is also what recycles freed segments: under
  // tolerate_corrupted_tail a freed segment is kept (free-<seq>.log) and the
  // next preparation gives it a new header instead of making a new file (no
  // fill); off, or under absolute_consistency, freed segments are unlinked
  // (docs/log-engine.md, "M7 as built (second part)").
  bool prepare_ahead = true;
  // How a new segment prepared ahead gets its blocks (docs/log-engine.md
  // section 5): zeros written (FALLOC_FL_WRITE_ZEROES where the file system
  // takes it, else zero bytes), so that a sync into it commits no extent
  // conversion, only data; or fallocate only (unwritten extents: every
  // sync into the segment also commits their conversion).
  segment_fill fill = segment_fill::zeros;
  // The longest an async-only round waits for more work after its first
  // append_async, and the pause in stagings after which it starts at once.
  // Ranges [0, 100000] us each.
  std::uint32_t max_linger_us = 2000;
  std::uint32_t idle_gap_us = 50;
  // What open does with damage in the unsynced tail (below). In a
  // segmented<B> store, open_options::recovery applies and this is ignored.
  recovery_mode recovery = recovery_mode::tolerate_corrupted_tail;
};

// How a store is opened. The sizes tune RocksDB's memtables and files;
// LevelDB uses write_buffer_mb and target_file_mb; the memory backend
// checks them and otherwise ignores them.
struct open_options {
  // Create the store when the directory does not hold one yet. When false,
  // opening a missing store fails with a not-found error.
  bool create_if_missing = true;

  // Memtable size, [1, 1024] MB. RocksDB's log families take at most 32 MB,
  // LevelDB's one memtable at most 16 (the open after a killed process
  // replays up to one memtable of them).
  std::uint32_t write_buffer_mb = 64;
  std::uint32_t max_write_buffers = 3; // memtables per family, [2, 10]
  std::uint32_t target_file_mb = 64;   // target table file size, [1, 1024] MB
  // Purge frees the disk: once a log family took this many MB of log
  // writes since its last compaction, the next log range deleted in it
  // (a purge, a truncation) has every range deleted since compacted, in the
  // background (storage::wait_for_compaction). 0: every deletion, [0, 1024].
  std::uint32_t compact_deleted_logs_after_mb = 16;

  recovery_mode recovery = recovery_mode::tolerate_corrupted_tail;

  // The environment the backend does its file I/O through (see above).
  backend_environment environment;

  // The log engine's options, for a store that keeps its log in one
  // (segmented<B>); ignored by the other backends.
  segment_log_options log;

  // The first option outside its range, or success.
  status validate() const {
    if (auto s = check("write_buffer_mb", write_buffer_mb, 1, 1024); !s.ok()) return s;
    if (auto s = check("max_write_buffers", max_write_buffers, 2, 10); !s.ok()) return s;
    if (auto s = check("target_file_mb", target_file_mb, 1, 1024); !s.ok()) return s;
    return check("compact_deleted_logs_after_mb", compact_deleted_logs_after_mb, 0, 1024);
  }

 private:
  static status check(const char* field, std::uint32_t value, std::uint32_t lo, std::uint32_t hi) {
    if (value >= lo && value <= hi) return {};
    return status::invalid_config(std::string(field) + " is " + std::to_string(value) +
                                  ", allowed range is [" + std::to_string(lo) + ", " +
                                  std::to_string(hi) + "]");
  }
};

// How one write is made durable.
struct write_options {
  // When true, the write is durable before it returns, like write() followed
  // by fsync(): it survives a power loss. When false it is in the
  // write-ahead log (it survives a process crash, not a power loss) until a
  // later synced write or sync_wal().
  bool sync = false;
};

}  // namespace seshat
