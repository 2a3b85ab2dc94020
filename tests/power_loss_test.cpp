// Power loss on the real backends: a log_store over RocksDB or LevelDB runs
// on a fault environment (tests/fault_env/) that tracks what was synced;
// each round does random operations, cuts the power (from then on nothing
// becomes durable: the store runs on, its syncs return, but they count for
// nothing, and no acknowledgment is seen), closes the store (which syncs,
// too late), and simulates the power loss on the real files: unsynced
// tails cut, files whose creation was never durable deleted, undurable
// deletes and renames undone. Then it reopens and checks:
//   - the log reads back whole and hole-free: the keys of its family are
//     exactly [first, last] of its log state;
//   - the image (entries byte for byte, last purged, vote, committed) is the
//     one after some operation issued at or after the last acknowledged one:
//     no acknowledged write lost, nothing invented, nothing went backwards.
// That the simulation bites: each round ends with an unsynced storage put;
// the test requires that some rounds lose it, and that bytes were dropped.
// On segmented<B> (the log engine beside B) both halves lose power at once:
// B's files through its environment, the engine's segments through
// fault_log_fs on the same model, where unsynced sectors written in place
// come back old or new at random (SESHAT_TEAR_SEED replays the tears);
// there the test also requires that some sectors were torn.
//
// SESHAT_POWER_LOSS_ROUNDS=N sets the rounds per backend (64 by default);
// SESHAT_POWER_LOSS_SEED=S replays a run.
#include <doctest/doctest.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <optional>
#include <random>
#include <string>

#include "fault_env/backend_fault_env.hpp"
#include "fault_env/fault_log_fs.hpp"
#include "fault_env/log_history.hpp"
#include "fault_env/log_workload.hpp"
#include "kv_entries.hpp"
#include "log_entries.hpp"
#include "seshat/log_store.hpp"
#include "seshat/raft_snapshot.hpp"
#include "support.hpp"

TEST_SUITE_BEGIN("power loss");

