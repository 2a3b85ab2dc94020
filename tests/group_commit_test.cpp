// Group commit in one write: append_async hands its entries to the store's
// group commit, which writes the pending appends of every group as one
// synced batch per round. These cases check the contract around it on a
// memory backend whose writes are counted and whose synced writes can be
// held at a gate: readable on return, called back only once durable, one
// backend write per round, the order of writes kept across truncate, purge,
// durable appends and hard-state saves, and a failed round stopping group
// commit.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "log_entries.hpp"
#include "seshat/log_store.hpp"
#include "support.hpp"

TEST_SUITE_BEGIN("group commit");

using namespace seshat;
using seshat::test::make_entries;
using seshat::test::scratch_dir;
using seshat::test::text_entry;

namespace {

// memory_backend, with its writes and syncs counted; while hold() is in
// force, every synced write and sync_wal waits at a gate until release().
class gated_backend {
 public:
  using batch = memory_backend::batch;
  using iterator = memory_backend::iterator;
  static constexpr std::string_view k_name = memory_backend::k_name;

  static result<std::unique_ptr<gated_backend>> open(const std::filesystem::path& dir,
                                                     const open_options& options) {
    auto inner = memory_backend::open(dir, options);
    if (!inner.ok()) return inner.status();
    return std::unique_ptr<gated_backend>(new gated_backend(std::move(*inner)));
  }
  static status install_checkpoint(const std::filesystem::path& from,
                                   const std::filesystem::path& to) {
    return memory_backend::install_checkpoint(from, to);
  }

  status get(column_family cf, std::string_view key, std::string* value) {
    return inner_->get(cf, key, value);
  }
  status put(column_family cf, std::string_view key, std::string_view value, write_options wo) {
    batch b = new_batch();
    b.put(cf, key, value);
    return write(b, wo);
  }
  status del(column_family cf, std::string_view key, write_options wo) {
    batch b = new_batch();
    b.del(cf, key);
    return write(b, wo);
  }
  batch new_batch() { return inner_->new_batch(); }
  status write(batch& b, write_options wo) {
    ++writes;
    if (wo.sync) {
      ++synced_writes;
      wait_at_gate();
    }
    return inner_->write(b, wo);
  }
  std::unique_ptr<iterator> new_iterator(column_family cf) { return inner_->new_iterator(cf); }
  status sync_wal() {
    ++syncs;
    wait_at_gate();
    return inner_->sync_wal();
  }
  status compact_range(column_family cf, std::string_view b, std::string_view e) {
    return inner_->compact_range(cf, b, e);
  }
  result<std::uint64_t> approximate_size(column_family cf, std::string_view b, std::string_view e) {
    return inner_->approximate_size(cf, b, e);
  }
  result<std::uint64_t> disk_usage() { return inner_->disk_usage(); }
  status close() { return inner_->close(); }
  status checkpoint(const std::filesystem::path& dir) { return inner_->checkpoint(dir); }

  memory_backend& inner() { return *inner_; }

  void hold() {
    std::lock_guard lock(m_);
    held_ = true;
  }
  void release() {
    std::lock_guard lock(m_);
    held_ = false;
    cv_.notify_all();
  }
  // Waits (up to 30 s) until a write or sync waits at the gate.
  bool wait_until_blocked() {
    std::unique_lock lock(m_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return waiting_ > 0; });
  }

  std::atomic<int> writes{0}, synced_writes{0}, syncs{0};

 private:
  explicit gated_backend(std::unique_ptr<memory_backend> inner) : inner_(std::move(inner)) {}
  void wait_at_gate() {
    std::unique_lock lock(m_);
    ++waiting_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return !held_; });
    --waiting_;
  }

  std::unique_ptr<memory_backend> inner_;
  std::mutex m_;
  std::condition_variable cv_;
  bool held_ = false;
  int waiting_ = 0;
};
static_assert(backend<gated_backend>);

