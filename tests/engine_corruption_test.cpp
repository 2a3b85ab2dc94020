// Damaged engine files in a closed store (write-ahead log, table files,
// MANIFEST): on reopen and on read the result is a clear error or the exact
// data that was written, never a crash, never other bytes.
#include <doctest/doctest.h>

#include <fstream>
#include <string>
#include <vector>

#include "log_entries.hpp"
#include "seshat/log_store.hpp"
#include "support.hpp"

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

#if SESHAT_HAVE_ROCKSDB && SESHAT_HAVE_LEVELDB
TEST_CASE_TEMPLATE_INVOKE(engine_corruption, seshat::rocksdb_backend, seshat::leveldb_backend);
#elif SESHAT_HAVE_ROCKSDB
TEST_CASE_TEMPLATE_INVOKE(engine_corruption, seshat::rocksdb_backend);
#elif SESHAT_HAVE_LEVELDB
TEST_CASE_TEMPLATE_INVOKE(engine_corruption, seshat::leveldb_backend);
#endif
