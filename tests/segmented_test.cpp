// segmented<B>: a store whose Raft logs and hard state live in seshat's log
// engine, beside a key-value backend B for everything else
// (backends/segment/include/seshat/backends/segmented.hpp). The log_store
// contract runs on it in log_store_test.cpp; these cases check what is its
// own: the split between the two halves, the refusal of key-value writes to
// the log families, the store's marker and directories, and one engine
// write and one sync per group-commit round.
#include <doctest/doctest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "log_entries.hpp"
#include "seshat/log_store.hpp"
#include "support.hpp"

TEST_SUITE_BEGIN("segmented");

using namespace seshat;
using seshat::test::dump;
using seshat::test::make_entries;
using seshat::test::open_store;
using seshat::test::scratch_dir;
using seshat::test::text_entry;

namespace {

template <class B>
using data_log = log_store<text_entry, boost_serializer, B, data_shard, binary_key_format>;

template <class B>
std::unique_ptr<data_log<B>> open_data_log(storage<B>& s, shard_id id) {
  auto opened = data_log<B>::open(s, data_shard{id});
  if (!opened.ok()) throw std::runtime_error(opened.status().to_string());
  return std::move(*opened);
}

bool holds_log_key(const std::map<std::string, std::string>& all) {
  for (const auto& [key, value] : all)
    if (key.starts_with("system_raft_log/") || key.starts_with("data_raft_log/")) return true;
  return false;
}

// A log_fs over the real one that counts data writes and syncs.
class counting_fs final : public detail::log_fs {
 public:
  std::atomic<int> pwrites{0}, datasyncs{0};

  detail::fs_result<detail::log_file> open(const std::filesystem::path& p,
                                           detail::open_flags f) override {
    return real_.open(p, f);
  }
  detail::fs_status pwrite(const detail::log_file& f, std::uint64_t off,
                           std::span<const std::string_view> pieces,
                           detail::write_flags w) override {
    ++pwrites;
    if (w.dsync) ++datasyncs;
    return real_.pwrite(f, off, pieces, w);
  }
  detail::fs_result<std::size_t> pread(const detail::log_file& f, std::uint64_t off,
                                       std::span<char> b) override {
    return real_.pread(f, off, b);
  }
  detail::fs_status datasync(const detail::log_file& f) override {
    ++datasyncs;
    if (fail_datasyncs) return detail::os_failure("fdatasync", "(counting_fs)", EIO);
    return real_.datasync(f);
  }
  std::atomic<bool> fail_datasyncs{false};  // every datasync fails with EIO while set
  detail::fs_status allocate(const detail::log_file& f, std::uint64_t size) override {
    return real_.allocate(f, size);
  }
  detail::fs_result<bool> write_zeroes(const detail::log_file& f, std::uint64_t o,
                                       std::uint64_t l) override {
    return real_.write_zeroes(f, o, l);
  }
  detail::fs_result<std::uint64_t> size(const detail::log_file& f) override {
    return real_.size(f);
  }
  detail::fs_result<std::uint64_t> link_count(const detail::log_file& f) override {
    return real_.link_count(f);
  }
  detail::fs_status close(const detail::log_file& f) override { return real_.close(f); }
  detail::fs_status create_directory(const std::filesystem::path& p) override {
    return real_.create_directory(p);
  }
  detail::fs_status rename(const std::filesystem::path& a, const std::filesystem::path& b) override {
    return real_.rename(a, b);
  }
  detail::fs_status replace(const std::filesystem::path& a, const std::filesystem::path& b) override {
    return real_.replace(a, b);
  }
  detail::fs_status link(const std::filesystem::path& a, const std::filesystem::path& b) override {
    return real_.link(a, b);
  }
  detail::fs_status unlink(const std::filesystem::path& p) override { return real_.unlink(p); }
  detail::fs_status sync_directory(const std::filesystem::path& p) override {
    return real_.sync_directory(p);
  }
  detail::fs_result<std::vector<std::string>> list(const std::filesystem::path& d) override {
    return real_.list(d);
  }

