// seshat/detail/segment_format.hpp: the bytes of the log engine's segment
// files (docs/log-engine.md section 4, docs/format.md section 11): encode and
// decode of the header, frames, records, footer and trailer, and the replay
// rules with which a segment's records, or its footer's summaries, rebuild a
// group's log. No file access here: callers hand in and take out bytes.
//
// Little-endian fixed-width integers; CRC-32C as in format.md section 4.
//
//   segment  := header body free_space [footer trailer]     its size is fixed when prepared
//   header   := "SESHSEGM" version:u8 flags:u8 block:u16le seq:u64le prev:u64le size:u64le
//               created_ms:u64le crc:u32le zeros                                 4096 bytes
//     version  := 1;  flags := 0;  block := 0 (buffered), 512 or 4096 (O_DIRECT)
//     seq > 0, prev < seq (0: a new file), size in [k_min_segment_bytes, k_max_segment_bytes]
//     crc      := CRC-32C of every header byte before it;  zeros: to byte 4096, all zero
//   body     := frame* end
//   end      := 0x00000000                                  a zero length where a frame would start
//   frame    := length:u32le crc:u32le kind:u8 seq:u64le number:u64le durable:u32le record+
//     length   := bytes after the crc field (kind to the last record's end)
//     kind     := 0x46 ('F');  seq: the segment's (an older one: a stale frame, a clean end)
//     number   := counts up over the whole store;  durable: the segment was durable below it
//     crc      := CRC-32C of kind .. the frame's end, followed by length:u32le
//     durable  in [4096, the frame's offset]
//   record   := entries | vote | committed | truncate | purge | reset | state
//   group    := family:u8 id:u64le                          family 0 with id 0, or 3 with id > 0
//   entries  := 0x01 group first:u64le count:u32le runs:u16le (term:u64le n:u32le)*runs
//               size:u32le*count entry*count                count >= 1; n >= 1, sum n = count,
//                                                           terms strictly increasing; first >= 1
//   entry    := crc:u32le payload                           payload `size` bytes; crc: CRC-32C of
//                                                           seq:u64le index:u64le payload
//   vote     := 0x02 group term:u64le flags:u8 [voted_for:u64le]    hard_state.hpp's encoding
//   committed:= 0x03 group term:u64le index:u64le
//   truncate := 0x04 group since:u64le                      deletes [since, last]
//   purge    := 0x05 group term:u64le index:u64le           deletes [first, index]; last purged id
//   reset    := 0x06 group term:u64le index:u64le           deletes every entry; last purged id
//   state    := 0x07 group flags:u8 [vote] [committed] [purged:(term index)] last:(term index)
//     flags    := bit 0 vote, 1 committed, 2 purged (vote without its 0x02 and group)
//   footer   := "SESHSEAL" body_end:u32le frames:u32le last_number:u64le groups:u32le
//               summary*groups crc:u32le                    summaries in increasing group order
//     crc      := CRC-32C of seq:u64le (the segment's), then the footer bytes before the crc
//   summary  := group flags:u8 [cut:u64le] [purged:(term index)] [vote] [committed]
//               base:u64le count:u32le runs:u16le (term:u64le n:u32le)*runs
//               records:u32le (offset:u32le first:u32le)*records
//     flags    := bit 0 reset, 1 cut, 2 purged, 3 vote, 4 committed; reset requires purged
//     count 0: base, runs and records are 0;  otherwise runs as in `entries`, records >= 1,
//     record firsts strictly increasing from 0 and below count, offsets strictly increasing
//   trailer  := footer_at:u32le footer_size:u32le seq:u64le footer_crc:u32le "SESHTAIL"
//               crc:u32le                                   the file's last 32 bytes
//     footer_at + footer_size = size - 32;  footer_crc: the footer's crc field
//     crc      := CRC-32C of the trailer bytes before it
//
// Replay (one group, in segment and frame order; replayed_group::apply):
//   entries   cuts the log at `first` (deletes [first, last]), then appends; refused when
//             first <= the last purged index, or first > last + 1 (a gap) once the group is known
//   truncate  deletes [since, last];  state: deletes [last.index + 1, ...], sets what it carries
//   purge     deletes [first, index], sets the last purged id;  reset: deletes every entry, sets it
//   vote, committed: set
// A summary is the net effect of one segment's records on one group, applied in this order:
//   reset (every older entry is gone) or cut (older entries at or above it are gone), the
//   segment's own surviving entries [base, base + count) (older entries at or above base are
//   gone), purged (entries at or below it are gone), vote, committed. Applying a segment's
//   summary equals replaying its records (tests/segment_format_test.cpp).
//
// Every decoder refusal is corrupted_data (a header version other than 1: version_mismatch)
// naming the byte offset in the segment and, where there is one, expected vs got. Callers put
// the segment's name in front.
//
// Thread-safety: free functions on values; distinct objects from distinct threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "seshat/column_family.hpp"
#include "seshat/detail/crc32c.hpp"
#include "seshat/detail/inline_vector.hpp"
#include "seshat/hard_state.hpp"
#include "seshat/log_id.hpp"
#include "seshat/status.hpp"

