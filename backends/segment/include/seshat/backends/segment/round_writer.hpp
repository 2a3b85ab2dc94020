// seshat/backends/segment/round_writer.hpp: the I/O of one round of a log
// engine's writer (docs/log-engine.md section 6), run outside the engine's
// mutex: the engine plans the round under it (round_plan), this writes it,
// and the engine applies the outcome under it again.
//
// Order, so that a frame in a segment proves every older segment durable to
// its end (recovery.hpp relies on it):
//   1 `flush`: the segment an earlier round left written but not synced,
//     when this round writes another one first, or syncs only: fdatasync
//   2 each step, in segment order: create the segment if it is new
//     (segment_file.hpp's durable order), one pwritev2 of its staged frame
//     followed by the body's `end` (4 zero bytes), then fdatasync when the
//     step must be durable (every step but the last, and the last of a
//     durable round) - or the write itself carries RWF_DSYNC when the
//     engine found it and the segment has no unsynced bytes before it.
// So a durable round within one segment is one write and one sync.
// In O_DIRECT mode (segment_io::direct, plan.direct) a step's write is
// direct_writer's instead: from the start of the block holding the step's
// base, the bytes below base that the last round left in that block (kept
// in memory: the same bytes again), the frame, `end`, zeros to the block
// end, through the segment's O_DIRECT descriptor (opened here on first use).
// An O_DIRECT open or write refused with EINVAL (nothing written) is done
// again through the page cache, and plan.direct_refused says so: the
// engine leaves O_DIRECT mode. A step whose padded write would pass the
// segment's size (a size not a multiple of the block) goes through the
// page cache too.
// Stops at the first failure and returns it (the engine latches it).
//
// Thread-safety: touches only the plan and the files it names.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "seshat/backends/segment/segment_file.hpp"
#include "seshat/detail/log_fs.hpp"
#include "seshat/status.hpp"

namespace seshat::detail::segment {

// The O_DIRECT writes of an engine's rounds (one round at a time): the
// block size, an aligned buffer, and in it the bytes of the partial block
// where the last direct write ended.
// Invariant: buf_[0, head_len_) holds segment seq_'s bytes
// [head_base_, head_base_ + head_len_), head_base_ a multiple of block_.
class direct_writer {
 public:
  explicit direct_writer(std::uint32_t block) : block_(block) {}
  std::uint32_t block() const { return block_; }

  // The end of the write of `length` bytes at `base`: a block multiple.
  std::uint64_t padded_end(std::uint64_t base, std::uint64_t length) const {
    return (base + length + block_ - 1) / block_ * block_;
  }

  // Writes `bytes`, then `end` (4 zero bytes) and zeros to the block end, at
  // `base` of segment `seq` through `direct` (O_DIRECT), in one write from
  // the block holding base: the bytes below base in that block are the
  // ones kept from the last write, else read from `buffered`. A failure
  // forgets the kept bytes; EINVAL from the write means nothing was written.
  fs_status write(log_fs& fs, const log_file& direct, const log_file& buffered, std::uint64_t seq,
                  std::uint64_t base, std::string_view bytes, bool dsync) {
    const std::uint64_t start = base / block_ * block_;
    const auto head = static_cast<std::size_t>(base - start);
    const auto total = static_cast<std::size_t>(padded_end(base, bytes.size() + 4) - start);
    const bool kept = seq_ == seq && head_base_ == start && head_len_ == head;
    if (!reserve(total, kept ? head : 0)) return fs_status(status::io_error("O_DIRECT buffer: out of memory"));
    if (!kept && head > 0) {
      auto n = fs.pread(buffered, start, std::span<char>(buf_.get(), head));
      if (!n.ok()) return fs_status(n.status(), n.os_error());
      if (*n != head)
        return fs_status(status::io_error("pread " + buffered.path.string() + byte_range(start, head) +
                                          ": got " + std::to_string(*n) + " bytes"));
    }
    seq_ = 0;  // until the write succeeds
    std::memcpy(buf_.get() + head, bytes.data(), bytes.size());
    std::memset(buf_.get() + head + bytes.size(), 0, total - head - bytes.size());
    const std::string_view piece[] = {std::string_view(buf_.get(), total)};
    if (fs_status e = fs.pwrite(direct, start, piece, {.dsync = dsync}); !e.ok()) return e;
    const std::uint64_t end = base + bytes.size();
    head_base_ = end / block_ * block_;
    head_len_ = static_cast<std::size_t>(end - head_base_);
    std::memmove(buf_.get(), buf_.get() + (head_base_ - start), head_len_);
    seq_ = seq;
    return {};
  }

