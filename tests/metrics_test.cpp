// Metrics: the counters storage::metrics() reports after known operations,
// on every backend, and their Prometheus text (prometheus.hpp).
#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "log_entries.hpp"
#include "seshat/log_store.hpp"
#include "seshat/prometheus.hpp"
#include "support.hpp"

using namespace seshat;
using seshat::test::fixed_entry;
using seshat::test::make_entries;
using seshat::test::open_store;
using seshat::test::scratch_dir;
using seshat::test::text_entry;

namespace {

template <class B>
using data_log = log_store<fixed_entry, memcpy_serializer, B, data_shard>;
template <class B>
using system_log = log_store<text_entry, boost_serializer, B, system_shard>;

template <class B>
std::unique_ptr<data_log<B>> open_data(storage<B>& s, shard_id id, log_store_options o = {}) {
  auto opened = data_log<B>::open(s, data_shard{id}, o);
  if (!opened.ok()) throw std::runtime_error(opened.status().to_string());
  return std::move(*opened);
}

template <class B>
storage_metrics read_metrics(storage<B>& s, metrics_options o = {}) {
  auto m = s.metrics(o);
  REQUIRE_MESSAGE(m.ok(), m.status().to_string());
  return *m;
}

// The group's metrics; fails the test when it is not listed.
const group_metrics& group_of(const storage_metrics& m, bool system, shard_id shard) {
  for (const group_metrics& g : m.groups)
    if (g.system == system && g.shard == shard) return g;
  FAIL("group not in the metrics: ", system ? "system" : std::to_string(shard));
  throw std::logic_error("unreachable");
}

// Waits for a number of callbacks, all successful.
class countdown {
 public:
  explicit countdown(int n) : left_(n) {}
  void done(const status& s) {
    std::lock_guard lock(mutex_);
    if (!s.ok()) failed_ = true;
    if (--left_ == 0) cv_.notify_all();
  }
  bool wait() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return left_ <= 0; });
    return !failed_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int left_;
  bool failed_ = false;
};

// Sample lines of a metric (its name followed by '{' or ' '), by labels.
std::map<std::string, std::string> samples(const std::string& text, const std::string& name) {
  std::map<std::string, std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name, 0) != 0 || line.size() <= name.size()) continue;
    const char next = line[name.size()];
    if (next != '{' && next != ' ') continue;
    const auto space = line.rfind(' ');
    out[line.substr(name.size(), space - name.size())] = line.substr(space + 1);
  }
  return out;
}

}  // namespace

