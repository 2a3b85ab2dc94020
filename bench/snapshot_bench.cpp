// W7 (snapshot): a group's state machine holding 100 MB in 1 KiB values;
// build a snapshot of it, move it in 1 MiB chunks to a fresh store and
// install it there, through snapshot_manager, on every backend.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backends.hpp"
#include "bench_entries.hpp"
#include "bench_support.hpp"
#include "seshat/raft_snapshot.hpp"

namespace seshat::bench {
namespace {

constexpr std::size_t k_value_bytes = 1024;
constexpr std::size_t k_chunk_bytes = std::size_t{1} << 20;
constexpr std::uint64_t k_state_bytes = 100'000'000;
constexpr shard_id k_group = 1;

template <class B>
using w7_sm = state_machine_store<boost_entry, B, data_shard>;
template <class B>
using w7_log = log_store<boost_entry, boost_serializer, B, data_shard>;
template <class B>
using w7_snapshots = snapshot_manager<boost_entry, boost_serializer, B, data_shard>;

// A fresh store with group 1's log, state machine and snapshots.
template <class B>
struct w7_node {
  fresh_dir dir;
  std::unique_ptr<storage<B>> store;
  std::unique_ptr<w7_log<B>> log;
  std::optional<w7_sm<B>> sm;
  std::unique_ptr<w7_snapshots<B>> snapshots;

  status open() {
    auto s = storage<B>::open(dir.path() / "store");
    if (!s.ok()) return s.status();
    store = std::move(*s);
    auto l = w7_log<B>::open(*store, data_shard{k_group});
    if (!l.ok()) return l.status();
    log = std::move(*l);
    auto m = w7_sm<B>::open(*store, data_shard{k_group});
    if (!m.ok()) return m.status();
    sm.emplace(std::move(*m));
    auto snaps = w7_snapshots<B>::open(*sm, *log);
    if (!snaps.ok()) return snaps.status();
    snapshots = std::move(*snaps);
    return {};
  }
  ~w7_node() {
    snapshots.reset();
    sm.reset();
    log.reset();
    if (store) store->close().ignore();
  }
};

// Applies `count` entries, each putting a 1 KiB value, in batches of 1000.
template <class B>
status fill(w7_sm<B>& sm, std::uint64_t count) {
  const auto payloads = random_entries(1000, k_value_bytes);
  std::vector<boost_entry> batch;
  for (std::uint64_t next = 1; next <= count;) {
    batch.clear();
    for (; next <= count && batch.size() < 1000; ++next)
      batch.push_back({1, next, payloads[batch.size()]});
    SESHAT_RETURN_IF_ERROR(sm.apply(batch, [](const boost_entry& e, state_machine_batch& b) {
      std::string key = std::to_string(e.index);
      b.put("key-" + std::string(10 - key.size(), '0') + key, e.payload, e.index, 0);
    }));
  }
  return {};
}

// Moves the current snapshot of `from` to `to` in 1 MiB chunks.
template <class B>
result<received_snapshot> transfer(w7_snapshots<B>& from, w7_snapshots<B>& to) {
  auto current = from.get_current_snapshot();
  if (!current.ok()) return current.status();
  if (!*current) return status::not_found("no current snapshot");
  const raft_snapshot& snap = **current;
  auto receiver = to.begin_receiving_snapshot(snap.meta);
  if (!receiver.ok()) return receiver.status();
  for (std::uint64_t at = 0; at < snap.reader.size();) {
    auto chunk = snap.reader.read_chunk(at, k_chunk_bytes);
    if (!chunk.ok()) return chunk.status();
    SESHAT_RETURN_IF_ERROR(receiver->write_chunk(at, *chunk));
    at += chunk->size();
  }
  return receiver->finish();
}

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// W7: build, transfer and install a snapshot of 100 MB in 1 KiB values.
template <class B>
void snapshot_transfer(benchmark::State& state) {
  const std::uint64_t values = scaled(k_state_bytes / k_value_bytes);
  w7_node<B> source;
  if (auto s = source.open(); !s.ok()) return state.SkipWithError(s.to_string().c_str());
  if (auto s = fill<B>(*source.sm, values); !s.ok())
    return state.SkipWithError(s.to_string().c_str());
  double build_ms = 0, transfer_ms = 0, install_ms = 0, megabytes = 0;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    auto meta = source.snapshots->build_snapshot();
    build_ms += ms_since(t0);
    if (!meta.ok()) {
      state.SkipWithError(meta.status().to_string().c_str());
      break;
    }
    megabytes += static_cast<double>(meta->size_bytes) / 1e6;

    state.PauseTiming();
    w7_node<B> target;
    status opened = target.open();
    state.ResumeTiming();
    if (!opened.ok()) {
      state.SkipWithError(opened.to_string().c_str());
      break;
    }
    t0 = std::chrono::steady_clock::now();
    auto received = transfer<B>(*source.snapshots, *target.snapshots);
    transfer_ms += ms_since(t0);
    status installed =
        received.ok() ? target.snapshots->install_snapshot(*meta, *received) : received.status();
    install_ms += ms_since(t0);
    if (!installed.ok()) {
      state.SkipWithError(installed.to_string().c_str());
      break;
    }
    auto applied = target.sm->applied_state();
    if (!applied.ok() || applied->last_applied != meta->last_log_id) {
      state.SkipWithError("the installed state machine is not at the snapshot's log id");
      break;
    }
  }
  const double n = std::max<double>(1, static_cast<double>(state.iterations()));
  state.counters["ms_build"] = build_ms / n;
  state.counters["ms_transfer"] = transfer_ms / n;  // part of ms_install
  state.counters["ms_install"] = install_ms / n;
  state.counters["MB"] = megabytes / n;
  state.counters["MB_per_s"] = megabytes / ((build_ms + install_ms) / 1000.0);
  state.counters["peak_rss_mb"] = peak_rss_mb();
}

const bool registered = [] {
  for_each_backend([]<class B>() {
    benchmark::RegisterBenchmark(
        ("W7/" + std::string(B::k_name) + "/1KiB-values/1MiB-chunks").c_str(), snapshot_transfer<B>)
        ->Unit(benchmark::kMillisecond)
        ->Iterations(1)
        ->UseRealTime();
  });
  return true;
}();

}  // namespace
}  // namespace seshat::bench
