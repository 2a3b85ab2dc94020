// W0 and W0p: the disk's own limit, the reference every durable workload is
// stated against. No seshat code runs here.
#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "bench_support.hpp"
#include "seshat/detail/log_fs.hpp"

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
// B=64 is W3's reference (64 groups, one entry each, one write and one sync a round).
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

BENCHMARK_CAPTURE(raw_fsync, W0/raw-fsync, false)->Name("W0/raw-fsync")->ArgName("B")->Arg(1)->Arg(16)->Arg(64)->Arg(256)->UseRealTime();
BENCHMARK_CAPTURE(raw_fsync, W0p/raw-fsync-prealloc, true)->Name("W0p/raw-fsync-prealloc")->ArgName("B")->Arg(1)->Arg(16)->Arg(64)->Arg(256)->UseRealTime();

// W0io: the ways the log engine can make a batch durable (docs/log-engine.md
// section 5, milestone M2), each over the three kinds of space a segment
// can have. No seshat code runs in the timed loop.
//   mode   fdatasync     pwrite, then fdatasync (W0p's way)
//          dsync         one pwritev2 with RWF_DSYNC, page cache
//          direct-dsync  the same on an O_DIRECT descriptor, from the block
//                        holding the batch's start: the last partial block is
//                        kept in memory and written again with the next batch,
//                        as canonical raft and the engine do (block: the
//                        smallest the probe found; where O_DIRECT is refused
//                        the row runs as dsync and says so in its label)
//   space  unwritten     fallocate'd and synced: blocks allocated, unwritten
//                        (each write into them converts an extent)
//          zeroed        zeros written and synced
//          recycled      a previous life's bytes written and synced, the file
//                        closed and renamed (a freed segment reused)
// The file is scaled(64 MiB) (at least 4 batches); when the batches reach
// its end, a new one is prepared with the timer paused.
enum class io_mode { fdatasync, dsync, direct_dsync };
enum class io_space { unwritten, zeroed, recycled };

struct aligned_buffer {
  explicit aligned_buffer(std::size_t n) {
    void* p = nullptr;
    if (::posix_memalign(&p, 4096, n) == 0) data.reset(static_cast<char*>(p));
    if (data) std::memset(data.get(), 0, n);
  }
  struct freer {
    void operator()(char* p) const { std::free(p); }
  };
  std::unique_ptr<char, freer> data;
};

// Makes `file` a `size`-byte file of `space`; false on a failure.
bool prepare_space(const std::filesystem::path& file, std::size_t size, io_space space) {
  const std::filesystem::path tmp = file.string() + ".tmp";
  std::filesystem::remove(file);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = true;
  if (space == io_space::unwritten) {
    ok = ::fallocate(fd, 0, 0, static_cast<off_t>(size)) == 0;
  } else {
    const std::string chunk = space == io_space::zeroed ? std::string(1 << 20, '\0')
                                                        : random_entries(1, 1 << 20, 7)[0];
    for (std::size_t done = 0; ok && done < size; done += chunk.size())
      ok = write_all(fd, chunk.data(), std::min(chunk.size(), size - done));
  }
  ok = ok && ::fsync(fd) == 0;
  ::close(fd);
  ok = ok && ::rename(tmp.c_str(), file.c_str()) == 0;
  if (ok) {
    int dir = ::open(file.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ok = dir >= 0 && ::fsync(dir) == 0;
    if (dir >= 0) ::close(dir);
  }
  return ok;
}

void raw_io(benchmark::State& state, io_mode mode, io_space space) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  const std::string payload = random_entries(1, batch * k_entry_bytes)[0];
  fresh_dir dir;
  std::filesystem::create_directories(dir.path());
  const auto file = dir.path() / "seg.log";
  std::size_t block = 0;
  if (mode == io_mode::direct_dsync) {
    detail::posix_log_fs fs;
    auto probe = fs.probe(dir.path());
    if (!probe.ok()) return state.SkipWithError(probe.status().message().c_str());
    block = probe->direct_block;
    if (block == 0) state.SetLabel("O_DIRECT refused: ran as dsync");
  }
  const std::size_t size = std::max<std::size_t>(scaled(std::size_t{64} << 20), 4 * payload.size() + 8192);
  aligned_buffer staging(payload.size() + 2 * 4096);
  if (!staging.data) return state.SkipWithError("cannot allocate the staging buffer");
  int fd = -1;
  std::size_t offset = 0;
  std::size_t tail = 0;  // bytes of the partial block before `offset`, in staging
  auto open_fresh = [&] {
    if (fd >= 0) ::close(fd);
    fd = -1;
    if (!prepare_space(file, size, space)) return false;
    fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC | (block ? O_DIRECT : 0));
    offset = 4096;  // after the header a segment would have
    tail = 0;
    return fd >= 0;
  };
  if (!open_fresh()) return state.SkipWithError("cannot prepare the W0io file");
  latency_recorder latency;
  for (auto _ : state) {
    if (offset + payload.size() + 4096 > size) {
      state.PauseTiming();
      const bool ok = open_fresh();
      state.ResumeTiming();
      if (!ok) {
        state.SkipWithError("cannot prepare the W0io file");
        break;
      }
    }
    latency.start();
    bool ok = false;
    if (mode == io_mode::fdatasync) {
      ok = ::pwrite(fd, payload.data(), payload.size(), static_cast<off_t>(offset)) ==
               static_cast<ssize_t>(payload.size()) &&
           ::fdatasync(fd) == 0;
    } else if (block == 0) {
      iovec iov{const_cast<char*>(payload.data()), payload.size()};
      ok = ::pwritev2(fd, &iov, 1, static_cast<off_t>(offset), RWF_DSYNC) ==
           static_cast<ssize_t>(payload.size());
    } else {
      // staging holds [offset - tail, offset) already; add the batch, pad to the block.
      char* buf = staging.data.get();
      std::memcpy(buf + tail, payload.data(), payload.size());
      const std::size_t used = tail + payload.size();
      const std::size_t length = (used + block - 1) / block * block;
      std::memset(buf + used, 0, length - used);
      iovec iov{buf, length};
      ok = ::pwritev2(fd, &iov, 1, static_cast<off_t>(offset - tail), RWF_DSYNC) ==
           static_cast<ssize_t>(length);
      const std::size_t keep = used % block;  // the new partial block moves to the front
      std::memmove(buf, buf + used - keep, keep);
      tail = keep;
    }
    if (!ok) {
      state.SkipWithError("write or sync failed");
      break;
    }
    latency.stop();
    offset += payload.size();
  }
  if (fd >= 0) ::close(fd);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(payload.size()));
  latency.report(state);
  state.counters["batches_per_s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["peak_rss_mb"] = peak_rss_mb();
}

const int k_raw_io_rows = [] {
  const std::pair<io_mode, const char*> modes[] = {
      {io_mode::fdatasync, "fdatasync"}, {io_mode::dsync, "dsync"}, {io_mode::direct_dsync, "direct-dsync"}};
  const std::pair<io_space, const char*> spaces[] = {
      {io_space::unwritten, "unwritten"}, {io_space::zeroed, "zeroed"}, {io_space::recycled, "recycled"}};
  for (const auto& [mode, mode_name] : modes)
    for (const auto& [space, space_name] : spaces) {
      const std::string name = std::string("W0io/") + mode_name + "-" + space_name;
      benchmark::RegisterBenchmark(name.c_str(), raw_io, mode, space)
          ->ArgName("B")->Arg(1)->Arg(16)->Arg(256)->UseRealTime();
    }
  return 0;
}();

}  // namespace
}  // namespace seshat::bench
