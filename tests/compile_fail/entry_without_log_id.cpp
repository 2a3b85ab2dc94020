// expect: Entry must be default-constructible, copyable and expose
// An entry type with neither `term` and `index` members nor a log_id()
// member function, and no entry_traits specialization.
#include <string>

#include "seshat/backends/memory_backend.hpp"
#include "seshat/log_store.hpp"

struct note_without_id {
  std::string text;
  template <class Archive>
  void serialize(Archive& a, unsigned) {
    a & text;
  }
};

using wrong = seshat::log_store<note_without_id, seshat::boost_serializer, seshat::memory_backend>;
static_assert(sizeof(wrong) > 0);
