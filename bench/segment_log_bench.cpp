// W1, W2, W3, W4, W6 and W8 on seshat's own log engine (segment_log,
// docs/log-engine.md) through its own API: it is not yet a storage<B>
// backend (M4), so these rows stand beside the log_store rows of the other
// backends with the same entries (256 random payload bytes, term 1), the
// same batches and the same counters.
#include <signal.h>
#include <malloc.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "bench_support.hpp"
#include "child_mode.hpp"
#include "seshat/backends/segment/segment_log.hpp"

namespace seshat::bench {
namespace {

const log_group k_group{0, 0};
log_group data_group(std::uint64_t id) { return {3, id}; }

// The real file system, counting the syncs the engine asks for: fdatasync
// calls and RWF_DSYNC writes; and the bytes those writes put on the device
// at page granularity (`page_bytes`): every 4 KiB page a buffered pwrite
// dirtied, once per sync (or close) that writes it back, plus O_DIRECT bytes
// as written. Write-back writes whole pages, so this is the device's data
// traffic without journal or metadata. It is counted here because the
// kernel's own counter (write_bytes of /proc/self/io) charges each
// re-dirtied page cache folio at its whole size: a page in a 1 MiB folio
// (what a 1 MiB buffered write makes, as the buffered zero fill does)
// counts 1 MiB each time an append dirties it again.
class counting_fs final : public detail::log_fs {
 public:
  std::atomic<std::uint64_t> syncs{0};
  std::atomic<std::uint64_t> written{0};  // bytes handed to pwrite
  std::atomic<std::uint64_t> prepared{0};  // of which to prep- and free- files: zero fills, headers
  std::uint64_t page_bytes() {
    std::lock_guard l(mu_);
    return page_bytes_;
  }

  detail::fs_result<detail::log_file> open(const std::filesystem::path& p, detail::open_flags f) override {
    return inner_.open(p, f);
  }
  detail::fs_status pwrite(const detail::log_file& f, std::uint64_t off,
                           std::span<const std::string_view> pieces, detail::write_flags w) override {
    if (w.dsync) ++syncs;
    std::uint64_t total = 0;
    for (std::string_view p : pieces) total += p.size();
    written += total;
    const std::string name = f.path.filename().string();
    if (name.starts_with("prep-") || name.starts_with("free-")) prepared += total;
    detail::fs_status s = inner_.pwrite(f, off, pieces, w);
    if (s.ok() && total > 0) {
      std::lock_guard l(mu_);
      if (f.direct) {
        page_bytes_ += total;
      } else {
        std::set<std::uint64_t>& dirty = dirty_[f.fd];
        for (std::uint64_t p = off / k_page; p <= (off + total - 1) / k_page; ++p) dirty.insert(p);
        if (w.dsync) written_back(f.fd);
      }
    }
    return s;
  }
  detail::fs_result<std::size_t> pread(const detail::log_file& f, std::uint64_t off, std::span<char> b) override {
    return inner_.pread(f, off, b);
  }
  detail::fs_status datasync(const detail::log_file& f) override {
    ++syncs;
    detail::fs_status s = inner_.datasync(f);
    std::lock_guard l(mu_);
    written_back(f.fd);
    return s;
  }
  detail::fs_status allocate(const detail::log_file& f, std::uint64_t size) override {
    return inner_.allocate(f, size);
  }
  detail::fs_result<bool> write_zeroes(const detail::log_file& f, std::uint64_t o, std::uint64_t l) override {
    return inner_.write_zeroes(f, o, l);
  }
  detail::fs_result<std::uint64_t> size(const detail::log_file& f) override { return inner_.size(f); }
  detail::fs_result<std::uint64_t> link_count(const detail::log_file& f) override { return inner_.link_count(f); }
  detail::fs_status close(const detail::log_file& f) override {
    {
      std::lock_guard l(mu_);
      written_back(f.fd);  // write-back writes the pages later; counted now
      dirty_.erase(f.fd);
    }
    return inner_.close(f);
  }
  detail::fs_status create_directory(const std::filesystem::path& p) override { return inner_.create_directory(p); }
  detail::fs_status rename(const std::filesystem::path& a, const std::filesystem::path& b) override {
    return inner_.rename(a, b);
  }
  detail::fs_status replace(const std::filesystem::path& a, const std::filesystem::path& b) override {
    return inner_.replace(a, b);
  }
  detail::fs_status link(const std::filesystem::path& a, const std::filesystem::path& b) override {
    return inner_.link(a, b);
  }
  detail::fs_status unlink(const std::filesystem::path& p) override { return inner_.unlink(p); }
  detail::fs_status sync_directory(const std::filesystem::path& p) override { return inner_.sync_directory(p); }
  detail::fs_result<std::vector<std::string>> list(const std::filesystem::path& d) override {
    return inner_.list(d);
  }

