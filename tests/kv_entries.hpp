// The state machine tests' entry type: a key-value command, and how it applies.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "seshat/membership.hpp"
#include "seshat/state_machine_store.hpp"

namespace seshat::test {

// Put `key` = `value`, delete `key` when value is empty, or make
// k_members the membership when key is "members".
struct kv_entry {
  std::uint64_t term = 0, index = 0;
  std::string key, value;
  template <class A>
  void serialize(A& a, unsigned) {
    a & term & index & key & value;
  }
};

inline const membership k_members{std::nullopt, {1, 2, 3}, {4}};

// Applies `e`: version = entry index, created at index * 1000 ms.
inline void kv_apply(const kv_entry& e, state_machine_batch& b) {
  if (e.key == "members") b.set_membership(k_members);
  else if (e.value.empty()) b.del(e.key);
  else b.put(e.key, e.value, e.index, e.index * 1000);
}

// Entries [first, first + count) of `term`, each putting k<i> = <tag><i>.
inline std::vector<kv_entry> puts(std::uint64_t term, std::uint64_t first, std::uint64_t count,
                                  const std::string& tag = "v") {
  std::vector<kv_entry> out;
  for (std::uint64_t i = first; i < first + count; ++i)
    out.push_back({term, i, "k" + std::to_string(i), tag + std::to_string(i)});
  return out;
}

}  // namespace seshat::test