using log_type = log_store<text_entry, boost_serializer, gated_backend, data_shard>;
using store_type = storage<gated_backend>;

std::unique_ptr<store_type> open_gated(const std::filesystem::path& dir) {
  auto opened = store_type::open(dir);
  if (!opened.ok()) throw std::runtime_error(opened.status().to_string());
  return std::move(*opened);
}

std::unique_ptr<log_type> open_group(store_type& s, shard_id id) {
  auto opened = log_type::open(s, data_shard{id});
  if (!opened.ok()) throw std::runtime_error(opened.status().to_string());
  return std::move(*opened);
}

// Counts callbacks and their failures; wait() gives up after 30 s.
class callbacks {
 public:
  std::function<void(status)> make() {
    return [this](status s) {
      std::lock_guard lock(m_);
      ++fired_;
      if (!s.ok()) {
        ++failed_;
        last_error_ = s;
      }
      cv_.notify_all();
    };
  }
  bool wait(int n) {
    std::unique_lock lock(m_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return fired_ >= n; });
  }
  int fired() {
    std::lock_guard lock(m_);
    return fired_;
  }
  int failed() {
    std::lock_guard lock(m_);
    return failed_;
  }
  status last_error() {
    std::lock_guard lock(m_);
    return last_error_;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int fired_ = 0, failed_ = 0;
  status last_error_;
};

// The log keys of `group` the backend holds (not what the log reads).
std::size_t stored_entries(store_type& s, shard_id group) {
  const group_keys<binary_key_format> keys(false, group);
  std::size_t n = 0;
  // The backend's own iterator: storage's would write what is pending first.
  auto it = s.backend().new_iterator(column_family::data_raft_log);
  for (it->seek(keys.log(0)); it->valid() && keys.in_log_range(it->key()); it->next()) ++n;
  return n;
}

TEST_CASE("a group-commit round writes the pending appends of every group in one backend write") {
  scratch_dir dir;
  auto s = open_gated(dir.store());
  constexpr int k_groups = 64;
  std::vector<std::unique_ptr<log_type>> logs;
  for (int g = 1; g <= k_groups; ++g) logs.push_back(open_group(*s, static_cast<shard_id>(g)));
  auto& backend = s->backend();
  const int writes_before = backend.writes.load();
  const std::uint64_t rounds_before = s->group_syncs();
  callbacks acked;
  constexpr int k_rounds = 5;
  for (int round = 1; round <= k_rounds; ++round) {
    for (auto& log : logs)
      REQUIRE(log->append_async(make_entries<text_entry>(1, static_cast<std::uint64_t>(round), 1),
                                acked.make())
                  .ok());
    REQUIRE(acked.wait(round * k_groups));
  }
  CHECK(acked.failed() == 0);
  const int writes = backend.writes.load() - writes_before;
  const auto rounds = static_cast<int>(s->group_syncs() - rounds_before);
  INFO(writes << " backend writes, " << backend.syncs.load() << " syncs for " << rounds
              << " rounds of " << k_groups << " appends");
  // One synced write per round, nothing else: no write per append, no
  // separate sync.
  CHECK(writes == rounds);
  CHECK(backend.synced_writes.load() == writes);
  CHECK(backend.syncs.load() == 0);
  CHECK(rounds < k_rounds * k_groups);
  for (auto& log : logs) CHECK(log->get_log_state().last == log_id{1, k_rounds});
}