 private:
  static constexpr std::uint64_t k_page = 4096;
  // REQUIRES: mu_ held.
  void written_back(int fd) {
    auto it = dirty_.find(fd);
    if (it == dirty_.end()) return;
    page_bytes_ += it->second.size() * k_page;
    it->second.clear();
  }
  detail::posix_log_fs inner_;
  std::mutex mu_;
  std::map<int, std::set<std::uint64_t>> dirty_;  // per descriptor: pages dirtied since its last sync
  std::uint64_t page_bytes_ = 0;
};

// `count` entries of term 1 over distinct random payloads of k_entry_bytes.
struct entry_pool {
  std::vector<std::string> payloads;
  std::vector<log_entry_input> inputs;
  explicit entry_pool(std::size_t count) : payloads(random_entries(count, k_entry_bytes)) {
    for (const std::string& p : payloads) inputs.push_back({1, p});
  }
};

// An engine in a fresh directory, over a counting_fs.
struct fresh_engine {
  fresh_dir dir;
  counting_fs fs;
  segment_log_options options;
  std::unique_ptr<segment_log> log;
  status open() {
    std::error_code ec;  // the engine creates `log`, not its parent
    std::filesystem::create_directories(dir.path(), ec);
    auto r = segment_log::open(fs, dir.path() / "log", options);
    if (!r.ok()) return r.status();
    log = std::move(*r);
    return {};
  }
  status close() {
    status s = log ? log->close() : status{};
    log.reset();
    return s;
  }
};

// Appends entries [1, count] to `g` in buffered batches of 256, then syncs.
status fill(segment_log& log, const log_group& g, std::uint64_t count) {
  entry_pool pool(256);
  for (std::uint64_t next = 1; next <= count;) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(pool.inputs.size(), count - next + 1));
    SESHAT_RETURN_IF_ERROR(log.append(g, next, std::span(pool.inputs.data(), n), false));
    next += n;
  }
  return log.sync();
}

// W1/W2: batches of B entries to one group, one engine append each;
// durable per batch when `sync`.
void append(benchmark::State& state, bool sync, segment_io io, bool prepare) {
  const auto batch_size = static_cast<std::size_t>(state.range(0));
  fresh_engine e;
  e.options.io = io;
  e.options.prepare_ahead = prepare;
  if (auto s = e.open(); !s.ok()) return state.SkipWithError(s.to_string().c_str());
  entry_pool batch(batch_size);
  std::uint64_t next = 1;
  latency_recorder latency;
  for (auto _ : state) {
    latency.start();
    status s = e.log->append(k_group, next, batch.inputs, sync);
    latency.stop();
    next += batch_size;
    if (!s.ok()) {
      state.SkipWithError(s.to_string().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch_size));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(batch_size * k_entry_bytes));
  latency.report(state);
  state.counters["peak_rss_mb"] = peak_rss_mb();
  if (auto s = e.close(); !s.ok()) state.SkipWithError(s.to_string().c_str());
}

// W3, T = 1: 64 data groups; a round appends one entry to every group with
// append_async and is acknowledged when all 64 callbacks have fired.
void multi_group_async(benchmark::State& state) {
  constexpr int k_groups = 64;
  fresh_engine e;
  if (auto s = e.open(); !s.ok()) return state.SkipWithError(s.to_string().c_str());
  entry_pool pool(k_groups);
  std::uint64_t next = 1;
  round_latch latch;
  latency_recorder latency;
  const std::uint64_t syncs_before = e.fs.syncs;
  for (auto _ : state) {
    latency.start();
    latch.reset(k_groups);
    bool failed = false;
    for (int g = 0; g < k_groups; ++g) {
      std::span<const log_entry_input> one(&pool.inputs[static_cast<std::size_t>(g)], 1);
      status s = e.log->append_async(data_group(static_cast<std::uint64_t>(g) + 1), next, one,
                                     [&](status st) { latch.done(st); });
      if (!s.ok()) {
        failed = true;
        latch.done(s);
      }
    }
    if (!latch.wait()) failed = true;
    latency.stop();
    ++next;
    if (failed) {
      state.SkipWithError("an append_async failed");
      break;
    }
  }
  const auto rounds = static_cast<double>(state.iterations());
  state.SetItemsProcessed(state.iterations() * k_groups);
  state.SetBytesProcessed(state.iterations() * k_groups * static_cast<std::int64_t>(k_entry_bytes));
  state.counters["fsyncs_per_round"] =
      static_cast<double>(e.fs.syncs - syncs_before) / std::max(rounds, 1.0);
  latency.report(state);
  state.counters["peak_rss_mb"] = peak_rss_mb();
  if (auto s = e.close(); !s.ok()) state.SkipWithError(s.to_string().c_str());
}

