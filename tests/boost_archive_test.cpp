// seshat's Boost string archives against Boost's own binary archives: the
// same bytes for every kind of value, each side reads the other's bytes,
// and corrupt bytes (short, long, huge lengths, bad flags) are
// corrupted-data errors that say what was wrong.
#include <doctest/doctest.h>

#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>
#include <boost/serialization/map.hpp>
#include <boost/serialization/optional.hpp>
#include <boost/serialization/set.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/unordered_map.hpp>
#include <boost/serialization/unordered_set.hpp>
#include <boost/serialization/vector.hpp>
#include <boost/serialization/version.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "kv_entries.hpp"
#include "log_entries.hpp"
#include "seshat/cluster_metadata.hpp"
#include "seshat/serializer.hpp"

TEST_SUITE_BEGIN("boost archive");

using namespace seshat;

namespace {

struct inner {
  std::int32_t a = 0;
  std::string s;
  template <class A>
  void serialize(A& ar, unsigned) {
    ar & a & s;
  }
  friend bool operator==(const inner&, const inner&) = default;
};

struct every_kind {
  std::int8_t i8 = 0;
  std::uint8_t u8 = 0;
  std::int16_t i16 = 0;
  std::uint16_t u16 = 0;
  std::int32_t i32 = 0;
  std::uint32_t u32 = 0;
  std::int64_t i64 = 0;
  std::uint64_t u64 = 0;
  bool flag = false;
  char c = 0;
  float f = 0;
  double d = 0;
  std::string empty, with_nuls;
  std::vector<std::byte> bytes;
  std::vector<char> chars;
  std::vector<std::uint8_t> octets;
  std::vector<int> ints;
  std::vector<std::string> strings;
  std::vector<bool> bools;
  std::vector<inner> inners;
  std::map<std::string, std::uint64_t> map;
  std::set<std::int16_t> set;
  boost::optional<inner> some, none;
  template <class A>
  void serialize(A& ar, unsigned) {
    ar & i8 & u8 & i16 & u16 & i32 & u32 & i64 & u64 & flag & c & f & d;
    ar & empty & with_nuls & bytes & chars & octets & ints & strings & bools & inners;
    ar & map & set & some & none;
  }
  friend bool operator==(const every_kind&, const every_kind&) = default;
};

// The benchmark suite's entry (bench/bench_entries.hpp), same members.
struct bench_shaped_entry {
  std::uint64_t term = 0, index = 0;
  std::string payload;
  template <class A>
  void serialize(A& ar, unsigned) {
    ar & term & index & payload;
  }
  friend bool operator==(const bench_shaped_entry&, const bench_shaped_entry&) = default;
};

}  // namespace

BOOST_CLASS_VERSION(inner, 3)
BOOST_CLASS_VERSION(every_kind, 7)

namespace {

every_kind sample() {
  every_kind v;
  v.i8 = -7;
  v.u8 = 250;
  v.i16 = -30000;
  v.u16 = 65000;
  v.i32 = -2'000'000'000;
  v.u32 = 4'000'000'000u;
  v.i64 = std::numeric_limits<std::int64_t>::min();
  v.u64 = std::numeric_limits<std::uint64_t>::max();
  v.flag = true;
  v.c = 'z';
  v.f = 1.5f;
  v.d = -0.1;
  v.with_nuls = std::string("a\0b\0\0c", 6);
  v.bytes = {std::byte{0}, std::byte{0xff}, std::byte{0x80}};
  v.chars = {'x', '\0', 'y'};
  v.octets = {1, 2, 3, 255};
  v.ints = {-1, 0, 1, 1 << 30};
  v.strings = {"", "one", std::string(300, 'q')};
  v.bools = {true, false, true};
  v.inners = {{1, "i1"}, {2, ""}};
  v.map = {{"a", 1}, {"bb", 2}};
  v.set = {-3, 9};
  v.some = inner{42, "opt"};
  return v;
}

template <class T>
std::string boost_bytes(const T& v) {
  std::ostringstream os;
  {
    boost::archive::binary_oarchive a(os, detail::k_archive_flags);
    a << v;
  }
  return os.str();
}

template <class T>
T boost_read(const std::string& bytes) {
  std::istringstream is(bytes);
  boost::archive::binary_iarchive a(is, detail::k_archive_flags);
  T v;
  a >> v;
  return v;
}

// Byte identity both ways, and each archive reads the other's bytes.
template <class T>
void check_identical(const T& v) {
  std::string ours;
  boost_serializer::encode(v, ours);
  const std::string theirs = boost_bytes(v);
  CHECK(ours == theirs);
  if (ours != theirs) {
    std::size_t i = 0;
    while (i < ours.size() && i < theirs.size() && ours[i] == theirs[i]) ++i;
    FAIL_CHECK("first difference at byte ", i, " of ", ours.size(), " and ", theirs.size());
  }
  CHECK(!ours.empty());
  T back{};
  const status s = boost_serializer::decode(theirs, back);
  REQUIRE_MESSAGE(s.ok(), s.to_string());
  CHECK(back == v);
  CHECK(boost_read<T>(ours) == v);
}

status decode_every_kind(const std::string& bytes) {
  every_kind v;
  return boost_serializer::decode(bytes, v);
}

}  // namespace