TEST_CASE(
    "append_async's entries read back at once, before their round is written, and are "
    "called back only after it is durable") {
  scratch_dir dir;
  auto s = open_gated(dir.store());
  auto a = open_group(*s, 1);
  auto b = open_group(*s, 2);
  REQUIRE(a->append(make_entries<text_entry>(1, 1, 2)).ok());  // in the backend
  auto& backend = s->backend();
  backend.hold();
  callbacks acked;
  const auto a_new = make_entries<text_entry>(2, 3, 3);
  const auto b_new = make_entries<text_entry>(1, 1, 2);
  REQUIRE(a->append_async(a_new, acked.make()).ok());
  REQUIRE(b->append_async(b_new, acked.make()).ok());
  REQUIRE(backend.wait_until_blocked());  // the round waits at the gate

  CHECK(acked.fired() == 0);
  CHECK(stored_entries(*s, 1) == 2);  // the new ones are not in the backend yet
  CHECK(stored_entries(*s, 2) == 0);
  CHECK(a->get_log_state().last == log_id{2, 5});
  CHECK(b->get_log_state().last == log_id{1, 2});
  auto all = a->entries(1, 6);
  REQUIRE_MESSAGE(all.ok(), all.status().to_string());
  auto expected = make_entries<text_entry>(1, 1, 2);
  expected.insert(expected.end(), a_new.begin(), a_new.end());
  CHECK(*all == expected);
  CHECK(a->entries(4, 6).value() == std::vector<text_entry>(a_new.begin() + 1, a_new.end()));
  CHECK(a->entry_at(4).value() == a_new[1]);
  CHECK(a->term_at(3).value() == 2);
  CHECK(a->term_at(2).value() == 1);
  CHECK(b->entries(1, 3).value() == b_new);

  backend.release();
  REQUIRE(acked.wait(2));
  CHECK(acked.failed() == 0);
  CHECK(stored_entries(*s, 1) == 5);
  CHECK(stored_entries(*s, 2) == 2);
  // Acknowledged: a power loss keeps them.
  backend.inner().drop_unsynced();
  a.reset();
  b.reset();
  a = open_group(*s, 1);
  b = open_group(*s, 2);
  CHECK(a->entries(1, 6).value() == expected);
  CHECK(b->entries(1, 3).value() == b_new);
}

TEST_CASE(
    "truncate, purge, a durable append and a vote after pending append_async calls keep the "
    "order of the calls, through a power loss") {
  scratch_dir dir;
  auto s = open_gated(dir.store());
  auto log = open_group(*s, 7);
  auto other = open_group(*s, 8);
  callbacks acked;
  REQUIRE(log->append_async(make_entries<text_entry>(1, 1, 4), acked.make()).ok());
  REQUIRE(other->append_async(make_entries<text_entry>(1, 1, 2), acked.make()).ok());
  REQUIRE(log->truncate(3).ok());
  CHECK(log->get_log_state().last == log_id{1, 2});
  CHECK(log->entries(3, 4).status().is(errc::unavailable));
  REQUIRE(log->append_async(make_entries<text_entry>(2, 3, 3), acked.make()).ok());
  REQUIRE(log->purge(2).ok());
  CHECK(log->entries(3, 6).value() == make_entries<text_entry>(2, 3, 3));
  REQUIRE(other->append_async(make_entries<text_entry>(1, 3, 1), acked.make()).ok());
  // Durable: so is everything before it, the other group's pending append
  // too.
  REQUIRE(log->append(make_entries<text_entry>(2, 6, 1)).ok());
  REQUIRE(other->save_vote(vote{3, 1, false}).ok());
  s->backend().inner().drop_unsynced();  // the power goes, callbacks or not
  REQUIRE(acked.wait(4));
  log.reset();
  other.reset();
  log = open_group(*s, 7);
  other = open_group(*s, 8);
  CHECK(log->get_log_state() == log_state{log_id{1, 2}, log_id{2, 6}});
  auto expected = make_entries<text_entry>(2, 3, 3);
  expected.push_back(make_entries<text_entry>(2, 6, 1)[0]);
  CHECK(log->entries(3, 7).value() == expected);
  CHECK(other->get_log_state().last == log_id{1, 3});
  CHECK(other->entries(1, 4).value() == make_entries<text_entry>(1, 1, 3));
  CHECK(other->read_vote().value() == vote{3, 1, false});
}

