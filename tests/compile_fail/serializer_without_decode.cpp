// expect: Serializer must encode and decode Entry
// A user-written serializer that can encode but has no decode().
#include <cstdint>
#include <string>

#include "seshat/backends/memory_backend.hpp"
#include "seshat/log_store.hpp"

struct entry {
  std::uint64_t term = 0;
  std::uint64_t index = 0;
};

struct encode_only_serializer {
  static void encode(const entry& e, std::string& out) {
    out.append(reinterpret_cast<const char*>(&e), sizeof e);
  }
};

using wrong = seshat::log_store<entry, encode_only_serializer, seshat::memory_backend>;
static_assert(sizeof(wrong) > 0);
