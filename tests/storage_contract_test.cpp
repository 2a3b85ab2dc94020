// The storage<B> contract, written once and run against every backend.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "seshat/detail/log_compactor.hpp"

#include "support.hpp"

TEST_SUITE_BEGIN("storage contract");

using namespace seshat;
using seshat::test::dump;
using seshat::test::open_store;
using seshat::test::scratch_dir;

namespace {

constexpr column_family k_log = column_family::system_raft_log;

// A key-value write to a log family: written on a key-value store; refused
// on a store whose logs are in a log engine (segmented<B>), by design, with
// invalid-argument naming the family and nothing written.
template <class B>
bool log_family_put(storage<B>& s, column_family cf, std::string_view key, std::string_view value) {
  status put = s.put(cf, key, value);
  if constexpr (log_backend<B>) {
    if (cf == column_family::system_raft_log || cf == column_family::data_raft_log) {
      CHECK(put.is(errc::invalid_argument));
      CHECK(put.message().find(std::string(name_of(cf))) != std::string::npos);
      CHECK(put.message().find("kept by its log engine") != std::string::npos);
      return false;
    }
  }
  REQUIRE(put.ok());
  return true;
}

// The data log these tests use: group 0 on a key-value store, group 1 in a
// log engine (which keeps data groups from 1).
template <class B>
log_address data_log() {
  return log_backend<B> ? log_address{column_family::data_raft_log, 1}
                        : log_address{column_family::data_raft_log};
}

std::vector<std::string> entries(int first, int count) {
  std::vector<std::string> out;
  for (int i = first; i < first + count; ++i) out.push_back("entry-" + std::to_string(i));
  return out;
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("storage contract", B, storage_contract) {
  scratch_dir dir;

  SUBCASE("all six column families exist after first open and keep their own keys") {
    auto s = open_store<B>(dir.store());
    std::vector<column_family> written;
    for (column_family cf : k_all_column_families)
      if (log_family_put(*s, cf, "k", std::string("value of ") + std::string(name_of(cf))))
        written.push_back(cf);
    CHECK(written.size() == (log_backend<B> ? 4u : 6u));
    for (column_family cf : written)
      CHECK(s->get(cf, "k").value() == std::string("value of ") + std::string(name_of(cf)));
  }

  SUBCASE("put, get, exists and del round-trip; a missing key is not-found") {
    auto s = open_store<B>(dir.store());
    const column_family cf = column_family::data_kv;
    CHECK(s->get(cf, "absent").status().is(errc::not_found));
    CHECK(s->get(cf, "absent").status().message().find("data_kv") != std::string::npos);
    CHECK_FALSE(s->exists(cf, "a").value());
    REQUIRE(s->put(cf, "a", std::string("1\0binary", 8)).ok());
    CHECK(s->exists(cf, "a").value());
    CHECK(s->get(cf, "a").value() == std::string("1\0binary", 8));
    REQUIRE(s->put(cf, "a", "2").ok());
    CHECK(s->get(cf, "a").value() == "2");
    REQUIRE(s->del(cf, "a").ok());
    CHECK_FALSE(s->exists(cf, "a").value());
    CHECK(s->del(cf, "never-there").ok());
  }

  SUBCASE("log append is gap-free: a gap or an overlap is refused with expected and got") {
    auto s = open_store<B>(dir.store());
    REQUIRE(s->append_log(k_log, 1, entries(1, 5)).ok());
    auto before = dump(*s);

    status gap = s->append_log(k_log, 7, "x");
    CHECK(gap.is(errc::invalid_log_index));
    CHECK(gap.message().find("index 7") != std::string::npos);
    CHECK(gap.message().find("expected 6") != std::string::npos);
    CHECK(s->append_log(k_log, 3, entries(3, 2)).is(errc::invalid_log_index));
    CHECK(dump(*s) == before);

    REQUIRE(s->append_log(k_log, 6, "entry-6").ok());
    CHECK(s->first_log_index(k_log).value() == 1u);
    CHECK(s->last_log_index(k_log).value() == 6u);
  }

  SUBCASE("an empty log accepts only index 1 as its first append") {
    auto s = open_store<B>(dir.store());
    CHECK_FALSE(s->first_log_index(k_log).value().has_value());
    CHECK_FALSE(s->last_log_index(k_log).value().has_value());
    status s0 = s->append_log(k_log, 0, "x");
    CHECK(s0.is(errc::invalid_log_index));
    CHECK(s0.message().find("expected 1") != std::string::npos);
    CHECK(s->append_log(k_log, 2, "x").is(errc::invalid_log_index));
    CHECK(dump(*s).empty());
  }

  SUBCASE("read_log returns [start, end) and names the first index it does not hold") {
    auto s = open_store<B>(dir.store());
    REQUIRE(s->append_log(k_log, 1, entries(1, 10)).ok());
    CHECK(s->read_log(k_log, 3, 7).value() == entries(3, 4));
    CHECK(s->read_log(k_log, 4, 4).value().empty());
    auto past = s->read_log(k_log, 8, 12);
    CHECK(past.status().is(errc::invalid_log_index));
    CHECK(past.status().message().find("entry 11") != std::string::npos);
    CHECK(s->read_log(k_log, 0, 2).status().is(errc::invalid_log_index));
    CHECK(s->read_log(k_log, 5, 3).status().is(errc::invalid_argument));
  }

  SUBCASE("truncate_log_before deletes [first, index) and the floor survives reopen") {
    {
      auto s = open_store<B>(dir.store());
      REQUIRE(s->append_log(k_log, 1, entries(1, 10)).ok());
      REQUIRE(s->truncate_log_before(k_log, 4).ok());
      CHECK(s->first_log_index(k_log).value() == 4u);
      CHECK(s->read_log(k_log, 3, 5).status().is(errc::invalid_log_index));
      CHECK(s->read_log(k_log, 4, 11).value() == entries(4, 7));
      REQUIRE(s->truncate_log_before(k_log, 20).ok());  // everything
      CHECK_FALSE(s->last_log_index(k_log).value().has_value());
    }
    auto s = open_store<B>(dir.store());
    CHECK_FALSE(s->first_log_index(k_log).value().has_value());
    CHECK(s->append_log(k_log, 11, "x").is(errc::invalid_log_index));
    REQUIRE(s->append_log(k_log, 20, entries(20, 2)).ok());
    CHECK(s->read_log(k_log, 20, 22).value() == entries(20, 2));
  }

  SUBCASE("truncate_log_from deletes [index, last] and refuses to cut below the first index") {
    auto s = open_store<B>(dir.store());
    REQUIRE(s->append_log(k_log, 1, entries(1, 10)).ok());
    REQUIRE(s->truncate_log_from(k_log, 7).ok());
    CHECK(s->last_log_index(k_log).value() == 6u);
    REQUIRE(s->append_log(k_log, 7, "new-7").ok());
    CHECK(s->read_log(k_log, 6, 8).value() == std::vector<std::string>{"entry-6", "new-7"});
    REQUIRE(s->truncate_log_before(k_log, 3).ok());
    auto before = dump(*s);
    CHECK(s->truncate_log_from(k_log, 2).is(errc::invalid_log_index));
    CHECK(dump(*s) == before);
    REQUIRE(s->truncate_log_from(k_log, 3).ok());
    CHECK_FALSE(s->last_log_index(k_log).value().has_value());
    REQUIRE(s->append_log(k_log, 3, "again-3").ok());
  }

  SUBCASE("the two log families are independent") {
    auto s = open_store<B>(dir.store());
    REQUIRE(s->append_log(column_family::system_raft_log, 1, entries(1, 3)).ok());
    REQUIRE(s->append_log(data_log<B>(), 1, entries(100, 2)).ok());
    REQUIRE(s->truncate_log_before(data_log<B>(), 2).ok());
    CHECK(s->first_log_index(column_family::system_raft_log).value() == 1u);
    CHECK(s->last_log_index(column_family::system_raft_log).value() == 3u);
    CHECK(s->read_log(data_log<B>(), 2, 3).value() == entries(101, 1));
  }

  SUBCASE("log helpers refuse a family that holds no log") {
    auto s = open_store<B>(dir.store());
    status refused = s->append_log(column_family::data_kv, 1, "x");
    CHECK(refused.is(errc::invalid_argument));
    CHECK(refused.message().find("data_kv") != std::string::npos);
    CHECK(s->read_log(column_family::system_data, 1, 2).status().is(errc::invalid_argument));
    CHECK(dump(*s).empty());
  }

  SUBCASE("a key in a log family that is not a log key is reported as corrupted data") {
    auto s = open_store<B>(dir.store());
    if (log_family_put(*s, k_log, "log:12ab", "garbage")) {
      auto first = s->first_log_index(k_log);
      CHECK(first.status().is(errc::corrupted_data));
      CHECK(first.status().message().find("log:12ab") != std::string::npos);
    } else {
      CHECK_FALSE(s->first_log_index(k_log).value().has_value());
    }
  }

  SUBCASE("a batch across column families applies in order, all together") {
    auto s = open_store<B>(dir.store());
    REQUIRE(s->put(column_family::data_kv, "old", "x").ok());
    REQUIRE(s->put(column_family::data_kv, "r1", "x").ok());
    auto b = s->new_batch();
    b.put(column_family::system_data, "membership", "{1,2,3}");
    b.put(column_family::data_kv, "k", "v1");
    b.put(column_family::data_kv, "k", "v2");
    b.put(column_family::data_kv, "r2", "inside, put before the range delete");
    b.del_range(column_family::data_kv, "r", "s");
    b.put(column_family::data_kv, "r3", "inside, put after the range delete");
    b.del(column_family::data_kv, "old");
    b.put(column_family::data_raft_state, "vote", "term 3 for node 2");
    CHECK(b.sync());  // it touches a raft_state family
    REQUIRE(s->write(b).ok());
    CHECK(s->get(column_family::system_data, "membership").value() == "{1,2,3}");
    CHECK(s->get(column_family::data_kv, "k").value() == "v2");
    CHECK_FALSE(s->exists(column_family::data_kv, "r1").value());
    CHECK_FALSE(s->exists(column_family::data_kv, "r2").value());
    CHECK(s->exists(column_family::data_kv, "r3").value());
    CHECK_FALSE(s->exists(column_family::data_kv, "old").value());
    CHECK(s->get(column_family::data_raft_state, "vote").value() == "term 3 for node 2");
  }

  SUBCASE("an empty batch is refused") {
    auto s = open_store<B>(dir.store());
    auto b = s->new_batch();
    CHECK(s->write(b).is(errc::invalid_argument));
  }

  SUBCASE("reopen keeps everything") {
    std::map<std::string, std::string> before;
    {
      auto s = open_store<B>(dir.store());
      REQUIRE(s->append_log(k_log, 1, entries(1, 50)).ok());
      for (column_family cf : k_all_column_families)
        log_family_put(*s, cf, "key", std::string(name_of(cf)));
      REQUIRE(s->truncate_log_before(k_log, 10).ok());
      before = dump(*s);
      REQUIRE(s->close().ok());
      CHECK(s->close().ok());  // idempotent
    }
    auto s = open_store<B>(dir.store());
    CHECK(dump(*s) == before);
    CHECK(s->first_log_index(k_log).value() == 10u);
    CHECK(s->last_log_index(k_log).value() == 50u);
    CHECK(s->append_log(k_log, 51, "next").ok());
  }

  SUBCASE("iterators see the family as it was when they were made") {
    auto s = open_store<B>(dir.store());
    const column_family cf = column_family::data_kv;
    for (const char* k : {"b", "d", "f"}) REQUIRE(s->put(cf, k, k).ok());
    auto it = s->new_iterator(cf);
    REQUIRE(s->put(cf, "c", "c").ok());
    REQUIRE(s->del(cf, "d").ok());
    REQUIRE(s->put(column_family::system_data, "e", "other family").ok());

    std::vector<std::string> forward, backward;
    for (it->seek_to_first(); it->valid(); it->next()) forward.emplace_back(it->key());
    for (it->seek_to_last(); it->valid(); it->prev()) backward.emplace_back(it->key());
    CHECK(forward == std::vector<std::string>{"b", "d", "f"});
    CHECK(backward == std::vector<std::string>{"f", "d", "b"});
    it->seek("c");
    REQUIRE(it->valid());
    CHECK(it->key() == "d");
    it->seek_for_prev("e");
    REQUIRE(it->valid());
    CHECK(it->key() == "d");
    CHECK(it->value() == "d");
    it->seek_for_prev("a");
    CHECK_FALSE(it->valid());
    it->seek("g");
    CHECK_FALSE(it->valid());

    auto fresh = s->new_iterator(cf);
    forward.clear();
    for (fresh->seek_to_first(); fresh->valid(); fresh->next()) forward.emplace_back(fresh->key());
    CHECK(forward == std::vector<std::string>{"b", "c", "f"});
  }

  SUBCASE("metrics count keys, reads and writes") {
    auto s = open_store<B>(dir.store());
    REQUIRE(s->append_log(k_log, 1, entries(1, 4)).ok());
    REQUIRE(s->put(column_family::data_kv, "k", "12345").ok());
    CHECK(s->get(column_family::data_kv, "k").ok());
    CHECK(s->read_log(k_log, 1, 3).ok());
    auto m = s->metrics().value();
    // A log engine's entries are no key-value keys.
    CHECK(m.keys[index_of(k_log)] == (log_backend<B> ? 0 : 4));
    CHECK(m.keys[index_of(column_family::data_kv)] == 1);
    CHECK(m.writes == 5);
    CHECK(m.reads == 3);
    CHECK(m.bytes_read == 5 + 2 * std::string("entry-1").size());
    CHECK(m.bytes_written > 0);
    CHECK(m.disk_bytes > 0);
  }

  SUBCASE("options out of range are refused naming the field and range; nothing is created") {
    open_options bad;
    bad.max_write_buffers = 11;
    auto opened = storage<B>::open(dir.store(), bad);
    CHECK(opened.status().is(errc::invalid_config));
    CHECK(opened.status().message() == "max_write_buffers is 11, allowed range is [2, 10]");
    bad = {};
    bad.write_buffer_mb = 0;
    CHECK(storage<B>::open(dir.store(), bad).status().message().find("write_buffer_mb") !=
          std::string::npos);
    bad = {};
    bad.target_file_mb = 2048;
    CHECK(storage<B>::open(dir.store(), bad).status().is(errc::invalid_config));
    CHECK_FALSE(std::filesystem::exists(dir.store()));
    open_options missing;
    missing.create_if_missing = false;
    CHECK(storage<B>::open(dir.store(), missing).status().is(errc::not_found));
  }

  SUBCASE("a second open of an open store fails clearly") {
    auto s = open_store<B>(dir.store());
    REQUIRE(s->put(column_family::data_kv, "k", "v").ok());
    auto second = storage<B>::open(dir.store());
    CHECK_FALSE(second.ok());
    CHECK(second.status().message().find("is already open in this process") != std::string::npos);
    CHECK(s->get(column_family::data_kv, "k").value() == "v");
  }
}

TEST_CASE_TEMPLATE_INVOKE(storage_contract, SESHAT_ALL_BACKENDS, SESHAT_SEGMENTED_BACKENDS);

// The log layer serves every group: a log is its family and group, its keys
// spelled by a key format; these are the operations log_store is built on.

TEST_CASE_TEMPLATE("a data group's log under binary keys is gap-free and spelled by the key format",
                   B, SESHAT_ALL_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  const log_address group{column_family::data_raft_log, 7};
  const group_keys<binary_key_format> keys(group);
  REQUIRE(s->template append_log<binary_key_format>(group, 1, entries(1, 5)).ok());
  const status gap = s->template append_log<binary_key_format>(group, 7, "x");
  CHECK(gap.is(errc::invalid_log_index));
  for (const char* part : {"data_raft_log (group 7)", "append at index 7", "expected 6",
                           "last index is 5"})
    CHECK_MESSAGE(gap.message().find(part) != std::string::npos, part << " in " << gap.to_string());
  // The keys on disk are the format's: 8-byte group id, 8-byte index.
  auto on_disk = dump(*s);
  CHECK(on_disk.size() == 5);
  CHECK(on_disk.at("data_raft_log/" + keys.log(3)) == "entry-3");
  CHECK(s->template read_log<binary_key_format>(group, 2, 5).value() == entries(2, 3));
  REQUIRE(s->template truncate_log_before<binary_key_format>(group, 3).ok());
  REQUIRE(s->template truncate_log_from<binary_key_format>(group, 5).ok());
  CHECK(s->template first_log_index<binary_key_format>(group).value() == 3u);
  CHECK(s->template last_log_index<binary_key_format>(group).value() == 4u);
  // The floor storage keeps sorts after the group's log keys.
  on_disk = dump(*s);
  CHECK(on_disk.at("data_raft_log/" + keys.floor()) == binary_key_format::floor_value(3));
  CHECK(keys.floor() > keys.log_end());
  // The data group's log is not the system group's log of that family.
  CHECK_FALSE(s->last_log_index(column_family::data_raft_log).value().has_value());
}

// A range read finds each next entry by the key it expects next: every
// carry of the index's spelling (a byte of the binary key, a decimal digit)
// reads the right entry.
TEST_CASE_TEMPLATE("a range read across every carry of the key's index reads each entry in order",
                   B, SESHAT_ALL_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  auto check_across = [&]<class F>(F, log_address group, std::uint64_t from, std::uint64_t count) {
    CAPTURE(describe(group));
    CAPTURE(std::string(F::k_name));
    CAPTURE(from);
    REQUIRE(s->template open_log<F>(group, log_floor::kept_by_caller(from)).ok());
    std::vector<std::string> values;
    for (std::uint64_t i = from; i < from + count; ++i) values.push_back("entry-" + std::to_string(i));
    REQUIRE(s->template append_log<F>(group, from, values).ok());
    CHECK(s->template read_log<F>(group, from, from + count).value() == values);
    std::vector<std::uint64_t> seen;
    REQUIRE(s->template read_log<F>(group, from + 1, from + count,
                                    [&](std::uint64_t i, std::string_view key, std::string_view) {
                                      CHECK(key == group_keys<F>(group).log(i));
                                      seen.push_back(i);
                                      return status{};
                                    })
                .ok());
    CHECK(seen.size() == count - 1);
  };
  // 0xff -> 0x100, 0xffff -> 0x10000, 0xffffffff -> 0x100000000 (binary).
  check_across(binary_key_format{}, {column_family::data_raft_log, 3}, 250, 12);
  check_across(binary_key_format{}, {column_family::data_raft_log, 4}, 65530, 12);
  check_across(binary_key_format{}, {column_family::system_raft_log}, 0xFFFFFFFAull, 12);
  // 9 -> 10, 99999999 -> 100000000 (decimal).
  check_across(decimal_key_format{}, {column_family::data_raft_log, 5}, 5, 10);
  check_across(decimal_key_format{}, {column_family::system_raft_log}, 99999995, 10);
}

TEST_CASE_TEMPLATE("groups sharing a log family keep separate logs, bounds and floors", B,
                   SESHAT_ALL_BACKENDS) {
  scratch_dir dir;
  const log_address seven{column_family::data_raft_log, 7}, eight{column_family::data_raft_log, 8};
  {
    auto s = open_store<B>(dir.store());
    REQUIRE(s->append_log(seven, 1, entries(1, 4)).ok());
    REQUIRE(s->append_log(eight, 1, entries(101, 2)).ok());
    REQUIRE(s->truncate_log_before(seven, 10).ok());  // empties seven; floor 10
    CHECK(s->append_log(eight, 3, "eight-3").ok());
    CHECK(s->append_log(seven, 5, "x").is(errc::invalid_log_index));
    CHECK(s->read_log(eight, 1, 4).value() ==
          std::vector<std::string>{"entry-101", "entry-102", "eight-3"});
    // decimal_key_format spells a data group's keys with its prefix.
    CHECK(dump(*s).count("data_raft_log/shard:00000000000000000008/log:00000000000000000003") == 1);
    CHECK(dump(*s).at("data_raft_log/shard:00000000000000000007/log_floor") ==
          "00000000000000000010");
  }
  auto s = open_store<B>(dir.store());
  CHECK_FALSE(s->last_log_index(seven).value().has_value());
  CHECK(s->append_log(seven, 10, "seven-10").ok());
  CHECK(s->last_log_index(eight).value() == 3u);
}

TEST_CASE_TEMPLATE("a log whose floor its caller keeps gets no floor key, and takes the given floor",
                   B, SESHAT_ALL_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  const log_address group{column_family::data_raft_log, 3};
  REQUIRE(s->open_log(group, log_floor::kept_by_caller(5)).ok());
  CHECK(s->append_log(group, 1, "x").is(errc::invalid_log_index));
  REQUIRE(s->append_log(group, 5, entries(5, 4)).ok());
  REQUIRE(s->truncate_log_before(group, 7).ok());
  REQUIRE(s->truncate_log_from(group, 7).ok());  // empties it: floor 7
  CHECK(dump(*s).empty());
  CHECK(s->append_log(group, 6, "x").is(errc::invalid_log_index));
  CHECK(s->append_log(group, 7, "entry-7").ok());
}

TEST_CASE_TEMPLATE("reset_log deletes every entry and writes its companion batch in the same write",
                   B, SESHAT_ALL_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  const log_address group{column_family::data_raft_log, 3};
  REQUIRE(s->append_log(group, 1, entries(1, 4)).ok());
  auto with = s->new_batch();
  with.put(column_family::data_raft_state, "marker", "reset");
  REQUIRE(s->reset_log(group, 20, &with).ok());
  CHECK(s->get(column_family::data_raft_state, "marker").value() == "reset");
  CHECK_FALSE(s->first_log_index(group).value().has_value());
  CHECK(s->append_log(group, 20, "entry-20").ok());
  auto bad = s->new_batch();
  bad.put(column_family::data_raft_log, "raw", "x");
  const status refused = s->reset_log(group, 30, &bad);
  CHECK(refused.is(errc::invalid_argument));
  CHECK(s->last_log_index(group).value() == 20u);
}

// ---- purge frees the disk ---------------------------------------------------
//
// Every log range storage deletes is compacted in the background once its
// family took options.compact_deleted_logs_after_mb of log writes
// (detail/log_compactor.hpp); these tests set it to 0: every deletion.

namespace {

// `count` incompressible entries of `bytes` each, from `seed`.
std::vector<std::string> random_entries(std::size_t count, std::size_t bytes, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::string> out(count, std::string(bytes, '\0'));
  for (auto& e : out)
    for (auto& c : e) c = static_cast<char>(rng());
  return out;
}

// Bytes of the engine's write-ahead logs (*.log) in the store directory.
std::uint64_t log_file_bytes(const std::filesystem::path& dir) {
  std::uint64_t bytes = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir))
    if (f.path().extension() == ".log") bytes += f.file_size();
  return bytes;
}

open_options compact_every_deletion() {
  open_options o;
  o.compact_deleted_logs_after_mb = 0;
  return o;
}

}  // namespace

