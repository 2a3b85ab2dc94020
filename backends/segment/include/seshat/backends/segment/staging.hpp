// seshat/backends/segment/staging.hpp: a log engine's staging buffer
// (docs/log-engine.md section 6): the frames staged since the last round
// and the ones the running round is writing. It maps one to one onto the
// file region after each segment's written end, so a record gets its final
// location (segment, offset) when it is staged, and a read of a record not
// yet written copies it from here.
//
// Each chunk is one frame of one segment, begun when its first record is
// staged and finished (length, CRC, durable offset) when a round takes it;
// a record never spans frames, a frame never spans segments. Every segment
// keeps 4 bytes after its last frame for the body's `end`, and room for its
// seal (segment_state::seal_reserve) after that.
//
// Thread-safety: none of its own; the engine's mutex guards it. The chunks
// take() returns are only read (by the round, and by readers under the
// mutex) until written() drops them.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "seshat/backends/segment/segment_file.hpp"
#include "seshat/detail/segment_format.hpp"

namespace seshat::detail::segment {

class staging_buffer {
 public:
  struct chunk {
    std::shared_ptr<segment_state> seg;
    std::uint64_t base = 0;  // the segment offset of bytes[0], where the frame starts
    std::string bytes;
  };

  // Staging goes into `open` from its written end; frames are numbered from `next_number`.
  void start(std::shared_ptr<segment_state> open, std::uint64_t next_number) {
    open_ = std::move(open);
    end_ = open_->written_end;
    next_number_ = next_number;
  }

  const segment_state& open_segment() const { return *open_; }

  // True when a record of `size` bytes fits the open segment (with its
  // frame header when it starts a frame, the `end` after it, and the seal
  // grown by `seal_growth`).
  bool fits(std::size_t size, std::uint64_t seal_growth) const {
    return end_ + (frame_open() ? 0 : k_frame_header_bytes) + size + 4 + open_->seal_reserve +
               seal_growth <= open_->size;
  }
  // The bytes a segment needs to hold one record of `size` bytes alone (and its seal).
  static std::uint64_t segment_bytes_for(std::size_t size, std::uint64_t seal_growth) {
    return k_header_bytes + k_frame_header_bytes + size + 4 + k_seal_fixed_bytes + seal_growth;
  }

  // Moves staging to `next`, a new segment (its open frame, if any, stays
  // staged in the old one).
  void switch_to(std::shared_ptr<segment_state> next) {
    open_ = std::move(next);
    end_ = k_header_bytes;
  }

  // Appends record `rec` (encoded for the open segment's seq) to the open
  // frame, beginning one if needed; returns its offset in the segment.
  // REQUIRES: fits(rec.size()).
  std::uint32_t add(std::string_view rec) {
    return add(rec.size(), [rec](std::string& out) { out += rec; });
  }
  // As add(rec), for a record of `size` bytes that `write(out)` appends to
  // `out` (the frame's bytes), so that it is encoded in place, not copied.
  // REQUIRES: fits(size); write appends exactly `size` bytes.
  template <class Write>
  std::uint32_t add(std::size_t size, Write&& write) {
    if (!frame_open()) {
      staged_.push_back({open_, end_, {}});
      ++open_->frames;
      open_->last_number = next_number_;
      begin_frame(staged_.back().bytes, {open_->seq, next_number_++, 0});
      end_ += k_frame_header_bytes;
    }
    const auto offset = static_cast<std::uint32_t>(end_);
    write(staged_.back().bytes);
    end_ += size;
    staged_bytes_ += size;
    return offset;
  }

  // Record bytes staged since the last take().
  std::size_t staged_bytes() const { return staged_bytes_; }
  bool empty() const { return staged_.empty(); }

  // Takes every staged frame for a round, finishing each: its durable
  // offset is its segment's synced end now. REQUIRES: the last take() was
  // followed by written() (one round at a time).
  const std::deque<chunk>& take() {
    inflight_ = std::move(staged_);
    staged_.clear();
    staged_bytes_ = 0;
    for (chunk& c : inflight_) {
      store32(c.bytes, 25, static_cast<std::uint32_t>(c.seg->synced_end));
      finish_frame(c.bytes, 0);
    }
    return inflight_;
  }
  // The round that took them wrote them: they are read from the files now.
  // (After a failed round they are kept: reads go on from here.)
  void written() { inflight_.clear(); }

  // True while a frame of `seg` is staged or being written.
  bool holds(const segment_state& seg) const {
    for (const std::deque<chunk>* q : {&inflight_, &staged_})
      for (const chunk& c : *q)
        if (c.seg.get() == &seg) return true;
    return false;
  }

  // The chunk holding byte `offset` of `seg`, or null.
  const chunk* find(const segment_state& seg, std::uint64_t offset) const {
    for (const std::deque<chunk>* q : {&inflight_, &staged_})
      for (const chunk& c : *q)
        if (c.seg.get() == &seg && offset >= c.base && offset < c.base + c.bytes.size()) return &c;
    return nullptr;
  }

 private:
  bool frame_open() const { return !staged_.empty() && staged_.back().seg == open_; }

  std::shared_ptr<segment_state> open_;
  std::uint64_t end_ = k_header_bytes;  // open_'s offset of the next staged byte
  std::uint64_t next_number_ = 1;
  std::deque<chunk> staged_;            // not yet taken by a round
  std::deque<chunk> inflight_;          // being written by the running round
  std::size_t staged_bytes_ = 0;
};

}  // namespace seshat::detail::segment
