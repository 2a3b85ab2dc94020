// Shared pieces of the benchmark suite: fresh store directories on the
// project's disk, incompressible payloads, latency percentiles.
#pragma once

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "peak_rss.hpp"
#include "seshat/backends/memory_backend.hpp"

namespace seshat::bench {

// A fresh directory under $SESHAT_BENCH_DIR (default: ./bench-data, which the
// README's command puts in the build folder), removed afterwards.
class fresh_dir {
 public:
  fresh_dir() {
    static std::atomic<int> counter{0};
    const char* base = std::getenv("SESHAT_BENCH_DIR");
    std::filesystem::path root = base ? base : std::filesystem::current_path() / "bench-data";
    std::filesystem::create_directories(root);
    path_ = root / ("run" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
  }
  ~fresh_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    memory_backend::destroy(path_ / "store").ignore();  // a memory store's "disk"
  }
  fresh_dir(const fresh_dir&) = delete;
  fresh_dir& operator=(const fresh_dir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// `count` distinct entries of `size` random (incompressible) bytes.
inline std::vector<std::string> random_entries(std::size_t count, std::size_t size,
                                               std::uint64_t seed = 42) {
  std::mt19937_64 rng(seed);
  std::vector<std::string> out(count, std::string(size, '\0'));
  for (auto& e : out)
    for (std::size_t i = 0; i < size; i += 8) {
      std::uint64_t r = rng();
      for (std::size_t j = 0; j < 8 && i + j < size; ++j) e[i + j] = static_cast<char>(r >> (8 * j));
    }
  return out;
}

// Records the latency of each batch and reports p50/p99 in microseconds.
class latency_recorder {
 public:
  void start() { t0_ = std::chrono::steady_clock::now(); }
  void stop() {
    samples_.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0_).count());
  }
  void report(benchmark::State& state) {
    if (samples_.empty()) return;
    std::sort(samples_.begin(), samples_.end());
    auto at = [&](double q) { return samples_[std::min(samples_.size() - 1, static_cast<std::size_t>(q * samples_.size()))]; };
    state.counters["p50_us"] = at(0.50);
    state.counters["p99_us"] = at(0.99);
  }

 private:
  std::chrono::steady_clock::time_point t0_;
  std::vector<double> samples_;
};

inline constexpr std::size_t k_entry_bytes = 256;  // E of WORKLOADS.md

// `full` scaled by $SESHAT_BENCH_SCALE (default 1: the sizes of
// WORKLOADS.md; the test suite's smoke run uses a tiny scale), at least 1.
inline std::uint64_t scaled(std::uint64_t full) {
  static const double scale = [] {
    const char* s = std::getenv("SESHAT_BENCH_SCALE");
    return s ? std::atof(s) : 1.0;
  }();
  const auto n = static_cast<std::uint64_t>(static_cast<double>(full) * scale);
  return n == 0 ? 1 : n;
}

// Bytes this process has caused to be written to the storage device so far
// (write_bytes of /proc/self/io), or -1 when the kernel does not say.
inline std::int64_t device_write_bytes() {
  std::FILE* f = std::fopen("/proc/self/io", "r");
  if (!f) return -1;
  char line[128];
  std::int64_t value = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "write_bytes: %ld", &value) == 1) break;
  std::fclose(f);
  return value;
}

// Counts down the callbacks of one round (W3: one per group).
class round_latch {
 public:
  void reset(int n) {
    std::lock_guard lock(m_);
    left_ = n;
    failed_ = false;
  }
  void done(const status& s) {
    std::lock_guard lock(m_);
    failed_ = failed_ || !s.ok();
    if (--left_ == 0) cv_.notify_all();
  }
  bool wait() {
    std::unique_lock lock(m_);
    cv_.wait(lock, [&] { return left_ == 0; });
    return !failed_;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int left_ = 0;
  bool failed_ = false;
};

}  // namespace seshat::bench
