// backend_fault_env<B>: the fault environment of disk backend B, so that one
// test body runs on all: rocksdb_fault_env for rocksdb_backend,
// leveldb_fault_env for leveldb_backend, and for segmented<B> B's
// environment plus a fault_log_fs for the log engine on the same durability
// model and fault plan (one power loss, one plan for both halves).
// attach(o) points the open options at it. Built only where both disk
// backends are (tests/meson.build).
#pragma once

#include "fault_env/fault_log_fs.hpp"
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
struct backend_fault_env_of<segmented<B>> {
  struct type : backend_fault_env_of<B>::type {
    explicit type(const std::filesystem::path& keep_dir)
        : backend_fault_env_of<B>::type(keep_dir), log_fs_(this->model(), this->faults()) {}
    void attach(open_options& o) {
      backend_fault_env_of<B>::type::attach(o);
      o.environment.log_fs = &log_fs_;
    }
    // The log engine's file system (fail_next singles out one call kind).
    fault_log_fs& log_fs() { return log_fs_; }

   private:
    fault_log_fs log_fs_;
  };
};

template <class B>
using backend_fault_env = typename backend_fault_env_of<B>::type;

}  // namespace seshat::test