TEST_CASE("the string archives write binary_oarchive's bytes for every kind of value") {
  check_identical(sample());
  check_identical(every_kind{});
  check_identical(inner{-1, std::string("\0\0", 2)});
  check_identical(std::string());
  check_identical(std::uint64_t{0x0102030405060708});
  check_identical(std::vector<std::string>{"", "a"});
  check_identical(std::vector<std::byte>{});
  check_identical(std::unordered_set<int>{1});
  check_identical(std::unordered_map<std::string, int>{{"a", 1}, {"b", 2}});
  check_identical(test::make_entry<test::text_entry>(3, 17));
  check_identical(test::text_entry{});
  check_identical(bench_shaped_entry{1, 2, std::string(256, '\x7f')});
  cluster_config cluster{"c1", {{1, "10.0.0.1:7000", "/d1"}, {2, "10.0.0.2:7000", "/d2"}}};
  check_identical(cluster);
  check_identical(raft_config{});
  check_identical(shard_map{{{shard_id{7}, {1, 2, 3}}}});

  // kv_entry has no operator==: compare its bytes and members.
  const test::kv_entry kv{4, 9, "key", std::string("v\0al", 4)};
  std::string ours;
  boost_serializer::encode(kv, ours);
  CHECK(ours == boost_bytes(kv));
  test::kv_entry back;
  REQUIRE(boost_serializer::decode(ours, back).ok());
  CHECK((back.term == 4 && back.index == 9 && back.key == kv.key && back.value == kv.value));
}

TEST_CASE("encode appends to what the string already holds") {
  std::string out = "prefix";
  boost_serializer::encode(inner{5, "x"}, out);
  CHECK(out == "prefix" + boost_bytes(inner{5, "x"}));
}

TEST_CASE("every truncation of an encoded value is corrupted data naming the shortfall") {
  std::string bytes;
  boost_serializer::encode(sample(), bytes);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    const status s = decode_every_kind(bytes.substr(0, n));
    REQUIRE_MESSAGE(s.is(errc::corrupted_data), n, " bytes: ", s.to_string());
    CHECK_MESSAGE(s.message().find("needs") != std::string::npos, s.message());
    CHECK_MESSAGE(s.message().find("bytes are left") != std::string::npos, s.message());
  }
}

TEST_CASE("bytes left over after the value are corrupted data") {
  std::string bytes;
  boost_serializer::encode(inner{1, "a"}, bytes);
  const std::size_t size = bytes.size();
  bytes += "xyz";
  inner v;
  const status s = boost_serializer::decode(bytes, v);
  REQUIRE(s.is(errc::corrupted_data));
  CHECK(s.message().find("ends at byte " + std::to_string(size) + " of " +
                         std::to_string(size + 3) + ", 3 bytes are left over") !=
        std::string::npos);
}

TEST_CASE("a huge string length is refused before anything is allocated") {
  // The text's length is the 8 bytes before its characters.
  std::string bytes;
  boost_serializer::encode(test::text_entry{1, 2, "hello", {}}, bytes);
  const std::size_t length_at = bytes.find("hello") - 8;
  const std::uint64_t huge = std::uint64_t{1} << 40;
  std::memcpy(bytes.data() + length_at, &huge, 8);
  test::text_entry v;
  const status s = boost_serializer::decode(bytes, v);
  REQUIRE(s.is(errc::corrupted_data));
  CHECK_MESSAGE(s.message().find("needs 1099511627776 bytes") != std::string::npos, s.message());
  CHECK(v.text.empty());
}

