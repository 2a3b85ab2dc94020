// The entry types the benchmark suite appends: E payload bytes each, one
// for Boost.Serialization and one trivially copyable for memcpy.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "bench_support.hpp"

namespace seshat::bench {

struct boost_entry {
  std::uint64_t term = 0;
  std::uint64_t index = 0;
  std::string payload;
  template <class Archive>
  void serialize(Archive& a, unsigned) {
    a & term & index & payload;
  }
};

struct pod_entry {
  std::uint64_t term = 0;
  std::uint64_t index = 0;
  char payload[k_entry_bytes] = {};
};

// Fills `e` as entry `index` of term 1 with payload bytes from `bytes`.
inline void fill(boost_entry& e, std::uint64_t index, const std::string& bytes) {
  e.term = 1;
  e.index = index;
  e.payload = bytes;
}
inline void fill(pod_entry& e, std::uint64_t index, const std::string& bytes) {
  e.term = 1;
  e.index = index;
  std::memcpy(e.payload, bytes.data(), sizeof e.payload);
}

}  // namespace seshat::bench
