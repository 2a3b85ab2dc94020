// seshat/shard.hpp: the Shard policy, which Raft group a store serves.
//
// Shard 0 is the system group: its log and hard state live in
// system_raft_log and system_raft_state. Every other shard id is a data
// group: data_raft_log and data_raft_state, shared by all data groups, each
// group's keys prefixed with its id (key_format.hpp), so that groups can be
// added at run time without new column families.
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <concepts>
#include <cstdint>
#include <string>

#include "seshat/column_family.hpp"

namespace seshat {

using shard_id = std::uint64_t;
inline constexpr shard_id k_system_shard = 0;

// The system group (shard 0).
struct system_shard {
  static constexpr column_family log_family = column_family::system_raft_log;
  static constexpr column_family state_family = column_family::system_raft_state;
  static constexpr bool is_system = true;
  constexpr shard_id id() const noexcept { return k_system_shard; }
};

// A data group; its id is a run-time value. REQUIRES: id != 0 (a store
// refuses shard 0 as a data shard with an invalid-argument error).
class data_shard {
 public:
  static constexpr column_family log_family = column_family::data_raft_log;
  static constexpr column_family state_family = column_family::data_raft_state;
  static constexpr bool is_system = false;
  constexpr explicit data_shard(shard_id id) noexcept : id_(id) {}
  constexpr shard_id id() const noexcept { return id_; }

 private:
  shard_id id_;
};

// A group's name in every error about it: "system group" or "data shard
// 42". The log, the state machine and the snapshots of a group start their
// messages with it ("data shard 42: entry 7: ...").
inline std::string describe_group(bool system, shard_id id) {
  return system ? std::string("system group") : "data shard " + std::to_string(id);
}

// A Shard policy: the families a group's log and hard state live in, and
// its id. The log family must hold a log; the state family must be synced.
template <class S>
concept shard_policy = requires(const S& s) {
  { S::log_family } -> std::convertible_to<column_family>;
  { S::state_family } -> std::convertible_to<column_family>;
  { S::is_system } -> std::convertible_to<bool>;
  { s.id() } -> std::convertible_to<shard_id>;
} && holds_log(S::log_family) && requires_sync(S::state_family);

// The name of the group `s` serves (describe_group).
template <shard_policy S>
std::string describe(const S& s) {
  return describe_group(S::is_system, s.id());
}

}  // namespace seshat