TEST_CASE(
    "a failed group-commit write fails every callback it carried and stops group commit until "
    "the store is reopened") {
  scratch_dir dir;
  auto s = open_gated(dir.store());
  {
    auto a = open_group(*s, 1);
    auto b = open_group(*s, 2);
    REQUIRE(a->append(make_entries<text_entry>(1, 1, 1)).ok());
    s->backend().inner().inject_write_failure(0);
    callbacks acked;
    REQUIRE(a->append_async(make_entries<text_entry>(1, 2, 2), acked.make()).ok());
    REQUIRE(b->append_async(make_entries<text_entry>(1, 1, 1), acked.make()).ok());
    REQUIRE(acked.wait(2));
    CHECK(acked.failed() == 2);
    CHECK(acked.last_error().is(errc::io_error));
    // The lost entries would leave a hole: nothing is written after them.
    status refused;
    status s2 = a->append_async(make_entries<text_entry>(1, 4, 1), [&](status st) { refused = st; });
    CHECK(s2.is(errc::io_error));
    CHECK(refused.is(errc::io_error));
    CHECK(a->save_vote(vote{2, 1, false}).is(errc::io_error));
    CHECK(a->truncate(2).is(errc::io_error));
  }
  REQUIRE(s->close().ok());
  s = open_gated(dir.store());
  auto a = open_group(*s, 1);
  auto b = open_group(*s, 2);
  CHECK(a->get_log_state().last == log_id{1, 1});
  CHECK(b->get_log_state().last == std::nullopt);
  callbacks acked;
  REQUIRE(a->append_async(make_entries<text_entry>(1, 2, 1), acked.make()).ok());
  REQUIRE(acked.wait(1));
  CHECK(acked.failed() == 0);
}

TEST_CASE("sync_wal after append_async writes the pending appends in one synced write") {
  scratch_dir dir;
  auto s = open_gated(dir.store());
  auto a = open_group(*s, 1);
  auto b = open_group(*s, 2);
  auto& backend = s->backend();
  backend.hold();  // no round gets through before sync_wal
  callbacks acked;
  REQUIRE(a->append_async(make_entries<text_entry>(1, 1, 3), acked.make()).ok());
  REQUIRE(b->append_async(make_entries<text_entry>(1, 1, 2), acked.make()).ok());
  REQUIRE(backend.wait_until_blocked());  // the round's write, at the gate
  const int writes_before = backend.writes.load();
  std::thread syncer([&] { CHECK(s->sync_wal().ok()); });
  backend.release();
  syncer.join();
  REQUIRE(acked.wait(2));
  CHECK(acked.failed() == 0);
  // The round's synced write carried both appends; sync_wal found nothing
  // pending and only synced, or wrote nothing new.
  CHECK(backend.writes.load() - writes_before <= 1);
  CHECK(stored_entries(*s, 1) == 3);
  CHECK(stored_entries(*s, 2) == 2);
  backend.inner().drop_unsynced();
  CHECK(stored_entries(*s, 1) == 3);
}

TEST_CASE("a durable write after append_async writes the pending appends first, in order") {
  scratch_dir dir;
  auto s = open_gated(dir.store());
  auto a = open_group(*s, 1);
  auto b = open_group(*s, 2);
  callbacks acked;
  auto& backend = s->backend();
  backend.hold();
  REQUIRE(a->append_async(make_entries<text_entry>(1, 1, 3), acked.make()).ok());
  REQUIRE(backend.wait_until_blocked());  // round 1 holds a's entries at the gate
  REQUIRE(b->append_async(make_entries<text_entry>(1, 1, 2), acked.make()).ok());
  std::thread voter([&] { CHECK(b->save_vote(vote{2, 1, false}).ok()); });
  backend.release();
  voter.join();
  // The vote is durable, so is every append before it.
  backend.inner().drop_unsynced();
  CHECK(stored_entries(*s, 1) == 3);
  CHECK(stored_entries(*s, 2) == 2);
  REQUIRE(acked.wait(2));
  CHECK(acked.failed() == 0);
}

