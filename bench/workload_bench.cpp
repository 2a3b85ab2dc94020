// W4 (read-range), W5 (purge), W6 (recover) and W8 (write-amp) through
// log_store, on every backend.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "backends.hpp"
#include "bench_entries.hpp"
#include "bench_support.hpp"
#include "child_mode.hpp"
#include "seshat/log_store.hpp"

namespace seshat::bench {
namespace {

template <class Backend, class Keys = binary_key_format>
using bench_log = log_store<boost_entry, boost_serializer, Backend, system_shard, Keys>;

// Appends entries [next, next + count) in buffered batches of 1000, then
// syncs; returns the next index.
template <class Backend, class Keys>
result<std::uint64_t> fill(bench_log<Backend, Keys>& log, storage<Backend>& store,
                           std::uint64_t next, std::uint64_t count) {
  const auto payloads = random_entries(1000, k_entry_bytes, next);
  std::vector<boost_entry> batch;
  for (std::uint64_t done = 0; done < count;) {
    batch.clear();
    for (; done < count && batch.size() < 1000; ++done)
      batch.push_back({1, next++, payloads[batch.size()]});
    SESHAT_RETURN_IF_ERROR(log.append_async(batch, [](status) {}));
  }
  SESHAT_RETURN_IF_ERROR(store.sync_wal());
  return next;
}

// Opens a fresh store and its system log with the given policy.
template <class Backend, class Keys = binary_key_format>
struct fresh_log {
  fresh_dir dir;
  std::unique_ptr<storage<Backend>> store;
  std::unique_ptr<bench_log<Backend, Keys>> log;

