// The process-kill test: a child process (crash_child.cpp) runs a random
// workload on a RocksDB or LevelDB store holding two logs (the system group's
// and a data shard's) and reports every operation through a pipe; the parent
// SIGKILLs it at a random moment, reopens the store and checks what survived
// against a model of the operations; the next child continues on the same
// store from the recovered state.
//
// What must hold after a kill, for each group:
//   - no holes: the log's keys are exactly [first, last] of its log state,
//     and entries(first, last + 1) reads them all;
//   - every acknowledged entry is there, byte-identical, unless an
//     operation issued after it (truncate, purge) may have removed it;
//   - the vote and the committed id are not behind the last acknowledged ones,
//     and the last purged id not behind the last acknowledged purge;
//   - precisely: the store holds the state the model reaches after the
//     first k operations the child issued, for some k, and k reaches every
//     operation that returned (a process crash keeps what is in the WAL:
//     every call but an async append once it returned, and with it every
//     async append before it) and every one that was acknowledged. An async
//     append that returned waits in group commit's pending batch, not in
//     the WAL, until its round or a later write: a kill may lose it.
//
// SESHAT_CRASH_ROUNDS=N sets the rounds per backend (50 by default);
// SESHAT_CRASH_SEED=S replays a workload (kill moments still vary).
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <deque>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#define SESHAT_CRASH_CHILD_NO_MAIN
#include "crash_child.cpp"

TEST_SUITE_BEGIN("process kill");

extern char** environ;

namespace {

using namespace seshat;
using namespace seshat::crash;
using seshat::test::scratch_dir;
using seshat::test::env_number;

// An operation the child issued (an "I" line).
struct op {
  std::uint64_t seq = 0;
  int g = 0;
  char kind = 0;  // 'A'ppend, 'T'runcate, 'P'urge, 'V'ote, 'C'ommitted
  std::uint64_t term = 0, first = 0, count = 0, salt = 0;  // A
  bool async = false;                                     // A
  std::uint64_t index = 0;                                // T: since, P: upto
  std::optional<vote> v;                                  // V
  std::optional<log_id> id;                               // C
  std::string line;
};

// What one run of the child reported.
struct run_report {
  std::map<int, std::string> opened;  // S lines by group
  bool ready = false;
  std::map<std::uint64_t, op> issued;
  std::vector<std::uint64_t> acked, returned;
  std::vector<std::string> errors, malformed;
};

void parse_line(const std::string& line, run_report& r) {
  const auto f = split(line);
  if (f.empty()) return;
  try {
    if (f[0] == "READY") {
      r.ready = true;
    } else if (f[0] == "S") {
      r.opened[std::stoi(f.at(1))] = line.substr(line.find(' ', 2) + 1);
    } else if (f[0] == "K") {
      r.acked.push_back(to_u64(f.at(1)));
    } else if (f[0] == "R") {
      r.returned.push_back(to_u64(f.at(1)));
    } else if (f[0] == "E") {
      r.errors.push_back(line);
    } else if (f[0] == "I") {
      op o;
      o.seq = to_u64(f.at(1));
      o.g = std::stoi(f.at(2));
      o.kind = f.at(3).at(0);
      o.line = line;
      switch (o.kind) {
        case 'A':
          o.term = to_u64(f.at(4));
          o.first = to_u64(f.at(5));
          o.count = to_u64(f.at(6));
          o.salt = to_u64(f.at(7));
          o.async = f.at(8) == "async";
          break;
        case 'T': case 'P': o.index = to_u64(f.at(4)); break;
        case 'V': o.v = parse_vote(f.at(4)); break;
        case 'C': o.id = parse_id(f.at(4)); break;
        default: r.malformed.push_back(line); return;
      }
      r.issued[o.seq] = o;
    } else {
      r.malformed.push_back(line);
    }
  } catch (const std::exception&) {
    r.malformed.push_back(line);
  }
}

// The model of one group's log and hard state: what the operations leave.
struct group_model {
  struct entry_ref {
    std::uint64_t term, salt;
  };
  int g = 0;
  std::optional<log_id> purged;
  std::uint64_t first = 0;          // lp + 1, or the log's first_index
  std::deque<entry_ref> entries;    // [first, first + size)
  std::optional<vote> v;
  std::optional<log_id> committed;

