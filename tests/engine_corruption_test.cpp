// Damaged engine files in a closed store (write-ahead log, table files,
// MANIFEST): on reopen and on read the result is a clear error or the exact
// data that was written, never a crash, never other bytes.
#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "log_entries.hpp"
#include "seshat/log_store.hpp"
#include "support.hpp"

TEST_SUITE_BEGIN("engine corruption");

using namespace seshat;
using seshat::test::make_entries;
using seshat::test::scratch_dir;
using seshat::test::text_entry;

namespace {

constexpr std::uint64_t k_entries = 300;

template <class B>
using test_log = log_store<text_entry, boost_serializer, B>;

// Writes k_entries durable entries; compacts them into table files when
// `to_tables`.
template <class B>
void write_store(const std::filesystem::path& dir, bool to_tables) {
  auto s = seshat::test::open_store<B>(dir);
  auto log = test_log<B>::open(*s).value();
  for (std::uint64_t i = 1; i <= k_entries; i += 50)
    REQUIRE(log->append(make_entries<text_entry>(1, i, 50)).ok());
  if (to_tables) REQUIRE(s->compact(column_family::system_raft_log).ok());
  log.reset();
  REQUIRE(s->close().ok());
}

// The largest file of `dir` whose name ends with one of `suffixes`.
std::filesystem::path largest(const std::filesystem::path& dir,
                              std::initializer_list<std::string_view> suffixes) {
  std::filesystem::path best;
  std::uintmax_t best_size = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    for (auto suffix : suffixes)
      if ((name.ends_with(suffix) || name.starts_with(suffix)) && e.file_size() > best_size) {
        best = e.path();
        best_size = e.file_size();
      }
  }
  return best;
}

void flip_byte(const std::filesystem::path& file, std::uintmax_t at) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  REQUIRE(f);
  f.seekg(static_cast<std::streamoff>(at));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5A);
  f.seekp(static_cast<std::streamoff>(at));
  f.write(&c, 1);
}

struct outcome {
  bool opened = false;
  std::uint64_t exact = 0;   // entries read back byte for byte
  std::uint64_t refused = 0; // reads that returned an error
};

// Reopens `dir` with `options`; every entry read must be exactly what was
// written (the check that matters), or an error.
template <class B>
outcome reopen_and_read(const std::filesystem::path& dir, const open_options& options) {
  outcome o;
  auto s = storage<B>::open(dir, options);
  if (!s.ok()) {
    MESSAGE(B::k_name << ": open refused: " << s.status().to_string());
    return o;
  }
  auto log = test_log<B>::open(**s);
  if (!log.ok()) {
    MESSAGE(B::k_name << ": log open refused: " << log.status().to_string());
    return o;
  }
  o.opened = true;
  for (std::uint64_t i = 1; i <= k_entries; ++i) {
    auto e = (*log)->entry_at(i);
    if (e.ok()) {
      CHECK(*e == make_entries<text_entry>(1, i, 1)[0]);
      ++o.exact;
    } else {
      ++o.refused;
    }
  }
  return o;
}

