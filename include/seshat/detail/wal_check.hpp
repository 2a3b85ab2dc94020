// seshat/detail/wal_check.hpp: what open() does with the engine's
// write-ahead log before the engine reads it, for both disk backends (RocksDB
// and LevelDB write the same log format). Not part of the public API.
//
// The log format (LevelDB's doc/log_format.md; RocksDB's without recycled
// logs or WAL compression, which seshat never turns on):
//   log     := block*                  32 KiB blocks, the last one may be short
//   block   := record* trailer         trailer: < 7 bytes where no header fits
//   record  := crc:u32le length:u16le type:u8 data[length]
//   crc     := masked CRC-32C of type and data (mask_crc below)
//   type    := 1 full | 2 first | 3 middle | 4 last
// One write batch is one full record, or first middle* last. A file starts
// with a record and each write appends whole records.
//
// The durability marker. After every sync of the log that succeeded, the
// backend writes (unsynced) one more batch that holds only
//   marker  := "seshat-synced" version:u8 (1) log:u64le offset:u64le
// meaning: when this marker was written, every log numbered below `log`, and
// the first `offset` bytes of log `log`, were durable. RocksDB stores it as
// the batch's log data (PutLogData: in the log only), LevelDB as the value of
// a key outside every column family (leveldb_backend.cpp).
//
// The check (check_logs): a power loss keeps the synced prefix of a log and
// may lose, tear or reorder what follows (the kernel writes an unsynced append
// page by page, in any order), so a log may end in zeros, torn records and
// pieces of later writes. Damage there is an unsynced tail; damage inside the
// synced prefix is lost data that a silent cut would hide. The two are told
// apart by the markers: damage at a point that some whole marker, anywhere in
// the logs, shows durable, is inside synced data. So:
//   - no damage: nothing to do;
//   - damage that a marker shows synced: refused (corrupted_data, naming the
//     log, the offset, what is wrong and the marker), in every mode;
//   - other damage under absolute_consistency: refused;
//   - other damage under tolerate_corrupted_tail: the log is cut at the end of
//     its last whole record before the damage, and every later log emptied:
//     the engine then recovers exactly the writes before the damage (a point
//     in time, never a later write past a hole), which include everything a
//     sync made durable.
// What a marker cannot show: the writes of the last sync before the power
// went, when no later marker reached the disk. Damage there is taken for an
// unsynced tail and cut.
//
// Cost: every live log is read once more and checksummed (CRC-32C in
// hardware) before the engine replays it; see docs/backends.md.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "seshat/detail/crc32c.hpp"
#include "seshat/detail/digits.hpp"
#include "seshat/detail/files.hpp"
#include "seshat/detail/fixed_codec.hpp"
#include "seshat/options.hpp"
#include "seshat/status.hpp"