// W4: reads of 64 consecutive entries at uniformly random indices of a log
// holding 1,000,000.
void read_range(benchmark::State& state) {
  constexpr std::uint64_t k_span = 64;
  const std::uint64_t count = scaled(1'000'000) + k_span;
  fresh_engine e;
  if (auto s = e.open(); !s.ok()) return state.SkipWithError(s.to_string().c_str());
  if (auto s = fill(*e.log, k_group, count); !s.ok()) return state.SkipWithError(s.to_string().c_str());
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<std::uint64_t> start(1, count - k_span + 1);
  latency_recorder latency;
  for (auto _ : state) {
    const std::uint64_t lo = start(rng);
    latency.start();
    auto read = e.log->read(k_group, lo, lo + k_span);
    latency.stop();
    if (!read.ok() || read->size() != k_span) {
      state.SkipWithError(read.ok() ? "a read returned too few entries" : read.status().to_string().c_str());
      break;
    }
    benchmark::DoNotOptimize(read->data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(k_span));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(k_span * k_entry_bytes));
  latency.report(state);
  state.counters["peak_rss_mb"] = peak_rss_mb();
}

// W6: the first open after the clean close that followed filling 1,000,000
// entries and a vote, and the read of the group's state. One open per fill
// (Iterations(1)): a later open measures nothing a restart costs.
void recover(benchmark::State& state) {
  const std::uint64_t count = scaled(1'000'000);
  for (auto _ : state) {
    state.PauseTiming();
    fresh_engine e;
    status s = e.open();
    if (s.ok()) s = fill(*e.log, k_group, count);
    if (s.ok()) s = e.log->save_vote(k_group, vote{1, 1, true});
    if (s.ok()) s = e.close();
    if (!s.ok()) {
      state.SkipWithError(s.to_string().c_str());
      break;
    }
    state.ResumeTiming();
    const auto t0 = std::chrono::steady_clock::now();
    s = e.open();
    const auto st = s.ok() ? e.log->state(k_group) : segment_group_state{};
    const double open_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    state.PauseTiming();
    if (!s.ok()) {
      state.SkipWithError(s.to_string().c_str());
      break;
    }
    if (!st.last || st.last->index != count || !st.vote_value) {
      state.SkipWithError("the reopened log state is wrong");
      break;
    }
    state.counters["open_ms"] = open_ms;
    e.close().ignore();
    state.ResumeTiming();
  }
  state.counters["peak_rss_mb"] = peak_rss_mb();
}

// W6 after a crash: a child process fills an engine with 1,000,000 entries,
// syncs, saves a vote and is killed with SIGKILL (no close: the last segment
// is unsealed, and the ones the maintenance thread had not sealed yet); the
// benchmark times the open that recovers it and the read of the state.
int crash_fill_child(const std::vector<std::string>& args) {
  if (args.size() != 2) return 2;
  detail::posix_log_fs fs;
  auto log = segment_log::open(fs, args[0], {});
  if (!log.ok()) return 3;
  if (!fill(**log, k_group, std::stoull(args[1])).ok()) return 4;
  if (!(*log)->save_vote(k_group, vote{1, 1, true}).ok()) return 5;
  ::kill(::getpid(), SIGKILL);
  return 6;
}

