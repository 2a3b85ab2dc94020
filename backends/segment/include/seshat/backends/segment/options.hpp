// seshat/backends/segment/options.hpp: segment_log_options, how a log
// engine (segment_log.hpp) lays out and syncs its segments.
#pragma once

#include <cstdint>
#include <string>

#include "seshat/detail/segment_format.hpp"
#include "seshat/options.hpp"
#include "seshat/status.hpp"

namespace seshat {

// How a durable round is made durable (docs/log-engine.md section 5).
enum class segment_io {
  // pwritev2, then fdatasync: works on every file system (the default).
  write_fdatasync,
  // pwritev2 with RWF_DSYNC (one system call); where the probe at open finds
  // RWF_DSYNC refused, the engine uses write_fdatasync instead.
  dsync,
};

struct segment_log_options {
  // The size of every segment file, fixed when it is created; a frame larger
  // than a segment gets a segment of its own, sized to fit. Range
  // [16 KiB, 1 GiB]. (M3: one size; the automatic sizes of the design are M5.)
  std::uint64_t segment_bytes = std::uint64_t{1} << 20;
  segment_io io = segment_io::write_fdatasync;
  // The longest an async-only round waits for more work after its first
  // append_async, and the pause in stagings after which it starts at once.
  // Ranges [0, 100000] us each.
  std::uint32_t max_linger_us = 2000;
  std::uint32_t idle_gap_us = 50;
  // What open does with damage in the unsynced tail (options.hpp).
  recovery_mode recovery = recovery_mode::tolerate_corrupted_tail;
};

// invalid-config naming the first field out of range, else ok.
inline status validate(const segment_log_options& o) {
  using detail::segment::k_max_segment_bytes;
  using detail::segment::k_min_segment_bytes;
  if (o.segment_bytes < k_min_segment_bytes || o.segment_bytes > k_max_segment_bytes)
    return status::invalid_config("segment_log_options::segment_bytes " +
                                  std::to_string(o.segment_bytes) + ": expected " +
                                  std::to_string(k_min_segment_bytes) + " to " +
                                  std::to_string(k_max_segment_bytes));
  if (o.max_linger_us > 100000)
    return status::invalid_config("segment_log_options::max_linger_us " +
                                  std::to_string(o.max_linger_us) + ": expected 0 to 100000");
  if (o.idle_gap_us > 100000)
    return status::invalid_config("segment_log_options::idle_gap_us " +
                                  std::to_string(o.idle_gap_us) + ": expected 0 to 100000");
  return {};
}

}  // namespace seshat
