// expect: Serializer must encode and decode Entry
// memcpy_serializer stores an entry's bytes as they are: an entry holding a
// std::string is not trivially copyable.
#include <cstdint>
#include <string>

#include "seshat/backends/memory_backend.hpp"
#include "seshat/log_store.hpp"

struct entry_with_string {
  std::uint64_t term = 0;
  std::uint64_t index = 0;
  std::string text;
};

using wrong =
    seshat::log_store<entry_with_string, seshat::memcpy_serializer, seshat::memory_backend>;
static_assert(sizeof(wrong) > 0);
