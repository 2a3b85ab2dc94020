// What the on-disk backends do with a directory that is not (their) store:
// refuse it clearly and change nothing in it.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <map>
#include <string>

#include "seshat/detail/digits.hpp"
#include "seshat/detail/store_marker.hpp"
#include "support.hpp"

TEST_SUITE_BEGIN("store directory");

using namespace seshat;
using seshat::test::open_store;
using seshat::test::scratch_dir;

namespace {

// Name and size of every file under `dir`, to prove nothing changed.
std::map<std::string, std::uintmax_t> listing(const std::filesystem::path& dir) {
  std::map<std::string, std::uintmax_t> files;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir))
    files[e.path().lexically_relative(dir).string()] = e.is_regular_file() ? e.file_size() : 0;
  return files;
}

void write_file(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
}

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("store directory", B, store_directory) {
  scratch_dir dir;

  SUBCASE("a directory with files but no marker is not a seshat store and is left alone") {
    std::filesystem::create_directories(dir.store());
    write_file(dir.store() / "notes.txt", "a user's file");
    const auto before = listing(dir.store());
    auto opened = storage<B>::open(dir.store());
    CHECK(opened.status().is(errc::invalid_argument));
    CHECK(opened.status().message().find("not a seshat store") != std::string::npos);
    CHECK(listing(dir.store()) == before);
  }

  SUBCASE("a store whose marker names another backend is refused and left alone") {
    { auto s = open_store<B>(dir.store()); REQUIRE(s->put(column_family::data_kv, "k", "v").ok()); }
    const std::string other = std::string(B::k_name) == "rocksdb" ? "leveldb" : "rocksdb";
    write_file(dir.store() / "SESHAT_STORE",
               detail::encode_marker({k_schema_version, other}));
    const auto before = listing(dir.store());
    auto opened = storage<B>::open(dir.store());
    CHECK(opened.status().is(errc::version_mismatch));
    CHECK(opened.status().message().find("made by the " + other + " backend") != std::string::npos);
    CHECK(listing(dir.store()) == before);
  }

  SUBCASE("a store with a newer schema is refused with version-mismatch") {
    { auto s = open_store<B>(dir.store()); REQUIRE(s->put(column_family::data_kv, "k", "v").ok()); }
    write_file(dir.store() / "SESHAT_STORE",
               detail::encode_marker({k_schema_version + 1, std::string(B::k_name)}));
    auto opened = storage<B>::open(dir.store());
    CHECK(opened.status().is(errc::version_mismatch));
    CHECK(opened.status().message().find("newer") != std::string::npos);
  }

  SUBCASE("a garbled marker is corrupted data naming the file") {
    { auto s = open_store<B>(dir.store()); }
    write_file(dir.store() / "SESHAT_STORE", "seshat-store\nschema x1\nbackend leveldb\n");
    auto opened = storage<B>::open(dir.store());
    CHECK(opened.status().is(errc::corrupted_data));
    CHECK(opened.status().message().find("SESHAT_STORE") != std::string::npos);
  }

  SUBCASE("a store whose engine files vanished is not silently recreated") {
    { auto s = open_store<B>(dir.store()); REQUIRE(s->put(column_family::data_kv, "k", "v").ok()); }
    for (auto& e : std::filesystem::directory_iterator(dir.store()))
      if (e.path().filename() != "SESHAT_STORE") std::filesystem::remove_all(e.path());
    write_file(dir.store() / "stray", "x");
    CHECK_FALSE(storage<B>::open(dir.store()).ok());
  }

  SUBCASE("a finished store holding only its marker is corrupted data, never recreated empty") {
    {
      auto s = open_store<B>(dir.store());
      REQUIRE(s->put(column_family::data_kv, "k", "v").ok());
    }
    for (auto& e : std::filesystem::directory_iterator(dir.store()))
      if (e.path().filename() != "SESHAT_STORE") std::filesystem::remove_all(e.path());
    const auto before = listing(dir.store());
    auto opened = storage<B>::open(dir.store());
    CHECK_MESSAGE(opened.status().is(errc::corrupted_data), opened.status().to_string());
    CHECK(opened.status().message().find("CURRENT") != std::string::npos);
    CHECK(listing(dir.store()) == before);
  }

  SUBCASE(
      "a store whose creation did not finish is created again, and only with create_if_missing") {
    std::filesystem::create_directories(dir.store());
    write_file(dir.store() / "SESHAT_STORE",
               detail::encode_marker({k_schema_version, std::string(B::k_name), true}));
    write_file(dir.store() / "MANIFEST-000001", "what an engine left half-way");
    open_options existing;
    existing.create_if_missing = false;
    auto refused = storage<B>::open(dir.store(), existing);
    CHECK_MESSAGE(refused.status().is(errc::not_found), refused.status().to_string());
    CHECK(refused.status().message().find("interrupted") != std::string::npos);
    {
      auto s = open_store<B>(dir.store());
      REQUIRE(s->put(column_family::data_kv, "k", "v").ok());
    }
    auto marker = detail::read_store_marker(dir.store(), B::k_name);
    REQUIRE_MESSAGE(marker.ok(), marker.status().to_string());
    CHECK_FALSE(marker->creating);
    auto reopened = storage<B>::open(dir.store(), existing);
    REQUIRE_MESSAGE(reopened.ok(), reopened.status().to_string());
    CHECK((*reopened)->get(column_family::data_kv, "k").value() == "v");
  }

  SUBCASE("a missing directory without create_if_missing fails and creates nothing") {
    open_options options;
    options.create_if_missing = false;
    auto opened = storage<B>::open(dir.store(), options);
    CHECK(opened.status().is(errc::not_found));
    CHECK(opened.status().message().find(dir.store().string()) != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir.store()));
  }
}