TEST_CASE_TEMPLATE("purged log ranges give their disk space back once the background compaction "
                   "finished",
                   B, SESHAT_ALL_BACKENDS) {
  if constexpr (std::is_same_v<B, memory_backend>) return;  // no disk
  scratch_dir dir;
  auto s = open_store<B>(dir.store(), compact_every_deletion());
  // Rounds of 3 MB appended, then purged but for its last 100 entries: a
  // purged range in a table file at LevelDB's deepest level goes with the
  // next compaction that reaches it, the next round's.
  constexpr std::uint64_t k_round = 3000;
  const auto all = random_entries(3 * k_round, 1024, 1);
  std::uint64_t written = 0;
  for (std::uint64_t next = 1; next <= all.size(); next += k_round) {
    for (std::uint64_t i = next; i < next + k_round; i += 500) {
      const auto from = all.begin() + static_cast<long>(i - 1);
      REQUIRE(s->append_log(k_log, i, std::vector<std::string>(from, from + 500)).ok());
    }
    REQUIRE(s->sync_wal().ok());
    written = std::max(written, s->backend().disk_usage().value());
    REQUIRE(s->truncate_log_before(k_log, next + k_round - 100).ok());
  }
  REQUIRE(written > 3'000'000);
  REQUIRE(s->wait_for_compaction().ok());
  const std::uint64_t after = s->backend().disk_usage().value();
  CHECK_MESSAGE(after < written / 4, "disk bytes " << after << " after the last purge, at most "
                                                   << written << " before one");
  CHECK(s->read_log(k_log, all.size() - 99, all.size() + 1).value() ==
        std::vector<std::string>(all.end() - 100, all.end()));
}

