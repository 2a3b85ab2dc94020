// Disk faults on the real backends.
//
// Injected faults: a log_store over RocksDB or LevelDB runs on a fault
// environment (tests/fault_env/) that fails the Nth write, sync or file
// creation from a random point of a random workload (appends, async appends,
// vote and committed saves, truncates, purges) with EIO or ENOSPC. Then:
//   - a call that fails says why: its message carries the injected errno
//     text ("No space left on device", "Input/output error");
//   - the store, still open, reads only correct data (where the engine still
//     serves reads): exactly what the successful calls left;
//   - after clearing the fault, closing, simulating a power loss (so that a
//     call which claimed success for bytes it never synced is caught) and
//     reopening, the log is an image at or after the last acknowledged
//     operation (log_history.hpp).
// A full file system: a 4 MB tmpfs (needs root: skipped with a message
// otherwise; SESHAT_REQUIRE_MOUNT=1 makes that a failure) is filled by
// appends until one fails naming the lack of space; after the file system
// grows, a reopen holds every acknowledged entry.
// A failed sync: the store refuses every later write and sync, naming that
// error, until it is reopened (on LevelDB the sync of an older log, which
// the backend does itself); and the durability model loses what a failed
// sync did not make durable, as Linux does, whatever syncs follow.
//
// On segmented<B> (the log engine beside B) the same fault plan covers both
// halves (B's environment and fault_log_fs); one more case fails each of
// the engine's calls in turn (pwrite, fdatasync, segment creation,
// fallocate, rename, directory fsync, unlink) with EIO and ENOSPC, with
// segments prepared ahead and without, and with them each step of the
// maintenance thread's preparation: the store refuses every later write
// naming it until reopened, and keeps every acknowledged write through a
// power loss.
//
// SESHAT_DISK_FAULT_ROUNDS=N sets the rounds per fault kind, errno and
// backend (3 by default); SESHAT_DISK_FAULT_SEED=S replays a run.
#include <doctest/doctest.h>
#include <sys/mount.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "fault_env/backend_fault_env.hpp"
#include "fault_env/fault_log_fs.hpp"
#include "seshat/detail/wal_check.hpp"
#include "fault_env/log_history.hpp"
#include "fault_env/log_workload.hpp"
#include "fault_env/scoped_fs_observer.hpp"
#include "log_entries.hpp"
#include "seshat/log_store.hpp"
#include "support.hpp"

TEST_SUITE_BEGIN("disk faults");

