// API misuse across the public surface of storage<B> and log_store, on every
// backend, as one table: each row is a call, the error it must get (its
// errc and a fragment of its message), and the promise that it changed
// nothing: a dump of all six column families, and what the log stores
// report, are the same before and after the call, and again after the store
// is closed and reopened.
//
// Each row runs on a fresh store holding:
//   system group (binary keys, boost):   entries 1..10 (terms 1, then 2 from
//                                        6), purged up to 3; vote (5, 2,
//                                        committed); committed (2, 8)
//   data shard 7 (decimal keys, custom): entries 1..6 of term 3, never
//                                        purged; vote (3, 1); committed (3, 4)
//   storage's own log, data_raft_log group 9: entries 2..5 (1 truncated away)
//   data_kv "k1" = "v1", system_data "meta" = "x"
#include <doctest/doctest.h>

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <future>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "log_entries.hpp"
#include "seshat/detail/printable.hpp"
#include "seshat/log_store.hpp"
#include "seshat/raft_snapshot.hpp"
#include "seshat/state_machine_store.hpp"
#include "support.hpp"

TEST_SUITE_BEGIN("bad input");

using namespace seshat;
using seshat::test::make_entries;
using seshat::test::make_entry;
using seshat::test::open_store;
using seshat::test::scratch_dir;
using seshat::test::text_entry;
using seshat::test::text_serializer;

namespace {

namespace fs = std::filesystem;

template <class B>
using sys_log = log_store<text_entry, boost_serializer, B, system_shard, binary_key_format>;
template <class B>
using data_log = log_store<text_entry, text_serializer, B, data_shard, decimal_key_format>;

// storage's own log: a data group with no log_store (a log engine keeps
// data_raft_log's groups with ids above 0 only).
const log_address k_helper_log{column_family::data_raft_log, 9};

// A row that cannot run here, with why.
struct skip_row {
  std::string why;
};

template <class T>
std::unique_ptr<T> must(result<std::unique_ptr<T>> r) {
  if (!r.ok()) throw std::runtime_error("setup: " + r.status().to_string());
  return std::move(*r);
}
void must(const status& s) {
  if (!s.ok()) throw std::runtime_error("setup: " + s.to_string());
}

template <class B>
struct fixture {
  scratch_dir dir;
  std::unique_ptr<storage<B>> store;
  std::unique_ptr<sys_log<B>> sys;
  std::unique_ptr<data_log<B>> data;

  fixture() {
    open();
    auto sys_entries = make_entries<text_entry>(1, 1, 5);
    for (auto& e : make_entries<text_entry>(2, 6, 5)) sys_entries.push_back(e);
    must(sys->append(sys_entries));
    must(sys->purge(3));
    must(sys->save_vote(vote{5, 2, true}));
    must(sys->save_committed(log_id{2, 8}));
    must(data->append(make_entries<text_entry>(3, 1, 6)));
    must(data->save_vote(vote{3, 1, false}));
    must(data->save_committed(log_id{3, 4}));
    must(store->append_log(k_helper_log, 1, std::vector<std::string>{"a", "b", "c", "d", "e"}));
    must(store->truncate_log_before(k_helper_log, 2));
    must(store->put(column_family::data_kv, "k1", "v1"));
    must(store->put(column_family::system_data, "meta", "x"));
  }
  ~fixture() { close(); }