TEST_CASE_TEMPLATE("log bytes appended through group commit count toward the compaction of purged "
                   "ranges",
                   B, SESHAT_ALL_BACKENDS) {
  if constexpr (std::is_same_v<B, memory_backend>) return;  // no disk
  scratch_dir dir;
  open_options o;
  o.compact_deleted_logs_after_mb = 1;  // each round below appends 3 MB
  auto s = open_store<B>(dir.store(), o);
  constexpr std::uint64_t k_round = 3000;
  const auto all = random_entries(3 * k_round, 1024, 4);
  auto as_is = [](const std::string& entry, std::uint64_t, std::string_view& value) {
    value = entry;
    return status{};
  };
  std::atomic<int> failed{0};
  std::uint64_t written = 0;
  for (std::uint64_t next = 1; next <= all.size(); next += k_round) {
    for (std::uint64_t i = next; i < next + k_round; i += 500) {
      const std::vector<std::string> batch(all.begin() + static_cast<long>(i - 1),
                                           all.begin() + static_cast<long>(i + 499));
      std::function<void(status)> done = [&](status st) { failed += st.ok() ? 0 : 1; };
      REQUIRE(s->append_log_async(k_log, i, batch, as_is, done).ok());
    }
    REQUIRE(s->sync_wal().ok());
    written = std::max(written, s->backend().disk_usage().value());
    REQUIRE(s->truncate_log_before(k_log, next + k_round - 100).ok());
  }
  REQUIRE(s->wait_for_compaction().ok());
  CHECK(failed == 0);
  REQUIRE(written > 3'000'000);
  const std::uint64_t after = s->backend().disk_usage().value();
  CHECK_MESSAGE(after < written / 4, "disk bytes " << after << " after the last purge, at most "
                                                   << written << " before one");
}

