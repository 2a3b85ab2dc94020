// Test support: scratch directories and the list of backends under test.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <memory>
#include <string>

#include "seshat/backends/memory_backend.hpp"
#include "seshat/backends/segmented.hpp"
#include "seshat/envelope.hpp"
#include "seshat/storage.hpp"
#if SESHAT_HAVE_ROCKSDB
#include "seshat/backends/rocksdb_backend.hpp"
#endif
#if SESHAT_HAVE_LEVELDB
#include "seshat/backends/leveldb_backend.hpp"
#endif

namespace seshat::test {

// The number in environment variable `name` (a test's size or seed), or
// `fallback` when it is unset or empty.
inline std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

// A fresh directory under $SESHAT_TEST_DIR (the build folder's test-data by
// default: on the project's disk, not tmpfs), removed at the end of the test
// along with any memory store registered under it.
class scratch_dir {
 public:
  scratch_dir() {
    static std::atomic<int> counter{0};
    const char* base = std::getenv("SESHAT_TEST_DIR");
    std::filesystem::path root = base ? base : std::filesystem::current_path() / "test-data";
    std::filesystem::create_directories(root);
    path_ = root / ("t" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
  }
  ~scratch_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    memory_backend::destroy(path_).ignore();
    memory_backend::destroy(path_ / "store").ignore();
    memory_backend::destroy(path_ / "store" / segmented<memory_backend>::k_kv_dir).ignore();
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // The store's directory: a child of the scratch directory, so that tests
  // can also check what happens when it is missing.
  std::filesystem::path store() const { return path_ / "store"; }

 private:
  std::filesystem::path path_;
};

// Opens a storage<B> or fails the test with the status's message.
template <class B>
std::unique_ptr<storage<B>> open_store(const std::filesystem::path& dir,
                                       const open_options& options = {}) {
  auto opened = storage<B>::open(dir, options);
  if (!opened.ok()) throw std::runtime_error("open failed: " + opened.status().to_string());
  return std::move(*opened);
}

// Every key and value of every family, keyed "<family>/<key>": for
// "nothing changed" checks.
template <class B>
std::map<std::string, std::string> dump(storage<B>& s) {
  std::map<std::string, std::string> all;
  for (column_family cf : k_all_column_families) {
    auto it = s.new_iterator(cf);
    for (it->seek_to_first(); it->valid(); it->next())
      all[std::string(name_of(cf)) + "/" + std::string(it->key())] = std::string(it->value());
    if (!it->status().ok()) throw std::runtime_error("dump: " + it->status().to_string());
  }
  return all;
}

// `stored` (a value in its envelope) as a newer seshat would write it: the
// same payload under envelope version `version`, with its checksum.
inline std::string with_envelope_version(std::string stored, std::uint8_t version) {
  stored[0] = static_cast<char>(version);
  const std::uint32_t crc = envelope::checksum(stored[0], std::string_view(stored).substr(5));
  for (int i = 0; i < 4; ++i) stored[1 + i] = static_cast<char>(crc >> (8 * i));
  return stored;
}

}  // namespace seshat::test

#if SESHAT_HAVE_ROCKSDB
#define SESHAT_ROCKSDB_TYPE , seshat::rocksdb_backend
#else
#define SESHAT_ROCKSDB_TYPE
#endif
#if SESHAT_HAVE_LEVELDB
#define SESHAT_LEVELDB_TYPE , seshat::leveldb_backend
#else
#define SESHAT_LEVELDB_TYPE
#endif

// Every backend built here, for TEST_CASE_TEMPLATE_INVOKE.
#define SESHAT_ALL_BACKENDS seshat::memory_backend SESHAT_ROCKSDB_TYPE SESHAT_LEVELDB_TYPE

// Each of them with its logs in seshat's log engine (segmented<B>).
#if SESHAT_HAVE_ROCKSDB
#define SESHAT_SEGMENTED_ROCKSDB_TYPE , seshat::segmented<seshat::rocksdb_backend>
#else
#define SESHAT_SEGMENTED_ROCKSDB_TYPE
#endif
#if SESHAT_HAVE_LEVELDB
#define SESHAT_SEGMENTED_LEVELDB_TYPE , seshat::segmented<seshat::leveldb_backend>
#else
#define SESHAT_SEGMENTED_LEVELDB_TYPE
#endif
#define SESHAT_SEGMENTED_BACKENDS                                      \
  seshat::segmented<seshat::memory_backend> SESHAT_SEGMENTED_ROCKSDB_TYPE \
      SESHAT_SEGMENTED_LEVELDB_TYPE
