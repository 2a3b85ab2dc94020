// expect: Entry must be default-constructible, copyable and expose
// An entry with a log id but no default constructor: the store cannot decode
// into it.
#include <cstdint>
#include <string>

#include "seshat/backends/memory_backend.hpp"
#include "seshat/log_store.hpp"

struct entry_needing_text {
  explicit entry_needing_text(std::string t) : text(std::move(t)) {}
  std::uint64_t term = 0;
  std::uint64_t index = 0;
  std::string text;
  template <class Archive>
  void serialize(Archive& a, unsigned) {
    a & term & index & text;
  }
};

using wrong = seshat::log_store<entry_needing_text, seshat::boost_serializer, seshat::memory_backend>;
static_assert(sizeof(wrong) > 0);