TEST_CASE("a huge collection count is refused before anything is allocated") {
  // The count is the 8 bytes before the two elements.
  std::string bytes;
  boost_serializer::encode(std::vector<std::uint64_t>{1, 2}, bytes);
  const std::size_t count_at = bytes.size() - 16 - 8;
  const std::uint64_t huge = std::uint64_t{1} << 50;
  std::memcpy(bytes.data() + count_at, &huge, 8);
  std::vector<std::uint64_t> v;
  const status s = boost_serializer::decode(bytes, v);
  REQUIRE(s.is(errc::corrupted_data));
  CHECK_MESSAGE(s.message().find("a collection of 1125899906842624 elements") != std::string::npos,
                s.message());
  CHECK(v.capacity() == 0);

  // A count that passes the collection check but not the array's.
  std::memcpy(bytes.data() + count_at, "\x03\0\0\0\0\0\0\0", 8);
  const status a = boost_serializer::decode(bytes, v);
  REQUIRE(a.is(errc::corrupted_data));
  CHECK_MESSAGE(a.message().find("3 x 8 bytes, 16 bytes are left") != std::string::npos,
                a.message());
}

TEST_CASE("an unordered container's bucket count is a hint, capped rather than refused") {
  std::unordered_set<std::uint8_t> reserved;
  reserved.reserve(1000);  // more buckets than bytes follow the bucket count
  reserved.insert(7);
  std::string bytes;
  boost_serializer::encode(reserved, bytes);
  // count:u64, bucket_count:u64, item_version:u32, then the one element.
  const std::size_t buckets_at = bytes.size() - 1 - 4 - 8;
  std::uint64_t buckets = 0;
  std::memcpy(&buckets, bytes.data() + buckets_at, 8);
  REQUIRE(buckets >= 1000);
  std::unordered_set<std::uint8_t> back;
  REQUIRE(boost_serializer::decode(bytes, back).ok());
  CHECK(back == reserved);
  CHECK(back.bucket_count() < 1000);

  // A corrupt, huge bucket count decodes the same elements.
  buckets = std::uint64_t{1} << 60;
  std::memcpy(bytes.data() + buckets_at, &buckets, 8);
  std::unordered_set<std::uint8_t> again;
  REQUIRE(boost_serializer::decode(bytes, again).ok());
  CHECK(again == reserved);

  // The element count is still checked.
  std::memcpy(bytes.data() + buckets_at - 8, &buckets, 8);
  const status s = boost_serializer::decode(bytes, again);
  REQUIRE(s.is(errc::corrupted_data));
  CHECK(s.message().find("a collection of 1152921504606846976 elements") != std::string::npos);
}

TEST_CASE("a bool that is neither 0 nor 1 is corrupted data") {
  std::string bytes;
  boost_serializer::encode(true, bytes);
  REQUIRE(bytes == std::string(1, '\1'));
  bytes[0] = 2;
  bool v = false;
  const status s = boost_serializer::decode(bytes, v);
  REQUIRE(s.is(errc::corrupted_data));
  CHECK(s.message().find("a bool at byte 0 is 2, expected 0 or 1") != std::string::npos);
}

TEST_CASE("a class version newer than the code's is still a version mismatch") {
  std::string bytes;
  boost_serializer::encode(raft_config{}, bytes);
  // raft_config is a class with versioning: its version (4 bytes) comes
  // after the tracking flag (1 byte) at the start.
  std::uint32_t version = 0;
  std::memcpy(&version, bytes.data() + 1, 4);
  REQUIRE(version == 1);
  version = 9;
  std::memcpy(bytes.data() + 1, &version, 4);
  raft_config v;
  const status s = boost_serializer::decode(bytes, v);
  REQUIRE(s.is(errc::version_mismatch));
  CHECK(s.message().find("raft_config was written with class version 9") != std::string::npos);
}

namespace {

// Remembers the class version it was read with.
struct versioned {
  std::uint32_t n = 0;
  unsigned read_as = 0;
  template <class A>
  void serialize(A& ar, unsigned version) {
    ar & n;
    read_as = version;
  }
};

// A member of a class, serialized only in some values: its class
// information is in the first of those only, per archive.
struct sometimes_nested {
  std::uint64_t n = 0;
  bool has = false;
  inner in;
  template <class A>
  void serialize(A& ar, unsigned) {
    ar & n & has;
    if (has) ar & in;
  }
  friend bool operator==(const sometimes_nested&, const sometimes_nested&) = default;
};

template <class T>
std::string encoded(const T& v) {
  std::string out;
  boost_serializer::encode(v, out);
  return out;
}

// Decodes `values` in a row with one decoder and each with decode(): the
// same status and value for every one.
template <class T>
void check_decoder_reads_as_decode(const std::vector<std::string>& values) {
  decoder_for<boost_serializer, T> decoder;
  for (std::size_t i = 0; i < values.size(); ++i) {
    T by_decoder{}, by_decode{};
    const status a = decoder.decode(values[i], by_decoder);
    const status b = boost_serializer::decode(values[i], by_decode);
    CHECK_MESSAGE(a.to_string() == b.to_string(), "value ", i);
    if (a.ok() && b.ok()) CHECK_MESSAGE(by_decoder == by_decode, "value ", i);
  }
}

}  // namespace

