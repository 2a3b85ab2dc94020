// expect: Shard must be seshat::system_shard or seshat::data_shard
// A plain number type in the Shard position.
#include <cstdint>

#include "seshat/backends/memory_backend.hpp"
#include "seshat/log_store.hpp"

struct entry {
  std::uint64_t term = 0;
  std::uint64_t index = 0;
};

struct group_number {
  std::uint64_t value = 3;
};

using wrong =
    seshat::log_store<entry, seshat::memcpy_serializer, seshat::memory_backend, group_number>;
static_assert(sizeof(wrong) > 0);
