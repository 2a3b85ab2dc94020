// The process-kill test's child: opens a store (RocksDB or LevelDB) with two
// logs, the system group's and a data shard's, and runs a random workload
// on them until the parent SIGKILLs it, reporting every operation to the
// parent through a pipe.
//
//   crash_child <rocksdb|leveldb|rocksdb+segments> <store dir> <seed> <report fd>
//
// Or it runs the very first open of a store that does not exist yet and
// kills itself (SIGKILL) at one of its steps:
//
//   crash_child create <rocksdb|leveldb> <store dir> <keep dir> <step> <report fd>
//
// The steps are every file-system operation of the open, counted from 1 in
// the order they start: seshat's own (detail/files.hpp's fs_observer seam:
// directory creations, the marker's write and rename, directory fsyncs) and
// the engine's (through a fault environment, tests/fault_env/, whose
// scratch space is <keep dir>: file creations, appends, syncs, renames,
// deletes). Before step <step> is taken it reports "KILL <step> <what>"
// and dies; when the open finishes first it reports "OPENED <steps>" and
// exits 0.
//
// This file also holds what the parent (crash_test.cpp, which includes it
// with SESHAT_CRASH_CHILD_NO_MAIN defined) shares with the child: the two
// log types, the entries' payloads, the store options and the line protocol.
//
// Protocol: one line per write(2) (at most PIPE_BUF bytes, so a line is never
// torn, even by SIGKILL), fields separated by single spaces, "-" for none:
//
//   S <g> <purged> <last> <vote> <committed>   the state found at open
//        purged, last, committed := "-" | term:index
//        vote := "-" | term:voted_for:committed  (voted_for "-" for none)
//   READY                                      the workload starts
//   I <seq> <g> A <term> <first> <count> <salt> <sync|async>
//   I <seq> <g> T <since>
//   I <seq> <g> P <upto>
//   I <seq> <g> V <vote>
//   I <seq> <g> C <term:index>                 issued: written before the call
//   R <seq>                                    the call returned ok (for an
//                                              async append: readable; in the
//                                              WAL from its round or the next
//                                              other call on)
//   K <seq>                                    acknowledged: a durable call
//                                              returned ok, or an async
//                                              append's callback fired with ok
//   E <seq> <message>                          a call failed (a test failure)
//
// Sequence numbers count from 1 in each run of the child; operations are
// issued one after another by one thread, so seq is also their order.
// Group g is 0 for the system group, 1 for the data shard.
#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "log_entries.hpp"
#include "seshat/detail/files.hpp"
#include "seshat/log_store.hpp"
#include "support.hpp"
#if SESHAT_HAVE_ROCKSDB && SESHAT_HAVE_LEVELDB
#include "fault_env/backend_fault_env.hpp"
#include "fault_env/scoped_fs_observer.hpp"
#define SESHAT_CRASH_FIRST_OPEN 1
#endif

