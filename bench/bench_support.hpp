// Shared pieces of the benchmark suite: fresh store directories on the
// project's disk, incompressible payloads, latency percentiles.
#pragma once

#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

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

// Peak resident set size of the process so far, in MB.
inline double peak_rss_mb() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

inline constexpr std::size_t k_entry_bytes = 256;  // E of WORKLOADS.md

}  // namespace seshat::bench