 private:
  detail::posix_log_fs real_;
};

}  // namespace

TEST_CASE_TEMPLATE_DEFINE(
    "a segmented store keeps its logs and hard state in the engine and every other key in its "
    "key-value backend",
    B, halves) {
  static_assert(log_backend<B>);
  scratch_dir dir;
  const log_group g{static_cast<std::uint8_t>(index_of(column_family::data_raft_log)), 7};
  {
    auto s = open_store<B>(dir.store());
    auto log = open_data_log(*s, 7);
    REQUIRE(log->append(make_entries<text_entry>(2, 1, 10)).ok());
    REQUIRE(log->save_vote(vote{2, 5, true}).ok());
    REQUIRE(log->save_committed(log_id{2, 8}).ok());
    REQUIRE(log->purge(3).ok());
    REQUIRE(s->put(column_family::data_kv, "k", "v").ok());
    REQUIRE(s->put(column_family::data_raft_state, "applied", "8").ok());

    const auto all = dump(*s);
    CHECK_FALSE(holds_log_key(all));
    // The state family holds the other keys, not log_store's hard state.
    CHECK(all.size() == 2);
    CHECK(all.count("data_kv/k") == 1);
    CHECK(all.count("data_raft_state/applied") == 1);

    const segment_group_state st = s->backend().log().state(g);
    CHECK(st.vote_value == vote{2, 5, true});
    CHECK(st.committed == log_id{2, 8});
    CHECK(st.last_purged == log_id{2, 3});
    CHECK(st.first == 4);
    CHECK(st.last == log_id{2, 10});
    REQUIRE(s->close().ok());
  }
  auto s = open_store<B>(dir.store());
  auto log = open_data_log(*s, 7);
  CHECK(log->get_log_state() == log_state{log_id{2, 3}, log_id{2, 10}});
  CHECK(log->read_vote().value() == vote{2, 5, true});
  CHECK(log->read_committed().value() == log_id{2, 8});
  auto read = log->entries(4, 11);
  REQUIRE(read.ok());
  CHECK(*read == make_entries<text_entry>(2, 4, 7));
  CHECK(log->entries(3, 4).status().is(errc::compacted));
  CHECK(s->get(column_family::data_kv, "k").value() == "v");
}

TEST_CASE_TEMPLATE_DEFINE(
    "log_store hands a segmented store's engine envelope(term entry) for each entry, read back "
    "byte for byte right after append and append_async and after a reopen",
    B, engine_bytes) {
  scratch_dir dir;
  const log_group g{static_cast<std::uint8_t>(index_of(column_family::data_raft_log)), 7};
  // What every backend stores for an entry (log_store.hpp's grammar).
  auto stored = [](const text_entry& e) {
    std::string payload;
    detail::put_u64(payload, e.term);
    boost_serializer::encode(e, payload);
    return envelope::wrap(payload);
  };
  std::vector<text_entry> all;
  auto check_engine = [&](storage<B>& s) {
    auto read = s.backend().log().read(g, 1, all.size() + 1);
    REQUIRE(read.ok());
    REQUIRE(read->size() == all.size());
    for (std::size_t i = 0; i < all.size(); ++i) CHECK((*read)[i] == stored(all[i]));
  };
  {
    auto s = open_store<B>(dir.store());
    auto log = open_data_log(*s, 7);
    std::uint64_t next = 1;
    // One entry, a few, and a batch past the append buffer's kept 64 KiB
    // (its buffer is let go and grown again), with term changes.
    for (std::uint64_t count : {1, 3, 400, 2, 1}) {
      auto batch = make_entries<text_entry>(1 + next / 100, next, count);
      for (auto& e : batch) e.text += std::string(e.index % 300, 'v');
      REQUIRE(log->append(batch).ok());
      all.insert(all.end(), batch.begin(), batch.end());
      next += count;
      check_engine(*s);
      auto back = log->entries(1, next);
      REQUIRE(back.ok());
      CHECK(*back == all);
    }
    std::mutex m;
    std::condition_variable cv;
    int done = 0;
    for (std::uint64_t count : {1, 5, 300}) {
      auto batch = make_entries<text_entry>(9, next, count);
      REQUIRE(log->append_async(batch, [&](status st) {
                   CHECK(st.ok());
                   std::lock_guard lock(m);
                   ++done;
                   cv.notify_all();
                 }).ok());
      all.insert(all.end(), batch.begin(), batch.end());
      next += count;
      check_engine(*s);  // readable on return
    }
    std::unique_lock lock(m);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(20), [&] { return done == 3; }));
    lock.unlock();
    REQUIRE(s->close().ok());
  }
  auto s = open_store<B>(dir.store());
  check_engine(*s);
  auto log = open_data_log(*s, 7);
  auto back = log->entries(1, all.size() + 1);
  REQUIRE(back.ok());
  CHECK(*back == all);
}

