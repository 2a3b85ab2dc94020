// seshat/backends/segment/record_reader.hpp: reading entries back from one
// entries record of a segment (docs/log-engine.md section 7), from the file
// (pread) or from the engine's staging buffer, each entry's CRC checked
// (seeded with the segment's seq and the entry's index), so that bytes read
// from the wrong place are an error, never other bytes.
//
// A read of a record fetches its fixed part, term runs and size table in one
// read sized by the index's entry count (a second when the record holds more
// runs or entries than that), then the entries wanted: two reads a record
// touched (the table cache of the design is M7).
//
// Thread-safety: a function of its arguments; `fetch` must be safe to call.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "seshat/detail/segment_format.hpp"
#include "seshat/status.hpp"

namespace seshat::detail::segment {

// Reads `length` bytes at segment offset `offset` into `out` (resized);
// fewer only at the end of the file.
using fetch_fn = std::function<status(std::uint64_t offset, std::size_t length, std::string& out)>;
// Called with each entry's index and payload, in order; a failure stops the read.
using visit_fn = std::function<status(std::uint64_t index, std::string_view payload)>;

// Visits the entries [lo, hi) of the entries record at `offset` of segment
// `seq`, which must belong to `g`, start at index `record_first` and end at
// or below segment offset `limit` (the segment's written end). corrupted_data
// (byte offsets in the segment) when the bytes are not that record; a size
// table or entries past `limit` are refused before they are fetched, so a
// damaged count or size never makes a read allocate for it.
// `record_end_hint` (the end of the entries the index has for the record)
// sizes the first fetch: the fixed part, one term run and that many sizes in
// one read, and a second only when the record has more runs or entries.
inline status read_record_entries(const fetch_fn& fetch, std::uint64_t seq, std::uint64_t offset,
                                  std::uint64_t limit, const group_address& g,
                                  std::uint64_t record_first, std::uint64_t record_end_hint,
                                  std::uint64_t lo, std::uint64_t hi, const visit_fn& visit) {
  std::string head;
  const std::uint64_t hinted = k_entries_fixed_bytes + k_term_run_bytes + 4 * (record_end_hint - record_first);
  const std::uint64_t room = limit > offset ? limit - offset : 0;  // up to the written end
  const auto first_fetch = std::max<std::uint64_t>(k_entries_fixed_bytes, std::min(hinted, room));
  SESHAT_RETURN_IF_ERROR(fetch(offset, static_cast<std::size_t>(first_fetch), head));
  if (head.size() < k_entries_fixed_bytes)
    return damage(offset, "entries record of " + to_string(g) + " runs past the file's end");
  field_reader r(head, offset);
  const std::uint8_t kind = r.u8("record kind");
  group_address got;
  got.family = r.u8("group family");
  got.id = r.u64("group id");
  const std::uint64_t first = r.u64("entries first");
  const std::uint32_t count = r.u32("entries count");
  const std::uint16_t runs = r.u16("entries runs");
  if (kind != static_cast<std::uint8_t>(record_kind::entries) || got != g || first != record_first ||
      hi - record_first > count)
    return damage(offset, "expected an entries record of " + to_string(g) + " from index " +
                              std::to_string(record_first) + " with at least " +
                              std::to_string(hi - record_first) + " entries, found kind " +
                              hex32(kind) + " of " + to_string(got) + " from " +
                              std::to_string(first) + " with " + std::to_string(count));
  const std::uint64_t sizes_at = offset + k_entries_fixed_bytes + k_term_run_bytes * runs;
  if (sizes_at + std::uint64_t{4} * count > limit)
    return damage(offset, "entries record of " + to_string(g) + " with " + std::to_string(runs) +
                              " term runs and " + std::to_string(count) +
                              " entries: its size table would end at byte " +
                              std::to_string(sizes_at + std::uint64_t{4} * count) +
                              ", past the segment's written end " + std::to_string(limit));
  const std::uint64_t head_bytes = sizes_at + std::uint64_t{4} * count - offset;
  if (head.size() < head_bytes) {
    SESHAT_RETURN_IF_ERROR(fetch(offset, static_cast<std::size_t>(head_bytes), head));
    if (head.size() != head_bytes) return damage(sizes_at, "entries size table runs past the file's end");
  }
  const char* sizes = head.data() + (sizes_at - offset);
  std::uint64_t pos = sizes_at + std::uint64_t{4} * count;  // entry `record_first`'s crc
  const std::uint64_t skip = lo - record_first, take = hi - lo;
  for (std::uint64_t i = 0; i < skip; ++i) pos += 4 + std::uint64_t{load32(sizes + 4 * i)};
  std::uint64_t span = 0;
  for (std::uint64_t i = skip; i < skip + take; ++i) span += 4 + std::uint64_t{load32(sizes + 4 * i)};
  if (pos + span > limit)
    return damage(pos, "entries [" + std::to_string(lo) + ", " + std::to_string(hi) + ") of " +
                           to_string(g) + ": their " + std::to_string(span) +
                           " bytes would end past the segment's written end " + std::to_string(limit));
  std::string body;
  SESHAT_RETURN_IF_ERROR(fetch(pos, static_cast<std::size_t>(span), body));
  if (body.size() != span) return damage(pos, "entries run past the file's end");
  std::size_t at = 0;
  for (std::uint64_t i = skip; i < skip + take; ++i) {
    const std::uint32_t size = load32(sizes + 4 * i);
    const std::uint32_t stored = load32(body.data() + at);
    const std::string_view payload(body.data() + at + 4, size);
    const std::uint64_t index = record_first + i;
    const std::uint32_t computed = entry_crc(seq, index, payload);
    if (stored != computed)
      return damage(pos + at, "entry " + std::to_string(index) + " of " + to_string(g) +
                                  " checksum mismatch (stored " + hex32(stored) + ", computed " +
                                  hex32(computed) + ")");
    SESHAT_RETURN_IF_ERROR(visit(index, payload));
    at += 4 + std::size_t{size};
  }
  return {};
}

}  // namespace seshat::detail::segment