namespace seshat::detail::segment {

inline constexpr std::string_view k_header_magic = "SESHSEGM";
inline constexpr std::string_view k_footer_magic = "SESHSEAL";
inline constexpr std::string_view k_trailer_magic = "SESHTAIL";
inline constexpr std::uint8_t k_version = 1;
inline constexpr std::size_t k_header_bytes = 4096;
inline constexpr std::size_t k_header_fields_bytes = 44;  // magic to created_ms
inline constexpr std::size_t k_frame_header_bytes = 29;   // length, crc, kind, seq, number, durable
inline constexpr std::size_t k_frame_fixed_after_crc = 21;
inline constexpr std::uint8_t k_frame_kind = 0x46;
inline constexpr std::size_t k_trailer_bytes = 32;
inline constexpr std::size_t k_footer_fixed_bytes = 32;  // magic .. groups, crc
inline constexpr std::uint64_t k_min_segment_bytes = 16 * 1024;
inline constexpr std::uint64_t k_max_segment_bytes = std::uint64_t{1} << 30;

enum class record_kind : std::uint8_t {
  entries = 0x01,
  vote = 0x02,
  committed = 0x03,
  truncate = 0x04,
  purge = 0x05,
  reset = 0x06,
  state = 0x07,
};

// ---- fixed-width fields ---------------------------------------------------------

inline void put_le(std::string& out, std::uint64_t v, int bytes) {
  char b[8];  // one append, not one per byte
  for (int i = 0; i < bytes; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out.append(b, static_cast<std::size_t>(bytes));
}
inline void put8(std::string& out, std::uint8_t v) { out += static_cast<char>(v); }
inline void put16(std::string& out, std::uint16_t v) { put_le(out, v, 2); }
inline void put32(std::string& out, std::uint32_t v) { put_le(out, v, 4); }
inline void put64(std::string& out, std::uint64_t v) { put_le(out, v, 8); }
inline void store32(std::string& out, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out[at + i] = static_cast<char>(v >> (8 * i));
}
inline std::uint64_t load_le(const char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= std::uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}
inline std::uint32_t load32(const char* p) { return static_cast<std::uint32_t>(load_le(p, 4)); }
inline std::uint64_t load64(const char* p) { return load_le(p, 8); }

inline std::string hex32(std::uint32_t v) {
  char b[11];
  std::snprintf(b, sizeof b, "0x%08x", v);
  return b;
}

// "byte N: <what>" as corrupted_data.
inline status damage(std::uint64_t at, const std::string& what) {
  return status::corrupted_data("byte " + std::to_string(at) + ": " + what);
}

// Reads fields front to back from a view that starts at segment offset
// `base`; the first short read or bad field becomes a corrupted_data naming
// its offset (error() then holds it, every later read returns 0).
class field_reader {
 public:
  field_reader(std::string_view in, std::uint64_t base) : in_(in), base_(base) {}
  std::uint64_t uint(int bytes, const char* what) {
    if (!take(static_cast<std::size_t>(bytes), what)) return 0;
    const std::uint64_t v = load_le(in_.data() + pos_, bytes);
    pos_ += static_cast<std::size_t>(bytes);
    return v;
  }
  std::uint8_t u8(const char* what) { return static_cast<std::uint8_t>(uint(1, what)); }
  std::uint16_t u16(const char* what) { return static_cast<std::uint16_t>(uint(2, what)); }
  std::uint32_t u32(const char* what) { return static_cast<std::uint32_t>(uint(4, what)); }
  std::uint64_t u64(const char* what) { return uint(8, what); }
  // `n` bytes as a view (empty on a short read).
  std::string_view bytes(std::uint64_t n, const char* what) {
    if (!take(n, what)) return {};
    std::string_view v = in_.substr(pos_, static_cast<std::size_t>(n));
    pos_ += static_cast<std::size_t>(n);
    return v;
  }
  // Records the first refusal, at the current offset.
  void fail(const std::string& what) {
    if (error_.ok()) error_ = damage(offset(), what);
  }
  void fail_at(std::uint64_t at, const std::string& what) {
    if (error_.ok()) error_ = damage(at, what);
  }
  bool ok() const { return error_.ok(); }
  const status& error() const { return error_; }
  std::uint64_t offset() const { return base_ + pos_; }
  std::size_t left() const { return in_.size() - pos_; }

 private:
  bool take(std::uint64_t n, const char* what) {
    if (!error_.ok()) return false;
    if (left() >= n) return true;
    error_ = damage(offset(), std::string(what) + ": needs " + std::to_string(n) + " bytes, " +
                                  std::to_string(left()) + " left");
    return false;
  }
  std::string_view in_;
  std::uint64_t base_;
  std::size_t pos_ = 0;
  status error_;
};

// ---- groups -------------------------------------------------------------------------

// A group's address in the log engine: the system group (family
// system_raft_log, id 0) or a data group (family data_raft_log, id > 0).
struct group_address {
  std::uint8_t family = 0;
  std::uint64_t id = 0;
  friend auto operator<=>(const group_address&, const group_address&) = default;
};

inline std::string to_string(const group_address& g) {
  return "group (family " + std::to_string(g.family) + ", id " + std::to_string(g.id) + ")";
}

inline bool valid(const group_address& g) {
  return (g.family == index_of(column_family::system_raft_log) && g.id == 0) ||
         (g.family == index_of(column_family::data_raft_log) && g.id > 0);
}

inline void put_group(std::string& out, const group_address& g) {
  put8(out, g.family);
  put64(out, g.id);
}

inline group_address read_group(field_reader& r) {
  const std::uint64_t at = r.offset();
  group_address g;
  g.family = r.u8("group family");
  g.id = r.u64("group id");
  if (r.ok() && !valid(g))
    r.fail_at(at, "group (family " + std::to_string(g.family) + ", id " + std::to_string(g.id) +
                      "): expected family 0 with id 0 or family 3 with id > 0");
  return g;
}

inline void put_log_id(std::string& out, const log_id& id) {
  put64(out, id.term);
  put64(out, id.index);
}
inline log_id read_log_id(field_reader& r, const char* what) {
  log_id id;
  id.term = r.u64(what);
  id.index = r.u64(what);
  return id;
}

inline void put_vote(std::string& out, const vote& v) { codec::encode(v, out); }
inline vote read_vote(field_reader& r) {
  vote v;
  v.term = r.u64("vote term");
  const std::uint64_t at = r.offset();
  const std::uint8_t flags = r.u8("vote flags");
  if (r.ok() && (flags & ~3) != 0) r.fail_at(at, "vote flags " + hex32(flags) + ": expected bits 0-1 only");
  v.committed = (flags & 2) != 0;
  if (flags & 1) v.voted_for = r.u64("vote voted_for");
  return v;
}

// ---- header -------------------------------------------------------------------------

struct header {
  std::uint16_t block = 0;  // the write alignment of this life: 0, 512 or 4096
  std::uint64_t seq = 0;
  std::uint64_t prev = 0;   // the previous life's seq, 0 for a new file
  std::uint64_t size = 0;   // the file's fixed size
  std::uint64_t created_ms = 0;
  friend bool operator==(const header&, const header&) = default;
};

// The header's 4096 bytes. REQUIRES: the fields are valid (decode_header accepts them).
inline std::string encode_header(const header& h) {
  std::string out(k_header_magic);
  put8(out, k_version);
  put8(out, 0);
  put16(out, h.block);
  put64(out, h.seq);
  put64(out, h.prev);
  put64(out, h.size);
  put64(out, h.created_ms);
  put32(out, crc32c(out));
  out.resize(k_header_bytes, '\0');
  return out;
}

// Decodes the first 4096 bytes of `in` (a segment's start).
inline result<header> decode_header(std::string_view in) {
  if (in.size() < k_header_bytes)
    return damage(0, "header: needs " + std::to_string(k_header_bytes) + " bytes, " +
                         std::to_string(in.size()) + " in the file");
  if (in.substr(0, 8) != k_header_magic) return damage(0, "header magic: expected \"SESHSEGM\"");
  const std::uint32_t stored = load32(in.data() + k_header_fields_bytes);
  const std::uint32_t computed = crc32c(in.substr(0, k_header_fields_bytes));
  if (stored != computed)
    return damage(k_header_fields_bytes, "header checksum mismatch (stored " + hex32(stored) +
                                             ", computed " + hex32(computed) + ")");
  const auto version = static_cast<std::uint8_t>(in[8]);
  if (version != k_version)
    return status::version_mismatch("byte 8: segment format version " + std::to_string(version) +
                                    ", this seshat reads 1 to 1");
  field_reader r(in.substr(9, k_header_fields_bytes - 9), 9);
  const std::uint8_t flags = r.u8("flags");
  header h;
  h.block = r.u16("block");
  h.seq = r.u64("seq");
  h.prev = r.u64("prev");
  h.size = r.u64("size");
  h.created_ms = r.u64("created_ms");
  if (flags != 0) return damage(9, "header flags " + std::to_string(flags) + ": expected 0");
  if (h.block != 0 && h.block != 512 && h.block != 4096)
    return damage(10, "header block " + std::to_string(h.block) + ": expected 0, 512 or 4096");
  if (h.seq == 0) return damage(12, "header seq 0: expected > 0");
  if (h.prev >= h.seq)
    return damage(20, "header prev " + std::to_string(h.prev) + ": expected below seq " +
                          std::to_string(h.seq));
  if (h.size < k_min_segment_bytes || h.size > k_max_segment_bytes)
    return damage(28, "header size " + std::to_string(h.size) + ": expected " +
                          std::to_string(k_min_segment_bytes) + " to " +
                          std::to_string(k_max_segment_bytes));
  for (std::size_t i = k_header_fields_bytes + 4; i < k_header_bytes; ++i)
    if (in[i] != '\0')
      return damage(i, "header padding: expected zero, got " +
                           std::to_string(static_cast<unsigned char>(in[i])));
  return h;
}

// ---- records ------------------------------------------------------------------------

struct term_run {
  std::uint64_t term = 0;
  std::uint32_t count = 0;
  friend bool operator==(const term_run&, const term_run&) = default;
};

// One entry handed to append_entries: its term and the Serializer's bytes.
struct entry_input {
  std::uint64_t term = 0;
  std::string_view payload;
};

// An entry's stored CRC: CRC-32C of seq:u64le, index:u64le and the payload.
inline std::uint32_t entry_crc(std::uint64_t seq, std::uint64_t index, std::string_view payload) {
  char prefix[16];
  for (int i = 0; i < 8; ++i) {
    prefix[i] = static_cast<char>(seq >> (8 * i));
    prefix[8 + i] = static_cast<char>(index >> (8 * i));
  }
  return crc32c_extend(crc32c(std::string_view(prefix, 16)), payload);
}

// An entries record's fixed part (kind 1, group 9, first 8, count 4, runs
// 2 bytes), and one term run in its table (term 8, count 4).
inline constexpr std::size_t k_entries_fixed_bytes = 24;
inline constexpr std::size_t k_term_run_bytes = 12;

// What an entries record of `entries` at [first, first + n) holds besides
// them: its number of term runs, and its size in bytes.
struct entries_shape {
  std::size_t runs = 0;
  std::size_t bytes = 0;
};

// Checks an entries record of `entries` at indices [first, first + n) (the
// refusals of append_entries) and returns its shape.
inline result<entries_shape> shape_entries(std::uint64_t first,
                                           std::span<const entry_input> entries) {
  if (entries.empty()) return status::invalid_argument("an entries record needs an entry");
  if (first == 0 || entries.size() > 0xFFFFFFFFu ||
      first - 1 > k_max_log_index - entries.size())
    return status::invalid_argument("entries [" + std::to_string(first) + ", +" +
                                    std::to_string(entries.size()) + "): outside [1, " +
                                    std::to_string(k_max_log_index) + "]");
  entries_shape shape;
  shape.bytes = k_entries_fixed_bytes;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].payload.size() > 0xFFFFFFFFu)
      return status::invalid_argument("entry " + std::to_string(first + i) + " of " +
                                      std::to_string(entries[i].payload.size()) +
                                      " bytes: at most 4 GiB - 1");
    if (i > 0 && entries[i].term < entries[i - 1].term)
      return status::invalid_argument("entry " + std::to_string(first + i) + " has term " +
                                      std::to_string(entries[i].term) + " after term " +
                                      std::to_string(entries[i - 1].term));
    if (i == 0 || entries[i].term != entries[i - 1].term) ++shape.runs;
    shape.bytes += 4 + 4 + entries[i].payload.size();
  }
  if (shape.runs > 0xFFFF)
    return status::invalid_argument(std::to_string(shape.runs) +
                                    " term changes in one record: at most 65535");
  shape.bytes += k_term_run_bytes * shape.runs;
  return shape;
}