TEST_CASE_TEMPLATE_DEFINE(
    "key-value writes to a log family of a segmented store are refused and write nothing", B,
    kv_writes_refused) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  auto log = open_data_log(*s, 3);
  REQUIRE(log->append(make_entries<text_entry>(1, 1, 2)).ok());
  const auto before = dump(*s);

  auto refused = [](const status& st) {
    return st.is(errc::invalid_argument) &&
           st.message().find("kept by its log engine") != std::string::npos &&
           st.message().find(std::string(B::k_name)) != std::string::npos;
  };
  CHECK(refused(s->put(column_family::data_raft_log, "x", "y")));
  CHECK(refused(s->put(column_family::system_raft_log, "x", "y")));
  CHECK(refused(s->del(column_family::data_raft_log, "x")));
  auto batch = s->new_batch();
  batch.put(column_family::data_kv, "k", "v");
  batch.del_range(column_family::data_raft_log, "", "\xff");
  CHECK(refused(s->write(batch)));
  CHECK(dump(*s) == before);
  // The log is as it was, and still written through the log operations.
  CHECK(log->get_log_state().last == log_id{1, 2});
  CHECK(log->append(make_entries<text_entry>(1, 3, 1)).ok());
}

TEST_CASE_TEMPLATE_DEFINE("a plain store and a segmented store refuse each other's directory",
                          B, marker) {
  using plain = typename B::kv_backend;
  scratch_dir a, b;
  {
    auto s = open_store<plain>(a.store());
    REQUIRE(s->close().ok());
    auto t = open_store<B>(b.store());
    REQUIRE(t->close().ok());
  }
  auto as_segmented = storage<B>::open(a.store());
  CHECK(as_segmented.status().is(errc::version_mismatch));
  CHECK(as_segmented.status().message().find(std::string(B::k_name)) != std::string::npos);
  auto as_plain = storage<plain>::open(b.store());
  CHECK(as_plain.status().is(errc::version_mismatch));
  CHECK(as_plain.status().message().find(std::string(B::k_name)) != std::string::npos);
}

TEST_CASE_TEMPLATE_DEFINE(
    "a finished segmented store whose log directory is gone is refused, not recreated empty", B,
    missing_log) {
  scratch_dir dir;
  {
    auto s = open_store<B>(dir.store());
    auto log = open_data_log(*s, 3);
    REQUIRE(log->append(make_entries<text_entry>(1, 1, 2)).ok());
    REQUIRE(s->close().ok());
  }
  std::filesystem::remove_all(dir.store() / B::k_log_dir);
  auto reopened = storage<B>::open(dir.store());
  CHECK(reopened.status().is(errc::corrupted_data));
  CHECK(reopened.status().message().find("log/ is missing") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir.store() / B::k_log_dir));
}

