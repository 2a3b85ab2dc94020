// Snapshots at the storage level (storage<B>::create_snapshot,
// validate_snapshot, restore_snapshot), on every backend: a restore brings
// back exactly the snapshot's state, a snapshot is one point in time even
// under concurrent writes, every damaged snapshot is refused naming its
// problem with the store untouched, and a restore killed at any moment
// leaves the old state or the new one.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "fault_env/scoped_fs_observer.hpp"
#include "seshat/detail/files.hpp"
#include "seshat/snapshot.hpp"
#include "support.hpp"

TEST_SUITE_BEGIN("store snapshots");

using namespace seshat;
using seshat::test::open_store;
using seshat::test::scratch_dir;
namespace fs = std::filesystem;

namespace {

using dump_t = std::map<std::string, std::string>;

// The data log these tests write: group 0 on a key-value store (its keys
// unprefixed), group 1 in a log engine (which keeps data groups from 1).
template <class B>
log_address data_log() {
  return log_backend<B> ? log_address{column_family::data_raft_log, 1}
                        : log_address{column_family::data_raft_log};
}

// Every key of every family (test::dump) and, on a store whose logs are in
// a log engine (segmented<B>), the entries of the system log and of data
// data_log<B>() under the keys a key-value store keeps group 0 at: one picture of the
// store for every backend.
template <class B>
dump_t dump(storage<B>& s) {
  dump_t d = seshat::test::dump(s);
  if constexpr (log_backend<B>) {
    for (log_address a : {log_address{column_family::system_raft_log}, data_log<B>()}) {
      const auto first = s.first_log_index(a).value();
      const auto last = s.last_log_index(a).value();
      if (!first || !last) continue;
      const auto got = s.read_log(a, *first, *last + 1).value();
      for (std::uint64_t i = *first; i <= *last; ++i)
        d[std::string(name_of(a.cf)) + "/" + std::string(log_key::encode(i))] = got[i - *first];
    }
  }
  return d;
}

// Writes `count` keys tagged `tag` into every family: plain keys in the
// three data families, one key in each raft_state family, and log entries
// [first_log, first_log + count) in both logs.
template <class B>
void write_state(storage<B>& s, const std::string& tag, int count, std::uint64_t first_log) {
  std::vector<std::string> entries;
  for (int i = 0; i < count; ++i) {
    const std::string key = tag + "-" + std::to_string(i);
    REQUIRE(s.put(column_family::data_kv, key, "kv of " + key).ok());
    REQUIRE(s.put(column_family::system_data, key, "system of " + key).ok());
    entries.push_back("entry " + tag + " " + std::to_string(i));
  }
  REQUIRE(s.put(column_family::system_raft_state, "vote", "vote " + tag).ok());
  REQUIRE(s.put(column_family::data_raft_state, "applied", "applied " + tag).ok());
  REQUIRE(s.append_log(column_family::system_raft_log, first_log, entries).ok());
  REQUIRE(s.append_log(data_log<B>(), first_log, entries).ok());
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE(in);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Replaces `p` through a new file renamed over it: a file of a RocksDB
// snapshot may be a hard link to the live store's, which must not change.
void replace_file(const fs::path& p, const std::string& contents) {
  const fs::path tmp = p.string() + ".new";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    REQUIRE(out);
    out << contents;
  }
  fs::rename(tmp, p);
}

// The largest file under the snapshot's data/, relative to the snapshot.
std::string largest_data_file(const fs::path& snapshot) {
  std::string best;
  std::uintmax_t best_size = 0;
  for (const auto& e : fs::recursive_directory_iterator(snapshot / "data")) {
    if (!e.is_regular_file() || (!best.empty() && e.file_size() <= best_size)) continue;
    best = e.path().lexically_relative(snapshot).generic_string();
    best_size = e.file_size();
  }
  REQUIRE(!best.empty());
  return best;
}

std::uint64_t data_bytes(const fs::path& snapshot) {
  std::uint64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(snapshot / "data"))
    if (e.is_regular_file()) total += e.file_size();
  return total;
}