namespace seshat::crash {

using entry = test::text_entry;
template <class B>
using system_log = log_store<entry, boost_serializer, B, system_shard, binary_key_format>;
template <class B>
using data_log = log_store<entry, test::text_serializer, B, data_shard, decimal_key_format>;

inline constexpr int k_groups = 2;
inline constexpr shard_id k_data_shard_id = 7;
// The first index of each group's log (a log must be reopened with it).
inline constexpr std::uint64_t k_first_index[k_groups] = {1, 1000};

inline log_store_options log_options(int g) {
  log_store_options o;
  o.first_index = k_first_index[g];
  return o;
}

// Small memtables: the workload makes the engines flush and compact, so
// recovery sees table files as well as the WAL.
inline open_options store_options() {
  open_options o;
  o.write_buffer_mb = 1;
  o.target_file_mb = 1;
  return o;
}

inline std::uint64_t splitmix(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The entry (term, index) of group g in an append whose salt is `salt`:
// a payload of a random size (empty, small, medium or large) and random
// bytes, all of it a function of its arguments.
inline entry make_entry(int g, std::uint64_t term, std::uint64_t index, std::uint64_t salt) {
  std::uint64_t x = salt ^ (index * 0xD6E8FEB86659FD93ull) ^ (term << 40) ^ static_cast<std::uint64_t>(g);
  const std::uint64_t shape = splitmix(x);
  const std::uint64_t size_draw = splitmix(x);
  std::size_t size = 0;
  switch (shape % 10) {
    case 0: size = 0; break;
    case 1: case 2: case 3: size = size_draw % 64; break;
    case 4: case 5: case 6: case 7: case 8: size = size_draw % 2048; break;
    default: size = size_draw % 16384; break;
  }
  entry e;
  e.term = term;
  e.index = index;
  e.text.resize(size);
  for (std::size_t i = 0; i < size; i += 8) {
    const std::uint64_t r = splitmix(x);
    std::memcpy(e.text.data() + i, &r, std::min<std::size_t>(8, size - i));
  }
  if (shape % 3 == 0) e.tags = {std::to_string(salt % 1000), std::string(index % 5, '\0')};
  return e;
}

inline std::string format_id(const std::optional<log_id>& id) {
  return id ? std::to_string(id->term) + ":" + std::to_string(id->index) : "-";
}
inline std::string format_vote(const std::optional<vote>& v) {
  if (!v) return "-";
  return std::to_string(v->term) + ":" + (v->voted_for ? std::to_string(*v->voted_for) : "-") +
         ":" + (v->committed ? "1" : "0");
}

inline std::vector<std::string> split(std::string_view line) {
  std::vector<std::string> out;
  while (!line.empty()) {
    const auto sp = line.find(' ');
    out.emplace_back(line.substr(0, sp));
    if (sp == std::string_view::npos) break;
    line.remove_prefix(sp + 1);
  }
  return out;
}

inline std::uint64_t to_u64(std::string_view s) { return std::strtoull(std::string(s).c_str(), nullptr, 10); }

inline std::optional<log_id> parse_id(std::string_view s) {
  if (s == "-") return std::nullopt;
  const auto colon = s.find(':');
  return log_id{to_u64(s.substr(0, colon)), to_u64(s.substr(colon + 1))};
}

inline std::optional<vote> parse_vote(std::string_view s) {
  if (s == "-") return std::nullopt;
  std::string spaced(s);
  for (char& c : spaced)
    if (c == ':') c = ' ';
  const auto parts = split(spaced);
  vote v;
  v.term = to_u64(parts.at(0));
  if (parts.at(1) != "-") v.voted_for = to_u64(parts.at(1));
  v.committed = parts.at(2) == "1";
  return v;
}

}  // namespace seshat::crash

#ifndef SESHAT_CRASH_CHILD_NO_MAIN

namespace {

using namespace seshat;
using namespace seshat::crash;

int g_report_fd = -1;

// One line, one write(2): never torn (lines stay under PIPE_BUF).
void report(std::string line) {
  if (line.size() > 3000) line.resize(3000);
  for (char& c : line)
    if (c == '\n') c = ' ';
  line += '\n';
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    const ssize_t n = ::write(g_report_fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) std::_Exit(3);  // the parent is gone
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

[[noreturn]] void fail(std::uint64_t seq, const std::string& what) {
  report("E " + std::to_string(seq) + " " + what);
  std::_Exit(2);
}

template <class Log>
struct group {
  int g;
  std::unique_ptr<Log> log;
};

template <class B>
class workload {
 public:
  workload(storage<B>& store, std::uint64_t seed) : store_(store), rng_(seed) {}

  int run() {
    open_group(sys_, 0, system_shard{});
    open_group(data_, 1, data_shard{k_data_shard_id});
    report_state(sys_);
    report_state(data_);
    report("READY");
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < until) {
      if (pick(2) == 0) step(sys_);
      else step(data_);
    }
    return 0;  // the parent was meant to kill us long ago
  }

 private:
  template <class Log, class Shard>
  void open_group(group<Log>& grp, int g, Shard shard) {
    grp.g = g;
    auto opened = Log::open(store_, shard, log_options(g));
    if (!opened.ok()) fail(0, "open group " + std::to_string(g) + ": " + opened.status().to_string());
    grp.log = std::move(*opened);
  }

  template <class Log>
  void report_state(group<Log>& grp) {
    const log_state st = grp.log->get_log_state();
    report("S " + std::to_string(grp.g) + " " + format_id(st.last_purged) + " " +
           format_id(st.last) + " " + format_vote(grp.log->read_vote().value()) + " " +
           format_id(grp.log->read_committed().value()));
  }

  std::uint64_t pick(std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng_); }
  std::uint64_t between(std::uint64_t lo, std::uint64_t hi) {
    return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng_);
  }

  std::string issue(int g, const std::string& what) {
    ++seq_;
    report("I " + std::to_string(seq_) + " " + std::to_string(g) + " " + what);
    return std::to_string(seq_);
  }

