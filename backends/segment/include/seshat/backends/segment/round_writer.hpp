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
// Stops at the first failure and returns it (the engine latches it).
//
// Thread-safety: touches only the plan and the files it names.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "seshat/backends/segment/segment_file.hpp"
#include "seshat/detail/log_fs.hpp"
#include "seshat/status.hpp"

namespace seshat::detail::segment {

struct round_step {
  segment_state* seg = nullptr;  // read here only: seq, size, path
  bool create = false;           // the segment is not on disk yet
  log_file file;                 // in: when !create; out: when create
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
};

// Writes `plan` as the file comment says; `dir` is the log directory.
inline status write_round(log_fs& fs, const std::filesystem::path& dir, round_plan& plan) {
  const std::string where = "log engine " + dir.string() + ": ";
  if (plan.flush) SESHAT_RETURN_IF_ERROR(fs.datasync(plan.flush_file).with_context(where));
  const std::string end(4, '\0');
  for (round_step& st : plan.steps) {
    if (st.create) {
      auto f = create_segment(fs, dir, *st.seg);
      if (!f.ok())
        return f.status().with_context(where + "preparing " + segment_name(st.seg->seq) + ": ");
      st.file = *f;
    }
    const bool dsync = st.sync && plan.dsync && st.written == st.synced;
    const std::string_view pieces[] = {st.bytes, end};
    SESHAT_RETURN_IF_ERROR(fs.pwrite(st.file, st.base, pieces, {.dsync = dsync}).with_context(where));
    if (st.sync && !dsync) SESHAT_RETURN_IF_ERROR(fs.datasync(st.file).with_context(where));
    st.written = st.base + st.bytes.size();
    if (st.sync) st.synced = st.written;
  }
  return {};
}

}  // namespace seshat::detail::segment