// Rewrites the manifest with `edit` applied to its body and a valid checksum.
void rewrite_manifest(const fs::path& snapshot, const std::function<void(std::string&)>& edit) {
  std::string text = read_file(snapshot / k_manifest_file);
  std::string body = text.substr(0, text.rfind("manifest-crc "));
  edit(body);
  replace_file(snapshot / k_manifest_file,
               body + "manifest-crc " + detail::hex32(detail::crc32c(body)) + "\n");
}

std::uint64_t now_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// True when some regular file under `dir` has more than one link.
bool shares_a_file(const fs::path& dir) {
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    struct stat st {};
    if (e.is_regular_file() && ::stat(e.path().c_str(), &st) == 0 && st.st_nlink > 1) return true;
  }
  return false;
}

// Set SESHAT_SNAPSHOT_VERBOSE to see what the timing-dependent tests hit.
bool verbose() { return std::getenv("SESHAT_SNAPSHOT_VERBOSE") != nullptr; }

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("snapshots", B, snapshots) {
  scratch_dir dir;
  const fs::path snap = dir.path() / "snapshots" / "s1";

  SUBCASE("create, validate, write more, restore: the store is the snapshot's and keeps working") {
    auto s = open_store<B>(dir.store());
    write_state(*s, "a", 30, 1);
    const dump_t at_snapshot = dump(*s);
    const std::uint64_t before = now_ms();
    auto meta = s->create_snapshot(snap, log_id{3, 30});
    REQUIRE_MESSAGE(meta.ok(), meta.status().to_string());
    CHECK(meta->last_included == log_id{3, 30});
    CHECK(meta->created_at_ms >= before);
    CHECK(meta->created_at_ms <= now_ms());
    CHECK(meta->size_bytes == data_bytes(snap));
    CHECK(meta->size_bytes > 0);
    CHECK(meta->backend == B::k_name);
    CHECK_FALSE(fs::exists(snap.string() + ".partial"));
    auto checked = storage<B>::validate_snapshot(snap);
    REQUIRE_MESSAGE(checked.ok(), checked.status().to_string());
    CHECK(*checked == *meta);
    if (B::k_name == std::string_view("rocksdb"))
      CHECK_MESSAGE(shares_a_file(snap / "data"), "RocksDB's checkpoint should hard-link its tables");

    // Later writes of every kind: new keys, overwrites, deletes, log appends
    // and truncations, raft_state changes.
    write_state(*s, "b", 20, 31);
    REQUIRE(s->put(column_family::data_kv, "a-1", "overwritten").ok());
    REQUIRE(s->del(column_family::system_data, "a-2").ok());
    REQUIRE(s->truncate_log_before(column_family::system_raft_log, 10).ok());
    REQUIRE(s->truncate_log_from(data_log<B>(), 40).ok());
    REQUIRE(dump(*s) != at_snapshot);

    auto restored = s->restore_snapshot(snap);
    REQUIRE_MESSAGE(restored.ok(), restored.status().to_string());
    CHECK(*restored == *meta);
    CHECK(dump(*s) == at_snapshot);
    // The cached log bounds were dropped: the logs are the snapshot's.
    CHECK(s->first_log_index(column_family::system_raft_log).value() == 1u);
    CHECK(s->last_log_index(column_family::system_raft_log).value() == 30u);
    CHECK(s->last_log_index(data_log<B>()).value() == 30u);
    CHECK(s->append_log(data_log<B>(), 40, "gap").is(errc::invalid_log_index));
    REQUIRE(s->append_log(data_log<B>(), 31, "after restore").ok());
    REQUIRE(s->put(column_family::data_kv, "c", "after restore").ok());
    bool synced = false;
    s->sync_async([&](status st) { synced = st.ok(); });
    REQUIRE(s->sync_wal().ok());
    dump_t expected = at_snapshot;
    expected["data_raft_log/" + std::string(log_key::encode(31))] = "after restore";
    expected["data_kv/c"] = "after restore";
    CHECK(dump(*s) == expected);

    // The snapshot is unchanged by the store's later life, and can be used again.
    CHECK(storage<B>::validate_snapshot(snap).ok());
    REQUIRE(s->close().ok());
    CHECK(synced);
    s = open_store<B>(dir.store());
    CHECK(dump(*s) == expected);
    REQUIRE(s->restore_snapshot(snap).ok());
    CHECK(dump(*s) == at_snapshot);
    REQUIRE(s->close().ok());
    s = open_store<B>(dir.store());
    CHECK(dump(*s) == at_snapshot);
    CHECK(storage<B>::validate_snapshot(snap).ok());
    CHECK_FALSE(fs::exists(dir.path() / "store.restore"));
  }

  SUBCASE("a damaged snapshot is refused, naming the problem, and the store is untouched") {
    auto s = open_store<B>(dir.store());
    write_state(*s, "a", 20, 1);
    REQUIRE(s->create_snapshot(snap, log_id{2, 20}).ok());
    write_state(*s, "b", 5, 21);
    const dump_t current = dump(*s);
    const std::string big = largest_data_file(snap);
    const std::uint64_t big_size = fs::file_size(snap / big);

    struct damage {
      const char* what;
      std::function<void(const fs::path&)> apply;
      errc code;
      std::vector<std::string> says;
    };
    const std::vector<damage> damages = {
        {"a flipped byte in a data file",
         [&](const fs::path& p) {
           std::string c = read_file(p / big);
           c[c.size() / 2] = static_cast<char>(c[c.size() / 2] ^ 0x20);
           replace_file(p / big, c);
         },
         errc::snapshot_failed, {"checksum mismatch for " + big, "expected crc32c"}},
        {"a truncated data file",
         [&](const fs::path& p) {
           std::string c = read_file(p / big);
           c.pop_back();
           replace_file(p / big, c);
         },
         errc::snapshot_failed,
         {"size mismatch for " + big, "expected " + std::to_string(big_size) + " bytes, got " +
                                          std::to_string(big_size - 1)}},
        {"a missing data file", [&](const fs::path& p) { fs::remove(p / big); },
         errc::snapshot_failed, {"missing file " + big}},
        {"an extra file",
         [&](const fs::path& p) { replace_file(p / "data" / "stray.bin", "x"); },
         errc::snapshot_failed, {"extra file data/stray.bin"}},
        {"a garbled manifest",
         [&](const fs::path& p) {
           std::string m = read_file(p / k_manifest_file);
           const auto at = m.find("last-included 2 20");
           REQUIRE(at != std::string::npos);
           m.replace(at, 18, "last-included 9 99");
           replace_file(p / k_manifest_file, m);
         },
         errc::snapshot_failed, {"manifest checksum mismatch"}},
        {"a truncated manifest",
         [&](const fs::path& p) {
           std::string m = read_file(p / k_manifest_file);
           replace_file(p / k_manifest_file, m.substr(0, m.size() / 2));
         },
         errc::snapshot_failed, {"garbled manifest"}},
        {"a manifest of format version 99",
         [&](const fs::path& p) {
           rewrite_manifest(p, [](std::string& body) { body.replace(0, 17, "seshat-snapshot 99"); });
         },
         errc::version_mismatch, {"format version 99"}},
        {"a manifest naming a path outside data/",
         [&](const fs::path& p) {
           rewrite_manifest(p, [&](std::string& body) {
             const auto at = body.find(" " + big + "\n");
             REQUIRE(at != std::string::npos);
             body.replace(at + 1, big.size(), "data/../../escape");
           });
         },
         errc::snapshot_failed, {"not a relative path under data/"}},
        {"a manifest whose file count is wrong",
         [&](const fs::path& p) {
           rewrite_manifest(p, [](std::string& body) {
             const auto at = body.find("\nfiles ");
             body.insert(at + 7, "1");
           });
         },
         errc::snapshot_failed, {"garbled manifest", "announces"}},
        {"no manifest", [&](const fs::path& p) { fs::remove(p / k_manifest_file); },
         errc::snapshot_failed, {"missing manifest"}},
        {"no snapshot at all", [&](const fs::path& p) { fs::remove_all(p); },
         errc::snapshot_failed, {"missing manifest"}},
    };
    int n = 0;
    for (const auto& d : damages) {
      CAPTURE(d.what);
      // A copy (new inodes: damaging it cannot touch the store's files).
      const fs::path bad = dir.path() / "snapshots" / ("bad-" + std::to_string(n++));
      fs::copy(snap, bad, fs::copy_options::recursive);
      d.apply(bad);
      auto checked = storage<B>::validate_snapshot(bad);
      REQUIRE_FALSE(checked.ok());
      CHECK(checked.status().code() == d.code);
      for (const auto& part : d.says) CHECK_MESSAGE(contains(checked.status().message(), part),
                                                     checked.status().to_string());
      CHECK(contains(checked.status().message(), bad.string()));
      auto restored = s->restore_snapshot(bad);
      REQUIRE_FALSE(restored.ok());
      CHECK(restored.status().code() == d.code);
      CHECK(restored.status().message() == checked.status().message());
      CHECK(dump(*s) == current);
    }
    // The store still works, and the original snapshot is intact.
    REQUIRE(s->put(column_family::data_kv, "still", "works").ok());
    CHECK(s->get(column_family::data_kv, "still").value() == "works");
    CHECK(storage<B>::validate_snapshot(snap).ok());
  }

  SUBCASE("a snapshot is not made over an existing directory or inside the store") {
    auto s = open_store<B>(dir.store());
    write_state(*s, "a", 3, 1);
    fs::create_directories(snap);
    auto over = s->create_snapshot(snap, log_id{1, 3});
    CHECK(over.status().is(errc::snapshot_failed));
    CHECK(contains(over.status().message(), "already exists"));
    CHECK(fs::is_empty(snap));
    auto inside = s->create_snapshot(dir.store() / "snap", log_id{1, 3});
    CHECK(inside.status().is(errc::snapshot_failed));
    CHECK(contains(inside.status().message(), "inside the store"));
    CHECK_FALSE(fs::exists(dir.store() / "snap"));
    // A stale .partial from a crashed create is replaced.
    const fs::path other = dir.path() / "snapshots" / "s2";
    fs::create_directories(other.string() + ".partial/data");
    REQUIRE(s->create_snapshot(other, log_id{1, 3}).ok());
    CHECK(storage<B>::validate_snapshot(other).ok());
    CHECK_FALSE(fs::exists(other.string() + ".partial"));
  }

  if constexpr (!std::is_same_v<B, memory_backend>) {
    SUBCASE("a snapshot of another backend is refused") {
      const fs::path memory_store = dir.path() / "memory-store";
      {
        auto m = open_store<memory_backend>(memory_store);
        write_state(*m, "m", 3, 1);
        REQUIRE(m->create_snapshot(snap, log_id{1, 3}).ok());
      }
      REQUIRE(memory_backend::destroy(memory_store).ok());
      auto s = open_store<B>(dir.store());
      write_state(*s, "a", 3, 1);
      const dump_t current = dump(*s);
      auto restored = s->restore_snapshot(snap);
      CHECK(restored.status().is(errc::version_mismatch));
      CHECK(contains(restored.status().message(), "made by the memory backend"));
      CHECK(dump(*s) == current);
    }
  }
}

