// seshat/backends/segment/group_index.hpp: a log engine's in-memory index of
// one group (docs/log-engine.md section 7): its hard state and, for each
// segment holding some of its entries, a piece: the entries' index range,
// their term runs and one record_ref {offset:u32, first:u32} per entries
// record. So the index costs 8 bytes per record (one append), plus 16 per
// term change per segment and one piece (about 72 bytes) per segment the
// group has entries in: 8 bytes an entry at one entry an append, 0.5 at 16.
//
// The index is built by the same replay rules whatever feeds it: recovery
// applies each scanned record (recovery.hpp), the engine each record it
// stages (segment_log.hpp): detail::segment::replayed_group::apply.
//
// Thread-safety: none of its own; the engine's mutex guards it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "seshat/detail/segment_format.hpp"
#include "seshat/hard_state.hpp"
#include "seshat/log_id.hpp"

namespace seshat::detail::segment {

// Where the entries [first, end) of one entries record are: the segment,
// the record's offset in it, and the record's first index (the record may
// hold entries before `first`, cut or purged since).
struct record_location {
  std::uint64_t seq = 0;
  std::uint32_t offset = 0;
  std::uint64_t record_first = 0;
  std::uint64_t first = 0;
  std::uint64_t end = 0;
};

class group_log {
 public:
  replayed_group& replay() { return log_; }
  const replayed_group& replay() const { return log_; }

  const std::optional<log_id>& last_purged() const { return log_.purged; }
  const std::optional<vote>& vote_value() const { return log_.vote_value; }
  const std::optional<log_id>& committed() const { return log_.committed; }

  // The group has entries or a purge point (an append must then continue it).
  bool known() const { return log_.known(); }
  bool has_entries() const { return !log_.pieces.empty(); }
  // The first live entry's index. REQUIRES: has_entries().
  std::uint64_t first_index() const {
    const std::uint64_t floor = log_.purged ? log_.purged->index : 0;
    return std::max(log_.pieces.front().base, floor + 1);
  }
  // The last entry's index, or the last purged index without entries; 0: neither.
  std::uint64_t last_index() const { return log_.last_index(); }

  // The last entry's id, else the last purged id, else nothing.
  std::optional<log_id> last_id() const {
    if (!has_entries()) return log_.purged;
    const std::uint64_t i = log_.pieces.back().end() - 1;
    return log_id{*term_at(i), i};
  }

  // The term of entry `i`, or of the last purged id when i is its index;
  // nothing when the group holds neither.
  std::optional<std::uint64_t> term_at(std::uint64_t i) const {
    if (log_.purged && i == log_.purged->index) return log_.purged->term;
    const piece* p = piece_of(i);
    if (!p) return {};
    std::uint64_t at = p->base;
    for (const term_run& run : p->runs) {
      if (i < at + run.count) return run.term;
      at += run.count;
    }
    return {};
  }

  // The records holding [lo, hi), in order. REQUIRES: [lo, hi) lies in
  // [first_index(), last_index() + 1).
  std::vector<record_location> locate(std::uint64_t lo, std::uint64_t hi) const {
    std::vector<record_location> out;
    for (const piece& p : log_.pieces) {
      if (p.end() <= lo || p.base >= hi) continue;
      for (std::size_t k = 0; k < p.records.size(); ++k) {
        const std::uint64_t first = p.base + p.records[k].first;
        const std::uint64_t end = k + 1 < p.records.size() ? p.base + p.records[k + 1].first : p.end();
        if (end <= lo || first >= hi) continue;
        out.push_back({p.seq, p.records[k].offset, first, std::max(first, lo), std::min(end, hi)});
      }
    }
    return out;
  }

 private:
  const piece* piece_of(std::uint64_t i) const {
    const std::uint64_t floor = log_.purged ? log_.purged->index : 0;
    if (i <= floor) return nullptr;
    auto it = std::upper_bound(log_.pieces.begin(), log_.pieces.end(), i,
                               [](std::uint64_t x, const piece& p) { return x < p.end(); });
    if (it == log_.pieces.end() || i < it->base) return nullptr;
    return &*it;
  }

  replayed_group log_;
};

}  // namespace seshat::detail::segment