template <class B>
open_options with(recovery_mode mode) {
  open_options o;
  o.recovery = mode;
  return o;
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("damaged engine files", B, engine_corruption) {
  scratch_dir dir;

  SUBCASE("a flipped byte in the middle of the write-ahead log: absolute consistency refuses "
          "the open; tolerating the tail never returns other bytes") {
    write_store<B>(dir.store(), false);
    const auto wal = largest(dir.store(), {".log"});
    REQUIRE(!wal.empty());
    flip_byte(wal, std::filesystem::file_size(wal) / 2);
    const outcome strict = reopen_and_read<B>(dir.store(), with<B>(recovery_mode::absolute_consistency));
    CHECK_FALSE(strict.opened);
    const outcome lenient =
        reopen_and_read<B>(dir.store(), with<B>(recovery_mode::tolerate_corrupted_tail));
    MESSAGE(B::k_name << ": tolerant open " << std::string(lenient.opened ? "opened" : "refused") << ", "
                      << lenient.exact << " entries exact, " << lenient.refused << " refused");
  }

  SUBCASE("a write-ahead log cut in the middle of a record: the tail is dropped, the rest is "
          "exact") {
    write_store<B>(dir.store(), false);
    const auto wal = largest(dir.store(), {".log"});
    REQUIRE(!wal.empty());
    std::filesystem::resize_file(wal, std::filesystem::file_size(wal) * 2 / 3 + 3);
    const outcome o = reopen_and_read<B>(dir.store(), with<B>(recovery_mode::tolerate_corrupted_tail));
    REQUIRE(o.opened);
    CHECK(o.exact > 0);
    CHECK(o.exact < k_entries);
    CHECK(o.exact + o.refused == k_entries);
  }

  SUBCASE("a flipped byte in a table file: reads return the exact entry or an error") {
    write_store<B>(dir.store(), true);
    const auto table = largest(dir.store(), {".sst", ".ldb"});
    REQUIRE(!table.empty());
    flip_byte(table, std::filesystem::file_size(table) / 3);
    const outcome o = reopen_and_read<B>(dir.store(), {});
    if (o.opened) CHECK(o.refused > 0);
  }

  SUBCASE("a flipped byte in the MANIFEST: a clear error or the exact data, never other bytes") {
    write_store<B>(dir.store(), true);
    const auto manifest = largest(dir.store(), {"MANIFEST-"});
    REQUIRE(!manifest.empty());
    flip_byte(manifest, std::filesystem::file_size(manifest) / 2);
    const outcome o = reopen_and_read<B>(dir.store(), {});
    if (o.opened) CHECK(o.exact + o.refused == k_entries);
  }
}

// ---------------------------------------------------------------------------
// Power-loss images of the write-ahead log. After a power loss the synced
// prefix of a log is intact and what follows it may be lost, torn or
// reordered: the kernel writes an unsynced append page by page, in any order.
// An image is built from a real store: synced appends, then unsynced puts,
// the directory copied while the store is open (what a power loss could
// leave, before any page of the tail is lost), then the copy's newest log
// crafted: zeros over the pages after the synced prefix, the later pages
// kept; or a byte flipped inside the synced prefix.

namespace {

constexpr std::uint64_t k_synced_entries = 40;
constexpr std::uint64_t k_page = 4096;

// The newest write-ahead log of `dir` (the highest-numbered NNNNNN.log).
std::filesystem::path newest_log(const std::filesystem::path& dir) {
  std::filesystem::path best;
  std::uint64_t best_number = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (!name.ends_with(".log")) continue;
    const std::uint64_t n = std::strtoull(name.c_str(), nullptr, 10);
    if (best.empty() || n > best_number) {
      best = e.path();
      best_number = n;
    }
  }
  return best;
}

void write_zeros(const std::filesystem::path& file, std::uint64_t from, std::uint64_t to) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  REQUIRE(f);
  f.seekp(static_cast<std::streamoff>(from));
  const std::string zeros(to - from, '\0');
  f.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
  REQUIRE(f);
}

const vote k_vote{7, 3, true};
const log_id k_committed{1, 30};
const std::string k_big(100000, 'u');  // spans several 32 KiB log blocks

// What a copy of the store taken mid-write holds.
struct wal_image {
  std::filesystem::path log;   // the copy's newest write-ahead log
  std::uint64_t synced = 0;    // its size after the last synced write returned
};

// Writes k_synced_entries entries, a vote and a committed id (each durable
// when it returns), then two unsynced puts: "big" (k_big) and "later";
// copies the directory into `copy` while the store is open.
template <class B>
wal_image write_and_copy(const std::filesystem::path& dir, const std::filesystem::path& copy) {
  wal_image img;
  auto s = seshat::test::open_store<B>(dir);
  {
    auto log = test_log<B>::open(*s).value();
    for (std::uint64_t i = 1; i <= k_synced_entries; i += 10)
      REQUIRE(log->append(make_entries<text_entry>(1, i, 10)).ok());
    REQUIRE(log->save_vote(k_vote).ok());
    REQUIRE(log->save_committed(k_committed).ok());
    const auto live = newest_log(dir);
    REQUIRE(!live.empty());
    img.synced = std::filesystem::file_size(live);
    REQUIRE(s->put(column_family::system_data, "big", k_big).ok());
    REQUIRE(s->put(column_family::system_data, "later", "after big").ok());
    std::filesystem::copy(dir, copy, std::filesystem::copy_options::recursive);
    img.log = copy / live.filename();
  }
  REQUIRE(s->close().ok());
  return img;
}