// Appends the entries record of `entries` at [first, first + n) to `out`,
// for segment `seq`: `shape` bytes. REQUIRES: shape ==
// shape_entries(first, entries) (which accepted them).
inline void put_entries(std::string& out, std::uint64_t seq, const group_address& g,
                        std::uint64_t first, std::span<const entry_input> entries,
                        const entries_shape& shape) {
  // The fixed part and the tables through one pointer, after one size change.
  const std::size_t fixed = k_entries_fixed_bytes + k_term_run_bytes * shape.runs + 4 * entries.size();
  const std::size_t at = out.size();
  out.reserve(at + shape.bytes);
  out.resize(at + fixed);
  char* p = out.data() + at;
  auto le = [&p](std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) *p++ = static_cast<char>(v >> (8 * i));
  };
  le(static_cast<std::uint8_t>(record_kind::entries), 1);
  le(g.family, 1);
  le(g.id, 8);
  le(first, 8);
  le(entries.size(), 4);
  le(shape.runs, 2);
  std::uint64_t term = entries.front().term;
  std::uint32_t run = 0;
  for (const entry_input& e : entries) {
    if (e.term != term) {
      le(term, 8);
      le(run, 4);
      term = e.term;
      run = 0;
    }
    ++run;
  }
  le(term, 8);
  le(run, 4);
  for (const entry_input& e : entries) le(e.payload.size(), 4);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    put32(out, entry_crc(seq, first + i, entries[i].payload));
    out.append(entries[i].payload);
  }
}

// Appends an entries record of `entries` at indices [first, first + n) to
// `out`, for segment `seq`. Refused (invalid-argument, `out` unchanged)
// when there is no entry, first is 0, the indices pass k_max_log_index,
// the terms decrease, there are more than 65535 term changes, or an entry
// is 4 GiB or more.
inline status append_entries(std::string& out, std::uint64_t seq, const group_address& g,
                             std::uint64_t first, std::span<const entry_input> entries) {
  SESHAT_ASSIGN_OR_RETURN(const entries_shape shape, shape_entries(first, entries));
  put_entries(out, seq, g, first, entries, shape);
  return {};
}

// A decoded entries record: views into the frame's bytes.
struct entries_record {
  group_address group;
  std::uint64_t first = 0;
  std::uint32_t count = 0;
  std::vector<term_run> runs;
  std::string_view sizes;         // count x size:u32le
  std::string_view body;          // count x (crc:u32le payload)
  std::uint64_t body_offset = 0;  // body's offset in the segment
  std::uint32_t size(std::uint32_t i) const { return load32(sizes.data() + 4 * i); }
  // The term of the entry at index first + i.
  std::uint64_t term_of(std::uint32_t i) const {
    for (const term_run& run : runs) {
      if (i < run.count) return run.term;
      i -= run.count;
    }
    return 0;
  }
};

