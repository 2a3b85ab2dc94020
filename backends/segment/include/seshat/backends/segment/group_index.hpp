// seshat/backends/segment/group_index.hpp: a log engine's in-memory index of
// one group (docs/log-engine.md section 7): its hard state and, for each
// segment holding some of its entries, a piece: the entries' index range,
// their term runs and one record_ref {offset:u32, first:u32} per entries
// record. So the index costs 8 bytes per record (one append), plus 16 per
// term change per segment and one piece (64 bytes, holding its first term
// run and record ref itself: inline_vector.hpp) per segment the group has
// entries in: 8 bytes an entry at one entry an append, 0.5 at 16. A piece
// of a single append (a store of many groups, each written now and then)
// allocates nothing of its own.
//
// The index is built by the same replay rules whatever feeds it: recovery
// applies each scanned record or each sealed segment's summaries
// (recovery.hpp), the engine each record it stages (segment_log.hpp):
// group_log::apply, over detail::segment::replayed_group::apply.
//
// It also knows which segments the group needs (section 8): those holding
// its live entries, and the ones holding its latest vote, committed and
// purge (or reset, or state) records; oldest_needed() is the oldest of them,
// which freeing (oldest segment first) must not pass.
//
// Thread-safety: none of its own; the engine's mutex guards it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "seshat/detail/segment_format.hpp"
#include "seshat/hard_state.hpp"
#include "seshat/log_id.hpp"
#include "seshat/status.hpp"

namespace seshat::detail::segment {

// Where the entries [first, end) of one entries record are: the segment,
// the record's offset in it, and the record's first index (the record may
// hold entries before `first`, cut or purged since). `record_end` is the end
// of the indexed entries the record holds: a size hint for reading its size
// table (the record holds at least `record_end - record_first` entries).
struct record_location {
  std::uint64_t seq = 0;
  std::uint32_t offset = 0;
  std::uint64_t record_first = 0;
  std::uint64_t first = 0;
  std::uint64_t end = 0;
  std::uint64_t record_end = 0;
};

class group_log {
 public:
  replayed_group& replay() { return log_; }
  const replayed_group& replay() const { return log_; }

  // Applies a record, or a summary, of segment `seq` (replay's refusals).
  //
  // A gap (entries starting past last + 1) is taken for what freeing leaves
  // (section 8): older segments removed because every entry they held is
  // dead now, though the records that made them dead lie in newer segments
  // than the ones that continued them. The entries below the gap are dropped
  // and replay goes on; recovery then refuses a group whose entries do not
  // start right after its purge point (missing_entries()), which is what a
  // segment lost with live entries would leave.
  status apply(const record& r, std::uint64_t seq) {
    const auto* e = std::get_if<entries_record>(&r.body);
    if (e && log_.known() && e->first > log_.last_index() + 1) {
      const std::optional<log_id> purged = log_.purged;
      log_.pieces.clear();
      log_.purged.reset();
      status s = log_.apply(r, seq);
      log_.purged = purged;
      SESHAT_RETURN_IF_ERROR(s);
    } else {
      SESHAT_RETURN_IF_ERROR(log_.apply(r, seq));
    }
    note(r, seq);
    return {};
  }
  status apply(const group_summary& sm, std::uint64_t seq) {
    replayed_group before = log_;
    status s = log_.apply(sm, seq);
    const std::uint64_t floor = before.purged ? before.purged->index : 0;
    if (!s.ok() && !sm.reset && sm.own.count > 0 && sm.own.base > floor) {  // a gap
      log_ = std::move(before);
      const std::optional<log_id> purged = log_.purged;
      log_.pieces.clear();
      log_.purged.reset();
      s = log_.apply(sm, seq);
      if (!sm.purged) log_.purged = purged;
    }
    SESHAT_RETURN_IF_ERROR(s);
    note(sm, seq);
    return {};
  }

  // After replay: the entries (purged + 1, first) that no segment holds,
  // when the group's entries do not start right after its purge point.
  std::optional<std::pair<std::uint64_t, std::uint64_t>> missing_entries() const {
    if (!log_.purged || log_.pieces.empty()) return std::nullopt;
    const std::uint64_t want = log_.purged->index + 1, base = log_.pieces.front().base;
    if (base <= want) return std::nullopt;
    return std::pair{want, base};
  }