// Opens the image at `dir` and checks that it holds everything that was
// acknowledged, and a prefix of what was not: "later" only with "big".
template <class B>
void check_acknowledged(const std::filesystem::path& dir) {
  auto opened = storage<B>::open(dir, {});
  REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
  auto& s = **opened;
  {
    auto log = test_log<B>::open(s).value();
    const log_state st = log->get_log_state();
    REQUIRE(st.last.has_value());
    CHECK(st.last->index == k_synced_entries);
    auto es = log->entries(1, k_synced_entries + 1);
    REQUIRE_MESSAGE(es.ok(), es.status().to_string());
    CHECK(*es == make_entries<text_entry>(1, 1, k_synced_entries));
    CHECK(log->read_vote().value() == k_vote);
    CHECK(log->read_committed().value() == k_committed);
  }
  const bool big = s.exists(column_family::system_data, "big").value();
  const bool later = s.exists(column_family::system_data, "later").value();
  CHECK_MESSAGE((!later || big), "the later unsynced put survived without the earlier one: a hole");
  // The store goes on: a synced write and a reopen.
  REQUIRE(s.put(column_family::system_data, "after", "reopen").ok());
  REQUIRE(s.sync_wal().ok());
  REQUIRE(s.close().ok());
  auto again = storage<B>::open(dir, {});
  REQUIRE_MESSAGE(again.ok(), again.status().to_string());
  CHECK((*again)->exists(column_family::system_data, "after").value());
}

