// The baseline: W1, W2, W3 and W4 done by hand directly on RocksDB's and
// LevelDB's own APIs, as a user without seshat would write them: the seed's
// key layout ("log:" + 20 digits), the raw payload as the value, one
// WriteBatch per batch, default options. seshat's overhead over its backend
// is the ratio of its figures to these, measured in the same run.
#include <random>
#include <string>
#include <vector>

#include "bench_support.hpp"
#include "seshat/log_key.hpp"

#if SESHAT_HAVE_ROCKSDB
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>
#endif
#if SESHAT_HAVE_LEVELDB
#include <leveldb/db.h>
#include <leveldb/write_batch.h>
#endif

namespace seshat::bench {
namespace {

#if SESHAT_HAVE_ROCKSDB
struct rocksdb_raw {
  static constexpr const char* k_name = "rocksdb-raw";
  using db_type = rocksdb::DB;
  using batch_type = rocksdb::WriteBatch;
  static db_type* open(const std::string& path) {
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    return rocksdb::DB::Open(options, path, &db).ok() ? db : nullptr;
  }
  static bool write(db_type* db, batch_type& b, bool sync) {
    rocksdb::WriteOptions wo;
    wo.sync = sync;
    return db->Write(wo, &b).ok();
  }
  static std::unique_ptr<rocksdb::Iterator> iterator(db_type* db) {
    return std::unique_ptr<rocksdb::Iterator>(db->NewIterator(rocksdb::ReadOptions()));
  }
};

// The stretch of WORKLOADS.md: RocksDB with its WAL recycled, so a synced
// append overwrites blocks of an old log file instead of growing a new one
// (what W0p does with a preallocated file). RocksDB 7.8 keeps recycling on
// only under kSkipAnyCorruptedRecords (its option sanitizing turns
// recycle_log_file_num to 0 under the other three recovery modes), which
// skips a damaged record anywhere in the WAL and replays what follows: a hole
// in a Raft log. So this is measured, for what it would give, and not offered
// by seshat. Small memtables and a warm-up that switches the WAL a few times
// leave recycled files for the measured writes.
struct rocksdb_raw_recycled : rocksdb_raw {
  static constexpr const char* k_name = "rocksdb-raw-recycled-wal";
  static db_type* open(const std::string& path) {
    rocksdb::Options options;
    options.create_if_missing = true;
    options.recycle_log_file_num = 4;
    options.wal_recovery_mode = rocksdb::WALRecoveryMode::kSkipAnyCorruptedRecords;
    options.write_buffer_size = 4 << 20;
    rocksdb::DB* db = nullptr;
    if (!rocksdb::DB::Open(options, path, &db).ok()) return nullptr;
    const std::string filler(1024, 'w');
    for (int i = 0; i < 6 * 4096; ++i) {
      if (!db->Put(rocksdb::WriteOptions(), "warm-up:" + std::to_string(i % 4096), filler).ok()) {
        delete db;
        return nullptr;
      }
      if (i % 4096 == 4095 && !db->Flush(rocksdb::FlushOptions()).ok()) {
        delete db;
        return nullptr;
      }
    }
    return db;
  }
};
#endif

#if SESHAT_HAVE_LEVELDB
struct leveldb_raw {
  static constexpr const char* k_name = "leveldb-raw";
  using db_type = leveldb::DB;
  using batch_type = leveldb::WriteBatch;
  static db_type* open(const std::string& path) {
    leveldb::Options options;
    options.create_if_missing = true;
    leveldb::DB* db = nullptr;
    return leveldb::DB::Open(options, path, &db).ok() ? db : nullptr;
  }
  static bool write(db_type* db, batch_type& b, bool sync) {
    leveldb::WriteOptions wo;
    wo.sync = sync;
    return db->Write(wo, &b).ok();
  }
  static std::unique_ptr<leveldb::Iterator> iterator(db_type* db) {
    return std::unique_ptr<leveldb::Iterator>(db->NewIterator(leveldb::ReadOptions()));
  }
};
#endif

// W1 (sync) / W2: batches of B entries, one WriteBatch each.
template <class Raw>
void raw_append(benchmark::State& state, bool sync) {
  const auto batch_size = static_cast<std::size_t>(state.range(0));
  const auto pool = random_entries(4096, k_entry_bytes);
  fresh_dir dir;
  std::unique_ptr<typename Raw::db_type> db(Raw::open(dir.path().string()));
  if (!db) return state.SkipWithError("cannot open the database");
  typename Raw::batch_type batch;
  std::uint64_t next = 1;
  std::string key;
  latency_recorder latency;
  for (auto _ : state) {
    latency.start();
    batch.Clear();
    for (std::size_t i = 0; i < batch_size; ++i, ++next) {
      key = log_key::encode(next);
      batch.Put(key, pool[next % pool.size()]);
    }
    const bool ok = Raw::write(db.get(), batch, sync);
    latency.stop();
    if (!ok) {
      state.SkipWithError("write failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch_size));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(batch_size * k_entry_bytes));
  latency.report(state);
  state.counters["peak_rss_mb"] = peak_rss_mb();
}

// W4: 64 consecutive entries at a random index of 1,000,000.
template <class Raw>
void raw_read_range(benchmark::State& state) {
  constexpr std::uint64_t k_span = 64;
  const std::uint64_t count = scaled(1'000'000) + k_span;
  const auto pool = random_entries(1000, k_entry_bytes);
  fresh_dir dir;
  std::unique_ptr<typename Raw::db_type> db(Raw::open(dir.path().string()));
  if (!db) return state.SkipWithError("cannot open the database");
  typename Raw::batch_type batch;
  for (std::uint64_t i = 1; i <= count; ++i) {
    batch.Put(log_key::encode(i), pool[i % pool.size()]);
    if (i % 1000 == 0 || i == count) {
      if (!Raw::write(db.get(), batch, false)) return state.SkipWithError("fill failed");
      batch.Clear();
    }
  }
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<std::uint64_t> start(1, count - k_span + 1);
  std::vector<std::string> out;
  latency_recorder latency;
  for (auto _ : state) {
    const std::uint64_t lo = start(rng);
    latency.start();
    out.clear();
    auto it = Raw::iterator(db.get());
    for (it->Seek(log_key::encode(lo)); it->Valid() && out.size() < k_span; it->Next())
      out.emplace_back(it->value().data(), it->value().size());
    latency.stop();
    if (out.size() != k_span) {
      state.SkipWithError("short read");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(k_span));
  latency.report(state);
  state.counters["peak_rss_mb"] = peak_rss_mb();
}

// W3 by hand: 64 groups; a round puts one entry per group (key: group id
// then index, 8 bytes big-endian each, as seshat's binary key format spells
// a data shard's log key) into one WriteBatch and writes it synced: what a
// user who batches the groups' appends himself gets from the engine.
template <class Raw>
void raw_multi_group(benchmark::State& state) {
  constexpr std::uint64_t k_groups = 64;
  const auto pool = random_entries(k_groups, k_entry_bytes);
  fresh_dir dir;
  std::unique_ptr<typename Raw::db_type> db(Raw::open(dir.path().string()));
  if (!db) return state.SkipWithError("cannot open the database");
  typename Raw::batch_type batch;
  std::uint64_t next = 1;
  std::string key;
  auto append_u64be = [&](std::uint64_t v) {
    for (int shift = 56; shift >= 0; shift -= 8) key += static_cast<char>(v >> shift);
  };
  latency_recorder latency;
  for (auto _ : state) {
    latency.start();
    batch.Clear();
    for (std::uint64_t g = 1; g <= k_groups; ++g) {
      key.clear();
      append_u64be(g);
      append_u64be(next);
      batch.Put(key, pool[g - 1]);
    }
    const bool ok = Raw::write(db.get(), batch, true);
    latency.stop();
    ++next;
    if (!ok) {
      state.SkipWithError("write failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(k_groups));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(k_groups * k_entry_bytes));
  latency.report(state);
  state.counters["peak_rss_mb"] = peak_rss_mb();
}

template <class Raw>
void register_raw() {
  const std::string name(Raw::k_name);
  benchmark::RegisterBenchmark(("W1/" + name + "/seed").c_str(), raw_append<Raw>, true)
      ->ArgName("B")->Arg(1)->Arg(16)->Arg(256)->UseRealTime();
  benchmark::RegisterBenchmark(("W2/" + name + "/seed").c_str(), raw_append<Raw>, false)
      ->ArgName("B")->Arg(1)->Arg(16)->Arg(256)->UseRealTime();
  benchmark::RegisterBenchmark(("W4/" + name + "/seed").c_str(), raw_read_range<Raw>)->UseRealTime();
  benchmark::RegisterBenchmark(("W3/" + name + "/one-batch-per-round").c_str(),
                               raw_multi_group<Raw>)
      ->UseRealTime();
}

const bool registered = [] {
#if SESHAT_HAVE_ROCKSDB
  register_raw<rocksdb_raw>();
  benchmark::RegisterBenchmark("W1/rocksdb-raw-recycled-wal/seed",
                               raw_append<rocksdb_raw_recycled>, true)
      ->ArgName("B")->Arg(1)->UseRealTime();
#endif
#if SESHAT_HAVE_LEVELDB
  register_raw<leveldb_raw>();
#endif
  return true;
}();

}  // namespace
}  // namespace seshat::bench