TEST_SUITE("metrics") {

TEST_CASE_TEMPLATE("appends of N entries count N entries, their bytes, and one append per call", B,
                   SESHAT_ALL_BACKENDS, SESHAT_SEGMENTED_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  auto log = open_data(*s, 7);
  REQUIRE(log->append(make_entries<fixed_entry>(1, 1, 5)).ok());
  REQUIRE(log->append(make_entries<fixed_entry>(1, 6, 3)).ok());
  REQUIRE(log->append(make_entries<fixed_entry>(2, 9, 2)).ok());
  const storage_metrics m = read_metrics(*s);
  const group_metrics& g = group_of(m, false, 7);
  CHECK(g.appends == 3);
  CHECK(g.entries_appended == 10);
  // Nothing else writes the data log family: its bytes are the appends'.
  CHECK(g.bytes_appended > 10 * sizeof(fixed_entry));
  CHECK(g.bytes_appended == m.families[index_of(column_family::data_raft_log)].bytes_written);
  CHECK(m.families[index_of(column_family::data_raft_log)].writes == 10);
  // A refused append counts nothing.
  CHECK(log->append(make_entries<fixed_entry>(2, 20, 1)).is(errc::invalid_log_index));
  CHECK(group_of(read_metrics(*s), false, 7).appends == 3);
}

// Not on segmented<B> yet: there the engine's durable rounds count as group
// commits, its syncs are not timed and its entries are no family keys.
TEST_CASE_TEMPLATE("a durable append is one sync of its entries; a buffered one is none", B,
                   SESHAT_ALL_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  auto durable = open_data(*s, 1);
  auto buffered = open_data(*s, 2, log_store_options{sync_policy::buffered});
  for (std::uint64_t i = 0; i < 4; ++i) {
    REQUIRE(durable->append(make_entries<fixed_entry>(1, 1 + 3 * i, 3)).ok());
    REQUIRE(buffered->append(make_entries<fixed_entry>(1, 1 + 3 * i, 3)).ok());
  }
  const storage_metrics m = read_metrics(*s);
  const group_metrics& d = group_of(m, false, 1);
  CHECK(d.sync_seconds.count() == 4);
  CHECK(d.entries_synced == 12);
  // A backend whose syncs cost nothing (memory) records them as 0 s.
  if constexpr (times_syncs<B>)
    CHECK(d.sync_seconds.sum_seconds > 0);
  else
    CHECK(d.sync_seconds.sum_seconds == 0);
  const group_metrics& b = group_of(m, false, 2);
  CHECK(b.sync_seconds.count() == 0);
  CHECK(b.entries_synced == 0);
  CHECK(b.entries_appended == 12);
  // The store's syncs: the four synced writes, nothing else.
  CHECK(m.sync_seconds.count() == 4);
  CHECK(m.group_commits == 0);
  REQUIRE(s->sync_wal().ok());
  CHECK(read_metrics(*s).sync_seconds.count() == 5);
}

// Not on segmented<B> yet: there the engine's durable rounds count as group
// commits, its syncs are not timed and its entries are no family keys.
TEST_CASE_TEMPLATE("append_async counts a sync per callback, and the store one per group commit", B,
                   SESHAT_ALL_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  auto a = open_data(*s, 3);
  auto b = open_data(*s, 4);
  constexpr int k_rounds = 10;
  countdown done(2 * k_rounds);
  for (int i = 0; i < k_rounds; ++i) {
    REQUIRE(a->append_async(make_entries<fixed_entry>(1, 1 + 2 * i, 2),
                            [&](status st) { done.done(st); }).ok());
    REQUIRE(b->append_async(make_entries<fixed_entry>(1, 1 + i, 1),
                            [&](status st) { done.done(st); }).ok());
  }
  REQUIRE(done.wait());
  const storage_metrics m = read_metrics(*s);
  CHECK(group_of(m, false, 3).sync_seconds.count() == k_rounds);
  CHECK(group_of(m, false, 3).entries_synced == 2 * k_rounds);
  CHECK(group_of(m, false, 4).sync_seconds.count() == k_rounds);
  CHECK(group_of(m, false, 4).entries_synced == k_rounds);
  CHECK(m.group_commit_requests == 2 * k_rounds);
  CHECK(m.group_commits >= 1);
  CHECK(m.group_commits <= 2 * k_rounds);
  CHECK(m.group_commits == s->group_syncs());
  // Every store sync here is a group commit (the appends were not synced).
  CHECK(m.sync_seconds.count() == m.group_commits);
}

TEST_CASE_TEMPLATE("reads, truncations and purges are counted and the extent follows the log", B,
                   SESHAT_ALL_BACKENDS, SESHAT_SEGMENTED_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  auto log = open_data(*s, 5);
  auto extent = [&] {
    const group_metrics g = group_of(read_metrics(*s), false, 5);
    CHECK(g.open);
    return std::array<std::uint64_t, 3>{g.first_index, g.last_index, g.entries};
  };
  CHECK(extent() == std::array<std::uint64_t, 3>{1, 0, 0});
  REQUIRE(log->append(make_entries<fixed_entry>(1, 1, 10)).ok());
  CHECK(extent() == std::array<std::uint64_t, 3>{1, 10, 10});
  REQUIRE(log->entries(2, 5).ok());
  REQUIRE(log->entry_at(9).ok());
  REQUIRE(log->entries(3, 3).ok());           // no entries: not a read
  CHECK(!log->entries(8, 20).ok());           // refused: not a read
  REQUIRE(log->truncate(8).ok());
  REQUIRE(log->truncate(100).ok());           // nothing to delete
  REQUIRE(log->purge(3).ok());
  REQUIRE(log->purge(2).ok());                // purged already
  CHECK(extent() == std::array<std::uint64_t, 3>{4, 7, 4});
  const group_metrics g = group_of(read_metrics(*s), false, 5);
  CHECK(g.reads == 2);
  CHECK(g.entries_read == 4);
  CHECK(g.truncations == 1);
  CHECK(g.purges == 1);
  REQUIRE(log->purge(7).ok());
  CHECK(extent() == std::array<std::uint64_t, 3>{8, 7, 0});
}

TEST_CASE_TEMPLATE("a group's counts outlive its log_store, which reports no extent once closed", B,
                   SESHAT_ALL_BACKENDS, SESHAT_SEGMENTED_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  auto log = open_data(*s, 6);
  REQUIRE(log->append(make_entries<fixed_entry>(1, 1, 4)).ok());
  log.reset();
  group_metrics g = group_of(read_metrics(*s), false, 6);
  CHECK_FALSE(g.open);
  CHECK(g.entries_appended == 4);
  CHECK(g.last_index == 0);
  log = open_data(*s, 6);
  REQUIRE(log->append(make_entries<fixed_entry>(1, 5, 2)).ok());
  g = group_of(read_metrics(*s), false, 6);
  CHECK(g.open);
  CHECK(g.appends == 2);
  CHECK(g.entries_appended == 6);
  CHECK(g.last_index == 6);
}

TEST_CASE_TEMPLATE("groups are listed system group first, then by shard id", B,
                   SESHAT_ALL_BACKENDS, SESHAT_SEGMENTED_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  auto nine = open_data(*s, 9);
  auto sys = system_log<B>::open(*s).value();
  auto three = open_data(*s, 3);
  const storage_metrics m = read_metrics(*s);
  REQUIRE(m.groups.size() == 3);
  CHECK(m.groups[0].system);
  CHECK(m.groups[1].shard == 3);
  CHECK(m.groups[2].shard == 9);
}

TEST_CASE_TEMPLATE("reads and writes are counted per family; keys only when asked", B,
                   SESHAT_ALL_BACKENDS, SESHAT_SEGMENTED_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  REQUIRE(s->put(column_family::data_kv, "a", "12345").ok());
  REQUIRE(s->put(column_family::data_kv, "b", "xy").ok());
  REQUIRE(s->put(column_family::system_data, "c", "z").ok());
  REQUIRE(s->get(column_family::data_kv, "a").ok());
  REQUIRE(s->exists(column_family::system_data, "c").value());
  CHECK_FALSE(s->exists(column_family::system_data, "nope").value());
  storage_metrics m = read_metrics(*s, metrics_options{false});
  CHECK_FALSE(m.keys_counted);
  CHECK(m.keys[index_of(column_family::data_kv)] == 0);
  const family_metrics& kv = m.families[index_of(column_family::data_kv)];
  CHECK(kv.writes == 2);
  CHECK(kv.bytes_written == 1 + 5 + 1 + 2);
  CHECK(kv.reads == 1);
  CHECK(kv.bytes_read == 5);
  const family_metrics& sd = m.families[index_of(column_family::system_data)];
  CHECK(sd.writes == 1);
  CHECK(sd.reads == 1);
  CHECK(m.writes == 3);
  CHECK(m.reads == 2);
  m = read_metrics(*s);
  CHECK(m.keys_counted);
  CHECK(m.keys[index_of(column_family::data_kv)] == 2);
}

// Not on segmented<B> yet: there the engine's durable rounds count as group
// commits, its syncs are not timed and its entries are no family keys.
TEST_CASE_TEMPLATE("the Prometheus text reports the counts with the store's label", B,
                   SESHAT_ALL_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  auto log = open_data(*s, 11);
  REQUIRE(log->append(make_entries<fixed_entry>(1, 1, 7)).ok());
  REQUIRE(log->append(make_entries<fixed_entry>(1, 8, 1)).ok());
  auto text = prometheus_text(*s, prometheus_options{{{"node", "n1"}}, false});
  REQUIRE_MESSAGE(text.ok(), text.status().to_string());
  const std::string labels = "{store=\"" + dir.store().string() + "\",node=\"n1\",group=\"11\"";
  CHECK(samples(*text, "seshat_log_appended_entries_total")[labels + "}"] == "8");
  CHECK(samples(*text, "seshat_log_appends_total")[labels + "}"] == "2");
  CHECK(samples(*text, "seshat_log_last_index")[labels + "}"] == "8");
  CHECK(samples(*text, "seshat_log_sync_duration_seconds_count")[labels + "}"] == "2");
  CHECK(samples(*text, "seshat_log_sync_duration_seconds_bucket")[labels + ",le=\"+Inf\"}"] == "2");
  CHECK(samples(*text, "seshat_family_keys").empty());  // not counted unless asked
  auto counted = prometheus_text(*s, prometheus_options{{}, true});
  REQUIRE(counted.ok());
  CHECK(samples(*counted, "seshat_family_keys")["{store=\"" + dir.store().string() +
                                                "\",family=\"data_raft_log\"}"] == "8");
}

}  // TEST_SUITE("metrics")

