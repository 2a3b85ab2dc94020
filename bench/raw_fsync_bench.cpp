// W0 and W0p: the disk's own limit, the reference every durable workload is
// stated against. No seshat code runs here.
#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "bench_support.hpp"

namespace seshat::bench {
namespace {

bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

// W0: append B*E bytes to a growing file, fdatasync per batch.
// W0p (prealloc): the same over a zero-filled, synced file.
void raw_fsync(benchmark::State& state, bool prealloc) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  const std::string payload = random_entries(1, batch * k_entry_bytes)[0];
  fresh_dir dir;
  std::filesystem::create_directories(dir.path());
  const auto file = dir.path() / "raw.log";
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return state.SkipWithError("cannot create the W0 file");
  const std::size_t prealloc_bytes = std::size_t{64} << 20;
  if (prealloc) {
    const std::string zeros(1 << 20, '\0');
    for (std::size_t done = 0; done < prealloc_bytes; done += zeros.size())
      if (!write_all(fd, zeros.data(), zeros.size())) return state.SkipWithError("prealloc failed");
    if (::fsync(fd) != 0) return state.SkipWithError("fsync failed");
    ::lseek(fd, 0, SEEK_SET);
  }
  latency_recorder latency;
  std::size_t offset = 0;
  for (auto _ : state) {
    if (prealloc && offset + payload.size() > prealloc_bytes) {
      ::lseek(fd, 0, SEEK_SET);
      offset = 0;
    }
    latency.start();
    if (!write_all(fd, payload.data(), payload.size()) || ::fdatasync(fd) != 0) {
      state.SkipWithError("write or fdatasync failed");
      break;
    }
    latency.stop();
    offset += payload.size();
  }
  ::close(fd);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(payload.size()));
  latency.report(state);
  state.counters["batches_per_s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["peak_rss_mb"] = peak_rss_mb();
}

BENCHMARK_CAPTURE(raw_fsync, W0/raw-fsync, false)->Name("W0/raw-fsync")->ArgName("B")->Arg(1)->Arg(16)->Arg(256)->UseRealTime();
BENCHMARK_CAPTURE(raw_fsync, W0p/raw-fsync-prealloc, true)->Name("W0p/raw-fsync-prealloc")->ArgName("B")->Arg(1)->Arg(16)->Arg(256)->UseRealTime();

}  // namespace
}  // namespace seshat::bench
