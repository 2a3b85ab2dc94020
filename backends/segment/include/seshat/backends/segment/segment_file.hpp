// seshat/backends/segment/segment_file.hpp: one segment file of a log
// engine: its names (docs/log-engine.md section 3), its state while the
// engine is open, and its creation in durable order (section 8):
//   1 create prep-<seq20>.tmp (O_EXCL)  2 fallocate the whole size (and,
//     with segment_fill::zeros, zero it with written blocks)
//   3 write the header, fdatasync        4 rename to seg-<seq20>.log
//   5 fsync the log directory
// so a seg- name always names a segment whose header is durable. A crash
// before step 5 leaves a .tmp (deleted at open) or an empty segment. A
// freed segment may instead be recycled (recycle_segment): renamed
// free-<old seq20>.log when freed, then given a new header and its seg-
// name, with the same durable order.
//
// Sealing (section 8): a segment the writer moved on from gets a footer
// (segment_format.hpp: one summary per group, built while its records are
// staged or scanned) and a trailer, written in one pwrite into the space the
// writer kept free at the segment's end, then fdatasync; its frames are made
// durable first, so a seal never describes bytes that could be lost. No
// rename: a trailer that checks is what makes a segment sealed, and one that
// does not (a torn or lost seal) only means open scans the segment.
//
// Thread-safety: segment_state's fields are guarded by the engine's mutex,
// except `file`, set once before the segment is first written and read-only
// after; bytes below written_end never change while the engine is open.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "seshat/detail/log_fs.hpp"
#include "seshat/detail/segment_format.hpp"
#include "seshat/options.hpp"
#include "seshat/status.hpp"

namespace seshat::detail::segment {

// "seg-00000000000000000042.log"
inline std::string segment_name(std::uint64_t seq) {
  char b[32];
  std::snprintf(b, sizeof b, "seg-%020llu.log", static_cast<unsigned long long>(seq));
  return b;
}

// "prep-00000000000000000042.tmp": the name a segment is prepared under.
inline std::string prepare_name(std::uint64_t seq) {
  char b[32];
  std::snprintf(b, sizeof b, "prep-%020llu.tmp", static_cast<unsigned long long>(seq));
  return b;
}

// The seq of a segment_name, or nothing for any other name.
inline std::optional<std::uint64_t> parse_segment_name(std::string_view name) {
  if (name.size() != 28 || name.substr(0, 4) != "seg-" || name.substr(24) != ".log") return {};
  std::uint64_t seq = 0;
  for (char c : name.substr(4, 20)) {
    if (c < '0' || c > '9') return {};
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (seq > (UINT64_MAX - digit) / 10) return {};
    seq = seq * 10 + digit;
  }
  return seq;
}

// "copy-00000000000000000042.tmp": own_file's copy of a shared segment.
inline std::string copy_name(std::uint64_t seq) {
  char b[32];
  std::snprintf(b, sizeof b, "copy-%020llu.tmp", static_cast<unsigned long long>(seq));
  return b;
}

// "free-00000000000000000042.log": a freed segment kept for recycling
// (its previous life's seq in the name).
inline std::string free_name(std::uint64_t seq) {
  char b[32];
  std::snprintf(b, sizeof b, "free-%020llu.log", static_cast<unsigned long long>(seq));
  return b;
}

// True for the names open deletes: prep-*.tmp, copy-*.tmp, probe.tmp and
// free-*.log (a freed segment an engine kept for recycling is not kept
// across a reopen).
inline bool is_leftover_name(std::string_view name) {
  auto named = [&](std::string_view prefix, std::string_view suffix) {
    return name.size() > prefix.size() + suffix.size() && name.substr(0, prefix.size()) == prefix &&
           name.substr(name.size() - suffix.size()) == suffix;
  };
  return name == "probe.tmp" || named("prep-", ".tmp") || named("copy-", ".tmp") || named("free-", ".log");
}

// A bound of what footer and trailer take: their fixed bytes, at most
// k_summary_bound_bytes per group with records in the segment (a summary's
// fields but its term runs and record refs: 85 bytes), and per entries
// record one record ref (8) and its term runs (12 each).
inline constexpr std::uint64_t k_seal_fixed_bytes = k_footer_fixed_bytes + k_trailer_bytes;
inline constexpr std::uint64_t k_summary_bound_bytes = 96;

// One segment of an open engine.
// Invariant: 4096 <= synced_end <= written_end <= size; the bytes of
// [4096, written_end) are whole frames; [written_end, written_end + 4) is zero
// (the body's `end`) once written_end > 4096; written_end + 4 + seal_reserve
// <= size, so the seal always fits after the body.
struct segment_state {
  std::uint64_t seq = 0;
  std::uint64_t size = 0;
  std::filesystem::path path;  // seg-<seq20>.log in the log directory
  log_file file;               // valid once on_disk: reads, seals, syncs, page-cache writes
  log_file direct_file;        // io direct: the O_DIRECT descriptor rounds write through (fd -1: none yet)
  bool on_disk = false;        // durable under its seg- name
  std::uint64_t written_end = k_header_bytes;
  std::uint64_t synced_end = k_header_bytes;
  // What its seal will say, from the records staged (or scanned) into it:
  // one summary per group, the frames and the last frame's number. Dropped
  // once sealed.
  std::map<group_address, summary_builder> summaries;
  std::uint32_t frames = 0;
  std::uint64_t last_number = 0;
  std::uint64_t seal_reserve = k_seal_fixed_bytes;  // >= the seal's bytes
  bool sealed = false;  // its seal is durable (written here, or found at open)
  // The groups that need this segment (section 8), kept by the engine as
  // each record applies: those whose first live entry is here, and those
  // whose oldest needed vote, committed or purge point is here. Freeing
  // (oldest first) reads these, not every group.
  std::uint32_t entry_pins = 0;
  std::uint32_t state_pins = 0;