struct vote_record {
  group_address group;
  vote value;
};
struct committed_record {
  group_address group;
  log_id id;
};
struct truncate_record {
  group_address group;
  std::uint64_t since = 0;
};
struct purge_record {
  group_address group;
  log_id id;
};
struct reset_record {
  group_address group;
  log_id id;
};
struct state_record {
  group_address group;
  std::optional<vote> vote_value;
  std::optional<log_id> committed;
  std::optional<log_id> purged;
  log_id last;
};

using record_body = std::variant<entries_record, vote_record, committed_record, truncate_record,
                                 purge_record, reset_record, state_record>;

// A record as decoded from a frame: where it is, how long, what it says.
struct record {
  std::uint32_t offset = 0;  // in the segment
  std::uint32_t size = 0;
  record_body body;
  const group_address& group() const {
    return std::visit([](const auto& b) -> const group_address& { return b.group; }, body);
  }
};

inline void encode_record(std::string& out, const vote_record& r) {
  put8(out, static_cast<std::uint8_t>(record_kind::vote));
  put_group(out, r.group);
  put_vote(out, r.value);
}
inline void encode_record(std::string& out, const committed_record& r) {
  put8(out, static_cast<std::uint8_t>(record_kind::committed));
  put_group(out, r.group);
  put_log_id(out, r.id);
}
inline void encode_record(std::string& out, const truncate_record& r) {
  put8(out, static_cast<std::uint8_t>(record_kind::truncate));
  put_group(out, r.group);
  put64(out, r.since);
}
inline void encode_record(std::string& out, const purge_record& r) {
  put8(out, static_cast<std::uint8_t>(record_kind::purge));
  put_group(out, r.group);
  put_log_id(out, r.id);
}
inline void encode_record(std::string& out, const reset_record& r) {
  put8(out, static_cast<std::uint8_t>(record_kind::reset));
  put_group(out, r.group);
  put_log_id(out, r.id);
}
inline void encode_record(std::string& out, const state_record& r) {
  put8(out, static_cast<std::uint8_t>(record_kind::state));
  put_group(out, r.group);
  put8(out, static_cast<std::uint8_t>((r.vote_value ? 1 : 0) | (r.committed ? 2 : 0) |
                                      (r.purged ? 4 : 0)));
  if (r.vote_value) put_vote(out, *r.vote_value);
  if (r.committed) put_log_id(out, *r.committed);
  if (r.purged) put_log_id(out, *r.purged);
  put_log_id(out, r.last);
}

// Reads term runs (runs:u16le already read) that must cover `count` entries.
inline std::vector<term_run> read_runs(field_reader& r, std::uint16_t n, std::uint64_t count) {
  std::vector<term_run> runs;
  if (r.left() / 12 < n) {
    r.fail(std::to_string(n) + " term runs: need " + std::to_string(12 * std::size_t{n}) +
           " bytes, " + std::to_string(r.left()) + " left");
    return runs;
  }
  runs.reserve(n);
  std::uint64_t total = 0;
  for (std::uint16_t i = 0; i < n && r.ok(); ++i) {
    const std::uint64_t at = r.offset();
    term_run run;
    run.term = r.u64("term run term");
    run.count = r.u32("term run count");
    if (!r.ok()) break;
    if (run.count == 0) r.fail_at(at, "term run " + std::to_string(i) + " of 0 entries: expected >= 1");
    else if (!runs.empty() && run.term <= runs.back().term)
      r.fail_at(at, "term run " + std::to_string(i) + " has term " + std::to_string(run.term) +
                        ": expected above the previous run's " + std::to_string(runs.back().term));
    total += run.count;
    runs.push_back(run);
  }
  if (r.ok() && total != count)
    r.fail("term runs cover " + std::to_string(total) + " entries: expected " +
           std::to_string(count));
  return runs;
}

// Decodes the record at the front of `r`.
inline result<record> decode_record(field_reader& r) {
  const std::uint64_t at = r.offset();
  const std::uint8_t kind = r.u8("record kind");
  if (!r.ok()) return r.error();
  record out;
  out.offset = static_cast<std::uint32_t>(at);
  switch (static_cast<record_kind>(kind)) {
    case record_kind::entries: {
      entries_record e;
      e.group = read_group(r);
      const std::uint64_t first_at = r.offset();
      e.first = r.u64("entries first");
      const std::uint64_t count_at = r.offset();
      e.count = r.u32("entries count");
      const std::uint16_t runs = r.u16("entries runs");
      if (!r.ok()) return r.error();
      if (e.first == 0) return damage(first_at, "entries first 0: expected >= 1");
      if (e.count == 0) return damage(count_at, "entries count 0: expected >= 1");
      if (e.first - 1 > k_max_log_index - e.count)
        return damage(first_at, "entries [" + std::to_string(e.first) + ", +" +
                                    std::to_string(e.count) + ") pass the largest log index");
      e.runs = read_runs(r, runs, e.count);
      const std::uint64_t sizes_at = r.offset();
      e.sizes = r.bytes(std::uint64_t{4} * e.count, "entries size table");
      if (!r.ok()) return r.error();
      std::uint64_t body = 0;
      for (std::uint32_t i = 0; i < e.count; ++i) body += 4 + std::uint64_t{e.size(i)};
      if (body > r.left())
        return damage(sizes_at, "entries size table adds up to " + std::to_string(body) +
                                    " bytes, " + std::to_string(r.left()) + " left in the frame");
      e.body_offset = r.offset();
      e.body = r.bytes(body, "entries");
      out.body = std::move(e);
      break;
    }
    case record_kind::vote: {
      vote_record v;
      v.group = read_group(r);
      v.value = read_vote(r);
      out.body = v;
      break;
    }
    case record_kind::committed: {
      committed_record c;
      c.group = read_group(r);
      c.id = read_log_id(r, "committed id");
      out.body = c;
      break;
    }
    case record_kind::truncate: {
      truncate_record t;
      t.group = read_group(r);
      t.since = r.u64("truncate since");
      out.body = t;
      break;
    }
    case record_kind::purge: {
      purge_record p;
      p.group = read_group(r);
      p.id = read_log_id(r, "purge id");
      out.body = p;
      break;
    }
    case record_kind::reset: {
      reset_record p;
      p.group = read_group(r);
      p.id = read_log_id(r, "reset id");
      out.body = p;
      break;
    }
    case record_kind::state: {
      state_record s;
      s.group = read_group(r);
      const std::uint64_t flags_at = r.offset();
      const std::uint8_t flags = r.u8("state flags");
      if (r.ok() && (flags & ~7) != 0)
        return damage(flags_at, "state flags " + hex32(flags) + ": expected bits 0-2 only");
      if (flags & 1) s.vote_value = read_vote(r);
      if (flags & 2) s.committed = read_log_id(r, "state committed");
      if (flags & 4) s.purged = read_log_id(r, "state purged");
      s.last = read_log_id(r, "state last");
      out.body = s;
      break;
    }
    default:
      return damage(at, "record kind " + hex32(kind) + ": expected 0x00000001 to 0x00000007");
  }
  if (!r.ok()) return r.error();
  out.size = static_cast<std::uint32_t>(r.offset() - at);
  return out;
}