TEST_CASE_TEMPLATE("a store closed and reopened while its purged ranges are compacted loses nothing",
                   B, SESHAT_ALL_BACKENDS) {
  scratch_dir dir;
  const auto all = random_entries(6000, 1024, 2);
  std::uint64_t next = 1, first = 1;
  for (int round = 0; round < 3; ++round) {
    auto s = open_store<B>(dir.store(), compact_every_deletion());
    for (int batch = 0; batch < 4; ++batch, next += 500)
      REQUIRE(s->append_log(k_log, next,
                            std::vector<std::string>(all.begin() + static_cast<long>(next - 1),
                                                     all.begin() + static_cast<long>(next + 499)))
                  .ok());
    first = next - 300;
    REQUIRE(s->truncate_log_before(k_log, first).ok());  // schedules a compaction
    CHECK(s->close().ok());                              // while it runs, or before it starts
    s = open_store<B>(dir.store(), compact_every_deletion());
    CHECK(s->first_log_index(k_log).value() == first);
    CHECK(s->last_log_index(k_log).value() == next - 1);
    CHECK(s->read_log(k_log, first, next).value() ==
          std::vector<std::string>(all.begin() + static_cast<long>(first - 1),
                                   all.begin() + static_cast<long>(next - 1)));
    CHECK(s->wait_for_compaction().ok());
  }
}