TEST_SUITE("metrics") {

TEST_CASE("histogram buckets are cumulative, end in +Inf and +Inf equals _count") {
  storage_metrics m;
  m.sync_seconds.counts[0] = 2;                   // <= 50 us
  m.sync_seconds.counts[4] = 3;                   // <= 1 ms
  m.sync_seconds.counts.back() = 1;               // > 10 s
  m.sync_seconds.sum_seconds = 12.5;
  std::string out;
  REQUIRE(write_prometheus(out, m).ok());
  auto buckets = samples(out, "seshat_sync_duration_seconds_bucket");
  CHECK(buckets.size() == k_latency_bounds.size() + 1);
  CHECK(buckets["{le=\"0.00005\"}"] == "2");
  CHECK(buckets["{le=\"0.0005\"}"] == "2");
  CHECK(buckets["{le=\"0.001\"}"] == "5");
  CHECK(buckets["{le=\"10\"}"] == "5");
  CHECK(buckets["{le=\"+Inf\"}"] == "6");
  CHECK(samples(out, "seshat_sync_duration_seconds_count")[""] == "6");
  CHECK(samples(out, "seshat_sync_duration_seconds_sum")[""] == "12.5");
}

TEST_CASE("latency is put in the bucket of the first bound at or above it") {
  detail::latency_histogram h;
  h.record(std::chrono::microseconds(50));   // == the first bound
  h.record(std::chrono::microseconds(51));
  h.record(std::chrono::seconds(11));
  const latency_metrics m = h.read();
  CHECK(m.counts[0] == 1);
  CHECK(m.counts[1] == 1);
  CHECK(m.counts.back() == 1);
  CHECK(m.count() == 3);
  CHECK(m.sum_seconds == doctest::Approx(11.000101));
}

TEST_CASE("every metric has one HELP and one TYPE line, before its samples, for many stores") {
  storage_metrics a, b;
  group_metrics g;
  g.shard = 4;
  a.groups.push_back(g);
  b.groups.push_back(g);
  const prometheus_source both[] = {{a, {{"store", "a"}}}, {b, {{"store", "b"}}}};
  std::string out;
  REQUIRE(write_prometheus(out, both).ok());
  std::map<std::string, int> help, type;
  std::set<std::string> sampled;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# HELP ", 0) == 0) ++help[line.substr(7, line.find(' ', 7) - 7)];
    else if (line.rfind("# TYPE ", 0) == 0) ++type[line.substr(7, line.find(' ', 7) - 7)];
    else {
      std::string name = line.substr(0, line.find_first_of("{ "));
      for (std::string_view suffix : {"_bucket", "_sum", "_count"})
        if (name.ends_with(suffix) && type.count(name.substr(0, name.size() - suffix.size())))
          name.resize(name.size() - suffix.size());
      CHECK_MESSAGE(type.count(name) == 1, "sample before its TYPE line: ", line);
      sampled.insert(name);
    }
  }
  CHECK(help == type);
  for (const auto& [name, n] : help) CHECK_MESSAGE(n == 1, name);
  CHECK(sampled.count("seshat_log_appends_total") == 1);
  CHECK(samples(out, "seshat_log_appends_total").size() == 2);  // one per store
}