TEST_CASE_TEMPLATE_INVOKE(snapshots, SESHAT_ALL_BACKENDS, SESHAT_SEGMENTED_BACKENDS);

TEST_CASE("memory backend: install is all or nothing, and a restored state is durable") {
  scratch_dir dir;
  const fs::path snap = dir.path() / "snap";
  auto s = open_store<memory_backend>(dir.store());
  write_state(*s, "a", 10, 1);
  const dump_t at_snapshot = dump(*s);
  REQUIRE(s->create_snapshot(snap, log_id{1, 10}).ok());
  write_state(*s, "b", 5, 11);
  const dump_t later = dump(*s);

  SUBCASE("a checkpoint file that does not decode changes nothing") {
    REQUIRE(s->close().ok());
    const fs::path bad = dir.path() / "bad";
    fs::copy(snap / "data", bad, fs::copy_options::recursive);
    const fs::path file = bad / memory_backend::k_checkpoint_file;
    std::string c = read_file(file);
    const std::string whole = c;
    c[c.size() / 2] = static_cast<char>(c[c.size() / 2] ^ 1);
    replace_file(file, c);
    status s1 = memory_backend::install_checkpoint(bad, dir.store());
    CHECK(s1.is(errc::corrupted_data));
    CHECK(contains(s1.message(), "checksum mismatch"));
    replace_file(file, whole.substr(0, whole.size() - 5));
    CHECK(memory_backend::install_checkpoint(bad, dir.store()).is(errc::corrupted_data));
    replace_file(file, "seshat-memory-checkpoint 1\n");
    CHECK(memory_backend::install_checkpoint(bad, dir.store()).is(errc::corrupted_data));
    s = open_store<memory_backend>(dir.store());
    CHECK(dump(*s) == later);
  }

  SUBCASE("install refuses an open store") {
    status open_refused = memory_backend::install_checkpoint(snap / "data", dir.store());
    CHECK(open_refused.is(errc::backend_error));
    CHECK(contains(open_refused.message(), "open"));
    CHECK(dump(*s) == later);
  }

  SUBCASE("a power loss after a restore keeps the restored state") {
    REQUIRE(s->restore_snapshot(snap).ok());
    REQUIRE(s->put(column_family::data_kv, "unsynced", "v").ok());
    s->backend().drop_unsynced();
    CHECK(dump(*s) == at_snapshot);
  }
}

