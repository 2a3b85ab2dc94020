// doctest's main(), compiled once for every test program, with one rule
// added: a run whose filters select no test case fails. doctest itself
// exits 0 then, so a test suite renamed in a source file, or a filter
// mistyped in tests/meson.build, would silently run nothing.
// Queries (--count, --list-test-cases, --help, ...) and --no-run are
// exempt: they run nothing by design.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

namespace {

// What the last run selected, as doctest reports it at the end of a run
// (test_run_end is not called for queries).
struct run_record {
  bool ended = false;
  unsigned selected = 0;  // test cases that passed the filters
};
run_record last_run;

struct selection_listener : doctest::IReporter {
  explicit selection_listener(const doctest::ContextOptions&) {}
  void test_run_end(const doctest::TestRunStats& stats) override {
    last_run.ended = true;
    last_run.selected = stats.numTestCasesPassingFilters;
  }
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_case_start(const doctest::TestCaseData&) override {}
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

}  // namespace

REGISTER_LISTENER("selection", 1, selection_listener);

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  const int result = context.run();
  if (context.shouldExit() || !last_run.ended) return result;
  if (last_run.selected == 0) {
    std::fprintf(stderr, "%s: the filters (", argc > 0 ? argv[0] : "test");
    for (int i = 1; i < argc; ++i) std::fprintf(stderr, "%s%s", i > 1 ? " " : "", argv[i]);
    std::fprintf(stderr,
                 ") select no test case, so this run checked nothing: a test suite or test "
                 "case renamed in a test file, or a filter in tests/meson.build that names "
                 "none? --list-test-suites lists the suites\n");
    return 1;
  }
  return result;
}