// The payload of entry `i` of `e` (index e.first + i), its CRC checked
// against segment `seq`. REQUIRES: i < e.count. Linear in i: readers keep
// their own offsets (the table cache); this is for scans and tests.
inline result<std::string_view> entry_payload(const entries_record& e, std::uint64_t seq,
                                              std::uint32_t i) {
  std::uint64_t pos = 0;
  for (std::uint32_t k = 0; k < i; ++k) pos += 4 + std::uint64_t{e.size(k)};
  const std::uint32_t stored = load32(e.body.data() + pos);
  const std::string_view payload = e.body.substr(static_cast<std::size_t>(pos) + 4, e.size(i));
  const std::uint32_t computed = entry_crc(seq, e.first + i, payload);
  if (stored != computed)
    return damage(e.body_offset + pos, "entry " + std::to_string(e.first + i) +
                                           " checksum mismatch (stored " + hex32(stored) +
                                           ", computed " + hex32(computed) + ")");
  return payload;
}

// ---- frames -------------------------------------------------------------------------

struct frame_header {
  std::uint64_t seq = 0;
  std::uint64_t number = 0;
  std::uint32_t durable = 0;
};

// Starts a frame at the end of `out`; returns its start for finish_frame.
inline std::size_t begin_frame(std::string& out, const frame_header& f) {
  const std::size_t start = out.size();
  put32(out, 0);
  put32(out, 0);
  put8(out, k_frame_kind);
  put64(out, f.seq);
  put64(out, f.number);
  put32(out, f.durable);
  return start;
}

// Closes the frame begun at `start` (its records appended since): writes
// its length and CRC. REQUIRES: at least one record was appended.
inline void finish_frame(std::string& out, std::size_t start) {
  const auto length = static_cast<std::uint32_t>(out.size() - start - 8);
  store32(out, start, length);
  char len[4];
  for (int i = 0; i < 4; ++i) len[i] = static_cast<char>(length >> (8 * i));
  const std::uint32_t crc =
      crc32c_extend(crc32c(std::string_view(out).substr(start + 8)), std::string_view(len, 4));
  store32(out, start + 4, crc);
}

// What a scan finds where a frame would start.
struct scanned_frame {
  enum class kind { end, stale, frame } what = kind::end;
  frame_header header;
  std::uint32_t offset = 0;       // the frame's offset in the segment
  std::uint32_t size = 0;         // 8 + length (0 for end)
  std::string_view records;       // the records' bytes (frame only)
};

// Decodes the frame at segment offset `offset`, given `in` = the segment's
// bytes from `offset` to the end of its body space, and the header's seq.
// end: a zero length (or fewer than 4 bytes left). stale: a frame whose CRC
// checks and whose seq is below `seq` (a recycled file's previous life: a
// clean end). Refused (corrupted_data): a length too small or past `in`, a
// CRC mismatch, another kind, a seq above `seq`, a durable offset outside
// [4096, offset] (nothing of a frame is durable when it is written). Records are not parsed here: decode_records.
// The result views `in`: `in`'s bytes must outlive it.
inline result<scanned_frame> decode_frame(std::string_view in, std::uint32_t offset,
                                          std::uint64_t seq) {
  scanned_frame f;
  f.offset = offset;
  if (in.size() < 4 || load32(in.data()) == 0) return f;
  const std::uint32_t length = load32(in.data());
  if (length < k_frame_fixed_after_crc + 1)
    return damage(offset, "frame length " + std::to_string(length) + ": expected at least " +
                              std::to_string(k_frame_fixed_after_crc + 1));
  if (in.size() < 8 || length > in.size() - 8)
    return damage(offset, "frame length " + std::to_string(length) + " runs past the body's end (" +
                              std::to_string(in.size() < 8 ? 0 : in.size() - 8) + " bytes left)");
  const std::uint32_t stored = load32(in.data() + 4);
  const std::uint32_t computed =
      crc32c_extend(crc32c(in.substr(8, length)), in.substr(0, 4));
  if (stored != computed)
    return damage(offset, "frame checksum mismatch (stored " + hex32(stored) + ", computed " +
                              hex32(computed) + ")");
  if (static_cast<std::uint8_t>(in[8]) != k_frame_kind)
    return damage(offset + 8, "frame kind " + hex32(static_cast<std::uint8_t>(in[8])) +
                                  ": expected 0x00000046");
  f.header.seq = load64(in.data() + 9);
  f.header.number = load64(in.data() + 17);
  f.header.durable = load32(in.data() + 25);
  f.size = length + 8;
  if (f.header.seq < seq) {
    f.what = scanned_frame::kind::stale;
    return f;
  }
  if (f.header.seq > seq)
    return damage(offset + 9, "frame seq " + std::to_string(f.header.seq) +
                                  ": expected the segment's " + std::to_string(seq));
  if (f.header.durable < k_header_bytes || f.header.durable > offset)
    return damage(offset + 25, "frame durable offset " + std::to_string(f.header.durable) +
                                   ": expected 4096 to the frame's offset " +
                                   std::to_string(offset));
  f.what = scanned_frame::kind::frame;
  f.records = in.substr(k_frame_header_bytes, length - k_frame_fixed_after_crc);
  return f;
}

// Decodes every record of frame `f` (kind frame) into `out` (appended).
inline status decode_records(const scanned_frame& f, std::vector<record>& out) {
  field_reader r(f.records, f.offset + k_frame_header_bytes);
  while (r.left() > 0) {
    auto rec = decode_record(r);
    if (!rec.ok()) return rec.status();
    out.push_back(std::move(*rec));
  }
  return {};
}

// ---- summaries and replay ----------------------------------------------------------

// A record's place in a run of entries: its offset in the segment and the
// run-relative index of its first entry.
struct record_ref {
  std::uint32_t offset = 0;
  std::uint32_t first = 0;
  friend bool operator==(const record_ref&, const record_ref&) = default;
};

// A run of one group's entries in one segment: [base, base + count), with
// their term runs and the records that hold them (the first of each held
// inline: a piece of one append allocates nothing, inline_vector.hpp).
struct piece {
  std::uint64_t seq = 0;
  std::uint64_t base = 0;
  std::uint32_t count = 0;
  inline_vector<term_run> runs;
  inline_vector<record_ref> records;
  std::uint64_t end() const { return base + count; }
  friend bool operator==(const piece&, const piece&) = default;