#if SESHAT_HAVE_ROCKSDB || SESHAT_HAVE_LEVELDB

TEST_CASE_TEMPLATE_DEFINE("on-disk snapshots", B, disk_snapshots) {
  scratch_dir dir;
  const fs::path snap = dir.path() / "snap";
  const fs::path store = dir.store();
  const fs::path leftover = dir.path() / "store.restore";

  SUBCASE("install refuses a store that is open, and a checkpoint that is not a store") {
    auto s = open_store<B>(store);
    write_state(*s, "a", 5, 1);
    REQUIRE(s->create_snapshot(snap, log_id{1, 5}).ok());
    write_state(*s, "b", 5, 6);
    const dump_t current = dump(*s);
    status locked = B::install_checkpoint(snap / "data", store);
    CHECK(locked.is(errc::io_error));
    CHECK_MESSAGE(contains(locked.message(), "is already open in this process"), locked.to_string());
    CHECK(dump(*s) == current);
    REQUIRE(s->close().ok());
    status not_store = B::install_checkpoint(dir.path(), store);
    CHECK_FALSE(not_store.ok());
    CHECK_FALSE(fs::exists(leftover));
    s = open_store<B>(store);
    CHECK(dump(*s) == current);
  }

  SUBCASE("open removes what an interrupted restore left, and nothing that is not seshat's") {
    {
      auto s = open_store<B>(store);
      write_state(*s, "a", 3, 1);
      REQUIRE(s->create_snapshot(snap, log_id{1, 3}).ok());
    }
    fs::create_directories(leftover);
    replace_file(leftover / "SESHAT_STORE", "partial");
    replace_file(leftover / "000001.sst", "partial");
    { auto s = open_store<B>(store); }
    CHECK_FALSE(fs::exists(leftover));
    fs::create_directories(leftover);
    replace_file(leftover / "mine.txt", "not seshat's");
    { auto s = open_store<B>(store); }
    CHECK(fs::exists(leftover / "mine.txt"));
    // Nor does an install delete it.
    status refused = B::install_checkpoint(snap / "data", store);
    CHECK(refused.is(errc::invalid_argument));
    CHECK(contains(refused.message(), "not a leftover"));
    CHECK(fs::exists(leftover / "mine.txt"));
  }

  SUBCASE("a restore killed at any moment leaves the old state or the new one") {
    dump_t new_state, old_state;
    {
      auto s = open_store<B>(store);
      write_state(*s, "new", 200, 1);
      new_state = dump(*s);
      REQUIRE(s->create_snapshot(snap, log_id{1, 200}).ok());
      write_state(*s, "old", 100, 201);
      REQUIRE(s->del(column_family::data_kv, "new-7").ok());
      old_state = dump(*s);
    }
    const fs::path pristine = dir.path() / "pristine";
    fs::copy(store, pristine, fs::copy_options::recursive);
    auto reset = [&] {
      fs::remove_all(store);
      fs::remove_all(leftover);
      fs::copy(pristine, store, fs::copy_options::recursive);
    };

    // The child only installs: it must not touch doctest, nor RocksDB's
    // thread pools, which fork() did not copy.
    auto start_install = [&] {
      const pid_t pid = ::fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {
        status s = B::install_checkpoint(snap / "data", store);
        ::_exit(s.ok() ? 0 : 1);
      }
      return pid;
    };
    auto wait_for = [](pid_t pid) {
      int wstatus = 0;
      REQUIRE(::waitpid(pid, &wstatus, 0) == pid);
      if (WIFEXITED(wstatus)) CHECK(WEXITSTATUS(wstatus) == 0);
    };

    // How long a whole install in a child takes here, fork included.
    reset();
    const auto t0 = std::chrono::steady_clock::now();
    wait_for(start_install());
    const auto full = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - t0);
    CHECK_MESSAGE(shares_a_file(store), "the install should hard-link the table files");
    {
      auto s = open_store<B>(store);
      CHECK(dump(*s) == new_state);
    }
    // The two leftovers a crash can leave, made on purpose: the old store
    // whole after the swap, and a partial copy before it.
    fs::copy(pristine, leftover, fs::copy_options::recursive);
    {
      auto s = open_store<B>(store);
      CHECK(dump(*s) == new_state);
    }
    CHECK_FALSE(fs::exists(leftover));
    reset();
    fs::copy(snap / "data", leftover, fs::copy_options::recursive);
    for (const auto& e : fs::directory_iterator(leftover))
      if (e.path().filename() != "SESHAT_STORE" && e.path().filename() != "CURRENT") fs::remove_all(e.path());
    {
      auto s = open_store<B>(store);
      CHECK(dump(*s) == old_state);
    }
    CHECK_FALSE(fs::exists(leftover));

    std::mt19937 rng(12345);
    // Outcomes: killed before the copy began, during the copy, after the
    // swap but before the old contents were gone, after the end.
    int before_start = 0, during_copy = 0, after_swap = 0, completed = 0;
    constexpr int k_runs = 20;
    for (int run = 0; run < k_runs; ++run) {
      reset();
      // From "killed at once" to "killed after it finished".
      const auto span = full.count() * 12 / 10;
      const auto delay = std::chrono::microseconds(span * run / (k_runs - 1) +
                                                   static_cast<long>(rng() % 200));
      const pid_t pid = start_install();
      std::this_thread::sleep_for(delay);
      ::kill(pid, SIGKILL);
      wait_for(pid);
      const bool left = fs::exists(leftover);
      auto s = open_store<B>(store);
      const dump_t d = dump(*s);
      CAPTURE(run);
      CAPTURE(delay.count());
      CHECK((d == old_state || d == new_state));
      if (d == old_state) ++(left ? during_copy : before_start);
      else ++(left ? after_swap : completed);
      CHECK_FALSE(fs::exists(leftover));  // open() removed it
      REQUIRE(s->put(column_family::data_kv, "after", "crash").ok());
      CHECK(s->get(column_family::data_kv, "after").value() == "crash");
    }
    if (verbose())
      MESSAGE(B::k_name << ": an install in a child takes " << full.count() << " us; of "
                        << k_runs << " killed restores, " << before_start
                        << " died before copying, " << during_copy << " while copying, "
                        << after_swap << " after the swap, " << completed
                        << " after finishing");
  }
}