  void open() {
    store = open_store<B>(dir.store());
    sys = must(sys_log<B>::open(*store));
    data = must(data_log<B>::open(*store, data_shard{7}));
  }
  void close() {
    sys.reset();
    data.reset();
    if (store) store->close().ignore();
    store.reset();
  }
};

using dump = std::vector<std::tuple<int, std::string, std::string>>;

// Every key and value of the six families.
template <class B>
dump dump_all(storage<B>& store) {
  dump out;
  for (column_family cf : k_all_column_families) {
    auto it = store.new_iterator(cf);
    for (it->seek_to_first(); it->valid(); it->next())
      out.emplace_back(static_cast<int>(cf), std::string(it->key()), std::string(it->value()));
    if (!it->status().ok()) throw std::runtime_error("dump: " + it->status().to_string());
  }
  return out;
}

std::string first_difference(const dump& before, const dump& after) {
  const std::size_t n = std::min(before.size(), after.size());
  auto show = [](const auto& row) {
    return std::string(name_of(static_cast<column_family>(std::get<0>(row)))) + " '" +
           detail::printable(std::get<1>(row)) + "' = '" + detail::printable(std::get<2>(row)) + "'";
  };
  for (std::size_t i = 0; i < n; ++i)
    if (before[i] != after[i]) return "before: " + show(before[i]) + "; after: " + show(after[i]);
  if (before.size() > n) return "gone: " + show(before[n]);
  if (after.size() > n) return "new: " + show(after[n]);
  return "(none)";
}

// What the log stores and storage's log helpers report.
template <class B>
std::string view_of(fixture<B>& f) {
  auto id = [](const std::optional<log_id>& i) { return i ? to_string(*i) : std::string("-"); };
  auto v = [](const std::optional<vote>& x) { return x ? to_string(*x) : std::string("-"); };
  auto index = [](const result<std::optional<std::uint64_t>>& r) {
    if (!r.ok()) return r.status().to_string();
    return *r ? std::to_string(**r) : std::string("-");
  };
  const log_state s = f.sys->get_log_state(), d = f.data->get_log_state();
  return "system [" + id(s.last_purged) + ", " + id(s.last) + "] vote " + v(f.sys->read_vote().value()) +
         " committed " + id(f.sys->read_committed().value()) + "; data shard [" + id(d.last_purged) +
         ", " + id(d.last) + "] vote " + v(f.data->read_vote().value()) + " committed " +
         id(f.data->read_committed().value()) + "; helper log [" +
         index(f.store->first_log_index(k_helper_log)) + ", " +
         index(f.store->last_log_index(k_helper_log)) + "]";
}

// Lowers this thread's effective capabilities that bypass file permissions
// (root's CAP_DAC_OVERRIDE and friends) while it lives; the permitted set is
// kept, so they are raised again at the end. Unprivileged and per-thread.
class permission_checks_enforced {
 public:
  permission_checks_enforced() {
    header_.version = _LINUX_CAPABILITY_VERSION_3;
    header_.pid = 0;
    if (::syscall(SYS_capget, &header_, saved_) != 0) return;
    __user_cap_data_struct lowered[2];
    std::memcpy(lowered, saved_, sizeof saved_);
    for (int cap : {CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER})
      lowered[cap / 32].effective &= ~(1u << (cap % 32));
    lowered_ = ::syscall(SYS_capset, &header_, lowered) == 0;
  }
  ~permission_checks_enforced() {
    if (lowered_) ::syscall(SYS_capset, &header_, saved_);
  }
  permission_checks_enforced(const permission_checks_enforced&) = delete;
  permission_checks_enforced& operator=(const permission_checks_enforced&) = delete;

