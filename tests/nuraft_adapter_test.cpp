// The NuRaft adapter's contract (adapters/nuraft/include/seshat/nuraft/):
// nuraft::log_store as seshat_log_store answers it, on every backend, with
// the cases NuRaft's in-memory example store gets wrong (the durable index
// across an overwrite, apply_pack's tail, compact past the last entry with
// a term); seshat_state_mgr's srv_state and config; seshat_state_machine's
// snapshot transfer and install order.
#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "seshat/nuraft/log_store.hpp"
#include "seshat/nuraft/state_machine.hpp"
#include "seshat/nuraft/state_mgr.hpp"
#include "support.hpp"

using namespace seshat;
using seshat::test::open_store;
using seshat::test::scratch_dir;
namespace sn = seshat::nuraft;

namespace {

sn::ptr<::nuraft::log_entry> entry(std::uint64_t term, std::string_view data,
                                   ::nuraft::log_val_type type = ::nuraft::app_log) {
  return ::nuraft::cs_new<::nuraft::log_entry>(term, sn::to_buffer(data), type);
}

std::string data_of(const sn::ptr<::nuraft::log_entry>& e) { return std::string(sn::to_view(e->get_buf())); }

// Failures the store reports (instead of aborting).
struct fatal_log {
  std::mutex m;
  std::vector<std::string> messages;
  sn::log_store_options options(bool parallel) {
    sn::log_store_options o;
    o.parallel_appending = parallel;
    o.on_fatal = [this](const status& s) {
      std::lock_guard lock(m);
      messages.push_back(s.to_string());
    };
    return o;
  }
  std::size_t count() {
    std::lock_guard lock(m);
    return messages.size();
  }
};

template <class B>
sn::ptr<sn::seshat_log_store<B>> open_log(storage<B>& s, fatal_log& f, bool parallel = true) {
  auto log = sn::seshat_log_store<B>::open(s, system_shard{}, f.options(parallel));
  REQUIRE(log.ok());
  return *log;
}

// Waits (bounded) until last_durable_index() reaches `index`.
template <class L>
bool durable_soon(L& log, std::uint64_t index) {
  for (int i = 0; i < 2000; ++i) {
    if (log.last_durable_index() >= index) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return false;
}

// Holds the storage's sync thread in a callback until released: no append
// becomes durable meanwhile.
class sync_stall {
 public:
  template <class B>
  explicit sync_stall(storage<B>& s) {
    s.sync_async([this](status) {
      std::unique_lock lock(m_);
      entered_ = true;
      cv_.notify_all();
      cv_.wait(lock, [&] { return released_; });
    });
    std::unique_lock lock(m_);
    cv_.wait(lock, [&] { return entered_; });
  }
  ~sync_stall() { release(); }
  void release() {
    std::lock_guard lock(m_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool entered_ = false, released_ = false;
};

}  // namespace

TEST_SUITE("nuraft adapter") {

TEST_CASE_TEMPLATE("an empty nuraft log starts at 1, its last entry is a term-0 entry", B,
                   SESHAT_ALL_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  fatal_log f;
  auto log = open_log(*s, f);
  CHECK(log->next_slot() == 1);
  CHECK(log->start_index() == 1);
  CHECK(log->last_entry()->get_term() == 0);
  CHECK(log->entry_at(1) == nullptr);
  CHECK(log->term_at(1) == 0);
  CHECK(log->last_durable_index() == 0);
  CHECK(f.count() == 0);
}

TEST_CASE_TEMPLATE("append numbers entries from next_slot and keeps term, type, data, timestamp and crc",
                   B, SESHAT_ALL_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  fatal_log f;
  {
    auto log = open_log(*s, f);
    auto a = entry(1, "one");
    auto b = ::nuraft::cs_new<::nuraft::log_entry>(2, sn::to_buffer("two"), ::nuraft::conf, 777,
                                                   true, 0xabcdu, false);
    CHECK(log->append(a) == 1);
    CHECK(log->append(b) == 2);
    CHECK(log->next_slot() == 3);
    CHECK(log->last_entry()->get_term() == 2);
    CHECK(log->flush());
    CHECK(log->last_durable_index() == 2);
  }
  auto log = open_log(*s, f);  // reopened: the same entries
  auto got = log->entry_at(2);
  REQUIRE(got);
  CHECK(got->get_term() == 2);
  CHECK(got->get_val_type() == ::nuraft::conf);
  CHECK(data_of(got) == "two");
  CHECK(got->get_timestamp() == 777);
  CHECK(got->has_crc32());
  CHECK(got->get_crc32() == 0xabcdu);
  CHECK(log->term_at(1) == 1);
  CHECK(log->last_durable_index() == 2);
  CHECK(f.count() == 0);
}

TEST_CASE_TEMPLATE("write_at deletes the entries from its index on and writes its entry there", B,
                   SESHAT_ALL_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  fatal_log f;
  auto log = open_log(*s, f);
  for (int i = 0; i < 5; ++i) {
    auto e = entry(1, "e" + std::to_string(i + 1));
    log->append(e);
  }
  auto x = entry(2, "x3");
  log->write_at(3, x);
  CHECK(log->next_slot() == 4);
  CHECK(data_of(log->entry_at(3)) == "x3");
  CHECK(log->entry_at(4) == nullptr);
  CHECK(log->term_at(3) == 2);
  CHECK(log->last_entry()->get_term() == 2);
  CHECK(f.count() == 0);
}

TEST_CASE_TEMPLATE("after write_at(i) the durable index stays below i until the overwrite is durable",
                   B, SESHAT_ALL_BACKENDS) {
  // NuRaft's in-memory example keeps the old durable index (here 5) over
  // an overwrite; the leader would count entry 3 as on disk while it is not.
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  fatal_log f;
  auto log = open_log(*s, f);
  for (int i = 0; i < 5; ++i) {
    auto e = entry(1, "e");
    log->append(e);
  }
  REQUIRE(log->flush());
  REQUIRE(log->last_durable_index() == 5);
  {
    sync_stall stall(*s);
    auto x = entry(2, "x3");
    log->write_at(3, x);
    CHECK(log->last_durable_index() == 2);
    auto y = entry(2, "y4");
    log->append(y);
    CHECK(log->last_durable_index() == 2);
  }
  CHECK(durable_soon(*log, 4));
  CHECK(log->last_durable_index() == 4);
  CHECK(f.count() == 0);
}

TEST_CASE_TEMPLATE("completions of appends from before an overwrite never lift the durable index past next_slot() - 1",
                   B, SESHAT_ALL_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  fatal_log f;
  auto log = open_log(*s, f);
  {
    sync_stall stall(*s);
    for (int i = 0; i < 5; ++i) {
      auto e = entry(1, "e");
      log->append(e);  // completions pending: the sync thread is held
    }
    auto x = entry(2, "x2");
    log->write_at(2, x);
    auto y = entry(2, "y3");
    log->append(y);
    CHECK(log->last_durable_index() == 0);
    CHECK(log->next_slot() == 4);
  }
  CHECK(durable_soon(*log, 3));
  CHECK(log->last_durable_index() == 3);  // never above next_slot() - 1
  CHECK(f.count() == 0);
}

TEST_CASE_TEMPLATE("without parallel appending end_of_append_batch returns once the batch is durable",
                   B, SESHAT_ALL_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  fatal_log f;
  auto log = open_log(*s, f, false);
  for (int i = 0; i < 3; ++i) {
    auto e = entry(1, "e");
    log->append(e);
  }
  log->end_of_append_batch(1, 3);
  CHECK(log->last_durable_index() == 3);
  CHECK(f.count() == 0);
}

TEST_CASE_TEMPLATE("log_entries returns [start, end), nullptr when part of it is not held", B,
                   SESHAT_ALL_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  fatal_log f;
  auto log = open_log(*s, f);
  for (int i = 1; i <= 6; ++i) {
    auto e = entry(1, "e" + std::to_string(i));
    log->append(e);
  }
  auto got = log->log_entries(2, 5);
  REQUIRE(got);
  REQUIRE(got->size() == 3);
  CHECK(data_of((*got)[0]) == "e2");
  CHECK(data_of((*got)[2]) == "e4");
  CHECK(log->log_entries(5, 8) == nullptr);
  REQUIRE(log->compact(2));
  CHECK(log->log_entries(1, 4) == nullptr);
  CHECK(log->log_entries(3, 3)->empty());
}

TEST_CASE_TEMPLATE("log_entries_ext: a negative hint returns none, a positive one at least one entry",
                   B, SESHAT_ALL_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  fatal_log f;
  auto log = open_log(*s, f);
  for (int i = 1; i <= 5; ++i) {
    auto e = entry(1, "0123456789");  // 10 bytes each
    log->append(e);
  }
  CHECK(log->log_entries_ext(1, 6, -1)->empty());
  CHECK(log->log_entries_ext(1, 6, 0)->size() == 5);
  CHECK(log->log_entries_ext(1, 6, 1)->size() == 1);
  CHECK(log->log_entries_ext(1, 6, 20)->size() == 2);
  CHECK(log->log_entries_ext(1, 6, 21)->size() == 3);
  CHECK(log->log_entries_ext(2, 6, 1000)->size() == 4);
}

TEST_CASE_TEMPLATE("compact moves start_index past its index; below it term_at is 0", B,
                   SESHAT_ALL_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  fatal_log f;
  auto log = open_log(*s, f);
  for (int i = 1; i <= 6; ++i) {
    auto e = entry(static_cast<std::uint64_t>(i), "e");
    log->append(e);
  }
  CHECK(log->compact(3));
  CHECK(log->start_index() == 4);
  CHECK(log->next_slot() == 7);
  CHECK(log->term_at(3) == 0);
  CHECK(log->term_at(4) == 4);
  CHECK(log->entry_at(2)->get_term() == 0);  // NuRaft's dummy entry
  CHECK(log->compact(2));                    // already compacted: nothing to do
  CHECK(log->start_index() == 4);
  CHECK(f.count() == 0);
}

TEST_CASE_TEMPLATE("compact_async compacts before it calls its handler with the result", B,
                   SESHAT_ALL_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  fatal_log f;
  auto log = open_log(*s, f);
  for (int i = 1; i <= 4; ++i) {
    auto e = entry(1, "e");
    log->append(e);
  }
  bool called = false, result = false;
  std::uint64_t start_seen = 0;
  log->compact_async(2, [&](bool& ok, sn::ptr<std::exception>& error) {
    called = true;
    result = ok && !error;
    start_seen = log->start_index();
  });
  CHECK(called);
  CHECK(result);
  CHECK(start_seen == 3);
}

TEST_CASE_TEMPLATE("compact past the last entry resets the log to the received snapshot's id", B,
                   SESHAT_ALL_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  fatal_log f;
  auto log = open_log(*s, f);
  for (int i = 1; i <= 3; ++i) {
    auto e = entry(1, "e");
    log->append(e);
  }
  // Without a term (no snapshot expected there) it is refused, not guessed.
  CHECK_FALSE(log->compact(10));
  CHECK(log->next_slot() == 4);
  CHECK(log->start_index() == 1);
  log->expect_snapshot(log_id{5, 10}, [&] { return log->log().reset_to(log_id{5, 10}); });
  CHECK(log->compact(10));
  CHECK(log->start_index() == 11);
  CHECK(log->next_slot() == 11);
  CHECK(log->last_entry()->get_term() == 0);
  CHECK(log->last_durable_index() == 10);
  auto e = entry(6, "after");
  CHECK(log->append(e) == 11);
}

TEST_CASE_TEMPLATE("apply_pack leaves exactly the packed entries and nothing after them", B,
                   SESHAT_ALL_BACKENDS) {
  // NuRaft's in-memory store keeps its old entries past the pack.
  scratch_dir dir, dir2;
  auto s = open_store<B>(dir.store());
  auto s2 = open_store<B>(dir2.store());
  fatal_log f;
  auto leader = open_log(*s, f);
  auto joiner = open_log(*s2, f);
  for (int i = 1; i <= 6; ++i) {
    auto e = entry(2, "L" + std::to_string(i));
    leader->append(e);
  }
  for (int i = 1; i <= 8; ++i) {
    auto e = entry(1, "J" + std::to_string(i));
    joiner->append(e);
  }
  auto pack = leader->pack(3, 3);  // [3, 6)
  REQUIRE(pack);
  joiner->apply_pack(3, *pack);
  CHECK(joiner->next_slot() == 6);
  CHECK(data_of(joiner->entry_at(2)) == "J2");
  CHECK(data_of(joiner->entry_at(3)) == "L3");
  CHECK(data_of(joiner->entry_at(5)) == "L5");
  CHECK(joiner->entry_at(6) == nullptr);
  CHECK(joiner->term_at(5) == 2);
  CHECK(durable_soon(*joiner, 5));

  // A pack that starts past the end: the log continues from its first index.
  scratch_dir dir3;
  auto s3 = open_store<B>(dir3.store());
  auto empty = open_log(*s3, f);
  empty->apply_pack(3, *pack);
  CHECK(empty->start_index() == 3);
  CHECK(empty->next_slot() == 6);
  CHECK(data_of(empty->entry_at(4)) == "L4");
  CHECK(f.count() == 0);
}

TEST_CASE_TEMPLATE("the state manager keeps srv_state whole, a vote reset within a term included", B,
                   SESHAT_ALL_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  fatal_log f;
  auto log = open_log(*s, f);
  auto initial = ::nuraft::cs_new<::nuraft::cluster_config>();
  initial->get_servers().push_back(::nuraft::cs_new<::nuraft::srv_config>(1, "127.0.0.1:1"));
  {
    sn::seshat_state_mgr<B> mgr(*s, system_shard{}, 1, log, initial);
    CHECK(mgr.read_state() == nullptr);
    CHECK(mgr.load_config()->get_servers().size() == 1);
    CHECK(mgr.load_log_store() == log);
    CHECK(mgr.server_id() == 1);
    ::nuraft::srv_state voted(7, 3, true, false);
    mgr.save_state(voted);
    // handle_join_leave.cxx: a joining server resets voted_for in its term
    // and sets catching_up; log_store::save_vote would refuse this.
    ::nuraft::srv_state joined(7, -1, false, true);
    mgr.save_state(joined);
    ::nuraft::cluster_config c(12, 11);
    c.get_servers().push_back(::nuraft::cs_new<::nuraft::srv_config>(1, "127.0.0.1:1"));
    c.get_servers().push_back(::nuraft::cs_new<::nuraft::srv_config>(2, "127.0.0.1:2"));
    c.set_user_ctx("ctx");
    mgr.save_config(c);
  }
  sn::seshat_state_mgr<B> mgr(*s, system_shard{}, 1, log, initial);  // as after a restart
  auto st = mgr.read_state();
  REQUIRE(st);
  CHECK(st->get_term() == 7);
  CHECK(st->get_voted_for() == -1);
  CHECK_FALSE(st->is_election_timer_allowed());
  CHECK(st->is_catching_up());
  auto c = mgr.load_config();
  CHECK(c->get_log_idx() == 12);
  CHECK(c->get_prev_log_idx() == 11);
  CHECK(c->get_servers().size() == 2);
  CHECK(c->get_user_ctx() == "ctx");
}

// A key-value command: key '\0' value.
sn::ptr<::nuraft::buffer> put_cmd(std::string_view k, std::string_view v) {
  return sn::to_buffer(std::string(k) + '\0' + std::string(v));
}

template <class B>
sn::ptr<sn::seshat_state_machine<B>> open_sm(storage<B>& s, sn::ptr<sn::seshat_log_store<B>> log,
                                             const std::filesystem::path& snaps) {
  auto sm = sn::seshat_state_machine<B>::open(
      s, system_shard{}, log,
      [](std::uint64_t index, ::nuraft::buffer& data, state_machine_batch& batch) {
        const std::string_view cmd = sn::to_view(data);
        const std::size_t sep = cmd.find('\0');
        batch.put(cmd.substr(0, sep), cmd.substr(sep + 1), index, 0);
        return sn::ptr<::nuraft::buffer>();
      },
      snapshot_options{snaps});
  REQUIRE(sm.ok());
  return *sm;
}

TEST_CASE_TEMPLATE("a snapshot moves between nodes as objects and is installed at compact, before apply_snapshot",
                   B, SESHAT_ALL_BACKENDS) {
  scratch_dir dir, dir2;
  auto s = open_store<B>(dir.store());
  auto s2 = open_store<B>(dir2.store());
  fatal_log f;
  auto log = open_log(*s, f);
  auto sm = open_sm(*s, log, dir.path() / "snaps");
  for (int i = 1; i <= 20; ++i) {
    auto e = ::nuraft::cs_new<::nuraft::log_entry>(3, put_cmd("k" + std::to_string(i), "v"));
    log->append(e);
    auto buf = put_cmd("k" + std::to_string(i), "v" + std::to_string(i));
    sm->commit(static_cast<std::uint64_t>(i), *buf);
  }
  CHECK(sm->last_commit_index() == 20);
  auto conf = ::nuraft::cs_new<::nuraft::cluster_config>(5, 4);
  ::nuraft::snapshot snap(20, 3, conf);
  bool done = false;
  ::nuraft::async_result<bool>::handler_type when_done =
      [&](bool& ok, sn::ptr<std::exception>&) { done = ok; };
  sm->create_snapshot(snap, when_done);
  REQUIRE(done);
  REQUIRE(sm->last_snapshot());
  CHECK(sm->last_snapshot()->get_last_log_idx() == 20);
  CHECK(sm->last_snapshot()->get_last_config()->get_log_idx() == 5);

  // A follower whose log ends before the snapshot (as after a kill).
  auto log2 = open_log(*s2, f);
  auto sm2 = open_sm(*s2, log2, dir2.path() / "snaps");
  for (int i = 1; i <= 2; ++i) {
    auto e = entry(1, "old");
    log2->append(e);
  }
  void* ctx = nullptr;
  ::nuraft::ulong want = 0;
  for (int guard = 0; guard < 100; ++guard) {
    sn::ptr<::nuraft::buffer> obj;
    bool last = false;
    REQUIRE(sm->read_logical_snp_obj(snap, ctx, want, obj, last) == 0);
    const bool first = want == 0;
    sm2->save_logical_snp_obj(snap, want, *obj, first, last);
    if (last) break;
  }
  sm->free_user_snp_ctx(ctx);
  // NuRaft's order: compact (no term), then apply_snapshot.
  CHECK(log2->compact(20));
  CHECK(sm2->last_commit_index() == 20);  // installed by compact
  CHECK(log2->start_index() == 21);
  CHECK(log2->next_slot() == 21);
  CHECK(sm2->apply_snapshot(snap));
  CHECK(sm2->installs() == 1);
  CHECK(sm2->store().get("k7").value().data == "v7");
  REQUIRE(sm2->last_snapshot());
  CHECK(sm2->last_snapshot()->get_last_log_term() == 3);
  CHECK(sm2->last_snapshot()->get_last_config()->get_log_idx() == 5);
  CHECK(f.count() == 0);
}

TEST_CASE_TEMPLATE("after a restart last_snapshot is the snapshot NuRaft knows, with its config", B,
                   SESHAT_ALL_BACKENDS) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  fatal_log f;
  {
    auto log = open_log(*s, f);
    auto sm = open_sm(*s, log, dir.path() / "snaps");
    for (int i = 1; i <= 3; ++i) {
      auto e = entry(2, "e");
      log->append(e);
      auto buf = put_cmd("k", std::to_string(i));
      sm->commit(static_cast<std::uint64_t>(i), *buf);
    }
    ::nuraft::snapshot snap(3, 2, ::nuraft::cs_new<::nuraft::cluster_config>(3, 0));
    bool done = false;
    ::nuraft::async_result<bool>::handler_type when_done =
        [&](bool& ok, sn::ptr<std::exception>&) { done = ok; };
    sm->create_snapshot(snap, when_done);
    REQUIRE(done);
  }
  auto log = open_log(*s, f);
  auto sm = open_sm(*s, log, dir.path() / "snaps");
  REQUIRE(sm->last_snapshot());
  CHECK(sm->last_snapshot()->get_last_log_idx() == 3);
  CHECK(sm->last_snapshot()->get_last_log_term() == 2);
  CHECK(sm->last_snapshot()->get_last_config()->get_log_idx() == 3);
  CHECK(sm->last_commit_index() == 3);
  auto again = put_cmd("k", "again");
  sm->commit(3, *again);  // already applied: skipped
  CHECK(sm->store().get("k").value().data == "3");
}

}  // TEST_SUITE