// Fails (EIO) the fsync of the store's parent directory that the install
// does before the switch (`after_switch` false: the first one) or the one
// right after it (true), through seshat's fs_observer seam.
class failing_parent_sync final : public seshat::test::scoped_fs_observer {
 public:
  failing_parent_sync(const fs::path& store, bool after_switch)
      : store_(store.lexically_normal()),
        parent_(detail::parent_of(store).lexically_normal()),
        after_switch_(after_switch) {}

  int before(detail::fs_step step, const fs::path& p) override {
    if (step != detail::fs_step::sync_directory || fired_ || p.lexically_normal() != parent_ ||
        switched_ != after_switch_)
      return scoped_fs_observer::before(step, p);
    fired_ = true;
    return EIO;
  }
  void after(detail::fs_step step, const fs::path& p) override {
    if (step == detail::fs_step::rename && p.lexically_normal() == store_) switched_ = true;
    scoped_fs_observer::after(step, p);
  }
  bool fired() const { return fired_; }

 private:
  const fs::path store_, parent_;
  const bool after_switch_;
  bool switched_ = false, fired_ = false;
};

// A store at state "a" with a snapshot of it, then at state "b"; a
// restore of the snapshot whose parent fsync fails before the switch, or
// after it. What the restore returned, and the three states.
struct failed_restore {
  status failed;
  dump_t snapshot_state, old_state, now;
};
template <class B>
failed_restore restore_with_failing_parent_sync(bool after_switch) {
  scratch_dir dir;
  auto s = open_store<B>(dir.store());
  write_state(*s, "a", 5, 1);
  const fs::path snap = dir.path() / "snap";
  REQUIRE(s->create_snapshot(snap, log_id{1, 5}).ok());
  failed_restore r;
  r.snapshot_state = dump(*s);
  write_state(*s, "b", 5, 6);
  r.old_state = dump(*s);
  bool fired = false;
  {
    failing_parent_sync fault(dir.store(), after_switch);
    r.failed = s->restore_snapshot(snap).status();
    fired = fault.fired();
  }
  REQUIRE(fired);
  r.now = dump(*s);  // reopened by the restore
  return r;
}