TEST_CASE(
    "append_async from many threads, with truncations, reads and durable writes between, reads "
    "back what each thread wrote and keeps it through a power loss") {
  scratch_dir dir;
  auto s = open_gated(dir.store());
  constexpr int k_threads = 4, k_groups_per_thread = 2, k_steps = 400;
  std::vector<std::unique_ptr<log_type>> logs;
  for (int g = 1; g <= k_threads * k_groups_per_thread; ++g)
    logs.push_back(open_group(*s, static_cast<shard_id>(g)));
  // models[g]: the entries of group g + 1, from index 1 (each group has one
  // writer, the thread that owns it).
  std::vector<std::vector<text_entry>> models(logs.size());
  callbacks acked;
  std::atomic<int> submitted{0};
  std::atomic<int> problems{0};
  std::vector<std::string> first_problem(k_threads);
  auto run = [&](int t) {
    std::mt19937_64 rng(static_cast<std::uint64_t>(t) + 11);
    auto note = [&](const std::string& what) {
      ++problems;
      if (first_problem[static_cast<std::size_t>(t)].empty())
        first_problem[static_cast<std::size_t>(t)] = what;
    };
    for (int step = 0; step < k_steps; ++step) {
      const std::size_t g =
          static_cast<std::size_t>(t * k_groups_per_thread) + rng() % k_groups_per_thread;
      log_type& log = *logs[g];
      std::vector<text_entry>& model = models[g];
      const std::uint64_t term = model.empty() ? 1 : model.back().term;
      const std::uint64_t r = rng() % 100;
      if (r < 60) {
        auto es = make_entries<text_entry>(term, model.size() + 1, 1 + rng() % 4);
        ++submitted;
        status st = log.append_async(es, acked.make());
        if (!st.ok()) note("append_async: " + st.to_string());
        model.insert(model.end(), es.begin(), es.end());
      } else if (r < 75 && model.size() > 3) {
        // Conflict resolution: the last few go, a new term continues.
        const std::uint64_t since = model.size() - rng() % 3;
        status st = log.truncate(since);
        if (!st.ok()) note("truncate: " + st.to_string());
        model.resize(since - 1);
        auto es = make_entries<text_entry>(term + 1, since, 2);
        ++submitted;
        st = log.append_async(es, acked.make());
        if (!st.ok()) note("append_async after truncate: " + st.to_string());
        model.insert(model.end(), es.begin(), es.end());
      } else if (r < 80) {
        auto es = make_entries<text_entry>(term, model.size() + 1, 1);
        status st = log.append(es);
        if (!st.ok()) note("append: " + st.to_string());
        model.insert(model.end(), es.begin(), es.end());
      } else if (!model.empty()) {
        const std::uint64_t lo = 1 + rng() % model.size();
        auto got = log.entries(lo, model.size() + 1);
        if (!got.ok()) {
          note("entries(" + std::to_string(lo) + "): " + got.status().to_string());
        } else if (*got != std::vector<text_entry>(model.begin() + static_cast<std::ptrdiff_t>(lo - 1),
                                                   model.end())) {
          note("entries(" + std::to_string(lo) + ", " + std::to_string(model.size() + 1) +
               ") differ from what was appended");
        }
        auto term_at = log.term_at(model.size());
        if (!term_at.ok() || *term_at != model.back().term) note("term_at differs");
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < k_threads; ++t) threads.emplace_back(run, t);
  for (auto& th : threads) th.join();
  for (const auto& p : first_problem) CHECK_MESSAGE(p.empty(), p);
  CHECK(problems.load() == 0);
  REQUIRE(acked.wait(submitted.load()));
  CHECK(acked.failed() == 0);
  // Every append is acknowledged: a power loss keeps them all.
  s->backend().inner().drop_unsynced();
  for (std::size_t g = 0; g < logs.size(); ++g) {
    CAPTURE(g);
    logs[g].reset();
    logs[g] = open_group(*s, static_cast<shard_id>(g + 1));
    if (models[g].empty()) continue;
    CHECK(logs[g]->get_log_state().last == log_id{models[g].back().term, models[g].size()});
    CHECK(logs[g]->entries(1, models[g].size() + 1).value() == models[g]);
  }
}

TEST_CASE(
    "a truncate past the end and a purge of nothing, after append_async, return only once the "
    "pending appends are written") {
  // A call that returns has every call before it in the write-ahead log
  // (the process-kill test relies on it), even one that writes nothing.
  scratch_dir dir;
  auto s = open_gated(dir.store());
  auto a = open_group(*s, 1);
  auto b = open_group(*s, 2);
  REQUIRE(b->append(make_entries<text_entry>(1, 1, 2)).ok());
  REQUIRE(b->purge(1).ok());
  auto& backend = s->backend();
  backend.hold();
  callbacks acked;
  REQUIRE(a->append_async(make_entries<text_entry>(1, 1, 1), acked.make()).ok());
  REQUIRE(backend.wait_until_blocked());  // round 1 holds a's entry at the gate
  // Pending, behind round 1: no round can take it before the gate opens.
  REQUIRE(b->append_async(make_entries<text_entry>(1, 3, 2), acked.make()).ok());
  std::size_t stored_at_truncate = 0, stored_at_purge = 0;
  std::thread caller([&] {
    CHECK(b->truncate(100).ok());  // past the end: deletes nothing
    stored_at_truncate = stored_entries(*s, 2);
    CHECK(b->purge(1).ok());  // purged already: deletes nothing
    stored_at_purge = stored_entries(*s, 2);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  backend.release();
  caller.join();
  CHECK(stored_at_truncate == 3);
  CHECK(stored_at_purge == 3);
  REQUIRE(acked.wait(2));
  CHECK(acked.failed() == 0);
}

TEST_CASE("append_async past the pending limit writes ahead and reads back whole") {
  scratch_dir dir;
  auto s = open_gated(dir.store());
  auto log = open_group(*s, 3);
  callbacks acked;
  constexpr std::uint64_t k_batches = 40;  // 40 x 16 x 4 KB: past 1 MiB
  std::vector<text_entry> all;
  for (std::uint64_t i = 0; i < k_batches; ++i) {
    auto batch = make_entries<text_entry>(1, 1 + i * 16, 16);
    for (auto& e : batch) e.text.append(4096, 'x');
    all.insert(all.end(), batch.begin(), batch.end());
    REQUIRE(log->append_async(batch, acked.make()).ok());
    // Whatever is written by now and whatever is pending, read together.
    CHECK(log->entries(1, 1 + (i + 1) * 16).value() == all);
  }
  REQUIRE(acked.wait(static_cast<int>(k_batches)));
  CHECK(acked.failed() == 0);
  CHECK(stored_entries(*s, 3) == k_batches * 16);
  CHECK(log->entries(1, 1 + k_batches * 16).value() == all);
}

// A Raft thread appends to its groups one after another each round, and
// waits: once group commit knows the burst's size, the round starts as soon
// as that many requests are in, not an idle gap (k_idle_gap) after the last.
TEST_CASE("a burst of requests as big as the last one starts its round without waiting for the idle gap") {
  using clock = std::chrono::steady_clock;
  using sync_type = detail::group_sync<int>;
  std::mutex m;
  std::vector<clock::time_point> written_at;  // one per round
  sync_type sync([] { return 0; }, [&](int*, bool synced) {
    if (synced) {
      std::lock_guard lock(m);
      written_at.push_back(clock::now());
    }
    return status{};
  });
  constexpr int k_burst = 8, k_rounds = 20;
  std::vector<clock::time_point> last_sent;  // before each burst's last request
  std::vector<clock::time_point> last_round_at;  // when the round that covered it wrote
  for (int round = 0; round < k_rounds; ++round) {
    std::mutex dm;
    std::condition_variable cv;
    int fired = 0;
    for (int i = 0; i < k_burst; ++i) {
      if (i == k_burst - 1) last_sent.push_back(clock::now());
      sync.request([&](status st) {
        CHECK(st.ok());
        std::lock_guard lock(dm);
        if (++fired == k_burst) cv.notify_all();
      });
    }
    std::unique_lock lock(dm);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return fired == k_burst; }));
    std::lock_guard written(m);
    last_round_at.push_back(written_at.back());  // the round that wrote the burst's last request
  }
  sync.stop();
  // One round per burst when the submitter keeps up; on a loaded machine a
  // pause inside a burst may split it (reported, not failed: the idle gap
  // then ends that burst, as it should).
  CHECK(written_at.size() >= k_rounds);
  CHECK(sync.syncs() == written_at.size());
  MESSAGE((written_at.size() - k_rounds) << " of " << k_rounds << " bursts split");
  // The first two bursts wait for the gap (they make the size known).
  // Waiting for the gap, every later round would start at least k_idle_gap
  // after its last request; allow for a loaded machine by asking it of one.
  int early = 0;
  for (int round = 2; round < k_rounds; ++round)
    if (last_round_at[round] - last_sent[round] < sync_type::k_idle_gap) ++early;
  INFO(early << " of " << k_rounds - 2 << " rounds started within "
             << sync_type::k_idle_gap.count() << " us of their last request");
  CHECK(last_round_at[0] - last_sent[0] >= sync_type::k_idle_gap);
  CHECK(last_round_at[1] - last_sent[1] >= sync_type::k_idle_gap);
  CHECK(early >= 1);
}

// The batch a round wrote is emptied and taken again by the next submit:
// every write holds exactly what was submitted since the one before, and
// no round grows a batch from nothing (one batch made, for all of them).
TEST_CASE("each group-commit write holds only what was submitted since the last one, in one reused batch") {
  using batch = memory_backend::batch;
  std::mutex m;
  std::vector<std::vector<std::string>> written;  // the keys of each write of a batch
  int made = 0;
  detail::group_sync<batch> sync([&] { ++made; return batch(); }, [&](batch* b, bool) {
    if (b) {
      std::vector<std::string> keys;
      for (const auto& op : *b) keys.emplace_back(op.key);
      std::lock_guard lock(m);
      written.push_back(std::move(keys));
    }
    return status{};
  });
  std::vector<std::vector<std::string>> expected;
  for (int round = 0; round < 6; ++round) {
    std::mutex dm;
    std::condition_variable cv;
    bool fired = false;
    std::function<void(status)> done = [&](status st) {
      CHECK(st.ok());
      std::lock_guard lock(dm);
      fired = true;
      cv.notify_all();
    };
    std::vector<std::string> keys;
    for (int i = 0; i <= round % 3; ++i) keys.push_back("r" + std::to_string(round) + "k" + std::to_string(i));
    auto generation = sync.submit([&](batch& b) { for (const auto& k : keys) b.put(column_family::data_raft_log, k, "v"); },
                                  keys.size(), done);
    REQUIRE(generation.ok());
    expected.push_back(keys);
    // Every other round's batch goes by flush(), the others by the round.
    if (round % 2 == 1) REQUIRE(sync.flush(false).ok());
    std::unique_lock lock(dm);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return fired; }));
    // Durable, so in the engine: the overlay's entries of it may go.
    CHECK(sync.written() >= *generation);
    CHECK(sync.idle());
  }
  sync.stop();
  CHECK(written == expected);
  CHECK(made == 1);
}

}  // namespace