  template <class Log>
  std::uint64_t term_now(group<Log>& grp) {
    const log_state st = grp.log->get_log_state();
    std::uint64_t t = st.last ? st.last->term : 0;
    if (auto v = grp.log->read_vote().value()) t = std::max(t, v->term);
    return std::max<std::uint64_t>(t, 1);
  }

  template <class Log>
  std::uint64_t first_of(group<Log>& grp) {
    const log_state st = grp.log->get_log_state();
    return st.last_purged ? st.last_purged->index + 1 : k_first_index[grp.g];
  }

  template <class Log>
  void append(group<Log>& grp, std::uint64_t term) {
    const log_state st = grp.log->get_log_state();
    const std::uint64_t first = st.last ? st.last->index + 1 : k_first_index[grp.g];
    const std::uint64_t count = between(1, 32);
    const std::uint64_t salt = rng_();
    const bool async = pick(2) == 0;
    std::vector<entry> batch;
    for (std::uint64_t i = 0; i < count; ++i) batch.push_back(make_entry(grp.g, term, first + i, salt));
    const std::string seq = issue(grp.g, "A " + std::to_string(term) + " " + std::to_string(first) +
                                             " " + std::to_string(count) + " " +
                                             std::to_string(salt) + (async ? " async" : " sync"));
    if (async) {
      status s = grp.log->append_async(batch, [seq](status done) {
        if (done.ok()) report("K " + seq);
        else report("E " + seq + " append_async callback: " + done.to_string());
      });
      if (!s.ok()) fail(std::stoull(seq), "append_async: " + s.to_string());
      report("R " + seq);
    } else {
      status s = grp.log->append(batch);
      if (!s.ok()) fail(std::stoull(seq), "append: " + s.to_string());
      report("K " + seq);
    }
  }

  template <class Log>
  void step(group<Log>& grp) {
    Log& log = *grp.log;
    const log_state st = log.get_log_state();
    const std::optional<log_id> committed = log.read_committed().value();
    const std::uint64_t first = first_of(grp);
    const bool has_entries = st.last && st.last->index >= first;
    // Keep the log short enough to be read whole after every kill.
    if (has_entries && st.last->index - first > 1500) {
      purge(grp, st.last->index - between(0, 400));
      return;
    }
    const std::uint64_t r = pick(100);
    if (r < 55) {
      // A new leader's term now and then.
      append(grp, term_now(grp) + (pick(20) == 0 ? 1 : 0));
    } else if (r < 65) {
      // A new term's vote (for someone or nobody), or this term's vote
      // becoming committed.
      std::optional<vote> v = log.read_vote().value();
      vote next;
      if (v && v->voted_for && !v->committed && pick(2) == 0) {
        next = *v;
        next.committed = true;
      } else {
        next.term = term_now(grp) + 1;
        if (pick(4) != 0) next.voted_for = between(1, 5);
      }
      const std::string seq = issue(grp.g, "V " + format_vote(next));
      status s = log.save_vote(next);
      if (!s.ok()) fail(std::stoull(seq), "save_vote: " + s.to_string());
      report("K " + seq);
    } else if (r < 78) {
      if (!has_entries) return;
      const std::uint64_t lo = std::max(first, committed ? committed->index : 0);
      if (lo > st.last->index) return;
      const std::uint64_t index = between(lo, st.last->index);
      auto term = log.term_at(index);
      if (!term.ok()) fail(seq_, "term_at(" + std::to_string(index) + "): " + term.status().to_string());
      const log_id id{*term, index};
      const std::string seq = issue(grp.g, "C " + format_id(id));
      status s = log.save_committed(id);
      if (!s.ok()) fail(std::stoull(seq), "save_committed: " + s.to_string());
      report("K " + seq);
    } else if (r < 81) {
      if (!has_entries) return;
      // Mostly up to half of the log; sometimes the whole log.
      purge(grp, pick(8) == 0 ? st.last->index : between(first, first + (st.last->index - first) / 2));
    } else {
      // Raft's conflict resolution: a suffix after what is committed or
      // purged goes, and a new term's entries replace it. Now and then a
      // truncate past the end, which does nothing.
      const std::uint64_t floor = std::max(first, committed ? committed->index + 1 : 0);
      const std::uint64_t last = has_entries ? st.last->index : first - 1;
      const std::uint64_t since = floor > last || pick(10) == 0 ? last + 1 + pick(3) : between(floor, last);
      const std::string seq = issue(grp.g, "T " + std::to_string(since));
      status s = log.truncate(since);
      if (!s.ok()) fail(std::stoull(seq), "truncate(" + std::to_string(since) + "): " + s.to_string());
      report("K " + seq);
      append(grp, term_now(grp) + 1);
    }
  }