TEST_CASE_TEMPLATE_DEFINE(
    "restore_snapshot whose parent fsync fails after the switch says the store holds the "
    "snapshot's state, and it does",
    B, restore_sync_fails_after_switch) {
  const failed_restore r = restore_with_failing_parent_sync<B>(true);
  CHECK(r.failed.is(errc::io_error));
  CHECK_MESSAGE(contains(r.failed.message(), "holds the snapshot's state"), r.failed.to_string());
  CHECK_MESSAGE(!contains(r.failed.message(), "old state"), r.failed.to_string());
  CHECK(r.now == r.snapshot_state);
}

TEST_CASE_TEMPLATE_DEFINE(
    "restore_snapshot whose parent fsync fails before the switch says the store keeps its old "
    "state, and it does",
    B, restore_sync_fails_before_switch) {
  const failed_restore r = restore_with_failing_parent_sync<B>(false);
  CHECK(r.failed.is(errc::io_error));
  CHECK_MESSAGE(contains(r.failed.message(), "keeps its old state"), r.failed.to_string());
  CHECK(r.now == r.old_state);
}

// The disk backends, plain and with their logs in the log engine (the
// SESHAT_SEGMENTED_*_TYPE macros start with a comma, or are empty).
#if SESHAT_HAVE_ROCKSDB && SESHAT_HAVE_LEVELDB
#define SESHAT_DISK_BACKENDS                                                         \
  seshat::rocksdb_backend, seshat::leveldb_backend SESHAT_SEGMENTED_ROCKSDB_TYPE \
      SESHAT_SEGMENTED_LEVELDB_TYPE