TEST_CASE_TEMPLATE("a clean close past 4 MiB of write-ahead log leaves the next open a short log",
                   B, SESHAT_ALL_BACKENDS) {
  if constexpr (std::is_same_v<B, memory_backend>) return;  // no write-ahead log
  scratch_dir dir;
  const auto all = random_entries(6000, 1024, 3);  // 6 MB, in the memtable
  {
    auto s = open_store<B>(dir.store());
    REQUIRE(s->append_log(k_log, 1, all).ok());
    REQUIRE(s->sync_wal().ok());
    REQUIRE(log_file_bytes(dir.store()) > std::uint64_t{4} << 20);
    REQUIRE(s->close().ok());
  }
  CHECK(log_file_bytes(dir.store()) < std::uint64_t{1} << 20);
  auto s = open_store<B>(dir.store());
  CHECK(s->read_log(k_log, 1, 6001).value() == all);
}

TEST_CASE("the log compactor runs off the caller's thread, merges ranges and stops after the one "
          "it runs") {
  std::mutex m;
  std::condition_variable cv;
  bool release = false;
  std::vector<std::pair<std::string, std::string>> compacted;
  std::thread::id ran_on;
  detail::log_compactor c(
      [&](column_family, std::string_view b, std::string_view e) {
        std::unique_lock lock(m);
        compacted.emplace_back(b, e);
        ran_on = std::this_thread::get_id();
        cv.notify_all();
        cv.wait(lock, [&] { return release; });
        return status{};
      },
      100, "test-store");
  c.written(k_log, 50);
  c.deleted(k_log, "a", "c");  // below 100 bytes: recorded, not scheduled
  c.written(k_log, 60);
  c.deleted(k_log, "c", "f");  // schedules ["a", "f")
  {
    std::unique_lock lock(m);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return !compacted.empty(); }));
    CHECK(compacted.front() == std::pair<std::string, std::string>("a", "f"));
    CHECK(ran_on != std::this_thread::get_id());
  }
  c.written(k_log, 200);
  c.deleted(k_log, "f", "g");  // scheduled while the first runs
  // stop() waits for the compaction running, and drops the scheduled one.
  auto stopped = std::async(std::launch::async, [&] { c.stop(); });
  CHECK(stopped.wait_for(std::chrono::milliseconds(100)) == std::future_status::timeout);
  {
    std::lock_guard lock(m);
    release = true;
    cv.notify_all();
  }
  stopped.get();
  std::lock_guard lock(m);
  CHECK(compacted.size() == 1);
  c.deleted(k_log, "g", "h");  // after stop: nothing
  CHECK(c.wait().ok());
}