  template <class Log>
  void purge(group<Log>& grp, std::uint64_t upto) {
    const std::string seq = issue(grp.g, "P " + std::to_string(upto));
    status s = grp.log->purge(upto);
    if (!s.ok()) fail(std::stoull(seq), "purge(" + std::to_string(upto) + "): " + s.to_string());
    report("K " + seq);
  }

  storage<B>& store_;
  std::mt19937_64 rng_;
  std::uint64_t seq_ = 0;
  group<system_log<B>> sys_;
  group<data_log<B>> data_;
};

template <class B>
int run(const std::string& dir, std::uint64_t seed) {
  auto opened = storage<B>::open(dir, store_options());
  if (!opened.ok()) fail(0, "open store: " + opened.status().to_string());
  workload<B> w(**opened, seed);
  return w.run();
}

#if SESHAT_CRASH_FIRST_OPEN
// Counts the steps of the first open (see the top of this file) and kills
// the process before step `at`.
class step_killer final : public seshat::test::scoped_fs_observer {
 public:
  explicit step_killer(std::uint64_t at) : at_(at) {}

  int before(detail::fs_step s, const std::filesystem::path& p) override {
    static constexpr const char* names[] = {"create directory", "write file", "rename",
                                            "sync directory"};
    step(std::string("seshat ") + names[static_cast<int>(s)] + " " + p.string());
    return scoped_fs_observer::before(s, p);
  }
  void step(const std::string& what) {
    if (++count_ != at_) return;
    report("KILL " + std::to_string(at_) + " " + what);
    ::kill(::getpid(), SIGKILL);
    std::_Exit(4);  // not reached
  }
  std::uint64_t count() const { return count_.load(); }

 private:
  const std::uint64_t at_;
  std::atomic<std::uint64_t> count_{0};
};

template <class B>
int first_open(const std::string& dir, const std::string& keep, std::uint64_t at) {
  test::backend_fault_env<B> fault(keep);
  step_killer killer(at);
  fault.faults().before_each([&killer](test::fault_op op, const std::string& file) {
    killer.step(std::string("engine ") + test::name_of(op) + " " + file);
  });
  open_options options = store_options();
  fault.attach(options);
  auto opened = storage<B>::open(dir, options);
  if (!opened.ok()) fail(0, "open store: " + opened.status().to_string());
  report("OPENED " + std::to_string(killer.count()));
  return 0;
}

int first_open_main(const std::string& backend, const std::string& dir, const std::string& keep,
                    std::uint64_t at) {
  if (backend == "rocksdb") return first_open<seshat::rocksdb_backend>(dir, keep, at);
  if (backend == "leveldb") return first_open<seshat::leveldb_backend>(dir, keep, at);
  fail(0, "unknown backend " + backend);
}
#endif

}  // namespace

int main(int argc, char** argv) {
  if (argc == 7 && std::string_view(argv[1]) == "create") {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() == 1) return 65;
    g_report_fd = std::atoi(argv[6]);
#if SESHAT_CRASH_FIRST_OPEN
    return first_open_main(argv[2], argv[3], argv[4], std::strtoull(argv[5], nullptr, 10));
#else
    fail(0, "the create mode needs both disk backends");
#endif
  }
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s <rocksdb|leveldb|rocksdb+segments> <store dir> <seed> <report fd>\n", argv[0]);
    return 64;
  }
  // Dies with the parent: never outlives a test that was itself killed.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() == 1) return 65;
  g_report_fd = std::atoi(argv[4]);
  const std::string backend = argv[1];
  const std::uint64_t seed = std::strtoull(argv[3], nullptr, 10);
#if SESHAT_HAVE_ROCKSDB
  if (backend == "rocksdb") return run<seshat::rocksdb_backend>(argv[2], seed);
  if (backend == "rocksdb+segments")
    return run<seshat::segmented<seshat::rocksdb_backend>>(argv[2], seed);
#endif
#if SESHAT_HAVE_LEVELDB
  if (backend == "leveldb") return run<seshat::leveldb_backend>(argv[2], seed);
#endif
  fail(0, "backend " + backend + " is not built here");
}

#endif  // SESHAT_CRASH_CHILD_NO_MAIN
