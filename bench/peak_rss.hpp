// Per-workload peak memory for the benchmark suite.
#pragma once

#include <sys/resource.h>

#include <cstdio>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace seshat::bench {

// Peak resident set size, in MB, since the last reset_peak_rss(): VmHWM of
// /proc/self/status, which writing "5" to /proc/self/clear_refs resets to the
// current RSS (Linux >= 4.0). bench_main resets it before every benchmark, so
// each workload reports its own peak (including the process's baseline and
// what earlier workloads left allocated: the reset first hands the heap's
// free memory back to the kernel with malloc_trim, so that little of it is
// left). Falls back to the process's peak
// (getrusage) where /proc/self/status is missing.
inline bool reset_peak_rss() {
#if defined(__GLIBC__)
  ::malloc_trim(0);
#endif
  std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (!f) return false;
  const bool ok = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && ok;
}

inline double peak_rss_mb() {
  if (std::FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[128];
    long kb = -1;
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "VmHWM: %ld kB", &kb) == 1) break;
    std::fclose(f);
    if (kb >= 0) return static_cast<double>(kb) / 1024.0;
  }
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

}  // namespace seshat::bench
