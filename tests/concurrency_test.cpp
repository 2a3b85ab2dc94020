// Group commit under several submitting threads: storage::sync_async and
// log_store::append_async called at once from many threads, on every
// backend. Every callback must fire exactly once with the right status, and
// everything it acknowledged must read back (after a power loss on the
// memory backend, after a reopen on the on-disk ones).
//
// Closing while threads read: readers loop over log_store::entries,
// storage::read_log and a raw backend iterator while another thread closes
// the store; every read returns the right bytes or a closed-store error.
//
// These cases, with every other test of the "concurrency" suite, are what
// the ThreadSanitizer run of scripts/sanitize.sh executes.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <iterator>
#include <map>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "log_entries.hpp"
#include "seshat/log_store.hpp"
#include "support.hpp"

using namespace seshat;
using seshat::test::env_number;
using seshat::test::make_entries;
using seshat::test::open_store;
using seshat::test::scratch_dir;
using seshat::test::text_entry;

namespace {

// How often each callback of a run fired and with what, by call number.
// Thread-safe; wait() gives up after 60 s so that a lost callback fails the
// test instead of hanging it.
class callback_log {
 public:
  explicit callback_log(int calls) : fired_(calls, 0), last_(calls) {}

  void fire(int call, const status& s) {
    std::lock_guard lock(m_);
    ++fired_[call];
    last_[call] = s;
    ++total_;
    cv_.notify_all();
  }
  bool wait_for_all() {
    std::unique_lock lock(m_);
    return cv_.wait_for(lock, std::chrono::seconds(60),
                        [&] { return total_ >= static_cast<int>(fired_.size()); });
  }
  int fired(int call) {
    std::lock_guard lock(m_);
    return fired_[call];
  }
  status last(int call) {
    std::lock_guard lock(m_);
    return last_[call];
  }
  int total() {
    std::lock_guard lock(m_);
    return total_;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<int> fired_;
  std::vector<status> last_;
  int total_ = 0;
};

// Drops what a power loss would on the memory backend; reopens the on-disk
// ones. Either way, what was acknowledged as durable must still be there.
template <class B>
void lose_power_or_reopen(std::unique_ptr<storage<B>>& s, const std::filesystem::path& dir) {
  if constexpr (std::is_same_v<B, memory_backend>) {
    s->backend().drop_unsynced();
  } else {
    REQUIRE(s->close().ok());
    s.reset();
    s = open_store<B>(dir);
  }
}

template <class B>
using log_of = log_store<text_entry, boost_serializer, B, data_shard>;

template <class B>
std::unique_ptr<log_of<B>> open_log(storage<B>& s, shard_id id) {
  auto opened = log_of<B>::open(s, data_shard{id});
  if (!opened.ok()) throw std::runtime_error(opened.status().to_string());
  return std::move(*opened);
}

constexpr int k_threads = 4;

// True when `s` is the error of an operation on the closed store at `dir`:
// a backend-error that says "closed" and names the store's path.
bool is_closed_error(const status& s, const std::filesystem::path& dir) {
  return s.is(errc::backend_error) && s.message().find("closed") != std::string::npos &&
         s.message().find(dir.string()) != std::string::npos;
}

// What the readers of close_during_reads saw. Thread-safe.
class read_tally {
 public:
  std::atomic<int> ok{0};  // reads that returned the whole range, right

  // A read that returned something else; keeps the first for the report.
  void wrong(const std::string& what) {
    std::lock_guard lock(m_);
    if (++wrong_ == 1) first_wrong_ = what;
  }
  int wrong_count() {
    std::lock_guard lock(m_);
    return wrong_;
  }
  std::string first_wrong() {
    std::lock_guard lock(m_);
    return first_wrong_;
  }

 private:
  std::mutex m_;
  int wrong_ = 0;
  std::string first_wrong_;
};

}  // namespace

TEST_SUITE("concurrency") {
  TEST_CASE_TEMPLATE_DEFINE(
      "sync_async from several threads: every callback fires once with ok, "
      "and every write it covered survives",
      B, sync_async_threads) {
    constexpr int k_rounds = 40;
    scratch_dir dir;
    auto s = open_store<B>(dir.store());
    callback_log calls(k_threads * k_rounds);
    std::atomic<int> write_failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < k_threads; ++t) {
      threads.emplace_back([&, t] {
        for (int r = 0; r < k_rounds; ++r) {
          const std::string key = "t" + std::to_string(t) + "-" + std::to_string(r);
          if (!s->put(column_family::data_kv, key, "value of " + key).ok()) ++write_failures;
          const int call = t * k_rounds + r;
          s->sync_async([&calls, call](status st) { calls.fire(call, st); });
        }
      });
    }
    for (auto& th : threads) th.join();
    REQUIRE(calls.wait_for_all());
    CHECK(write_failures.load() == 0);
    for (int call = 0; call < k_threads * k_rounds; ++call) {
      CAPTURE(call);
      CHECK(calls.fired(call) == 1);
      CHECK(calls.last(call).ok());
    }
    CHECK(s->group_syncs() >= 1);
    CHECK(s->group_syncs() <= static_cast<std::uint64_t>(k_threads * k_rounds));

    lose_power_or_reopen(s, dir.store());
    for (int t = 0; t < k_threads; ++t)
      for (int r = 0; r < k_rounds; ++r) {
        const std::string key = "t" + std::to_string(t) + "-" + std::to_string(r);
        CHECK(s->get(column_family::data_kv, key).value() == "value of " + key);
      }
  }