#elif SESHAT_HAVE_ROCKSDB
#define SESHAT_DISK_BACKENDS seshat::rocksdb_backend SESHAT_SEGMENTED_ROCKSDB_TYPE
#else
#define SESHAT_DISK_BACKENDS seshat::leveldb_backend SESHAT_SEGMENTED_LEVELDB_TYPE
#endif
TEST_CASE_TEMPLATE_INVOKE(disk_snapshots, SESHAT_DISK_BACKENDS);
TEST_CASE_TEMPLATE_INVOKE(restore_sync_fails_after_switch, SESHAT_DISK_BACKENDS);
TEST_CASE_TEMPLATE_INVOKE(restore_sync_fails_before_switch, SESHAT_DISK_BACKENDS);

#endif

TEST_SUITE("concurrency") {

TEST_CASE_TEMPLATE_DEFINE("a snapshot taken while another thread writes is one point in time",
                          B, snapshot_while_writing) {
  scratch_dir dir;
  const fs::path snap = dir.path() / "snapshots" / "s1";
  auto s = open_store<B>(dir.store());
  for (int i = 0; i < 100; ++i)
    REQUIRE(s->put(column_family::data_kv, "pre-" + std::to_string(i), "v").ok());
  std::atomic<bool> stop{false};
  std::atomic<int> written{0};
  std::atomic<bool> writer_failed{false};
  std::thread writer([&] {
    char key[32];
    for (int i = 0; !stop.load(); ++i) {
      std::snprintf(key, sizeof key, "w-%08d", i);
      auto b = s->new_batch();
      b.put(column_family::data_kv, key, "kv");
      b.put(column_family::system_data, key, "system");
      b.del(column_family::data_kv, "pre-" + std::to_string(i % 100));
      b.put(column_family::data_kv, "pre-" + std::to_string(i % 100), "v" + std::to_string(i));
      if (!s->write(b).ok()) {
        writer_failed = true;
        return;
      }
      written.store(i + 1);
    }
  });
  while (written.load() < 300 && !writer_failed) std::this_thread::yield();
  const int before = written.load();
  auto meta = s->create_snapshot(snap, log_id{1, 1});
  const int after = written.load();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (written.load() < after + 100 && !writer_failed && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  stop = true;
  writer.join();
  REQUIRE_FALSE(writer_failed.load());
  REQUIRE_MESSAGE(meta.ok(), meta.status().to_string());

  REQUIRE(s->restore_snapshot(snap).ok());
  const dump_t d = dump(*s);
  std::set<std::string> kv, system;
  for (const auto& [key, value] : d) {
    if (key.rfind("data_kv/w-", 0) == 0) kv.insert(key.substr(8));
    if (key.rfind("system_data/w-", 0) == 0) system.insert(key.substr(12));
  }
  CHECK(kv == system);  // every batch whole
  // The batches form a prefix, w-0 to w-(n-1): every one written before
  // the snapshot started, none written after it returned (the writer counts
  // a batch just after writing it: one more may be in).
  const int n = static_cast<int>(kv.size());
  CHECK(n >= before);
  CHECK(n <= after + 1);
  char last[32];
  std::snprintf(last, sizeof last, "w-%08d", n - 1);
  CHECK((n == 0 || *kv.rbegin() == last));
  // And the keys they rewrote hold what the last of them wrote.
  for (int j = 0; j < 100; ++j) {
    int latest = -1;
    for (int i = j; i < n; i += 100) latest = i;
    const auto found = d.find("data_kv/pre-" + std::to_string(j));
    REQUIRE(found != d.end());
    CHECK(found->second == (latest < 0 ? "v" : "v" + std::to_string(latest)));
  }
  if (verbose())
    MESSAGE(B::k_name << ": " << n << " batches in the snapshot; " << before
                    << " written before it started, " << after << " when it returned");
}

TEST_CASE_TEMPLATE_INVOKE(snapshot_while_writing, SESHAT_ALL_BACKENDS, SESHAT_SEGMENTED_BACKENDS);

}  // TEST_SUITE("concurrency")

TEST_SUITE_END();  // "store snapshots"
