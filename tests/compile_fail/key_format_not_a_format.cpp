// expect: KeyFormat must be seshat::binary_key_format or
// A type that spells no keys in the KeyFormat position.
#include <cstdint>

#include "seshat/backends/memory_backend.hpp"
#include "seshat/log_store.hpp"

struct entry {
  std::uint64_t term = 0;
  std::uint64_t index = 0;
};

struct upper_case_keys {};

using wrong = seshat::log_store<entry, seshat::memcpy_serializer, seshat::memory_backend,
                                seshat::system_shard, upper_case_keys>;
static_assert(sizeof(wrong) > 0);