void recover_after_crash(benchmark::State& state) {
  const std::uint64_t count = scaled(1'000'000);
  for (auto _ : state) {
    state.PauseTiming();
    fresh_dir dir;
    std::error_code ec;
    std::filesystem::create_directories(dir.path(), ec);
    const auto path = dir.path() / "log";
    const int w = run_child("w6-crash-fill-segment-log", {path.string(), std::to_string(count)});
    if (w == -1 || !WIFSIGNALED(w) || WTERMSIG(w) != SIGKILL) {
      state.SkipWithError(("the filling child did not end killed (wait status " + std::to_string(w) + ")").c_str());
      break;
    }
    detail::posix_log_fs fs;
    state.ResumeTiming();
    const auto t0 = std::chrono::steady_clock::now();
    auto log = segment_log::open(fs, path, {});
    const auto st = log.ok() ? (*log)->state(k_group) : segment_group_state{};
    const double open_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    state.PauseTiming();
    if (!log.ok()) {
      state.SkipWithError(log.status().to_string().c_str());
      break;
    }
    if (!st.last || st.last->index != count || !st.vote_value) {
      state.SkipWithError("the recovered log state is wrong");
      break;
    }
    state.counters["open_ms"] = open_ms;
    (*log)->close().ignore();
    state.ResumeTiming();
  }
  state.counters["peak_rss_mb"] = peak_rss_mb();
}

// Allocated bytes of the files in `dir` (st_blocks), or -1.
double allocated_bytes(const std::filesystem::path& dir) {
  std::error_code ec;
  double total = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    struct stat st {};
    if (::stat(e.path().c_str(), &st) != 0) return -1;
    total += static_cast<double>(st.st_blocks) * 512;
  }
  return ec ? -1 : total;
}

// The bytes write-back puts on the device when a file takes `appends`
// appends of `bytes` each, synced after each: every 4 KiB page an append
// touches, once per append.
std::uint64_t synced_append_page_bytes(std::uint64_t bytes, std::uint64_t appends) {
  constexpr std::uint64_t k_page = 4096;
  std::uint64_t out = 0;
  for (std::uint64_t at = 0, n = 0; n < appends && bytes > 0; ++n, at += bytes)
    out += ((at + bytes - 1) / k_page - at / k_page + 1) * k_page;
  return out;
}