TEST_CASE("label values are escaped: backslash, double quote and newline") {
  storage_metrics m;
  std::string out;
  REQUIRE(write_prometheus(out, m, {{"node", "a\"b\\c\nd"}}).ok());
  CHECK(out.find("seshat_disk_bytes{node=\"a\\\"b\\\\c\\nd\"} 0\n") != std::string::npos);
}

TEST_CASE("a bad label name is refused, naming it, and nothing is written") {
  storage_metrics m;
  for (const char* bad : {"", "1x", "a-b", "__x", "le", "group", "family"}) {
    std::string out = "kept";
    const status s = write_prometheus(out, m, {{bad, "v"}});
    CHECK(s.is(errc::invalid_argument));
    CHECK(s.message().find(std::string("'") + bad + "'") != std::string::npos);
    CHECK(out == "kept");
  }
  std::string out;
  CHECK(write_prometheus(out, m, {{"x", "1"}, {"x", "2"}}).is(errc::invalid_argument));
  CHECK(out.empty());
}

}  // TEST_SUITE("metrics")

TEST_SUITE("concurrency") {

TEST_CASE_TEMPLATE("counts stay exact while many threads append and another reads the metrics", B,
                   SESHAT_ALL_BACKENDS, SESHAT_SEGMENTED_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  constexpr int k_threads = 4, k_appends = 50;
  std::vector<std::unique_ptr<data_log<B>>> logs;
  for (int t = 0; t < k_threads; ++t) logs.push_back(open_data(*s, 100 + t));
  std::atomic<bool> stop{false};
  std::thread reader([&] {
    while (!stop.load()) {
      auto text = prometheus_text(*s);
      CHECK(text.ok());
    }
  });
  countdown done(k_threads * k_appends);
  std::vector<std::thread> writers;
  for (int t = 0; t < k_threads; ++t)
    writers.emplace_back([&, t] {
      for (int i = 0; i < k_appends; ++i)
        CHECK(logs[t]->append_async(make_entries<fixed_entry>(1, 1 + 2 * i, 2),
                                    [&](status st) { done.done(st); }).ok());
    });
  for (auto& w : writers) w.join();
  REQUIRE(done.wait());
  stop = true;
  reader.join();
  const storage_metrics m = read_metrics(*s);
  std::uint64_t synced = 0;
  for (int t = 0; t < k_threads; ++t) {
    const group_metrics& g = group_of(m, false, 100 + t);
    CHECK(g.appends == k_appends);
    CHECK(g.entries_appended == 2 * k_appends);
    CHECK(g.sync_seconds.count() == k_appends);
    synced += g.entries_synced;
  }
  CHECK(synced == 2 * k_threads * k_appends);
  CHECK(m.group_commit_requests == k_threads * k_appends);
}

}  // TEST_SUITE("concurrency")
