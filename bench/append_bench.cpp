// W1 (append-sync) and W2 (append-buffered) through storage<B>'s log
// helpers, on every backend.
#include <string>
#include <vector>

#include "backends.hpp"
#include "bench_support.hpp"

namespace seshat::bench {
namespace {

// Appends batches of B entries of E bytes to system_raft_log; each batch is
// durable before the next starts when `sync` (W1), only in the WAL otherwise
// (W2).
template <class Backend>
void append(benchmark::State& state, bool sync) {
  const auto batch_size = static_cast<std::size_t>(state.range(0));
  const auto pool = random_entries(4096, k_entry_bytes);
  fresh_dir dir;
  auto opened = storage<Backend>::open(dir.path() / "store");
  if (!opened.ok()) return state.SkipWithError(opened.status().to_string().c_str());
  auto& store = **opened;

  std::vector<std::string_view> batch(batch_size);
  std::size_t next_entry = 0;
  std::uint64_t next_index = 1;
  latency_recorder latency;
  for (auto _ : state) {
    for (auto& e : batch) e = pool[next_entry++ % pool.size()];
    latency.start();
    status s = store.append_log(column_family::system_raft_log, next_index, batch, write_options{sync});
    latency.stop();
    if (!s.ok()) {
      state.SkipWithError(s.to_string().c_str());
      break;
    }
    next_index += batch_size;
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch_size));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(batch_size * k_entry_bytes));
  latency.report(state);
  state.counters["peak_rss_mb"] = peak_rss_mb();
  if (auto closed = store.close(); !closed.ok()) state.SkipWithError(closed.to_string().c_str());
}

template <class Backend>
void register_append() {
  const std::string name(Backend::k_name);
  benchmark::RegisterBenchmark(("W1/" + name).c_str(), append<Backend>, true)
      ->ArgName("B")->Arg(1)->Arg(16)->Arg(256)->UseRealTime();
  benchmark::RegisterBenchmark(("W2/" + name).c_str(), append<Backend>, false)
      ->ArgName("B")->Arg(1)->Arg(16)->Arg(256)->UseRealTime();
}

const bool registered = [] {
  for_each_backend([]<class B>() { register_append<B>(); });
  return true;
}();

}  // namespace
}  // namespace seshat::bench
