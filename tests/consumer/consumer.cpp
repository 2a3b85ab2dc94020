// A tiny outside project: uses seshat only through its installed headers,
// libraries and pkg-config files.
#include <cstdio>
#include <filesystem>

#include "seshat/backends/rocksdb_backend.hpp"
#include "seshat/storage.hpp"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  auto opened = seshat::storage<seshat::rocksdb_backend>::open(std::filesystem::path(argv[1]));
  if (!opened.ok()) {
    std::fprintf(stderr, "%s\n", opened.status().to_string().c_str());
    return 1;
  }
  auto& store = **opened;
  if (auto s = store.append_log(seshat::column_family::system_raft_log, 1, "hello"); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.to_string().c_str());
    return 1;
  }
  auto read = store.read_log(seshat::column_family::system_raft_log, 1, 2);
  if (!read.ok() || read->at(0) != "hello") return 1;
  std::printf("consumer: appended and read back entry 1\n");
  return 0;
}