  explicit group_model(int group = 0) : g(group), first(k_first_index[group]) {}

  log_state state() const {
    if (entries.empty()) return {purged, purged};
    return {purged, log_id{entries.back().term, first + entries.size() - 1}};
  }
  entry expected(std::size_t i) const {
    return make_entry(g, entries[i].term, first + i, entries[i].salt);
  }

  // Applies `o` as log_store does; an error when the child could not have
  // done it (the model and the child disagree).
  std::string apply(const op& o) {
    switch (o.kind) {
      case 'A': {
        const std::uint64_t next = first + entries.size();
        if (o.first != next)
          return "append at " + std::to_string(o.first) + ", the model expects " + std::to_string(next);
        const std::optional<log_id> last = state().last;
        if (last && o.term < last->term) return "append with a term below the last";
        for (std::uint64_t i = 0; i < o.count; ++i) entries.push_back({o.term, o.salt});
        return {};
      }
      case 'T':
        if (purged && o.index <= purged->index) return "truncate of a purged index";
        if (o.index <= first) entries.clear();
        else if (o.index - first < entries.size()) entries.resize(o.index - first);
        return {};
      case 'P': {
        if (purged ? o.index <= purged->index : o.index < k_first_index[g]) return {};
        const std::optional<log_id> last = state().last;
        if (!last || o.index > last->index) return "purge past the last index";
        const std::uint64_t drop = o.index - first + 1;
        purged = log_id{entries[drop - 1].term, o.index};
        entries.erase(entries.begin(), entries.begin() + static_cast<std::ptrdiff_t>(drop));
        first = o.index + 1;
        return {};
      }
      case 'V': v = o.v; return {};
      case 'C': committed = o.id; return {};
    }
    return "unknown operation";
  }

  std::string summary() const {
    const log_state st = state();
    return "purged " + format_id(st.last_purged) + ", last " + format_id(st.last) + ", vote " +
           format_vote(v) + ", committed " + format_id(committed);
  }
};

// One group as the parent finds it after a kill.
struct recovered_group {
  std::string error;  // why it could not be read
  log_state st;
  std::optional<vote> v;
  std::optional<log_id> committed;
  std::uint64_t first = 0;
  std::vector<entry> entries;  // [first, last]

