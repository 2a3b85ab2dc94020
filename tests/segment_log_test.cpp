// The log engine (backends/segment/segment_log.hpp) through its API:
// appends, reads, truncate, purge, reset and hard state, before and after a
// reopen (recovery by scanning); rounds (one write and one sync, counted
// through a log_fs wrapper); callbacks only after their sync; the latch on
// each injected failure; the recovery of a torn tail and the refusal of
// damage inside synced data; concurrent appenders.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <set>
#include <random>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "heap_count.hpp"
#include "seshat/backends/segment/segment_log.hpp"
#include "seshat/log_backend.hpp"

using seshat::errc;
using seshat::log_entry_input;
using seshat::log_group;
using seshat::log_id;
using seshat::segment_log;
using seshat::segment_log_options;
using seshat::status;
using seshat::detail::fs_result;
using seshat::detail::fs_status;
using seshat::detail::log_file;
using seshat::detail::log_fs;
using seshat::detail::memory_log_fs;
namespace fs = std::filesystem;

static_assert(seshat::log_engine<segment_log>, "segment_log has the operations of docs/log-engine.md section 2");

namespace {

const log_group k_system{0, 0};
log_group data_group(std::uint64_t id) { return {3, id}; }

// A log_fs over another that counts writes and syncs, can fail one call of
// a kind with EIO, and can hold every datasync until released.
class test_fs final : public log_fs {
 public:
  enum class call { create, allocate, pwrite, datasync, rename, sync_directory, unlink };
  explicit test_fs(log_fs& inner) : inner_(inner) {}

  std::atomic<int> pwrites{0}, datasyncs{0}, dsync_writes{0}, unlinks{0};
  std::atomic<int> direct_writes{0};  // pwrites through an O_DIRECT descriptor
  std::atomic<std::uint64_t> pread_bytes{0};
  void reset_counts() { pwrites = datasyncs = dsync_writes = unlinks = direct_writes = 0; pread_bytes = 0; }
  // From now on every pwrite through an O_DIRECT descriptor is refused with
  // EINVAL, nothing written (as a file system that stops taking O_DIRECT).
  std::atomic<bool> refuse_direct{false};
  // Called with the call's name before every pwrite, datasync, rename,
  // unlink and directory fsync (under the wrapper's own lock: one at a time).
  std::function<void(const std::string&)> before_each;
  // "pwrite <file name>", "datasync <file name>", in call order.
  std::vector<std::string> calls() {
    std::lock_guard l(mu_);
    return calls_;
  }
  // Bytes pwritten to the file named `name` (its name at the time).
  std::uint64_t written_to(const std::string& name) {
    std::lock_guard l(mu_);
    return written_.count(name) ? written_[name] : 0;
  }
  std::atomic<std::uint64_t> zeroed_bytes{0};  // by write_zeroes that the file system took
  // Fails the next call of kind `c` with EIO (once).
  void fail_next(call c) { fail_ = static_cast<int>(c); }
  void hold_syncs(bool hold) {
    std::lock_guard l(mu_);
    hold_ = hold;
    cv_.notify_all();
  }
  // Waits until a datasync is held.
  void wait_held() {
    std::unique_lock l(mu_);
    cv_.wait(l, [&] { return held_ > 0; });
  }

  fs_result<log_file> open(const fs::path& p, seshat::detail::open_flags f) override {
    if (f.create_exclusive && take(call::create)) return eio("open", p);
    return inner_.open(p, f);
  }
  fs_status pwrite(const log_file& f, std::uint64_t off, std::span<const std::string_view> pieces,
                   seshat::detail::write_flags w) override {
    step("pwrite " + f.path.filename().string());
    if (take(call::pwrite)) return eio("pwritev2", f.path);
    if (f.direct && refuse_direct) return seshat::detail::os_failure("pwritev2", f.path, EINVAL);
    ++pwrites;
    if (f.direct) ++direct_writes;
    if (w.dsync) ++dsync_writes;
    note("pwrite " + f.path.filename().string());
    {
      std::lock_guard l(mu_);
      for (std::string_view p : pieces) written_[f.path.filename().string()] += p.size();
    }
    return inner_.pwrite(f, off, pieces, w);
  }
  fs_result<std::size_t> pread(const log_file& f, std::uint64_t off, std::span<char> b) override {
    auto n = inner_.pread(f, off, b);
    if (n.ok()) pread_bytes += *n;
    return n;
  }
  fs_status datasync(const log_file& f) override {
    step("datasync " + f.path.filename().string());
    {
      std::unique_lock l(mu_);
      ++held_;
      cv_.notify_all();
      cv_.wait(l, [&] { return !hold_; });
      --held_;
    }
    if (take(call::datasync)) return eio("fdatasync", f.path);
    ++datasyncs;
    note("datasync " + f.path.filename().string());
    return inner_.datasync(f);
  }
  fs_status allocate(const log_file& f, std::uint64_t size) override {
    if (take(call::allocate)) return eio("fallocate", f.path);
    return inner_.allocate(f, size);
  }
  fs_result<bool> write_zeroes(const log_file& f, std::uint64_t o, std::uint64_t l) override {
    auto done = inner_.write_zeroes(f, o, l);
    if (done.ok() && *done) zeroed_bytes += l;
    return done;
  }
  fs_result<std::uint64_t> size(const log_file& f) override { return inner_.size(f); }
  fs_result<std::uint64_t> link_count(const log_file& f) override { return inner_.link_count(f); }
  fs_status close(const log_file& f) override { return inner_.close(f); }
  fs_status create_directory(const fs::path& p) override { return inner_.create_directory(p); }
  fs_status rename(const fs::path& a, const fs::path& b) override {
    step("rename " + b.filename().string());
    if (take(call::rename)) return eio("rename", b);
    return inner_.rename(a, b);
  }
  fs_status replace(const fs::path& a, const fs::path& b) override {
    step("rename " + b.filename().string());
    if (take(call::rename)) return eio("rename", b);
    return inner_.replace(a, b);
  }
  fs_status link(const fs::path& a, const fs::path& b) override { return inner_.link(a, b); }
  fs_status unlink(const fs::path& p) override {
    step("unlink " + p.filename().string());
    if (take(call::unlink)) return eio("unlink", p);
    ++unlinks;
    return inner_.unlink(p);
  }
  fs_status sync_directory(const fs::path& p) override {
    step("fsync directory");
    if (take(call::sync_directory)) return eio("fsync directory", p);
    return inner_.sync_directory(p);
  }
  fs_result<std::vector<std::string>> list(const fs::path& d) override { return inner_.list(d); }