TEST_CASE("a failed background compaction is latched, named, and stops later ones") {
  std::atomic<int> calls{0};
  detail::log_compactor c(
      [&](column_family, std::string_view, std::string_view) {
        ++calls;
        return status::io_error("disk full");
      },
      0, "/some/store");
  c.deleted(k_log, "a", "b");
  const status s = c.wait();
  CHECK(s.is(errc::io_error));
  for (const char* part : {"disk full", "system_raft_log", "/some/store", "background compaction"})
    CHECK_MESSAGE(s.message().find(part) != std::string::npos, part << " in " << s.to_string());
  c.deleted(k_log, "b", "c");
  CHECK(c.wait().is(errc::io_error));
  CHECK(calls == 1);
}

TEST_CASE_TEMPLATE("a raw batch into a log family makes storage read the log's bounds again", B,
                   SESHAT_ALL_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  const log_address group{column_family::data_raft_log, 4};
  const group_keys<decimal_key_format> keys(group);
  REQUIRE(s->append_log(group, 1, entries(1, 2)).ok());
  auto b = s->new_batch();
  b.put(column_family::data_raft_log, keys.log(3), "entry-3");
  REQUIRE(s->write(b).ok());
  CHECK(s->last_log_index(group).value() == 3u);
  CHECK(s->append_log(group, 4, "entry-4").ok());
}