template <class B>
void check_refused(const std::filesystem::path& dir, const std::filesystem::path& log,
                   recovery_mode mode) {
  auto opened = storage<B>::open(dir, with<B>(mode));
  REQUIRE_FALSE(opened.ok());
  MESSAGE(B::k_name << ": " << opened.status().to_string());
  CHECK(opened.status().code() == errc::corrupted_data);
  CHECK_MESSAGE(opened.status().message().find(log.filename().string()) != std::string::npos,
                "the error names the log file " << log.filename().string());
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE(
    "a power-loss image with zeros and later unsynced pages after the synced prefix of the "
    "write-ahead log opens with everything acknowledged and no hole",
    B, torn_wal_tail) {
  scratch_dir dir;
  const wal_image img = write_and_copy<B>(dir.store(), dir.path() / "image");
  // The pages from the one holding the synced end to the next are lost;
  // the later pages of the big put and the whole "later" put reached the disk.
  const std::uint64_t lost_to = (img.synced / k_page + 2) * k_page;
  REQUIRE(std::filesystem::file_size(img.log) > lost_to + k_page);
  write_zeros(img.log, img.synced, lost_to);
  check_acknowledged<B>(dir.path() / "image");
}

TEST_CASE_TEMPLATE_DEFINE(
    "a power-loss image whose unsynced tail is zeros to the end of the write-ahead log opens "
    "with everything acknowledged",
    B, zeroed_wal_tail) {
  scratch_dir dir;
  const wal_image img = write_and_copy<B>(dir.store(), dir.path() / "image");
  write_zeros(img.log, img.synced, std::filesystem::file_size(img.log));
  check_acknowledged<B>(dir.path() / "image");
}

TEST_CASE_TEMPLATE_DEFINE(
    "a flipped byte inside the synced part of the write-ahead log refuses the open with "
    "corrupted data naming the log, in every recovery mode, with or without a torn tail",
    B, damaged_synced_wal) {
  scratch_dir dir;
  const wal_image img = write_and_copy<B>(dir.store(), dir.path() / "image");
  flip_byte(img.log, img.synced / 2);
  check_refused<B>(dir.path() / "image", img.log, recovery_mode::tolerate_corrupted_tail);
  check_refused<B>(dir.path() / "image", img.log, recovery_mode::absolute_consistency);
  write_zeros(img.log, img.synced, (img.synced / k_page + 2) * k_page);
  check_refused<B>(dir.path() / "image", img.log, recovery_mode::tolerate_corrupted_tail);
}

TEST_CASE_TEMPLATE_DEFINE(
    "absolute consistency refuses a write-ahead log with a torn unsynced tail, naming the log",
    B, strict_torn_wal_tail) {
  scratch_dir dir;
  const wal_image img = write_and_copy<B>(dir.store(), dir.path() / "image");
  write_zeros(img.log, img.synced, (img.synced / k_page + 2) * k_page);
  check_refused<B>(dir.path() / "image", img.log, recovery_mode::absolute_consistency);
}

TEST_CASE_TEMPLATE_DEFINE(
    "any pattern of lost pages after the synced prefix of the write-ahead log opens with "
    "everything acknowledged and a prefix of the unsynced writes",
    B, lost_wal_pages) {
  scratch_dir dir;
  const std::uint64_t seed = seshat::test::env_number("SESHAT_LOST_PAGES_SEED", std::random_device{}());
  INFO("SESHAT_LOST_PAGES_SEED=" << seed);
  std::mt19937_64 rng(seed);
  // Unsynced puts u0, u1, ... of 1 to 40,000 bytes after the synced writes.
  std::vector<std::string> unsynced;
  for (int i = 0; i < 12; ++i)
    unsynced.push_back(std::string(1 + rng() % 40000, static_cast<char>('a' + i)));
  const std::filesystem::path image = dir.path() / "image";
  std::uint64_t synced = 0;
  std::filesystem::path log_name;
  {
    auto s = seshat::test::open_store<B>(dir.store());
    auto log = test_log<B>::open(*s).value();
    for (std::uint64_t i = 1; i <= k_synced_entries; i += 10)
      REQUIRE(log->append(make_entries<text_entry>(1, i, 10)).ok());
    REQUIRE(log->save_vote(k_vote).ok());
    REQUIRE(log->save_committed(k_committed).ok());
    log_name = newest_log(dir.store()).filename();
    synced = std::filesystem::file_size(dir.store() / log_name);
    for (std::size_t i = 0; i < unsynced.size(); ++i)
      REQUIRE(s->put(column_family::system_data, "u" + std::to_string(i), unsynced[i]).ok());
    std::filesystem::copy(dir.store(), image, std::filesystem::copy_options::recursive);
    log.reset();
    REQUIRE(s->close().ok());
  }
  const std::uint64_t size = std::filesystem::file_size(image / log_name);
  for (int round = 0; round < 12; ++round) {
    CAPTURE(round);
    const std::filesystem::path copy = dir.path() / ("round" + std::to_string(round));
    std::filesystem::copy(image, copy, std::filesystem::copy_options::recursive);
    // Each page past the synced end is lost (zeros) or reached the disk; the
    // page holding the synced end keeps its synced bytes either way.
    for (std::uint64_t page = synced / k_page; page * k_page < size; ++page)
      if (rng() % 3 == 0)
        write_zeros(copy / log_name, std::max(page * k_page, synced),
                    std::min((page + 1) * k_page, size));
    auto opened = storage<B>::open(copy, {});
    REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
    {
      auto log = test_log<B>::open(**opened).value();
      auto es = log->entries(1, k_synced_entries + 1);
      REQUIRE_MESSAGE(es.ok(), es.status().to_string());
      CHECK(*es == make_entries<text_entry>(1, 1, k_synced_entries));
      CHECK(log->get_log_state().last->index == k_synced_entries);
      CHECK(log->read_vote().value() == k_vote);
      CHECK(log->read_committed().value() == k_committed);
    }
    bool gone = false;
    for (std::size_t i = 0; i < unsynced.size(); ++i) {
      auto got = (*opened)->get(column_family::system_data, "u" + std::to_string(i));
      if (got.status().is(errc::not_found)) {
        gone = true;
        continue;
      }
      REQUIRE_MESSAGE(got.ok(), got.status().to_string());
      CHECK_MESSAGE(!gone, "u" << i << " survived after an earlier unsynced put was lost: a hole");
      CHECK(*got == unsynced[i]);
    }
    REQUIRE((*opened)->close().ok());
    std::filesystem::remove_all(copy);
  }
}

#if SESHAT_HAVE_ROCKSDB && SESHAT_HAVE_LEVELDB
#define SESHAT_DISK_BACKENDS seshat::rocksdb_backend, seshat::leveldb_backend
#elif SESHAT_HAVE_ROCKSDB
#define SESHAT_DISK_BACKENDS seshat::rocksdb_backend
#elif SESHAT_HAVE_LEVELDB
#define SESHAT_DISK_BACKENDS seshat::leveldb_backend
#endif
#ifdef SESHAT_DISK_BACKENDS
TEST_CASE_TEMPLATE_INVOKE(torn_wal_tail, SESHAT_DISK_BACKENDS);
TEST_CASE_TEMPLATE_INVOKE(zeroed_wal_tail, SESHAT_DISK_BACKENDS);
TEST_CASE_TEMPLATE_INVOKE(damaged_synced_wal, SESHAT_DISK_BACKENDS);
TEST_CASE_TEMPLATE_INVOKE(strict_torn_wal_tail, SESHAT_DISK_BACKENDS);
TEST_CASE_TEMPLATE_INVOKE(lost_wal_pages, SESHAT_DISK_BACKENDS);
#endif

#if SESHAT_HAVE_ROCKSDB && SESHAT_HAVE_LEVELDB
TEST_CASE_TEMPLATE_INVOKE(engine_corruption, seshat::rocksdb_backend, seshat::leveldb_backend);
#elif SESHAT_HAVE_ROCKSDB
TEST_CASE_TEMPLATE_INVOKE(engine_corruption, seshat::rocksdb_backend);
#elif SESHAT_HAVE_LEVELDB
TEST_CASE_TEMPLATE_INVOKE(engine_corruption, seshat::leveldb_backend);
#endif

TEST_SUITE_END();  // "engine corruption"