 private:
  bool take(call c) {
    int want = static_cast<int>(c);
    return fail_.compare_exchange_strong(want, -1);
  }
  void step(const std::string& c) {
    std::lock_guard l(step_mu_);
    if (before_each) before_each(c);
  }
  void note(std::string c) {
    std::lock_guard l(mu_);
    calls_.push_back(std::move(c));
  }
  static fs_status eio(const char* what, const fs::path& p) {
    return seshat::detail::os_failure(what, p, EIO);
  }
  log_fs& inner_;
  std::atomic<int> fail_{-1};
  std::mutex mu_, step_mu_;
  std::condition_variable cv_;
  bool hold_ = false;
  int held_ = 0;
  std::vector<std::string> calls_;
  std::map<std::string, std::uint64_t> written_;
};

// Entries with payloads "<tag>-<index>", all of term `term`.
struct batch {
  std::vector<std::string> payloads;
  std::vector<log_entry_input> inputs;
  batch(std::uint64_t first, std::size_t n, std::uint64_t term, const std::string& tag = "e") {
    for (std::size_t i = 0; i < n; ++i) payloads.push_back(tag + "-" + std::to_string(first + i));
    for (const std::string& p : payloads) inputs.push_back({term, p});
  }
};

std::unique_ptr<segment_log> open_log(log_fs& fs, segment_log_options o = {}) {
  auto r = segment_log::open(fs, "/log", o);
  REQUIRE_MESSAGE(r.ok(), r.status().to_string());
  return std::move(*r);
}

void check_entries(const segment_log& log, const log_group& g, std::uint64_t lo, std::uint64_t hi,
                   const std::string& tag = "e") {
  auto got = log.read(g, lo, hi);
  REQUIRE_MESSAGE(got.ok(), got.status().to_string());
  REQUIRE(got->size() == hi - lo);
  for (std::uint64_t i = lo; i < hi; ++i) CHECK((*got)[i - lo] == tag + "-" + std::to_string(i));
}

segment_log_options small_segments() {
  segment_log_options o;
  o.segment_bytes = 16 * 1024;
  return o;
}

// `o` without the maintenance thread's segment preparation: for the cases
// that count the writer's own calls, or that expect the last segment file
// to be the one written last.
segment_log_options writer_only(segment_log_options o = {}) {
  o.prepare_ahead = false;
  return o;
}

// writer_only, and the writer thread waits for work as long as it may, so
// that sync() leads every round: for the cases that count per round.
segment_log_options rounds_led_by_sync() {
  segment_log_options o;
  o.max_linger_us = 100000;
  o.idle_gap_us = 100000;
  return writer_only(o);
}

// The names of the segment files in /log of `mem`, in seq order.
std::vector<std::string> segment_files(memory_log_fs& mem) {
  std::vector<std::string> out;
  auto names = mem.list("/log");
  REQUIRE(names.ok());
  for (const std::string& n : *names)
    if (seshat::detail::segment::parse_segment_name(n)) out.push_back(n);
  return out;
}

// True when the segment `name` of `mem` carries a seal (trailer and footer) that checks.
bool is_sealed(memory_log_fs& mem, const std::string& name) {
  using namespace seshat::detail::segment;
  const std::string image = mem.contents("/log/" + name);
  auto h = decode_header(image.substr(0, std::min<std::size_t>(image.size(), k_header_bytes)));
  return h.ok() && decode_seal(image, *h).ok();
}

// A copy of every file of /log in `from`: the disk as a process crash
// leaves it (memory_log_fs keeps every byte written).
void copy_log(memory_log_fs& from, memory_log_fs& to) {
  REQUIRE(to.create_directory("/log").ok());
  auto names = from.list("/log");
  REQUIRE(names.ok());
  for (const std::string& n : *names) {
    const std::string bytes = from.contents("/log/" + n);
    auto f = to.open("/log/" + n, {.create_exclusive = true});
    REQUIRE(f.ok());
    const std::string_view pieces[] = {bytes};
    REQUIRE(to.pwrite(*f, 0, pieces, {}).ok());
    REQUIRE(to.close(*f).ok());
  }
}

// copy_log without assertions, for a log_fs hook on an engine's threads.
std::shared_ptr<memory_log_fs> snapshot_log(memory_log_fs& from) {
  auto to = std::make_shared<memory_log_fs>();
  if (!to->create_directory("/log").ok()) return nullptr;
  auto names = from.list("/log");
  if (!names.ok()) return nullptr;
  for (const std::string& n : *names) {
    const std::string bytes = from.contents("/log/" + n);
    auto f = to->open("/log/" + n, {.create_exclusive = true});
    if (!f.ok()) return nullptr;
    const std::string_view pieces[] = {bytes};
    if (!to->pwrite(*f, 0, pieces, {}).ok() || !to->close(*f).ok()) return nullptr;
  }
  return to;
}

// Overwrites byte `at` of /log/<name> in `mem` with its complement.
void flip_byte(memory_log_fs& mem, const std::string& name, std::uint64_t at) {
  const std::string image = mem.contents("/log/" + name);
  REQUIRE(at < image.size());
  auto f = mem.open("/log/" + name, {});
  REQUIRE(f.ok());
  const std::string flipped(1, static_cast<char>(~image[at]));
  const std::string_view pieces[] = {flipped};
  REQUIRE(mem.pwrite(*f, at, pieces, {}).ok());
  REQUIRE(mem.close(*f).ok());
}

// Breaks the trailer of /log/<name>: open scans the segment, as one whose seal was lost.
void unseal(memory_log_fs& mem, const std::string& name) {
  flip_byte(mem, name, mem.contents("/log/" + name).size() - 1);
}

// Polls `done` for up to 10 s.
template <class F>
bool eventually(F done) {
  for (int i = 0; i < 10000; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return done();
}

// Everything `a` and `b` say about each of `groups`: state, terms and entries.
void check_same_log(const segment_log& a, const segment_log& b, const std::vector<log_group>& groups) {
  for (const log_group& g : groups) {
    CAPTURE(seshat::detail::segment::to_string(g));
    const auto sa = a.state(g), sb = b.state(g);
    CHECK(sa == sb);
    if (!sa.last) continue;
    const std::uint64_t first = sa.last_purged ? sa.last_purged->index + 1 : 1;
    for (std::uint64_t i = first == 1 ? 1 : first - 1; i <= sa.last->index; ++i) {
      auto ta = a.term_at(g, i), tb = b.term_at(g, i);
      CHECK(ta.ok() == tb.ok());
      if (ta.ok() && tb.ok()) CHECK(*ta == *tb);
    }
    if (first > sa.last->index) continue;
    std::uint64_t lo = first;
    while (lo <= sa.last->index && !a.term_at(g, lo).ok()) ++lo;  // the caller's floor
    auto ra = a.read(g, lo, sa.last->index + 1), rb = b.read(g, lo, sa.last->index + 1);
    REQUIRE_MESSAGE(ra.ok(), ra.status().to_string());
    REQUIRE_MESSAGE(rb.ok(), rb.status().to_string());
    CHECK(*ra == *rb);
  }
}

// A random workload over `groups` on `log`: appends of 1 to 8 entries (term
// changes among them), truncations, purges, resets, votes and committed ids.
void random_workload(segment_log& log, const std::vector<log_group>& groups, int ops, unsigned seed) {
  std::mt19937 rng(seed);
  std::map<log_group, std::uint64_t> term;
  for (int op = 0; op < ops; ++op) {
    const log_group g = groups[rng() % groups.size()];
    auto& t = term[g];
    if (t == 0) t = 1;
    const auto st = log.state(g);
    const std::uint64_t last = st.last ? st.last->index : 0;
    const std::uint64_t floor = st.last_purged ? st.last_purged->index : 0;
    const unsigned pick = rng() % 100;
    if (pick < 70 || last == 0) {
      if (rng() % 10 == 0) ++t;
      batch b(last + 1, 1 + rng() % 8, t, std::string(1 + rng() % 200, 'p'));
      status s = log.append(g, last + 1, b.inputs, rng() % 4 == 0);
      REQUIRE_MESSAGE(s.ok(), s.to_string());
    } else if (pick < 78 && last > floor + 1) {
      const std::uint64_t since = floor + 1 + rng() % (last - floor);
      REQUIRE(log.truncate_from(g, since, rng() % 2 == 0).ok());
    } else if (pick < 88 && last > floor) {
      const std::uint64_t upto = floor + 1 + rng() % ((last - floor) / 4 + 1);  // a slow purge
      REQUIRE(log.purge_to(g, log_id{*log.term_at(g, upto), upto}).ok());
    } else if (pick < 89) {
      REQUIRE(log.reset(g, log_id{t, last + 5}).ok());
    } else if (pick < 96) {
      REQUIRE(log.save_vote(g, seshat::vote{t, rng() % 3 + 1, rng() % 2 == 0}).ok());
    } else if (last > 0) {
      REQUIRE(log.save_committed(g, log_id{*st.last}).ok());
    }
  }
}

}  // namespace

TEST_SUITE_BEGIN("segment log");

TEST_CASE("appended entries are readable on return and after a reopen") {
  memory_log_fs mem;
  {
    auto log = open_log(mem);
    batch a(1, 3, 1), b(4, 2, 2);
    REQUIRE(log->append(k_system, 1, a.inputs, true).ok());
    REQUIRE(log->append(k_system, 4, b.inputs, false).ok());
    check_entries(*log, k_system, 1, 6);
    CHECK(*log->term_at(k_system, 3) == 1);
    CHECK(*log->term_at(k_system, 5) == 2);
    CHECK(log->state(k_system).last == log_id{2, 5});
    REQUIRE(log->close().ok());
  }
  auto log = open_log(mem);
  check_entries(*log, k_system, 1, 6);
  CHECK(*log->term_at(k_system, 4) == 2);
  CHECK(log->state(k_system).last == log_id{2, 5});
  batch c(6, 1, 2);
  CHECK(log->append(k_system, 6, c.inputs, true).ok());
  check_entries(*log, k_system, 2, 7);
}

TEST_CASE("every range of a record with several term runs, or cut by a truncate, reads back its own entries") {
  // A read fetches a record's head sized by the index's entry count and
  // one term run; these records need a second fetch (more runs, or more
  // entries in the record than the index keeps after the cut).
  memory_log_fs mem;
  auto log = open_log(mem);
  batch a(1, 40, 1);
  for (std::size_t i = 10; i < 40; ++i) a.inputs[i].term = 2 + i / 10;  // runs of terms 1, 3, 4, 5
  REQUIRE(log->append(k_system, 1, a.inputs, true).ok());
  batch b(41, 30, 6);
  REQUIRE(log->append(k_system, 41, b.inputs, true).ok());
  REQUIRE(log->truncate_from(k_system, 56, true).ok());  // the second record keeps [41, 56)
  auto every_range = [&](const segment_log& l) {
    for (std::uint64_t lo = 1; lo <= 55; lo += 3)
      for (std::uint64_t hi = lo + 1; hi <= 56; hi += 5) {
        CAPTURE(lo);
        CAPTURE(hi);
        check_entries(l, k_system, lo, hi);
      }
    CHECK(*l.term_at(k_system, 25) == 4);
    CHECK(l.read(k_system, 50, 57).status().is(errc::unavailable));
  };
  every_range(*log);
  REQUIRE(log->close().ok());
  every_range(*open_log(mem));
}

TEST_CASE("an append that does not continue the log is refused and changes nothing") {
  memory_log_fs mem;
  auto log = open_log(mem);
  batch a(5, 2, 3);
  REQUIRE(log->append(data_group(7), 5, a.inputs, true).ok());  // the caller keeps the floor
  batch gap(8, 1, 3), overlap(6, 1, 3), older(7, 1, 2);
  status s = log->append(data_group(7), 8, gap.inputs, true);
  CHECK(s.is(errc::invalid_log_index));
  CHECK(s.message().find("expected 7") != std::string::npos);
  CHECK(log->append(data_group(7), 6, overlap.inputs, true).is(errc::invalid_log_index));
  CHECK(log->append(data_group(7), 7, older.inputs, true).is(errc::invalid_log_index));
  CHECK(log->append(log_group{3, 0}, 1, a.inputs, true).is(errc::invalid_argument));
  CHECK(log->state(data_group(7)).last == log_id{3, 6});
  CHECK(log->read(data_group(7), 5, 8).status().is(errc::unavailable));
  check_entries(*log, data_group(7), 5, 7);
}

TEST_CASE("vote, committed and last purged survive a reopen") {
  memory_log_fs mem;
  {
    auto log = open_log(mem);
    batch a(1, 10, 1);
    REQUIRE(log->append(k_system, 1, a.inputs, true).ok());
    REQUIRE(log->save_vote(k_system, seshat::vote{4, 2, true}).ok());
    REQUIRE(log->save_committed(k_system, log_id{1, 8}).ok());
    REQUIRE(log->purge_to(k_system, log_id{1, 3}).ok());
  }
  auto log = open_log(mem);
  const auto st = log->state(k_system);
  CHECK(st.vote_value == seshat::vote{4, 2, true});
  CHECK(st.committed == log_id{1, 8});
  CHECK(st.last_purged == log_id{1, 3});
  CHECK(st.last == log_id{1, 10});
  CHECK(log->read(k_system, 3, 5).status().is(errc::compacted));
  check_entries(*log, k_system, 4, 11);
}

TEST_CASE("truncate, purge and reset across small segments replay the same after a reopen") {
  memory_log_fs mem;
  const log_group g = data_group(1), h = data_group(2);
  const std::string gt(60, 'g'), ht(60, 'h');  // 4 segments of 16 KiB
  std::vector<seshat::segment_group_state> before;
  {
    auto log = open_log(mem, small_segments());
    for (std::uint64_t i = 1; i <= 400; i += 4) {
      batch a(i, 4, 1 + i / 100, gt), b(i, 4, 1, ht);
      REQUIRE(log->append(g, i, a.inputs, false).ok());
      REQUIRE(log->append(h, i, b.inputs, false).ok());
    }
    REQUIRE(log->truncate_from(g, 350, true).ok());
    REQUIRE(log->purge_to(g, log_id{*log->term_at(g, 120), 120}).ok());
    CHECK(log->purge_to(g, log_id{99, 130}).is(errc::invalid_argument));
    REQUIRE(log->reset(h, log_id{9, 1000}).ok());
    batch c(1001, 2, 9, ht);
    REQUIRE(log->append(h, 1001, c.inputs, true).ok());
    before = {log->state(g), log->state(h)};
    CHECK(before[0].last == log_id{4, 349});
    CHECK(before[1].last_purged == log_id{9, 1000});
    REQUIRE(log->close().ok());
    CHECK(mem.contents("/log/seg-00000000000000000004.log").size() == 16 * 1024);
  }
  auto log = open_log(mem, small_segments());
  CHECK(log->state(g) == before[0]);
  CHECK(log->state(h) == before[1]);
  check_entries(*log, g, 121, 350, gt);
  check_entries(*log, h, 1001, 1003, ht);
  CHECK(log->read(h, 999, 1001).status().is(errc::compacted));
  batch d(350, 1, 5, gt);
  CHECK(log->append(g, 350, d.inputs, true).ok());
  check_entries(*log, g, 340, 351, gt);
}

TEST_CASE("a durable round of 64 groups' append_async is one write and one sync") {
  memory_log_fs mem;
  test_fs counting(mem);
  auto log = open_log(counting, rounds_led_by_sync());
  std::vector<batch> batches;
  batches.reserve(64);  // batch holds views of its own strings: never moved
  for (int i = 0; i < 64; ++i) batches.emplace_back(1, 16, 1);
  std::atomic<int> fired{0};
  std::vector<std::uint64_t> order;  // written by the writer thread only
  counting.reset_counts();
  for (std::uint64_t i = 0; i < 64; ++i)
    REQUIRE(log->append_async(data_group(i + 1), 1, batches[i].inputs, [&, i](status s) {
      CHECK(s.ok());
      order.push_back(i);
      ++fired;
    }).ok());
  REQUIRE(log->sync().ok());
  CHECK(counting.pwrites == 1);
  CHECK(counting.datasyncs == 1);
  REQUIRE(log->close().ok());  // fires what is left to fire
  CHECK(fired == 64);
  CHECK(std::is_sorted(order.begin(), order.end()));  // in staging order
  CHECK(counting.pwrites == 2);    // and the seal close writes
  CHECK(counting.datasyncs == 2);
}

TEST_CASE("the writer thread rounds append_async work by itself, one write and one sync a round") {
  memory_log_fs mem;
  test_fs counting(mem);
  auto log = open_log(counting, writer_only());
  counting.reset_counts();
  std::mutex mu;
  std::condition_variable cv;
  int fired = 0;
  batch a(1, 8, 1);
  for (std::uint64_t g = 1; g <= 8; ++g)
    REQUIRE(log->append_async(data_group(g), 1, a.inputs, [&](status s) {
      CHECK(s.ok());
      std::lock_guard l(mu);
      ++fired;
      cv.notify_all();
    }).ok());
  std::unique_lock l(mu);
  REQUIRE(cv.wait_for(l, std::chrono::seconds(10), [&] { return fired == 8; }));
  CHECK(counting.pwrites >= 1);
  CHECK(counting.pwrites == counting.datasyncs);
}

TEST_CASE("a round that writes a later segment first syncs the earlier one") {
  memory_log_fs mem;
  test_fs order(mem);
  auto log = open_log(order, small_segments());
  const std::string big(10000, 'x');
  const log_entry_input one[] = {{1, big}};
  REQUIRE(log->append(k_system, 1, one, false).ok());  // written into seg 1, not synced
  REQUIRE(log->append(k_system, 2, one, false).ok());  // does not fit: seg 2
  const std::vector<std::string> calls = order.calls();
  const auto sync1 = std::find(calls.begin(), calls.end(), "datasync seg-00000000000000000001.log");
  const auto write2 = std::find(calls.begin(), calls.end(), "pwrite seg-00000000000000000002.log");
  REQUIRE(write2 != calls.end());
  CHECK(sync1 < write2);
}

TEST_CASE("a buffered append is in the file on return, and sync() then makes it durable with one fdatasync") {
  memory_log_fs mem;
  test_fs counting(mem);
  auto log = open_log(counting, writer_only());
  counting.reset_counts();
  REQUIRE(log->append(k_system, 1, batch(1, 2, 1, "buffered").inputs, false).ok());
  CHECK(counting.pwrites == 1);
  CHECK(counting.datasyncs == 0);
  CHECK(mem.contents("/log/seg-00000000000000000001.log").find("buffered-2") != std::string::npos);
  REQUIRE(log->sync().ok());
  CHECK(counting.pwrites == 1);
  CHECK(counting.datasyncs == 1);
  REQUIRE(log->sync().ok());  // nothing left to sync
  CHECK(counting.datasyncs == 1);
}

TEST_CASE("no callback fires before its round's sync returned") {
  memory_log_fs mem;
  test_fs gate(mem);
  auto log = open_log(gate, writer_only());  // the held sync is the round's
  gate.hold_syncs(true);
  std::atomic<bool> fired{false};
  batch a(1, 1, 1);
  REQUIRE(log->append_async(k_system, 1, a.inputs, [&](status s) {
    CHECK(s.ok());
    fired = true;
  }).ok());
  check_entries(*log, k_system, 1, 2);  // readable on return, from the staging buffer
  gate.wait_held();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK_FALSE(fired.load());
  check_entries(*log, k_system, 1, 2);  // readable while its round writes
  gate.hold_syncs(false);
  REQUIRE(log->close().ok());
  CHECK(fired.load());
}

TEST_CASE("each injected failure latches the engine until reopen") {
  using call = test_fs::call;
  for (call c : {call::pwrite, call::datasync, call::create, call::allocate, call::rename,
                 call::sync_directory}) {
    CAPTURE(static_cast<int>(c));
    memory_log_fs mem;
    test_fs faulty(mem);
    auto log = open_log(faulty, writer_only(small_segments()));  // the round creates segments
    batch first(1, 1, 1);
    REQUIRE(log->append(k_system, 1, first.inputs, true).ok());
    faulty.fail_next(c);
    // Appends of 6 KiB: the third needs a new segment (its creation's calls fail there).
    status failed;
    std::uint64_t next = 2;
    for (int i = 0; i < 4 && failed.ok(); ++i, ++next) {
      std::string big(6000, 'x');
      const log_entry_input in[] = {{1, big}};
      failed = log->append(k_system, next, in, true);
    }
    REQUIRE(failed.is(errc::io_error));
    CHECK(failed.message().find("Input/output error") != std::string::npos);
    CHECK(failed.message().find("/log") != std::string::npos);
    batch later(next, 1, 1);
    status refused = log->append(k_system, next, later.inputs, true);
    CHECK(refused.is(errc::io_error));
    CHECK(refused.message().find("refused, an earlier write failed") != std::string::npos);
    CHECK(log->save_vote(k_system, seshat::vote{2, 1, false}).is(errc::io_error));
    CHECK(log->sync().is(errc::io_error));
    std::atomic<int> async_error{0};
    CHECK(log->append_async(k_system, next, later.inputs, [&](status) { ++async_error; })
              .is(errc::io_error));
    check_entries(*log, k_system, 1, 2);  // reads go on
    CHECK(log->close().is(errc::io_error));
    log.reset();
    auto again = open_log(mem, small_segments());  // reopen: what is on disk
    check_entries(*again, k_system, 1, 2);
    CHECK(again->state(k_system).last->index >= 1);
  }
}

TEST_CASE("a failed sync fails the callbacks of its round") {
  memory_log_fs mem;
  test_fs faulty(mem);
  auto log = open_log(faulty, writer_only());  // the failure hits the round's sync
  faulty.fail_next(test_fs::call::datasync);
  std::promise<status> got;
  batch a(1, 2, 1);
  REQUIRE(log->append_async(k_system, 1, a.inputs, [&](status s) { got.set_value(s); }).ok());
  status s = got.get_future().get();
  CHECK(s.is(errc::io_error));
  CHECK(s.message().find("fdatasync") != std::string::npos);
  CHECK(log->append(k_system, 3, batch(3, 1, 1).inputs, false).is(errc::io_error));
}

TEST_CASE("a torn last frame is cut under tolerate and refused under absolute consistency") {
  memory_log_fs mem;
  {
    auto log = open_log(mem);
    REQUIRE(log->append(k_system, 1, batch(1, 2, 1).inputs, true).ok());
    REQUIRE(log->append(k_system, 3, batch(3, 2, 1).inputs, true).ok());
    REQUIRE(log->close().ok());
  }
  const fs::path seg = "/log/seg-00000000000000000001.log";
  unseal(mem, seg.filename().string());  // as a power loss before the close leaves it
  const std::string image = mem.contents(seg);
  // The second frame's last byte, flipped: a torn write of the last round.
  using seshat::detail::segment::decode_frame;
  auto one = decode_frame(std::string_view(image).substr(4096), 4096, 1);
  REQUIRE(one.ok());
  const std::uint32_t second_at = 4096 + one->size;
  auto two = decode_frame(std::string_view(image).substr(second_at), second_at, 1);
  REQUIRE(two.ok());
  REQUIRE(two->size > 0);
  const std::size_t end = second_at + two->size;
  {
    auto f = mem.open(seg, {});
    REQUIRE(f.ok());
    const std::string flipped(1, static_cast<char>(image[end - 1] ^ 0x5a));
    const std::string_view pieces[] = {flipped};
    REQUIRE(mem.pwrite(*f, end - 1, pieces, {}).ok());
    REQUIRE(mem.close(*f).ok());
  }
  segment_log_options strict;
  strict.recovery = seshat::recovery_mode::absolute_consistency;
  auto refused = segment_log::open(mem, "/log", strict);
  REQUIRE(refused.status().is(errc::corrupted_data));
  CHECK(refused.status().message().find("seg-00000000000000000001.log, byte ") != std::string::npos);
  CHECK(refused.status().message().find("unsynced tail") != std::string::npos);
  auto log = open_log(mem);  // tolerate: cut at the torn frame
  CHECK(log->state(k_system).last == log_id{1, 2});
  check_entries(*log, k_system, 1, 3);
  REQUIRE(log->append(k_system, 3, batch(3, 1, 1).inputs, true).ok());
  log.reset();
  auto reopened = open_log(mem, strict);  // the cut was durable: nothing torn left
  check_entries(*reopened, k_system, 1, 4);
}

TEST_CASE("damage before a later frame refuses the open, naming segment and byte") {
  memory_log_fs mem;
  {
    auto log = open_log(mem);
    REQUIRE(log->append(k_system, 1, batch(1, 2, 1).inputs, true).ok());
    REQUIRE(log->append(k_system, 3, batch(3, 2, 1).inputs, true).ok());
  }
  const fs::path seg = "/log/seg-00000000000000000001.log";
  unseal(mem, seg.filename().string());  // a sealed segment's frames are not read at open
  auto f = mem.open(seg, {});
  REQUIRE(f.ok());
  const std::string flipped = "\x7f";
  const std::string_view pieces[] = {flipped};
  REQUIRE(mem.pwrite(*f, 4096 + 40, pieces, {}).ok());  // inside the first frame
  REQUIRE(mem.close(*f).ok());
  auto refused = segment_log::open(mem, "/log");
  REQUIRE(refused.status().is(errc::corrupted_data));
  const std::string m = refused.status().message();
  CHECK(m.find("log engine /log: seg-00000000000000000001.log, byte 4096: frame checksum mismatch") !=
        std::string::npos);
  CHECK(m.find("inside synced data") != std::string::npos);
  CHECK(mem.contents(seg).substr(4096 + 40, 1) == flipped);  // nothing changed
  segment_log_options strict;  // and the same under absolute consistency
  strict.recovery = seshat::recovery_mode::absolute_consistency;
  auto strict_refused = segment_log::open(mem, "/log", strict);
  REQUIRE(strict_refused.status().is(errc::corrupted_data));
  CHECK(strict_refused.status().message().find("inside synced data") != std::string::npos);
}

namespace {

// Writes `bytes` at `at` of `path` in `mem`.
void overwrite(memory_log_fs& mem, const fs::path& path, std::uint64_t at, const std::string& bytes) {
  auto f = mem.open(path, {});
  REQUIRE(f.ok());
  const std::string_view pieces[] = {bytes};
  REQUIRE(mem.pwrite(*f, at, pieces, {}).ok());
  REQUIRE(mem.close(*f).ok());
}

// The offsets of the frames of `image` (segment `seq`), in order.
std::vector<std::uint32_t> frame_offsets(const std::string& image, std::uint64_t seq) {
  std::vector<std::uint32_t> out;
  std::uint32_t at = 4096;
  for (;;) {
    auto f = seshat::detail::segment::decode_frame(std::string_view(image).substr(at), at, seq);
    REQUIRE(f.ok());
    if (f->what != seshat::detail::segment::scanned_frame::kind::frame) return out;
    out.push_back(at);
    at += f->size;
  }
}

}  // namespace

TEST_CASE("a sector tear of the last frame is cut under tolerate and refused under absolute consistency") {
  memory_log_fs mem;
  const std::string big(1500, 't');  // the last frame spans sectors
  const log_entry_input one[] = {{1, big}};
  {
    auto log = open_log(mem);
    REQUIRE(log->append(k_system, 1, batch(1, 2, 1).inputs, true).ok());
    REQUIRE(log->append(k_system, 3, one, true).ok());
  }
  const fs::path seg = "/log/seg-00000000000000000001.log";
  unseal(mem, seg.filename().string());  // a power loss before the seal
  const std::string image = mem.contents(seg);
  const auto frames = frame_offsets(image, 1);
  REQUIRE(frames.size() == 2);
  auto last = seshat::detail::segment::decode_frame(std::string_view(image).substr(frames[1]), frames[1], 1);
  REQUIRE(last.ok());
  const std::uint64_t frame_end = frames[1] + last->size;
  // The sectors of the last write from the first 512-byte boundary inside the frame: never written.
  const std::uint64_t torn_from = (frames[1] / 512 + 1) * 512;
  REQUIRE(torn_from < frame_end);
  overwrite(mem, seg, torn_from, std::string(frame_end - torn_from, '\0'));
  segment_log_options strict;
  strict.recovery = seshat::recovery_mode::absolute_consistency;
  auto refused = segment_log::open(mem, "/log", strict);
  REQUIRE(refused.status().is(errc::corrupted_data));
  CHECK(refused.status().message().find("seg-00000000000000000001.log, byte " + std::to_string(frames[1])) !=
        std::string::npos);
  CHECK(refused.status().message().find("unsynced tail") != std::string::npos);
  auto log = open_log(mem);  // tolerate: the torn frame cut
  CHECK(log->state(k_system).last == log_id{1, 2});
  check_entries(*log, k_system, 1, 3);
}

TEST_CASE("a zeroed 512-byte sector inside synced data is refused in both modes") {
  // Each position: the sector holding the first frame's start (a zero length
  // where a frame was: etcd would end the log there), and one inside a
  // frame followed by later ones.
  for (int where = 0; where < 2; ++where) {
    CAPTURE(where);
    memory_log_fs mem;
    {
      auto log = open_log(mem);
      for (std::uint64_t i = 1; i <= 160; i += 4) REQUIRE(log->append(k_system, i, batch(i, 4, 1).inputs, true).ok());
    }
    const fs::path seg = "/log/seg-00000000000000000001.log";
    unseal(mem, seg.filename().string());  // a power loss before the seal: the frames are scanned
    const std::string image = mem.contents(seg);
    const auto frames = frame_offsets(image, 1);
    REQUIRE(frames.size() == 40);
    const std::uint64_t sector = where == 0 ? 4096 : (frames[4] / 512 + 1) * 512;
    REQUIRE(sector + 512 < frames.back());
    overwrite(mem, seg, sector, std::string(512, '\0'));
    for (auto mode : {seshat::recovery_mode::tolerate_corrupted_tail, seshat::recovery_mode::absolute_consistency}) {
      segment_log_options o;
      o.recovery = mode;
      auto refused = segment_log::open(mem, "/log", o);
      REQUIRE_MESSAGE(refused.status().is(errc::corrupted_data),
                      (refused.ok() ? std::string("opened") : refused.status().to_string()));
      CHECK(refused.status().message().find("seg-00000000000000000001.log, byte ") != std::string::npos);
      CHECK(refused.status().message().find("inside synced data") != std::string::npos);
    }
  }
}

TEST_CASE("a seal lost or torn after a tail cut makes the next open scan again, to the same cut") {
  memory_log_fs mem;
  {
    auto log = open_log(mem);
    REQUIRE(log->append(k_system, 1, batch(1, 2, 1).inputs, true).ok());
    REQUIRE(log->append(k_system, 3, batch(3, 2, 1).inputs, true).ok());
  }
  const fs::path seg = "/log/seg-00000000000000000001.log";
  unseal(mem, seg.filename().string());
  const std::string image = mem.contents(seg);
  const auto frames = frame_offsets(image, 1);
  REQUIRE(frames.size() == 2);
  overwrite(mem, seg, frames[1] + 40, "\x7f");  // the last frame torn
  {
    auto log = open_log(mem);  // cuts at frames[1] and seals the segment there
    CHECK(log->state(k_system).last == log_id{1, 2});
  }
  REQUIRE(is_sealed(mem, seg.filename().string()));
  using namespace seshat::detail::segment;
  const std::string sealed = mem.contents(seg);
  auto t = decode_trailer(std::string_view(sealed).substr(sealed.size() - k_trailer_bytes), 1, sealed.size());
  REQUIRE(t.ok());
  for (int damage = 0; damage < 2; ++damage) {  // the footer torn; the whole seal lost
    CAPTURE(damage);
    memory_log_fs copy;
    copy_log(mem, copy);
    if (damage == 0) flip_byte(copy, seg.filename().string(), t->footer_at + 9);
    else overwrite(copy, seg, t->footer_at, std::string(sealed.size() - t->footer_at, '\0'));
    REQUIRE_FALSE(is_sealed(copy, seg.filename().string()));
    segment_log_options strict;
    strict.recovery = seshat::recovery_mode::absolute_consistency;
    auto log = open_log(copy, strict);  // the cut was durable: a scan ends there, nothing torn
    CHECK(log->state(k_system).last == log_id{1, 2});
    check_entries(*log, k_system, 1, 3);
  }
}

TEST_CASE("damage in the last frame of a segment followed by a written one refuses the open") {
  memory_log_fs mem;
  const std::string big(10000, 'x');
  const log_entry_input one[] = {{1, big}};
  {
    auto log = open_log(mem, small_segments());
    REQUIRE(log->append(k_system, 1, one, true).ok());
    REQUIRE(log->append(k_system, 2, one, true).ok());  // in seg 2
  }
  const fs::path seg = "/log/seg-00000000000000000001.log";
  unseal(mem, seg.filename().string());  // a sealed segment's frames are not read at open
  unseal(mem, "seg-00000000000000000002.log");
  auto f = mem.open(seg, {});
  REQUIRE(f.ok());
  const std::string flipped = "\x7f";
  const std::string_view pieces[] = {flipped};
  REQUIRE(mem.pwrite(*f, 4096 + 5000, pieces, {}).ok());  // seg 1's only (last) frame
  REQUIRE(mem.close(*f).ok());
  auto refused = segment_log::open(mem, "/log", small_segments());
  REQUIRE(refused.status().is(errc::corrupted_data));
  CHECK(refused.status().message().find("seg-00000000000000000002.log holds a frame") !=
        std::string::npos);
}

TEST_CASE("a read of a damaged entry is corrupted data naming segment and byte, never other bytes") {
  memory_log_fs mem;
  auto log = open_log(mem);
  REQUIRE(log->append(k_system, 1, batch(1, 3, 1).inputs, true).ok());
  const fs::path seg = "/log/seg-00000000000000000001.log";
  const std::string image = mem.contents(seg);
  const std::size_t at = image.find("e-2");
  REQUIRE(at != std::string::npos);
  auto f = mem.open(seg, {});
  REQUIRE(f.ok());
  const std::string other = "e-9";
  const std::string_view pieces[] = {other};
  REQUIRE(mem.pwrite(*f, at, pieces, {}).ok());
  REQUIRE(mem.close(*f).ok());
  check_entries(*log, k_system, 1, 2);  // the entry before is intact
  auto got = log->read(k_system, 1, 4);
  REQUIRE(got.status().is(errc::corrupted_data));
  const std::string want = "log engine /log: seg-00000000000000000001.log, byte " +
                           std::to_string(at - 4) +
                           ": entry 2 of group (family 0, id 0) checksum mismatch (stored 0x";
  CHECK(got.status().message().substr(0, want.size()) == want);
}

TEST_CASE("the next segment is prepared ahead, zero-filled and durable under its name, so the round that moves to it only writes and syncs") {
  for (const bool offload : {false, true}) {  // FALLOC_FL_WRITE_ZEROES refused (tmpfs), taken
    CAPTURE(offload);
    memory_log_fs mem({.direct_block = 512, .dsync = true, .write_zeroes = offload});
    test_fs counting(mem);
    auto log = open_log(counting, small_segments());
    REQUIRE(log->settle().ok());  // waits for the maintenance thread's preparation
    const std::vector<std::string> files = segment_files(mem);
    REQUIRE(files.size() == 2);  // the open segment and the next
    CHECK(files[1] == "seg-00000000000000000002.log");
    CHECK(log->prepared_segments() == 1);
    const std::string prep2 = "prep-00000000000000000002.tmp";
    if (offload)
      CHECK(counting.zeroed_bytes == 16 * 1024);
    else
      CHECK(counting.written_to(prep2) >= 16 * 1024 + 4096);  // zeros, then the header
    // Its header and zeros were synced before it got its seg- name.
    const std::vector<std::string> before = counting.calls();
    CHECK(std::find(before.begin(), before.end(), "datasync " + prep2) != before.end());

    const std::string big(10000, 'x');
    const log_entry_input one[] = {{1, big}};
    REQUIRE(log->append(k_system, 1, one, true).ok());  // into seg 1
    const std::size_t from = counting.calls().size();
    REQUIRE(log->append(k_system, 2, one, true).ok());  // does not fit: seg 2, ready
    const std::vector<std::string> calls = counting.calls();
    const std::vector<std::string> round(calls.begin() + static_cast<std::ptrdiff_t>(from), calls.end());
    CHECK(std::count(round.begin(), round.end(), "pwrite seg-00000000000000000002.log") == 1);
    CHECK(std::count(round.begin(), round.end(), "datasync seg-00000000000000000002.log") == 1);
    CHECK(std::count(round.begin(), round.end(), "pwrite " + prep2) == 0);  // not created now
    REQUIRE(log->close().ok());
    auto again = open_log(mem, small_segments());
    auto got = again->read(k_system, 1, 3);
    REQUIRE(got.ok());
    CHECK(*got == std::vector<std::string>{big, big});
  }
}

TEST_CASE("records that fill the open segment and the one still being prepared go to a third segment, each file its header's size") {
  memory_log_fs mem;
  test_fs gated(mem);
  // The maintenance thread's preparation of seg 2 waits at its rename
  // until released (every other fs call waits meanwhile: test_fs runs
  // before_each one at a time).
  std::mutex mu;
  std::condition_variable cv;
  bool at_rename = false, release = false;
  gated.before_each = [&](const std::string& c) {
    if (c != "rename seg-00000000000000000002.log") return;
    std::unique_lock l(mu);
    at_rename = true;
    cv.notify_all();
    cv.wait(l, [&] { return release; });
  };
  auto log = open_log(gated, small_segments());
  {
    std::unique_lock l(mu);
    REQUIRE(cv.wait_for(l, std::chrono::seconds(10), [&] { return at_rename; }));
  }
  // Each record fills most of a 16 KiB segment: the first goes into seg 1,
  // the second into seg 2 (being prepared), the third fits neither.
  const std::string big[] = {std::string(10000, 'a'), std::string(10000, 'b'), std::string(10000, 'c')};
  std::atomic<int> fired{0};
  std::atomic<bool> all_ok{true};
  for (std::uint64_t i = 1; i <= 3; ++i) {
    const log_entry_input one[] = {{1, big[i - 1]}};
    REQUIRE(log->append_async(k_system, i, one, [&](status s) {
      if (!s.ok()) all_ok = false;
      ++fired;
    }).ok());
  }
  {
    std::lock_guard l(mu);
    release = true;
    cv.notify_all();
  }
  REQUIRE(log->sync().ok());
  for (int i = 0; i < 10000 && fired < 3; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(fired == 3);  // on the writer thread, after the round's sync
  CHECK(all_ok);
  auto got = log->read(k_system, 1, 4);
  REQUIRE_MESSAGE(got.ok(), got.status().to_string());
  CHECK(*got == std::vector<std::string>(std::begin(big), std::end(big)));
  REQUIRE(log->close().ok());
  for (const std::string& f : segment_files(mem)) {
    CAPTURE(f);
    CHECK(mem.contents("/log/" + f).size() == 16 * 1024);  // nothing written past a segment's end
  }
  auto again = segment_log::open(mem, "/log", small_segments());
  REQUIRE_MESSAGE(again.ok(), again.status().to_string());
  got = (*again)->read(k_system, 1, 4);
  REQUIRE_MESSAGE(got.ok(), got.status().to_string());
  CHECK(*got == std::vector<std::string>(std::begin(big), std::end(big)));
}

TEST_CASE("a burst of append_async calls the size of the last two starts its round without waiting the idle gap") {
  memory_log_fs mem;
  segment_log_options o;
  // 50 ms: a round that waits for the pause is plain to see (and the pause,
  // not the longer linger, ends each burst).
  o.idle_gap_us = 50000;
  o.max_linger_us = 100000;
  auto log = open_log(mem, o);
  constexpr int k_groups = 8;
  std::vector<batch> batches;
  batches.reserve(4);  // batch holds views of its own strings: never moved
  auto burst = [&](std::uint64_t index) {
    batches.emplace_back(index, 1, 1);
    std::mutex mu;
    std::condition_variable cv;
    int fired = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (std::uint64_t g = 1; g <= k_groups; ++g)
      REQUIRE(log->append_async(data_group(g), index, batches.back().inputs, [&](status s) {
        CHECK(s.ok());
        std::lock_guard l(mu);
        ++fired;
        cv.notify_all();
      }).ok());
    std::unique_lock l(mu);
    REQUIRE(cv.wait_for(l, std::chrono::seconds(10), [&] { return fired == k_groups; }));
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  const double first = burst(1), second = burst(2);
  CHECK(first >= 45);  // each waited for the pause that ended it
  CHECK(second >= 45);
  const double third = burst(3);  // the size of the last two: its round starts at its 8th call
  CHECK(third < 25);
  const std::uint64_t rounds = log->durable_rounds();
  CHECK(burst(4) < 25);
  CHECK(log->durable_rounds() == rounds + 1);  // one round for the burst
}

TEST_CASE("dsync mode makes a durable round one write and no fdatasync") {
  memory_log_fs mem;
  test_fs counting(mem);
  segment_log_options o;
  o.io = seshat::segment_io::dsync;
  auto log = open_log(counting, writer_only(o));
  counting.reset_counts();
  REQUIRE(log->append(k_system, 1, batch(1, 3, 1).inputs, true).ok());
  CHECK(counting.pwrites == 1);
  CHECK(counting.dsync_writes == 1);
  CHECK(counting.datasyncs == 0);
}

TEST_CASE("direct mode makes a durable round one aligned RWF_DSYNC write through O_DIRECT, and replays as the other modes do") {
  for (std::uint32_t block : {512u, 4096u}) {
    CAPTURE(block);
    // memory_log_fs refuses (EINVAL) any O_DIRECT write whose offset, length
    // or buffer is not a multiple of the block: the engine would leave
    // direct mode (io() below) at the first unaligned write.
    memory_log_fs direct_mem({.direct_block = block, .dsync = true}), page_mem;
    test_fs counting(direct_mem);
    segment_log_options o = small_segments();
    o.io = seshat::segment_io::direct;
    auto log = open_log(counting, writer_only(o));
    CHECK(log->io() == seshat::segment_io::direct);
    CHECK(log->io_note().empty());
    counting.reset_counts();
    REQUIRE(log->append(k_system, 1, batch(1, 3, 1).inputs, true).ok());
    CHECK(counting.pwrites == 1);
    CHECK(counting.direct_writes == 1);
    CHECK(counting.dsync_writes == 1);
    CHECK(counting.datasyncs == 0);
    // The next round starts inside the block the first one ended in: it
    // writes that block's bytes again, the same bytes.
    const std::string before = direct_mem.contents("/log/" + segment_files(direct_mem).back());
    REQUIRE(log->append(k_system, 4, batch(4, 1, 1).inputs, true).ok());
    const std::string after = direct_mem.contents("/log/" + segment_files(direct_mem).back());
    const auto* h = seshat::detail::segment::k_header_bytes + before.data();
    CHECK(std::string_view(h, 20) == std::string_view(after.data() + 4096, 20));
    check_entries(*log, k_system, 1, 5);
    auto page = open_log(page_mem, writer_only(small_segments()));
    REQUIRE(page->append(k_system, 1, batch(1, 4, 1).inputs, true).ok());
    const std::vector<log_group> groups{k_system, data_group(1), data_group(2)};
    random_workload(*log, groups, 600, 7);
    random_workload(*page, groups, 600, 7);
    check_same_log(*log, *page, groups);
    CHECK(log->segment_count() >= 3);  // rolled over
    CHECK(log->io() == seshat::segment_io::direct);  // no write was refused
    REQUIRE(log->close().ok());
    // Reopened in the default mode, and again in direct mode: the same log.
    for (auto io : {seshat::segment_io::write_fdatasync, seshat::segment_io::direct}) {
      o.io = io;
      auto again = open_log(direct_mem, writer_only(o));
      check_same_log(*again, *page, groups);
      const std::vector<log_group> fresh{data_group(10 + static_cast<std::uint64_t>(io))};
      random_workload(*again, fresh, 100, 8);
      random_workload(*page, fresh, 100, 8);
      check_same_log(*again, *page, groups);
      check_same_log(*again, *page, fresh);
      REQUIRE(again->close().ok());
    }
  }
}

TEST_CASE("direct mode where the file system refuses O_DIRECT at open runs as dsync and says why") {
  memory_log_fs mem({.direct_block = 0, .dsync = true});
  segment_log_options o;
  o.io = seshat::segment_io::direct;
  auto log = open_log(mem, writer_only(o));
  CHECK(log->io() == seshat::segment_io::dsync);
  CHECK(log->io_note().find("O_DIRECT refused") != std::string::npos);
  REQUIRE(log->append(k_system, 1, batch(1, 3, 1).inputs, true).ok());
  check_entries(*log, k_system, 1, 4);
}

TEST_CASE("an O_DIRECT write refused with EINVAL is done again through the page cache, and the engine stays there, losing nothing") {
  memory_log_fs mem({.direct_block = 512, .dsync = true});
  test_fs counting(mem);
  segment_log_options o = small_segments();
  o.io = seshat::segment_io::direct;
  {
    auto log = open_log(counting, writer_only(o));
    for (std::uint64_t i = 1; i <= 30; i += 3)
      REQUIRE(log->append(data_group(1), i, batch(i, 3, 1).inputs, true).ok());
    CHECK(counting.direct_writes >= 10);
    CHECK(log->io() == seshat::segment_io::direct);
    counting.refuse_direct = true;
    counting.reset_counts();
    REQUIRE(log->append(data_group(1), 31, batch(31, 3, 1).inputs, true).ok());
    CHECK(log->io() == seshat::segment_io::dsync);
    CHECK(log->io_note().find("O_DIRECT refused for seg-") != std::string::npos);
    CHECK(log->io_note().find("EINVAL") != std::string::npos);
    CHECK(counting.dsync_writes == 1);  // the refused write, done again
    counting.refuse_direct = false;      // O_DIRECT is not tried again
    for (std::uint64_t i = 34; i <= 300; i += 3)
      REQUIRE(log->append(data_group(1), i, batch(i, 3, 1).inputs, i % 2 == 0).ok());
    CHECK(counting.direct_writes == 0);
    CHECK(log->segment_count() >= 2);
    check_entries(*log, data_group(1), 1, 301);
    REQUIRE(log->close().ok());
  }
  auto log = open_log(mem, writer_only(o));
  check_entries(*log, data_group(1), 1, 301);
}

TEST_CASE("direct mode on real files: appends, reads right after, truncation into the partial block, rollover and seals survive reopens") {
  const char* base = std::getenv("SESHAT_TEST_DIR");
  const fs::path root = (base ? fs::path(base) : fs::current_path() / "test-data") /
                        ("segment-log-direct-" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  seshat::detail::posix_log_fs posix;
  auto probe = posix.probe(root);
  REQUIRE(probe.ok());
  segment_log_options o = small_segments();
  o.io = seshat::segment_io::direct;
  const log_group g = data_group(5);
  {
    auto r = segment_log::open(posix, root / "log", o);
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    segment_log& log = **r;
    if (probe->direct_block == 0) {
      MESSAGE("no O_DIRECT on " << root.string() << ": " << probe->notes);
      CHECK(log.io() != seshat::segment_io::direct);
    } else {
      CHECK(log.io() == seshat::segment_io::direct);
    }
    for (std::uint64_t i = 1; i <= 200; i += 10) {
      REQUIRE(log.append(g, i, batch(i, 10, 2).inputs, i % 20 == 1).ok());
      check_entries(log, g, 1, i + 10);  // read right after the append
    }
    // Cut inside the last partial block, then append over it.
    REQUIRE(log.truncate_from(g, 195, true).ok());
    REQUIRE(log.append(g, 195, batch(195, 6, 3, "t").inputs, true).ok());
    check_entries(log, g, 195, 201, "t");
    check_entries(log, g, 1, 195);
    for (std::uint64_t i = 201; i <= 600; i += 5)
      REQUIRE(log.append(g, i, batch(i, 5, 3, "t").inputs, true).ok());
    CHECK(log.segment_count() >= 3);
    REQUIRE(log.settle().ok());  // seals the segments moved on from
    if (probe->direct_block != 0) CHECK(log.io() == seshat::segment_io::direct);
    REQUIRE(log.close().ok());
  }
  if (probe->direct_block != 0) {  // the header says the block this life was written with
    auto names = posix.list(root / "log");
    REQUIRE(names.ok());
    std::string first;
    for (const std::string& n : *names)
      if (seshat::detail::segment::parse_segment_name(n) && first.empty()) first = n;
    auto f = posix.open(root / "log" / first, {.read_only = true});
    REQUIRE(f.ok());
    std::string h(seshat::detail::segment::k_header_bytes, '\0');
    REQUIRE(posix.pread(*f, 0, std::span<char>(h.data(), h.size())).ok());
    REQUIRE(posix.close(*f).ok());
    auto header = seshat::detail::segment::decode_header(h);
    REQUIRE(header.ok());
    CHECK(header->block == probe->direct_block);
  }
  for (auto io : {seshat::segment_io::direct, seshat::segment_io::write_fdatasync}) {
    o.io = io;
    auto r = segment_log::open(posix, root / "log", o);
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    check_entries(**r, g, 1, 195);
    check_entries(**r, g, 195, 601, "t");
    REQUIRE((*r)->close().ok());
  }
  fs::remove_all(root);
}

TEST_CASE("a segment log on real files survives a reopen") {
  const char* base = std::getenv("SESHAT_TEST_DIR");
  const fs::path root = (base ? fs::path(base) : fs::current_path() / "test-data") /
                        ("segment-log-" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  seshat::detail::posix_log_fs posix;
  {
    auto r = segment_log::open(posix, root / "log", small_segments());
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    for (std::uint64_t i = 1; i <= 200; i += 10)
      REQUIRE((*r)->append(data_group(5), i, batch(i, 10, 2).inputs, i % 20 == 1).ok());
    REQUIRE((*r)->close().ok());
  }
  auto r = segment_log::open(posix, root / "log", small_segments());
  REQUIRE_MESSAGE(r.ok(), r.status().to_string());
  check_entries(**r, data_group(5), 1, 201);
  r->reset();
  fs::remove_all(root);
}

TEST_CASE("a sealed segment's footer gives the same index as scanning it") {
  const std::vector<log_group> groups{k_system, data_group(1), data_group(2), data_group(9)};
  for (unsigned seed : {1u, 2u, 3u}) {
    CAPTURE(seed);
    memory_log_fs mem;
    {
      auto log = open_log(mem, writer_only(small_segments()));
      random_workload(*log, groups, 1500, seed);
      REQUIRE(log->close().ok());
    }
    const auto files = segment_files(mem);
    REQUIRE(files.size() >= 3);
    for (const std::string& f : files) {
      CAPTURE(f);
      CHECK(is_sealed(mem, f));  // a clean close leaves every segment sealed
    }
    // The same files with every trailer broken: open scans them all.
    memory_log_fs scanned;
    copy_log(mem, scanned);
    for (const std::string& f : files) flip_byte(scanned, f, 16 * 1024 - 1);
    for (const std::string& f : files) CHECK_FALSE(is_sealed(scanned, f));
    auto by_scan = open_log(scanned, small_segments());
    auto from_footers = open_log(mem, small_segments());
    check_same_log(*from_footers, *by_scan, groups);
  }
}

TEST_CASE("an open after a clean close reads headers, trailers and footers, not entries") {
  memory_log_fs mem;
  const std::vector<log_group> groups{k_system, data_group(1), data_group(2)};
  {
    // No segment prepared ahead: every segment left is sealed (an empty
    // prepared one would be scanned).
    auto log = open_log(mem, writer_only(small_segments()));
    random_workload(*log, groups, 1500, 7);
    REQUIRE(log->close().ok());
  }
  const auto files = segment_files(mem);
  REQUIRE(files.size() >= 3);
  test_fs counting(mem);
  auto log = open_log(counting, small_segments());
  // A header (4096 bytes), a trailer and a footer a segment; a scan reads all 16 KiB.
  CHECK(counting.pread_bytes < files.size() * (4096 + 2048));
}

TEST_CASE("a segment shared with a checkpoint gets a copy of its own before open seals it again, so the checkpoint's file keeps its bytes") {
  memory_log_fs mem;
  const std::string tag(1500, 't');  // payloads "ttt...-<index>": several 16 KiB segments
  {
    auto log = open_log(mem, writer_only(small_segments()));
    for (std::uint64_t i = 1; i <= 40; i += 4)
      REQUIRE(log->append(k_system, i, batch(i, 4, 1, tag).inputs, true).ok());
    REQUIRE(log->settle().ok());  // every segment but the open one sealed
    REQUIRE(log->checkpoint("/cp").ok());
    REQUIRE(log->close().ok());
  }
  const std::vector<std::string> files = segment_files(mem);
  REQUIRE(files.size() >= 3);
  const std::string first = files[0];
  auto links = [&](const std::string& path) {
    auto f = mem.open(path, {.read_only = true});
    REQUIRE(f.ok());
    auto n = mem.link_count(*f);
    REQUIRE(mem.close(*f).ok());
    REQUIRE(n.ok());
    return *n;
  };
  REQUIRE(links("/log/" + first) == 2);  // hard-linked into the checkpoint
  // Its trailer damaged (in the one file both names share): the next open
  // of the source scans it and seals it again.
  flip_byte(mem, first, 16 * 1024 - 1);
  REQUIRE_FALSE(is_sealed(mem, first));
  const std::string shared = mem.contents("/cp/" + first);
  REQUIRE(shared == mem.contents("/log/" + first));
  {
    auto log = open_log(mem, writer_only(small_segments()));
    check_entries(*log, k_system, 1, 41, tag);
    REQUIRE(log->close().ok());
  }
  CHECK(is_sealed(mem, first));                      // the source's own copy, sealed again
  CHECK(mem.contents("/cp/" + first) == shared);     // the checkpoint's, as it was
  CHECK(links("/log/" + first) == 1);
  CHECK(links("/cp/" + first) == 1);
  auto names = mem.list("/log");
  REQUIRE(names.ok());
  for (const std::string& n : *names) CHECK(n.substr(0, 5) != "copy-");  // no leftover
  // The checkpoint still opens (scanning that segment) with the same entries.
  auto cp = segment_log::open(mem, "/cp", writer_only(small_segments()));
  REQUIRE_MESSAGE(cp.ok(), cp.status().to_string());
  check_entries(**cp, k_system, 1, 41, tag);
}

TEST_CASE("a damaged footer or trailer makes open scan that segment, with the same result") {
  memory_log_fs mem;
  const std::vector<log_group> groups{k_system, data_group(1), data_group(2)};
  {
    auto log = open_log(mem, small_segments());
    random_workload(*log, groups, 800, 11);
    REQUIRE(log->close().ok());
  }
  const auto files = segment_files(mem);
  REQUIRE(files.size() > 2);
  REQUIRE(is_sealed(mem, files[1]));
  using namespace seshat::detail::segment;
  const std::string image = mem.contents("/log/" + files[1]);
  auto t = decode_trailer(std::string_view(image).substr(image.size() - k_trailer_bytes),
                          *parse_segment_name(files[1]), image.size());
  REQUIRE(t.ok());
  memory_log_fs damaged;
  copy_log(mem, damaged);
  flip_byte(damaged, files[1], t->footer_at + t->footer_size / 2);  // inside the footer
  flip_byte(damaged, files[2], image.size() - 10);                  // inside the trailer
  auto good = open_log(mem, small_segments());
  test_fs counting(damaged);
  auto scanned = open_log(counting, small_segments());
  CHECK(counting.pread_bytes >= 2 * image.size());  // the two segments, scanned
  check_same_log(*good, *scanned, groups);
}

TEST_CASE("after a crash, open scans only the segments left unsealed and seals them") {
  memory_log_fs mem;
  const std::vector<log_group> groups{k_system, data_group(1)};
  auto log = open_log(mem, writer_only(small_segments()));
  random_workload(*log, groups, 1500, 5);
  REQUIRE(log->sync().ok());
  // The writer moved on from every segment but the last: each gets sealed.
  REQUIRE(eventually([&] {
    const auto now = segment_files(mem);
    for (std::size_t i = 0; i + 1 < now.size(); ++i)
      if (!is_sealed(mem, now[i])) return false;
    return true;
  }));
  memory_log_fs crashed;  // the disk as a SIGKILL now leaves it
  copy_log(mem, crashed);
  const auto files = segment_files(crashed);
  REQUIRE(files.size() >= 3);
  CHECK_FALSE(is_sealed(crashed, files.back()));
  {
    test_fs counting(crashed);
    auto recovered = open_log(counting, small_segments());
    // The last segment scanned; headers, trailers and footers of the others.
    CHECK(counting.pread_bytes < files.size() * (4096 + 2048) + 2 * 16 * 1024);
    check_same_log(*log, *recovered, groups);
  }
  CHECK(is_sealed(crashed, files.back()));  // sealed by that open: the next one reads its footer
  auto again = open_log(crashed, small_segments());
  check_same_log(*log, *again, groups);
}

TEST_CASE("disk use follows the live log after purges") {
  memory_log_fs mem;
  const log_group g = data_group(4);
  const std::string tag(100, 'd');
  seshat::segment_group_state before;
  {
    auto log = open_log(mem, small_segments());
    for (std::uint64_t i = 1; i <= 5000; i += 10) {
      REQUIRE(log->append(g, i, batch(i, 10, 1, tag).inputs, true).ok());
      if ((i + 9) % 500 == 0) REQUIRE(log->purge_to(g, log_id{1, i + 9 - 100}).ok());
    }
    REQUIRE(log->settle().ok());
    CHECK(log->freed_segments() > 20);  // about 36 segments of 16 KiB were written
    // 100 live entries (about 11 KB): the segments holding them and the open one.
    CHECK(segment_files(mem).size() <= 3);
    CHECK(log->segment_count() == segment_files(mem).size());
    before = log->state(g);
  }
  auto log = open_log(mem, small_segments());
  CHECK(log->state(g) == before);
  check_entries(*log, g, 4901, 5001, tag);
}

// The names of the freed segments kept for recycling in /log of `mem`.
std::vector<std::string> free_files(memory_log_fs& mem) {
  std::vector<std::string> out;
  auto names = mem.list("/log");
  REQUIRE(names.ok());
  for (const std::string& n : *names)
    if (n.starts_with("free-")) out.push_back(n);
  return out;
}

// W8's pattern on small segments: appends of 10 entries, a purge every 500
// entries to the last 100, each append followed by settle() (so that the
// maintenance thread has prepared, sealed and freed before the next one:
// on memory_log_fs appends outrun it, and the writer then creates segments
// itself). Returns the state of group `g` at the end. `peak_segments`:
// the most segment files in use seen before a purge.
seshat::segment_group_state purged_log(segment_log& log, const log_group& g, const std::string& tag,
                                       std::uint64_t* peak_segments = nullptr) {
  for (std::uint64_t i = 1; i <= 5000; i += 10) {
    REQUIRE(log.append(g, i, batch(i, 10, 1, tag).inputs, true).ok());
    REQUIRE(log.settle().ok());
    if ((i + 9) % 500 != 0) continue;
    if (peak_segments) *peak_segments = std::max(*peak_segments, log.segment_count());
    REQUIRE(log.purge_to(g, log_id{1, i + 9 - 100}).ok());
  }
  REQUIRE(log.settle().ok());
  return log.state(g);
}

TEST_CASE("freed segments are recycled in place, and their old frames never read as entries") {
  memory_log_fs mem, crashed;
  const log_group g = data_group(4);
  const std::string tag(100, 'r');
  seshat::segment_group_state before;
  {
    test_fs counting(mem);
    auto log = open_log(counting, small_segments());
    std::uint64_t peak_segments = 0;
    before = purged_log(*log, g, tag, &peak_segments);
    // After the first purge, preparations take freed segments (about 55
    // preparations: the 5 before the first purge and about one a purge are
    // new files, as a purge here frees 4 or 5 segments and fewer than the
    // segments in use are kept).
    CHECK(log->recycled_segments() > 30);
    CHECK(log->prepared_segments() - log->recycled_segments() <= 20);
    // Zero fill: the bytes written to prep- files but their headers'.
    std::set<std::string> made;
    for (const std::string& c : counting.calls())
      if (c.starts_with("pwrite prep-")) made.insert(c.substr(7));
    std::uint64_t zeros = 0;
    for (const std::string& n : made) zeros += counting.written_to(n) - 4096;
    CHECK(zeros <= (log->prepared_segments() - log->recycled_segments()) * 16 * 1024);
    // What is kept for recycling is bounded by the segments in use before the last purge.
    CHECK(log->free_segment_count() == free_files(mem).size());
    CHECK(log->free_segment_count() + log->segment_count() <= peak_segments);
    check_entries(*log, g, 4901, 5001, tag);
    // Only seq-named files and the kept ones.
    auto names = mem.list("/log");
    REQUIRE(names.ok());
    CHECK(names->size() == segment_files(mem).size() + free_files(mem).size());
    copy_log(mem, crashed);  // the disk as a SIGKILL now leaves it
  }
  // A recycled segment holds the frames of its previous life past its own:
  // the reopen after the close and after the crash read the same log, and
  // delete the kept files.
  for (memory_log_fs* disk : {&mem, &crashed}) {
    CAPTURE(disk == &crashed);
    REQUIRE(!free_files(*disk).empty());
    {
      auto log = open_log(*disk, small_segments());
      CHECK(log->state(g) == before);
      check_entries(*log, g, 4901, 5001, tag);
      CHECK(free_files(*disk).empty());
      // The log goes on in its recycled segments, and reads back after another reopen.
      REQUIRE(log->append(g, 5001, batch(5001, 10, 1, tag).inputs, true).ok());
      REQUIRE(log->close().ok());
    }
    auto again = open_log(*disk, small_segments());
    check_entries(*again, g, 4901, 5011, tag);
  }
}

TEST_CASE("nothing is recycled under absolute_consistency, nor a freed segment a checkpoint links") {
  const log_group g = data_group(4);
  const std::string tag(100, 'r');
  SUBCASE("absolute_consistency") {
    memory_log_fs mem;
    segment_log_options strict = small_segments();
    strict.recovery = seshat::recovery_mode::absolute_consistency;
    auto log = open_log(mem, strict);
    purged_log(*log, g, tag);
    CHECK(log->freed_segments() > 20);
    CHECK(log->recycled_segments() == 0);
    CHECK(free_files(mem).empty());
  }
  SUBCASE("a checkpoint's hard link") {
    memory_log_fs mem;
    auto log = open_log(mem, small_segments());
    for (std::uint64_t i = 1; i <= 400; i += 10)
      REQUIRE(log->append(g, i, batch(i, 10, 1, tag).inputs, true).ok());
    REQUIRE(log->settle().ok());  // sealed: the checkpoint links them
    REQUIRE(log->checkpoint("/cp").ok());
    auto cp_names = mem.list("/cp");
    REQUIRE(cp_names.ok());
    std::map<std::string, std::string> linked;  // the checkpoint's bytes of each file
    for (const std::string& n : *cp_names) linked[n] = mem.contents("/cp/" + n);
    REQUIRE(log->purge_to(g, log_id{1, 390}).ok());
    REQUIRE(log->settle().ok());
    CHECK(log->freed_segments() >= 2);
    CHECK(free_files(mem).empty());  // every freed segment was linked: unlinked, not kept
    CHECK(log->recycled_segments() == 0);
    for (std::uint64_t i = 401; i <= 2000; i += 10)  // preparations go on
      REQUIRE(log->append(g, i, batch(i, 10, 1, tag).inputs, true).ok());
    REQUIRE(log->settle().ok());
    for (const auto& [n, bytes] : linked) CHECK_MESSAGE(mem.contents("/cp/" + n) == bytes, n);
    auto cp = segment_log::open(mem, "/cp", small_segments());
    REQUIRE_MESSAGE(cp.ok(), cp.status().to_string());
    check_entries(**cp, g, 1, 401, tag);
  }
}

TEST_CASE("an idle group's hard state is carried forward so that its old segment is freed") {
  memory_log_fs mem;
  const log_group idle = data_group(1), busy = data_group(2);
  const std::string tag(100, 'b');
  seshat::segment_group_state idle_before, busy_before;
  {
    auto log = open_log(mem, small_segments());
    REQUIRE(log->append(idle, 1, batch(1, 5, 2).inputs, true).ok());
    REQUIRE(log->save_vote(idle, seshat::vote{3, 2, true}).ok());
    REQUIRE(log->save_committed(idle, log_id{2, 5}).ok());
    REQUIRE(log->purge_to(idle, log_id{2, 5}).ok());  // no entry left: only hard state in seg 1
    for (std::uint64_t i = 1; i <= 2000; i += 10) {
      REQUIRE(log->append(busy, i, batch(i, 10, 1, tag).inputs, true).ok());
      if ((i + 9) % 200 == 0) REQUIRE(log->purge_to(busy, log_id{1, i + 9 - 50}).ok());
    }
    REQUIRE(log->settle().ok());
    const auto files = segment_files(mem);
    REQUIRE_FALSE(files.empty());
    CHECK(files.front() != "seg-00000000000000000001.log");
    CHECK(files.size() <= 3);
    idle_before = log->state(idle);
    busy_before = log->state(busy);
    CHECK(idle_before.vote_value == seshat::vote{3, 2, true});
  }
  auto log = open_log(mem, small_segments());
  CHECK(log->state(idle) == idle_before);
  CHECK(log->state(idle).last_purged == log_id{2, 5});
  CHECK(*log->term_at(idle, 5) == 2);
  CHECK(log->state(busy) == busy_before);
  check_entries(*log, busy, 1951, 2001, tag);
  REQUIRE(log->append(idle, 6, batch(6, 1, 3).inputs, true).ok());  // continues after the purge point
}

TEST_CASE("a crash or a failure at each step of freeing loses nothing acknowledged") {
  using call = test_fs::call;
  const log_group idle = data_group(1), busy = data_group(2);
  const std::string tag(100, 'c');
  for (int mode = 0; mode < 3; ++mode) {  // crashes at every step; unlink fails; directory fsync fails
    CAPTURE(mode);
    memory_log_fs mem;
    test_fs faulty(mem);
    seshat::segment_group_state idle_state, busy_before, busy_after;
    struct snap {
      std::shared_ptr<memory_log_fs> disk;
      bool acked;
    };
    std::vector<snap> snaps;
    std::atomic<bool> armed{false}, acked{false};
    faulty.before_each = [&](const std::string&) {
      if (armed) snaps.push_back({snapshot_log(mem), acked.load()});
    };
    {
      auto log = open_log(faulty, small_segments());
      REQUIRE(log->save_vote(idle, seshat::vote{3, 2, true}).ok());
      REQUIRE(log->append(idle, 1, batch(1, 2, 2).inputs, true).ok());
      REQUIRE(log->purge_to(idle, log_id{2, 2}).ok());
      for (std::uint64_t i = 1; i <= 800; i += 10)
        REQUIRE(log->append(busy, i, batch(i, 10, 1, tag).inputs, true).ok());
      REQUIRE(log->settle().ok());
      idle_state = log->state(idle);
      busy_before = log->state(busy);
      if (mode == 0) armed = true;
      if (mode == 1) faulty.fail_next(call::unlink);
      if (mode == 2) faulty.fail_next(call::sync_directory);
      REQUIRE(log->purge_to(busy, log_id{1, 790}).ok());
      acked = true;
      busy_after = log->state(busy);
      status settled = log->settle();
      armed = false;
      if (mode == 0) {
        REQUIRE(settled.ok());
        CHECK(faulty.unlinks > 0);
      } else {
        CHECK(settled.is(errc::io_error));  // the failure latched the engine
        CHECK(settled.message().find("Input/output error") != std::string::npos);
      }
    }
    if (mode == 0) {
      REQUIRE(snaps.size() > 3);
      for (std::size_t i = 0; i < snaps.size(); ++i) {
        CAPTURE(i);
        REQUIRE(snaps[i].disk);
        auto r = segment_log::open(*snaps[i].disk, "/log", small_segments());
        REQUIRE_MESSAGE(r.ok(), r.status().to_string());
        CHECK((*r)->state(idle) == idle_state);
        const auto st = (*r)->state(busy);
        if (snaps[i].acked) CHECK(st == busy_after);
        else CHECK((st == busy_before || st == busy_after));
        check_entries(**r, busy, st.last_purged ? st.last_purged->index + 1 : 1, 801, tag);
      }
    }
    auto log = open_log(mem, small_segments());
    CHECK(log->state(idle) == idle_state);
    CHECK(log->state(busy) == busy_after);
    check_entries(*log, busy, 791, 801, tag);
  }
}

TEST_CASE("carrying idle groups' hard state forward stops once the oldest segments hold mostly live state") {
  // 300 idle groups' hard state takes about three 16 KiB segments: carrying
  // it all forward fills the open segment again, so a rule that carries
  // whenever it can free the oldest segment rewrites it without end.
  memory_log_fs mem;
  const std::string tag(100, 'b');
  std::vector<seshat::segment_group_state> idle_before;
  {
    auto log = open_log(mem, small_segments());
    for (std::uint64_t g = 1; g <= 300; ++g) {
      REQUIRE(log->append(data_group(g), 1, batch(1, 2, 2).inputs, false).ok());
      REQUIRE(log->save_vote(data_group(g), seshat::vote{3, 2, true}).ok());
      REQUIRE(log->purge_to(data_group(g), log_id{2, 2}).ok());
    }
    // A busy group behind them: its purges leave dead segments after the idle state.
    const log_group busy = data_group(1000);
    for (std::uint64_t i = 1; i <= 3000; i += 10) {
      REQUIRE(log->append(busy, i, batch(i, 10, 1, tag).inputs, true).ok());
      if ((i + 9) % 300 == 0) REQUIRE(log->purge_to(busy, log_id{1, i + 9 - 50}).ok());
    }
    REQUIRE(log->purge_to(busy, log_id{1, 3000}).ok());  // no entry left to pin a segment
    REQUIRE(log->sync().ok());
    std::uint64_t freed = log->freed_segments();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    for (int i = 0; i < 3; ++i) {  // the maintenance thread comes to rest
      const std::uint64_t now = log->freed_segments();
      if (now == freed) break;
      freed = now;
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
    REQUIRE(log->freed_segments() == freed);
    REQUIRE(freed < 200);  // about 30 segments were written, so no rewriting without end
    REQUIRE(log->settle().ok());
    CHECK(freed > 10);           // the busy group's dead segments were freed ...
    CHECK(segment_files(mem).size() <= 12);  // ... idle state carried when that paid
    for (std::uint64_t g = 1; g <= 300; ++g) idle_before.push_back(log->state(data_group(g)));
  }
  auto log = open_log(mem, small_segments());
  for (std::uint64_t g = 1; g <= 300; ++g) CHECK(log->state(data_group(g)) == idle_before[g - 1]);
}

namespace {

// A directory for real segment files: on /dev/shm when it is there (syncs
// cost nothing: the memory cases run 30,000 durable calls), else under
// $SESHAT_TEST_DIR. Removed with the object.
struct fast_dir {
  fs::path root;
  explicit fast_dir(const std::string& name) {
    const char* base = std::getenv("SESHAT_TEST_DIR");
    fs::path parent = fs::is_directory("/dev/shm") ? fs::path("/dev/shm")
                      : base                       ? fs::path(base)
                                                   : fs::current_path() / "test-data";
    root = parent / (name + "-" + std::to_string(::getpid()));
    fs::remove_all(root);
    fs::create_directories(root);
  }
  ~fast_dir() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
};

}  // namespace

TEST_CASE("10,000 idle groups take at most 1 KiB of the engine's memory each, live and after a reopen") {
  // An idle group: entries appended, a vote, a committed id, and (kind 0)
  // every entry purged or (kind 1) its 4 entries kept. The engine's heap
  // bytes (heap_count.hpp: every live operator new, with malloc's header)
  // over an empty engine's, divided by the groups: the group's index and
  // hard state, its map node, and its summary in a segment not sealed yet.
  // Measured: 280 bytes live and 193 after a reopen (kind 0), 369 and 337
  // (kind 1).
  constexpr std::uint64_t k_groups = 10'000;
  for (int kind = 0; kind < 2; ++kind) {
    CAPTURE(kind);
    fast_dir dir("segment-log-idle");
    seshat::detail::posix_log_fs posix;
    const std::string payload(64, 'i');
    const std::vector<log_entry_input> four(4, log_entry_input{1, payload});
    double live_per_group = 0, reopened_per_group = 0;
    {
      auto r = segment_log::open(posix, dir.root / "log");
      REQUIRE_MESSAGE(r.ok(), r.status().to_string());
      auto& log = **r;
      REQUIRE(log.settle().ok());
      const std::int64_t empty = seshat::test::heap_live_bytes();
      for (std::uint64_t g = 1; g <= k_groups; ++g) {
        REQUIRE(log.append(data_group(g), 1, four, false).ok());
        REQUIRE(log.save_vote(data_group(g), seshat::vote{1, 1, true}).ok());
        REQUIRE(log.save_committed(data_group(g), log_id{1, 4}).ok());
        if (kind == 0) REQUIRE(log.purge_to(data_group(g), log_id{1, 4}).ok());
      }
      REQUIRE(log.settle().ok());
      live_per_group = static_cast<double>(seshat::test::heap_live_bytes() - empty) / k_groups;
      REQUIRE(log.close().ok());
    }
    {
      const std::int64_t before = seshat::test::heap_live_bytes();
      auto r = segment_log::open(posix, dir.root / "log");
      REQUIRE_MESSAGE(r.ok(), r.status().to_string());
      REQUIRE((*r)->settle().ok());
      reopened_per_group = static_cast<double>(seshat::test::heap_live_bytes() - before) / k_groups;
      CHECK((*r)->state(data_group(k_groups)).committed == log_id{1, 4});
    }
    MESSAGE("idle group kind " << kind << ": " << live_per_group << " bytes live, "
                               << reopened_per_group << " after a reopen");
    CHECK(live_per_group <= 1024);
    CHECK(reopened_per_group <= 1024);
  }
}

TEST_CASE("the index takes at most 24 bytes per entry at one entry an append, 1.5 at 16") {
  // One group, entries in 1 MiB segments, all sealed but the open one:
  // heap bytes after over before, per entry (index pieces, term runs and
  // record refs: 8 bytes a record; the open segment's summary holds its
  // own 8 until sealed; vectors grow by doubling). Measured: 16.5 and 1.09.
  for (const std::size_t per_append : {std::size_t{1}, std::size_t{16}}) {
    CAPTURE(per_append);
    fast_dir dir("segment-log-index");
    seshat::detail::posix_log_fs posix;
    auto r = segment_log::open(posix, dir.root / "log");
    REQUIRE_MESSAGE(r.ok(), r.status().to_string());
    auto& log = **r;
    REQUIRE(log.settle().ok());
    const std::string payload(32, 'x');
    const std::vector<log_entry_input> in(per_append, log_entry_input{1, payload});
    const std::uint64_t total = 32'000;
    const std::int64_t before = seshat::test::heap_live_bytes();
    for (std::uint64_t i = 1; i <= total; i += per_append) REQUIRE(log.append(k_system, i, in, false).ok());
    REQUIRE(log.settle().ok());
    const double per_entry = static_cast<double>(seshat::test::heap_live_bytes() - before) / total;
    MESSAGE(per_append << " entries an append: " << per_entry << " index bytes per entry");
    CHECK(per_entry <= (per_append == 1 ? 24.0 : 1.5));
  }
}

TEST_CASE("a steady-state append_async makes at most 1.5 heap allocations a call") {
  // 64 groups, one entry each a round, as W3: the calls' heap allocations
  // (heap_count.hpp, every thread) in rounds 34 to 40, rounds excluded (the
  // writer waits; sync() leads them), so that no index vector doubles (at
  // 33 and 65 records). The callback fits std::function's inline buffer.
  // Measured: 0.23 (the staged frame's growth, the callback queue's
  // blocks) since records are encoded in place with a reused term-run
  // vector; 1.1 before that, 11.2 when every call built its error context.
  memory_log_fs mem;
  auto log = open_log(mem, rounds_led_by_sync());
  constexpr std::uint64_t k_groups = 64;
  const std::string payload(256, 'p');
  const std::vector<log_entry_input> one(1, log_entry_input{1, payload});
  std::atomic<int> fired{0};
  std::int64_t calls_allocations = 0;
  constexpr std::uint64_t k_rounds = 40, k_counted = 7;
  for (std::uint64_t round = 1; round <= k_rounds; ++round) {
    const std::int64_t before = seshat::test::heap_allocations();
    for (std::uint64_t g = 1; g <= k_groups; ++g)
      REQUIRE(log->append_async(data_group(g), round, one, [&](status s) {
        CHECK(s.ok());
        ++fired;
      }).ok());
    if (round > k_rounds - k_counted) calls_allocations += seshat::test::heap_allocations() - before;
    REQUIRE(log->sync().ok());
  }
  const double per_call = static_cast<double>(calls_allocations) / (k_counted * k_groups);
  MESSAGE("append_async: " << per_call << " heap allocations a call in the steady state");
  CHECK(per_call <= 1.5);
  REQUIRE(log->close().ok());
  CHECK(fired == static_cast<int>(k_rounds * k_groups));
}

TEST_CASE("at 10,000 groups an append_async makes at most 2.5 heap allocations a call") {
  // W3 at scale: rounds of 64 append_async calls take the groups in turn,
  // so most calls are their group's first record in the open segment (a
  // new index piece, a new summary for its seal). The calls' allocations
  // (heap_count.hpp) in the last two of 7 passes over the groups (each pass
  // fills more than a segment), when no group's vector of pieces doubles
  // any more; rounds excluded (sync() leads them). Measured: 1.24 (the
  // segment's summary node, the staged frame's growth); 2.24 while each
  // call built a term-run vector, 8.56 when a piece's first term run and
  // record were on the heap.
  memory_log_fs mem;
  auto log = open_log(mem, rounds_led_by_sync());
  constexpr std::uint64_t k_groups = 10'000, k_round = 64, k_passes = 7;
  const std::string payload(64, 'p');
  const std::vector<log_entry_input> one(1, log_entry_input{1, payload});
  std::int64_t counted = 0, calls = 0;
  for (std::uint64_t pass = 1; pass <= k_passes; ++pass)
    for (std::uint64_t g = 0; g < k_groups; g += k_round) {
      const std::int64_t before = seshat::test::heap_allocations();
      for (std::uint64_t k = g; k < std::min(k_groups, g + k_round); ++k) {
        REQUIRE(log->append_async(data_group(k + 1), pass, one, [](status s) { CHECK(s.ok()); }).ok());
        if (pass + 1 >= k_passes) ++calls;
      }
      if (pass + 1 >= k_passes) counted += seshat::test::heap_allocations() - before;
      REQUIRE(log->sync().ok());
    }
  const double per_call = static_cast<double>(counted) / static_cast<double>(calls);
  MESSAGE("append_async over 10,000 groups: " << per_call << " heap allocations a call");
  CHECK(per_call <= 2.5);
  REQUIRE(log->close().ok());
}

TEST_CASE("options out of range are refused naming the field") {
  memory_log_fs mem;
  segment_log_options o;
  o.segment_bytes = 100;
  auto r = segment_log::open(mem, "/log", o);
  CHECK(r.status().is(errc::invalid_config));
  CHECK(r.status().message().find("segment_bytes") != std::string::npos);
}

TEST_SUITE_END();

TEST_SUITE("concurrency") {
  TEST_CASE("appenders on several threads, each with its own groups, while others read") {
    memory_log_fs mem;
    segment_log_options o = small_segments();
    o.max_linger_us = 200;
    auto log = open_log(mem, o);
    constexpr int k_threads = 4, k_groups = 4, k_rounds = 60;
    std::atomic<int> callbacks{0}, failures{0};
    std::atomic<bool> done{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < k_threads; ++t)
      threads.emplace_back([&, t] {
        for (int r = 0; r < k_rounds; ++r)
          for (int k = 0; k < k_groups; ++k) {
            const log_group g = data_group(1 + t * k_groups + k);
            const std::uint64_t first = 1 + 3 * static_cast<std::uint64_t>(r);
            batch b(first, 3, 1);
            status s = r % 3 == 0 ? log->append(g, first, b.inputs, r % 2 == 0)
                                  : log->append_async(g, first, b.inputs, [&](status x) {
                                      if (!x.ok()) ++failures;
                                      ++callbacks;
                                    });
            if (!s.ok()) ++failures;
          }
      });
    std::thread reader([&] {
      while (!done) {
        for (std::uint64_t id = 1; id <= k_threads * k_groups; ++id) {
          const auto st = log->state(data_group(id));
          if (!st.last) continue;
          auto got = log->read(data_group(id), 1, st.last->index + 1);
          if (!got.ok() || got->size() != st.last->index || got->back() != "e-" + std::to_string(st.last->index))
            ++failures;
        }
      }
    });
    for (auto& th : threads) th.join();
    done = true;
    reader.join();
    REQUIRE(log->close().ok());
    CHECK(failures == 0);
    const int asyncs = k_threads * k_groups * (k_rounds - (k_rounds + 2) / 3);
    CHECK(callbacks == asyncs);
    auto again = open_log(mem, o);
    for (std::uint64_t id = 1; id <= k_threads * k_groups; ++id)
      check_entries(*again, data_group(id), 1, 1 + 3 * k_rounds);
  }
}