TEST_CASE_TEMPLATE("a raw batch into a log family is refused whole on a store whose logs are in "
                   "its log engine, and the log is unchanged",
                   B, SESHAT_SEGMENTED_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  const log_address group{column_family::data_raft_log, 4};
  const group_keys<decimal_key_format> keys(group);
  REQUIRE(s->append_log(group, 1, entries(1, 2)).ok());
  auto b = s->new_batch();
  b.put(column_family::data_kv, "k", "v");
  b.put(column_family::data_raft_log, keys.log(3), "entry-3");
  status refused = s->write(b);
  CHECK(refused.is(errc::invalid_argument));
  CHECK(refused.message().find("data_raft_log") != std::string::npos);
  CHECK(s->get(column_family::data_kv, "k").status().is(errc::not_found));
  CHECK(s->last_log_index(group).value() == 2u);
  CHECK(s->append_log(group, 3, "entry-3").ok());
}

// What close() does to a live iterator: nothing until it moves. Its views
// stay readable; its next move goes on (memory and LevelDB keep their
// snapshot) or fails as closed (RocksDB, which then frees what the iterator
// held). An on-disk store stays locked while an iterator holds it.
TEST_CASE_TEMPLATE_DEFINE(
    "an iterator's key() and value() stay readable across close() until it moves, and "
    "the store reopens once the iterator has let it go",
    B, iterator_across_close) {
  scratch_dir dir;
  // The key-value engine the iterator comes from, and where it keeps its store.
  constexpr std::string_view kv_name = [] {
    if constexpr (log_backend<B>) return B::kv_backend::k_name;
    else return B::k_name;
  }();
  const std::filesystem::path kv_dir = log_backend<B> ? dir.store() / "kv" : dir.store();
  auto s = open_store<B>(dir.store());
  REQUIRE(s->put(column_family::data_kv, "k1", "v1").ok());
  REQUIRE(s->put(column_family::data_kv, "k2", "v2").ok());
  auto it = s->new_iterator(column_family::data_kv);
  it->seek_to_first();
  REQUIRE(it->valid());
  const std::string_view key = it->key(), value = it->value();

  REQUIRE(s->close().ok());
  CHECK(key == "k1");
  CHECK(value == "v1");
  CHECK(it->valid());
  CHECK(it->key() == "k1");
  CHECK(it->value() == "v1");
  if constexpr (kv_name != "memory") {
    auto locked = storage<B>::open(dir.store());
    CHECK(locked.status().is(errc::io_error));
    CHECK(locked.status().message().find("is already open in this process") != std::string::npos);
  }

  it->next();
  if constexpr (kv_name == "rocksdb") {
    CHECK_FALSE(it->valid());
    CHECK(it->status().is(errc::backend_error));
    CHECK(it->status().message().find(kv_dir.string() + ": the store was closed") !=
          std::string::npos);
    // The move freed the last RocksDB iterator: the database is closed.
    CHECK(storage<B>::open(dir.store()).ok());
  } else {
    REQUIRE(it->valid());
    CHECK(it->key() == "k2");
    CHECK(it->value() == "v2");
  }

  it.reset();
  s.reset();
  s = open_store<B>(dir.store());
  CHECK(dump(*s) == std::map<std::string, std::string>{{"data_kv/k1", "v1"}, {"data_kv/k2", "v2"}});
}

TEST_CASE_TEMPLATE_INVOKE(iterator_across_close, SESHAT_ALL_BACKENDS, SESHAT_SEGMENTED_BACKENDS);

