// seshat/log_id.hpp: the identity of a log entry, (term, index).
#pragma once

#include <compare>
#include <cstdint>
#include <string>

namespace seshat {

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
