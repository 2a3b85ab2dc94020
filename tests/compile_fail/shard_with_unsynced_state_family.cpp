// expect: Shard must be seshat::system_shard or seshat::data_shard
// A home-made shard policy with every member, whose hard state would live
// in data_kv, a family whose writes are not synced: a vote could be lost.
#include <cstdint>

#include "seshat/backends/memory_backend.hpp"
#include "seshat/log_store.hpp"

struct entry {
  std::uint64_t term = 0;
  std::uint64_t index = 0;
};

struct careless_shard {
  static constexpr seshat::column_family log_family = seshat::column_family::data_raft_log;
  static constexpr seshat::column_family state_family = seshat::column_family::data_kv;
  static constexpr bool is_system = false;
  constexpr seshat::shard_id id() const noexcept { return 9; }
};

using wrong =
    seshat::log_store<entry, seshat::memcpy_serializer, seshat::memory_backend, careless_shard>;
static_assert(sizeof(wrong) > 0);
