// seshat/column_family.hpp: the six column families and their properties.
//
// Every byte seshat stores lives in one of six column families. Their
// properties are compile-time facts, so code can choose a family from a
// policy and have the choice checked by the compiler.
//
//   family             holds                                 writes
//   system_raft_log    the system group's (shard 0) log       WAL
//   system_raft_state  the system group's hard state          synced
//   system_data        cluster metadata                      WAL
//   data_raft_log      the data shards' logs                  WAL
//   data_raft_state    the data shards' hard state            synced
//   data_kv            the state machine's key-value data     WAL
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace seshat {

enum class column_family : std::uint8_t {
  system_raft_log = 0,
  system_raft_state = 1,
  system_data = 2,
  data_raft_log = 3,
  data_raft_state = 4,
  data_kv = 5,
};

inline constexpr std::size_t k_column_family_count = 6;

inline constexpr std::array<column_family, k_column_family_count> k_all_column_families = {
    column_family::system_raft_log, column_family::system_raft_state,
    column_family::system_data,     column_family::data_raft_log,
    column_family::data_raft_state, column_family::data_kv,
};

constexpr std::size_t index_of(column_family cf) noexcept { return static_cast<std::size_t>(cf); }

// The name a backend gives the family on disk, and messages use.
constexpr std::string_view name_of(column_family cf) noexcept {
  switch (cf) {
    case column_family::system_raft_log: return "system_raft_log";
    case column_family::system_raft_state: return "system_raft_state";
    case column_family::system_data: return "system_data";
    case column_family::data_raft_log: return "data_raft_log";
    case column_family::data_raft_state: return "data_raft_state";
    case column_family::data_kv: return "data_kv";
  }
  return "unknown";
}

// True when every write to the family must be durable before it returns
// (Raft's hard state: a vote must never be forgotten).
constexpr bool requires_sync(column_family cf) noexcept {
  return cf == column_family::system_raft_state || cf == column_family::data_raft_state;
}

// True when the family holds a Raft log (keys ordered by log index).
constexpr bool holds_log(column_family cf) noexcept {
  return cf == column_family::system_raft_log || cf == column_family::data_raft_log;
}

// The family named `name`, or nothing.
constexpr std::optional<column_family> column_family_from_name(std::string_view name) noexcept {
  for (column_family cf : k_all_column_families)
    if (name_of(cf) == name) return cf;
  return std::nullopt;
}

// The same properties as types, for compile-time selection.
template <column_family CF>
struct column_family_traits {
  static constexpr column_family value = CF;
  static constexpr std::string_view name = name_of(CF);
  static constexpr bool sync = requires_sync(CF);
  static constexpr bool log = holds_log(CF);
};

}  // namespace seshat