  // Deletes the entries at or above `cut`.
  void cut_at(std::uint64_t cut) {
    if (cut >= end()) return;
    const auto keep = static_cast<std::uint32_t>(cut <= base ? 0 : cut - base);
    std::uint32_t left = keep;
    std::size_t n = 0;
    for (; n < runs.size() && left > 0; ++n) {
      if (runs[n].count >= left) {
        runs[n].count = left;
        left = 0;
      } else {
        left -= runs[n].count;
      }
    }
    runs.resize(n);
    while (!records.empty() && records.back().first >= keep) records.pop_back();
    count = keep;
  }
  // Appends `n` entries (the next indices) held by the record at `offset`.
  void append(std::uint32_t offset, std::span<const term_run> more) {
    records.push_back({offset, count});
    for (const term_run& run : more) {
      if (!runs.empty() && runs.back().term == run.term) runs.back().count += run.count;
      else runs.push_back(run);
      count += run.count;
    }
  }
};

// The net effect of one segment's records on one group (the footer's
// summary): see the file comment for the order it applies in.
struct group_summary {
  group_address group;
  bool reset = false;
  std::optional<std::uint64_t> cut;
  std::optional<log_id> purged;
  std::optional<vote> vote_value;
  std::optional<log_id> committed;
  piece own;  // seq unused (0); count 0: no surviving entries of this segment
  friend bool operator==(const group_summary&, const group_summary&) = default;
};

// A group's state rebuilt by replay: its hard state and its entries, one
// piece per segment that holds some, oldest first. Entries at or below the
// last purged index are dead wherever a piece still lists them.
// Invariant (after each apply): pieces are contiguous, each non-empty and
// holding a live entry.
struct replayed_group {
  std::optional<log_id> purged;
  std::optional<vote> vote_value;
  std::optional<log_id> committed;
  std::vector<piece> pieces;
  friend bool operator==(const replayed_group&, const replayed_group&) = default;

  bool known() const { return purged.has_value() || !pieces.empty(); }
  // The last entry's index, or the last purged index when there is none (0: neither).
  std::uint64_t last_index() const {
    std::uint64_t last = purged ? purged->index : 0;
    if (!pieces.empty()) last = std::max(last, pieces.back().end() - 1);
    return last;
  }

  void cut_at(std::uint64_t cut) {
    for (piece& p : pieces) p.cut_at(cut);
    drop_empty();
  }
  void purge_to(const log_id& id) {
    purged = id;
    drop_empty();
  }

  // Applies one record of segment `seq` (group already matched by the caller).
  status apply(const record& rec, std::uint64_t seq) {
    return std::visit([&](const auto& b) { return apply_body(b, rec.offset, seq); }, rec.body);
  }

  // Applies segment `seq`'s summary.
  status apply(const group_summary& s, std::uint64_t seq) {
    if (s.reset) pieces.clear();
    else if (s.cut) cut_at(*s.cut);
    if (s.own.count > 0) {
      if (!s.reset && known()) {
        const std::uint64_t floor = purged ? purged->index : 0;
        std::uint64_t reach = std::min(last_index(), s.own.base - 1);
        if (s.purged) reach = std::max(reach, s.purged->index);
        if (s.own.base <= floor || s.own.base > reach + 1)
          return status::corrupted_data(to_string(s.group) + ": entries from " +
                                        std::to_string(s.own.base) + " after last index " +
                                        std::to_string(last_index()) + " (last purged " +
                                        std::to_string(floor) + ")");
      }
      cut_at(s.own.base);
      piece p = s.own;
      p.seq = seq;
      pieces.push_back(std::move(p));
    }
    if (s.purged) purge_to(*s.purged);
    if (s.vote_value) vote_value = s.vote_value;
    if (s.committed) committed = s.committed;
    drop_empty();
    return {};
  }

 private:
  void drop_empty() {
    const std::uint64_t floor = purged ? purged->index : 0;
    std::erase_if(pieces, [&](const piece& p) { return p.count == 0 || p.end() - 1 <= floor; });
  }

  status apply_body(const entries_record& e, std::uint32_t offset, std::uint64_t seq) {
    const std::uint64_t floor = purged ? purged->index : 0;
    if (purged && e.first <= floor)
      return status::corrupted_data(to_string(e.group) + ": entries from " +
                                    std::to_string(e.first) + " at or below last purged " +
                                    std::to_string(floor));
    if (known() && e.first > last_index() + 1)
      return status::corrupted_data(to_string(e.group) + ": entries from " +
                                    std::to_string(e.first) + " after last index " +
                                    std::to_string(last_index()) + " (a gap)");
    cut_at(e.first);
    if (pieces.empty() || pieces.back().seq != seq || pieces.back().end() != e.first) {
      piece p;
      p.seq = seq;
      p.base = e.first;
      pieces.push_back(std::move(p));
    }
    pieces.back().append(offset, e.runs);
    return {};
  }
  status apply_body(const vote_record& v, std::uint32_t, std::uint64_t) {
    vote_value = v.value;
    return {};
  }
  status apply_body(const committed_record& c, std::uint32_t, std::uint64_t) {
    committed = c.id;
    return {};
  }
  status apply_body(const truncate_record& t, std::uint32_t, std::uint64_t) {
    cut_at(t.since);
    return {};
  }
  status apply_body(const purge_record& p, std::uint32_t, std::uint64_t) {
    purge_to(p.id);
    return {};
  }
  status apply_body(const reset_record& p, std::uint32_t, std::uint64_t) {
    pieces.clear();
    purge_to(p.id);
    return {};
  }
  status apply_body(const state_record& s, std::uint32_t, std::uint64_t) {
    if (s.vote_value) vote_value = s.vote_value;
    if (s.committed) committed = s.committed;
    if (s.last.index < k_max_log_index) cut_at(s.last.index + 1);
    if (s.purged) purge_to(*s.purged);
    return {};
  }
};

// Builds one group's summary from its records in one segment, in order.
class summary_builder {
 public:
  explicit summary_builder(const group_address& g) { s_.group = g; }

  void add(const record& rec) {
    std::visit([&](const auto& b) { add_body(b, rec.offset); }, rec.body);
  }

  // The summary: cut only when it reaches below the own entries (or there
  // are none), the canonical form the footer stores.
  group_summary finish() const {
    group_summary out = s_;
    if (out.cut && out.own.count > 0 && *out.cut >= out.own.base) out.cut.reset();
    if (out.own.count == 0) out.own = piece{};
    return out;
  }