namespace {

using namespace seshat;
using namespace seshat::test;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// After a fault: loses the power, reopens the store and its log, and
// requires the log to show an image at or after `history`'s last
// acknowledged operation; returns that image (the store is closed again).
template <class B, class Log, class Fault>
log_image reopen_after_power_loss(Fault& fault, const std::filesystem::path& store_dir,
                                  const open_options& options, const log_history& history) {
  fault.simulate_power_loss();
  REQUIRE_MESSAGE(fault.model().error().empty(), fault.model().error());
  auto store = open_store<B>(store_dir, options);
  auto opened = Log::open(*store);
  REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
  auto seen = read_stored_image(**opened, *store);
  REQUIRE_MESSAGE(seen.ok(), seen.status().to_string() << "; " << history.describe());
  REQUIRE_MESSAGE(history.match(*seen).has_value(),
                  "after the fault, a power loss and a reopen the log shows "
                      << seen->describe()
                      << ", which is no image at or after the last acknowledged operation; "
                      << history.describe());
  log_image image = std::move(*seen);
  opened->reset();
  REQUIRE(store->close().ok());
  return image;
}

TEST_CASE_TEMPLATE_DEFINE(
    "an injected disk fault fails the call that needed the disk, reads stay "
    "correct, and a reopen keeps every acknowledged write",
    B, disk_faults) {
  using log_type = log_store<text_entry, text_serializer, B>;
  const std::uint64_t rounds = env_number("SESHAT_DISK_FAULT_ROUNDS", 3);
  const std::uint64_t seed = env_number("SESHAT_DISK_FAULT_SEED", std::random_device{}());
  INFO("backend " << B::k_name << ", SESHAT_DISK_FAULT_SEED=" << seed);
  std::mt19937_64 rng(seed);

  scratch_dir dir;
  backend_fault_env<B> fault(dir.path() / "keep");
  open_options options;
  options.write_buffer_mb = 1;  // file creations come often enough to hit
  options.target_file_mb = 1;
  fault.attach(options);

  log_image expected;
  std::atomic<std::uint64_t> acks{0};
  std::uint64_t cases = 0, calls_failed = 0, background_only = 0, not_reached = 0;
  std::uint64_t live_reads = 0, live_reads_refused = 0, entries_checked = 0;
  std::string first_refusal;
  // Each kind fails its Nth operation once; `all` fails everything from a
  // point on (a disk that went away).
  enum class kind { write, sync, create, all };
  for (kind k : {kind::write, kind::sync, kind::create, kind::all}) {
    const fault_op op = k == kind::sync     ? fault_op::sync
                        : k == kind::create ? fault_op::create
                                            : fault_op::write;
    for (fault_error err : {fault_error::eio, fault_error::enospc}) {
      for (std::uint64_t round = 0; round < rounds; ++round) {
        const std::uint64_t nth = op == fault_op::create ? 1 + rng() % 2 : 1 + rng() % 6;
        const std::string what = k == kind::all ? "every operation" : name_of(op);
        CAPTURE(what);
        CAPTURE(message_of(err));
        CAPTURE(nth);
        ++cases;
        log_history history(expected);
        {
          auto store = open_store<B>(dir.store(), options);
          auto opened = log_type::open(*store);
          REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
          auto log = std::move(*opened);
          // Creations happen at memtable switches: big entries reach them.
          log_workload<log_type> work(*log, history, rng, acks,
                                      op == fault_op::create ? 60000 : 4000);
          const std::uint64_t warm_up = rng() % 4;
          for (std::uint64_t i = 0; i < warm_up; ++i) {
            status s = work.step();
            REQUIRE_MESSAGE(s.ok(), s.to_string());
          }
          const std::uint64_t injected_before = fault.faults().injected();
          if (k == kind::all)
            fault.faults().fail_all(err);
          else
            fault.faults().fail_nth(op, nth, err);
          status failed;
          std::uint64_t after_fault = 0;
          for (int i = 0; i < 300 && after_fault < 3; ++i) {
            failed = work.step();
            if (!failed.ok()) break;
            if (!fault.faults().pending()) ++after_fault;
          }
          const bool fired = fault.faults().injected() > injected_before;
          if (!failed.ok()) {
            ++calls_failed;
            CHECK_MESSAGE(fired, "a call failed with no fault injected: " << failed.to_string());
            CHECK_MESSAGE(contains(failed.to_string(), message_of(err)),
                          "the error does not name the fault: " << failed.to_string());
          } else if (fired) {
            ++background_only;  // a flush or compaction hit it; no call needed that write
          } else {
            ++not_reached;
          }
          // Still open: what reads give must be what the successful calls left.
          auto live = read_image(*log, std::nullopt);
          if (live.ok()) {
            ++live_reads;
            // A failed call may have taken effect or not (a purge records its
            // id before it deletes); any other image is wrong data.
            const std::size_t last = history.issued();
            const bool correct = *live == history.image(last) ||
                                 (!failed.ok() && last > 0 && *live == history.image(last - 1));
            CHECK_MESSAGE(correct, "while faulted the log shows " << live->describe() << "; "
                                                                  << history.describe());
          } else {
            ++live_reads_refused;
            if (first_refusal.empty()) first_refusal = live.status().to_string();
          }
          fault.faults().clear();
          log.reset();
          store->close().ignore();
        }
        expected = reopen_after_power_loss<B, log_type>(fault, dir.store(), options, history);
        entries_checked += expected.entries.size();
      }
    }
  }
  const std::uint64_t injected = fault.faults().injected();
  MESSAGE(B::k_name << ": " << cases << " cases, " << injected
                    << " faults injected: " << calls_failed << " failed the call, "
                    << background_only << " hit only background work, " << not_reached
                    << " not reached; reads while faulted: " << live_reads << " correct, "
                    << live_reads_refused << " refused; " << acks.load()
                    << " operations acknowledged, " << entries_checked
                    << " entries checked after reopen"
                    << (first_refusal.empty() ? std::string() : "; first read refused: ")
                    << first_refusal);
  CHECK(injected > 0);
  CHECK(calls_failed > 0);
}

TEST_CASE_TEMPLATE_INVOKE(disk_faults, seshat::rocksdb_backend, seshat::leveldb_backend,
                          seshat::segmented<seshat::rocksdb_backend>,
                          seshat::segmented<seshat::leveldb_backend>);

// Unmounts at the end of the test, before the scratch directory goes.
struct mounted {
  std::filesystem::path at;
  ~mounted() { ::umount2(at.c_str(), MNT_DETACH); }
};

TEST_CASE_TEMPLATE_DEFINE(
    "on a full file system an append fails naming the lack of space, and "
    "with space again a reopen holds every acknowledged entry",
    B, full_file_system) {
  using log_type = log_store<text_entry, text_serializer, B>;
  // RocksDB 7.8 as Debian builds it (with assertions) can abort the process
  // when the disk fills at the wrong moment: one run in the ASan tree died
  // in WritableFileWriter's "previous error" assertion (an errored writer
  // used again inside RocksDB, beyond the backend's write guard; see
  // docs/backends.md). Until seshat runs on a RocksDB without that bug, the
  // RocksDB case runs only on request; ENOSPC on RocksDB stays covered by the
  // injected faults above.
  if constexpr (std::is_same_v<B, rocksdb_backend>) {
    if (std::getenv("SESHAT_ROCKSDB_FULL_DISK") == nullptr) {
      MESSAGE("SKIPPED (rocksdb): a full file system can abort RocksDB 7.8 (an assertion "
              "in its WAL writer); SESHAT_ROCKSDB_FULL_DISK=1 runs it");
      return;
    }
  }
  scratch_dir dir;
  const std::filesystem::path small = dir.path() / "small";
  std::filesystem::create_directories(small);
  if (::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=4m") != 0) {
    const int err = errno;
    if (std::getenv("SESHAT_REQUIRE_MOUNT") != nullptr)
      FAIL("cannot mount a 4 MB tmpfs at " << small << ": " << std::strerror(err));
    MESSAGE("SKIPPED (" << B::k_name << "): cannot mount a 4 MB tmpfs at " << small << ": "
                        << std::strerror(err) << " (needs root or CAP_SYS_ADMIN)");
    return;
  }
  mounted guard{small};
  open_options options;
  options.write_buffer_mb = 1;  // RocksDB preallocates its WAL from this size
  options.target_file_mb = 1;

  std::vector<text_entry> acked;
  std::uint64_t acked_bytes = 0;
  status failure;
  {
    auto store = open_store<B>(small / "store", options);
    auto opened = log_type::open(*store);
    REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
    auto log = std::move(*opened);
    std::mt19937_64 rng(std::random_device{}());
    for (std::uint64_t i = 1; i <= 5000; ++i) {
      text_entry e = make_entry<text_entry>(1, i);
      // Random letters: compression cannot make them fit.
      for (int c = 0; c < 16 * 1024; ++c) e.text.push_back(static_cast<char>('a' + rng() % 26));
      failure = log->append(std::span<const text_entry>(&e, 1));
      if (!failure.ok()) break;
      acked.push_back(e);
      acked_bytes += e.text.size();
    }
    REQUIRE_MESSAGE(!failure.ok(), "5000 appends of 16 KB never filled a 4 MB file system");
    MESSAGE(B::k_name << ": " << acked.size() << " entries (" << acked_bytes
                      << " bytes of text) acknowledged, then: " << failure.to_string());
    CHECK(failure.is(errc::io_error));
    CHECK_MESSAGE(contains(failure.to_string(), "No space left on device"), failure.to_string());
    // Still open: what it reads is what was acknowledged.
    if (!acked.empty()) {
      auto back = log->entries(1, acked.size() + 1);
      if (back.ok()) CHECK(*back == acked);
    }
    log.reset();
    store->close().ignore();
  }
  // Space again: the file system grows.
  REQUIRE_MESSAGE(::mount("tmpfs", small.c_str(), "tmpfs", MS_REMOUNT, "size=64m") == 0,
                  std::strerror(errno));
  auto store = open_store<B>(small / "store", options);
  auto opened = log_type::open(*store);
  REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
  const log_state st = (*opened)->get_log_state();
  REQUIRE(st.last.has_value());
  // Every acknowledged entry; at most the one whose append failed besides.
  CHECK(st.last->index >= acked.size());
  CHECK(st.last->index <= acked.size() + 1);
  auto back = (*opened)->entries(1, acked.size() + 1);
  REQUIRE_MESSAGE(back.ok(), back.status().to_string());
  CHECK(*back == acked);
  // And the store takes writes again.
  (*opened)->truncate(acked.size() + 1).ignore();
  text_entry next = make_entry<text_entry>(1, acked.size() + 1);
  CHECK((*opened)->append(std::span<const text_entry>(&next, 1)).ok());
  opened->reset();
  CHECK(store->close().ok());
}

// segmented<rocksdb_backend> is left out for the RocksDB reason above; on
// segmented<leveldb_backend> the engine's fallocate of a new segment is what
// meets the full file system.
TEST_CASE_TEMPLATE_INVOKE(full_file_system, seshat::rocksdb_backend, seshat::leveldb_backend,
                          seshat::segmented<seshat::leveldb_backend>);

}  // namespace