  // The oldest segment holding a live entry of the group or its latest
  // vote, committed or purge point; 0 when it needs none.
  std::uint64_t oldest_needed() const {
    std::uint64_t out = 0;
    auto keep = [&](std::uint64_t s) {
      if (s != 0 && (out == 0 || s < out)) out = s;
    };
    if (!log_.pieces.empty()) keep(log_.pieces.front().seq);
    keep(hard_state_seq());
    return out;
  }
  // The segment holding the group's first live entry; 0 when it holds none.
  std::uint64_t entries_seq() const { return log_.pieces.empty() ? 0 : log_.pieces.front().seq; }
  // The oldest segment holding the group's latest vote, committed or purge point; 0: none.
  std::uint64_t hard_state_seq() const {
    std::uint64_t out = 0;
    for (std::uint64_t s : {vote_seq_, committed_seq_, purged_seq_})
      if (s != 0 && (out == 0 || s < out)) out = s;
    return out;
  }

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
  // Both searches are binary: pieces are ordered by index, and so are the
  // records of a piece.
  std::vector<record_location> locate(std::uint64_t lo, std::uint64_t hi) const {
    std::vector<record_location> out;
    auto p = std::upper_bound(log_.pieces.begin(), log_.pieces.end(), lo,
                              [](std::uint64_t x, const piece& q) { return x < q.end(); });
    for (; p != log_.pieces.end() && p->base < hi; ++p) {
      const std::uint64_t from = lo > p->base ? lo - p->base : 0;  // offset in the piece
      auto r = std::upper_bound(p->records.begin(), p->records.end(), from,
                                [](std::uint64_t x, const record_ref& ref) { return x < ref.first; });
      std::size_t k = r == p->records.begin() ? 0 : static_cast<std::size_t>(r - p->records.begin()) - 1;
      for (; k < p->records.size(); ++k) {
        const std::uint64_t first = p->base + p->records[k].first;
        const std::uint64_t end = k + 1 < p->records.size() ? p->base + p->records[k + 1].first : p->end();
        if (first >= hi) break;
        if (end <= lo) continue;
        out.push_back({p->seq, p->records[k].offset, first, std::max(first, lo), std::min(end, hi), end});
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

  void note(const record& r, std::uint64_t seq) {
    if (std::holds_alternative<vote_record>(r.body)) vote_seq_ = seq;
    else if (std::holds_alternative<committed_record>(r.body)) committed_seq_ = seq;
    else if (std::holds_alternative<purge_record>(r.body) || std::holds_alternative<reset_record>(r.body))
      purged_seq_ = seq;
    else if (const auto* st = std::get_if<state_record>(&r.body)) {
      if (st->vote_value) vote_seq_ = seq;
      if (st->committed) committed_seq_ = seq;
      if (st->purged) purged_seq_ = seq;
    }
  }
  void note(const group_summary& s, std::uint64_t seq) {
    if (s.vote_value) vote_seq_ = seq;
    if (s.committed) committed_seq_ = seq;
    if (s.purged) purged_seq_ = seq;
  }

  replayed_group log_;
  std::uint64_t vote_seq_ = 0, committed_seq_ = 0, purged_seq_ = 0;
};

// The engine's groups, by address: a hash map, so that a round's appends to
// many groups (10,000 in W3 at scale) each find theirs in one probe rather
// than a walk down a tree. Node-based: a group_log stays where it is while
// other groups come and go. Unordered (segment_log::groups() sorts).
struct group_address_hash {
  std::size_t operator()(const group_address& g) const noexcept {
    // The id's bits mixed (a Fibonacci multiply), the family in the low byte.
    return static_cast<std::size_t>((g.id * 0x9E3779B97F4A7C15ull) ^ g.family);
  }
};
using group_map = std::unordered_map<group_address, group_log, group_address_hash>;

}  // namespace seshat::detail::segment
