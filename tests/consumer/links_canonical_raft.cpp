// An outside program on seshat::canonical_raft: opens the adapter's raft_io
// on a memory store (which links the adapter, libraft and libuv) and closes
// it. Usage: links_canonical_raft <scratch-dir>
#include <cstdio>
#include <filesystem>

#include "seshat/backends/memory_backend.hpp"
#include "seshat/canonical_raft/raft_io.hpp"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir / "uv");
  auto store = seshat::storage<seshat::memory_backend>::open(dir / "store");
  if (!store.ok()) {
    std::fprintf(stderr, "open: %s\n", store.status().to_string().c_str());
    return 1;
  }
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0) return 1;
  {
    auto io = seshat::canonical_raft::seshat_raft_io<seshat::memory_backend>::open(
        **store, seshat::system_shard{}, &loop, (dir / "uv").string());
    if (!io.ok()) {
      std::fprintf(stderr, "raft_io: %s\n", io.status().to_string().c_str());
      return 1;
    }
    // As raft_close() would: close the raft_io, and run the loop until its
    // callback says every handle is closed.
    static bool closed = false;
    raft_io* raw = (*io)->io();
    raw->close(raw, [](raft_io*) { closed = true; });
    uv_run(&loop, UV_RUN_DEFAULT);
    if (!closed) {
      std::fprintf(stderr, "raft_io: the close callback did not run\n");
      return 1;
    }
  }
  if (uv_loop_close(&loop) != 0) {
    std::fprintf(stderr, "uv_loop_close: handles left open\n");
    return 1;
  }
  std::printf("links_canonical_raft: opened and closed a raft_io\n");
  return 0;
}