  std::string summary() const {
    return "purged " + format_id(st.last_purged) + ", last " + format_id(st.last) + ", vote " +
           format_vote(v) + ", committed " + format_id(committed) + ", " +
           std::to_string(entries.size()) + " entries from " + std::to_string(first);
  }
};

// The first difference between the model and what was found; empty when
// they are the same.
std::string difference(const group_model& m, const recovered_group& r) {
  if (!(m.state() == r.st) || m.v != r.v || m.committed != r.committed ||
      m.entries.size() != r.entries.size())
    return "model: " + m.summary() + "; found: " + r.summary();
  for (std::size_t i = 0; i < r.entries.size(); ++i)
    if (!(r.entries[i] == m.expected(i)))
      return "entry " + std::to_string(m.first + i) + " differs from the one appended (term " +
             std::to_string(m.entries[i].term) + ", found term " + std::to_string(r.entries[i].term) +
             ", " + std::to_string(r.entries[i].text.size()) + " bytes, expected " +
             std::to_string(m.expected(i).text.size()) + ")";
  return {};
}

template <class Log, class Keys, class B, class Shard>
recovered_group read_group(storage<B>& store, int g, Shard shard) {
  recovered_group r;
  auto opened = Log::open(store, shard, log_options(g));
  if (!opened.ok()) {
    r.error = "open: " + opened.status().to_string();
    return r;
  }
  Log& log = **opened;
  r.st = log.get_log_state();
  r.v = log.read_vote().value();
  r.committed = log.read_committed().value();
  r.first = r.st.last_purged ? r.st.last_purged->index + 1 : k_first_index[g];
  const std::uint64_t end = r.st.last ? r.st.last->index + 1 : r.first;
  if (end < r.first) {
    r.error = "log state " + format_id(r.st.last_purged) + ".." + format_id(r.st.last) +
              ": last is before the first index";
    return r;
  }
  auto read = log.entries(r.first, end);
  if (!read.ok()) {
    r.error = "entries(" + std::to_string(r.first) + ", " + std::to_string(end) +
              "): " + read.status().to_string();
    return r;
  }
  r.entries = std::move(*read);
  // A log engine keeps no log key: what it holds is what entries() read.
  if constexpr (log_backend<B>) return r;
  // The keys themselves: exactly [first, end), no hole, nothing left over
  // below first (an unfinished purge) or after the last.
  const group_keys<Keys> keys(Shard::is_system, shard.id());
  auto it = store.new_iterator(Shard::log_family);
  std::uint64_t expect = r.first;
  for (it->seek(keys.log(0)); it->valid() && keys.in_log_range(it->key()); it->next()) {
    const auto index = keys.index_of(it->key());
    if (!index || *index != expect) {
      r.error = "log keys: expected index " + std::to_string(expect) + ", found " +
                (index ? std::to_string(*index) : "a key that is no log key");
      return r;
    }
    ++expect;
  }
  if (!it->status().ok()) r.error = "log keys: " + it->status().to_string();
  else if (expect != end)
    r.error = "log keys end at " + std::to_string(expect) + ", the log state says " + std::to_string(end);
  return r;
}

template <class B>
std::array<recovered_group, k_groups> read_store(storage<B>& store) {
  return {read_group<system_log<B>, binary_key_format>(store, 0, system_shard{}),
          read_group<data_log<B>, decimal_key_format>(store, 1, data_shard{k_data_shard_id})};
}

std::filesystem::path child_program() {
  if (const char* p = std::getenv("SESHAT_CRASH_CHILD")) return p;
  return std::filesystem::read_symlink("/proc/self/exe").parent_path() / "crash_child";
}

// Runs the child on `dir` and kills it `delay` after it starts; returns its
// report and whether it died of the kill.
struct child_run {
  run_report report;
  bool killed = false;
  int wait_status = 0;
  std::string failure;  // spawning or reading failed
};

// The child, started with `args` after its name and its report pipe as
// fd 3 (the last argument is "3").
struct spawned_child {
  pid_t pid = -1;
  int fd = -1;          // the read end of the report pipe
  std::string failure;  // spawning failed
};

spawned_child spawn_child(std::vector<std::string> args) {
  spawned_child out;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    out.failure = std::string("pipe2: ") + std::strerror(errno);
    return out;
  }
  // Not fd 3 itself: dup2(3, 3) would leave it close-on-exec.
  const int write_end = ::fcntl(fds[1], F_DUPFD_CLOEXEC, 10);
  ::close(fds[1]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, write_end, 3);
  std::string program = child_program().string();
  args.insert(args.begin(), program);
  args.push_back("3");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int spawned =
      ::posix_spawn(&out.pid, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(write_end);
  if (spawned != 0) {
    ::close(fds[0]);
    out.failure = "posix_spawn " + program + ": " + std::strerror(spawned);
    return out;
  }
  out.fd = fds[0];
  return out;
}

child_run run_child(std::string_view backend, const std::filesystem::path& dir, std::uint64_t seed,
                    std::chrono::microseconds delay) {
  child_run out;
  spawned_child child = spawn_child({std::string(backend), dir.string(), std::to_string(seed)});
  if (!child.failure.empty()) {
    out.failure = child.failure;
    return out;
  }
  const pid_t pid = child.pid;
  const int fd = child.fd;
  const auto deadline = std::chrono::steady_clock::now() + delay;
  std::string buffer;
  bool eof = false;
  auto take_lines = [&] {
    std::size_t nl;
    while ((nl = buffer.find('\n')) != std::string::npos) {
      parse_line(buffer.substr(0, nl), out.report);
      buffer.erase(0, nl + 1);
    }
  };
  auto read_some = [&] {
    char chunk[65536];
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n > 0) buffer.append(chunk, static_cast<std::size_t>(n));
    else if (n == 0 || errno != EINTR) eof = true;
    take_lines();
  };
  while (!eof) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count()) + 1) > 0) read_some();
  }
  if (!eof) {
    ::kill(pid, SIGKILL);
    out.killed = true;
  }
  while (!eof) read_some();  // what it wrote before it died
  ::close(fd);
  while (::waitpid(pid, &out.wait_status, 0) < 0 && errno == EINTR) {
  }
  if (!out.killed) out.failure = "the child exited by itself (wait status " + std::to_string(out.wait_status) + ")";
  return out;
}

