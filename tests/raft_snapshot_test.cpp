// Raft-level snapshots: snapshot_manager building, serving, receiving and
// installing one group's state machine, run against every backend.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "seshat/raft_snapshot.hpp"
#include "kv_entries.hpp"
#include "support.hpp"

TEST_SUITE_BEGIN("raft snapshots");

using namespace seshat;
using seshat::test::dump;
using seshat::test::k_members;
using seshat::test::kv_apply;
using seshat::test::kv_entry;
using seshat::test::puts;
using seshat::test::open_store;
using seshat::test::scratch_dir;

// Stops a manager's install_snapshot after a step, as a crash would.
template <class M>
struct seshat::detail::install_crash_seam {
  static void stop_after(M& m, std::optional<install_step> step) { m.stop_after_ = step; }
};

namespace {

constexpr shard_id k_group = 7;

template <class B>
using group_sm = state_machine_store<kv_entry, B, data_shard>;
template <class B>
using group_log = log_store<kv_entry, boost_serializer, B, data_shard>;
template <class B>
using group_snapshots = snapshot_manager<kv_entry, boost_serializer, B, data_shard>;

// One node's view of group 7: its storage, log, state machine and snapshots.
template <class B>
struct node {
  std::filesystem::path dir;
  snapshot_options options;
  snapshot_trigger trigger;
  std::unique_ptr<storage<B>> store;
  std::unique_ptr<group_log<B>> log;
  std::unique_ptr<group_sm<B>> sm;
  std::unique_ptr<group_snapshots<B>> snapshots;

  explicit node(std::filesystem::path d, snapshot_options o = {}, snapshot_trigger t = {})
      : dir(std::move(d)), options(std::move(o)), trigger(t) {
    open();
  }
  ~node() { close(); }

  void open() {
    store = open_store<B>(dir);
    auto l = group_log<B>::open(*store, data_shard{k_group});
    REQUIRE(l.ok());
    log = std::move(*l);
    auto s = group_sm<B>::open(*store, data_shard{k_group});
    REQUIRE(s.ok());
    sm = std::make_unique<group_sm<B>>(std::move(*s));
    auto m = group_snapshots<B>::open(*sm, *log, options, trigger);
    REQUIRE(m.ok());
    snapshots = std::move(*m);
  }
  void close() {
    snapshots.reset();
    sm.reset();
    log.reset();
    if (store) store->close().ignore();
    store.reset();
  }

  // Appends `entries` to the log, then applies them.
  void write(const std::vector<kv_entry>& entries) {
    REQUIRE(log->append(entries).ok());
    REQUIRE(sm->apply(entries, kv_apply).ok());
  }
  void write(std::uint64_t term, std::uint64_t first, std::uint64_t count,
             const std::string& tag = "v") {
    write(puts(term, first, count, tag));
  }