  TEST_CASE_TEMPLATE_DEFINE(
      "append_async from several threads, one log each, while a reader "
      "reads them: every callback fires once with ok, every entry reads back",
      B, append_async_threads) {
    constexpr int k_batches = 30;
    constexpr int k_batch = 3;
    scratch_dir dir;
    auto s = open_store<B>(dir.store());
    std::vector<std::unique_ptr<log_of<B>>> logs;
    for (int t = 0; t < k_threads; ++t) logs.push_back(open_log(*s, static_cast<shard_id>(t + 1)));

    callback_log calls(k_threads * k_batches);
    std::atomic<int> refused{0};
    std::atomic<bool> writing{true};
    std::atomic<int> bad_reads{0};
    // The reader: each log is always a hole-free prefix of what its writer
    // appends, whatever moment it is read at.
    std::thread reader([&] {
      while (writing.load()) {
        for (auto& log : logs) {
          const log_state state = log->get_log_state();
          if (!state.last) continue;
          auto got = log->entries(1, state.last->index + 1);
          if (!got.ok() || *got != make_entries<text_entry>(1, 1, state.last->index)) ++bad_reads;
        }
      }
    });
    std::vector<std::thread> writers;
    for (int t = 0; t < k_threads; ++t) {
      writers.emplace_back([&, t] {
        for (int b = 0; b < k_batches; ++b) {
          const auto batch = make_entries<text_entry>(1, 1 + b * k_batch, k_batch);
          const int call = t * k_batches + b;
          if (!logs[t]
                   ->append_async(batch, [&calls, call](status st) { calls.fire(call, st); })
                   .ok())
            ++refused;
        }
      });
    }
    for (auto& w : writers) w.join();
    writing = false;
    reader.join();
    REQUIRE(calls.wait_for_all());
    CHECK(refused.load() == 0);
    CHECK(bad_reads.load() == 0);
    for (int call = 0; call < k_threads * k_batches; ++call) {
      CAPTURE(call);
      CHECK(calls.fired(call) == 1);
      CHECK(calls.last(call).ok());
    }

    logs.clear();
    lose_power_or_reopen(s, dir.store());
    constexpr std::uint64_t n = k_batches * k_batch;
    for (int t = 0; t < k_threads; ++t) {
      CAPTURE(t);
      auto log = open_log(*s, static_cast<shard_id>(t + 1));
      CHECK(log->get_log_state().last == log_id{1, n});
      CHECK(log->entries(1, n + 1).value() == make_entries<text_entry>(1, 1, n));
    }
  }

