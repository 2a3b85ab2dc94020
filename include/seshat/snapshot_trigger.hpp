// seshat/snapshot_trigger.hpp: when the state machine should take a
// snapshot (so that the log before it can be purged).
//
// A trigger policy T answers `t.due(entries, bytes)`: given the entries
// applied and the log bytes written since the last snapshot, is a new one
// due? The contract:
//   - due() is a pure function of its arguments and of T's own fields: no
//     clock, no I/O, the same answer every time;
//   - it is monotonic: due(e, b) implies due(e', b') for every e' >= e and
//     b' >= b (growing the log never makes a snapshot less due);
//   - it is cheap: it is asked after every apply.
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <concepts>
#include <cstdint>

namespace seshat {

template <class T>
concept snapshot_trigger_policy = requires(const T& t, std::uint64_t n) {
  { t.due(n, n) } -> std::same_as<bool>;
};

// Due when either limit is reached: at least max_entries entries, or at
// least max_log_bytes log bytes, since the last snapshot. A limit of 0
// turns that limit off (both 0: never due).
// Thread-safety: a plain value; due() is const.
struct snapshot_trigger {
  std::uint64_t max_entries = 10'000;
  std::uint64_t max_log_bytes = 100ull << 20;

  bool due(std::uint64_t entries_since_snapshot, std::uint64_t log_bytes_since_snapshot) const {
    return (max_entries != 0 && entries_since_snapshot >= max_entries) ||
           (max_log_bytes != 0 && log_bytes_since_snapshot >= max_log_bytes);
  }
};

static_assert(snapshot_trigger_policy<snapshot_trigger>);

}  // namespace seshat