TEST_SUITE("concurrency") {

TEST_CASE_TEMPLATE_DEFINE("concurrent readers and writers see no cross-talk between families",
                          B, storage_concurrency) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  constexpr int k_writes = 300;
  std::atomic<bool> done{false};
  std::atomic<int> wrong{0};
  std::vector<std::thread> writers;
  // A third key-value family: a log family where it takes key-value writes.
  const column_family third =
      log_backend<B> ? column_family::data_raft_state : column_family::data_raft_log;
  for (column_family cf : {column_family::data_kv, column_family::system_data, third}) {
    writers.emplace_back([&, cf] {
      for (int i = 0; i < k_writes; ++i) {
        const std::string key = "k" + std::to_string(i);
        if (!s->put(cf, key, std::string(name_of(cf)) + "/" + key).ok()) ++wrong;
      }
    });
  }
  std::thread reader([&] {
    while (!done.load()) {
      for (column_family cf : {column_family::data_kv, column_family::system_data}) {
        auto it = s->new_iterator(cf);
        for (it->seek_to_first(); it->valid(); it->next())
          if (it->value() != std::string(name_of(cf)) + "/" + std::string(it->key())) ++wrong;
      }
    }
  });
  for (auto& w : writers) w.join();
  done = true;
  reader.join();
  CHECK(wrong.load() == 0);
  auto m = s->metrics().value();
  CHECK(m.keys[index_of(column_family::data_kv)] == k_writes);
  CHECK(m.keys[index_of(column_family::system_data)] == k_writes);
  CHECK(m.keys[index_of(column_family::system_raft_log)] == 0);
}

TEST_CASE_TEMPLATE_INVOKE(storage_concurrency, SESHAT_ALL_BACKENDS, SESHAT_SEGMENTED_BACKENDS);

}  // TEST_SUITE("concurrency")

// The Backend concept: new_iterator never returns null (seshat/backend.hpp).
TEST_CASE_TEMPLATE_DEFINE(
    "new_iterator never returns null: on an unknown family or a closed store the iterator "
    "says why",
    B, iterator_never_null) {
  scratch_dir dir;
  auto b = std::move(B::open(dir.store(), open_options{}).value());
  const auto unknown = static_cast<column_family>(k_column_family_count);
  auto odd = b->new_iterator(unknown);
  REQUIRE(odd != nullptr);
  odd->seek_to_first();
  CHECK_FALSE(odd->valid());
  CHECK(odd->status().is(errc::column_family_not_found));
  auto batch = b->new_batch();
  batch.put(unknown, "k", "v");
  CHECK(b->write(batch, {}).is(errc::column_family_not_found));

  REQUIRE(b->close().ok());
  auto closed = b->new_iterator(column_family::data_kv);
  REQUIRE(closed != nullptr);
  closed->seek_to_first();
  CHECK_FALSE(closed->valid());
  CHECK(closed->status().is(errc::backend_error));
  CHECK(closed->status().message().find("closed") != std::string::npos);
}

TEST_CASE_TEMPLATE_INVOKE(iterator_never_null, SESHAT_ALL_BACKENDS, SESHAT_SEGMENTED_BACKENDS);

// A batch holds no reference to a store (detail/op_batch.hpp).
TEST_CASE_TEMPLATE_DEFINE("a batch made before the store is reopened is written after it, whole",
                          B, batch_across_reopen) {
  scratch_dir dir;
  auto b = std::move(B::open(dir.store(), open_options{}).value());
  auto batch = b->new_batch();
  batch.put(column_family::data_kv, "a", "1");
  batch.put(column_family::data_kv, "b", std::string("2\0two", 5));
  batch.del_range(column_family::data_kv, "z", "c");  // reversed: nothing
  batch.del(column_family::data_kv, "a");
  batch.put(column_family::system_data, "", "");
  REQUIRE(batch.size() == 5);
  b.reset();
  b = std::move(B::open(dir.store(), open_options{}).value());
  REQUIRE(b->write(batch, {}).ok());
  CHECK(batch.size() == 5);  // left as it was
  std::string v;
  CHECK(b->get(column_family::data_kv, "a", &v).is(errc::not_found));
  REQUIRE(b->get(column_family::data_kv, "b", &v).ok());
  CHECK(v == std::string("2\0two", 5));
  REQUIRE(b->get(column_family::system_data, "", &v).ok());
  CHECK(v.empty());
  batch.clear();
  CHECK(batch.empty());
  CHECK(b->write(batch, {}).ok());
}

TEST_CASE_TEMPLATE_INVOKE(batch_across_reopen, SESHAT_ALL_BACKENDS, SESHAT_SEGMENTED_BACKENDS);

namespace {

result<int> half(int n) {
  if (n % 2 != 0) return status::invalid_argument(std::to_string(n) + " is odd");
  return n / 2;
}

result<int> quarter(int n) {
  SESHAT_ASSIGN_OR_RETURN(const int h, half(n));
  int q = 0;
  SESHAT_ASSIGN_OR_RETURN(q, half(h));
  return q;
}

}  // namespace

TEST_CASE("SESHAT_ASSIGN_OR_RETURN assigns a result's value, or returns its status") {
  CHECK(quarter(12).value() == 3);
  CHECK(quarter(6).status().is(errc::invalid_argument));
  CHECK(quarter(6).status().message() == "3 is odd");
  CHECK(quarter(7).status().message() == "7 is odd");
}

TEST_SUITE_END();  // "storage contract"