// W8: durable appends of 16 entries, 500,000 entries in all, purging to keep
// the last 10,000 after every 10,000; bytes written to the device per
// payload byte (compare W8/raw-fsync/B:16, W0 with the same batches, in the
// same run), and the log directory's allocated bytes after the last purge
// (once freeing settled) over the live log's bytes (the engine's bytes per
// entry, pwrite bytes over entries, times the live entries). Device bytes
// twice: the kernel's write_bytes (wrong when appends re-dirty large page
// cache folios: see counting_fs) and counting_fs's page bytes, the latter
// also over the same-bytes floor in the same arithmetic.
void write_amp(benchmark::State& state) {
  constexpr std::uint64_t k_batch = 16;
  const std::uint64_t total = scaled(500'000);
  const std::uint64_t keep = std::max<std::uint64_t>(k_batch, scaled(10'000));
  entry_pool pool(4096);
  for (auto _ : state) {
    fresh_engine e;
    if (auto s = e.open(); !s.ok()) return state.SkipWithError(s.to_string().c_str());
    const std::int64_t before = device_write_bytes();
    const std::uint64_t written_before = e.fs.written;
    const std::uint64_t pages_before = e.fs.page_bytes();
    const std::uint64_t prepared_before = e.fs.prepared;
    for (std::uint64_t next = 1; next <= total; next += k_batch) {
      const std::size_t at = static_cast<std::size_t>(next % (pool.inputs.size() - k_batch));
      status s = e.log->append(k_group, next, std::span(pool.inputs.data() + at, k_batch), true);
      const std::uint64_t last = next + k_batch - 1;
      if (s.ok() && last > keep && last % keep == 0) s = e.log->purge_to(k_group, log_id{1, last - keep});
      if (!s.ok()) return state.SkipWithError(s.to_string().c_str());
    }
    if (auto s = e.log->settle(); !s.ok()) return state.SkipWithError(s.to_string().c_str());
    const double disk = allocated_bytes(e.dir.path() / "log");
    const auto st = e.log->state(k_group);
    const std::uint64_t live = st.last && st.last_purged ? st.last->index - st.last_purged->index : total;
    const double per_entry = static_cast<double>(e.fs.written - written_before) / static_cast<double>(total);
    state.counters["disk_mb_after"] = disk / 1e6;
    state.counters["disk_over_live"] = disk / (per_entry * static_cast<double>(live));
    state.counters["segments_after"] = static_cast<double>(e.log->segment_count());
    state.counters["free_segments_after"] = static_cast<double>(e.log->free_segment_count());
    state.counters["recycled_segments"] = static_cast<double>(e.log->recycled_segments());
    state.counters["engine_bytes_per_entry"] = per_entry;
    if (auto s = e.close(); !s.ok()) return state.SkipWithError(s.to_string().c_str());
    const std::int64_t device = device_write_bytes() - before;
    const auto payload = static_cast<double>(total * k_entry_bytes);
    state.counters["device_bytes_per_payload_byte"] = before < 0 ? -1.0 : static_cast<double>(device) / payload;
    const double pages = static_cast<double>(e.fs.page_bytes() - pages_before);
    state.counters["page_bytes_per_payload_byte"] = pages / payload;
    // The same-bytes floor in the same page arithmetic: a raw file taking the
    // engine's bytes but the preparations' (its frames and seals), in as
    // many appends as batches, each synced.
    const std::uint64_t batches = (total + k_batch - 1) / k_batch;
    const std::uint64_t own = e.fs.written - written_before - (e.fs.prepared - prepared_before);
    const double floor = static_cast<double>(synced_append_page_bytes(own / batches, batches));
    state.counters["page_bytes_over_same_bytes_floor"] = pages / floor;
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(total));
  state.counters["peak_rss_mb"] = peak_rss_mb();
}

// W3 at scale (issue 14, M8): `groups` data groups in one store; a round
// appends one entry to each of 64 of them with append_async and is
// acknowledged when the 64 callbacks fired; rounds take the groups in turn,
// so every group is written once in groups / 64 rounds and each segment
// holds records (and its footer summaries) of many groups. Rounds of 64
// keep the round's size (and its sync) that of W3's 64-group row, so the
// ratio of the groups:10000 row over the groups:64 row measured in the
// same run is what the number of groups costs the engine: its index, its
// per-group state and its footers. Before timing, every group gets one
// entry (untimed).
void scale_rounds(benchmark::State& state) {
  constexpr std::uint64_t k_round = 64;
  // The smoke run's scale makes the 10,000 fewer (never below one round's 64).
  const auto groups = std::max(k_round, scaled(static_cast<std::uint64_t>(state.range(0))));
  fresh_engine e;
  if (auto s = e.open(); !s.ok()) return state.SkipWithError(s.to_string().c_str());
  entry_pool pool(k_round);
  std::vector<std::uint64_t> next(groups, 1);
  round_latch latch;
  latency_recorder latency;
  std::uint64_t cursor = 0;
  auto round = [&]() -> bool {
    latch.reset(static_cast<int>(k_round));
    bool ok = true;
    for (std::uint64_t k = 0; k < k_round; ++k) {
      const std::uint64_t g = cursor;
      cursor = (cursor + 1) % groups;
      std::span<const log_entry_input> one(&pool.inputs[k], 1);
      status s = e.log->append_async(data_group(g + 1), next[g]++, one, [&](status st) { latch.done(st); });
      if (!s.ok()) {
        ok = false;
        latch.done(s);
      }
    }
    return latch.wait() && ok;
  };
  for (std::uint64_t r = 0; r < (groups + k_round - 1) / k_round; ++r)
    if (!round()) return state.SkipWithError("an untimed append_async failed");
  const std::uint64_t syncs_before = e.fs.syncs;
  for (auto _ : state) {
    latency.start();
    const bool ok = round();
    latency.stop();
    if (!ok) {
      state.SkipWithError("an append_async failed");
      break;
    }
  }
  const auto rounds = static_cast<double>(state.iterations());
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(k_round));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(k_round * k_entry_bytes));
  state.counters["fsyncs_per_round"] = static_cast<double>(e.fs.syncs - syncs_before) / std::max(rounds, 1.0);
  latency.report(state);
  state.counters["peak_rss_mb"] = peak_rss_mb();
  if (auto s = e.close(); !s.ok()) state.SkipWithError(s.to_string().c_str());
}

// Heap bytes malloc holds now (glibc's mallinfo2: in-use bytes of the main
// arena and the mmapped chunks; the engine's threads allocate in the
// calling thread's arena or theirs, all of which it sums).
double heap_in_use() {
  const struct mallinfo2 m = mallinfo2();
  return static_cast<double>(m.uordblks + m.hblkhd);
}

// The open of a 10,000-group store (issue 14, M8), once per fill: every group
// holds 16 entries in 4 appends, a vote and a committed id, and is idle;
// the fill closes (every segment sealed) and the first open after it is
// timed. Also the heap that open leaves held (mallinfo2, after the open over
// before it) per group: the memory of an idle group in a reopened store.
void scale_open(benchmark::State& state) {
  const auto groups = scaled(static_cast<std::uint64_t>(state.range(0)));
  entry_pool pool(16);
  for (auto _ : state) {
    state.PauseTiming();
    fresh_engine e;
    status s = e.open();
    for (std::uint64_t g = 1; s.ok() && g <= groups; ++g) {
      for (std::uint64_t i = 1; s.ok() && i <= 16; i += 4)
        s = e.log->append(data_group(g), i, std::span(pool.inputs.data() + (i - 1), 4), false);
      if (s.ok()) s = e.log->save_vote(data_group(g), vote{1, 1, true});
      if (s.ok()) s = e.log->save_committed(data_group(g), log_id{1, 16});
    }
    if (s.ok()) s = e.close();
    if (!s.ok()) {
      state.SkipWithError(s.to_string().c_str());
      break;
    }
    const double heap_before = heap_in_use();
    state.ResumeTiming();
    const auto t0 = std::chrono::steady_clock::now();
    s = e.open();
    const auto st = s.ok() ? e.log->state(data_group(groups)) : segment_group_state{};
    const double open_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    state.PauseTiming();
    if (!s.ok()) {
      state.SkipWithError(s.to_string().c_str());
      break;
    }
    if (!st.last || st.last->index != 16 || !st.vote_value) {
      state.SkipWithError("the reopened log state is wrong");
      break;
    }
    if (auto settled = e.log->settle(); !settled.ok()) {
      state.SkipWithError(settled.to_string().c_str());
      break;
    }
    state.counters["open_ms"] = open_ms;
    state.counters["heap_bytes_per_group"] = (heap_in_use() - heap_before) / static_cast<double>(groups);
    state.counters["segments"] = static_cast<double>(e.log->segment_count());
    e.close().ignore();
    state.ResumeTiming();
  }
  state.counters["peak_rss_mb"] = peak_rss_mb();
}

const bool registered = [] {
  benchmark::RegisterBenchmark("W1/segment-log", append, true, segment_io::write_fdatasync, true)
      ->ArgName("B")->Arg(1)->Arg(16)->Arg(256)->UseRealTime();
  benchmark::RegisterBenchmark("W1/segment-log/dsync", append, true, segment_io::dsync, true)
      ->ArgName("B")->Arg(1)->Arg(16)->Arg(256)->UseRealTime();
  // O_DIRECT rounds (RWF_DSYNC), from the block holding each round's start;
  // dsync where the bench directory's file system refuses O_DIRECT.
  benchmark::RegisterBenchmark("W1/segment-log/direct", append, true, segment_io::direct, true)
      ->ArgName("B")->Arg(1)->Arg(16)->Arg(256)->UseRealTime();
  // Segments created by the round that first writes them, fallocate only
  // (the engine before M7): beside the rows above, what preparing ahead
  // with zeros gains.
  benchmark::RegisterBenchmark("W1/segment-log/unprepared", append, true, segment_io::write_fdatasync, false)
      ->ArgName("B")->Arg(1)->Arg(16)->Arg(256)->UseRealTime();
  benchmark::RegisterBenchmark("W2/segment-log", append, false, segment_io::write_fdatasync, true)
      ->ArgName("B")->Arg(256)->UseRealTime();
  benchmark::RegisterBenchmark("W3/segment-log/async", multi_group_async)
      ->ArgName("T")->Arg(1)->UseRealTime();
  benchmark::RegisterBenchmark("W4/segment-log", read_range)->UseRealTime();
  benchmark::RegisterBenchmark("W6/segment-log/after-close", recover)
      ->Unit(benchmark::kMillisecond)->Iterations(1)->UseRealTime();
  register_child_mode("w6-crash-fill-segment-log", crash_fill_child);
  benchmark::RegisterBenchmark("W6/segment-log/after-crash", recover_after_crash)
      ->Unit(benchmark::kMillisecond)->Iterations(1)->UseRealTime();
  benchmark::RegisterBenchmark("W8/segment-log/B:16", write_amp)->Iterations(1)->UseRealTime();
  benchmark::RegisterBenchmark("W3/segment-log/scale", scale_rounds)
      ->ArgName("groups")->Arg(64)->Arg(10'000)->UseRealTime();
  benchmark::RegisterBenchmark("W3/segment-log/scale/open", scale_open)
      ->ArgName("groups")->Arg(10'000)->Unit(benchmark::kMillisecond)->Iterations(1)->UseRealTime();
  return true;
}();

}  // namespace
}  // namespace seshat::bench