  status open(sync_policy policy = sync_policy::buffered) {
    auto s = storage<Backend>::open(dir.path() / "store");
    if (!s.ok()) return s.status();
    store = std::move(*s);
    log_store_options options;
    options.sync = policy;
    auto l = bench_log<Backend, Keys>::open(*store, system_shard{}, options);
    if (!l.ok()) return l.status();
    log = std::move(*l);
    return {};
  }
  void close() {
    log.reset();
    if (store) store->close().ignore();
    store.reset();
  }
};

// W4: reads of 64 consecutive entries at uniformly random indices of a log
// holding 1,000,000. With decimal_key_format the keys are the hand-written
// loop's (baseline_bench.cpp) byte for byte.
template <class Backend, class Keys = binary_key_format>
void read_range(benchmark::State& state) {
  constexpr std::uint64_t k_span = 64;
  const std::uint64_t count = scaled(1'000'000) + k_span;
  fresh_log<Backend, Keys> f;
  if (auto s = f.open(); !s.ok()) return state.SkipWithError(s.to_string().c_str());
  if (auto s = fill(*f.log, *f.store, 1, count); !s.ok())
    return state.SkipWithError(s.status().to_string().c_str());
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<std::uint64_t> start(1, count - k_span + 1);
  latency_recorder latency;
  for (auto _ : state) {
    const std::uint64_t lo = start(rng);
    latency.start();
    auto read = f.log->entries(lo, lo + k_span);
    latency.stop();
    if (!read.ok() || read->size() != k_span) {
      state.SkipWithError(read.status().to_string().c_str());
      break;
    }
    benchmark::DoNotOptimize(read->data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(k_span));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(k_span * k_entry_bytes));
  latency.report(state);
  state.counters["peak_rss_mb"] = peak_rss_mb();
}

// W5: a log of 1,000,000 entries; each step appends 10,000 more and purges
// the oldest 10,000.
template <class Backend>
void purge(benchmark::State& state) {
  const std::uint64_t stored = scaled(1'000'000);
  const std::uint64_t step = std::max<std::uint64_t>(1, stored / 100);
  fresh_log<Backend> f;
  if (auto s = f.open(); !s.ok()) return state.SkipWithError(s.to_string().c_str());
  auto next = fill(*f.log, *f.store, 1, stored);
  if (!next.ok()) return state.SkipWithError(next.status().to_string().c_str());
  std::uint64_t purged = 0;
  double purge_us = 0;
  for (auto _ : state) {
    next = fill(*f.log, *f.store, *next, step);
    if (!next.ok()) {
      state.SkipWithError(next.status().to_string().c_str());
      break;
    }
    const auto t0 = std::chrono::steady_clock::now();
    status s = f.log->purge(purged + step);
    purge_us += std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    if (!s.ok()) {
      state.SkipWithError(s.to_string().c_str());
      break;
    }
    purged += step;
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(step));
  state.counters["purge_us"] = purge_us / std::max<double>(1, static_cast<double>(state.iterations()));
  // Space amplification after the last purge: bytes on disk over the key
  // and value bytes of the live log (the entries past the last purge). The
  // purged ranges' compaction runs in the background: waited for first.
  if (auto s = f.store->wait_for_compaction(); !s.ok())
    return state.SkipWithError(s.to_string().c_str());
  auto disk = f.store->backend().disk_usage();
  auto m = f.store->metrics();
  if (disk.ok() && m.ok() && *next > 1) {
    const double bytes_per_entry =
        static_cast<double>(m->bytes_written) / static_cast<double>(*next - 1);
    state.counters["disk_mb_after"] = static_cast<double>(*disk) / 1e6;
    state.counters["disk_over_live"] =
        static_cast<double>(*disk) / (bytes_per_entry * static_cast<double>(*next - 1 - purged));
  }
  state.counters["peak_rss_mb"] = peak_rss_mb();
}

// W6: reopen a store holding 1,000,000 entries after a clean close and read
// its log state and vote. Each iteration fills a fresh store, closes it
// (timed apart: close_ms) and times the first open after that close, the
// one a restart pays: a second open would find the store recovered by the
// first, and measure nothing a restart costs.
template <class Backend>
void recover(benchmark::State& state) {
  const std::uint64_t count = scaled(1'000'000);
  double close_ms = 0;
  for (auto _ : state) {
    fresh_log<Backend> f;
    if (auto s = f.open(); !s.ok()) return state.SkipWithError(s.to_string().c_str());
    if (auto s = fill(*f.log, *f.store, 1, count); !s.ok())
      return state.SkipWithError(s.status().to_string().c_str());
    if (auto s = f.log->save_vote(vote{1, 1, true}); !s.ok())
      return state.SkipWithError(s.to_string().c_str());
    const auto c0 = std::chrono::steady_clock::now();
    f.close();
    close_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - c0).count();
    const auto t0 = std::chrono::steady_clock::now();
    if (auto s = f.open(); !s.ok()) {
      state.SkipWithError(s.to_string().c_str());
      break;
    }
    const auto last = f.log->get_log_state().last;
    auto v = f.log->read_vote();
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (!last || last->index != count || !v.ok() || !*v) {
      state.SkipWithError("the reopened log state is wrong");
      break;
    }
    f.close();
  }
  state.counters["close_ms"] =
      close_ms / std::max<double>(1, static_cast<double>(state.iterations()));
  state.counters["peak_rss_mb"] = peak_rss_mb();
}

// W6 after a crash: a child process fills a store with 1,000,000 entries,
// makes them durable (sync_wal), saves a vote and is killed with SIGKILL,
// so nothing is flushed or closed; the benchmark times the reopen that
// recovers it (RocksDB replays its WAL here).
template <class Backend>
int crash_fill_child(const std::vector<std::string>& args) {
  if (args.size() != 2) return 2;
  auto s = storage<Backend>::open(args[0]);
  if (!s.ok()) return 3;
  auto log = bench_log<Backend>::open(**s, system_shard{}, log_store_options{sync_policy::buffered});
  if (!log.ok()) return 4;
  auto filled = fill(**log, **s, 1, std::stoull(args[1]));
  if (!filled.ok() || !(*log)->save_vote(vote{1, 1, true}).ok()) return 5;
  ::kill(::getpid(), SIGKILL);
  return 6;
}

template <class Backend>
void recover_after_crash(benchmark::State& state) {
  const std::uint64_t count = scaled(1'000'000);
  for (auto _ : state) {
    state.PauseTiming();
    fresh_dir dir;
    const auto path = dir.path() / "store";
    const int w = run_child("w6-crash-fill-" + std::string(Backend::k_name),
                            {path.string(), std::to_string(count)});
    if (w == -1 || !WIFSIGNALED(w) || WTERMSIG(w) != SIGKILL) {
      state.SkipWithError(("the filling child did not end killed (wait status " +
                           std::to_string(w) + ")").c_str());
      break;
    }
    state.ResumeTiming();
    auto s = storage<Backend>::open(path);
    if (!s.ok()) {
      state.SkipWithError(s.status().to_string().c_str());
      break;
    }
    auto log = bench_log<Backend>::open(**s, system_shard{}, log_store_options{sync_policy::buffered});
    if (!log.ok()) {
      state.SkipWithError(log.status().to_string().c_str());
      break;
    }
    const auto last = (*log)->get_log_state().last;
    auto v = (*log)->read_vote();
    state.PauseTiming();
    if (!last || last->index != count || !v.ok() || !*v) {
      state.SkipWithError("the recovered log state is wrong");
      break;
    }
    log->reset();
    (*s)->close().ignore();
    s->reset();
    state.ResumeTiming();
  }
  state.counters["peak_rss_mb"] = peak_rss_mb();
}

// Device bytes written per byte of `payload_bytes` when a raw file takes
// `total_bytes` in appends of `bytes_per_sync`, each followed by fdatasync;
// or an error message.
result<double> raw_file_write_amp(std::uint64_t bytes_per_sync, std::uint64_t total_bytes,
                                  std::uint64_t payload_bytes) {
  const std::string chunk = random_entries(1, bytes_per_sync)[0];
  fresh_dir dir;
  std::filesystem::create_directories(dir.path());
  const auto file = dir.path() / "raw.log";
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return status::io_error("cannot create the W8 floor file");
  const std::int64_t before = device_write_bytes();
  for (std::uint64_t done = 0; done < total_bytes; done += bytes_per_sync)
    if (::write(fd, chunk.data(), chunk.size()) != static_cast<ssize_t>(chunk.size()) ||
        ::fdatasync(fd) != 0) {
      ::close(fd);
      return status::io_error("write or fdatasync of the W8 floor file failed");
    }
  ::close(fd);
  if (before < 0) return -1.0;
  return static_cast<double>(device_write_bytes() - before) / static_cast<double>(payload_bytes);
}

// W8: durable batches of 16 entries, 500,000 entries in all, purging to keep
// the last 10,000; bytes written to the device per payload byte. Besides W0's
// floor (a row of its own), each row measures a second floor: a raw file
// synced after every `same_bytes_per_sync` bytes, the key and value bytes
// seshat handed its backend per batch. A synced append dirties whole 4 KiB
// pages, so the part of the amplification that comes from a batch not being
// a whole number of pages shows in that floor, and what the backend adds on
// top (flush, compaction, its own framing) in `x_same_bytes_floor`.
template <class Backend>
void write_amp(benchmark::State& state) {
  constexpr std::uint64_t k_batch = 16;
  const std::uint64_t total = scaled(500'000);
  const std::uint64_t keep = std::max<std::uint64_t>(k_batch, scaled(10'000));
  const auto payloads = random_entries(4096, k_entry_bytes);
  for (auto _ : state) {
    fresh_log<Backend> f;
    if (auto s = f.open(sync_policy::durable); !s.ok()) {
      state.SkipWithError(s.to_string().c_str());
      break;
    }
    const std::int64_t before = device_write_bytes();
    auto metrics_before = f.store->metrics();  // reads only
    if (!metrics_before.ok()) return state.SkipWithError(metrics_before.status().to_string().c_str());
    std::vector<boost_entry> batch(k_batch);
    for (std::uint64_t next = 1; next <= total;) {
      for (auto& e : batch) {
        e = {1, next, payloads[next % payloads.size()]};
        ++next;
      }
      status s = f.log->append(batch);
      if (s.ok() && next > keep + 1 && (next - 1) % keep == 0) s = f.log->purge(next - 1 - keep);
      if (!s.ok()) {
        state.SkipWithError(s.to_string().c_str());
        return;
      }
    }
    auto metrics_after = f.store->metrics();
    if (!metrics_after.ok()) return state.SkipWithError(metrics_after.status().to_string().c_str());
    // Key and value bytes handed to the backend: the appends and the purges.
    const std::uint64_t log_bytes = metrics_after->bytes_written - metrics_before->bytes_written;
    // Space amplification after the last purge: bytes on disk (once the
    // purged ranges' background compaction is done) over the key and value
    // bytes of the live log (the entries past the last purge).
    if (auto s = f.store->wait_for_compaction(); !s.ok())
      return state.SkipWithError(s.to_string().c_str());
    auto disk = f.store->backend().disk_usage();
    if (!disk.ok()) return state.SkipWithError(disk.status().to_string().c_str());
    const auto extent = f.log->get_log_state();
    const std::uint64_t live = extent.last && extent.last_purged
                                   ? extent.last->index - extent.last_purged->index
                                   : total;
    const double live_bytes =
        static_cast<double>(log_bytes) / static_cast<double>(total) * static_cast<double>(live);
    state.counters["disk_mb_after"] = static_cast<double>(*disk) / 1e6;
    state.counters["disk_over_live"] = static_cast<double>(*disk) / live_bytes;
    f.close();
    const std::int64_t written = device_write_bytes() - before;
    const std::uint64_t payload = total * k_entry_bytes;
    const double amp =
        before < 0 ? -1.0 : static_cast<double>(written) / static_cast<double>(payload);
    state.counters["device_bytes_per_payload_byte"] = amp;
    const std::uint64_t batches = (total + k_batch - 1) / k_batch;
    const std::uint64_t same_bytes = std::max<std::uint64_t>(1, log_bytes / batches);
    auto floor = raw_file_write_amp(same_bytes, same_bytes * batches, payload);
    if (!floor.ok()) {
      state.SkipWithError(floor.status().to_string().c_str());
      return;
    }
    state.counters["same_bytes_per_sync"] = static_cast<double>(same_bytes);
    state.counters["same_bytes_floor"] = *floor;
    state.counters["x_same_bytes_floor"] = *floor > 0 ? amp / *floor : -1.0;
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(total));
  state.counters["peak_rss_mb"] = peak_rss_mb();
}

// W8's floor: W0 with the same batches (16 entries of 256 bytes, fdatasync
// each).
void write_amp_raw(benchmark::State& state) {
  constexpr std::uint64_t k_batch = 16;
  const std::uint64_t total = scaled(500'000);
  for (auto _ : state) {
    auto amp = raw_file_write_amp(k_batch * k_entry_bytes, total * k_entry_bytes,
                                  total * k_entry_bytes);
    if (!amp.ok()) return state.SkipWithError(amp.status().to_string().c_str());
    state.counters["device_bytes_per_payload_byte"] = *amp;
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(total));
}

const bool registered = [] {
  for_each_backend([]<class B>() {
    const std::string name(B::k_name);
    benchmark::RegisterBenchmark(("W4/" + name + "/boost/binary").c_str(), read_range<B>)->UseRealTime();
    if constexpr (!std::is_same_v<B, memory_backend>)
      benchmark::RegisterBenchmark(("W4/" + name + "/boost/decimal").c_str(),
                                   read_range<B, decimal_key_format>)
          ->UseRealTime();
    benchmark::RegisterBenchmark(("W5/" + name + "/boost/binary").c_str(), purge<B>)
        ->Iterations(20)->UseRealTime();
    benchmark::RegisterBenchmark(("W6/" + name + "/boost/binary").c_str(), recover<B>)
        ->Unit(benchmark::kMillisecond)->Iterations(3)->UseManualTime();
    if constexpr (!std::is_same_v<B, memory_backend>) {  // a memory store dies with its process
      register_child_mode("w6-crash-fill-" + name, crash_fill_child<B>);
      benchmark::RegisterBenchmark(("W6/" + name + "/boost/binary/after-crash").c_str(),
                                   recover_after_crash<B>)
          ->Unit(benchmark::kMillisecond)->Iterations(1)->UseRealTime();
    }
  });
  benchmark::RegisterBenchmark("W8/raw-fsync/B:16", write_amp_raw)->Iterations(1)->UseRealTime();
  for_each_backend([]<class B>() {
    benchmark::RegisterBenchmark(("W8/" + std::string(B::k_name) + "/boost/binary/B:16").c_str(),
                                 write_amp<B>)
        ->Iterations(1)->UseRealTime();
  });
  return true;
}();

}  // namespace
}  // namespace seshat::bench
