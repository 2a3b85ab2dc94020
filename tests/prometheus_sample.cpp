// Writes to stdout the Prometheus text of one store per backend built, after
// appends (durable, buffered, async), reads, a truncation and a purge on the
// system group and two data shards: what tests/promtool_check.sh hands to
// `promtool check metrics`.
//   prometheus_sample <scratch directory>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "log_entries.hpp"
#include "seshat/log_store.hpp"
#include "seshat/prometheus.hpp"
#include "support.hpp"

namespace {

using namespace seshat;
using test::fixed_entry;
using test::make_entries;
using test::text_entry;

bool check(const status& s, const char* what) {
  if (!s.ok()) std::fprintf(stderr, "prometheus_sample: %s: %s\n", what, s.to_string().c_str());
  return s.ok();
}

// Runs the operations on a store of backend B in `dir`; its metrics go to `out`.
template <class B>
bool exercise(const std::filesystem::path& dir, std::vector<storage_metrics>& out,
              std::vector<std::string>& names) {
  auto opened = storage<B>::open(dir);
  if (!check(opened.status(), "open")) return false;
  auto& s = **opened;
  auto sys = log_store<text_entry, boost_serializer, B, system_shard>::open(s);
  auto one = log_store<fixed_entry, memcpy_serializer, B, data_shard>::open(s, data_shard{1});
  auto two = log_store<fixed_entry, memcpy_serializer, B, data_shard>::open(
      s, data_shard{2}, log_store_options{sync_policy::buffered});
  if (!check(sys.status(), "open system log") || !check(one.status(), "open shard 1") ||
      !check(two.status(), "open shard 2"))
    return false;
  bool ok = check((*sys)->append(make_entries<text_entry>(1, 1, 20)), "append system") &&
            check((*one)->append(make_entries<fixed_entry>(1, 1, 10)), "append shard 1") &&
            check((*two)->append(make_entries<fixed_entry>(1, 1, 30)), "append shard 2") &&
            check((*one)->entries(2, 8).status(), "read shard 1") &&
            check((*one)->truncate(9), "truncate shard 1") &&
            check((*two)->purge(10), "purge shard 2") &&
            check(s.put(column_family::data_kv, "key", "value"), "put") &&
            check(s.get(column_family::data_kv, "key").status(), "get");
  std::atomic<int> pending{3};
  for (std::uint64_t i = 0; i < 3 && ok; ++i)
    ok = check((*two)->append_async(make_entries<fixed_entry>(1, 31 + i, 1),
                                    [&](status st) {
                                      check(st, "append_async");
                                      --pending;
                                    }),
               "append_async");
  while (ok && pending.load() > 0) std::this_thread::yield();
  auto m = s.metrics();
  if (!ok || !check(m.status(), "metrics")) return false;
  out.push_back(*m);
  names.push_back(std::string(B::k_name));
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: prometheus_sample <scratch directory>\n");
    return 2;
  }
  const std::filesystem::path root = argv[1];
  std::filesystem::remove_all(root);
  std::vector<storage_metrics> metrics;
  std::vector<std::string> names;
  metrics.reserve(3);
  bool ok = exercise<memory_backend>(root / "memory", metrics, names);
#if SESHAT_HAVE_ROCKSDB
  ok = ok && exercise<rocksdb_backend>(root / "rocksdb", metrics, names);
#endif
#if SESHAT_HAVE_LEVELDB
  ok = ok && exercise<leveldb_backend>(root / "leveldb", metrics, names);
#endif
  if (!ok) return 1;
  std::vector<prometheus_source> sources;
  for (std::size_t i = 0; i < metrics.size(); ++i)
    sources.push_back({metrics[i], {{"store", (root / names[i]).string()}, {"backend", names[i]}}});
  std::string text;
  if (!check(write_prometheus(text, sources), "write_prometheus")) return 1;
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::filesystem::remove_all(root);
  return 0;
}
