// expect: Entry has no serialize() for boost_serializer
// An entry for the default serializer that forgot its serialize().
#include <cstdint>
#include <map>
#include <string>

#include "seshat/backends/memory_backend.hpp"
#include "seshat/log_store.hpp"

struct entry {
  std::uint64_t term = 0;
  std::uint64_t index = 0;
  std::map<std::string, std::string> fields;
};

using wrong = seshat::log_store<entry, seshat::boost_serializer, seshat::memory_backend>;
static_assert(sizeof(wrong) > 0);