TEST_CASE_TEMPLATE_DEFINE(
    "append_async on 64 groups of a segmented store: each round is one engine write and one sync",
    B, one_write_a_round) {
  scratch_dir dir;
  counting_fs fs;
  open_options options;
  options.environment.log_fs = &fs;
  options.log.segment_bytes = std::uint64_t{16} << 20;
  // Counts the writer's calls only: no segment prepared (zero-filled) meanwhile.
  options.log.prepare_ahead = false;
  // Long enough that a round takes all 64 appends however slow this
  // machine is: the writer rounds after 20 ms without a new append.
  options.log.idle_gap_us = 20000;
  options.log.max_linger_us = 100000;
  auto s = open_store<B>(dir.store(), options);
  std::vector<std::unique_ptr<data_log<B>>> logs;
  for (shard_id id = 1; id <= 64; ++id) logs.push_back(open_data_log(*s, id));

  auto round = [&](std::uint64_t index) {
    std::mutex m;
    std::condition_variable cv;
    int left = 64, failed = 0;
    for (auto& log : logs) {
      REQUIRE(log->append_async(make_entries<text_entry>(1, index, 1), [&](status st) {
                     std::lock_guard lock(m);
                     if (!st.ok()) ++failed;
                     --left;
                     cv.notify_all();
                   }).ok());
      // Readable on return.
      CHECK(log->get_log_state().last == log_id{1, index});
    }
    std::unique_lock lock(m);
    REQUIRE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return left == 0; }));
    CHECK(failed == 0);
  };
  round(1);  // creates the first segment (its header write and sync)
  const int writes = fs.pwrites, syncs = fs.datasyncs;
  const std::uint64_t rounds = s->group_syncs();
  for (std::uint64_t i = 2; i <= 5; ++i) round(i);
  CHECK(fs.pwrites - writes == 4);
  CHECK(fs.datasyncs - syncs == 4);
  CHECK(s->group_syncs() - rounds == 4);
  for (auto& log : logs) CHECK(log->entries(1, 6).value().size() == 5);
}

