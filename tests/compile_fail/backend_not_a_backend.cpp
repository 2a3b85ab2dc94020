// expect: Backend must model seshat::backend
// A type that is no key-value backend in the Backend position.
#include <cstdint>
#include <map>
#include <string>

#include "seshat/log_store.hpp"

struct entry {
  std::uint64_t term = 0;
  std::uint64_t index = 0;
};

using not_a_backend = std::map<std::string, std::string>;

using wrong = seshat::log_store<entry, seshat::memcpy_serializer, not_a_backend>;
static_assert(sizeof(wrong) > 0);