 private:
  __user_cap_header_struct header_{};
  __user_cap_data_struct saved_[2]{};
  bool lowered_ = false;
};

// Runs `f` with `dir` in `mode` (without write permission) and permission
// checks enforced, or throws skip_row when this process can write to it
// anyway.
template <class F>
auto with_mode(const fs::path& dir, ::mode_t mode, F&& f) {
  struct restore {
    fs::path dir;
    ~restore() { ::chmod(dir.c_str(), 0755); }
  } restore_mode{dir};
  if (::chmod(dir.c_str(), mode) != 0) throw skip_row{"cannot chmod " + dir.string()};
  permission_checks_enforced enforced;
  const fs::path probe = dir / "write-probe";
  const int fd = ::open(probe.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  if (fd >= 0) {
    ::close(fd);
    ::unlink(probe.c_str());
    throw skip_row{"a read-only directory is writable here (root with CAP_DAC_OVERRIDE that "
                   "cannot be lowered, or a file system that ignores modes)"};
  }
  return f();
}

// with_mode(dir, 0555, f): `dir` read-only.
template <class F>
auto with_read_only(const fs::path& dir, F&& f) {
  return with_mode(dir, 0555, std::forward<F>(f));
}

// Runs `f` while a child process holds the fcntl write lock on `lock_file`
// (as a store open in another process does), then ends the child.
template <class F>
status while_another_process_locks(const fs::path& lock_file, F&& f) {
  int ready[2];
  REQUIRE(::pipe(ready) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {  // only async-signal-safe calls until _exit
    const int fd = ::open(lock_file.c_str(), O_RDWR | O_CREAT, 0644);
    struct flock lock{};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    const char ok = fd >= 0 && ::fcntl(fd, F_SETLK, &lock) == 0 ? 'y' : 'n';
    (void)!::write(ready[1], &ok, 1);
    ::pause();
    ::_exit(0);
  }
  ::close(ready[1]);
  char ok = 'n';
  (void)!::read(ready[0], &ok, 1);
  ::close(ready[0]);
  status s = ok == 'y' ? f() : status::invalid_argument("the child could not lock " + lock_file.string());
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  return s;
}

template <class B>
struct row {
  std::string what;
  std::function<status(fixture<B>&)> call;
  errc expected;
  std::string fragment;  // the message must contain it; "" for success
};

template <class B>
constexpr bool on_disk = B::k_name != std::string_view("memory");

// Opens (and closes again) a store: the status of the open.
template <class B>
status open_status_of(const fs::path& dir, const open_options& o = {}) {
  auto opened = storage<B>::open(dir, o);
  if (!opened.ok()) return opened.status();
  (*opened)->close().ignore();
  return {};
}

template <class B>
std::vector<row<B>> rows() {
  auto bad_options = [](auto set) {
    open_options o;
    set(o);
    return o;
  };
  std::vector<row<B>> out;
  auto add = [&](std::string what, std::function<status(fixture<B>&)> call, errc expected,
                 std::string fragment) {
    out.push_back({std::move(what), std::move(call), expected, std::move(fragment)});
  };

  // ---- storage<B>: opening ------------------------------------------------
  struct option_case {
    const char* field;
    std::function<void(open_options&)> set;
    const char* fragment;
  };
  const std::vector<option_case> option_cases = {
      {"write_buffer_mb 0", [](open_options& o) { o.write_buffer_mb = 0; }, "write_buffer_mb is 0, allowed range is [1, 1024]"},
      {"write_buffer_mb 1025", [](open_options& o) { o.write_buffer_mb = 1025; }, "write_buffer_mb is 1025, allowed range is [1, 1024]"},
      {"max_write_buffers 1", [](open_options& o) { o.max_write_buffers = 1; }, "max_write_buffers is 1, allowed range is [2, 10]"},
      {"max_write_buffers 11", [](open_options& o) { o.max_write_buffers = 11; }, "max_write_buffers is 11, allowed range is [2, 10]"},
      {"target_file_mb 0", [](open_options& o) { o.target_file_mb = 0; }, "target_file_mb is 0, allowed range is [1, 1024]"},
      {"target_file_mb 1025", [](open_options& o) { o.target_file_mb = 1025; }, "target_file_mb is 1025, allowed range is [1, 1024]"},
  };
  for (const auto& c : option_cases) {
    add(std::string("open a new store with ") + c.field,
        [=](fixture<B>& f) {
          const fs::path fresh = f.dir.path() / "fresh";
          status s = open_status_of<B>(fresh, bad_options(c.set));
          CHECK_MESSAGE(!fs::exists(fresh), "a refused open left " << fresh);
          memory_backend::destroy(fresh).ignore();
          return s;
        },
        errc::invalid_config, c.fragment);
    add(std::string("open the existing (open) store with ") + c.field,
        [=](fixture<B>& f) { return open_status_of<B>(f.dir.store(), bad_options(c.set)); },
        errc::invalid_config, c.fragment);
  }
  add("open a missing store with create_if_missing off",
      [](fixture<B>& f) {
        open_options o;
        o.create_if_missing = false;
        status s = open_status_of<B>(f.dir.path() / "missing", o);
        CHECK(!fs::exists(f.dir.path() / "missing"));
        return s;
      },
      errc::not_found, "create_if_missing is off");

  // The second open of an open store fails and says who holds it.
  const errc locked_code = errc::io_error;
  const std::string locked_fragment = "is already open in this process";
  add("open a store that is already open",
      [=](fixture<B>& f) { return open_status_of<B>(f.dir.store()); }, locked_code, locked_fragment);
  if constexpr (on_disk<B>) {
    // The same directory under another name: still the same store.
    add("open a store that is already open, through a symlink",
        [=](fixture<B>& f) {
          const fs::path alias = f.dir.path() / "alias";
          fs::create_directory_symlink(f.dir.store(), alias);
          return open_status_of<B>(alias);
        },
        locked_code, locked_fragment);
    add("open a store that is already open, through 'store/.'",
        [=](fixture<B>& f) { return open_status_of<B>(f.dir.store() / "."); }, locked_code,
        locked_fragment);
    add("open a store that another process holds open",
        [=](fixture<B>& f) {
          f.close();
          status s = while_another_process_locks(f.dir.store() / "LOCK",
                                                 [&] { return open_status_of<B>(f.dir.store()); });
          f.open();
          return s;
        },
        errc::io_error, "is already open in another process");
  }
  add("open a store with an empty path", [](fixture<B>&) { return open_status_of<B>(""); },
      errc::invalid_argument, "the store's path is empty");

  // Read-only directories (the memory backend has none).
  add("open a store whose directory is read-only",
      [=](fixture<B>& f) -> status {
        if constexpr (!on_disk<B>) {
          throw skip_row{"the memory backend has no directory to make read-only"};
        } else if constexpr (log_backend<B>) {
          throw skip_row{"a segmented store's directory holds only its marker, LOCK and the two "
                         "halves' directories, which stay writable"};
        } else {
          f.close();
          status s = with_read_only(f.dir.store(), [&] { return open_status_of<B>(f.dir.store()); });
          f.open();
          // Permission denied on the LOCK file is not "already open".
          CHECK_MESSAGE(s.message().find("already open") == std::string::npos, s.to_string());
          return s;
        }
      },
      errc::io_error, on_disk<B> ? "Permission denied" : "");
  add("open a store whose directory cannot be listed or searched (mode 0)",
      [=](fixture<B>& f) -> status {
        if constexpr (!on_disk<B>) {
          throw skip_row{"the memory backend has no directory to take permissions from"};
        } else {
          f.close();
          status s = with_mode(f.dir.store(), 0, [&] { return open_status_of<B>(f.dir.store()); });
          f.open();
          CHECK_MESSAGE(s.message().find(f.dir.store().string()) != std::string::npos, s.to_string());
          return s;
        }
      },
      errc::io_error, on_disk<B> ? "Permission denied" : "");
  add("create a store in a read-only directory",
      [=](fixture<B>& f) -> status {
        if constexpr (!on_disk<B>) {
          throw skip_row{"the memory backend has no directory to make read-only"};
        } else {
          const fs::path parent = f.dir.path() / "read-only";
          fs::create_directory(parent);
          status s = with_read_only(parent, [&] { return open_status_of<B>(parent / "new"); });
          CHECK(!fs::exists(parent / "new"));
          return s;
        }
      },
      errc::io_error, on_disk<B> ? "cannot create" : "");

  // ---- storage<B>: keys, batches, log helpers, snapshots ------------------
  add("write an empty batch",
      [](fixture<B>& f) {
        auto b = f.store->new_batch();
        return f.store->write(b);
      },
      errc::invalid_argument, "write of an empty batch");
  add("get a missing key", [](fixture<B>& f) { return f.store->get(column_family::data_kv, "nope").status(); },
      errc::not_found, "nope");
  add("append_log with a gap",
      [](fixture<B>& f) { return f.store->append_log(k_helper_log, 7, "x"); }, errc::invalid_log_index,
      "append at index 7, expected 6 (last index is 5)");
  add("append_log overlapping the log",
      [](fixture<B>& f) { return f.store->append_log(k_helper_log, 5, "x"); }, errc::invalid_log_index,
      "append at index 5, expected 6");
  add("append_log below the log's first index",
      [](fixture<B>& f) { return f.store->append_log(k_helper_log, 1, "x"); }, errc::invalid_log_index,
      "append at index 1, expected 6");
  add("append_log of no entries",
      [](fixture<B>& f) { return f.store->append_log(k_helper_log, 6, std::vector<std::string>{}); },
      errc::ok, "");
  add("append_log to a family that holds no log",
      [](fixture<B>& f) { return f.store->append_log(column_family::data_kv, 1, "x"); },
      errc::invalid_argument, "data_kv holds no log");
  add("read_log with end before start",
      [](fixture<B>& f) { return f.store->read_log(k_helper_log, 4, 3).status(); },
      errc::invalid_argument, "end is before start");
  add("read_log of unwritten entries",
      [](fixture<B>& f) { return f.store->read_log(k_helper_log, 5, 8).status(); },
      errc::invalid_log_index, "entry 6 is not in the log");
  add("read_log of a range far larger than the log (up to 2^64 - 1)",
      [](fixture<B>& f) {
        return f.store->read_log(k_helper_log, 2, std::numeric_limits<std::uint64_t>::max()).status();
      },
      errc::invalid_log_index, "entry 6 is not in the log");
  add("read_log of truncated entries",
      [](fixture<B>& f) { return f.store->read_log(k_helper_log, 1, 3).status(); },
      errc::invalid_log_index, "entry 1 is not in the log");
  add("truncate_log_from below the first index",
      [](fixture<B>& f) { return f.store->truncate_log_from(k_helper_log, 1); },
      errc::invalid_log_index, "truncate from index 1, expected at least 2");
  add("truncate_log_from past the end",
      [](fixture<B>& f) { return f.store->truncate_log_from(k_helper_log, 9); }, errc::ok, "");
  add("truncate_log_before what is already gone",
      [](fixture<B>& f) { return f.store->truncate_log_before(k_helper_log, 2); }, errc::ok, "");
  add("truncate_log_from a family that holds no log",
      [](fixture<B>& f) { return f.store->truncate_log_from(column_family::system_data, 1); },
      errc::invalid_argument, "system_data holds no log");
  add("first_log_index of a family that holds no log",
      [](fixture<B>& f) { return f.store->first_log_index(column_family::data_raft_state).status(); },
      errc::invalid_argument, "data_raft_state holds no log");
  add("create_snapshot with an empty path",
      [](fixture<B>& f) { return f.store->create_snapshot("", log_id{1, 1}).status(); },
      errc::invalid_argument, "empty path");
  add("create_snapshot inside the store's directory",
      [](fixture<B>& f) { return f.store->create_snapshot(f.dir.store() / "snap", log_id{1, 1}).status(); },
      errc::snapshot_failed, "lies inside the store's directory");
  add("create_snapshot over an existing directory",
      [](fixture<B>& f) {
        fs::create_directories(f.dir.path() / "taken");
        return f.store->create_snapshot(f.dir.path() / "taken", log_id{1, 1}).status();
      },
      errc::snapshot_failed, "already exists");
  add("restore_snapshot of a directory that is no snapshot",
      [](fixture<B>& f) {
        fs::create_directories(f.dir.path() / "empty");
        return f.store->restore_snapshot(f.dir.path() / "empty").status();
      },
      errc::snapshot_failed, "missing manifest");

  // ---- one handle per group ------------------------------------------------
  add("open a second log_store on a group whose log is open",
      [](fixture<B>& f) { return sys_log<B>::open(*f.store).status(); }, errc::invalid_argument,
      "the log of the system group is already open in the store at");
  add("open a second log_store on an open data shard, with another key format and serializer",
      [](fixture<B>& f) {
        using other = log_store<text_entry, boost_serializer, B, data_shard, binary_key_format>;
        return other::open(*f.store, data_shard{7}).status();
      },
      errc::invalid_argument, "the log of data shard 7 is already open in the store at");
  add("open a log_store again once the first one is destroyed",
      [](fixture<B>& f) {
        f.data.reset();
        auto again = data_log<B>::open(*f.store, data_shard{7});
        if (again.ok()) f.data = std::move(*again);
        else f.data = must(data_log<B>::open(*f.store, data_shard{7}));  // fails the setup
        return again.status();
      },
      errc::ok, "");
  add("open a second state_machine_store on a group",
      [](fixture<B>& f) {
        using sm = state_machine_store<text_entry, B, data_shard, decimal_key_format>;
        auto first = sm::open(*f.store, data_shard{7});
        REQUIRE(first.ok());
        status second = sm::open(*f.store, data_shard{7}).status();
        // Another group's is its own, and a destroyed one frees its group.
        CHECK(sm::open(*f.store, data_shard{8}).ok());
        { auto gone = std::move(*first); }
        CHECK(sm::open(*f.store, data_shard{7}).ok());
        return second;
      },
      errc::invalid_argument, "the state machine of data shard 7 is already open in the store at");
  add("open a second snapshot_manager on a group",
      [](fixture<B>& f) {
        using sm = state_machine_store<text_entry, B, data_shard, decimal_key_format>;
        using manager = snapshot_manager<text_entry, text_serializer, B, data_shard, decimal_key_format>;
        auto machine = sm::open(*f.store, data_shard{7});
        REQUIRE(machine.ok());
        auto first = manager::open(*machine, *f.data);
        REQUIRE(first.ok());
        status second = manager::open(*machine, *f.data).status();
        first->reset();
        CHECK(manager::open(*machine, *f.data).ok());
        return second;
      },
      errc::invalid_argument, "the snapshot manager of data shard 7 is already open in the store at");

  // ---- log_store ----------------------------------------------------------
  add("open a log of data_shard 0",
      [](fixture<B>& f) { return data_log<B>::open(*f.store, data_shard{0}).status(); },
      errc::invalid_argument, "data_shard 0 is the system group");
  add("reopen a log with another options.first_index",
      [](fixture<B>& f) {
        log_store_options o;
        o.first_index = 3;
        f.data.reset();
        auto s = data_log<B>::open(*f.store, data_shard{7}, o).status();
        f.data = must(data_log<B>::open(*f.store, data_shard{7}));
        return s;
      },
      errc::invalid_argument, "the log begins at index 1, options.first_index is 3");
  add("append with a gap",
      [](fixture<B>& f) { return f.sys->append(make_entries<text_entry>(2, 12, 2)); },
      errc::invalid_log_index, "expected index 11, got 12 (a gap)");
  add("append overlapping the log",
      [](fixture<B>& f) { return f.sys->append(make_entries<text_entry>(2, 9, 3)); },
      errc::invalid_log_index, "expected index 11, got 9 (overlaps the log: truncate first)");
  add("append over purged entries",
      [](fixture<B>& f) { return f.sys->append(make_entries<text_entry>(2, 2, 2)); },
      errc::invalid_log_index, "expected index 11, got 2");
  add("append with a term going backwards",
      [](fixture<B>& f) { return f.sys->append(make_entries<text_entry>(1, 11, 2)); },
      errc::invalid_log_index, "term goes backwards, expected at least 2, got 1");
  add("append a batch with a term going backwards inside it",
      [](fixture<B>& f) {
        auto batch = make_entries<text_entry>(4, 7, 3);
        batch[2] = make_entry<text_entry>(3, 9);
        return f.data->append(batch);
      },
      errc::invalid_log_index, "term goes backwards, expected at least 4, got 3");
  add("append a batch with a gap inside it",
      [](fixture<B>& f) {
        auto batch = make_entries<text_entry>(3, 7, 3);
        batch[1].index = 10;
        return f.data->append(batch);
      },
      errc::invalid_log_index, "expected index 8, got 10 (a gap)");
  add("append a batch with an index repeated inside it",
      [](fixture<B>& f) {
        auto batch = make_entries<text_entry>(3, 7, 3);
        batch[2].index = 8;
        return f.data->append(batch);
      },
      errc::invalid_log_index, "expected index 9, got 8");
  add("append an empty batch", [](fixture<B>& f) { return f.sys->append(std::vector<text_entry>{}); },
      errc::ok, "");
  add("append_async with a gap: the callback gets the same error, once",
      [](fixture<B>& f) {
        int calls = 0;
        status seen;
        status s = f.sys->append_async(make_entries<text_entry>(2, 13, 1), [&](status st) {
          ++calls;
          seen = st;
        });
        CHECK(calls == 1);
        CHECK(seen.to_string() == s.to_string());
        return s;
      },
      errc::invalid_log_index, "expected index 11, got 13 (a gap)");
  add("append_async of an empty batch: the callback fires with ok",
      [](fixture<B>& f) {
        std::promise<status> fired;
        auto done = fired.get_future();
        status s = f.data->append_async(std::vector<text_entry>{}, [&](status st) { fired.set_value(st); });
        REQUIRE(done.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
        CHECK(done.get().ok());
        return s;
      },
      errc::ok, "");
  add("truncate at the last purged index",
      [](fixture<B>& f) { return f.sys->truncate(3); }, errc::compacted,
      "truncate from index 3: entries up to 3 are purged");
  add("truncate below the last purged index",
      [](fixture<B>& f) { return f.sys->truncate(1); }, errc::compacted, "entries up to 3 are purged");
  add("truncate past the end", [](fixture<B>& f) { return f.sys->truncate(12); }, errc::ok, "");
  add("truncate past the end of a never-purged log",
      [](fixture<B>& f) { return f.data->truncate(7); }, errc::ok, "");
  add("purge past the end",
      [](fixture<B>& f) { return f.sys->purge(11); }, errc::unavailable,
      "purge up to index 11 is past the last index 10");
  add("purge far past the end of a never-purged log",
      [](fixture<B>& f) { return f.data->purge(1000); }, errc::unavailable,
      "purge up to index 1000 is past the last index 6");
  add("purge what is already purged", [](fixture<B>& f) { return f.sys->purge(2); }, errc::ok, "");
  add("purge before the first index of a never-purged log",
      [](fixture<B>& f) { return f.data->purge(0); }, errc::ok, "");
  add("read purged entries",
      [](fixture<B>& f) { return f.sys->entries(2, 5).status(); }, errc::compacted,
      "entries of [2, 5) up to 3 are purged");
  add("read unwritten entries",
      [](fixture<B>& f) { return f.sys->entries(9, 13).status(); }, errc::unavailable,
      "entries of [9, 13) from 11 on are not written (last index 10)");
  add("read entries far past the end",
      [](fixture<B>& f) { return f.sys->entries(100, 101).status(); }, errc::unavailable,
      "from 100 on are not written");
  add("read entries before the first index of a never-purged log",
      [](fixture<B>& f) { return f.data->entries(0, 2).status(); }, errc::unavailable,
      "before 1 never existed");
  add("read entries with hi before lo",
      [](fixture<B>& f) { return f.sys->entries(6, 5).status(); }, errc::invalid_argument,
      "range [6, 5) ends before it starts");
  add("entry_at a purged index",
      [](fixture<B>& f) { return f.sys->entry_at(3).status(); }, errc::compacted, "up to 3 are purged");
  add("entry_at an unwritten index",
      [](fixture<B>& f) { return f.data->entry_at(7).status(); }, errc::unavailable,
      "from 7 on are not written");
  add("term_at a purged index below the last purged one",
      [](fixture<B>& f) { return f.sys->term_at(2).status(); }, errc::compacted, "up to 3 are purged");
  add("term_at an unwritten index",
      [](fixture<B>& f) { return f.sys->term_at(11).status(); }, errc::unavailable,
      "from 11 on are not written");
  add("save_vote with a term going backwards",
      [](fixture<B>& f) { return f.sys->save_vote(vote{4, 2, true}); }, errc::invalid_argument,
      "vote term goes backwards: saved (term 5, voted for 2, committed), got (term 4, voted for 2, committed)");
  add("save_vote: a second vote in the same term",
      [](fixture<B>& f) { return f.sys->save_vote(vote{5, 3, true}); }, errc::invalid_argument,
      "a second vote in the same term");
  add("save_vote: no vote over a vote in the same term",
      [](fixture<B>& f) { return f.sys->save_vote(vote{5, std::nullopt, true}); },
      errc::invalid_argument, "a second vote in the same term");
  add("save_vote: a second uncommitted vote in the same term",
      [](fixture<B>& f) { return f.data->save_vote(vote{3, 2, false}); }, errc::invalid_argument,
      "a second vote in the same term: saved (term 3, voted for 1), got (term 3, voted for 2)");
  add("save_vote: uncommitting a committed vote",
      [](fixture<B>& f) { return f.sys->save_vote(vote{5, 2, false}); }, errc::invalid_argument,
      "a committed vote cannot be uncommitted");
  add("save_vote: the same vote again",
      [](fixture<B>& f) { return f.sys->save_vote(vote{5, 2, true}); }, errc::ok, "");
  add("save_committed going backwards",
      [](fixture<B>& f) { return f.sys->save_committed(log_id{2, 7}); }, errc::invalid_argument,
      "committed index goes backwards: saved");
  add("save_committed going backwards on a data shard",
      [](fixture<B>& f) { return f.data->save_committed(log_id{1, 1}); }, errc::invalid_argument,
      "data shard 7: committed index goes backwards");
  return out;
}

// Runs one row on a fresh store; counts it in `ran` or `skipped`.
template <class B>
void run_row(const row<B>& r, std::size_t& ran, std::size_t& skipped) {
  CAPTURE(r.what);
  try {
    fixture<B> f;
    const dump before = dump_all(*f.store);
    const std::string view_before = view_of(f);
    status s;
    try {
      s = r.call(f);
    } catch (const skip_row& skip) {
      MESSAGE(B::k_name << ": skipped '" << r.what << "': " << skip.why);
      ++skipped;
      return;
    }
    ++ran;
    CHECK_MESSAGE(s.code() == r.expected,
                  "expected " << to_string(r.expected) << ", got " << s.to_string());
    if (!r.fragment.empty())
      CHECK_MESSAGE(s.message().find(r.fragment) != std::string::npos,
                    "the message lacks '" << r.fragment << "': " << s.to_string());
    REQUIRE_MESSAGE(f.store != nullptr, "the row left the store closed");
    const dump after = dump_all(*f.store);
    CHECK_MESSAGE(after == before, "the store changed: " << first_difference(before, after));
    CHECK(view_of(f) == view_before);
    // And what is on disk says the same once reopened.
    f.close();
    f.open();
    const dump reopened = dump_all(*f.store);
    CHECK_MESSAGE(reopened == before,
                  "the reopened store changed: " << first_difference(before, reopened));
    CHECK(view_of(f) == view_before);
  } catch (const std::exception& e) {
    FAIL_CHECK(B::k_name << ": '" << r.what << "' threw: " << std::string(e.what()));
  }
}

}  // namespace

TEST_CASE_TEMPLATE("API misuse is refused with a clear error and changes nothing", B,
                   SESHAT_ALL_BACKENDS, SESHAT_SEGMENTED_BACKENDS) {
  std::size_t ran = 0, skipped = 0;
  for (const row<B>& r : rows<B>()) run_row(r, ran, skipped);
  MESSAGE(B::k_name << ": " << ran << " rows ran, " << skipped << " skipped");
}

TEST_SUITE_END();  // "bad input"