 private:
  void cut_at(std::uint64_t cut) {
    if (!s_.reset) s_.cut = s_.cut ? std::min(*s_.cut, cut) : cut;
    s_.own.cut_at(cut);
    drop_dead_own();
  }
  void purge_to(const log_id& id) {
    s_.purged = id;
    drop_dead_own();
  }
  // The own entries go once none is live (as replayed_group drops a piece).
  void drop_dead_own() {
    if (s_.own.count == 0 || (s_.purged && s_.own.end() - 1 <= s_.purged->index)) s_.own = piece{};
  }
  void add_body(const entries_record& e, std::uint32_t offset) {
    cut_at(e.first);
    if (s_.own.count > 0 && s_.own.end() != e.first) s_.own = piece{};  // only after a purge past it
    if (s_.own.count == 0) {
      s_.own = piece{};
      s_.own.base = e.first;
    }
    s_.own.append(offset, e.runs);
  }
  void add_body(const vote_record& v, std::uint32_t) { s_.vote_value = v.value; }
  void add_body(const committed_record& c, std::uint32_t) { s_.committed = c.id; }
  void add_body(const truncate_record& t, std::uint32_t) { cut_at(t.since); }
  void add_body(const purge_record& p, std::uint32_t) { purge_to(p.id); }
  void add_body(const reset_record& p, std::uint32_t) {
    s_.reset = true;
    s_.cut.reset();
    s_.own = piece{};
    purge_to(p.id);
  }
  void add_body(const state_record& s, std::uint32_t) {
    if (s.vote_value) s_.vote_value = s.vote_value;
    if (s.committed) s_.committed = s.committed;
    if (s.last.index < k_max_log_index) cut_at(s.last.index + 1);
    if (s.purged) purge_to(*s.purged);
  }

  group_summary s_;
};

// ---- footer and trailer -------------------------------------------------------------

struct footer {
  std::uint32_t body_end = 0;  // where the body's `end` is
  std::uint32_t frames = 0;
  std::uint64_t last_number = 0;
  std::vector<group_summary> groups;  // in increasing group order
  friend bool operator==(const footer&, const footer&) = default;
};

inline void put_summary(std::string& out, const group_summary& s) {
  put_group(out, s.group);
  put8(out, static_cast<std::uint8_t>((s.reset ? 1 : 0) | (s.cut ? 2 : 0) | (s.purged ? 4 : 0) |
                                      (s.vote_value ? 8 : 0) | (s.committed ? 16 : 0)));
  if (s.cut) put64(out, *s.cut);
  if (s.purged) put_log_id(out, *s.purged);
  if (s.vote_value) put_vote(out, *s.vote_value);
  if (s.committed) put_log_id(out, *s.committed);
  put64(out, s.own.base);
  put32(out, s.own.count);
  put16(out, static_cast<std::uint16_t>(s.own.runs.size()));
  for (const term_run& run : s.own.runs) {
    put64(out, run.term);
    put32(out, run.count);
  }
  put32(out, static_cast<std::uint32_t>(s.own.records.size()));
  for (const record_ref& ref : s.own.records) {
    put32(out, ref.offset);
    put32(out, ref.first);
  }
}

// The footer's bytes for segment `seq`. REQUIRES: groups sorted and
// distinct, each summary as summary_builder::finish makes it.
inline std::string encode_footer(const footer& f, std::uint64_t seq) {
  std::string out(k_footer_magic);
  put32(out, f.body_end);
  put32(out, f.frames);
  put64(out, f.last_number);
  put32(out, static_cast<std::uint32_t>(f.groups.size()));
  for (const group_summary& s : f.groups) put_summary(out, s);
  char seq_bytes[8];
  for (int i = 0; i < 8; ++i) seq_bytes[i] = static_cast<char>(seq >> (8 * i));
  put32(out, crc32c_extend(crc32c(std::string_view(seq_bytes, 8)), out));
  return out;
}

inline constexpr std::size_t k_min_summary_bytes = 9 + 1 + 8 + 4 + 2 + 4;

inline group_summary read_summary(field_reader& r) {
  group_summary s;
  s.group = read_group(r);
  const std::uint64_t flags_at = r.offset();
  const std::uint8_t flags = r.u8("summary flags");
  if (!r.ok()) return s;
  if ((flags & ~0x1F) != 0) {
    r.fail_at(flags_at, "summary flags " + hex32(flags) + ": expected bits 0-4 only");
    return s;
  }
  if ((flags & 1) && !(flags & 4)) {
    r.fail_at(flags_at, "summary flags " + hex32(flags) + ": a reset needs a purged id");
    return s;
  }
  if ((flags & 1) && (flags & 2)) {
    r.fail_at(flags_at, "summary flags " + hex32(flags) + ": a reset carries no cut");
    return s;
  }
  s.reset = (flags & 1) != 0;
  if (flags & 2) s.cut = r.u64("summary cut");
  if (flags & 4) s.purged = read_log_id(r, "summary purged");
  if (flags & 8) s.vote_value = read_vote(r);
  if (flags & 16) s.committed = read_log_id(r, "summary committed");
  const std::uint64_t base_at = r.offset();
  s.own.base = r.u64("summary base");
  s.own.count = r.u32("summary count");
  const std::uint16_t runs = r.u16("summary runs");
  if (!r.ok()) return s;
  if (s.own.count == 0 && (s.own.base != 0 || runs != 0)) {
    r.fail_at(base_at, "summary of no entries with base " + std::to_string(s.own.base) + " and " +
                           std::to_string(runs) + " term runs: expected 0 and 0");
    return s;
  }
  if (s.own.count > 0 && (s.own.base == 0 || s.own.base - 1 > k_max_log_index - s.own.count)) {
    r.fail_at(base_at, "summary entries [" + std::to_string(s.own.base) + ", +" +
                           std::to_string(s.own.count) + "): outside [1, the largest log index]");
    return s;
  }
  s.own.runs = read_runs(r, runs, s.own.count);
  const std::uint64_t records_at = r.offset();
  const std::uint32_t records = r.u32("summary records");
  if (!r.ok()) return s;
  if ((s.own.count == 0) != (records == 0)) {
    r.fail_at(records_at, std::to_string(records) + " records for " +
                              std::to_string(s.own.count) + " entries");
    return s;
  }
  if (r.left() / 8 < records) {
    r.fail_at(records_at, std::to_string(records) + " records: need " +
                              std::to_string(std::uint64_t{8} * records) + " bytes, " +
                              std::to_string(r.left()) + " left");
    return s;
  }
  s.own.records.reserve(records);
  for (std::uint32_t i = 0; i < records && r.ok(); ++i) {
    const std::uint64_t at = r.offset();
    record_ref ref;
    ref.offset = r.u32("record offset");
    ref.first = r.u32("record first");
    if (!r.ok()) break;
    const bool ordered = i == 0 ? ref.first == 0
                                : ref.first > s.own.records.back().first &&
                                      ref.offset > s.own.records.back().offset;
    if (!ordered || ref.first >= s.own.count || ref.offset < k_header_bytes)
      r.fail_at(at, "record " + std::to_string(i) + " (offset " + std::to_string(ref.offset) +
                        ", first " + std::to_string(ref.first) +
                        "): expected firsts increasing from 0 below " +
                        std::to_string(s.own.count) + ", offsets increasing from 4096");
    s.own.records.push_back(ref);
  }
  return s;
}

