// seshat/log_id.hpp: the identity of a log entry, (term, index).
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <compare>
#include <cstdint>
#include <limits>
#include <string>

namespace seshat {

// The largest index a log entry may have: 2^64 - 2, so that the index after
// any entry (the next append, the end of a half-open range) is a uint64_t
// too. An append, apply or reset past it is refused with invalid-log-index.
inline constexpr std::uint64_t k_max_log_index = std::numeric_limits<std::uint64_t>::max() - 1;

// "index 18446744073709551615 is past the largest log index 18446744073709551614"
inline std::string past_max_index(std::uint64_t index) {
  return "index " + std::to_string(index) + " is past the largest log index " +
         std::to_string(k_max_log_index);
}

// A log entry's term and index. Ordered by term, then index (Raft's
// "more up to date" order for entries of one log).
struct log_id {
  std::uint64_t term = 0;
  std::uint64_t index = 0;
  friend constexpr auto operator<=>(const log_id&, const log_id&) = default;
};

inline std::string to_string(const log_id& id) {
  return "(term " + std::to_string(id.term) + ", index " + std::to_string(id.index) + ")";
}

}  // namespace seshat