// Encodes `values` in a row with one encoder, into one string as a log
// append does (each after what is there): each value's bytes are those of
// encode().
template <class T>
void check_encoder_writes_as_encode(const std::vector<T>& values) {
  encoder_for<boost_serializer, T> encoder;
  std::string out = "head";
  for (std::size_t i = 0; i < values.size(); ++i) {
    const std::size_t at = out.size();
    encoder.encode(values[i], out);
    CHECK_MESSAGE(out.substr(at) == encoded(values[i]), "value ", i);
    out += "|";
  }
}

TEST_CASE("an encoder writes the bytes encode writes for each value, one after another") {
  std::vector<bench_shaped_entry> entries;
  for (std::uint64_t i = 0; i < 5; ++i) entries.push_back({1, i, std::string(i * 100, 'p')});
  check_encoder_writes_as_encode(entries);
  check_encoder_writes_as_encode<sometimes_nested>(
      {{1, false, {}}, {2, true, {1, "a"}}, {3, true, {2, "b"}}, {4, false, {}}, {5, true, {4, "d"}}});
  check_encoder_writes_as_encode<every_kind>({sample(), every_kind{}, sample()});
  check_encoder_writes_as_encode<std::string>({"a", "", std::string(40, 'x')});
  check_encoder_writes_as_encode<raft_config>({raft_config{}, raft_config{}});
}

TEST_CASE("a decoder reads values one after another as decode reads each") {
  SUBCASE("values of one class") {
    std::vector<std::string> values;
    for (std::uint64_t i = 0; i < 5; ++i)
      values.push_back(encoded(bench_shaped_entry{1, i, std::string(i * 100, 'p')}));
    check_decoder_reads_as_decode<bench_shaped_entry>(values);
  }
  SUBCASE("a member's class appears in some values only") {
    // The first value has no inner; the second and third do, each with its
    // class information: an archive that read it once would not read it
    // again.
    check_decoder_reads_as_decode<sometimes_nested>(
        {encoded(sometimes_nested{1, false, {}}), encoded(sometimes_nested{2, true, {1, "a"}}),
         encoded(sometimes_nested{3, true, {2, "b"}}), encoded(sometimes_nested{4, false, {}}),
         encoded(sometimes_nested{5, true, {4, "d"}})});
  }
  SUBCASE("classes with members of classes, primitives") {
    check_decoder_reads_as_decode<every_kind>(
        {encoded(sample()), encoded(every_kind{}), encoded(sample())});
    check_decoder_reads_as_decode<std::string>({encoded(std::string("a")), encoded(std::string()),
                                                encoded(std::string(40, 'x'))});
    std::string newer = encoded(raft_config{});
    const std::uint32_t nine = 9;
    std::memcpy(newer.data() + 1, &nine, 4);  // a version-mismatch
    check_decoder_reads_as_decode<raft_config>(
        {encoded(raft_config{}), encoded(raft_config{}), newer, encoded(raft_config{})});
  }
  SUBCASE("corrupt values in between") {
    const std::string good = encoded(bench_shaped_entry{1, 2, "payload"});
    std::string long_by_one = good + "x";
    std::string bad_flag = good;
    bad_flag[0] = 7;  // the tracking flag
    check_decoder_reads_as_decode<bench_shaped_entry>(
        {good, good.substr(0, 3), good, good.substr(0, good.size() - 1), good, long_by_one, good,
         bad_flag, good, "", good});
  }
}

TEST_CASE("a decoder reads each value with the class version of its own bytes") {
  // A log written by two versions of a program: versions 0, 0, 2, 2, 0, 5.
  auto with_version = [](std::uint32_t n, std::uint32_t version) {
    std::string bytes = encoded(versioned{n, 0});
    std::memcpy(bytes.data() + 1, &version, 4);  // after the tracking flag
    return bytes;
  };
  const std::uint32_t versions[] = {0, 0, 2, 2, 0, 5};
  decoder_for<boost_serializer, versioned> decoder;
  for (std::uint32_t i = 0; i < 6; ++i) {
    versioned v;
    REQUIRE(decoder.decode(with_version(i, versions[i]), v).ok());
    CHECK(v.n == i);
    CHECK_MESSAGE(v.read_as == versions[i], "value ", i);
  }
}

TEST_SUITE_END();  // "boost archive"