  // What a record of group `g` adds to seal_reserve.
  std::uint64_t seal_growth(const group_address& g, std::size_t term_runs, bool entries) const {
    return (summaries.count(g) ? 0 : k_summary_bound_bytes) + (entries ? 8 + 12 * term_runs : 0);
  }
  // Notes a record of this segment for its seal (seal_growth(...) = `growth`).
  void note_for_seal(const record& r, std::uint64_t growth) {
    summaries.try_emplace(r.group(), r.group()).first->second.add(r);
    seal_reserve += growth;
  }
};

// The seal of `s` as it stands (its body ends at written_end): the footer
// and trailer bytes and their offset, or nothing when they do not fit
// after the body's `end` (a segment written before seals were reserved).
inline std::optional<std::pair<std::uint64_t, std::string>> seal_bytes(const segment_state& s) {
  footer f;
  f.body_end = static_cast<std::uint32_t>(s.written_end);
  f.frames = s.frames;
  f.last_number = s.last_number;
  for (const auto& [g, b] : s.summaries) f.groups.push_back(b.finish());
  std::string bytes = encode_footer(f, s.seq);
  const std::uint64_t need = bytes.size() + k_trailer_bytes;
  if (s.written_end + 4 + need > s.size) return std::nullopt;
  bytes += encode_trailer(bytes, s.seq, s.size);
  return std::pair{s.size - need, std::move(bytes)};
}

// Writes a seal made by seal_bytes into `f` durably: an fdatasync first
// when the segment holds unsynced frames (`frames_unsynced`), then one
// pwrite of footer and trailer and an fdatasync.
inline fs_status write_seal(log_fs& fs, const log_file& f, bool frames_unsynced, std::uint64_t at,
                            std::string_view bytes) {
  if (frames_unsynced)
    if (fs_status e = fs.datasync(f); !e.ok()) return e;
  const std::string_view pieces[] = {bytes};
  if (fs_status e = fs.pwrite(f, at, pieces, {}); !e.ok()) return e;
  return fs.datasync(f);
}

inline std::uint64_t now_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// Zeroes [0, size) of `f` with written blocks: FALLOC_FL_WRITE_ZEROES where
// the file system takes it, else zero bytes in 1 MiB writes (tmpfs, and
// every file system before Linux 6.17). Not durable until the next datasync.
inline fs_status zero_fill(log_fs& fs, const log_file& f, std::uint64_t size) {
  auto offloaded = fs.write_zeroes(f, 0, size);
  if (!offloaded.ok()) return fs_status(offloaded.status(), offloaded.os_error());
  if (*offloaded) return {};
  static const std::string zeros(std::size_t{64} << 10, '\0');
  std::string_view pieces[16];
  for (std::uint64_t at = 0; at < size;) {
    std::size_t n = 0;
    std::uint64_t length = 0;
    while (n < 16 && at + length < size) {
      const std::uint64_t take = std::min<std::uint64_t>(zeros.size(), size - at - length);
      pieces[n++] = std::string_view(zeros.data(), static_cast<std::size_t>(take));
      length += take;
    }
    if (fs_status e = fs.pwrite(f, at, std::span(pieces, n), {}); !e.ok()) return e;
    at += length;
  }
  return {};
}

// Creates `to` (exclusive) as a copy of [0, end) of the open file `from`,
// `size` bytes long (the rest allocated: reading as zeros, as the unwritten
// part of a segment does), fdatasynced. Blocks that read as zeros are not
// written. The caller syncs `to`'s directory.
inline status copy_file_prefix(log_fs& fs, const log_file& from, const std::filesystem::path& to,
                               std::uint64_t size, std::uint64_t end) {
  auto out = fs.open(to, {.create_exclusive = true});
  if (!out.ok()) return out.status();
  status s = fs.allocate(*out, size);
  std::string buffer;
  constexpr std::uint64_t k_chunk = std::uint64_t{1} << 20;
  for (std::uint64_t at = 0; s.ok() && at < end; at += k_chunk) {
    buffer.assign(static_cast<std::size_t>(std::min(k_chunk, end - at)), '\0');
    auto n = fs.pread(from, at, std::span<char>(buffer.data(), buffer.size()));
    if (!n.ok()) {
      s = n.status();
      break;
    }
    buffer.resize(*n);
    if (buffer.empty()) break;  // the file ends early: the rest reads as zeros
    if (std::all_of(buffer.begin(), buffer.end(), [](char c) { return c == 0; })) continue;
    const std::string_view pieces[] = {buffer};
    s = fs.pwrite(*out, at, pieces, {});
  }
  if (s.ok()) s = fs.datasync(*out);
  status closed = fs.close(*out);
  if (s.ok()) s = closed;
  if (!s.ok()) (void)fs.unlink(to);
  return s;
}

// Makes the file of segment `s` (open read-write, s.size bytes) its own
// before an in-place rewrite (recovery's tail cut and reseal): when it has
// more than one link (a checkpoint's hard link, log_checkpoint.hpp), copies
// it whole to copy-<seq20>.tmp in `dir` (fdatasynced), renames the copy
// over s.path, fsyncs `dir`, and has s.file name the copy (the old handle
// closed), so the other names keep their bytes. A no-op for a file with one
// link. A failure leaves s.file as it was, and at most the .tmp, which the
// next open deletes; a crash before the directory fsync leaves either name.
inline fs_status own_file(log_fs& fs, const std::filesystem::path& dir, segment_state& s) {
  auto links = fs.link_count(s.file);
  if (!links.ok()) return fs_status(links.status(), links.os_error());
  if (*links <= 1) return {};
  const std::filesystem::path tmp = dir / copy_name(s.seq);
  if (status c = copy_file_prefix(fs, s.file, tmp, s.size, s.size); !c.ok()) return fs_status(c);
  if (fs_status e = fs.replace(tmp, s.path); !e.ok()) {
    (void)fs.unlink(tmp);
    return e;
  }
  if (fs_status e = fs.sync_directory(dir); !e.ok()) return e;
  auto f = fs.open(s.path, {});
  if (!f.ok()) return fs_status(f.status(), f.os_error());
  fs.close(s.file).ignore();
  s.file = *f;
  return {};
}

// Makes the freed segment file `f` (named `free_path` in `dir`, s.size
// bytes, its previous life's seq `prev` < s.seq) segment `s` again, in
// durable order: write the new header (prev set), fdatasync, rename to
// s.path, fsync `dir`. Its old bytes stay: every frame, entry CRC, footer
// and trailer of the old life names the old seq, so the new life's scan
// reads them as a stale end and its seal check as "not sealed"
// (segment_format.hpp). Touches no field of `s`; returns `f` named by
// s.path. A failure is the failed call's io-error; a crash before the
// directory fsync leaves either name (a free- name is deleted at open, a
// seg- name is a durable empty segment).
inline fs_result<log_file> recycle_segment(log_fs& fs, const std::filesystem::path& dir, const log_file& f,
                                           const std::filesystem::path& free_path, std::uint64_t prev,
                                           const segment_state& s, std::uint16_t block) {
  header h;
  h.seq = s.seq;
  h.prev = prev;
  h.size = s.size;
  h.created_ms = now_ms();
  h.block = block;
  const std::string bytes = encode_header(h);
  const std::string_view pieces[] = {bytes};
  if (fs_status e = fs.pwrite(f, 0, pieces, {}); !e.ok()) return e;
  if (fs_status e = fs.datasync(f); !e.ok()) return e;
  if (fs_status e = fs.rename(free_path, s.path); !e.ok()) return e;
  if (fs_status e = fs.sync_directory(dir); !e.ok()) return e;
  log_file out = f;
  out.path = s.path;
  return out;
}

// Creates segment `s` (seq, size and path set) in `dir` in the durable
// order of the file comment and returns it open, read-write, named by its
// seg- path. Touches no field of `s`. `block` goes into the header: the
// O_DIRECT write alignment the engine writes this life with (0: page-cache
// writes). A failure is the failed call's io-error; a .tmp it leaves is
// deleted by the next open.
inline fs_result<log_file> create_segment(log_fs& fs, const std::filesystem::path& dir,
                                          const segment_state& s,
                                          segment_fill fill = segment_fill::allocate,
                                          std::uint16_t block = 0) {
  const std::filesystem::path tmp = dir / prepare_name(s.seq);
  auto f = fs.open(tmp, {.create_exclusive = true});
  if (!f.ok()) return fs_status(f.status(), f.os_error());
  auto fail = [&](fs_status e) {
    fs.close(*f).ignore();
    return e;
  };
  if (fs_status e = fs.allocate(*f, s.size); !e.ok()) return fail(e);
  if (fill == segment_fill::zeros)
    if (fs_status e = zero_fill(fs, *f, s.size); !e.ok()) return fail(e);
  header h;
  h.seq = s.seq;
  h.size = s.size;
  h.created_ms = now_ms();
  h.block = block;
  const std::string bytes = encode_header(h);
  const std::string_view pieces[] = {bytes};
  if (fs_status e = fs.pwrite(*f, 0, pieces, {}); !e.ok()) return fail(e);
  if (fs_status e = fs.datasync(*f); !e.ok()) return fail(e);
  if (fs_status e = fs.rename(tmp, s.path); !e.ok()) return fail(e);
  if (fs_status e = fs.sync_directory(dir); !e.ok()) return fail(e);
  log_file out = *f;
  out.path = s.path;  // the descriptor follows the rename
  return out;
}

}  // namespace seshat::detail::segment
