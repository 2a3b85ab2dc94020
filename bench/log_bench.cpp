// W1 (append-sync), W2 (append-buffered) and W3 (multi-group) through
// log_store, on every backend, serializer and key format.
#include <atomic>
#include <barrier>
#include <condition_variable>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "backends.hpp"
#include "bench_entries.hpp"
#include "bench_support.hpp"
#include "seshat/log_store.hpp"

namespace seshat::bench {
namespace {

template <class Backend, class Entry, class Serializer, class Keys, class Shard = system_shard>
struct setup {
  using log = log_store<Entry, Serializer, Backend, Shard, Keys>;
  static std::string name(std::string_view workload) {
    return std::string(workload) + "/" + std::string(Backend::k_name) + "/" +
           std::string(Serializer::k_name) + "/" + std::string(Keys::k_name);
  }
};

// `count` entries with distinct random payloads, indices to be set.
template <class Entry>
std::vector<Entry> entry_pool(std::size_t count) {
  const auto payloads = random_entries(count, k_entry_bytes);
  std::vector<Entry> pool(count);
  for (std::size_t i = 0; i < count; ++i) fill(pool[i], 0, payloads[i]);
  return pool;
}

// W1/W2: batches of B entries to one group; durable per batch when `sync`.
template <class S>
void append(benchmark::State& state, bool sync) {
  using Entry = typename S::log::entry_type;
  const auto batch_size = static_cast<std::size_t>(state.range(0));
  fresh_dir dir;
  auto store = storage<typename S::log::storage_type::backend_type>::open(dir.path() / "store");
  if (!store.ok()) return state.SkipWithError(store.status().to_string().c_str());
  log_store_options options;
  options.sync = sync ? sync_policy::durable : sync_policy::buffered;
  auto log = S::log::open(**store, system_shard{}, options);
  if (!log.ok()) return state.SkipWithError(log.status().to_string().c_str());

  auto batch = entry_pool<Entry>(batch_size);
  std::uint64_t next = 1;
  latency_recorder latency;
  for (auto _ : state) {
    for (auto& e : batch) e.index = next++;
    latency.start();
    status s = (*log)->append(batch);
    latency.stop();
    if (!s.ok()) {
      state.SkipWithError(s.to_string().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch_size));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(batch_size * k_entry_bytes));
  latency.report(state);
  state.counters["peak_rss_mb"] = peak_rss_mb();
}

// W3: G = 64 data groups in one store; a round appends one entry to every
// group and is acknowledged when all 64 are durable. T threads submit, each
// for G/T groups. `async`: append_async (group commit); otherwise durable
// append() per group.
template <class Backend>
void multi_group(benchmark::State& state, bool async) {
  using S = setup<Backend, boost_entry, boost_serializer, binary_key_format, data_shard>;
  constexpr int k_groups = 64;
  const int threads = static_cast<int>(state.range(0));
  fresh_dir dir;
  auto store = storage<Backend>::open(dir.path() / "store");
  if (!store.ok()) return state.SkipWithError(store.status().to_string().c_str());
  std::vector<std::unique_ptr<typename S::log>> logs;
  for (int g = 1; g <= k_groups; ++g) {
    auto log = S::log::open(**store, data_shard{static_cast<shard_id>(g)});
    if (!log.ok()) return state.SkipWithError(log.status().to_string().c_str());
    logs.push_back(std::move(*log));
  }
  auto pool = entry_pool<boost_entry>(k_groups);
  std::uint64_t next = 1;
  round_latch latch;
  std::atomic<bool> failed{false};
  latency_recorder latency;
  const std::uint64_t syncs_before = (*store)->group_syncs();

  auto submit = [&](int t) {
    for (int g = t; g < k_groups; g += threads) {
      boost_entry e = pool[static_cast<std::size_t>(g)];
      e.index = next;
      std::span<const boost_entry> one(&e, 1);
      auto& log = *logs[static_cast<std::size_t>(g)];
      status s = async ? log.append_async(one, [&](status st) { latch.done(st); }) : log.append(one);
      if (!s.ok()) failed = true;
    }
  };
  // Workers stay for the whole run: a round starts when all pass `start`
  // and is submitted when all pass `submitted`.
  std::barrier start(threads), submitted(threads);
  std::atomic<bool> stop{false};
  std::vector<std::jthread> workers;
  for (int t = 1; t < threads; ++t)
    workers.emplace_back([&, t] {
      for (;;) {
        start.arrive_and_wait();
        if (stop) return;
        submit(t);
        submitted.arrive_and_wait();
      }
    });
  for (auto _ : state) {
    latency.start();
    latch.reset(k_groups);
    start.arrive_and_wait();
    submit(0);
    submitted.arrive_and_wait();
    if (async && !latch.wait()) failed = true;
    latency.stop();
    ++next;
    if (failed) {
      state.SkipWithError("an append failed");
      break;
    }
  }
  stop = true;
  start.arrive_and_wait();
  workers.clear();
  const auto rounds = static_cast<double>(state.iterations());
  state.SetItemsProcessed(state.iterations() * k_groups);
  state.SetBytesProcessed(state.iterations() * k_groups * static_cast<std::int64_t>(k_entry_bytes));
  if (async)
    state.counters["fsyncs_per_round"] =
        static_cast<double>((*store)->group_syncs() - syncs_before) / std::max(rounds, 1.0);
  latency.report(state);
  state.counters["peak_rss_mb"] = peak_rss_mb();
}

template <class S>
void register_append() {
  benchmark::RegisterBenchmark(S::name("W1").c_str(), append<S>, true)
      ->ArgName("B")->Arg(1)->Arg(16)->Arg(256)->UseRealTime();
  benchmark::RegisterBenchmark(S::name("W2").c_str(), append<S>, false)
      ->ArgName("B")->Arg(1)->Arg(16)->Arg(256)->UseRealTime();
}

template <class B>
void register_multi_group() {
  benchmark::RegisterBenchmark(("W3/" + std::string(B::k_name) + "/async").c_str(),
                               multi_group<B>, true)
      ->ArgName("T")->Arg(1)->Arg(4)->UseRealTime();
  benchmark::RegisterBenchmark(("W3/" + std::string(B::k_name) + "/sync").c_str(),
                               multi_group<B>, false)
      ->ArgName("T")->Arg(1)->Arg(4)->UseRealTime();
}

const bool registered = [] {
  for_each_backend([]<class B>() {
    register_append<setup<B, boost_entry, boost_serializer, binary_key_format>>();
  });
  for_each_backend([]<class B>() { register_multi_group<B>(); });
#if SESHAT_HAVE_ROCKSDB
  // The default backend with its logs in seshat's log engine (segmented<B>):
  // the engine through log_store, Boost serializer included.
  register_append<setup<segmented<rocksdb_backend>, boost_entry, boost_serializer, binary_key_format>>();
  register_multi_group<segmented<rocksdb_backend>>();
#endif
  // The serializer's and the key format's cost, on the default backend.
  for_each_backend([]<class B>() {
    if constexpr (std::is_same_v<B, memory_backend>) return;
    benchmark::RegisterBenchmark(
        setup<B, pod_entry, memcpy_serializer, binary_key_format>::name("W2").c_str(),
        append<setup<B, pod_entry, memcpy_serializer, binary_key_format>>, false)
        ->ArgName("B")->Arg(256)->UseRealTime();
    benchmark::RegisterBenchmark(
        setup<B, boost_entry, boost_serializer, decimal_key_format>::name("W2").c_str(),
        append<setup<B, boost_entry, boost_serializer, decimal_key_format>>, false)
        ->ArgName("B")->Arg(256)->UseRealTime();
    // The hand-written loop's key bytes (baseline_bench.cpp), for W1 too.
    benchmark::RegisterBenchmark(
        setup<B, boost_entry, boost_serializer, decimal_key_format>::name("W1").c_str(),
        append<setup<B, boost_entry, boost_serializer, decimal_key_format>>, true)
        ->ArgName("B")->Arg(1)->Arg(16)->Arg(256)->UseRealTime();
  });
  return true;
}();

}  // namespace
}  // namespace seshat::bench