 private:
  // Room for `size` bytes, the first `keep` kept.
  bool reserve(std::size_t size, std::size_t keep) {
    if (size <= capacity_) return true;
    const std::size_t want = std::max(size, 2 * capacity_);
    void* raw = nullptr;
    if (::posix_memalign(&raw, 4096, want) != 0) return false;
    if (keep > 0) std::memcpy(raw, buf_.get(), keep);
    buf_.reset(static_cast<char*>(raw));
    capacity_ = want;
    return true;
  }
  struct release {
    void operator()(char* p) const { std::free(p); }
  };
  std::uint32_t block_;
  std::unique_ptr<char, release> buf_;
  std::size_t capacity_ = 0;
  std::uint64_t seq_ = 0, head_base_ = 0;
  std::size_t head_len_ = 0;
};

struct round_step {
  segment_state* seg = nullptr;  // read here only: seq, size, path
  bool create = false;           // the segment is not on disk yet
  log_file file;                 // in: when !create; out: when create
  log_file direct_file;          // O_DIRECT mode: in, fd -1 when not open yet; out
  std::uint64_t base = 0;        // where `bytes` go
  std::string_view bytes;        // one whole frame
  bool sync = false;
  std::uint64_t written = 0, synced = 0;  // in: the segment's ends before; out: after
};

struct round_plan {
  std::vector<round_step> steps;
  segment_state* flush = nullptr;  // a segment to fdatasync first, or none
  log_file flush_file;
  bool dsync = false;              // RWF_DSYNC writes for durable steps
  direct_writer* direct = nullptr;  // O_DIRECT mode, else none
  std::string direct_refused;       // out: why O_DIRECT was refused (EINVAL), if it was
};

// Writes `plan` as the file comment says; `dir` is the log directory.
inline status write_round(log_fs& fs, const std::filesystem::path& dir, round_plan& plan) {
  const std::string where = "log engine " + dir.string() + ": ";
  if (plan.flush) SESHAT_RETURN_IF_ERROR(fs.datasync(plan.flush_file).with_context(where));
  const std::string end(4, '\0');
  for (round_step& st : plan.steps) {
    if (st.create) {
      auto f = create_segment(fs, dir, *st.seg, segment_fill::allocate,
                              plan.direct ? static_cast<std::uint16_t>(plan.direct->block()) : 0);
      if (!f.ok())
        return f.status().with_context(where + "preparing " + segment_name(st.seg->seq) + ": ");
      st.file = *f;
    }
    const bool dsync = st.sync && plan.dsync && st.written == st.synced;
    bool written = false;
    if (plan.direct && plan.direct->padded_end(st.base, st.bytes.size() + 4) <= st.seg->size) {
      fs_status e;
      if (st.direct_file.fd < 0) {
        auto d = fs.open(st.seg->path, {.direct = true});
        if (d.ok()) st.direct_file = *d;
        e = d.ok() ? fs_status() : fs_status(d.status(), d.os_error());
      }
      if (e.ok()) e = plan.direct->write(fs, st.direct_file, st.file, st.seg->seq, st.base, st.bytes, dsync);
      if (e.ok()) {
        written = true;
      } else if (e.os_error() == EINVAL) {  // nothing written: the page cache from here on
        plan.direct_refused = "O_DIRECT refused for " + segment_name(st.seg->seq) + " (" + e.message() +
                              "): continuing with page-cache writes";
        plan.direct = nullptr;
      } else {
        return e.with_context(where);
      }
    }
    const std::string_view pieces[] = {st.bytes, end};
    if (!written)
      SESHAT_RETURN_IF_ERROR(fs.pwrite(st.file, st.base, pieces, {.dsync = dsync}).with_context(where));
    if (st.sync && !dsync) SESHAT_RETURN_IF_ERROR(fs.datasync(st.file).with_context(where));
    st.written = st.base + st.bytes.size();
    if (st.sync) st.synced = st.written;
  }
  return {};
}

}  // namespace seshat::detail::segment