namespace seshat::detail {

// A point in an engine's logs: bytes [0, offset) of log file number `log`.
struct wal_position {
  std::uint64_t log = 0;
  std::uint64_t offset = 0;
  friend auto operator<=>(const wal_position&, const wal_position&) = default;
};

inline constexpr std::string_view k_wal_marker_magic = "seshat-synced";
inline constexpr char k_wal_marker_version = 1;
inline constexpr std::size_t k_wal_marker_size = k_wal_marker_magic.size() + 1 + 8 + 8;

inline std::string encode_wal_marker(wal_position durable) {
  std::string m(k_wal_marker_magic);
  m.push_back(k_wal_marker_version);
  put_u64(m, durable.log);
  put_u64(m, durable.offset);
  return m;
}

inline std::optional<wal_position> decode_wal_marker(std::string_view m) {
  if (m.size() != k_wal_marker_size || !m.starts_with(k_wal_marker_magic) ||
      m[k_wal_marker_magic.size()] != k_wal_marker_version)
    return std::nullopt;
  fixed_reader r(m.substr(k_wal_marker_magic.size() + 1));
  const wal_position p{r.u64(), r.u64()};
  if (!r.done()) return std::nullopt;
  return p;
}

// The number of a log file named NNNNNN.log, or none.
inline std::optional<std::uint64_t> log_number(std::string_view name) {
  if (!name.ends_with(".log")) return std::nullopt;
  return parse_digits(name.substr(0, name.size() - 4));
}

// At close, a backend whose live write-ahead logs hold more than this
// flushes its memtables to table files first: the next open then replays
// (and check_logs reads) a short log instead of rebuilding the memtables
// from a long one. A store with less closes without a flush: replaying it
// costs little.
inline constexpr std::uint64_t k_flush_on_close_log_bytes = std::uint64_t{4} << 20;

inline constexpr std::size_t k_log_block = 32768;
inline constexpr std::size_t k_log_header = 7;
// No marker batch is longer (LevelDB's, the longer one, is 12 + 3 + key + 1 +
// marker bytes): larger records are not decoded.
inline constexpr std::size_t k_marker_batch_max = 128;

// LevelDB's and RocksDB's crc masking.
inline std::uint32_t unmask_crc(std::uint32_t masked) {
  const std::uint32_t rot = masked - 0xa282ead8u;
  return (rot >> 17) | (rot << 15);
}

// What one log file holds.
struct log_scan {
  std::uint64_t size = 0;    // bytes in the file
  std::uint64_t intact = 0;  // [0, intact): whole records before any damage
  std::optional<std::uint64_t> damage;  // where the first damage starts, if any
  std::string what;                     // what is wrong there
  std::optional<wal_position> durable;  // the furthest whole marker in the file
};

// Reads the next bytes of a file into `out` (at most `n`; fewer only at the
// end, none at the end).
using read_more = std::function<status(std::size_t n, std::string& out)>;
// Recognises a marker batch: the marker, or none.
using marker_of = std::function<std::optional<wal_position>(std::string_view batch)>;

// The record at `pos` of `block`, when its header fits, its length fits the
// block and its checksum matches: its type and data.
struct physical_record {
  unsigned type = 0;
  std::string_view data;
};
inline std::optional<physical_record> record_at(std::string_view block, std::size_t pos) {
  if (block.size() - pos < k_log_header) return std::nullopt;
  const auto* h = reinterpret_cast<const unsigned char*>(block.data() + pos);
  const std::uint32_t length = h[4] | (std::uint32_t{h[5]} << 8);
  if (k_log_header + length > block.size() - pos) return std::nullopt;
  const std::uint32_t expected = unmask_crc(h[0] | (std::uint32_t{h[1]} << 8) |
                                            (std::uint32_t{h[2]} << 16) | (std::uint32_t{h[3]} << 24));
  const std::string_view data = block.substr(pos + k_log_header, length);
  if (crc32c_extend(crc32c(block.substr(pos + 6, 1)), data) != expected) return std::nullopt;
  return physical_record{h[6], data};
}

// Scans one log. Up to the first damage it reads records as the engines do;
// from there on, where the framing can no longer be trusted, it looks at
// every byte offset for a whole marker record (a full record no longer than
// k_marker_batch_max whose checksum matches), so that a marker written after
// the damaged bytes is found even in the same block.
inline result<log_scan> scan_log(const read_more& read, const marker_of& marker) {
  log_scan r;
  bool in_record = false;        // inside first middle* last
  std::uint64_t record_start = 0;
  std::string record;            // its data, while it may be a marker
  bool record_small = true;
  auto damaged = [&](std::uint64_t at, std::string what) {
    r.damage = in_record ? record_start : at;
    r.what = std::move(what);
    in_record = false;
  };
  auto whole = [&](std::uint64_t end, std::string_view data) {
    r.intact = end;
    if (data.empty() || data.size() > k_marker_batch_max) return;  // no marker batch
    if (auto m = marker(data); m && (!r.durable || *r.durable < *m)) r.durable = m;
  };
  // After the damage: every whole marker record of `block` from `pos` on.
  auto find_markers = [&](std::string_view block, std::size_t pos) {
    while (pos + k_log_header <= block.size()) {
      const auto* h = reinterpret_cast<const unsigned char*>(block.data() + pos);
      const std::uint32_t length = h[4] | (std::uint32_t{h[5]} << 8);
      if (h[6] == 1 && length > 0 && length <= k_marker_batch_max) {
        if (auto rec = record_at(block, pos)) {
          if (auto m = marker(rec->data); m && (!r.durable || *r.durable < *m)) r.durable = m;
          pos += k_log_header + length;
          continue;
        }
      }
      ++pos;
    }
  };
  std::string block;
  for (std::uint64_t base = 0;; base += block.size()) {
    block.clear();
    SESHAT_RETURN_IF_ERROR(read(k_log_block, block));
    r.size = base + block.size();
    const bool last_block = block.size() < k_log_block;
    std::size_t pos = 0;
    while (!r.damage && pos < block.size()) {
      const std::uint64_t at = base + pos;
      const std::size_t left = block.size() - pos;
      if (left < k_log_header) {
        // A trailer, or at the end of the file a header cut short.
        if (last_block) damaged(at, "a record header cut short by the end of the file");
        break;
      }
      const auto* h = reinterpret_cast<const unsigned char*>(block.data() + pos);
      const std::uint32_t length = h[4] | (std::uint32_t{h[5]} << 8);
      const unsigned type = h[6];
      if (type == 0 && length == 0) {
        damaged(at, "zeros where a record should start");
        break;
      }
      if (k_log_header + length > left) {
        damaged(at, last_block ? "a record cut short by the end of the file"
                               : "a record length past the end of its block");
        break;
      }
      const auto rec = record_at(block, pos);
      if (!rec) {
        damaged(at, "checksum mismatch");
        break;
      }
      pos += k_log_header + length;
      const std::uint64_t end = base + pos;
      switch (type) {
        case 1:  // full
          if (in_record) damaged(record_start, "a record without its last part");
          else whole(end, rec->data);
          break;
        case 2:  // first
          if (in_record) {
            damaged(record_start, "a record without its last part");
            break;
          }
          in_record = true;
          record_start = at;
          record.assign(rec->data);
          record_small = record.size() <= k_marker_batch_max;
          break;
        case 3:  // middle
        case 4:  // last
          if (!in_record) {
            damaged(at, "the middle or end of a record whose start is missing");
            break;
          }
          record_small = record_small && record.size() + rec->data.size() <= k_marker_batch_max;
          if (record_small) record.append(rec->data);
          if (type == 4) {
            in_record = false;
            whole(end, record_small ? std::string_view(record) : std::string_view());
          }
          break;
        default:
          damaged(at, "unknown record type " + std::to_string(type));
          break;
      }
    }
    if (r.damage) find_markers(block, *r.damage >= base ? *r.damage - base + 1 : 0);
    if (last_block) break;
  }
  if (in_record) damaged(record_start, "a record cut short by the end of the file");
  return r;
}

// The file access check_logs needs, through the engine's environment.
// A read_more over an engine's sequential file: RocksDB's and LevelDB's
// have the same Read(n, Slice*, scratch). `error(s, what)` maps the
// engine's status; `path` names the file in errors.
template <class Slice, class File, class MapError>
read_more sequential_reader(std::shared_ptr<File> file, std::string path, MapError error) {
  auto scratch = std::make_shared<std::string>();
  return [file, scratch, path = std::move(path), error](std::size_t n, std::string& out) -> status {
    scratch->resize(n);
    while (out.size() < n) {
      Slice got;
      auto s = file->Read(n - out.size(), &got, scratch->data());
      if (!s.ok()) return error(s, "read " + path);
      if (got.empty()) break;
      out.append(got.data(), got.size());
    }
    return {};
  };
}

struct log_files {
  std::function<result<std::vector<std::string>>()> list;              // names in the store directory
  std::function<result<read_more>(const std::string& name)> open;     // reads a file from its start
  std::function<status(const std::string& name, std::uint64_t size)> cut;  // truncates it, durably
};

// A log_files::cut for either engine: `file` (in the store directory `dir`)
// cut to `size` bytes, unless `truncated` says the engine's Env did that
// already; then the file and the directory fsynced.
inline status cut_log_file(const std::filesystem::path& file, std::uint64_t size,
                           const std::filesystem::path& dir, bool truncated = false) {
  if (!truncated) {
    std::error_code ec;
    std::filesystem::resize_file(file, size, ec);
    if (ec)
      return status::io_error("open: cut the unsynced tail of " + file.string() + ": " +
                              ec.message());
  }
  SESHAT_RETURN_IF_ERROR(fsync_path(file, false));
  return fsync_path(dir, true);
}

// Checks the logs of the store at `store` before the engine opens it (see the
// header comment). `marker` recognises the engine's marker batch.
inline status check_logs(const std::string& store, recovery_mode mode, const log_files& files,
                         const marker_of& marker) {
  auto names = files.list();
  if (!names.ok()) return names.status();
  std::vector<std::pair<std::uint64_t, std::string>> logs;
  for (const std::string& n : *names)
    if (auto number = log_number(n)) logs.emplace_back(*number, n);
  std::sort(logs.begin(), logs.end());
  std::vector<log_scan> scans;
  std::optional<wal_position> durable;
  for (const auto& [number, name] : logs) {
    auto read = files.open(name);
    if (!read.ok()) return read.status();
    auto scan = scan_log(*read, marker);
    if (!scan.ok())
      return scan.status().with_context("open: read write-ahead log " + name + " of store at " +
                                        store + ": ");
    if (scan->durable && (!durable || *durable < *scan->durable)) durable = scan->durable;
    scans.push_back(std::move(*scan));
  }
  for (std::size_t i = 0; i < logs.size(); ++i) {
    const auto& [number, name] = logs[i];
    const log_scan& s = scans[i];
    const std::string log = "write-ahead log " + name + " of store at " + store;
    // A marker of a later log shows this one durable whole (a damage in it
    // is in synced data); a marker of this log shows its first bytes.
    const bool synced_past =
        durable && ((durable->log > number && s.damage) ||
                    (durable->log == number && durable->offset > s.intact));
    if (!s.damage && !synced_past) continue;
    const std::string where =
        s.damage ? log + " is damaged at offset " + std::to_string(*s.damage) + " (" + s.what + ")"
                 : log + " ends at offset " + std::to_string(s.size);
    if (synced_past) {
      const std::string shown =
          durable->log == number ? "its first " + std::to_string(durable->offset) + " bytes"
                                 : "all of it (a marker in log " + std::to_string(durable->log) + ")";
      return status::corrupted_data(
          "open: " + where + ", inside what was synced: a durability marker shows " + shown +
          " durable, and only the first " + std::to_string(s.intact) +
          " bytes are whole. Dropping the rest would lose acknowledged writes, so the store is not "
          "opened; restore it from a replica or a snapshot");
    }
    if (mode == recovery_mode::absolute_consistency)
      return status::corrupted_data(
          "open: " + where + ", past what was synced (a torn unsynced tail); "
          "recovery_mode::absolute_consistency refuses any damage (tolerate_corrupted_tail drops "
          "the tail)");
    // An unsynced tail: recover to the point before it.
    if (s.intact < s.size) SESHAT_RETURN_IF_ERROR(files.cut(name, s.intact));
    for (std::size_t j = i + 1; j < logs.size(); ++j)
      if (scans[j].size > 0) SESHAT_RETURN_IF_ERROR(files.cut(logs[j].second, 0));
    return {};
  }
  return {};
}

}  // namespace seshat::detail