TEST_CASE_TEMPLATE_DEFINE(
    "a store on a fault environment makes and restores snapshots through it, "
    "and a snapshot that hits a disk fault fails cleanly",
    B, snapshot_on_fault_env) {
  scratch_dir dir;
  backend_fault_env<B> fault(dir.path() / "keep");
  open_options options;
  fault.attach(options);
  auto store = open_store<B>(dir.store(), options);
  for (int i = 0; i < 50; ++i)
    REQUIRE(store->put(column_family::data_kv, "k" + std::to_string(i), std::to_string(i)).ok());
  const auto before = dump(*store);

  // Everything fails: the snapshot fails with that error and leaves nothing.
  fault.faults().fail_all(fault_error::enospc);
  auto refused = store->create_snapshot(dir.path() / "snap-refused", log_id{1, 50});
  fault.faults().clear();
  REQUIRE_FALSE(refused.ok());
  MESSAGE(B::k_name << ": snapshot under ENOSPC: " << refused.status().to_string());
  CHECK(contains(refused.status().to_string(), "No space left on device"));
  CHECK_FALSE(std::filesystem::exists(dir.path() / "snap-refused"));
  CHECK_FALSE(std::filesystem::exists(dir.path() / "snap-refused.partial"));
  // A checkpoint that failed part-way may leave the engine refusing writes
  // (RocksDB's background error after a failed flush): start clean.
  store->close().ignore();
  store = open_store<B>(dir.store(), options);
  CHECK(dump(*store) == before);

  // With the disk back, a snapshot, more writes, and a restore that reopens
  // the store on the same environment.
  const std::uint64_t injected = fault.faults().injected();
  auto made = store->create_snapshot(dir.path() / "snap", log_id{1, 50});
  REQUIRE_MESSAGE(made.ok(), made.status().to_string());
  for (int i = 50; i < 60; ++i)
    REQUIRE(store->put(column_family::data_kv, "k" + std::to_string(i), std::to_string(i)).ok());
  auto restored = store->restore_snapshot(dir.path() / "snap");
  REQUIRE_MESSAGE(restored.ok(), restored.status().to_string());
  CHECK(dump(*store) == before);
  // The reopened store writes through the environment: a fault reaches it.
  fault.faults().fail_nth(fault_op::write, 1, fault_error::eio);
  status s = store->put(column_family::data_kv, "after", "restore");
  CHECK_FALSE(s.ok());
  CHECK(contains(s.to_string(), "Input/output error"));
  CHECK(fault.faults().injected() == injected + 1);
  store->close().ignore();
}

