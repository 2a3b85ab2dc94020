// seshat/metrics.hpp: what a store reports about itself on demand.
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <array>
#include <cstdint>

#include "seshat/column_family.hpp"

namespace seshat {

struct storage_metrics {
  std::uint64_t disk_bytes = 0;  // bytes the store takes on disk
  std::array<std::uint64_t, k_column_family_count> keys{};  // keys per family, by index_of()
  std::uint64_t reads = 0;           // keys read (get, exists, log entries)
  std::uint64_t writes = 0;          // write operations (put, del, batch ops, log entries)
  std::uint64_t bytes_read = 0;      // value bytes read
  std::uint64_t bytes_written = 0;   // key and value bytes written
};

}  // namespace seshat
