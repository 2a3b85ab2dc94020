// The benchmark suite's main: Google Benchmark's, except that the process
// exits non-zero when any benchmark reported an error, so that the smoke run
// in the test suite fails when a workload does, and that every benchmark's
// peak RSS counter covers that benchmark alone (see peak_rss.hpp).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "child_mode.hpp"
#include "peak_rss.hpp"

namespace {

class error_counting_reporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const auto& run : runs)
      if (run.error_occurred) {
        ++errors_;
        std::fprintf(stderr, "benchmark %s failed: %s\n", run.benchmark_name().c_str(),
                     run.error_message.c_str());
      }
    ConsoleReporter::ReportRuns(runs);
    seshat::bench::reset_peak_rss();  // the next benchmark starts its own peak
  }
  bool ReportContext(const Context& context) override {
    seshat::bench::reset_peak_rss();
    return ConsoleReporter::ReportContext(context);
  }
  int errors() const { return errors_; }

 private:
  int errors_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 3 && std::string_view(argv[1]) == "--child") {
    auto mode = seshat::bench::child_modes().find(argv[2]);
    if (mode == seshat::bench::child_modes().end()) {
      std::fprintf(stderr, "seshat_bench: no child mode %s\n", argv[2]);
      return 2;
    }
    return mode->second(std::vector<std::string>(argv + 3, argv + argc));
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  error_counting_reporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return reporter.errors() == 0 ? 0 : 1;
}
