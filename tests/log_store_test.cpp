// The log_store contract, written once and run for every backend with each
// serializer, shard kind and key format.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "log_entries.hpp"
#include "seshat/log_store.hpp"
#include "support.hpp"

TEST_SUITE_BEGIN("log store");

using namespace seshat;
using seshat::test::dump;
using seshat::test::fixed_entry;
using seshat::test::make_entries;
using seshat::test::make_entry;
using seshat::test::open_store;
using seshat::test::scratch_dir;
using seshat::test::text_entry;
using seshat::test::text_serializer;

namespace {

// One combination of policies under test.
template <class Backend, class Entry, class Serializer, class Shard, class Keys>
struct config {
  using backend = Backend;
  using entry = Entry;
  using log = log_store<Entry, Serializer, Backend, Shard, Keys>;
  using keys = Keys;
  static Shard shard(shard_id data_id = 42) {
    if constexpr (Shard::is_system) return Shard{};
    else return Shard{data_id};
  }
};

template <class B>
using boost_system = config<B, text_entry, boost_serializer, system_shard, binary_key_format>;
template <class B>
using boost_data_decimal = config<B, text_entry, boost_serializer, data_shard, decimal_key_format>;
template <class B>
using memcpy_data = config<B, fixed_entry, memcpy_serializer, data_shard, binary_key_format>;
template <class B>
using custom_system_decimal =
    config<B, text_entry, text_serializer, system_shard, decimal_key_format>;

template <class C>
std::unique_ptr<typename C::log> open_log(storage<typename C::backend>& s, shard_id id = 42,
                                          log_store_options options = {}) {
  auto opened = C::log::open(s, C::shard(id), options);
  if (!opened.ok()) throw std::runtime_error(opened.status().to_string());
  return std::move(*opened);
}

// Waits for a number of callbacks.
class countdown {
 public:
  explicit countdown(int n) : left_(n) {}
  void done(const status& s) {
    std::lock_guard lock(m_);
    if (!s.ok()) ++failed_;
    --left_;
    cv_.notify_all();
  }
  bool wait() {
    std::unique_lock lock(m_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return left_ <= 0; });
  }
  int left() {
    std::lock_guard lock(m_);
    return left_;
  }
  int failed() {
    std::lock_guard lock(m_);
    return failed_;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int left_;
  int failed_ = 0;
};

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("log store contract", C, log_store_contract) {
  using B = typename C::backend;
  using E = typename C::entry;
  scratch_dir dir;
  auto s = open_store<B>(dir.store());

  SUBCASE("a new log is empty and appends continue it") {
    auto log = open_log<C>(*s);
    CHECK(log->get_log_state() == log_state{});
    REQUIRE(log->append(make_entries<E>(1, 1, 3)).ok());
    REQUIRE(log->append(make_entries<E>(2, 4, 2)).ok());
    CHECK(log->get_log_state() == log_state{std::nullopt, log_id{2, 5}});
    CHECK(log->entries(1, 6).value() ==
          [] { auto v = make_entries<E>(1, 1, 3); for (auto& e : make_entries<E>(2, 4, 2)) v.push_back(e); return v; }());
    CHECK(log->entry_at(4).value() == make_entry<E>(2, 4));
    CHECK(log->term_at(3).value() == 1u);
    CHECK(log->term_at(5).value() == 2u);
    CHECK(log->append(std::vector<E>{}).ok());
  }

  SUBCASE("indices end at k_max_log_index (2^64 - 2): past it is refused, nothing wraps") {
    constexpr std::uint64_t top = k_max_log_index;
    auto log = open_log<C>(*s);
    REQUIRE(log->reset_to(log_id{1, top - 1}).ok());
    // {top, top + 1, 0}: once accepted, as the index wrapped to 0.
    const std::vector<E> wrapping{make_entry<E>(1, top), make_entry<E>(1, top + 1), make_entry<E>(1, 0)};
    const status wrapped = log->append(wrapping);
    CHECK(wrapped.is(errc::invalid_log_index));
    CHECK_MESSAGE(wrapped.message().find("index 18446744073709551615 is past the largest log index "
                                         "18446744073709551614") != std::string::npos,
                  wrapped.to_string());
    CHECK(log->get_log_state() == log_state{log_id{1, top - 1}, log_id{1, top - 1}});
    REQUIRE(log->append(make_entries<E>(1, top, 1)).ok());
    CHECK(log->entries(top, top + 1).value() == make_entries<E>(1, top, 1));
    CHECK(log->entry_at(top).value() == make_entry<E>(1, top));
    CHECK(log->term_at(top).value() == 1u);
    CHECK(log->append(std::vector<E>{make_entry<E>(1, top + 1)}).is(errc::invalid_log_index));
    CHECK(log->entry_at(top + 1).status().is(errc::unavailable));
    CHECK(log->term_at(top + 1).status().is(errc::unavailable));
    CHECK(log->reset_to(log_id{2, top + 1}).is(errc::invalid_log_index));
    REQUIRE(log->purge(top).ok());
    CHECK(log->append(std::vector<E>{make_entry<E>(1, top + 1)}).is(errc::invalid_log_index));
    log.reset();
    log = open_log<C>(*s);
    CHECK(log->get_log_state() == log_state{log_id{1, top}, log_id{1, top}});
  }

  SUBCASE("a gap, an overlap or a backwards term is refused with expected and got") {
    auto log = open_log<C>(*s);
    REQUIRE(log->append(make_entries<E>(3, 1, 4)).ok());
    const auto before = log->entries(1, 5).value();

    status gap = log->append(make_entries<E>(3, 6, 1));
    CHECK(gap.is(errc::invalid_log_index));
    CHECK(gap.message().find("expected index 5, got 6") != std::string::npos);
    status overlap = log->append(make_entries<E>(3, 4, 2));
    CHECK(overlap.is(errc::invalid_log_index));
    CHECK(overlap.message().find("truncate first") != std::string::npos);
    status backwards = log->append(make_entries<E>(2, 5, 1));
    CHECK(backwards.is(errc::invalid_log_index));
    CHECK(backwards.message().find("expected at least 3, got 2") != std::string::npos);
    // A bad entry in the middle of a batch: none of the batch is written.
    auto batch = make_entries<E>(3, 5, 3);
    batch[1].index = 9;
    CHECK(log->append(batch).is(errc::invalid_log_index));

    CHECK(log->get_log_state().last == log_id{3, 4});
    CHECK(log->entries(1, 5).value() == before);
    CHECK(log->entries(5, 6).status().is(errc::unavailable));
  }

  SUBCASE("entries [lo, hi) are whole, or the error says compacted or unavailable") {
    auto log = open_log<C>(*s);
    REQUIRE(log->append(make_entries<E>(1, 1, 10)).ok());
    REQUIRE(log->purge(3).ok());
    CHECK(log->entries(4, 11).value() == make_entries<E>(1, 4, 7));
    CHECK(log->entries(6, 6).value().empty());
    auto purged = log->entries(2, 5);
    CHECK(purged.status().is(errc::compacted));
    CHECK(purged.status().message().find("up to 3 are purged") != std::string::npos);
    auto future = log->entries(9, 13);
    CHECK(future.status().is(errc::unavailable));
    CHECK(future.status().message().find("from 11 on") != std::string::npos);
    CHECK(log->entries(5, 4).status().is(errc::invalid_argument));
    CHECK(log->entry_at(11).status().is(errc::unavailable));
    CHECK(log->term_at(2).status().is(errc::compacted));
  }

  SUBCASE("truncate(since) deletes [since, last] and the log continues from since") {
    auto log = open_log<C>(*s);
    REQUIRE(log->append(make_entries<E>(1, 1, 6)).ok());
    REQUIRE(log->truncate(4).ok());
    CHECK(log->get_log_state().last == log_id{1, 3});
    CHECK(log->entries(4, 5).status().is(errc::unavailable));
    REQUIRE(log->append(make_entries<E>(2, 4, 2)).ok());
    CHECK(log->entries(3, 6).value() ==
          std::vector<E>{make_entry<E>(1, 3), make_entry<E>(2, 4), make_entry<E>(2, 5)});
    CHECK(log->truncate(10).ok());  // past the end: nothing to do
    CHECK(log->get_log_state().last == log_id{2, 5});
    REQUIRE(log->truncate(1).ok());  // everything
    CHECK(log->get_log_state() == log_state{});
    REQUIRE(log->append(make_entries<E>(3, 1, 1)).ok());
  }

  SUBCASE("purge(upto) deletes [first, upto]; the purged id answers term_at and survives reopen") {
    {
      auto log = open_log<C>(*s);
      REQUIRE(log->append(make_entries<E>(1, 1, 5)).ok());
      REQUIRE(log->append(make_entries<E>(2, 6, 5)).ok());
      REQUIRE(log->purge(7).ok());
      CHECK(log->purge(5).ok());  // already purged: nothing to do
      CHECK(log->purge(11).is(errc::unavailable));
      CHECK(log->truncate(7).is(errc::compacted));
      CHECK(log->get_log_state() == log_state{log_id{2, 7}, log_id{2, 10}});
      CHECK(log->term_at(7).value() == 2u);
    }
    REQUIRE(s->close().ok());
    s = open_store<B>(dir.store());
    auto log = open_log<C>(*s);
    CHECK(log->get_log_state() == log_state{log_id{2, 7}, log_id{2, 10}});
    CHECK(log->entries(8, 11).value() == make_entries<E>(2, 8, 3));
    REQUIRE(log->purge(10).ok());  // everything
    CHECK(log->get_log_state() == log_state{log_id{2, 10}, log_id{2, 10}});
    CHECK(log->append(make_entries<E>(2, 12, 1)).is(errc::invalid_log_index));
    REQUIRE(log->append(make_entries<E>(3, 11, 1)).ok());
    CHECK(log->entries(11, 12).value() == make_entries<E>(3, 11, 1));
  }

  SUBCASE("vote and committed survive reopen and never go backwards") {
    {
      auto log = open_log<C>(*s);
      CHECK_FALSE(log->read_vote().value().has_value());
      CHECK_FALSE(log->read_committed().value().has_value());
      REQUIRE(log->save_vote(vote{5, 2, false}).ok());
      REQUIRE(log->save_vote(vote{5, 2, true}).ok());
      status back = log->save_vote(vote{4, 1, false});
      CHECK(back.is(errc::invalid_argument));
      CHECK(back.message().find("saved (term 5, voted for 2, committed)") != std::string::npos);
      REQUIRE(log->save_committed(log_id{5, 10}).ok());
      CHECK(log->save_committed(log_id{5, 9}).is(errc::invalid_argument));
    }
    REQUIRE(s->close().ok());
    s = open_store<B>(dir.store());
    auto log = open_log<C>(*s);
    CHECK(log->read_vote().value() == vote{5, 2, true});
    CHECK(log->read_committed().value() == log_id{5, 10});
  }

  SUBCASE("append_async makes entries readable at once and calls back once each, when durable") {
    auto log = open_log<C>(*s);
    constexpr int k_calls = 50;
    countdown pending(k_calls);
    for (int i = 0; i < k_calls; ++i) {
      auto e = make_entries<E>(1, static_cast<std::uint64_t>(i) + 1, 1);
      REQUIRE(log->append_async(e, [&](status st) { pending.done(st); }).ok());
      CHECK(log->entry_at(static_cast<std::uint64_t>(i) + 1).ok());
    }
    REQUIRE(pending.wait());
    CHECK(pending.failed() == 0);
    CHECK(s->group_syncs() >= 1);
    CHECK(s->group_syncs() <= static_cast<std::uint64_t>(k_calls));
    // A refused append calls back at once with the same error.
    status seen;
    status refused = log->append_async(make_entries<E>(1, 99, 1), [&](status st) { seen = st; });
    CHECK(refused.is(errc::invalid_log_index));
    CHECK(seen.is(errc::invalid_log_index));
  }
}

TEST_CASE_TEMPLATE_DEFINE("data shards are isolated", C, data_shards_isolated) {
  using B = typename C::backend;
  using E = typename C::entry;
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  auto a = open_log<C>(*s, 42);
  auto b = open_log<C>(*s, 43);
  auto c = open_log<C>(*s, 1u << 20);

  REQUIRE(a->append(make_entries<E>(1, 1, 10)).ok());
  REQUIRE(b->append(make_entries<E>(7, 1, 3)).ok());
  REQUIRE(a->save_vote(vote{1, 42, false}).ok());
  REQUIRE(a->save_committed(log_id{1, 5}).ok());
  REQUIRE(a->purge(4).ok());
  REQUIRE(a->truncate(9).ok());

  CHECK(b->get_log_state() == log_state{std::nullopt, log_id{7, 3}});
  CHECK(b->entries(1, 4).value() == make_entries<E>(7, 1, 3));
  CHECK_FALSE(b->read_vote().value().has_value());
  CHECK_FALSE(b->read_committed().value().has_value());
  CHECK(c->get_log_state() == log_state{});

  // Reopened, each group finds only its own.
  a.reset();
  b.reset();
  c.reset();
  auto a2 = open_log<C>(*s, 42);
  auto b2 = open_log<C>(*s, 43);
  CHECK(a2->get_log_state() == log_state{log_id{1, 4}, log_id{1, 8}});
  CHECK(b2->get_log_state() == log_state{std::nullopt, log_id{7, 3}});
  CHECK(a2->read_vote().value() == vote{1, 42, false});
  CHECK_FALSE(b2->read_vote().value().has_value());

  auto zero = C::log::open(*s, data_shard{0});
  CHECK(zero.status().is(errc::invalid_argument));
}

#define SESHAT_LOG_CONFIGS(B) \
  boost_system<B>, boost_data_decimal<B>, memcpy_data<B>, custom_system_decimal<B>

// Each backend, and each with its logs in the log engine (segmented<B>).
TEST_CASE_TEMPLATE_INVOKE(log_store_contract, SESHAT_LOG_CONFIGS(memory_backend),
                          SESHAT_LOG_CONFIGS(segmented<memory_backend>)
#if SESHAT_HAVE_ROCKSDB
                          , SESHAT_LOG_CONFIGS(rocksdb_backend),
                          SESHAT_LOG_CONFIGS(segmented<rocksdb_backend>)
#endif
#if SESHAT_HAVE_LEVELDB
                          , SESHAT_LOG_CONFIGS(leveldb_backend),
                          SESHAT_LOG_CONFIGS(segmented<leveldb_backend>)
#endif
);

TEST_CASE_TEMPLATE_INVOKE(data_shards_isolated, boost_data_decimal<memory_backend>,
                          memcpy_data<memory_backend>, boost_data_decimal<segmented<memory_backend>>
#if SESHAT_HAVE_ROCKSDB
                          , boost_data_decimal<rocksdb_backend>, memcpy_data<rocksdb_backend>,
                          boost_data_decimal<segmented<rocksdb_backend>>
#endif
#if SESHAT_HAVE_LEVELDB
                          , boost_data_decimal<leveldb_backend>, memcpy_data<leveldb_backend>,
                          boost_data_decimal<segmented<leveldb_backend>>
#endif
);

// log_store is built on storage's log layer: its group's log is storage's
// log at (Shard::log_family, group id) under its key format.
TEST_CASE_TEMPLATE_DEFINE("log_store's log is storage's log of its family and group", C,
                          one_log_layer) {
  using B = typename C::backend;
  using E = typename C::entry;
  using K = typename C::keys;
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  auto log = open_log<C>(*s, 42);
  const log_address at{C::log::k_log_family, log->shard()};
  REQUIRE(log->append(make_entries<E>(1, 1, 5)).ok());
  CHECK(s->template first_log_index<K>(at).value() == 1u);
  CHECK(s->template last_log_index<K>(at).value() == 5u);
  // storage's gap check guards the group's log.
  const status gap = s->template append_log<K>(at, 7, "x");
  CHECK(gap.is(errc::invalid_log_index));
  CHECK(gap.message().find("expected 6") != std::string::npos);
  // storage's range read gives the stored envelopes, in order.
  auto stored = s->template read_log<K>(at, 2, 4).value();
  REQUIRE(stored.size() == 2);
  CHECK(envelope::open(stored[0], at.cf, "entry 2").ok());
  REQUIRE(log->purge(2).ok());
  CHECK(s->template first_log_index<K>(at).value() == 3u);
  REQUIRE(log->truncate(5).ok());
  CHECK(s->template last_log_index<K>(at).value() == 4u);
  // log_store keeps the floor itself (last purged + 1): no floor key.
  const std::string floor_key = std::string(name_of(at.cf)) + "/" + group_keys<K>(at).floor();
  CHECK(dump(*s).count(floor_key) == 0);
  REQUIRE(log->reset_to(log_id{1, 9}).ok());
  CHECK_FALSE(s->template last_log_index<K>(at).value().has_value());
  CHECK(s->template append_log<K>(at, 9, "x").is(errc::invalid_log_index));
  REQUIRE(log->append(make_entries<E>(2, 10, 1)).ok());
  CHECK(s->template first_log_index<K>(at).value() == 10u);
  CHECK(dump(*s).count(floor_key) == 0);
}

TEST_CASE_TEMPLATE_INVOKE(one_log_layer, boost_system<memory_backend>,
                          boost_data_decimal<memory_backend>, custom_system_decimal<memory_backend>
#if SESHAT_HAVE_ROCKSDB
                          , boost_system<rocksdb_backend>, boost_data_decimal<rocksdb_backend>
#endif
#if SESHAT_HAVE_LEVELDB
                          , boost_system<leveldb_backend>, boost_data_decimal<leveldb_backend>
#endif
);

TEST_CASE_TEMPLATE("log_store's keys on disk are the key format's, as before the one log layer", B,
                   SESHAT_ALL_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  {
    auto log = log_store<text_entry, boost_serializer, B, system_shard, decimal_key_format>::open(*s)
                   .value();
    REQUIRE(log->append(make_entries<text_entry>(1, 1, 3)).ok());
    REQUIRE(log->purge(1).ok());
  }
  {
    auto log = log_store<text_entry, boost_serializer, B, data_shard, binary_key_format>::open(
                   *s, data_shard{0x0102})
                   .value();
    REQUIRE(log->append(make_entries<text_entry>(1, 1, 2)).ok());
  }
  std::vector<std::string> keys;
  for (const auto& [key, value] : dump(*s))
    if (key.starts_with("system_raft_log/") || key.starts_with("data_raft_log/"))
      keys.push_back(detail::printable(key));
  CHECK(keys == std::vector<std::string>{
                    "data_raft_log/\\x00\\x00\\x00\\x00\\x00\\x00\\x01\\x02\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x01",
                    "data_raft_log/\\x00\\x00\\x00\\x00\\x00\\x00\\x01\\x02\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02",
                    "system_raft_log/log:00000000000000000002",
                    "system_raft_log/log:00000000000000000003"});
}

TEST_CASE_TEMPLATE("an entry that does not decode names the group, the index and the likely cause",
                   B, SESHAT_ALL_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  using written_as = log_store<text_entry, text_serializer, B, data_shard, decimal_key_format>;
  using read_as = log_store<text_entry, boost_serializer, B, data_shard, decimal_key_format>;
  {
    auto log = written_as::open(*s, data_shard{9}).value();
    REQUIRE(log->append(make_entries<text_entry>(1, 1, 3)).ok());
  }
  auto log = read_as::open(*s, data_shard{9}).value();
  const status read = log->entries(1, 4).status();
  CHECK(read.is(errc::corrupted_data));
  for (const char* part : {"data shard 9: entry 1 (", "does not decode with serializer boost",
                           "written with another entry type or serializer?"})
    CHECK_MESSAGE(read.message().find(part) != std::string::npos, part << " in " << read.to_string());
}

TEST_CASE("durable and acknowledged asynchronous appends survive a power loss; buffered ones may not") {
  using C = boost_system<memory_backend>;
  scratch_dir dir;
  auto s = open_store<memory_backend>(dir.store());
  {
    auto durable = open_log<C>(*s);
    REQUIRE(durable->append(make_entries<text_entry>(1, 1, 3)).ok());
  }
  {
    log_store_options buffered;
    buffered.sync = sync_policy::buffered;
    auto log = open_log<C>(*s, 0, buffered);
    REQUIRE(log->append(make_entries<text_entry>(1, 4, 2)).ok());
  }
  s->backend().drop_unsynced();
  {
    auto log = open_log<C>(*s);
    CHECK(log->get_log_state().last == log_id{1, 3});
    countdown acked(1);
    REQUIRE(log->append_async(make_entries<text_entry>(2, 4, 2), [&](status st) { acked.done(st); }).ok());
    REQUIRE(acked.wait());
    CHECK(acked.failed() == 0);
  }
  s->backend().drop_unsynced();
  auto log = open_log<C>(*s);
  CHECK(log->get_log_state().last == log_id{2, 5});
  CHECK(log->entries(4, 6).value() == make_entries<text_entry>(2, 4, 2));
}

TEST_SUITE_END();  // "log store"