namespace {

// Every file under `dir` and its bytes, keyed by the path inside `dir`.
std::map<std::string, std::string> file_bytes(const std::filesystem::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    out[e.path().lexically_relative(dir).string()] =
        std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return out;
}

// Entries of about 4 KiB, so that a few hundred fill several 1 MiB segments.
std::vector<text_entry> big_entries(std::uint64_t term, std::uint64_t first, std::uint64_t count) {
  auto out = make_entries<text_entry>(term, first, count);
  for (auto& e : out) e.text = std::string(4000, static_cast<char>('a' + e.index % 26));
  return out;
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE(
    "a checkpoint of a segmented store installs into another store with the same entries, hard "
    "state and key-value data, and does not change while the source writes on",
    B, checkpoint_roundtrip) {
  scratch_dir dir, other;
  const auto snap = dir.path() / "snap";
  auto s = open_store<B>(dir.store());
  std::map<std::string, std::string> kv_at_snapshot;
  {
    auto log = open_data_log(*s, 7);
    // About 2.4 MB in appends of 200 KB: sealed 1 MiB segments and an open one.
    for (std::uint64_t i = 1; i <= 600; i += 50) REQUIRE(log->append(big_entries(2, i, 50)).ok());
    REQUIRE(log->save_vote(vote{2, 5, true}).ok());
    REQUIRE(log->save_committed(log_id{2, 590}).ok());
    REQUIRE(log->purge(10).ok());
    REQUIRE(s->put(column_family::data_kv, "k", "v").ok());
    REQUIRE(s->put(column_family::data_raft_state, "applied", "590").ok());
    REQUIRE(s->log_engine().settle().ok());  // seal what the writer moved on from
    kv_at_snapshot = dump(*s);
    auto made = s->create_snapshot(snap, log_id{2, 590});
    REQUIRE_MESSAGE(made.ok(), made.status().to_string());
    CHECK(made->backend == B::k_name);
  }
  const auto bytes = file_bytes(snap);
  // Sealed segments are shared with the source by a link; the open one is a copy.
  int linked = 0, copied = 0;
  for (const auto& e : std::filesystem::directory_iterator(snap / "data" / "log"))
    (std::filesystem::hard_link_count(e.path()) > 1 ? linked : copied)++;
  CHECK(linked >= 2);
  CHECK(copied >= 1);

  // The source writes on, purges everything the checkpoint holds (its
  // segments are freed) and closes: the checkpoint's bytes stay.
  {
    auto log = open_data_log(*s, 7);
    for (std::uint64_t i = 601; i <= 1200; i += 50) REQUIRE(log->append(big_entries(3, i, 50)).ok());
    REQUIRE(log->save_vote(vote{3, 6, true}).ok());
    REQUIRE(log->purge(1150).ok());
    REQUIRE(s->put(column_family::data_kv, "k", "changed").ok());
    REQUIRE(s->log_engine().settle().ok());
    CHECK(s->log_engine().freed_segments() >= 2);
  }
  REQUIRE(s->close().ok());
  CHECK(file_bytes(snap) == bytes);

  // Installed into another store, it reads as the source did at the checkpoint.
  auto t = open_store<B>(other.store());
  auto restored = t->restore_snapshot(snap);
  REQUIRE_MESSAGE(restored.ok(), restored.status().to_string());
  CHECK(restored->last_included == log_id{2, 590});
  CHECK(dump(*t) == kv_at_snapshot);
  {
    auto log = open_data_log(*t, 7);
    CHECK(log->read_vote().value() == vote{2, 5, true});
    CHECK(log->read_committed().value() == log_id{2, 590});
    CHECK(log->get_log_state() == log_state{log_id{2, 10}, log_id{2, 600}});
    auto got = log->entries(11, 601);
    REQUIRE(got.ok());
    CHECK(got->size() == 590);
    CHECK(got->front().text == big_entries(2, 11, 1).front().text);
    CHECK(got->back().index == 600);
    // The installed store writes on without touching the checkpoint either.
    for (std::uint64_t i = 601; i <= 900; i += 50) REQUIRE(log->append(big_entries(2, i, 50)).ok());
    REQUIRE(log->purge(800).ok());
    REQUIRE(t->log_engine().settle().ok());
  }
  REQUIRE(t->close().ok());
  CHECK(file_bytes(snap) == bytes);
  // Reopened, it still holds what was written after the install.
  t = open_store<B>(other.store());
  auto log = open_data_log(*t, 7);
  CHECK(log->get_log_state() == log_state{log_id{2, 800}, log_id{2, 900}});
}

TEST_CASE_TEMPLATE_DEFINE("a segmented checkpoint is refused by another kind of store and "
                          "into an open store, with nothing changed",
                          B, checkpoint_refusals) {
  scratch_dir dir;
  const auto snap = dir.path() / "snap";
  auto s = open_store<B>(dir.store());
  REQUIRE(s->put(column_family::data_kv, "k", "v").ok());
  REQUIRE(s->backend().checkpoint(snap).ok());
  // The kv/ half alone is B's checkpoint, not a segmented one.
  status wrong = B::install_checkpoint(snap / B::k_kv_dir, dir.path() / "t");
  CHECK_FALSE(wrong.ok());
  CHECK_MESSAGE(wrong.message().find("the checkpoint is not a " + std::string(B::k_name) + " store") !=
                    std::string::npos,
                wrong.to_string());
  CHECK_FALSE(std::filesystem::exists(dir.path() / "t"));
  // The source is open: refused, naming it.
  status open_store_refused = B::install_checkpoint(snap, dir.store());
  CHECK_FALSE(open_store_refused.ok());
  CHECK(open_store_refused.message().find("already open") != std::string::npos);
  CHECK(dump(*s).at("data_kv/k") == "v");
  CHECK_FALSE(std::filesystem::exists(dir.path() / "store.restore"));
}

// A callback that counts its copies and calls (shared by every copy).
struct copy_counting_callback {
  std::shared_ptr<std::atomic<int>> copies = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<std::atomic<int>> calls = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<std::atomic<int>> failures = std::make_shared<std::atomic<int>>(0);
  copy_counting_callback() = default;
  copy_counting_callback(const copy_counting_callback& o)
      : copies(o.copies), calls(o.calls), failures(o.failures) {
    ++*copies;
  }
  copy_counting_callback(copy_counting_callback&&) = default;
  // Another callback with the same counters (not a copy).
  copy_counting_callback fresh() const {
    copy_counting_callback c;
    c.copies = copies, c.calls = calls, c.failures = failures;
    return c;
  }
  void operator()(const status& s) {
    ++*calls;
    if (!s.ok()) ++*failures;
  }
};

TEST_CASE_TEMPLATE_DEFINE(
    "append_async on a segmented store moves its callback into the engine, and a refused one "
    "still gets its error once",
    B, callback_moved) {
  scratch_dir dir;
  counting_fs fs;
  open_options options;
  options.environment.log_fs = &fs;
  options.log.prepare_ahead = false;
  auto s = open_store<B>(dir.store(), options);
  auto log = open_data_log(*s, 5);
  copy_counting_callback done;
  const auto copies = done.copies, calls = done.calls, failures = done.failures;
  for (std::uint64_t i = 1; i <= 8; ++i)
    REQUIRE(log->append_async(make_entries<text_entry>(1, i, 1), done.fresh()).ok());
  REQUIRE(s->sync_wal().ok());
  for (std::uint64_t i = 9; i <= 16; ++i) {
    std::function<void(status)> f(done.fresh());
    REQUIRE(log->append_async(make_entries<text_entry>(1, i, 1), std::move(f)).ok());
  }
  REQUIRE(s->sync_wal().ok());
  // Callbacks fire on the engine's writer thread after the sync: bounded wait.
  auto wait_for = [](const std::atomic<int>& n, int want) {
    for (int i = 0; i < 5000 && n < want; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  };
  wait_for(*calls, 16);
  CHECK(*calls == 16);
  CHECK(*failures == 0);
  CHECK(*copies == 0);  // not copied on the way (storage, the engine)
  // A failed sync latches the engine: its round's callbacks get the error,
  // and the next append_async is refused by the engine, after log_store and
  // storage accepted it; log_store then calls the callback with the
  // refusal, so storage handed it back.
  fs.fail_datasyncs = true;
  REQUIRE(log->append_async(make_entries<text_entry>(1, 17, 1), done.fresh()).ok());
  CHECK_FALSE(s->sync_wal().ok());
  wait_for(*failures, 1);
  const int failed_before = *failures;
  CHECK(failed_before == 1);
  std::function<void(status)> f(done.fresh());
  status refused = log->append_async(make_entries<text_entry>(1, 18, 1), std::move(f));
  CHECK(refused.is(errc::io_error));
  CHECK(*failures == failed_before + 1);
  CHECK(*calls == 18);
  CHECK(*copies == 0);
  fs.fail_datasyncs = false;
}

TEST_CASE_TEMPLATE_INVOKE(halves, SESHAT_SEGMENTED_BACKENDS);
TEST_CASE_TEMPLATE_INVOKE(engine_bytes, SESHAT_SEGMENTED_BACKENDS);
TEST_CASE_TEMPLATE_INVOKE(callback_moved, SESHAT_SEGMENTED_BACKENDS);
TEST_CASE_TEMPLATE_INVOKE(kv_writes_refused, SESHAT_SEGMENTED_BACKENDS);
TEST_CASE_TEMPLATE_INVOKE(missing_log, SESHAT_SEGMENTED_BACKENDS);
TEST_CASE_TEMPLATE_INVOKE(one_write_a_round, SESHAT_SEGMENTED_BACKENDS);
TEST_CASE_TEMPLATE_INVOKE(checkpoint_roundtrip, SESHAT_SEGMENTED_BACKENDS);
TEST_CASE_TEMPLATE_INVOKE(checkpoint_refusals, SESHAT_SEGMENTED_BACKENDS);
// The memory backend keeps no marker on disk: only the disk backends' plain
// stores can be told from a segmented one by their directory.
#if SESHAT_HAVE_ROCKSDB && SESHAT_HAVE_LEVELDB
TEST_CASE_TEMPLATE_INVOKE(marker, segmented<rocksdb_backend>, segmented<leveldb_backend>);
#endif

TEST_SUITE_END();
