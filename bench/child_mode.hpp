// Work the benchmark suite runs in a child process of its own: a workload
// that needs a process killed mid-way (W6 after a crash) starts
// `seshat_bench --child <mode> <args...>` and waits for it. bench_main runs
// the mode instead of the benchmarks when argv[1] is "--child".
#pragma once

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

extern char** environ;

namespace seshat::bench {

using child_main = std::function<int(const std::vector<std::string>& args)>;

inline std::map<std::string, child_main>& child_modes() {
  static std::map<std::string, child_main> modes;
  return modes;
}

// Registers `mode`; call it from a namespace-scope initializer.
inline bool register_child_mode(const std::string& mode, child_main run) {
  child_modes()[mode] = std::move(run);
  return true;
}

// Runs `seshat_bench --child mode args...` and waits for it. Returns the
// wait status (see waitpid), or -1 when the child could not be started.
inline int run_child(const std::string& mode, const std::vector<std::string>& args) {
  std::vector<std::string> words{"/proc/self/exe", "--child", mode};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), environ) != 0) return -1;
  int wstatus = 0;
  if (::waitpid(pid, &wstatus, 0) != pid) return -1;
  return wstatus;
}

}  // namespace seshat::bench