#if SESHAT_HAVE_ROCKSDB && SESHAT_HAVE_LEVELDB
TEST_CASE_TEMPLATE_INVOKE(store_directory, seshat::rocksdb_backend, seshat::leveldb_backend);
#elif SESHAT_HAVE_ROCKSDB
TEST_CASE_TEMPLATE_INVOKE(store_directory, seshat::rocksdb_backend);
#elif SESHAT_HAVE_LEVELDB
TEST_CASE_TEMPLATE_INVOKE(store_directory, seshat::leveldb_backend);
#endif

#if SESHAT_HAVE_ROCKSDB
// The open after a killed process replays the log families' memtables from
// the WAL: they stay small whatever write_buffer_mb asks for.
TEST_CASE("a RocksDB store keeps its log families' memtables at 32 MB at most") {
  auto write_buffer_of = [](const std::filesystem::path& store, std::string_view family) {
    std::filesystem::path newest;  // RocksDB's OPTIONS-<number> file of this open
    for (const auto& e : std::filesystem::directory_iterator(store))
      if (e.path().filename().string().starts_with("OPTIONS-") && e.path() > newest)
        newest = e.path();
    std::ifstream in(newest);
    const std::string section = "[CFOptions \"" + std::string(family) + "\"]";
    bool inside = false;
    for (std::string line; std::getline(in, line);) {
      if (line.starts_with("[")) inside = line == section;
      const auto at = line.find("write_buffer_size=");
      if (inside && at != std::string::npos && line.find_first_not_of(' ') == at)
        return std::stoull(line.substr(at + 18));
    }
    return 0ull;
  };
  for (const std::uint32_t asked : {64u, 8u}) {
    scratch_dir dir;
    open_options options;
    options.write_buffer_mb = asked;
    {
      auto s = open_store<rocksdb_backend>(dir.store(), options);
      REQUIRE(s->put(column_family::data_kv, "k", "v").ok());
    }
    const auto expected = std::uint64_t{std::min(asked, 32u)} << 20;
    INFO("write_buffer_mb " << asked);
    for (column_family cf : {column_family::system_raft_log, column_family::data_raft_log})
      CHECK(write_buffer_of(dir.store(), name_of(cf)) == expected);
    CHECK(write_buffer_of(dir.store(), name_of(column_family::data_kv)) == std::uint64_t{asked} << 20);
  }
}
#endif

// The numbers in the names a store holds (log keys, file numbers, the
// marker's schema) parse only when they are all digits and fit.
TEST_CASE("a number spelled in digits parses only when it is all digits and fits its type") {
  using seshat::detail::parse_digits;
  CHECK(parse_digits("0") == 0u);
  CHECK(parse_digits("00000000000000000042", 20) == 42u);
  CHECK(parse_digits("18446744073709551615") == UINT64_MAX);
  CHECK(parse_digits("18446744073709551616") == std::nullopt);  // 2^64
  CHECK(parse_digits("99999999999999999999") == std::nullopt);
  CHECK(parse_digits("000000000000000000000000018446744073709551615") == UINT64_MAX);
  CHECK(parse_digits("42", 20) == std::nullopt);  // not the width
  CHECK(parse_digits("") == std::nullopt);
  // A byte that is not a digit anywhere in 20 (which parse 8 at a time).
  const std::string twenty(20, '0');
  for (std::size_t at = 0; at < 20; ++at)
    for (char c : {'/', ':', 'a', ' ', '\0', '\x80', '\xb0', '\xf0'}) {
      std::string bad = twenty;
      bad[at] = c;
      CHECK_MESSAGE(parse_digits(bad, 20) == std::nullopt, at, " ", int(c));
    }
  CHECK(parse_digits("12345678901234567890") == 12345678901234567890u);
  CHECK(parse_digits("98765432") == 98765432u);
  CHECK(parse_digits("123456789") == 123456789u);
  for (const char* bad : {"-1", "+1", " 1", "1 ", "1a", "0x1", "1.0", "\x001"})
    CHECK_MESSAGE(parse_digits(bad) == std::nullopt, bad);
  CHECK(parse_digits<std::uint32_t>("4294967295") == UINT32_MAX);
  CHECK(parse_digits<std::uint32_t>("4294967296") == std::nullopt);
  CHECK(parse_digits<std::uint32_t>("ff", 0, 16) == 255u);
  CHECK(parse_digits<std::uint32_t>("ffffffff", 8, 16) == UINT32_MAX);
  CHECK(parse_digits<std::uint64_t>("1ffffffffffffffff", 0, 16) == std::nullopt);
  CHECK(parse_digits<std::uint32_t>("FF", 0, 16) == std::nullopt);  // upper case
  CHECK(parse_digits<std::uint32_t>("fg", 0, 16) == std::nullopt);
  CHECK(parse_digits("ff") == std::nullopt);  // hex digits in base 10
}

TEST_SUITE_END();  // "store directory"