// Not on segmented<B>: a segmented store refuses checkpoints (store
// snapshots) until the engine can link sealed segments (segmented.hpp).
TEST_CASE_TEMPLATE_INVOKE(snapshot_on_fault_env, seshat::rocksdb_backend, seshat::leveldb_backend);

namespace {

// Through the environment as an engine uses it: writes `before` to a new
// file at `p`, syncs it (the sync fails: the plan is armed for it), writes
// `after`, syncs again. Returns the two syncs' results.
std::pair<bool, bool> fail_a_sync_then_sync(leveldb_fault_env& fault,
                                            const std::filesystem::path& p,
                                            const std::string& before, const std::string& after) {
  leveldb::WritableFile* raw = nullptr;
  REQUIRE(fault.env()->NewWritableFile(p.string(), &raw).ok());
  std::unique_ptr<leveldb::WritableFile> f(raw);
  REQUIRE(f->Append(before).ok());
  fault.faults().fail_nth(fault_op::sync, 1, fault_error::eio);
  const bool first = f->Sync().ok();
  REQUIRE(f->Append(after).ok());
  const bool second = f->Sync().ok();
  REQUIRE(f->Close().ok());
  return {first, second};
}

std::pair<bool, bool> fail_a_sync_then_sync(rocksdb_fault_env& fault,
                                            const std::filesystem::path& p,
                                            const std::string& before, const std::string& after) {
  const auto fs = fault.env()->GetFileSystem();
  const rocksdb::IOOptions io;
  std::unique_ptr<rocksdb::FSWritableFile> f;
  REQUIRE(fs->NewWritableFile(p.string(), rocksdb::FileOptions(), &f, nullptr).ok());
  REQUIRE(f->Append(before, io, nullptr).ok());
  fault.faults().fail_nth(fault_op::sync, 1, fault_error::eio);
  const bool first = f->Sync(io, nullptr).ok();
  REQUIRE(f->Append(after, io, nullptr).ok());
  const bool second = f->Sync(io, nullptr).ok();
  REQUIRE(f->Close(io, nullptr).ok());
  return {first, second};
}

std::string file_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

// Linux drops the dirty pages whose write-back failed and marks them clean,
// so a later fsync of the file succeeds without them (PostgreSQL's
// "fsyncgate", 2018): the model must not let that later sync save them.
TEST_CASE_TEMPLATE_DEFINE(
    "the fault environment's durability model: after a failed sync of a file, the bytes it "
    "did not make durable are lost at a power loss, whatever syncs follow",
    B, failed_sync_model) {
  scratch_dir dir;
  std::filesystem::create_directories(dir.path() / "files");
  backend_fault_env<B> fault(dir.path() / "keep");
  const std::filesystem::path p = dir.path() / "files" / "000007.log";
  const std::string before = "written before the failed sync;";
  const std::string after = "written after it";
  const auto [first, second] = fail_a_sync_then_sync(fault, p, before, after);
  CHECK_FALSE(first);
  CHECK(second);
  fault.model().directory_synced(p.parent_path());  // the file's name is durable
  REQUIRE(file_text(p) == before + after);          // the process sees every byte

  const power_loss_report r = fault.simulate_power_loss();
  INFO("backend " << B::k_name);
  // The bytes of the failed sync read back as zeros (a hole the later sync
  // made part of the file); the bytes written after the failure are durable.
  CHECK(file_text(p) == std::string(before.size(), '\0') + after);
  CHECK(r.bytes_dropped() == before.size());
}

TEST_CASE_TEMPLATE_INVOKE(failed_sync_model, seshat::rocksdb_backend, seshat::leveldb_backend);

namespace {

using fs_call = fault_log_fs::call;

// A file of `dir` through `fs`, created, allocated to 64 KiB, its first 8 KiB
// written with 'A', synced, and its name made durable.
detail::log_file durable_file(fault_log_fs& fs, const std::filesystem::path& dir) {
  auto f = fs.open(dir / "seg-1.log", {.create_exclusive = true});
  REQUIRE_MESSAGE(f.ok(), f.status().to_string());
  REQUIRE(fs.allocate(*f, 64 * 1024).ok());
  const std::string a(8192, 'A');
  const std::string_view piece[] = {a};
  REQUIRE(fs.pwrite(*f, 0, piece, {}).ok());
  REQUIRE(fs.datasync(*f).ok());
  REQUIRE(fs.sync_directory(dir).ok());
  return *f;
}

void write_at(fault_log_fs& fs, const detail::log_file& f, std::uint64_t at, char c,
              std::size_t n, bool dsync = false) {
  const std::string bytes(n, c);
  const std::string_view piece[] = {bytes};
  REQUIRE(fs.pwrite(f, at, piece, {.dsync = dsync}).ok());
}

}  // namespace

// docs/log-engine.md section 11: the model's rules for writes in place.
TEST_CASE(
    "the durability model on the log engine's file system: an unsynced write in place comes "
    "back 512 bytes at a time, old or new; a dsync write and a synced one whole; a failed "
    "sync's sectors old, whatever syncs follow; an allocation only once synced; nothing "
    "written after the power went") {
  scratch_dir dir;
  std::filesystem::create_directories(dir.path() / "log");
  durability_model model(dir.path() / "keep");
  INFO("SESHAT_TEAR_SEED=" << model.tear_seed());
  fault_plan plan;
  fault_log_fs fs(model, plan);
  const auto log = dir.path() / "log";
  const detail::log_file f = durable_file(fs, log);
  write_at(fs, f, 40960, 'E', 2048);  // its sync fails: old (zeros), for good
  fs.fail_next(fs_call::datasync, fault_error::eio);
  const detail::fs_status failed = fs.datasync(f);
  CHECK_FALSE(failed.ok());
  CHECK(contains(failed.to_string(), message_of(fault_error::eio)));
  CHECK(failed.os_error() == EIO);
  write_at(fs, f, 49152, 'F', 512);  // after the failure, then synced: durable
  REQUIRE(fs.datasync(f).ok());      // succeeds, without the E's
  write_at(fs, f, 0, 'B', 8192);            // over the A's, unsynced: torn
  write_at(fs, f, 16384, 'C', 4096);        // over zeros, unsynced: torn
  write_at(fs, f, 32768, 'D', 1024, true);  // dsync: durable
  write_at(fs, f, 0, 'G', 100);             // over the B's of sector 0
  // A second file: allocated and written, its name durable, never synced.
  auto g = fs.open(log / "seg-2.log", {.create_exclusive = true});
  REQUIRE(g.ok());
  REQUIRE(fs.allocate(*g, 64 * 1024).ok());
  write_at(fs, *g, 0, 'H', 4096);
  REQUIRE(fs.sync_directory(log).ok());
  // The power goes: a write after it never lands, its sync counts for nothing.
  model.cut_power();
  write_at(fs, f, 30720, 'Z', 512);
  REQUIRE(fs.datasync(f).ok());
  REQUIRE(fs.close(f).ok());
  REQUIRE(fs.close(*g).ok());

  const power_loss_report r = model.simulate_power_loss();
  const std::string bytes = file_text(log / "seg-1.log");
  REQUIRE(bytes.size() == 64 * 1024);
  std::uint64_t old_sectors = 0, new_sectors = 0;
  auto sector_is = [&](std::uint64_t s, char c) {
    return bytes.substr(s * 512, 512) == std::string(512, c);
  };
  for (std::uint64_t s = 1; s < 16; ++s) {  // sector 0 holds G's too: below
    CHECK_MESSAGE((sector_is(s, 'A') || sector_is(s, 'B')), "sector " << s);
    (sector_is(s, 'A') ? old_sectors : new_sectors) += 1;
  }
  const std::string s0 = bytes.substr(0, 512);
  CHECK((s0 == std::string(512, 'A') ||
         s0 == std::string(100, 'G') + std::string(412, 'B')));
  for (std::uint64_t s = 32; s < 40; ++s) {
    CHECK_MESSAGE((sector_is(s, 'C') || sector_is(s, '\0')), "sector " << s);
    (sector_is(s, '\0') ? old_sectors : new_sectors) += 1;
  }
  CHECK(bytes.substr(32768, 1024) == std::string(1024, 'D'));
  CHECK(bytes.substr(40960, 2048) == std::string(2048, '\0'));
  CHECK(bytes.substr(49152, 512) == std::string(512, 'F'));
  CHECK(bytes.substr(30720, 512) == std::string(512, '\0'));
  // 23 sectors at random: both outcomes (a chance of 2^-22 to fail).
  CHECK(old_sectors > 0);
  CHECK(new_sectors > 0);
  CHECK(r.sectors_lost == 4);
  CHECK(r.sectors_torn + r.sectors_kept >= 24);
  // The unsynced allocation and write are gone: the file is empty.
  CHECK(std::filesystem::file_size(log / "seg-2.log") == 0);
}

// docs/log-engine.md section 10: every failed call of the engine latches it.
TEST_CASE_TEMPLATE_DEFINE(
    "after an EIO or ENOSPC in any call of the log engine, every later write fails naming it "
    "until the store is reopened, and nothing acknowledged is lost",
    B, engine_call_faults) {
  using log_type = log_store<text_entry, text_serializer, B>;
  const std::uint64_t seed = env_number("SESHAT_DISK_FAULT_SEED", std::random_device{}());
  INFO("backend " << B::k_name << ", SESHAT_DISK_FAULT_SEED=" << seed);
  std::mt19937_64 rng(seed);
  scratch_dir dir;
  backend_fault_env<B> fault(dir.path() / "keep");
  INFO("SESHAT_TEAR_SEED=" << fault.model().tear_seed());
  open_options base;
  base.log.segment_bytes = 16 * 1024;  // the smallest: segments are made and freed often
  fault.attach(base);
  log_image expected;
  std::atomic<std::uint64_t> acks{0};
  struct named_call {
    fs_call c;
    const char* name;
    const char* name_part = "";  // only calls on a file whose name holds it count; "": any
    std::uint64_t nth = 1;        // the nth such call from the store's open on
  };
  // Every call kind of the engine (the first call of that kind after the
  // store is open: with segments prepared ahead, the writer's round, a
  // seal, a preparation or a free, whichever comes first).
  const std::vector<named_call> any_call{
      {fs_call::pwrite, "pwrite"}, {fs_call::datasync, "fdatasync"},
      {fs_call::open_write, "open (segment creation)"}, {fs_call::allocate, "fallocate"},
      {fs_call::rename, "rename"}, {fs_call::sync_directory, "directory fsync"},
      {fs_call::unlink, "unlink"}};
  // With segments prepared ahead, also each step of the maintenance
  // thread's preparation (its calls on prep-<seq>.tmp: create, fallocate,
  // the write-zeroes offload, the zero fill's write (16 KiB: one) and the
  // header's, fdatasync, the rename to seg-). Its failure latches the
  // engine; the writer sees it at its next write, and a power loss leaves
  // the file under either name, or none.
  // With preparation, a freed segment is mostly recycled, not unlinked
  // (unlink comes only once more are kept than are in use: the runs
  // without preparation fail it): its steps are the rename of the freed
  // segment to free-<seq>.log, and the calls of its recycling on that file
  // (the new header's pwrite and fdatasync).
  std::vector<named_call> any_call_prepared;
  for (const named_call& nc : any_call)
    if (nc.c != fs_call::unlink) any_call_prepared.push_back(nc);
  std::vector<named_call> with_preparation = any_call_prepared;
  for (named_call nc : {named_call{fs_call::open_write, "open (preparation)", "prep-"},
                        {fs_call::allocate, "fallocate (preparation)", "prep-"},
                        {fs_call::write_zeroes, "write-zeroes (preparation)", "prep-"},
                        {fs_call::pwrite, "pwrite (preparation: the zero fill)", "prep-"},
                        {fs_call::pwrite, "pwrite (preparation: the header)", "prep-", 2},
                        {fs_call::datasync, "fdatasync (preparation)", "prep-"},
                        {fs_call::rename, "rename (preparation)", "prep-"},
                        {fs_call::rename, "rename (freeing, to free-)", "free-"},
                        {fs_call::pwrite, "pwrite (recycling: the header)", "free-"},
                        {fs_call::datasync, "fdatasync (recycling)", "free-"}})
    with_preparation.push_back(nc);
  // Page-cache rounds without and with preparation ahead, then O_DIRECT
  // rounds (segment_io::direct: an EIO or ENOSPC from an O_DIRECT write
  // latches as any other; only EINVAL falls back).
  for (const auto& mode : {std::pair{false, segment_io::write_fdatasync},
                           std::pair{true, segment_io::write_fdatasync},
                           std::pair{true, segment_io::direct}})
  for (const named_call& nc : !mode.first                         ? any_call
                              : mode.second != segment_io::direct ? with_preparation
                                                                  : any_call_prepared) {
    const bool prepare = mode.first;
    const segment_io io = mode.second;
    open_options options = base;
    options.log.prepare_ahead = prepare;
    options.log.io = io;
    const bool direct = io == segment_io::direct;
    for (fault_error err : {fault_error::eio, fault_error::enospc}) {
      const std::string call_name = nc.name;  // CAPTURE shows a string, not the pointer
      CAPTURE(prepare);
      CAPTURE(direct);
      CAPTURE(call_name);
      CAPTURE(message_of(err));
      log_history history(expected);
      {
        auto store = open_store<B>(dir.store(), options);
        auto opened = log_type::open(*store);
        REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
        auto log = std::move(*opened);
        log_workload<log_type> work(*log, history, rng, acks, 3000);
        const std::uint64_t before = fault.faults().injected();
        fault.log_fs().fail_next(nc.c, err, nc.nth, nc.name_part);
        status failed;
        // Until a call fails: the faulted one, or (a failure of the
        // maintenance thread: a seal, a free) the next write after it.
        for (int i = 0; i < 400 && failed.ok(); ++i) {
          failed = work.step();
          if (failed.ok() && !fault.log_fs().pending())
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        REQUIRE_MESSAGE(fault.faults().injected() == before + 1, "the fault was never reached");
        REQUIRE_MESSAGE(!failed.ok(), "the fault fired, yet every later write succeeded");
        CHECK(failed.is(errc::io_error));
        CHECK_MESSAGE(contains(failed.to_string(), message_of(err)), failed.to_string());
        // The disk is fine again: the store still refuses, naming the error
        // (a valid append, a vote, the engine's sync).
        const log_state st = log->get_log_state();
        const text_entry next = make_entry<text_entry>(st.last ? st.last->term : 1,
                                                       st.last ? st.last->index + 1 : 1);
        const status refusals[] = {log->append(std::span<const text_entry>(&next, 1)),
                                   log->save_vote(vote{1000, 1, false}),
                                   store->backend().log().sync()};
        for (const status& again : refusals) {
          CHECK_MESSAGE(!again.ok(), "a write after the failure succeeded");
          CHECK_MESSAGE(contains(again.to_string(), "refused, an earlier write failed"),
                        again.to_string());
          CHECK_MESSAGE(contains(again.to_string(), message_of(err)), again.to_string());
          CHECK_MESSAGE(contains(again.to_string(), "reopen the store"), again.to_string());
        }
        log.reset();
        store->close().ignore();
      }
      expected = reopen_after_power_loss<B, log_type>(fault, dir.store(), options, history);
    }
  }
  CHECK(acks.load() > 0);
}

TEST_CASE_TEMPLATE_INVOKE(engine_call_faults, seshat::segmented<seshat::rocksdb_backend>,
                          seshat::segmented<seshat::leveldb_backend>);

namespace {

// A store on a fault environment (1 MB memtables, so that LevelDB switches
// logs within a test) and the writes made to it in order, with how many of
// them a synced write or sync acknowledged as durable.
template <class B>
struct acknowledged_writes {
  scratch_dir dir;
  backend_fault_env<B> fault{dir.path() / "keep"};
  open_options options = [] {
    open_options o;
    o.write_buffer_mb = 1;
    return o;
  }();
  std::unique_ptr<storage<B>> store;
  std::vector<std::pair<std::string, std::string>> writes;
  std::size_t acknowledged = 0;

  acknowledged_writes() {
    fault.attach(options);
    store = open_store<B>(dir.store(), options);
  }

  status put(const std::string& key, const std::string& value, bool sync) {
    status s = store->backend().put(column_family::data_kv, key, value, write_options{sync});
    if (s.ok()) writes.emplace_back(key, value);
    if (s.ok() && sync) acknowledged = writes.size();
    return s;
  }
  status sync_wal() {
    status s = store->backend().sync_wal();
    if (s.ok()) acknowledged = writes.size();
    return s;
  }

  // LevelDB: unsynced puts until it has switched memtables (a new log) and,
  // with its compaction held, keeps the older log, which the next synced
  // write must sync (and then the directory).
  void make_older_log(std::uint64_t seed) {
    auto count_logs = [&] {
      int n = 0;
      for (const auto& e : std::filesystem::directory_iterator(dir.store()))
        n += e.path().extension() == ".log";
      return n;
    };
    fault.hold_background();
    std::mt19937_64 rng(seed);
    for (int i = 0; i < 64 && count_logs() < 2; ++i) {
      std::string value(64 * 1024, ' ');
      for (char& c : value) c = static_cast<char>('a' + rng() % 26);
      REQUIRE(put("unsynced-" + std::to_string(i), value, false).ok());
    }
    REQUIRE(count_logs() == 2);
  }

  // `s` is the refusal of an operation after `first` failed.
  static void check_refused(const status& s, const status& first) {
    CHECK_MESSAGE(s.is(errc::io_error), s.to_string());
    CHECK_MESSAGE(contains(s.to_string(), "refused, an earlier write failed"), s.to_string());
    CHECK_MESSAGE(contains(s.to_string(), first.message()), s.to_string());
    CHECK_MESSAGE(contains(s.to_string(), "reopen the store"), s.to_string());
  }

  // Closes the store, simulates a power loss and reopens it: every
  // acknowledged write is there, and the store takes writes again.
  void check_after_power_loss() {
    store->close().ignore();
    store.reset();
    fault.simulate_power_loss();
    REQUIRE_MESSAGE(fault.model().error().empty(), fault.model().error());
    store = open_store<B>(dir.store(), options);
    for (std::size_t i = 0; i < acknowledged; ++i) {
      auto v = store->get(column_family::data_kv, writes[i].first);
      CHECK_MESSAGE(v.ok(), "acknowledged write " << i + 1 << " of " << acknowledged << " ('"
                                                  << writes[i].first
                                                  << "') is lost: " << v.status().to_string());
      if (v.ok()) CHECK(*v == writes[i].second);
    }
    CHECK(store->backend().put(column_family::data_kv, "after", "reopen", write_options{true}).ok());
    REQUIRE(store->close().ok());
  }
};

// Fails seshat's own next fsync of the directory `dir` (a directory sync
// outside the engine's Env) with `err`, once; every other step goes on to
// the fault environment's feed of the durability model.
class fail_directory_sync final : public scoped_fs_observer {
 public:
  fail_directory_sync(std::filesystem::path dir, int err) : dir_(std::move(dir)), err_(err) {}

  int before(detail::fs_step step, const std::filesystem::path& p) override {
    std::error_code ec;
    if (step == detail::fs_step::sync_directory && !fired_ && std::filesystem::equivalent(p, dir_, ec)) {
      fired_ = true;
      return err_;
    }
    return scoped_fs_observer::before(step, p);
  }
  bool fired() const { return fired_; }

 private:
  std::filesystem::path dir_;
  int err_;
  bool fired_ = false;
};

}  // namespace

TEST_CASE_TEMPLATE_DEFINE(
    "after a disk fault in a sync, every later write and sync fails with that error until the "
    "store is reopened, and nothing acknowledged is lost",
    B, failed_sync_stops_the_store) {
  INFO("backend " << B::k_name);
  acknowledged_writes<B> w;
  REQUIRE(w.put("first", "synced", true).ok());
  std::uint64_t nth_sync = 1;  // RocksDB: the WAL's sync
  if constexpr (std::is_same_v<B, leveldb_backend>) {
    w.make_older_log(7);
    nth_sync = 2;  // the newest log's sync, then the older log's
  }
  REQUIRE(w.put("in-the-newest-log", "unsynced", false).ok());
  const std::uint64_t injected = w.fault.faults().injected();
  w.fault.faults().fail_nth(fault_op::sync, nth_sync, fault_error::eio);

  const status failed = w.put("second", "synced", true);
  REQUIRE(w.fault.faults().injected() == injected + 1);
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.is(errc::io_error));
  CHECK_MESSAGE(contains(failed.to_string(), message_of(fault_error::eio)), failed.to_string());
  if constexpr (std::is_same_v<B, leveldb_backend>)
    CHECK_MESSAGE(contains(failed.to_string(), "older log"), failed.to_string());

  // The disk is fine again, and a sync of the same files would succeed now:
  // the store still refuses, naming the first error.
  const status again = w.sync_wal();
  w.check_refused(again, failed);
  MESSAGE(B::k_name << ": the sync after a failed one: " << again.to_string());
  w.check_refused(w.put("third", "synced", true), failed);
  w.check_refused(w.put("fourth", "unsynced", false), failed);
  CHECK(w.store->get(column_family::data_kv, "first").value() == "synced");  // reads go on

  if constexpr (std::is_same_v<B, leveldb_backend>) w.fault.release_background();
  w.check_after_power_loss();
}

// On segmented<B> the KV half is B's (the case above, unchanged) and the
// log engine's latch has its own case below, per engine call.
TEST_CASE_TEMPLATE_INVOKE(failed_sync_stops_the_store, seshat::rocksdb_backend,
                          seshat::leveldb_backend);

TEST_CASE("after a disk fault in the directory sync of LevelDB's older logs, every later write "
          "and sync fails with that error until the store is reopened, and nothing "
          "acknowledged is lost") {
  acknowledged_writes<leveldb_backend> w;
  REQUIRE(w.put("first", "synced", true).ok());
  w.make_older_log(11);
  status failed;
  {
    fail_directory_sync failing(w.dir.store(), EIO);
    failed = w.put("second", "synced", true);
    REQUIRE(failing.fired());
  }
  CHECK(failed.is(errc::io_error));
  CHECK_MESSAGE(contains(failed.to_string(), "fsync"), failed.to_string());
  // The directory can be synced again now: the store still refuses.
  w.check_refused(w.sync_wal(), failed);
  w.check_refused(w.put("third", "synced", true), failed);
  CHECK(w.store->get(column_family::data_kv, "first").value() == "synced");  // reads go on
  w.fault.release_background();
  w.check_after_power_loss();
}

// LevelDB keeps the log of a full memtable until a background flush writes
// it out; a close that finds that flush still queued (its thread busy, here
// held) writes it, so that the next open does not replay it.
TEST_CASE("a LevelDB close writes out a memtable whose flush is still queued, leaving no long "
          "log to replay") {
  scratch_dir dir;
  backend_fault_env<leveldb_backend> fault{dir.path() / "keep"};
  open_options options;
  options.write_buffer_mb = 8;  // above k_flush_on_close_log_bytes (4 MB)
  fault.attach(options);
  auto store = open_store<leveldb_backend>(dir.store(), options);
  auto log_bytes = [&] {
    std::uintmax_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.store()))
      if (e.path().extension() == ".log") n += e.file_size();
    return n;
  };
  auto count_logs = [&] {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir.store()))
      n += e.path().extension() == ".log";
    return n;
  };
  fault.hold_background();
  std::mt19937_64 rng(5);
  for (int i = 0; i < 256 && count_logs() < 2; ++i) {
    std::string value(64 * 1024, ' ');
    for (char& c : value) c = static_cast<char>('a' + rng() % 26);
    REQUIRE(store->put(column_family::data_kv, "k" + std::to_string(i), value).ok());
  }
  REQUIRE(count_logs() == 2);  // the full memtable's log, its flush queued, and the new one
  REQUIRE(log_bytes() >= detail::k_flush_on_close_log_bytes);
  // The background thread comes back while close() runs (close waits for it).
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    fault.release_background();
  });
  const status closed = store->close();
  release.join();
  CHECK_MESSAGE(closed.ok(), closed.to_string());
  INFO(log_bytes() << " log bytes after close");
  CHECK(log_bytes() < detail::k_flush_on_close_log_bytes);
  store = open_store<leveldb_backend>(dir.store(), options);
  CHECK(store->get(column_family::data_kv, "k0").ok());
}

TEST_SUITE_END();  // "disk faults"