  TEST_CASE_TEMPLATE_DEFINE(
      "append_async to one log from several threads: each append is taken "
      "once or refused, and every callback reports which",
      B, append_async_one_log) {
    constexpr int k_per_thread = 25;
    constexpr int k_max_calls = k_threads * k_per_thread * 20;
    scratch_dir dir;
    auto s = open_store<B>(dir.store());
    auto log = open_log(*s, 7);
    callback_log calls(k_max_calls);
    std::atomic<int> next_call{0};
    // Each append taken refuses at most the k_threads - 1 others once, so
    // every thread is done well before k_max_calls; out_of_calls counts a
    // thread that was not.
    std::atomic<int> out_of_calls{0};
    std::atomic<int> unexpected_errors{0};              // refused for another reason than the index
    std::vector<std::vector<int>> accepted(k_threads);  // call numbers, per thread
    std::vector<std::vector<int>> rejected(k_threads);
    std::vector<std::thread> writers;
    for (int t = 0; t < k_threads; ++t) {
      writers.emplace_back([&, t] {
        for (int done = 0; done < k_per_thread;) {
          const int call = next_call++;
          if (call >= k_max_calls) {
            ++out_of_calls;
            return;
          }
          // Whoever gets there first takes the next index; the others are
          // refused (invalid-log-index) and try again at the new end.
          const auto last = log->get_log_state().last;
          const std::uint64_t next = last ? last->index + 1 : 1;
          status st = log->append_async(make_entries<text_entry>(1, next, 1),
                                        [&calls, call](status cb) { calls.fire(call, cb); });
          if (st.ok()) {
            accepted[t].push_back(call);
            ++done;
          } else {
            if (!st.is(errc::invalid_log_index)) ++unexpected_errors;
            rejected[t].push_back(call);
          }
        }
      });
    }
    for (auto& w : writers) w.join();
    REQUIRE(out_of_calls.load() == 0);
    CHECK(unexpected_errors.load() == 0);
    // A refused append calls back at once, so only the accepted ones may be
    // pending here: wait until every call made has fired.
    const int made = next_call.load();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (calls.total() < made && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    REQUIRE(calls.total() == made);
    for (int t = 0; t < k_threads; ++t) {
      for (int call : accepted[t]) {
        CAPTURE(call);
        CHECK(calls.fired(call) == 1);
        CHECK(calls.last(call).ok());
      }
      for (int call : rejected[t]) {
        CAPTURE(call);
        CHECK(calls.fired(call) == 1);
        CHECK(calls.last(call).is(errc::invalid_log_index));
      }
    }

    log.reset();
    lose_power_or_reopen(s, dir.store());
    log = open_log(*s, 7);
    constexpr std::uint64_t n = k_threads * k_per_thread;
    CHECK(log->get_log_state().last == log_id{1, n});
    CHECK(log->entries(1, n + 1).value() == make_entries<text_entry>(1, 1, n));
  }

  TEST_CASE_TEMPLATE_DEFINE(
      "close while threads request syncs: every callback fires exactly once, "
      "with ok or a closed-store error",
      B, close_during_sync_async) {
    constexpr int k_rounds = 200;
    scratch_dir dir;
    auto s = open_store<B>(dir.store());
    callback_log calls(k_threads * k_rounds);
    std::vector<std::thread> threads;
    for (int t = 0; t < k_threads; ++t) {
      threads.emplace_back([&, t] {
        for (int r = 0; r < k_rounds; ++r) {
          const int call = t * k_rounds + r;
          s->sync_async([&calls, call](status st) { calls.fire(call, st); });
        }
      });
    }
    // Close once some syncs have been served, while the threads still submit.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (calls.total() < 20 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();
    REQUIRE(s->close().ok());
    for (auto& th : threads) th.join();
    REQUIRE(calls.wait_for_all());
    int ok = 0, closed = 0;
    for (int call = 0; call < k_threads * k_rounds; ++call) {
      CAPTURE(call);
      CHECK(calls.fired(call) == 1);
      const status st = calls.last(call);
      if (st.ok())
        ++ok;
      else if (st.message().find("closed") != std::string::npos)
        ++closed;
    }
    CHECK(ok >= 20);
    CHECK(ok + closed == k_threads * k_rounds);
  }

  // Each reader loops over three kinds of read of data written before:
  // log_store::entries, storage::read_log, and a raw backend iterator whose
  // key() and value() views it compares after every step (the views must
  // stay valid until the iterator moves, close() or not). The closer waits
  // for a random number of good reads, then a random while, then closes.
  // A reader stops once a read failed as closed (bounded by k_max_reads).
  // Then the store is reopened, checked, and the next round begins.
  TEST_CASE_TEMPLATE_DEFINE(
      "close while threads read: every read returns its whole range, byte for "
      "byte, or fails with a closed-store error, and the store reopens once "
      "the readers are done",
      B, close_during_reads) {
    constexpr std::uint64_t k_entries = 48;
    constexpr int k_rounds = 8;        // closes, each followed by a reopen
    constexpr int k_max_reads = 5000;  // per reader and round
    constexpr column_family k_raw_log = column_family::system_raft_log;
    const std::uint64_t seed = env_number("SESHAT_CLOSE_SEED", std::random_device{}());
    CAPTURE(seed);
    std::mt19937_64 random(seed);

    scratch_dir dir;
    auto s = open_store<B>(dir.store());
    auto log = open_log(*s, 1);
    const auto expected = make_entries<text_entry>(1, 1, k_entries);
    REQUIRE(log->append(expected).ok());
    std::vector<std::string> raw_expected;
    std::map<std::string, std::string> kv_expected;
    for (std::uint64_t i = 1; i <= k_entries; ++i) {
      raw_expected.push_back("raw entry " + std::to_string(i) + std::string(i % 13, 'r'));
      kv_expected["key " + std::to_string(i)] = "value " + std::to_string(i) + std::string(i, 'v');
    }
    REQUIRE(s->append_log(k_raw_log, 1, raw_expected).ok());
    auto b = s->new_batch();
    for (const auto& [key, value] : kv_expected) b.put(column_family::data_kv, key, value);
    REQUIRE(s->write(b).ok());

    // One read of kind `kind`: ok when it returned the right bytes; a read
    // that returned other bytes fails with a corrupted-data of its own.
    auto read = [&](int kind) -> status {
      auto other = [](const std::string& what) {
        return status::corrupted_data("wrong read: " + what);
      };
      if (kind == 0) {
        auto got = log->entries(1, k_entries + 1);
        if (!got.ok()) return got.status();
        return *got == expected ? status{} : other("log_store::entries returned other entries");
      }
      if (kind == 1) {
        auto got = s->read_log(k_raw_log, 1, k_entries + 1);
        if (!got.ok()) return got.status();
        return *got == raw_expected ? status{} : other("storage::read_log returned other entries");
      }
      auto it = s->new_iterator(column_family::data_kv);
      auto want = kv_expected.begin();
      for (it->seek_to_first(); it->valid(); it->next(), ++want) {
        const std::string_view key = it->key(), value = it->value();
        if (want == kv_expected.end() || key != want->first || value != want->second)
          return other("iterator: key '" + std::string(key) + "' holds '" + std::string(value) +
                       "'");
        // Reads the views again a little later, as a caller keeping them would.
        std::this_thread::yield();
        if (key != want->first || value != want->second)
          return other("iterator: a view changed before the iterator moved");
      }
      SESHAT_RETURN_IF_ERROR(it->status());
      if (want != kv_expected.end())
        return other("iterator: ended after " +
                     std::to_string(std::distance(kv_expected.begin(), want)) +
                     " keys, with no error");
      return {};
    };
    for (int round = 0; round < k_rounds; ++round) {
      CAPTURE(round);
      read_tally tally;
      std::atomic<int> running{k_threads};
      std::atomic<int> saw_closed{0};  // readers that met a closed-store error
      // Counts one read of kind `kind`; true when it failed as closed.
      auto read_once = [&](int kind) {
        const status st = read(kind);
        if (st.ok()) {
          ++tally.ok;
        } else if (is_closed_error(st, dir.store())) {
          return true;
        } else {
          tally.wrong("read kind " + std::to_string(kind) + ": " + st.to_string());
        }
        return false;
      };
      std::vector<std::thread> readers;
      for (int t = 0; t < k_threads; ++t) {
        readers.emplace_back([&, t] {
          for (int r = 0; r < k_max_reads; ++r) {
            if (read_once((t + r) % 3)) {
              ++saw_closed;
              // Later calls fail the same way.
              for (int kind = 0; kind < 3; ++kind)
                if (!read_once(kind)) tally.wrong("a read after close did not fail as closed");
              break;
            }
          }
          --running;
        });
      }
      const int good_reads = static_cast<int>(random() % 40) + 1;
      const auto pause = std::chrono::microseconds(random() % 2000);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (tally.ok.load() < good_reads && running.load() > 0 &&
             std::chrono::steady_clock::now() < deadline)
        std::this_thread::yield();
      std::this_thread::sleep_for(pause);
      const status closed = s->close();
      for (auto& r : readers) r.join();
      CHECK(closed.ok());
      INFO("first wrong read: ", tally.first_wrong());
      CHECK(tally.wrong_count() == 0);
      CHECK(tally.ok.load() >= good_reads);
      CHECK(saw_closed.load() == k_threads);

      // Every iterator is gone: the store is released and opens again, whole.
      log.reset();
      s.reset();
      s = open_store<B>(dir.store());
      log = open_log(*s, 1);
      CHECK(log->entries(1, k_entries + 1).value() == expected);
      CHECK(s->read_log(k_raw_log, 1, k_entries + 1).value() == raw_expected);
    }
  }

  TEST_CASE_TEMPLATE_INVOKE(sync_async_threads, SESHAT_ALL_BACKENDS, SESHAT_SEGMENTED_BACKENDS);
  TEST_CASE_TEMPLATE_INVOKE(append_async_threads, SESHAT_ALL_BACKENDS, SESHAT_SEGMENTED_BACKENDS);
  TEST_CASE_TEMPLATE_INVOKE(append_async_one_log, SESHAT_ALL_BACKENDS, SESHAT_SEGMENTED_BACKENDS);
  TEST_CASE_TEMPLATE_INVOKE(close_during_sync_async, SESHAT_ALL_BACKENDS, SESHAT_SEGMENTED_BACKENDS);
  TEST_CASE_TEMPLATE_INVOKE(close_during_reads, SESHAT_ALL_BACKENDS, SESHAT_SEGMENTED_BACKENDS);

}  // TEST_SUITE("concurrency")
