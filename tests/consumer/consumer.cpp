// A tiny outside project: uses seshat only through its installed headers,
// libraries and its pkg-config files or CMake package. On RocksDB and on
// LevelDB it opens a store and a log, appends, reads the entries back and
// checks every status. Usage: consumer <scratch-dir>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "seshat/backends/leveldb_backend.hpp"
#include "seshat/backends/rocksdb_backend.hpp"
#include "seshat/log_store.hpp"

struct entry {
  std::uint64_t term = 0, index = 0;
  std::string command;
  template <class A>
  void serialize(A& a, unsigned) {
    a & term & index & command;
  }
};

template <class Backend>
bool append_and_read_back(const std::filesystem::path& dir) {
  const std::string name(Backend::k_name);
  auto store = seshat::storage<Backend>::open(dir);
  if (!store.ok()) {
    std::fprintf(stderr, "%s: open: %s\n", name.c_str(), store.status().to_string().c_str());
    return false;
  }
  auto log = seshat::log_store<entry, seshat::boost_serializer, Backend>::open(**store);
  if (!log.ok()) {
    std::fprintf(stderr, "%s: open log: %s\n", name.c_str(), log.status().to_string().c_str());
    return false;
  }
  std::vector<entry> batch{{1, 1, "put x 1"}, {1, 2, "put y 2"}};
  if (seshat::status s = (*log)->append(batch); !s.ok()) {
    std::fprintf(stderr, "%s: append: %s\n", name.c_str(), s.to_string().c_str());
    return false;
  }
  auto read = (*log)->entries(1, 3);
  if (!read.ok()) {
    std::fprintf(stderr, "%s: entries: %s\n", name.c_str(), read.status().to_string().c_str());
    return false;
  }
  if (read->size() != 2 || (*read)[1].command != "put y 2") {
    std::fprintf(stderr, "%s: entries [1, 3) read back wrong\n", name.c_str());
    return false;
  }
  std::printf("consumer: %s appended and read back entries [1, 3)\n", name.c_str());
  return true;
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::filesystem::path dir = argv[1];
  const bool ok = append_and_read_back<seshat::rocksdb_backend>(dir / "rocksdb") &&
                  append_and_read_back<seshat::leveldb_backend>(dir / "leveldb");
  return ok ? 0 : 1;
}