  applied_state applied() const { return sm->applied_state().value(); }
  std::filesystem::path snapshot_dir() const { return snapshots->directory(); }
};

// The group's data_kv keys and their bytes as stored.
template <class B, class SM>
std::map<std::string, std::string> stored_data(storage<B>& s, const SM& sm) {
  std::map<std::string, std::string> out;
  auto it = s.new_iterator(column_family::data_kv);
  const std::string end = sm.data_end();
  for (it->seek(sm.data_key("")); it->valid() && it->key() < end; it->next())
    out.emplace(it->key(), it->value());
  REQUIRE(it->status().ok());
  return out;
}

template <class SM>
std::map<std::string, std::string> contents(const SM& sm) {
  std::map<std::string, std::string> out;
  auto keep = [&](std::string_view k, const stored_value& v) { out[std::string(k)] = v.data; };
  REQUIRE(sm.for_each(keep, 0).ok());
  return out;
}

// The names of the files in `dir`, sorted.
std::vector<std::string> files_in(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> snapshot_files(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  for (const auto& name : files_in(dir))
    if (name.ends_with(".seshat")) out.push_back(name);
  return out;
}

bool mentions(const status& s, std::string_view text) {
  return s.message().find(text) != std::string::npos;
}

std::string read_all(const snapshot_reader& reader, std::size_t chunk = 1 << 20) {
  std::string out;
  for (;;) {
    auto piece = reader.read_chunk(out.size(), chunk);
    REQUIRE(piece.ok());
    if (piece->empty()) return out;
    out += *piece;
  }
}

// Receives `bytes` as the snapshot `meta` in chunks of `chunk` bytes.
template <class M>
result<received_snapshot> receive(M& to, const raft_snapshot_meta& meta, std::string_view bytes,
                                  std::size_t chunk) {
  auto receiver = to.begin_receiving_snapshot(meta);
  if (!receiver.ok()) return receiver.status();
  for (std::size_t at = 0; at < bytes.size(); at += chunk)
    SESHAT_RETURN_IF_ERROR(receiver->write_chunk(at, bytes.substr(at, chunk)));
  return receiver->finish();
}

// Moves `from`'s bytes to `to` chunk by chunk through read_chunk.
template <class M>
result<received_snapshot> transfer(const raft_snapshot& from, M& to, std::size_t chunk) {
  auto receiver = to.begin_receiving_snapshot(from.meta);
  if (!receiver.ok()) return receiver.status();
  for (std::uint64_t at = 0; at < from.reader.size();) {
    auto piece = from.reader.read_chunk(at, chunk);
    if (!piece.ok()) return piece.status();
    SESHAT_RETURN_IF_ERROR(receiver->write_chunk(at, *piece));
    at += piece->size();
  }
  return receiver->finish();
}

// A snapshot file holding `records` under `meta` (whose size_bytes is set
// to the file's), well-formed as far as the encoder goes.
std::string craft(raft_snapshot_meta& meta,
                  const std::vector<std::pair<std::string, std::string>>& records) {
  detail::snapshot_encoder enc(meta);
  for (const auto& [k, v] : records) enc.add(k, v);
  enc.finish();
  std::string bytes;
  enc.drain(bytes);
  meta.size_bytes = bytes.size();
  return bytes;
}

// `bytes` with its trailing checksum recomputed.
std::string reseal(std::string bytes) {
  bytes.resize(bytes.size() - 4);
  detail::put_u32(bytes, detail::crc32c(bytes));
  return bytes;
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("raft snapshots", B, raft_snapshots) {
  scratch_dir dir_a, dir_b;

  SUBCASE("build writes the group's data, applied log id and membership into one checksummed "
          "file") {
    node<B> a(dir_a.store());
    a.write(1, 1, 20);
    a.write({{1, 21, "members", ""}});
    auto other = group_sm<B>::open(*a.store, data_shard{8}).value();
    REQUIRE(other.apply(puts(1, 1, 3, "other-"), kv_apply).ok());

    const raft_snapshot_meta meta = a.snapshots->build_snapshot().value();
    CHECK(meta.last_log_id == log_id{1, 21});
    CHECK(meta.membership == membership{log_id{1, 21}, {1, 2, 3}, {4}});
    CHECK(meta.shard == k_group);
    CHECK(meta.snapshot_id == "1-21-1");
    CHECK(a.snapshot_dir() == dir_a.path() / "store.snapshots" / "7");
    CHECK(files_in(a.snapshot_dir()) ==
          std::vector<std::string>{"snapshot-00000000000000000001.seshat"});
    CHECK(std::filesystem::file_size(a.snapshot_dir() / "snapshot-00000000000000000001.seshat") ==
          meta.size_bytes);

    const auto current = a.snapshots->get_current_snapshot().value();
    REQUIRE(current.has_value());
    CHECK(current->meta == meta);
    CHECK(current->reader.size() == meta.size_bytes);
    const std::string bytes = read_all(current->reader, 4096);
    CHECK(bytes.size() == meta.size_bytes);
    CHECK(bytes.starts_with("SESHSNAP"));
    CHECK(detail::get_u32(std::string_view(bytes).substr(bytes.size() - 4)) ==
          detail::crc32c(std::string_view(bytes).substr(0, bytes.size() - 4)));
    // Only group 7's keys: k1..k20, not group 8's.
    CHECK(bytes.find(a.sm->data_key("k20")) != std::string::npos);
    CHECK(bytes.find(other.data_key("k1")) == std::string::npos);
    CHECK(current->reader.read_chunk(meta.size_bytes, 10).value().empty());
    CHECK(current->reader.read_chunk(meta.size_bytes + 1, 10).status().is(errc::invalid_argument));
  }

  SUBCASE("a store with no snapshot has no current snapshot; an empty state machine snapshots "
          "too") {
    node<B> a(dir_a.store());
    CHECK_FALSE(a.snapshots->get_current_snapshot().value().has_value());
    const raft_snapshot_meta meta = a.snapshots->build_snapshot().value();
    CHECK_FALSE(meta.last_log_id.has_value());
    CHECK(meta.snapshot_id == "none-1");
    CHECK(meta.size_bytes == detail::k_min_snapshot_bytes + meta.snapshot_id.size());
    node<B> b(dir_b.store());
    auto received = transfer(*a.snapshots->get_current_snapshot().value(), *b.snapshots, 16);
    REQUIRE(received.ok());
    REQUIRE(b.snapshots->install_snapshot(meta, *received).ok());
    CHECK(b.applied() == applied_state{});
    CHECK(b.log->get_log_state() == log_state{});
  }

  SUBCASE("a snapshot moves in chunks of any size to a second store, which then holds the same "
          "state machine, applied state and log state") {
    node<B> a(dir_a.store());
    a.write(1, 1, 40);
    a.write({{2, 41, "members", ""}, {2, 42, "k3", ""}});
    a.write(2, 43, 18, std::string(300, 'x'));
    const raft_snapshot_meta meta = a.snapshots->build_snapshot().value();
    REQUIRE(meta.last_log_id == log_id{2, 60});
    const auto source = a.snapshots->get_current_snapshot().value();
    const std::string source_bytes = read_all(source->reader);

    for (std::size_t chunk : {std::size_t{4096}, std::size_t{1}, std::size_t{7},
                              std::size_t{1} << 20}) {
      CAPTURE(chunk);
      scratch_dir dir_c;
      node<B> b(dir_c.store());
      b.write(1, 1, 5, "old-");
      b.write({{1, 6, "stale", "only here"}});
      // Other groups of the same store, which the install must not touch.
      auto other = group_sm<B>::open(*b.store, data_shard{8}).value();
      REQUIRE(other.apply(puts(1, 1, 3, "other-"), kv_apply).ok());
      auto sys = state_machine_store<kv_entry, B>::open(*b.store).value();
      REQUIRE(sys.apply(puts(4, 9, 2, "sys-"), kv_apply).ok());
      const auto other_before = stored_data(*b.store, other);
      const auto sys_before = stored_data(*b.store, sys);

      auto received = transfer(*source, *b.snapshots, chunk);
      REQUIRE(received.ok());
      CHECK(received->meta() == meta);
      REQUIRE(b.snapshots->install_snapshot(meta, *received).ok());
      CHECK_FALSE(static_cast<bool>(*received));

      CHECK(stored_data(*b.store, *b.sm) == stored_data(*a.store, *a.sm));
      CHECK(contents(*b.sm) == contents(*a.sm));
      CHECK(b.sm->get("stale").status().is(errc::not_found));
      CHECK(b.sm->get("k3").status().is(errc::not_found));
      CHECK(b.applied() == a.applied());
      CHECK(b.applied().membership == membership{log_id{2, 41}, {1, 2, 3}, {4}});
      CHECK(b.log->get_log_state() == log_state{log_id{2, 60}, log_id{2, 60}});
      CHECK(stored_data(*b.store, other) == other_before);
      CHECK(stored_data(*b.store, sys) == sys_before);
      // The installed snapshot is b's current one, byte for byte, and b goes on.
      const auto kept = b.snapshots->get_current_snapshot().value();
      REQUIRE(kept.has_value());
      CHECK(kept->meta == meta);
      CHECK(read_all(kept->reader) == source_bytes);
      b.write(2, 61, 1);
      CHECK(b.sm->get("k61").value().data == "v61");
      // What b installed survives a reopen.
      b.close();
      b.open();
      CHECK(b.applied().last_applied == log_id{2, 61});
      CHECK(b.log->get_log_state() == log_state{log_id{2, 60}, log_id{2, 61}});
      CHECK(b.snapshots->get_current_snapshot().value()->meta == meta);
    }
  }

  SUBCASE("install purges the log up to the snapshot when the log holds its last entry with the "
          "same term") {
    node<B> a(dir_a.store());
    a.write(1, 1, 40);
    const raft_snapshot_meta meta = a.snapshots->build_snapshot().value();
    node<B> b(dir_b.store());
    REQUIRE(b.log->append(puts(1, 1, 50)).ok());
    REQUIRE(b.sm->apply(puts(1, 1, 20), kv_apply).ok());

    auto received = transfer(*a.snapshots->get_current_snapshot().value(), *b.snapshots, 4096);
    REQUIRE(received.ok());
    REQUIRE(b.snapshots->install_snapshot(meta, *received).ok());
    CHECK(b.log->get_log_state() == log_state{log_id{1, 40}, log_id{1, 50}});
    CHECK(b.log->entries(40, 41).status().is(errc::compacted));
    const auto rest = b.log->entries(41, 51).value();
    CHECK(rest.size() == 10);
    CHECK(b.applied().last_applied == log_id{1, 40});
    CHECK(contents(*b.sm) == contents(*a.sm));
    REQUIRE(b.sm->apply(rest, kv_apply).ok());
    CHECK(b.sm->get("k50").value().data == "v50");
  }

  SUBCASE("install resets the log when it lacks the snapshot's last entry") {
    node<B> a(dir_a.store());
    a.write(1, 1, 40);
    const raft_snapshot_meta meta = a.snapshots->build_snapshot().value();
    node<B> b(dir_b.store());
    b.write(1, 1, 10);
    auto received = transfer(*a.snapshots->get_current_snapshot().value(), *b.snapshots, 4096);
    REQUIRE(received.ok());
    REQUIRE(b.snapshots->install_snapshot(meta, *received).ok());
    CHECK(b.log->get_log_state() == log_state{log_id{1, 40}, log_id{1, 40}});
    CHECK(b.log->entries(10, 11).status().is(errc::compacted));
    CHECK(b.log->term_at(40).value() == 1u);
    CHECK(b.log->append(puts(1, 41, 1)).ok());
  }

  SUBCASE("install resets the log when it holds another term at the snapshot's last index") {
    node<B> a(dir_a.store());
    a.write(1, 1, 30);
    a.write(3, 31, 10);
    const raft_snapshot_meta meta = a.snapshots->build_snapshot().value();
    REQUIRE(meta.last_log_id == log_id{3, 40});
    node<B> b(dir_b.store());
    b.write(1, 1, 30);
    REQUIRE(b.log->append(puts(2, 31, 15)).ok());  // uncommitted entries of a deposed leader
    auto received = transfer(*a.snapshots->get_current_snapshot().value(), *b.snapshots, 4096);
    REQUIRE(received.ok());
    REQUIRE(b.snapshots->install_snapshot(meta, *received).ok());
    CHECK(b.log->get_log_state() == log_state{log_id{3, 40}, log_id{3, 40}});
    CHECK(b.log->term_at(40).value() == 3u);
    CHECK(b.log->entries(41, 42).status().is(errc::unavailable));
    CHECK(contents(*b.sm) == contents(*a.sm));
  }

  SUBCASE("a snapshot older than the applied state is refused and changes nothing") {
    node<B> a(dir_a.store());
    a.write(1, 1, 20);
    const raft_snapshot_meta meta = a.snapshots->build_snapshot().value();
    const auto source = a.snapshots->get_current_snapshot().value();

    node<B> ahead(dir_b.store());
    ahead.write(1, 1, 30);
    auto early = ahead.snapshots->begin_receiving_snapshot(meta);
    CHECK(early.status().is(errc::snapshot_failed));
    CHECK(mentions(early.status(), "before the applied (term 1, index 30)"));

    scratch_dir dir_c;
    node<B> behind(dir_c.store());
    behind.write(1, 1, 10);
    auto received = transfer(*source, *behind.snapshots, 4096);
    REQUIRE(received.ok());
    behind.write(1, 11, 20);  // applies meanwhile overtake it
    const auto before = dump(*behind.store);
    status late = behind.snapshots->install_snapshot(meta, *received);
    CHECK(late.is(errc::snapshot_failed));
    CHECK(mentions(late, "before the applied (term 1, index 30)"));
    CHECK(dump(*behind.store) == before);
    CHECK(behind.applied().last_applied == log_id{1, 30});
    CHECK(behind.log->get_log_state() == log_state{std::nullopt, log_id{1, 30}});
    CHECK(snapshot_files(behind.snapshot_dir()).empty());
  }

  SUBCASE("retention keeps the two latest snapshots, and a live reader keeps an older one until "
          "it goes") {
    node<B> a(dir_a.store());
    for (std::uint64_t i = 0; i < 3; ++i) {
      a.write(1, 10 * i + 1, 10);
      REQUIRE(a.snapshots->build_snapshot().ok());
    }
    CHECK(snapshot_files(a.snapshot_dir()) ==
          std::vector<std::string>{"snapshot-00000000000000000002.seshat",
                                   "snapshot-00000000000000000003.seshat"});

    std::optional<raft_snapshot> held = a.snapshots->get_current_snapshot().value();
    REQUIRE(held.has_value());
    CHECK(held->meta.snapshot_id == "1-30-3");
    a.write(1, 31, 10);
    REQUIRE(a.snapshots->build_snapshot().ok());
    a.write(1, 41, 10);
    const raft_snapshot_meta latest = a.snapshots->build_snapshot().value();
    CHECK(snapshot_files(a.snapshot_dir()) ==
          std::vector<std::string>{"snapshot-00000000000000000003.seshat",
                                   "snapshot-00000000000000000004.seshat",
                                   "snapshot-00000000000000000005.seshat"});
    CHECK(a.snapshots->get_current_snapshot().value()->meta == latest);
    // The held reader still reads its whole snapshot, which still installs.
    node<B> b(dir_b.store());
    auto received = transfer(*held, *b.snapshots, 1000);
    REQUIRE(received.ok());
    REQUIRE(b.snapshots->install_snapshot(held->meta, *received).ok());
    CHECK(b.applied().last_applied == log_id{1, 30});
    held.reset();
    CHECK(snapshot_files(a.snapshot_dir()) ==
          std::vector<std::string>{"snapshot-00000000000000000004.seshat",
                                   "snapshot-00000000000000000005.seshat"});

    // Reopened, the manager finds the same two and counts on; it deletes
    // what a crash could leave: temporary files, a third snapshot.
    const auto snapshot_dir = a.snapshot_dir();
    a.close();
    for (const char* name : {"snapshot-00000000000000000009.seshat.tmp",
                             "receive-00000000000000000010.tmp",
                             "snapshot-00000000000000000001.seshat"})
      REQUIRE(detail::write_file_durably(snapshot_dir / name, "debris").ok());
    a.open();
    CHECK(snapshot_files(a.snapshot_dir()) ==
          std::vector<std::string>{"snapshot-00000000000000000004.seshat",
                                   "snapshot-00000000000000000005.seshat"});
    CHECK(files_in(a.snapshot_dir()).size() == 2);
    CHECK(a.snapshots->get_current_snapshot().value()->meta == latest);
    CHECK(a.snapshots->build_snapshot().value().snapshot_id == "1-50-6");
    CHECK(snapshot_files(a.snapshot_dir()).size() == 2);

    // A newest snapshot whose header does not read is set aside, not used,
    // and costs no good snapshot: the two readable ones stay.
    a.close();
    REQUIRE(detail::write_file_durably(snapshot_dir / "snapshot-00000000000000000009.seshat",
                                       "damaged").ok());
    a.open();
    CHECK(files_in(a.snapshot_dir()) ==
          std::vector<std::string>{"snapshot-00000000000000000005.seshat",
                                   "snapshot-00000000000000000006.seshat",
                                   "snapshot-00000000000000000009.seshat.damaged"});
    CHECK(a.snapshots->get_current_snapshot().value()->meta.snapshot_id == "1-50-6");
    CHECK(a.snapshots->build_snapshot().value().snapshot_id == "1-50-10");
  }

  SUBCASE("the trigger policy decides when a build is due") {
    node<B> a(dir_a.store(), {}, snapshot_trigger{10, 0});
    auto due = [&] {
      return a.snapshots->maybe_build(a.snapshots->entries_since_snapshot().value(), 0).value();
    };
    a.write(1, 1, 5);
    CHECK(a.snapshots->entries_since_snapshot().value() == 5);
    CHECK_FALSE(due().has_value());
    CHECK(snapshot_files(a.snapshot_dir()).empty());
    a.write(1, 6, 6);
    const auto built = due();
    REQUIRE(built.has_value());
    CHECK(built->last_log_id == log_id{1, 11});
    CHECK(a.snapshots->entries_since_snapshot().value() == 0);
    CHECK(snapshot_files(a.snapshot_dir()).size() == 1);
    a.write(1, 12, 9);
    CHECK_FALSE(due().has_value());
    a.write(1, 21, 1);
    CHECK(due()->last_log_id == log_id{1, 21});

    scratch_dir dir_c;
    node<B> by_bytes(dir_c.store(), {}, snapshot_trigger{0, 1000});
    by_bytes.write(1, 1, 3);
    CHECK_FALSE(by_bytes.snapshots->maybe_build(1'000'000, 999).value().has_value());
    CHECK(by_bytes.snapshots->maybe_build(0, 1000).value()->last_log_id == log_id{1, 3});
  }

  SUBCASE("bad input is refused with snapshot-failed naming the problem, and changes nothing") {
    node<B> a(dir_a.store());
    a.write(1, 1, 30);
    a.write({{1, 31, "members", ""}});
    const raft_snapshot_meta meta = a.snapshots->build_snapshot().value();
    const std::string bytes = read_all(a.snapshots->get_current_snapshot().value()->reader);
    node<B> b(dir_b.store());
    b.write(1, 1, 5, "old-");
    auto other = group_sm<B>::open(*b.store, data_shard{8}).value();
    REQUIRE(other.apply(puts(1, 1, 3, "other-"), kv_apply).ok());
    const auto before = dump(*b.store);
    const auto files_before = files_in(b.snapshot_dir());
    const applied_state applied_before = b.applied();
    auto unchanged = [&] {
      CHECK(dump(*b.store) == before);
      CHECK(files_in(b.snapshot_dir()) == files_before);
      CHECK(b.applied() == applied_before);
      CHECK(b.log->get_log_state() == log_state{std::nullopt, log_id{1, 5}});
    };
    auto refused = [&](const status& s, std::string_view text) {
      CAPTURE(s.to_string());
      CHECK(s.is(errc::snapshot_failed));
      CHECK(mentions(s, text));
      unchanged();
    };
    // The whole pipeline for bytes and meta; the status of the first refusal.
    auto install = [&](const raft_snapshot_meta& m, std::string_view data, std::size_t chunk = 4096) {
      auto received = receive(*b.snapshots, m, data, chunk);
      if (!received.ok()) return received.status();
      return b.snapshots->install_snapshot(m, *received);
    };

    SUBCASE("a flipped byte") {
      // In a record, in the count, in the checksum, in the meta.
      const std::size_t n = bytes.size();
      for (std::size_t at : {n / 2, n - 6, n - 2, std::size_t{40}}) {
        CAPTURE(at);
        std::string flipped = bytes;
        flipped[at] ^= 0x10;
        refused(install(meta, flipped), "checksum mismatch");
      }
    }
    SUBCASE("a truncated chunk stream") {
      auto receiver = b.snapshots->begin_receiving_snapshot(meta).value();
      REQUIRE(receiver.write_chunk(0, std::string_view(bytes).substr(0, bytes.size() - 10)).ok());
      auto finished = receiver.finish();
      refused(finished.status(), "truncated: received " + std::to_string(bytes.size() - 10) +
                                     " of " + std::to_string(bytes.size()) + " bytes");
      CHECK(mentions(receiver.finish().status(), "abandoned"));
    }
    SUBCASE("chunks out of order") {
      auto receiver = b.snapshots->begin_receiving_snapshot(meta).value();
      REQUIRE(receiver.write_chunk(0, std::string_view(bytes).substr(0, 100)).ok());
      status skipped = receiver.write_chunk(200, std::string_view(bytes).substr(200, 100));
      refused(skipped, "chunk out of order: expected offset 100, got 200");
      status later = receiver.write_chunk(100, std::string_view(bytes).substr(100, 100));
      CHECK(later.is(errc::snapshot_failed));
      CHECK(mentions(later, "abandoned"));
      CHECK(mentions(receiver.finish().status(), "abandoned"));
      unchanged();

      auto again = b.snapshots->begin_receiving_snapshot(meta).value();
      REQUIRE(again.write_chunk(0, std::string_view(bytes).substr(0, 100)).ok());
      refused(again.write_chunk(0, std::string_view(bytes).substr(0, 100)),
              "chunk out of order: expected offset 100, got 0");
    }
    SUBCASE("an extra byte") {
      auto receiver = b.snapshots->begin_receiving_snapshot(meta).value();
      REQUIRE(receiver.write_chunk(0, bytes).ok());
      refused(receiver.write_chunk(bytes.size(), "x"), "runs past the snapshot's size");
      refused(install(meta, bytes + "x", bytes.size() + 1), "runs past the snapshot's size");
      // Counted in the meta, but not in the grammar.
      raft_snapshot_meta longer = meta;
      longer.size_bytes += 1;
      std::string padded = bytes;
      padded.insert(padded.size() - 4, "x");
      refused(install(longer, reseal(padded)), "1 bytes follow the record count");
    }
    SUBCASE("meta that disagrees with its data") {
      raft_snapshot_meta later = meta;
      later.last_log_id = log_id{1, 32};
      refused(install(later, bytes), "meta disagrees with its data: last log id (term 1, index 31) "
                                     "in the file, (term 1, index 32) given");
      raft_snapshot_meta renamed = meta;
      renamed.snapshot_id = "1-31-99";
      refused(install(renamed, bytes), "snapshot id '1-31-1' in the file, '1-31-99' given");
      raft_snapshot_meta members = meta;
      members.membership.voters = {1, 2};
      refused(install(members, bytes), "membership");
      raft_snapshot_meta elsewhere = meta;
      elsewhere.shard = 8;
      refused(install(elsewhere, bytes), "it is a snapshot of shard 8");
      raft_snapshot_meta shorter = meta;
      shorter.size_bytes = 10;
      refused(install(shorter, bytes.substr(0, 10)), "below the smallest snapshot");
      // install_snapshot with a meta other than the received one's.
      std::optional<received_snapshot> received = receive(*b.snapshots, meta, bytes, 4096).value();
      status other_meta = b.snapshots->install_snapshot(later, *received);
      received.reset();  // deletes its file
      refused(other_meta, "not the received snapshot's");
    }
    SUBCASE("a record whose key is outside the group") {
      raft_snapshot_meta m = meta;
      const std::string good = stored_value{1, "x", 0, std::nullopt}.encode();
      const std::string data = craft(
          m, {{b.sm->data_key("a"), good}, {other.data_key("b"), good}});
      refused(install(m, data), "is not a data key of this group");
      raft_snapshot_meta m2 = meta;
      refused(install(m2, craft(m2, {{"k1", good}})), "'k1' is not a data key of this group");
    }
    SUBCASE("records out of order, a value that does not decode, a wrong count") {
      const std::string good = stored_value{1, "x", 0, std::nullopt}.encode();
      raft_snapshot_meta m = meta;
      std::string data = craft(m, {{b.sm->data_key("b"), good}, {b.sm->data_key("a"), good}});
      refused(install(m, data), "does not sort after");
      data = craft(m, {{b.sm->data_key("a"), good}, {b.sm->data_key("a"), good}});
      refused(install(m, data), "does not sort after");
      data = craft(m, {{b.sm->data_key("a"), envelope::wrap("not a stored value")}});
      refused(install(m, data), "does not decode");
      data = craft(m, {{b.sm->data_key("a"), good}});
      data[data.size() - 12] = 2;  // the count's low byte
      refused(install(m, reseal(data)), "the file counts 2 records, it holds 1");
    }
    SUBCASE("a bad magic or a newer format version") {
      std::string magic = bytes;
      magic[0] = 'X';
      refused(install(meta, magic), "bad magic");
      std::string newer = bytes;
      newer[8] = 2;
      refused(install(meta, reseal(newer)), "snapshot format version 2, this seshat reads 1");
    }
  }

  SUBCASE("open makes the log agree with the applied state after an install a crash "
          "interrupted") {
    node<B> a(dir_a.store());
    a.write(1, 1, 30);
    a.write(2, 31, 10);
    const auto source = stored_data(*a.store, *a.sm);
    node<B> b(dir_b.store());
    b.write(1, 1, 10);
    // The state machine half of an install, as a crash would leave it.
    REQUIRE(b.sm->replace_all(a.applied(), [&](auto& put) {
                  for (const auto& [k, v] : source) SESHAT_RETURN_IF_ERROR(put(k, v));
                  return status{};
                })
                .ok());
    CHECK(b.log->get_log_state() == log_state{std::nullopt, log_id{1, 10}});
    b.close();
    b.open();
    CHECK(b.applied().last_applied == log_id{2, 40});
    CHECK(b.log->get_log_state() == log_state{log_id{2, 40}, log_id{2, 40}});
    CHECK(stored_data(*b.store, *b.sm) == source);
    // A log that holds the applied entry is left alone.
    const auto log_before = a.log->get_log_state();
    a.close();
    a.open();
    CHECK(a.log->get_log_state() == log_before);
  }

  SUBCASE("replace_all refuses an older state and keys outside the group, writing nothing") {
    node<B> a(dir_a.store());
    a.write(1, 1, 10);
    const auto before = dump(*a.store);
    status older = a.sm->replace_all(applied_state{log_id{1, 9}, {}},
                                     [](auto&) { return status{}; });
    CHECK(older.is(errc::snapshot_failed));
    CHECK(mentions(older, "older than the applied"));
    status outside = a.sm->replace_all(applied_state{log_id{1, 10}, {}}, [](auto& put) {
      return put("elsewhere", stored_value{}.encode());
    });
    CHECK(outside.is(errc::invalid_argument));
    CHECK(dump(*a.store) == before);
    CHECK(a.applied().last_applied == log_id{1, 10});
  }

  SUBCASE("the system group's snapshots, with decimal keys, in a directory of one's choosing") {
    using sys_sm = state_machine_store<kv_entry, B, system_shard, decimal_key_format>;
    using sys_log = log_store<kv_entry, boost_serializer, B, system_shard, decimal_key_format>;
    using sys_snapshots =
        snapshot_manager<kv_entry, boost_serializer, B, system_shard, decimal_key_format>;
    auto sa = open_store<B>(dir_a.store());
    auto la = std::move(sys_log::open(*sa).value());
    auto ma = sys_sm::open(*sa).value();
    const auto chosen = dir_a.path() / "my-snapshots";
    auto snaps_a = std::move(sys_snapshots::open(ma, *la, {chosen}).value());
    REQUIRE(la->append(puts(1, 1, 25)).ok());
    REQUIRE(ma.apply(puts(1, 1, 25), kv_apply).ok());
    const raft_snapshot_meta meta = snaps_a->build_snapshot().value();
    CHECK(meta.shard == k_system_shard);
    CHECK(snapshot_files(chosen).size() == 1);

    auto sb = open_store<B>(dir_b.store());
    auto lb = std::move(sys_log::open(*sb).value());
    auto mb = sys_sm::open(*sb).value();
    auto snaps_b = std::move(sys_snapshots::open(mb, *lb).value());
    auto received = transfer(*snaps_a->get_current_snapshot().value(), *snaps_b, 333);
    REQUIRE(received.ok());
    REQUIRE(snaps_b->install_snapshot(meta, *received).ok());
    CHECK(contents(mb) == contents(ma));
    CHECK(mb.applied_state().value() == ma.applied_state().value());
    CHECK(lb->get_log_state() == log_state{log_id{1, 25}, log_id{1, 25}});
    CHECK(snapshot_files(dir_b.path() / "store.snapshots" / "0").size() == 1);
  }
}

TEST_CASE_TEMPLATE_INVOKE(raft_snapshots, SESHAT_ALL_BACKENDS, SESHAT_SEGMENTED_BACKENDS);

TEST_CASE("a crash in the middle of install leaves the old state machine or the new one, never a "
          "mixture") {
  scratch_dir dir_a, dir_b;
  node<memory_backend> a(dir_a.store());
  a.write(1, 1, 30);
  a.write({{1, 31, "members", ""}});
  const raft_snapshot_meta meta = a.snapshots->build_snapshot().value();
  const auto records = stored_data(*a.store, *a.sm);
  REQUIRE(records.size() == 30);

  node<memory_backend> b(dir_b.store());
  b.write(1, 1, 5, "old-");
  b.write({{1, 6, "stale", "x"}});
  const auto before = dump(*b.store);
  const applied_state applied_before = b.applied();
  auto received = transfer(*a.snapshots->get_current_snapshot().value(), *b.snapshots, 4096);
  REQUIRE(received.ok());

  // The batch: one del_range, 30 puts, the applied id and the membership.
  const std::size_t ops = records.size() + 3;
  for (std::size_t applied : {std::size_t{0}, std::size_t{1}, ops / 2, ops - 1}) {
    CAPTURE(applied);
    b.store->backend().inject_write_failure(applied);
    status failed = b.snapshots->install_snapshot(meta, *received);
    CHECK(failed.is(errc::io_error));
    CHECK(dump(*b.store) == before);
    CHECK(b.applied() == applied_before);
    CHECK(static_cast<bool>(*received));  // still there to retry
    // Its file is back under its temporary name, not kept as a snapshot.
    CHECK(snapshot_files(b.snapshot_dir()).empty());
    const auto names = files_in(b.snapshot_dir());
    CHECK(names.size() == 1);
    CHECK(names.front().starts_with("receive-"));
    b.store->backend().drop_unsynced();
    CHECK(dump(*b.store) == before);
  }

  REQUIRE(b.snapshots->install_snapshot(meta, *received).ok());
  const auto after = dump(*b.store);
  CHECK(after != before);
  b.store->backend().drop_unsynced();  // a power loss right after install
  const auto survived = dump(*b.store);
  CHECK(survived == after);
  b.close();
  b.open();
  CHECK(b.applied() == a.applied());
  CHECK(stored_data(*b.store, *b.sm) == records);
  CHECK(b.log->get_log_state() == log_state{log_id{1, 31}, log_id{1, 31}});
}

TEST_CASE_TEMPLATE_DEFINE("after a crash at any step of install, the reopened node serves the "
                          "snapshot its state machine came from, and its log agrees",
                          B, install_crash) {
  scratch_dir dir_a;
  node<B> a(dir_a.store());
  a.write(1, 1, 30);
  a.write(2, 31, 10);
  const raft_snapshot_meta meta = a.snapshots->build_snapshot().value();
  const auto source = a.snapshots->get_current_snapshot().value();
  const std::string source_bytes = read_all(source->reader);
  const auto records = stored_data(*a.store, *a.sm);

  using detail::install_step;
  for (bool log_holds_it : {false, true}) {
    for (install_step step :
         {install_step::file_kept, install_step::state_replaced, install_step::log_fixed}) {
      CAPTURE(log_holds_it);
      CAPTURE(static_cast<int>(step));
      scratch_dir dir_b;
      node<B> b(dir_b.store());
      b.write(1, 1, 5, "old-");
      // A log that holds the snapshot's last entry (and more), or one that
      // ends before it.
      if (log_holds_it) {
        REQUIRE(b.log->append(puts(1, 6, 25)).ok());
        REQUIRE(b.log->append(puts(2, 31, 20)).ok());
      }
      {
        auto received = transfer(*source, *b.snapshots, 4096);
        REQUIRE(received.ok());
        detail::install_crash_seam<group_snapshots<B>>::stop_after(*b.snapshots, step);
        status stopped = b.snapshots->install_snapshot(meta, *received);
        CHECK(mentions(stopped, "a simulated crash"));
      }
      // The power goes: what was not synced is lost (the memory backend
      // models it; the disk engines lose nothing that seshat synced).
      if constexpr (std::is_same_v<B, memory_backend>) b.store->backend().drop_unsynced();
      b.close();
      b.open();

      const applied_state applied = b.applied();
      CHECK(applied == a.applied());
      CHECK(stored_data(*b.store, *b.sm) == records);
      const auto current = b.snapshots->get_current_snapshot().value();
      REQUIRE(current.has_value());
      CHECK(current->meta == meta);
      CHECK(current->meta.last_log_id == applied.last_applied);
      CHECK(read_all(current->reader) == source_bytes);
      CHECK(files_in(b.snapshot_dir()).size() == 1);
      // The log agrees with the applied state: purged up to it, or holding it.
      const log_state log = b.log->get_log_state();
      if (!log_holds_it) {
        CHECK(log == log_state{log_id{2, 40}, log_id{2, 40}});
      } else {
        CHECK(log.last == log_id{2, 50});
        CHECK(b.log->term_at(40).value() == 2u);
        CHECK((log.last_purged == std::nullopt || log.last_purged == log_id{2, 40}));
        if (log.last_purged) CHECK(b.log->entries(40, 41).status().is(errc::compacted));
      }
      // b goes on from there.
      const std::vector<kv_entry> next = log_holds_it ? b.log->entries(41, 42).value()
                                                      : puts(2, 41, 1);
      if (!log_holds_it) REQUIRE(b.log->append(next).ok());
      REQUIRE(b.sm->apply(next, kv_apply).ok());
      CHECK(b.sm->get("k41").value().data == "v41");
    }
  }
}

TEST_CASE_TEMPLATE_INVOKE(install_crash, SESHAT_ALL_BACKENDS, SESHAT_SEGMENTED_BACKENDS);

TEST_CASE_TEMPLATE_DEFINE("open sets aside a kept snapshot past the applied state whose records do "
                          "not read, and keeps the state machine it has",
                          B, install_unreadable) {
  scratch_dir dir_a;
  node<B> a(dir_a.store());
  a.write(1, 1, 10);
  const raft_snapshot_meta older = a.snapshots->build_snapshot().value();
  const auto before = stored_data(*a.store, *a.sm);
  // What an interrupted install would leave, with a damaged record: a
  // header that reads, at (2, 40), and a checksum that does not match.
  raft_snapshot_meta meta = older;
  meta.last_log_id = log_id{2, 40};
  meta.snapshot_id = "2-40-7";
  const std::string good = stored_value{1, "x", 0, std::nullopt}.encode();
  std::string bytes = craft(meta, {{a.sm->data_key("a"), good}});
  bytes[bytes.size() - 20] ^= 0x10;
  const auto dir = a.snapshot_dir();
  a.close();
  const auto damaged = dir / "snapshot-00000000000000000007.seshat";
  REQUIRE(detail::write_file_durably(damaged, bytes).ok());
  a.open();

  CHECK(files_in(dir) == std::vector<std::string>{"snapshot-00000000000000000001.seshat",
                                                  "snapshot-00000000000000000007.seshat.damaged"});
  CHECK(a.applied().last_applied == log_id{1, 10});
  CHECK(stored_data(*a.store, *a.sm) == before);
  CHECK(a.log->get_log_state() == log_state{std::nullopt, log_id{1, 10}});
  CHECK(a.snapshots->get_current_snapshot().value()->meta == older);
}

TEST_CASE_TEMPLATE_INVOKE(install_unreadable, SESHAT_ALL_BACKENDS, SESHAT_SEGMENTED_BACKENDS);

TEST_CASE_TEMPLATE_DEFINE("open renames a snapshot whose header does not read '<name>.damaged', "
                          "never uses it, keeps the two latest readable ones, and fails only "
                          "when it cannot rename it",
                          B, open_damaged) {
  scratch_dir dir_a;
  node<B> a(dir_a.store());
  raft_snapshot_meta second;
  for (std::uint64_t i = 0; i < 2; ++i) {
    a.write(1, 10 * i + 1, 10);
    second = a.snapshots->build_snapshot().value();
  }
  const auto dir = a.snapshot_dir();
  const std::string third = "snapshot-00000000000000000003.seshat";
  a.close();
  REQUIRE(detail::write_file_durably(dir / third, "not a snapshot").ok());
  a.open();
  const std::vector<std::string> expected{"snapshot-00000000000000000001.seshat",
                                          "snapshot-00000000000000000002.seshat",
                                          third + ".damaged"};
  CHECK(files_in(dir) == expected);
  CHECK(a.snapshots->get_current_snapshot().value()->meta == second);
  // A later open leaves the set-aside file alone; seqs go on past it.
  a.close();
  a.open();
  CHECK(files_in(dir) == expected);
  CHECK(a.snapshots->build_snapshot().value().snapshot_id == "1-20-4");

  // When the rename fails (here a non-empty directory holds the name), open
  // fails with the snapshot's error and says why it could not set it aside.
  a.close();
  const std::string fifth = "snapshot-00000000000000000005.seshat";
  REQUIRE(detail::write_file_durably(dir / fifth, "not a snapshot").ok());
  std::filesystem::create_directories(dir / (fifth + ".damaged") / "x");
  a.store = open_store<B>(a.dir);
  a.log = std::move(group_log<B>::open(*a.store, data_shard{k_group}).value());
  a.sm = std::make_unique<group_sm<B>>(group_sm<B>::open(*a.store, data_shard{k_group}).value());
  auto refused = group_snapshots<B>::open(*a.sm, *a.log);
  REQUIRE_FALSE(refused.ok());
  CAPTURE(refused.status().to_string());
  CHECK(refused.status().is(errc::snapshot_failed));
  CHECK(mentions(refused.status(), (dir / fifth).string()));
  CHECK(mentions(refused.status(), "bad magic"));
  CHECK(mentions(refused.status(), "(and it cannot be renamed: "));
}

TEST_CASE_TEMPLATE_INVOKE(open_damaged, SESHAT_ALL_BACKENDS, SESHAT_SEGMENTED_BACKENDS);

TEST_SUITE("concurrency") {

TEST_CASE_TEMPLATE_DEFINE("a build sees exactly the data of its applied log id while applies "
                          "continue",
                          B, build_while_applying) {
  scratch_dir dir_a, dir_b;
  node<B> a(dir_a.store());
  a.write(1, 1, 200);
  std::atomic<bool> failed{false};
  std::thread writer([&] {
    for (std::uint64_t first = 201; first <= 1200 && !failed; first += 10) {
      const auto batch = puts(1, first, 10);
      if (!a.log->append(batch).ok() || !a.sm->apply(batch, kv_apply).ok()) failed = true;
    }
  });
  std::vector<std::pair<raft_snapshot_meta, std::string>> built;
  for (int i = 0; i < 3; ++i) {
    auto meta = a.snapshots->build_snapshot();
    if (!meta.ok()) break;
    built.emplace_back(*meta, read_all(a.snapshots->get_current_snapshot().value()->reader));
  }
  writer.join();
  REQUIRE_FALSE(failed);
  REQUIRE(built.size() == 3);
  for (const auto& item : built) {
    const raft_snapshot_meta& meta = item.first;
    const std::string& bytes = item.second;
    CAPTURE(meta.snapshot_id);
    const std::uint64_t n = meta.last_log_id->index;
    CHECK(n % 10 == 0);
    // Every record of k1..kN, no other: parse the snapshot's bytes.
    const auto file = dir_b.path() / "copy";
    std::filesystem::create_directories(dir_b.path());
    REQUIRE(detail::write_file_durably(file, bytes).ok());
    auto parser = detail::snapshot_parser::open(file).value();
    REQUIRE(parser.preamble().ok());
    CHECK(parser.meta().value() == meta);
    std::map<std::string, std::string> seen;
    REQUIRE(parser
                .records(a.sm->data_key(""),
                         [&](std::string_view key, std::string_view stored) {
                           seen.emplace(key, stored_value::decode(stored, column_family::data_kv,
                                                                  key)
                                                 .value()
                                                 .data);
                           return status{};
                         })
                .ok());
    CHECK(seen.size() == n);
    CHECK(seen.count(a.sm->data_key("k" + std::to_string(n))) == 1);
    CHECK(seen.count(a.sm->data_key("k" + std::to_string(n + 1))) == 0);
  }
}

TEST_CASE_TEMPLATE_INVOKE(build_while_applying, SESHAT_ALL_BACKENDS, SESHAT_SEGMENTED_BACKENDS);

}  // TEST_SUITE("concurrency")

TEST_CASE("a group is named one way in the errors of its log, state machine and snapshots") {
  CHECK(describe(system_shard{}) == "system group");
  CHECK(describe(data_shard{42}) == "data shard 42");
  scratch_dir dir;
  auto s = open_store<memory_backend>(dir.store());
  using sys_sm = state_machine_store<kv_entry, memory_backend, system_shard>;
  using sys_log = log_store<kv_entry, boost_serializer, memory_backend, system_shard>;
  using sys_snapshots = snapshot_manager<kv_entry, boost_serializer, memory_backend, system_shard>;
  auto log = std::move(sys_log::open(*s).value());
  auto sm = sys_sm::open(*s).value();
  auto snaps = std::move(sys_snapshots::open(sm, *log).value());
  auto starts_with = [](const status& st, std::string_view prefix) {
    INFO(st.to_string());
    return st.message().starts_with(prefix);
  };
  // Each a refusal that names the group first.
  CHECK(starts_with(log->append(puts(1, 5, 1)), "system group: "));
  CHECK(starts_with(sm.get("absent").status(), "system group: "));
  raft_snapshot_meta other;
  other.shard = 9;
  other.size_bytes = 1000;
  CHECK(starts_with(snaps->begin_receiving_snapshot(other).status(), "system group: "));

  node<memory_backend> n(dir.path() / "group");
  CHECK(starts_with(n.log->append(puts(1, 5, 1)), "data shard 7: "));
  CHECK(starts_with(n.sm->get("absent").status(), "data shard 7: "));
  CHECK(starts_with(n.snapshots->begin_receiving_snapshot(other).status(), "data shard 7: "));
}

TEST_CASE("a file whose snapshot number does not fit 64 bits is not taken for a snapshot") {
  scratch_dir dir;
  node<memory_backend> n(dir.path() / "group");
  const auto odd = n.snapshot_dir() / "snapshot-99999999999999999999.seshat";
  {
    std::ofstream out(odd, std::ios::binary);
    out << "not a snapshot";
  }
  n.close();
  n.open();
  // Not seshat's name: left alone, not set aside as a damaged snapshot.
  CHECK(std::filesystem::exists(odd));
  CHECK(files_in(n.snapshot_dir()) == std::vector<std::string>{odd.filename().string()});
}

TEST_SUITE_END();  // "raft snapshots"