// Safe in a doctest message, which is also built when the check passes
// (with -s).
std::string first_or_none(const std::vector<std::string>& v) { return v.empty() ? "(none)" : v.front(); }
std::string line_of(const run_report& r, std::uint64_t seq) {
  auto it = r.issued.find(seq);
  return it == r.issued.end() ? "(no operation " + std::to_string(seq) + ")" : it->second.line;
}

struct totals {
  std::uint64_t rounds = 0, issued = 0, acked = 0, entries_checked = 0, acked_entries_checked = 0;
  std::uint64_t killed_before_ready = 0, unacked_survived = 0, in_flight_lost = 0;
};

template <class B>
void crash_rounds(std::string_view backend) {
  const std::uint64_t rounds = env_number("SESHAT_CRASH_ROUNDS", 50);
  const std::uint64_t seed = env_number("SESHAT_CRASH_SEED", std::random_device{}());
  MESSAGE(backend << ": " << rounds << " rounds, seed " << seed);
  const auto program = child_program();
  REQUIRE_MESSAGE(std::filesystem::exists(program), "the child program " << program << " is missing");
  std::mt19937_64 rng(seed);
  scratch_dir dir;
  std::array<group_model, k_groups> base{group_model(0), group_model(1)};
  totals t;
  const auto started = std::chrono::steady_clock::now();

  for (std::uint64_t round = 0; round < rounds; ++round) {
    CAPTURE(round);
    CAPTURE(seed);
    // Mostly while the workload runs; one round in eight during the
    // child's open (and the recovery it does).
    const auto delay = std::chrono::microseconds(
        rng() % 8 == 0 ? rng() % 60'000 : 40'000 + rng() % 800'000);
    child_run run = run_child(backend, dir.store(), rng(), delay);
    REQUIRE_MESSAGE(run.failure.empty(), run.failure);
    const run_report& rep = run.report;
    CHECK_MESSAGE(rep.errors.empty(), "the child failed: " << first_or_none(rep.errors));
    CHECK_MESSAGE(rep.malformed.empty(), "malformed report line: " << first_or_none(rep.malformed));
    if (!rep.ready) ++t.killed_before_ready;

    // What the child found at open is what the last check found.
    for (const auto& [g, line] : rep.opened) {
      const std::string expected = format_id(base[g].state().last_purged) + " " +
                                   format_id(base[g].state().last) + " " + format_vote(base[g].v) +
                                   " " + format_id(base[g].committed);
      CHECK_MESSAGE(line == expected, "group " << g << ": the child opened " << line
                                               << ", the last check found " << expected);
    }

    // The operations, 1..hi, with no gap.
    const std::uint64_t hi = rep.issued.empty() ? 0 : rep.issued.rbegin()->first;
    REQUIRE_MESSAGE(rep.issued.size() == hi, "issued sequence numbers have a gap");
    std::uint64_t lo_ack = 0, lo_ret = 0;
    for (auto s : rep.acked) lo_ack = std::max(lo_ack, s);
    for (auto s : rep.returned)
      if (auto op = rep.issued.find(s); op != rep.issued.end() && !op->second.async)
        lo_ret = std::max(lo_ret, s);
    lo_ret = std::max(lo_ret, lo_ack);
    t.issued += hi;
    t.acked += rep.acked.size();

    // The store as it is now.
    std::array<recovered_group, k_groups> found;
    {
      auto opened = storage<B>::open(dir.store(), store_options());
      REQUIRE_MESSAGE(opened.ok(), "reopen after the kill: " << opened.status().to_string());
      found = read_store(**opened);
      REQUIRE((*opened)->close().ok());
    }
    bool readable = true;
    for (int g = 0; g < k_groups; ++g) {
      CHECK_MESSAGE(found[g].error.empty(), "group " << g << ": " << found[g].error);
      readable = readable && found[g].error.empty();
    }
    REQUIRE(readable);

    // The models after the operations 1..k, for k from lo_ack (everything
    // acknowledged) to hi (everything issued); earlier ones only when needed.
    using models = std::array<group_model, k_groups>;
    auto advance = [&](models& m, std::uint64_t from, std::uint64_t to) {
      for (std::uint64_t s = from + 1; s <= to; ++s) {
        const op& o = rep.issued.at(s);
        const std::string bad = m[o.g].apply(o);
        REQUIRE_MESSAGE(bad.empty(), "operation " << o.line << ": " << bad);
      }
    };
    std::vector<models> tail;  // tail[k - lo_ack]
    {
      models m = base;
      advance(m, 0, lo_ack);
      tail.push_back(m);
      for (std::uint64_t k = lo_ack + 1; k <= hi; ++k) {
        advance(m, k - 1, k);
        tail.push_back(m);
      }
    }

    // The brief's checks against the acknowledged operations.
    const models& acked_model = tail.front();
    for (int g = 0; g < k_groups; ++g) {
      CAPTURE(g);
      const group_model& m = acked_model[g];
      const recovered_group& r = found[g];
      // Entries an operation issued after the last acknowledged one may have
      // removed: from the lowest truncate on, up to the highest purge.
      std::uint64_t removable_from = UINT64_MAX, removable_upto = 0;
      for (std::uint64_t s = lo_ack + 1; s <= hi; ++s) {
        const op& o = rep.issued.at(s);
        if (o.g != g) continue;
        if (o.kind == 'T') removable_from = std::min(removable_from, o.index);
        if (o.kind == 'P') removable_upto = std::max(removable_upto, o.index);
      }
      std::uint64_t required = 0, missing = 0, differing = 0;
      std::string first_problem;
      for (std::size_t i = 0; i < m.entries.size(); ++i) {
        const std::uint64_t index = m.first + i;
        if (index >= removable_from || index <= removable_upto) continue;
        ++required;
        const bool present = index >= r.first && index - r.first < r.entries.size();
        if (!present) {
          if (missing++ == 0 && first_problem.empty())
            first_problem = "acknowledged entry " + std::to_string(index) + " (term " +
                            std::to_string(m.entries[i].term) + ") is gone; found " + r.summary();
        } else if (!(r.entries[index - r.first] == m.expected(i))) {
          if (differing++ == 0 && first_problem.empty())
            first_problem = "acknowledged entry " + std::to_string(index) + " is not the one appended";
        }
      }
      t.acked_entries_checked += required;
      CHECK_MESSAGE(missing + differing == 0, missing << " acknowledged entries missing, " << differing
                                                      << " differing; the first: " << first_problem);
      if (m.v) {
        CHECK_MESSAGE(r.v.has_value(), "the acknowledged vote " << format_vote(m.v) << " is gone");
        if (r.v)
          CHECK_MESSAGE((r.v->term > m.v->term ||
                         (r.v->term == m.v->term && r.v->voted_for == m.v->voted_for &&
                          r.v->committed >= m.v->committed)),
                        "the vote went back from " << format_vote(m.v) << " to " << format_vote(r.v));
      }
      if (m.committed)
        CHECK_MESSAGE((r.committed && r.committed->index >= m.committed->index),
                      "committed went back from " << format_id(m.committed) << " to "
                                                  << format_id(r.committed));
      if (m.purged)
        CHECK_MESSAGE((r.st.last_purged && r.st.last_purged->index >= m.purged->index),
                      "the last purged id went back from " << format_id(m.purged) << " to "
                                                           << format_id(r.st.last_purged));
    }

    // Precisely: the state after some prefix k of the operations, with k
    // reaching everything that returned.
    auto same_as = [&](const models& m) {
      for (int g = 0; g < k_groups; ++g)
        if (!difference(m[g], found[g]).empty()) return false;
      return true;
    };
    std::optional<std::uint64_t> match;
    models matched;
    for (std::uint64_t k = hi + 1; k-- > lo_ack;) {
      if (same_as(tail[k - lo_ack])) {
        match = k;
        matched = tail[k - lo_ack];
        break;
      }
    }
    if (!match) {
      // Lost acknowledged operations? Look for the last earlier prefix.
      models m = base;
      for (std::uint64_t k = 0; k < lo_ack; advance(m, k, k + 1), ++k)
        if (same_as(m)) {
          match = k;
          matched = m;
        }
    }
    if (!match) {
      std::ostringstream why;
      why << "the recovered store is the state after no prefix of the operations (" << hi
          << " issued, " << lo_ack << " acknowledged, " << lo_ret << " returned)";
      for (int g = 0; g < k_groups; ++g)
        why << "\n  group " << g << " vs the acknowledged state: " << difference(tail.front()[g], found[g])
            << "\n  group " << g << " vs the issued state: " << difference(tail.back()[g], found[g]);
      FAIL(why.str());
    }
    CHECK_MESSAGE(*match >= lo_ack, "the store holds the state after operation "
                                        << *match << ", but operation " << lo_ack
                                        << " was acknowledged: "
                                        << line_of(rep, *match + 1) << " is lost");
    CHECK_MESSAGE(*match >= lo_ret, "the store holds the state after operation "
                                        << *match << ", but operation " << lo_ret
                                        << " had returned (it was in the WAL): "
                                        << line_of(rep, *match + 1) << " is lost");
    if (*match > lo_ack) ++t.unacked_survived;
    if (*match < hi) ++t.in_flight_lost;
    for (int g = 0; g < k_groups; ++g) t.entries_checked += found[g].entries.size();
    base = matched;
    ++t.rounds;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  MESSAGE(backend << ": " << t.rounds << " rounds in " << seconds << " s; " << t.issued
                  << " operations issued, " << t.acked << " acknowledged; " << t.entries_checked
                  << " recovered entries checked against the model, " << t.acked_entries_checked
                  << " of them required as acknowledged; " << t.killed_before_ready
                  << " kills during open; " << t.unacked_survived
                  << " rounds kept unacknowledged operations, " << t.in_flight_lost
                  << " lost unacknowledged ones; final state: system " << base[0].summary()
                  << "; data shard " << base[1].summary());
}

#if SESHAT_CRASH_FIRST_OPEN
// What one "crash_child create" run reported (the KILL, OPENED or E line)
// and how it ended.
struct first_open_run {
  std::string last_line;
  bool opened = false;
  int wait_status = 0;
  std::string failure;
};

first_open_run run_first_open(std::string_view backend, const std::filesystem::path& store,
                              const std::filesystem::path& keep, std::uint64_t step) {
  first_open_run out;
  spawned_child child = spawn_child(
      {"create", std::string(backend), store.string(), keep.string(), std::to_string(step)});
  if (!child.failure.empty()) {
    out.failure = child.failure;
    return out;
  }
  std::string text;
  char chunk[4096];
  for (;;) {
    const ssize_t n = ::read(child.fd, chunk, sizeof chunk);
    if (n > 0)
      text.append(chunk, static_cast<std::size_t>(n));
    else if (n == 0 || errno != EINTR)
      break;
  }
  ::close(child.fd);
  while (::waitpid(child.pid, &out.wait_status, 0) < 0 && errno == EINTR) {
  }
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) out.last_line = line;
  out.opened = out.last_line.rfind("OPENED ", 0) == 0;
  return out;
}

// The names under `dir` ("(missing)" when it does not exist).
std::string listing(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return "(missing)";
  std::vector<std::string> names;
  for (auto it = std::filesystem::directory_iterator(dir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    names.push_back(it->path().filename().string());
  std::sort(names.begin(), names.end());
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : " ") + n;
  return out.empty() ? "(empty)" : out;
}

// Kills the first open of a new store (in a nested directory whose parents
// do not exist) before each of its steps in turn, one child per step, until
// an open finishes; after each kill the next open (create_if_missing) must
// make a working store, and a later one without create_if_missing must
// find it finished.
template <class B>
void first_open_kills(std::string_view backend) {
  std::uint64_t kills = 0, engine_left = 0, at_current = 0;
  for (std::uint64_t step = 1;; ++step) {
    REQUIRE_MESSAGE(step <= 2000, "the first open took more than 2000 steps");
    scratch_dir dir;
    const auto store = dir.path() / "a" / "b" / "store";
    const first_open_run run = run_first_open(backend, store, dir.path() / "keep", step);
    REQUIRE_MESSAGE(run.failure.empty(), run.failure);
    if (run.opened) {
      CHECK_MESSAGE((WIFEXITED(run.wait_status) && WEXITSTATUS(run.wait_status) == 0),
                    "the child that finished its open exited with wait status " << run.wait_status);
      break;
    }
    const std::string killed_at = run.last_line;
    REQUIRE_MESSAGE((WIFSIGNALED(run.wait_status) && WTERMSIG(run.wait_status) == SIGKILL &&
                     killed_at.rfind("KILL ", 0) == 0),
                    "the child neither died at step "
                        << step << " nor finished its open: wait status " << run.wait_status
                        << ", last line " << killed_at);
    ++kills;
    const std::string left = listing(store);
    if (left.find("SESHAT_STORE") != std::string::npos &&
        left.find("MANIFEST") != std::string::npos && left.find("CURRENT") == std::string::npos)
      ++engine_left;
    // The engine's rename of its temporary CURRENT file (NNNNNN.dbtmp).
    if (killed_at.find("engine rename or delete") != std::string::npos &&
        killed_at.find(".dbtmp") != std::string::npos)
      ++at_current;
    {
      auto opened = storage<B>::open(store, store_options());
      REQUIRE_MESSAGE(opened.ok(), "after a kill at " << killed_at << " (the store directory held: "
                                                      << left << "), the next open failed: "
                                                      << opened.status().to_string());
      REQUIRE((*opened)->put(column_family::system_raft_state, "vote", "1").ok());
      REQUIRE((*opened)->close().ok());
    }
    open_options existing = store_options();
    existing.create_if_missing = false;
    auto reopened = storage<B>::open(store, existing);
    REQUIRE_MESSAGE(reopened.ok(), "after a kill at "
                                       << killed_at << " and a successful open, "
                                       << "an open without create_if_missing failed: "
                                       << reopened.status().to_string());
    auto vote = (*reopened)->get(column_family::system_raft_state, "vote");
    REQUIRE_MESSAGE(vote.ok(), vote.status().to_string());
    CHECK(*vote == "1");
  }
  MESSAGE(backend << ": the first open was killed before each of its " << kills << " steps; "
                  << engine_left << " kills left engine files but no CURRENT, " << at_current
                  << " were at the rename of CURRENT's temporary; every next open made a "
                     "working store");
  CHECK(kills >= 10);
  CHECK(engine_left > 0);
  CHECK(at_current > 0);
}
#endif

}  // namespace

#if SESHAT_CRASH_FIRST_OPEN
TEST_CASE(
    "process kill: a RocksDB store's first open killed at any step is redone by the next open") {
  first_open_kills<rocksdb_backend>("rocksdb");
}
TEST_CASE(
    "process kill: a LevelDB store's first open killed at any step is redone by the next open") {
  first_open_kills<leveldb_backend>("leveldb");
}
#endif

#if SESHAT_HAVE_ROCKSDB
TEST_CASE("process kill: RocksDB keeps every acknowledged operation and recovers a prefix") {
  crash_rounds<rocksdb_backend>("rocksdb");
}
TEST_CASE(
    "process kill: RocksDB with its logs in the log engine (rocksdb+segments) keeps every "
    "acknowledged operation and recovers a prefix") {
  crash_rounds<segmented<rocksdb_backend>>("rocksdb+segments");
}
#endif

#if SESHAT_HAVE_LEVELDB
TEST_CASE("process kill: LevelDB keeps every acknowledged operation and recovers a prefix") {
  crash_rounds<leveldb_backend>("leveldb");
}
#endif

#if !SESHAT_HAVE_ROCKSDB && !SESHAT_HAVE_LEVELDB
TEST_CASE("process kill") { MESSAGE("no on-disk backend is built: nothing to kill"); }
#endif

TEST_SUITE_END();  // "process kill"