// Decodes the footer in `in` (exactly its bytes, as the trailer gives
// them), at segment offset `offset`, for segment `seq` and a segment of
// `size` bytes.
inline result<footer> decode_footer(std::string_view in, std::uint64_t offset, std::uint64_t seq,
                                    std::uint64_t size) {
  if (in.size() < k_footer_fixed_bytes)
    return damage(offset, "footer of " + std::to_string(in.size()) + " bytes: expected at least " +
                              std::to_string(k_footer_fixed_bytes));
  if (in.substr(0, 8) != k_footer_magic) return damage(offset, "footer magic: expected \"SESHSEAL\"");
  char seq_bytes[8];
  for (int i = 0; i < 8; ++i) seq_bytes[i] = static_cast<char>(seq >> (8 * i));
  const std::uint32_t stored = load32(in.data() + in.size() - 4);
  const std::uint32_t computed =
      crc32c_extend(crc32c(std::string_view(seq_bytes, 8)), in.substr(0, in.size() - 4));
  if (stored != computed)
    return damage(offset + in.size() - 4, "footer checksum mismatch (stored " + hex32(stored) +
                                              ", computed " + hex32(computed) + ")");
  field_reader r(in.substr(8, in.size() - 12), offset + 8);
  footer f;
  f.body_end = r.u32("footer body_end");
  f.frames = r.u32("footer frames");
  f.last_number = r.u64("footer last_number");
  const std::uint64_t groups_at = r.offset();
  const std::uint32_t groups = r.u32("footer groups");
  if (!r.ok()) return r.error();
  if (f.body_end < k_header_bytes || f.body_end > offset)
    return damage(offset + 8, "footer body_end " + std::to_string(f.body_end) + ": expected " +
                                  std::to_string(k_header_bytes) + " to the footer's offset " +
                                  std::to_string(offset));
  if (offset + in.size() + k_trailer_bytes != size)
    return damage(offset, "footer ends at " + std::to_string(offset + in.size()) +
                              ": expected the trailer's offset " + std::to_string(size - k_trailer_bytes));
  if (r.left() / k_min_summary_bytes < groups)
    return damage(groups_at, std::to_string(groups) + " group summaries: at most " +
                                 std::to_string(r.left() / k_min_summary_bytes) + " fit");
  f.groups.reserve(groups);
  for (std::uint32_t i = 0; i < groups; ++i) {
    const std::uint64_t at = r.offset();
    group_summary s = read_summary(r);
    if (!r.ok()) return r.error();
    if (!f.groups.empty() && !(f.groups.back().group < s.group))
      return damage(at, to_string(s.group) + ": expected above " +
                            to_string(f.groups.back().group) + " (summaries in group order)");
    for (const record_ref& ref : s.own.records)
      if (ref.offset >= f.body_end)
        return damage(at, to_string(s.group) + ": record offset " + std::to_string(ref.offset) +
                              " at or past body_end " + std::to_string(f.body_end));
    f.groups.push_back(std::move(s));
  }
  if (r.left() != 0)
    return damage(r.offset(), std::to_string(r.left()) + " bytes after the last summary");
  return f;
}

struct trailer {
  std::uint32_t footer_at = 0;
  std::uint32_t footer_size = 0;
  std::uint64_t seq = 0;
  std::uint32_t footer_crc = 0;
  friend bool operator==(const trailer&, const trailer&) = default;
};

// The trailer of `footer_bytes` (encode_footer's) for segment `seq` of `size` bytes.
inline std::string encode_trailer(std::string_view footer_bytes, std::uint64_t seq,
                                  std::uint64_t size) {
  std::string out;
  put32(out, static_cast<std::uint32_t>(size - k_trailer_bytes - footer_bytes.size()));
  put32(out, static_cast<std::uint32_t>(footer_bytes.size()));
  put64(out, seq);
  put32(out, load32(footer_bytes.data() + footer_bytes.size() - 4));
  out.append(k_trailer_magic);
  put32(out, crc32c(out));
  return out;
}

// Decodes a segment's last 32 bytes `in`, for segment `seq` of `size` bytes.
// A trailer that does not check means: not sealed (scan the segment).
inline result<trailer> decode_trailer(std::string_view in, std::uint64_t seq, std::uint64_t size) {
  const std::uint64_t at = size - k_trailer_bytes;
  if (in.size() != k_trailer_bytes)
    return damage(at, "trailer of " + std::to_string(in.size()) + " bytes: expected 32");
  if (in.substr(20, 8) != k_trailer_magic)
    return damage(at + 20, "trailer magic: expected \"SESHTAIL\"");
  const std::uint32_t stored = load32(in.data() + 28);
  const std::uint32_t computed = crc32c(in.substr(0, 28));
  if (stored != computed)
    return damage(at + 28, "trailer checksum mismatch (stored " + hex32(stored) + ", computed " +
                               hex32(computed) + ")");
  trailer t;
  t.footer_at = load32(in.data());
  t.footer_size = load32(in.data() + 4);
  t.seq = load64(in.data() + 8);
  t.footer_crc = load32(in.data() + 16);
  if (t.seq != seq)
    return damage(at + 8, "trailer seq " + std::to_string(t.seq) + ": expected the segment's " +
                              std::to_string(seq) + " (a previous life's seal)");
  if (t.footer_size < k_footer_fixed_bytes || t.footer_at < k_header_bytes ||
      std::uint64_t{t.footer_at} + t.footer_size != at)
    return damage(at, "trailer places the footer at " + std::to_string(t.footer_at) + " (" +
                          std::to_string(t.footer_size) + " bytes): expected it to end at " +
                          std::to_string(at) + ", after the header");
  return t;
}

// The footer of segment image `file` (the whole file, `h` its decoded
// header): its trailer, then the footer the trailer places, which must be
// the one written with it (its crc equals the trailer's footer_crc).
// Refused: the segment is not sealed, or its seal is damaged; either way
// the caller scans it.
inline result<footer> decode_seal(std::string_view file, const header& h) {
  if (file.size() != h.size)
    return damage(file.size(), "segment of " + std::to_string(file.size()) +
                                   " bytes: its header says " + std::to_string(h.size));
  auto t = decode_trailer(file.substr(file.size() - k_trailer_bytes), h.seq, h.size);
  if (!t.ok()) return t.status();
  const std::string_view bytes = file.substr(t->footer_at, t->footer_size);
  const std::uint32_t crc = load32(bytes.data() + bytes.size() - 4);
  if (crc != t->footer_crc)
    return damage(t->footer_at + bytes.size() - 4,
                  "footer crc " + hex32(crc) + ": expected the trailer's " + hex32(t->footer_crc) +
                      " (a footer of another seal)");
  return decode_footer(bytes, t->footer_at, h.seq, h.size);
}

}  // namespace seshat::detail::segment
