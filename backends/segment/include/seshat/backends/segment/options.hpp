// seshat/backends/segment/options.hpp: the check of segment_log_options
// (seshat/options.hpp), how a log engine (segment_log.hpp) lays out and
// syncs its segments.
#pragma once

#include <cstdint>
#include <string>

#include "seshat/detail/segment_format.hpp"
#include "seshat/options.hpp"
#include "seshat/status.hpp"

namespace seshat {

// segment_io and segment_log_options are in seshat/options.hpp (they are
// open_options::log); this header checks them.

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