namespace {

using namespace seshat;
using namespace seshat::test;

TEST_CASE_TEMPLATE_DEFINE(
    "after a power loss the log holds every acknowledged write, byte for byte, "
    "and nothing else",
    B, power_loss) {
  using log_type = log_store<text_entry, text_serializer, B>;
  const std::uint64_t rounds = env_number("SESHAT_POWER_LOSS_ROUNDS", 64);
  const std::uint64_t seed = env_number("SESHAT_POWER_LOSS_SEED", std::random_device{}());
  INFO("backend " << B::k_name << ", SESHAT_POWER_LOSS_SEED=" << seed);
  std::mt19937_64 rng(seed);

  scratch_dir dir;
  backend_fault_env<B> fault(dir.path() / "keep");
  INFO("SESHAT_TEAR_SEED=" << fault.model().tear_seed());
  open_options options;
  options.write_buffer_mb = 1;  // memtable switches and flushes: files come and go
  options.target_file_mb = 1;
  fault.attach(options);

  log_image expected;  // what the store holds at the start of a round
  std::atomic<std::uint64_t> acks{0};
  std::uint64_t ops = 0, entries_checked = 0, canaries_lost = 0;
  power_loss_report dropped;
  for (std::uint64_t round = 0; round < rounds; ++round) {
    CAPTURE(round);
    // The log engine's I/O modes in turn (on the same store: each opens
    // what the others wrote); direct: O_DIRECT rounds that write the partial
    // block they start in again, which a torn write may leave old or new.
    options.log.io = std::array{segment_io::write_fdatasync, segment_io::dsync, segment_io::direct}[round % 3];
    const int io_mode = static_cast<int>(options.log.io);  // segment_io's order
    CAPTURE(io_mode);
    log_history history(expected);
    {
      auto store = open_store<B>(dir.store(), options);
      auto opened = log_type::open(*store);
      REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
      auto log = std::move(*opened);
      // Every third round writes big entries: memtable switches (new logs,
      // flushes, manifests) happen within the round, some just before the
      // power goes.
      const std::size_t max_payload = round % 3 == 2 ? 120000 : 8000;
      log_workload<log_type> work(*log, history, rng, acks, max_payload);
      const std::uint64_t n = 5 + rng() % 30;
      for (std::uint64_t i = 0; i < n; ++i) {
        status s = work.step();
        REQUIRE_MESSAGE(s.ok(), s.to_string());
      }
      ops += n;
      // Unsynced: only a later synced write would make it durable.
      REQUIRE(store->put(column_family::system_data, "canary", std::to_string(round)).ok());
      // The power goes: from here on no acknowledgment is seen, and nothing
      // becomes durable. In that order: an append_async round whose
      // fdatasync returns after the cut (durable for nothing) may call back
      // at once, and an acknowledgment seen between the cut and the stop
      // would claim what no power loss keeps. Closing syncs, but too late.
      history.stop_acknowledging();
      fault.model().cut_power();
      log.reset();
      store->close().ignore();
    }
    const power_loss_report r = fault.simulate_power_loss();
    REQUIRE_MESSAGE(fault.model().error().empty(), fault.model().error());
    dropped.bytes_truncated += r.bytes_truncated;
    dropped.files_removed += r.files_removed;
    dropped.bytes_removed += r.bytes_removed;
    dropped.files_restored += r.files_restored;
    dropped.sectors_torn += r.sectors_torn;
    dropped.sectors_kept += r.sectors_kept;

    auto store = open_store<B>(dir.store(), options);
    auto opened = log_type::open(*store);
    REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
    auto seen = read_stored_image(**opened, *store);
    REQUIRE_MESSAGE(seen.ok(), seen.status().to_string() << "; " << history.describe());
    const auto k = history.match(*seen);
    REQUIRE_MESSAGE(k.has_value(), "after the power loss the log shows "
                                       << seen->describe()
                                       << ", which is no image at or after the last "
                                          "acknowledged operation; "
                                       << history.describe());
    entries_checked += seen->entries.size();
    expected = *seen;
    auto canary = store->exists(column_family::system_data, "canary");
    REQUIRE(canary.ok());
    if (!*canary) ++canaries_lost;
    // The next round's canary must be lost or found on its own merit.
    if (*canary) REQUIRE(store->del(column_family::system_data, "canary").ok());
    REQUIRE(store->sync_wal().ok());
    opened->reset();
    REQUIRE(store->close().ok());
  }
  MESSAGE(B::k_name << ": " << rounds << " power losses, " << ops << " operations issued, "
                    << acks.load() << " acknowledged, " << entries_checked
                    << " entries checked; dropped " << dropped.bytes_dropped() << " bytes ("
                    << dropped.bytes_truncated << " unsynced tail bytes, " << dropped.files_removed
                    << " files never made durable), " << dropped.files_restored
                    << " undurable deletes or renames undone, " << dropped.sectors_torn
                    << " unsynced sectors torn (old bytes) and " << dropped.sectors_kept
                    << " kept; the unsynced put was lost in " << canaries_lost << " rounds");
  // The simulation bites: unsynced writes do disappear.
  CHECK(canaries_lost > 0);
  CHECK(dropped.bytes_dropped() > 0);
  CHECK(acks.load() > 0);
  if constexpr (log_backend<B>) CHECK(dropped.sectors_torn > 0);
}

TEST_CASE_TEMPLATE_INVOKE(power_loss, seshat::rocksdb_backend, seshat::leveldb_backend,
                          seshat::segmented<seshat::rocksdb_backend>,
                          seshat::segmented<seshat::leveldb_backend>);

// One round of the step cases below, on a segmented<B> store in `dir`:
// opens it, runs `warm_up(store)` (steps of the workload until what the
// case needs has happened), arms fault_log_fs's cut_power_at(c, stop
// acknowledging, nth, name_part), runs the workload until the cut happened
// (at most 3000 steps) and 5 steps more, closes, simulates the power loss,
// reopens and requires the log to show an image at or after the last
// acknowledged operation, which becomes `expected`. Returns the loss's report.
template <class B, class WarmUp>
power_loss_report power_loss_at_call(backend_fault_env<B>& fault, scratch_dir& dir, const open_options& options,
                                     std::mt19937_64& rng, std::atomic<std::uint64_t>& acks, log_image& expected,
                                     fault_log_fs::call c, std::uint64_t nth, const std::string& name_part,
                                     WarmUp&& warm_up) {
  using log_type = log_store<text_entry, text_serializer, B>;
  log_history history(expected);
  {
    auto store = open_store<B>(dir.store(), options);
    auto opened = log_type::open(*store);
    REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
    auto log = std::move(*opened);
    log_workload<log_type> work(*log, history, rng, acks, 3000);
    warm_up(*store, work);
    fault.log_fs().cut_power_at(c, [&] { history.stop_acknowledging(); }, nth, name_part);
    for (int i = 0; i < 3000 && fault.log_fs().pending(); ++i) {
      status s = work.step();
      REQUIRE_MESSAGE(s.ok(), s.to_string());
    }
    REQUIRE_MESSAGE(!fault.log_fs().pending(), "no call on a " << name_part << " file reached that step");
    for (int i = 0; i < 5; ++i) {  // the writer goes on, into a segment being prepared too
      status s = work.step();
      REQUIRE_MESSAGE(s.ok(), s.to_string());
    }
    log.reset();
    store->close().ignore();
  }
  const power_loss_report r = fault.simulate_power_loss();
  REQUIRE_MESSAGE(fault.model().error().empty(), fault.model().error());
  auto store = open_store<B>(dir.store(), options);
  auto opened = log_type::open(*store);
  REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
  auto seen = read_stored_image(**opened, *store);
  REQUIRE_MESSAGE(seen.ok(), seen.status().to_string() << "; " << history.describe());
  REQUIRE_MESSAGE(history.match(*seen).has_value(),
                  "after the power loss the log shows " << seen->describe()
                                                        << ", which is no image at or after the "
                                                           "last acknowledged operation; "
                                                        << history.describe());
  expected = *seen;
  opened->reset();
  REQUIRE(store->close().ok());
  return r;
}

// docs/log-engine.md, "M7 as built": the maintenance thread prepares the
// next segment as prep-<seq>.tmp (create, fallocate, zero fill, header,
// fdatasync), renames it to seg-<seq>.log and fsyncs the directory, while
// the writer goes on (and may already stage into it). The power goes just
// before each of those calls (the call and the writes after it land, none
// of it durable: an unsynced fill or header, an undurable rename); the
// store then opens cleanly with every acknowledged write.
TEST_CASE_TEMPLATE_DEFINE(
    "a power loss at each step of a segment's preparation ahead leaves a store that opens "
    "with every acknowledged write",
    B, power_loss_in_preparation) {
  using fs_call = fault_log_fs::call;
  const std::uint64_t seed = env_number("SESHAT_POWER_LOSS_SEED", std::random_device{}());
  INFO("backend " << B::k_name << ", SESHAT_POWER_LOSS_SEED=" << seed);
  std::mt19937_64 rng(seed);
  scratch_dir dir;
  backend_fault_env<B> fault(dir.path() / "keep");
  INFO("SESHAT_TEAR_SEED=" << fault.model().tear_seed());
  open_options options;
  options.log.segment_bytes = 16 * 1024;  // a preparation every few operations
  REQUIRE(options.log.prepare_ahead);
  fault.attach(options);
  struct step {
    fs_call c;
    std::uint64_t nth;  // of the calls on a prep- file
    const char* name;
  };
  log_image expected;
  std::atomic<std::uint64_t> acks{0};
  for (const step& st : {step{fs_call::open_write, 1, "create"}, {fs_call::allocate, 1, "fallocate"},
                         {fs_call::pwrite, 1, "the zero fill's write"},
                         {fs_call::pwrite, 2, "the header's write"},
                         {fs_call::datasync, 1, "fdatasync"}, {fs_call::rename, 1, "rename"}}) {
    const std::string step_name = st.name;
    CAPTURE(step_name);
    // Page-cache and O_DIRECT rounds in turn, on the same store.
    options.log.io = options.log.io == segment_io::direct ? segment_io::write_fdatasync : segment_io::direct;
    const int io_mode = static_cast<int>(options.log.io);  // segment_io's order
    CAPTURE(io_mode);
    const power_loss_report r = power_loss_at_call<B>(fault, dir, options, rng, acks, expected, st.c, st.nth,
                                                   "prep-", [](auto&, auto&) {});
    CHECK(r.bytes_dropped() > 0);  // the prepared segment, at least, was not durable
  }
  CHECK(acks.load() > 0);
}

TEST_CASE_TEMPLATE_INVOKE(power_loss_in_preparation, seshat::segmented<seshat::rocksdb_backend>,
                          seshat::segmented<seshat::leveldb_backend>);

// Recycling a freed segment (docs/log-engine.md section 5): the maintenance
// thread renames a segment no group needs to free-<seq>.log and fsyncs the
// directory; a later preparation writes the new header into that file,
// fdatasyncs it and renames it to seg-<new seq>.log. Its old frames stay
// in it. The power goes just before a rename to or from free-, the new header's
// write and its fdatasync; the store then opens with every acknowledged
// write, and what a lost write of the new life leaves (old bytes) reads as
// the end of the log.
TEST_CASE_TEMPLATE_DEFINE(
    "a power loss at each step of a freed segment's recycling leaves a store that opens "
    "with every acknowledged write",
    B, power_loss_in_recycling) {
  using fs_call = fault_log_fs::call;
  const std::uint64_t seed = env_number("SESHAT_POWER_LOSS_SEED", std::random_device{}());
  INFO("backend " << B::k_name << ", SESHAT_POWER_LOSS_SEED=" << seed);
  std::mt19937_64 rng(seed);
  scratch_dir dir;
  backend_fault_env<B> fault(dir.path() / "keep");
  INFO("SESHAT_TEAR_SEED=" << fault.model().tear_seed());
  open_options options;
  options.log.segment_bytes = 16 * 1024;  // segments freed every few purges
  fault.attach(options);
  struct step {
    fs_call c;
    const char* name;
  };
  log_image expected;
  std::atomic<std::uint64_t> acks{0};
  std::uint64_t recycled = 0;
  for (const step& st : {step{fs_call::rename, "a rename to or from free-"}, {fs_call::pwrite, "the new header's write"},
                         {fs_call::datasync, "the new header's fdatasync"}}) {
    const std::string step_name = st.name;
    CAPTURE(step_name);
    options.log.io = options.log.io == segment_io::direct ? segment_io::write_fdatasync : segment_io::direct;
    const int io_mode = static_cast<int>(options.log.io);  // segment_io's order
    CAPTURE(io_mode);
    // Unarmed first, until a freed segment was recycled once (the armed
    // rename is then the freeing of a later one, or a recycling), then armed.
    power_loss_at_call<B>(fault, dir, options, rng, acks, expected, st.c, 1, "free-", [&](auto& store, auto& work) {
      for (int i = 0; i < 3000 && store.log_engine().recycled_segments() == 0; ++i) {
        status s = work.step();
        REQUIRE_MESSAGE(s.ok(), s.to_string());
      }
      REQUIRE_MESSAGE(store.log_engine().recycled_segments() > 0, "no freed segment was recycled");
      recycled += store.log_engine().recycled_segments();
    });
  }
  CHECK(recycled > 0);
  CHECK(acks.load() > 0);
}

TEST_CASE_TEMPLATE_INVOKE(power_loss_in_recycling, seshat::segmented<seshat::rocksdb_backend>,
                          seshat::segmented<seshat::leveldb_backend>);

// LevelDB closes the log it leaves at a memtable switch without syncing it,
// and the newer log's pages could reach the disk first; so the backend
// syncs it before LevelDB creates the newer log (leveldb_backend.cpp,
// log_watch). Unsynced puts until a second log appears, then the power
// goes at once: every put written into the older log survives, though no
// write synced it.
TEST_CASE("LevelDB: the log left at a memtable switch is durable before the newer log takes a write") {
  using B = seshat::leveldb_backend;
  scratch_dir dir;
  backend_fault_env<B> fault(dir.path() / "keep");
  open_options options;
  options.write_buffer_mb = 1;  // a switch after about 1 MB
  fault.attach(options);
  auto logs = [&] {
    int n = 0;
    for (const auto& f : std::filesystem::directory_iterator(dir.store()))
      n += f.path().extension() == ".log" ? 1 : 0;
    return n;
  };
  const std::string value(4096, 'v');
  int in_older = 0;  // the puts written before the one that switched
  {
    auto store = open_store<B>(dir.store(), options);
    REQUIRE(logs() == 1);
    for (int i = 0; i < 2000 && logs() == 1; ++i) {
      in_older = i;
      REQUIRE(store->put(column_family::system_data, "k" + std::to_string(i), value).ok());
    }
    REQUIRE(logs() == 2);
    fault.model().cut_power();
    store->close().ignore();
  }
  REQUIRE(in_older > 100);
  fault.simulate_power_loss();
  REQUIRE_MESSAGE(fault.model().error().empty(), fault.model().error());
  auto store = open_store<B>(dir.store(), options);
  int missing = 0;
  for (int i = 0; i < in_older; ++i)
    missing += store->exists(column_family::system_data, "k" + std::to_string(i)).value() ? 0 : 1;
  CHECK_MESSAGE(missing == 0, missing << " of the " << in_older << " puts in the older log were lost");
  REQUIRE(store->close().ok());
}

// The directories seshat creates. The model tracks the directories under the
// scratch directory (watch_directories): a new one survives a power loss
// only if its parent was fsynced after it was made. The engines' directory
// fsyncs reach the model through their Env, seshat's own (it creates the
// store's directory and its parents, and a snapshot's, itself) through the
// fs_observer seam that the fault environment installs (seshat_seam.hpp).
TEST_CASE_TEMPLATE_DEFINE(
    "a power loss right after a store was created in new directories keeps the store and "
    "what was synced",
    B, power_loss_after_creation) {
  scratch_dir dir;
  backend_fault_env<B> fault(dir.path() / "keep");
  fault.model().watch_directories(dir.path());
  open_options options;
  fault.attach(options);
  const auto store_dir = dir.path() / "a" / "b" / "store";  // a and b do not exist yet
  {
    auto store = open_store<B>(store_dir, options);
    REQUIRE(store->put(column_family::system_raft_state, "vote", "7").ok());  // a synced family
    REQUIRE(store->close().ok());
  }
  fault.model().cut_power();
  const power_loss_report r = fault.simulate_power_loss();
  REQUIRE_MESSAGE(fault.model().error().empty(), fault.model().error());
  options.create_if_missing = false;
  auto reopened = storage<B>::open(store_dir, options);
  REQUIRE_MESSAGE(reopened.ok(), "after the power loss (" << r.directories_removed
                                                          << " new directories removed): "
                                                          << reopened.status().to_string());
  auto vote = (*reopened)->get(column_family::system_raft_state, "vote");
  REQUIRE_MESSAGE(vote.ok(), vote.status().to_string());
  CHECK(*vote == "7");
}

TEST_CASE_TEMPLATE_DEFINE(
    "a power loss right after create_snapshot into new directories keeps the snapshot", B,
    power_loss_after_snapshot) {
  scratch_dir dir;
  backend_fault_env<B> fault(dir.path() / "keep");
  open_options options;
  fault.attach(options);
  auto store = open_store<B>(dir.store(), options);
  REQUIRE(store->put(column_family::data_kv, "k", "v").ok());
  fault.model().watch_directories(dir.path());  // from here on, new directories are tracked
  const auto snap = dir.path() / "snaps" / "nested" / "s1";  // snaps and nested do not exist yet
  auto made = store->create_snapshot(snap, log_id{1, 1});
  REQUIRE_MESSAGE(made.ok(), made.status().to_string());
  fault.model().cut_power();
  REQUIRE(store->close().ok());
  store.reset();
  const power_loss_report r = fault.simulate_power_loss();
  REQUIRE_MESSAGE(fault.model().error().empty(), fault.model().error());
  auto valid = storage<B>::validate_snapshot(snap);
  CHECK_MESSAGE(valid.ok(), "after the power loss ("
                                << r.directories_removed
                                << " new directories removed): " << valid.status().to_string());
}

TEST_CASE_TEMPLATE_DEFINE(
    "a power loss right after snapshot_manager made its directory keeps the snapshot built there",
    B, power_loss_after_snapshot_manager) {
  using log_type = log_store<kv_entry, boost_serializer, B, data_shard>;
  using sm_type = state_machine_store<kv_entry, B, data_shard>;
  using manager_type = snapshot_manager<kv_entry, boost_serializer, B, data_shard>;
  scratch_dir dir;
  backend_fault_env<B> fault(dir.path() / "keep");
  open_options options;
  fault.attach(options);
  const data_shard group{7};
  auto store = open_store<B>(dir.store(), options);
  fault.model().watch_directories(dir.path());  // <store>.snapshots/7 is made from here on
  std::optional<raft_snapshot_meta> built;
  {
    auto log = log_type::open(*store, group);
    REQUIRE_MESSAGE(log.ok(), log.status().to_string());
    auto sm = sm_type::open(*store, group);
    REQUIRE_MESSAGE(sm.ok(), sm.status().to_string());
    const auto entries = puts(1, 1, 3, "v");
    REQUIRE((*log)->append(entries).ok());
    REQUIRE(sm->apply(entries, kv_apply).ok());
    auto manager = manager_type::open(*sm, **log);
    REQUIRE_MESSAGE(manager.ok(), manager.status().to_string());
    auto meta = (*manager)->build_snapshot();
    REQUIRE_MESSAGE(meta.ok(), meta.status().to_string());
    built = *meta;
  }
  fault.model().cut_power();
  REQUIRE(store->close().ok());
  store.reset();
  const power_loss_report r = fault.simulate_power_loss();
  REQUIRE_MESSAGE(fault.model().error().empty(), fault.model().error());

  store = open_store<B>(dir.store(), options);
  auto log = log_type::open(*store, group);
  REQUIRE_MESSAGE(log.ok(), log.status().to_string());
  auto sm = sm_type::open(*store, group);
  REQUIRE_MESSAGE(sm.ok(), sm.status().to_string());
  auto manager = manager_type::open(*sm, **log);
  REQUIRE_MESSAGE(manager.ok(), manager.status().to_string());
  auto current = (*manager)->get_current_snapshot();
  REQUIRE_MESSAGE(current.ok(), current.status().to_string());
  REQUIRE_MESSAGE(current->has_value(), "after the power loss ("
                                            << r.directories_removed
                                            << " new directories removed) there is no snapshot");
  CHECK((*current)->meta.snapshot_id == built->snapshot_id);
}

TEST_CASE_TEMPLATE_INVOKE(power_loss_after_snapshot_manager, seshat::rocksdb_backend,
                          seshat::leveldb_backend, seshat::segmented<seshat::rocksdb_backend>,
                          seshat::segmented<seshat::leveldb_backend>);
TEST_CASE_TEMPLATE_INVOKE(power_loss_after_creation, seshat::rocksdb_backend,
                          seshat::leveldb_backend, seshat::segmented<seshat::rocksdb_backend>,
                          seshat::segmented<seshat::leveldb_backend>);
TEST_CASE_TEMPLATE_INVOKE(power_loss_after_snapshot, seshat::rocksdb_backend,
                          seshat::leveldb_backend, seshat::segmented<seshat::rocksdb_backend>,
                          seshat::segmented<seshat::leveldb_backend>);

}  // namespace

TEST_SUITE_END();  // "power loss"
