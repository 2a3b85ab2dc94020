// W1 on canonical raft's own disk log (libraft's uv raft_io: preallocated
// segments, O_DIRECT and O_DSYNC writes with Linux AIO where the probe finds
// them), so that the suite shows seshat's log engine beside it in one run:
// B entries of k_entry_bytes appended through raft_io's append, one request
// a batch, durable when its callback fires. No seshat code runs here.
#include <uv.h>
// libraft 0.15's headers have no extern "C" guards of their own.
extern "C" {
#include <raft.h>
#include <raft/uv.h>
}

#include <cstdint>
#include <string>
#include <vector>

#include "bench_support.hpp"

namespace seshat::bench {
namespace {

struct append_wait {
  bool done = false;
  int status = 0;
};

// Runs `loop` until `flag` is set.
void run_until(uv_loop_t& loop, const bool& flag) {
  while (!flag) uv_run(&loop, UV_RUN_ONCE);
}

void raft_uv_append(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  fresh_dir dir;
  std::filesystem::create_directories(dir.path());
  const std::string path = dir.path().string();
  uv_loop_t loop;
  uv_loop_init(&loop);
  raft_uv_transport transport{};
  raft_io io{};
  if (raft_uv_tcp_init(&transport, &loop) != 0) return state.SkipWithError("raft_uv_tcp_init failed");
  if (raft_uv_init(&io, &loop, path.c_str(), &transport) != 0)
    return state.SkipWithError("raft_uv_init failed");
  if (io.init(&io, 1, "127.0.0.1:9001") != 0) return state.SkipWithError(io.errmsg);
  raft_term term = 0;
  raft_id voted_for = 0;
  raft_snapshot* snapshot = nullptr;
  raft_index start = 0;
  raft_entry* loaded = nullptr;
  std::size_t n_loaded = 0;
  if (io.load(&io, &term, &voted_for, &snapshot, &start, &loaded, &n_loaded) != 0)
    return state.SkipWithError(io.errmsg);

  const std::vector<std::string> payloads = random_entries(batch, k_entry_bytes);
  std::vector<raft_entry> entries(batch);
  for (std::size_t i = 0; i < batch; ++i) {
    entries[i].term = 1;
    entries[i].type = RAFT_COMMAND;
    entries[i].buf.base = const_cast<char*>(payloads[i].data());
    entries[i].buf.len = payloads[i].size();
    entries[i].batch = nullptr;
  }
  latency_recorder latency;
  for (auto _ : state) {
    append_wait wait;
    raft_io_append req{};
    req.data = &wait;
    latency.start();
    const int rv = io.append(&io, &req, entries.data(), static_cast<unsigned>(batch),
                             [](raft_io_append* r, int status) {
                               auto* w = static_cast<append_wait*>(r->data);
                               w->status = status;
                               w->done = true;
                             });
    if (rv != 0) {
      state.SkipWithError(io.errmsg);
      break;
    }
    run_until(loop, wait.done);
    latency.stop();
    if (wait.status != 0) {
      state.SkipWithError("raft_io append failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(batch * k_entry_bytes));
  latency.report(state);
  state.counters["peak_rss_mb"] = peak_rss_mb();

  bool closed = false;
  io.data = &closed;
  io.close(&io, [](raft_io* i) { *static_cast<bool*>(i->data) = true; });
  run_until(loop, closed);
  raft_uv_close(&io);
  raft_uv_tcp_close(&transport);
  uv_run(&loop, UV_RUN_DEFAULT);  // the handles' close callbacks
  uv_loop_close(&loop);
}

BENCHMARK(raft_uv_append)->Name("W1/raft-uv")->ArgName("B")->Arg(1)->Arg(16)->Arg(256)->UseRealTime();

}  // namespace
}  // namespace seshat::bench
