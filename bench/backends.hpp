// The backends the benchmark suite runs on: RocksDB (the default) first.
#pragma once

#include "seshat/backends/memory_backend.hpp"
#include "seshat/backends/segmented.hpp"
#include "seshat/storage.hpp"
#if SESHAT_HAVE_ROCKSDB
#include "seshat/backends/rocksdb_backend.hpp"
#endif
#if SESHAT_HAVE_LEVELDB
#include "seshat/backends/leveldb_backend.hpp"
#endif

namespace seshat::bench {

// Calls f.template operator()<B>() for every backend built here.
template <class F>
void for_each_backend(F&& f) {
#if SESHAT_HAVE_ROCKSDB
  f.template operator()<rocksdb_backend>();
#endif
#if SESHAT_HAVE_LEVELDB
  f.template operator()<leveldb_backend>();
#endif
  f.template operator()<memory_backend>();
}

}  // namespace seshat::bench
