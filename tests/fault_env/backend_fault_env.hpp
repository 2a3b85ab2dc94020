// backend_fault_env<B>: the fault environment of disk backend B, so that one
// test body runs on both: rocksdb_fault_env for rocksdb_backend,
// leveldb_fault_env for leveldb_backend. attach(o) points the open options
// at it. Built only where both disk backends are (tests/meson.build).
#pragma once

#include "fault_env/leveldb_fault_env.hpp"
#include "fault_env/rocksdb_fault_env.hpp"
#include "seshat/options.hpp"
#include "support.hpp"

namespace seshat::test {

template <class B>
struct backend_fault_env_of;

template <>
struct backend_fault_env_of<rocksdb_backend> {
  struct type : rocksdb_fault_env {
    using rocksdb_fault_env::rocksdb_fault_env;
    void attach(open_options& o) { o.environment.rocksdb = env(); }
  };
};

template <>
struct backend_fault_env_of<leveldb_backend> {
  struct type : leveldb_fault_env {
    using leveldb_fault_env::leveldb_fault_env;
    void attach(open_options& o) { o.environment.leveldb = env(); }
  };
};

template <class B>
using backend_fault_env = typename backend_fault_env_of<B>::type;

}  // namespace seshat::test
