// The log engine's segment format (detail/segment_format.hpp): every piece
// round-trips, every decoder refuses what is not its format with
// corrupted_data naming the byte offset, and a segment's footer summary
// applied to a group's state equals replaying the segment's records.
#include <doctest/doctest.h>

#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "seshat/detail/segment_format.hpp"

namespace seg = seshat::detail::segment;
using seshat::errc;
using seshat::log_id;
using seshat::vote;

namespace {

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

const seg::group_address k_system{0, 0};
const seg::group_address k_data7{3, 7};

// Checks that `s` is corrupted_data whose message holds each of `parts`.
void check_refused(const seshat::status& s, std::initializer_list<std::string_view> parts,
                   errc code = errc::corrupted_data, int line = __builtin_LINE()) {
  INFO("checked at line " << line << ": " << s.to_string());
  CHECK(s.is(code));
  for (std::string_view p : parts) CHECK(s.message().find(p) != std::string::npos);
}

seg::header sample_header() { return {512, 42, 17, 1 << 20, 1796010499438}; }

// A frame of segment `seq` at offset `offset` holding `records` (raw bytes).
std::string frame_of(std::string_view records, std::uint64_t seq = 42, std::uint64_t number = 9,
                     std::uint32_t durable = 4096) {
  std::string out;
  const std::size_t start = seg::begin_frame(out, {seq, number, durable});
  out.append(records);
  seg::finish_frame(out, start);
  return out;
}

// Decodes `frame` at `offset` as one frame of segment 42 and its records.
// The records put in `out` view `frame`: it must outlive them.
seshat::status decode_all(std::string_view frame, std::uint32_t offset = 8192,
                          std::vector<seg::record>* out = nullptr) {
  auto f = seg::decode_frame(frame, offset, 42);
  if (!f.ok()) return f.status();
  REQUIRE(f->what == seg::scanned_frame::kind::frame);
  std::vector<seg::record> records;
  SESHAT_RETURN_IF_ERROR(seg::decode_records(*f, records));
  if (out) *out = std::move(records);
  return {};
}

// Re-encodes a decoded record (entries through their checked payloads).
std::string reencode(const seg::record& r, std::uint64_t seq) {
  std::string out;
  std::visit(
      [&](const auto& b) {
        using T = std::decay_t<decltype(b)>;
        if constexpr (std::is_same_v<T, seg::entries_record>) {
          std::vector<seg::entry_input> in;
          for (std::uint32_t i = 0; i < b.count; ++i)
            in.push_back({b.term_of(i), seg::entry_payload(b, seq, i).value()});
          REQUIRE(seg::append_entries(out, seq, b.group, b.first, in).ok());
        } else {
          seg::encode_record(out, b);
        }
      },
      r.body);
  return out;
}

std::string entries_bytes(std::uint64_t first, std::vector<seg::entry_input> in,
                          seg::group_address g = k_data7, std::uint64_t seq = 42) {
  std::string out;
  REQUIRE(seg::append_entries(out, seq, g, first, in).ok());
  return out;
}

void put32_at(std::string& s, std::size_t at, std::uint32_t v) { seg::store32(s, at, v); }

}  // namespace

TEST_SUITE("segment format") {

TEST_CASE("a segment header round-trips through its 4096 bytes") {
  const seg::header h = sample_header();
  const std::string bytes = seg::encode_header(h);
  CHECK(bytes.size() == 4096);
  CHECK(bytes.substr(0, 8) == "SESHSEGM");
  auto back = seg::decode_header(bytes);
  REQUIRE(back.ok());
  CHECK(*back == h);
  for (std::uint16_t block : {0, 512, 4096}) {
    seg::header b = h;
    b.block = block;
    CHECK(seg::decode_header(seg::encode_header(b)).value() == b);
  }
}

TEST_CASE("a header that is not a valid segment header is refused naming its byte") {
  const std::string good = seg::encode_header(sample_header());
  check_refused(seg::decode_header(good.substr(0, 4095)).status(), {"byte 0", "4096 bytes", "4095"});
  {
    std::string b = good;
    b[0] = 'X';
    check_refused(seg::decode_header(b).status(), {"byte 0", "magic"});
  }
  {
    std::string b = good;
    b[13] ^= 1;  // inside seq
    check_refused(seg::decode_header(b).status(), {"byte 44", "checksum mismatch", "stored 0x", "computed 0x"});
  }
  {
    std::string b = good;
    b[100] = 1;
    check_refused(seg::decode_header(b).status(), {"byte 100", "padding", "expected zero, got 1"});
  }
  // Fields that check but are out of their range: re-sealed with a valid crc.
  auto resealed = [&](std::size_t at, std::uint64_t v, int bytes) {
    std::string b = good;
    for (int i = 0; i < bytes; ++i) b[at + i] = static_cast<char>(v >> (8 * i));
    put32_at(b, 44, seshat::detail::crc32c(std::string_view(b).substr(0, 44)));
    return seg::decode_header(b).status();
  };
  check_refused(resealed(8, 2, 1), {"byte 8", "version 2", "reads 1 to 1"}, errc::version_mismatch);
  check_refused(resealed(8, 0, 1), {"byte 8", "version 0"}, errc::version_mismatch);
  check_refused(resealed(9, 1, 1), {"byte 9", "flags 1", "expected 0"});
  check_refused(resealed(10, 1024, 2), {"byte 10", "block 1024", "0, 512 or 4096"});
  check_refused(resealed(12, 0, 8), {"byte 12", "seq 0"});
  check_refused(resealed(20, 42, 8), {"byte 20", "prev 42", "below seq 42"});
  check_refused(resealed(28, 4096, 8), {"byte 28", "size 4096", "16384 to 1073741824"});
  check_refused(resealed(28, (std::uint64_t{1} << 30) + 1, 8), {"byte 28", "size 1073741825"});
}

TEST_CASE("a frame of every record kind round-trips, byte for byte") {
  std::string records;
  records += entries_bytes(5, {{3, "a"}, {3, ""}, {4, std::string(300, 'x')}});
  seg::encode_record(records, seg::vote_record{k_system, vote{7, 2, true}});
  seg::encode_record(records, seg::vote_record{k_data7, vote{8, std::nullopt, false}});
  seg::encode_record(records, seg::committed_record{k_data7, {4, 6}});
  seg::encode_record(records, seg::truncate_record{k_data7, 7});
  seg::encode_record(records, seg::purge_record{k_data7, {3, 5}});
  seg::encode_record(records, seg::reset_record{k_system, {9, 100}});
  seg::encode_record(records, seg::state_record{k_data7, vote{8, 1, false}, log_id{4, 6},
                                                log_id{3, 5}, log_id{4, 6}});
  seg::encode_record(records, seg::state_record{k_system, std::nullopt, std::nullopt,
                                                std::nullopt, log_id{0, 0}});
  const std::string frame = frame_of(records, 42, 1234, 4096);
  CHECK(frame.size() == seg::k_frame_header_bytes + records.size());

  // The scanned frame views its bytes: they must outlive it.
  const std::string bytes = frame + std::string(8, '\0');
  auto f = seg::decode_frame(bytes, 8192, 42);
  REQUIRE(f.ok());
  CHECK(f->what == seg::scanned_frame::kind::frame);
  CHECK(f->header.seq == 42);
  CHECK(f->header.number == 1234);
  CHECK(f->header.durable == 4096);
  CHECK(f->size == frame.size());
  std::vector<seg::record> decoded;
  REQUIRE(seg::decode_records(*f, decoded).ok());
  REQUIRE(decoded.size() == 9);
  std::string again;
  for (const seg::record& r : decoded) again += reencode(r, 42);
  CHECK(again == records);
  CHECK(decoded[0].offset == 8192 + seg::k_frame_header_bytes);
  CHECK(decoded[1].offset == decoded[0].offset + decoded[0].size);

  const auto& e = std::get<seg::entries_record>(decoded[0].body);
  CHECK(e.group == k_data7);
  CHECK(e.first == 5);
  CHECK(e.count == 3);
  CHECK(e.runs == std::vector<seg::term_run>{{3, 2}, {4, 1}});
  CHECK(e.term_of(2) == 4);
  CHECK(seg::entry_payload(e, 42, 2).value() == std::string(300, 'x'));
  CHECK(seg::entry_payload(e, 42, 1).value().empty());
  const auto& s = std::get<seg::state_record>(decoded[7].body);
  CHECK(s.vote_value == vote{8, 1, false});
  CHECK(s.purged == log_id{3, 5});
}

TEST_CASE("the example frame of format.md section 11 is what the encoder writes") {
  std::string frame;
  const std::size_t start = seg::begin_frame(frame, {42, 9, 4096});
  const seg::entry_input one[] = {{3, "a"}};
  REQUIRE(seg::append_entries(frame, 42, k_data7, 5, one).ok());
  seg::finish_frame(frame, start);
  const char expected[] =
      "\x42\x00\x00\x00" "\xee\x99\x5e\xd5" "\x46" "\x2a\x00\x00\x00\x00\x00\x00\x00"
      "\x09\x00\x00\x00\x00\x00\x00\x00" "\x00\x10\x00\x00"
      "\x01" "\x03\x07\x00\x00\x00\x00\x00\x00\x00" "\x05\x00\x00\x00\x00\x00\x00\x00"
      "\x01\x00\x00\x00" "\x01\x00" "\x03\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00"
      "\x01\x00\x00\x00" "\x2c\xb7\x4a\xf5" "a";
  CHECK(frame.size() == 74);
  CHECK(frame == std::string(expected, sizeof expected - 1));
}

TEST_CASE("an entries record of several entries and term runs is the bytes of format.md, appended after what the buffer held") {
  // Bytes written by the encoder before it wrote through one pointer and
  // shape_entries (a store written then reads the same).
  std::string out = "keep";
  const std::string big(300, 'x');
  const seg::entry_input in[] = {{3, "a"}, {3, "bc"}, {5, ""}, {9, big}, {9, "z"}};
  REQUIRE(seg::append_entries(out, 42, k_data7, 5, in).ok());
  const char head[] =
      "\x01\x03\x07\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00"
      "\x03\x00\x03\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00"
      "\x01\x00\x00\x00\x09\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x01\x00\x00\x00\x02\x00"
      "\x00\x00\x00\x00\x00\x00\x2c\x01\x00\x00\x01\x00\x00\x00\x2c\xb7\x4a\xf5\x61\xf9\x6a\x11"
      "\x21\x62\x63\xba\x8c\x74\xfc\x63\x7d\x03\xaa";
  const char tail[] = "\xdc\xeb\x21\x1a\x7a";
  CHECK(out == "keep" + std::string(head, sizeof head - 1) + big + std::string(tail, sizeof tail - 1));
  const auto shape = seg::shape_entries(5, in);
  REQUIRE(shape.ok());
  CHECK(shape->runs == 3);
  CHECK(shape->bytes == out.size() - 4);
}

TEST_CASE("shape_entries gives the size append_entries writes, and refuses what it refuses") {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 200; ++round) {
    std::vector<std::string> payloads;
    std::vector<seg::entry_input> in;
    std::uint64_t term = 1 + rng() % 3;
    const std::size_t n = 1 + rng() % 20;
    for (std::size_t i = 0; i < n; ++i) payloads.push_back(std::string(rng() % 70, 'p'));
    for (std::size_t i = 0; i < n; ++i) {
      if (rng() % 4 == 0) term += 1 + rng() % 2;
      in.push_back({term, payloads[i]});
    }
    std::string out(rng() % 5, 'k');
    const std::size_t before = out.size();
    REQUIRE(seg::append_entries(out, 42, k_data7, 1 + rng() % 100, in).ok());
    const auto shape = seg::shape_entries(1, in);
    REQUIRE(shape.ok());
    CHECK(shape->bytes == out.size() - before);
  }
  const seg::entry_input down[] = {{5, "x"}, {4, "y"}};
  CHECK(seg::shape_entries(9, down).status().is(errc::invalid_argument));
  CHECK(seg::shape_entries(0, down).status().is(errc::invalid_argument));
}

TEST_CASE("an entries record's sizes are the design's: 36 + 4 a size + 4 a CRC, one term run") {
  const std::string one = entries_bytes(1, {{1, std::string(285, 'p')}});
  CHECK(one.size() == 40 + 289);
  CHECK(seg::k_frame_header_bytes + one.size() == 358);
  std::vector<std::string> payloads(16, std::string(285, 'p'));
  std::vector<seg::entry_input> in;
  for (const auto& p : payloads) in.push_back({1, p});
  CHECK(seg::k_frame_header_bytes + entries_bytes(1, in).size() == 4753);
}

TEST_CASE("an entry read under another segment's seq or index fails its checksum") {
  std::vector<seg::record> decoded;
  const std::string frame = frame_of(entries_bytes(5, {{3, "abc"}}, k_data7, 42));  // outlives `decoded`
  REQUIRE(decode_all(frame, 8192, &decoded).ok());
  auto e = std::get<seg::entries_record>(decoded[0].body);
  CHECK(seg::entry_payload(e, 42, 0).value() == "abc");
  check_refused(seg::entry_payload(e, 43, 0).status(),
                {"byte " + std::to_string(e.body_offset), "entry 5 checksum mismatch", "stored 0x"});
  e.first = 6;
  check_refused(seg::entry_payload(e, 42, 0).status(), {"entry 6 checksum mismatch"});
}

TEST_CASE("append_entries refuses what its record cannot hold, leaving the buffer unchanged") {
  std::string out = "keep";
  const std::string_view big(nullptr, std::size_t{1} << 32);  // never read: refused on its size
  check_refused(seg::append_entries(out, 1, k_data7, 5, {}), {"needs an entry"}, errc::invalid_argument);
  std::vector<seg::entry_input> one{{1, "x"}};
  check_refused(seg::append_entries(out, 1, k_data7, 0, one), {"outside [1,"}, errc::invalid_argument);
  check_refused(seg::append_entries(out, 1, k_data7, seshat::k_max_log_index + 1, one),
                {"outside [1,"}, errc::invalid_argument);
  std::vector<seg::entry_input> down{{5, "x"}, {4, "y"}};
  check_refused(seg::append_entries(out, 1, k_data7, 9, down), {"entry 10 has term 4 after term 5"},
                errc::invalid_argument);
  std::vector<seg::entry_input> huge{{1, big}};
  check_refused(seg::append_entries(out, 1, k_data7, 9, huge), {"entry 9 of 4294967296 bytes"},
                errc::invalid_argument);
  std::vector<seg::entry_input> changes;
  for (std::uint64_t t = 1; t <= 65536; ++t) changes.push_back({t, ""});
  check_refused(seg::append_entries(out, 1, k_data7, 1, changes), {"65536 term changes"},
                errc::invalid_argument);
  CHECK(out == "keep");
}

TEST_CASE("a scan finds the end, a stale frame of an older life, or this life's frame") {
  CHECK(seg::decode_frame(std::string(64, '\0'), 4096, 42).value().what == seg::scanned_frame::kind::end);
  CHECK(seg::decode_frame("abc", 4096, 42).value().what == seg::scanned_frame::kind::end);
  std::string rec;
  seg::encode_record(rec, seg::truncate_record{k_data7, 3});
  const std::string stale_bytes = frame_of(rec, 41);
  auto stale = seg::decode_frame(stale_bytes, 4096, 42);
  REQUIRE(stale.ok());
  CHECK(stale->what == seg::scanned_frame::kind::stale);
  CHECK(stale->header.seq == 41);
}

TEST_CASE("a frame that does not check is refused naming its byte") {
  std::string rec;
  seg::encode_record(rec, seg::truncate_record{k_data7, 3});
  const std::string good = frame_of(rec);
  {
    std::string b = good;
    put32_at(b, 0, 21);
    check_refused(seg::decode_frame(b, 8192, 42).status(), {"byte 8192", "frame length 21", "at least 22"});
  }
  {
    std::string b = good;
    put32_at(b, 0, 1000);
    check_refused(seg::decode_frame(b, 8192, 42).status(),
                  {"byte 8192", "frame length 1000 runs past the body's end", std::to_string(good.size() - 8) + " bytes left"});
  }
  {
    std::string b = good;
    b.back() ^= 0x10;
    check_refused(seg::decode_frame(b, 8192, 42).status(), {"byte 8192", "frame checksum mismatch", "stored 0x", "computed 0x"});
  }
  {
    // The length is covered by the CRC: a frame shortened by one byte does not check.
    std::string b = good;
    put32_at(b, 0, static_cast<std::uint32_t>(good.size() - 9));
    check_refused(seg::decode_frame(b, 8192, 42).status(), {"frame checksum mismatch"});
  }
  // Fields wrong under a valid CRC (a bug, not a flip): each refused on its own.
  auto rebuilt = [&](std::size_t at, std::uint64_t v, int bytes) {
    std::string b = good;
    for (int i = 0; i < bytes; ++i) b[at + i] = static_cast<char>(v >> (8 * i));
    std::string again = b.substr(0, 8) + b.substr(8);
    seg::finish_frame(again, 0);
    return seg::decode_frame(again, 8192, 42).status();
  };
  check_refused(rebuilt(8, 0x47, 1), {"byte 8200", "frame kind 0x00000047", "expected 0x00000046"});
  check_refused(rebuilt(9, 43, 8), {"byte 8201", "frame seq 43", "the segment's 42"});
  check_refused(rebuilt(25, 8193, 4), {"byte 8217", "durable offset 8193", "4096 to the frame's offset 8192"});
  check_refused(rebuilt(25, 4095, 4), {"durable offset 4095"});
}

TEST_CASE("a record that does not parse is refused naming its byte") {
  const std::uint64_t at = 8192 + seg::k_frame_header_bytes;  // the first record's offset
  auto refused = [&](const std::string& records) { return decode_all(frame_of(records)); };
  auto entries_head = [](std::uint64_t first, std::uint32_t count, std::uint16_t runs) {
    std::string r;
    seg::put8(r, 1);
    seg::put_group(r, k_data7);
    seg::put64(r, first);
    seg::put32(r, count);
    seg::put16(r, runs);
    return r;
  };
  check_refused(refused(std::string(1, '\x08')), {"byte " + std::to_string(at), "record kind 0x00000008"});
  check_refused(refused(std::string(1, '\x00')), {"record kind 0x00000000"});
  {
    std::string r;
    seg::encode_record(r, seg::truncate_record{{3, 0}, 1});
    check_refused(refused(r), {"byte " + std::to_string(at + 1), "family 3, id 0", "expected family 0 with id 0"});
    r.clear();
    seg::encode_record(r, seg::truncate_record{{0, 5}, 1});
    check_refused(refused(r), {"family 0, id 5"});
    r.clear();
    seg::encode_record(r, seg::truncate_record{{4, 1}, 1});
    check_refused(refused(r), {"family 4, id 1"});
  }
  {
    std::string r;
    seg::encode_record(r, seg::truncate_record{k_data7, 1});
    r.pop_back();
    check_refused(refused(r), {"byte " + std::to_string(at + 10), "truncate since: needs 8 bytes, 7 left"});
  }
  check_refused(refused(entries_head(0, 1, 1)), {"byte " + std::to_string(at + 10), "entries first 0"});
  check_refused(refused(entries_head(1, 0, 0)), {"byte " + std::to_string(at + 18), "entries count 0"});
  check_refused(refused(entries_head(seshat::k_max_log_index, 2, 1)), {"pass the largest log index"});
  {
    std::string r = entries_head(1, 2, 1);
    seg::put64(r, 3);
    seg::put32(r, 1);  // covers 1 of 2
    check_refused(refused(r), {"term runs cover 1 entries: expected 2"});
  }
  {
    std::string r = entries_head(1, 2, 2);
    seg::put64(r, 3);
    seg::put32(r, 0);
    seg::put64(r, 4);
    seg::put32(r, 2);
    check_refused(refused(r), {"byte " + std::to_string(at + 24), "term run 0 of 0 entries"});
  }
  {
    std::string r = entries_head(1, 2, 2);
    seg::put64(r, 3);
    seg::put32(r, 1);
    seg::put64(r, 3);
    seg::put32(r, 1);
    check_refused(refused(r), {"byte " + std::to_string(at + 36), "term run 1 has term 3", "above the previous run's 3"});
  }
  check_refused(refused(entries_head(1, 1, 60000)), {"60000 term runs: need 720000 bytes"});
  {
    std::string r = entries_head(1, 1, 1);
    seg::put64(r, 3);
    seg::put32(r, 1);
    seg::put32(r, 100);  // size 100, but no payload follows
    check_refused(refused(r), {"byte " + std::to_string(at + 36), "size table adds up to 104 bytes, 0 left"});
  }
  {
    std::string r = entries_head(1, 3, 1);
    seg::put64(r, 3);
    seg::put32(r, 3);
    check_refused(refused(r), {"entries size table: needs 12 bytes, 0 left"});
  }
  {
    std::string r;
    seg::put8(r, 2);
    seg::put_group(r, k_data7);
    seg::put64(r, 5);
    seg::put8(r, 4);
    check_refused(refused(r), {"byte " + std::to_string(at + 18), "vote flags 0x00000004"});
  }
  {
    std::string r;
    seg::put8(r, 7);
    seg::put_group(r, k_data7);
    seg::put8(r, 8);
    check_refused(refused(r), {"byte " + std::to_string(at + 10), "state flags 0x00000008"});
  }
  {
    std::string r;
    seg::encode_record(r, seg::state_record{k_data7, vote{1, 2, false}, std::nullopt, std::nullopt, {1, 1}});
    r.resize(r.size() - 9);
    check_refused(refused(r), {"state last: needs 8 bytes"});
  }
}

// ---- footer and trailer ------------------------------------------------------------

namespace {

seg::group_summary sample_summary() {
  seg::group_summary s;
  s.group = k_data7;
  s.cut = 3;
  s.purged = log_id{1, 4};
  s.vote_value = vote{2, 1, true};
  s.committed = log_id{2, 9};
  s.own.base = 5;
  s.own.count = 6;
  s.own.runs = {{1, 2}, {2, 4}};
  s.own.records = {{4096, 0}, {4200, 2}, {4300, 5}};
  return s;
}

// A sealed segment image of `size` bytes holding footer `f`.
std::string sealed_image(const seg::footer& f, std::uint64_t seq = 42, std::uint64_t size = 16384) {
  seg::header h = sample_header();
  h.seq = seq;
  h.size = size;
  std::string file = seg::encode_header(h);
  file.resize(size, '\0');
  const std::string footer = seg::encode_footer(f, seq);
  const std::string trailer = seg::encode_trailer(footer, seq, size);
  file.replace(size - 32 - footer.size(), footer.size(), footer);
  file.replace(size - 32, 32, trailer);
  return file;
}

seg::header header_of(std::string_view file) { return seg::decode_header(file).value(); }

seg::footer sample_footer() {
  seg::footer f;
  f.body_end = 5000;
  f.frames = 3;
  f.last_number = 77;
  seg::group_summary sys;
  sys.group = k_system;
  sys.reset = true;
  sys.purged = log_id{3, 10};
  f.groups = {sys, sample_summary()};
  return f;
}

// The footer bytes of `f`, with the byte at `at` (from the footer's start)
// set to `v` and the footer's crc recomputed: a valid-looking footer.
std::string footer_with(const seg::footer& f, std::size_t at, std::uint64_t v, int bytes) {
  std::string b = seg::encode_footer(f, 42);
  for (int i = 0; i < bytes; ++i) b[at + i] = static_cast<char>(v >> (8 * i));
  std::string body = b.substr(0, b.size() - 4);
  char seq[8];
  for (int i = 0; i < 8; ++i) seq[i] = static_cast<char>(std::uint64_t{42} >> (8 * i));
  seg::put32(body, seshat::detail::crc32c_extend(seshat::detail::crc32c(std::string_view(seq, 8)), body));
  return body;
}

seshat::status decode_footer_bytes(const std::string& footer, std::uint64_t size = 16384) {
  return seg::decode_footer(footer, size - 32 - footer.size(), 42, size).status();
}

}  // namespace

TEST_CASE("a sealed segment's footer round-trips through its trailer") {
  const seg::footer f = sample_footer();
  const std::string file = sealed_image(f);
  auto back = seg::decode_seal(file, header_of(file));
  REQUIRE(back.ok());
  CHECK(*back == f);
  seg::footer empty;
  empty.body_end = 4096;
  const std::string none = sealed_image(empty);
  CHECK(seg::decode_seal(none, header_of(none)).value() == empty);
}

TEST_CASE("a seal that does not check is refused naming its byte") {
  const seg::footer f = sample_footer();
  const std::string file = sealed_image(f);
  const seg::header h = header_of(file);
  const std::size_t trailer_at = file.size() - 32;
  const std::size_t footer_size = seg::encode_footer(f, 42).size();
  const std::size_t footer_at = trailer_at - footer_size;
  check_refused(seg::decode_seal(std::string_view(file).substr(0, 8192), h).status(),
                {"segment of 8192 bytes", "says 16384"});
  {
    std::string b = file;
    b[trailer_at + 20] = 'x';
    check_refused(seg::decode_seal(b, h).status(), {"byte " + std::to_string(trailer_at + 20), "trailer magic"});
  }
  {
    std::string b = file;
    b[trailer_at + 1] ^= 1;
    check_refused(seg::decode_seal(b, h).status(), {"byte " + std::to_string(trailer_at + 28), "trailer checksum mismatch"});
  }
  {
    // A previous life's seal: its trailer names another seq.
    const std::string old = sealed_image(f, 41);
    check_refused(seg::decode_seal(old, h).status(), {"byte " + std::to_string(trailer_at + 8), "trailer seq 41", "previous life"});
  }
  {
    // The trailer of this seal over the footer of a previous life (a torn seal write).
    std::string b = file;
    const std::string old_footer = seg::encode_footer(f, 41);
    b.replace(footer_at, footer_size, old_footer);
    check_refused(seg::decode_seal(b, h).status(), {"byte " + std::to_string(trailer_at - 4), "expected the trailer's", "another seal"});
  }
  {
    std::string trailer = seg::encode_trailer(seg::encode_footer(f, 42), 42, 16384);
    put32_at(trailer, 0, 100);  // footer_at before the header's end
    put32_at(trailer, 28, seshat::detail::crc32c(std::string_view(trailer).substr(0, 28)));
    check_refused(seg::decode_trailer(trailer, 42, 16384).status(),
                  {"byte " + std::to_string(trailer_at), "trailer places the footer at 100"});
  }
  check_refused(seg::decode_trailer("short", 42, 16384).status(), {"trailer of 5 bytes"});
  // Footer refusals, each with a footer whose crc checks.
  const std::string good = seg::encode_footer(f, 42);
  const std::uint64_t at = 16384 - 32 - good.size();
  check_refused(seg::decode_footer(good, at, 43, 16384).status(),
                {"byte " + std::to_string(at + good.size() - 4), "footer checksum mismatch"});
  check_refused(seg::decode_footer(good.substr(0, 31), 16384 - 63, 42, 16384).status(), {"footer of 31 bytes"});
  {
    std::string b = good;
    b[0] = 'x';
    check_refused(seg::decode_footer(b, at, 42, 16384).status(), {"byte " + std::to_string(at), "footer magic"});
  }
  check_refused(seg::decode_footer(good, at - 1, 42, 16384).status(), {"footer ends at", "trailer's offset 16352"});
  check_refused(decode_footer_bytes(footer_with(f, 8, 4095, 4)), {"byte " + std::to_string(at + 8), "body_end 4095"});
  check_refused(decode_footer_bytes(footer_with(f, 8, at + 1, 4)),
                {"body_end " + std::to_string(at + 1), "to the footer's offset " + std::to_string(at)});
  check_refused(decode_footer_bytes(footer_with(f, 24, 1000, 4)), {"byte " + std::to_string(at + 24), "1000 group summaries: at most"});
  check_refused(decode_footer_bytes(footer_with(f, 24, 1, 4)), {"bytes after the last summary"});
  // The first summary (the system group) starts at 28: group 9 bytes, flags at 37.
  check_refused(decode_footer_bytes(footer_with(f, 37, 0x20, 1)), {"byte " + std::to_string(at + 37), "summary flags 0x00000020"});
  check_refused(decode_footer_bytes(footer_with(f, 37, 0x01, 1)), {"a reset needs a purged id"});
  check_refused(decode_footer_bytes(footer_with(f, 37, 0x07, 1)), {"a reset carries no cut"});
  check_refused(decode_footer_bytes(footer_with(f, 28, 3, 1)), {"byte " + std::to_string(at + 28), "family 3, id 0"});
  {
    seg::footer twice = f;
    twice.groups = {sample_summary(), sample_summary()};
    const std::string b = seg::encode_footer(twice, 42);
    check_refused(decode_footer_bytes(b), {"expected above group (family 3, id 7)", "group order"});
  }
  auto with_summary = [&](const seg::group_summary& s) {
    seg::footer g = f;
    g.groups = {s};
    return decode_footer_bytes(seg::encode_footer(g, 42));
  };
  {
    seg::group_summary s;
    s.group = k_data7;
    s.own.base = 5;  // no entries, but a base
    check_refused(with_summary(s), {"summary of no entries with base 5"});
  }
  {
    seg::group_summary s = sample_summary();
    s.own.records = {{4096, 1}, {4200, 2}};
    check_refused(with_summary(s), {"record 0 (offset 4096, first 1)", "increasing from 0"});
    s.own.records = {{4200, 0}, {4100, 2}};
    check_refused(with_summary(s), {"record 1 (offset 4100, first 2)"});
    s.own.records = {{4096, 0}, {4200, 6}};
    check_refused(with_summary(s), {"record 1 (offset 4200, first 6)", "below 6"});
    s.own.records = {{4000, 0}};
    check_refused(with_summary(s), {"offset 4000"});
    s.own.records = {{4096, 0}, {5000, 1}};
    check_refused(with_summary(s), {"record offset 5000 at or past body_end 5000"});
    s.own.records = {};
    check_refused(with_summary(s), {"0 records for 6 entries"});
    s = sample_summary();
    s.own.runs = {{2, 2}, {1, 4}};
    check_refused(with_summary(s), {"term run 1 has term 1"});
    s.own.runs = {{1, 2}};
    check_refused(with_summary(s), {"term runs cover 2 entries: expected 6"});
  }
}

// ---- composition ---------------------------------------------------------------------

namespace {

// Random valid record sequences for a few groups, as log_store would issue
// them: appends at last + 1 or cutting back (never at or below the purge
// point), truncations, purges up to the last entry, resets, votes,
// commits, and state records carrying a group's whole state forward.
struct workload {
  struct model {
    std::uint64_t last = 0, purged = 0, term = 1;
    std::map<std::uint64_t, std::uint64_t> terms;  // index -> term
    std::optional<vote> v;
    std::optional<log_id> committed, purged_id;
  };
  std::mt19937_64 rng;
  std::map<seg::group_address, model> groups;
  std::vector<seg::group_address> addresses{{0, 0}, {3, 1}, {3, 2}};
  std::vector<std::string> payloads;

  explicit workload(std::uint64_t seed) : rng(seed) {
    for (int i = 0; i < 64; ++i) payloads.push_back(std::string(i % 17, static_cast<char>('a' + i % 26)));
  }
  std::uint64_t pick(std::uint64_t lo, std::uint64_t hi) {  // [lo, hi]
    return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng);
  }

  // One record's bytes for segment `seq`.
  std::string next(std::uint64_t seq) {
    const seg::group_address g = addresses[pick(0, addresses.size() - 1)];
    model& m = groups[g];
    std::string out;
    const std::uint64_t kind = pick(0, 19);
    if (kind < 10) {  // append
      std::uint64_t first = m.last + 1;
      if (m.last > m.purged && pick(0, 3) == 0) first = pick(m.purged + 1, m.last);
      if (pick(0, 4) == 0) ++m.term;
      const std::uint64_t before = first - 1 > m.purged ? m.terms[first - 1] : 0;
      std::uint64_t term = std::max(m.term, before);
      std::vector<seg::entry_input> in;
      const std::uint64_t n = pick(1, 6);
      for (std::uint64_t i = 0; i < n; ++i) {
        if (i > 0 && pick(0, 5) == 0) term = ++m.term;
        in.push_back({term, payloads[pick(0, payloads.size() - 1)]});
      }
      REQUIRE(seg::append_entries(out, seq, g, first, in).ok());
      m.terms.erase(m.terms.lower_bound(first), m.terms.end());
      for (std::uint64_t i = 0; i < n; ++i) m.terms[first + i] = in[i].term;
      m.last = first + n - 1;
      m.term = std::max(m.term, term);
    } else if (kind < 12 && m.last > m.purged) {  // truncate
      const std::uint64_t since = pick(m.purged + 1, m.last + 1);
      seg::encode_record(out, seg::truncate_record{g, since});
      m.terms.erase(m.terms.lower_bound(since), m.terms.end());
      m.last = since - 1;
    } else if (kind < 14 && m.last > m.purged) {  // purge
      const std::uint64_t upto = pick(m.purged + 1, m.last);
      m.purged_id = log_id{m.terms[upto], upto};
      seg::encode_record(out, seg::purge_record{g, *m.purged_id});
      m.terms.erase(m.terms.begin(), m.terms.upper_bound(upto));
      m.purged = upto;
    } else if (kind < 15) {  // reset
      const std::uint64_t to = m.purged + pick(0, 20);
      m.purged_id = log_id{++m.term, to};
      seg::encode_record(out, seg::reset_record{g, *m.purged_id});
      m.terms.clear();
      m.purged = m.last = to;
    } else if (kind < 17) {
      m.v = vote{m.term, pick(0, 1) ? std::optional<std::uint64_t>(pick(1, 5)) : std::nullopt, pick(0, 1) == 1};
      seg::encode_record(out, seg::vote_record{g, *m.v});
    } else if (kind < 18) {
      m.committed = log_id{m.term, m.last};
      seg::encode_record(out, seg::committed_record{g, *m.committed});
    } else {
      const log_id last{m.last > m.purged ? m.terms[m.last] : (m.purged_id ? m.purged_id->term : 0), m.last};
      seg::encode_record(out, seg::state_record{g, m.v, m.committed, m.purged_id, last});
    }
    return out;
  }
};

struct built_segment {
  std::uint64_t seq;
  std::string file;
  std::vector<seg::record> records;  // decoded back from `file`
};

// Segments 1..n of random frames, each decoded back from its bytes and
// sealed with the footer its records make (decoded back from its bytes too).
std::vector<built_segment> build_segments(workload& w, int n) {
  std::vector<built_segment> out;
  std::uint64_t number = 0;
  for (int s = 1; s <= n; ++s) {
    const auto seq = static_cast<std::uint64_t>(s);
    seg::header h{0, seq, 0, seg::k_min_segment_bytes * 4, 0};
    built_segment b{seq, seg::encode_header(h), {}};
    const std::uint64_t frames = w.pick(0, 12);
    for (std::uint64_t f = 0; f < frames; ++f) {
      const std::size_t start = seg::begin_frame(b.file, {seq, ++number, static_cast<std::uint32_t>(b.file.size())});
      const std::uint64_t records = w.pick(1, 5);
      for (std::uint64_t r = 0; r < records; ++r) {
        std::string rec;
        while (rec.empty()) rec = w.next(seq);
        b.file += rec;
      }
      seg::finish_frame(b.file, start);
    }
    const auto body_end = static_cast<std::uint32_t>(b.file.size());
    b.file.resize(h.size, '\0');
    // Scan it as recovery would, to the end.
    std::uint32_t at = seg::k_header_bytes;
    for (;;) {
      auto f = seg::decode_frame(std::string_view(b.file).substr(at, h.size - 32 - at), at, seq);
      REQUIRE(f.ok());
      if (f->what != seg::scanned_frame::kind::frame) break;
      REQUIRE(seg::decode_records(*f, b.records).ok());
      at += f->size;
    }
    REQUIRE(at == body_end);
    std::map<seg::group_address, seg::summary_builder> builders;
    for (const seg::record& r : b.records) builders.try_emplace(r.group(), r.group()).first->second.add(r);
    seg::footer footer{body_end, static_cast<std::uint32_t>(frames), number, {}};
    for (const auto& [g, builder] : builders) footer.groups.push_back(builder.finish());
    const std::string fb = seg::encode_footer(footer, seq);
    REQUIRE(fb.size() + 32 <= h.size - body_end);
    b.file.replace(h.size - 32 - fb.size(), fb.size(), fb);
    b.file.replace(h.size - 32, 32, seg::encode_trailer(fb, seq, h.size));
    out.push_back(std::move(b));
  }
  return out;
}

using replayed = std::map<seg::group_address, seg::replayed_group>;

// Each group's state as text, for failure messages.
std::string describe(const replayed& state) {
  std::string out;
  for (const auto& [g, r] : state) {
    out += seg::to_string(g) + ": purged " + (r.purged ? seshat::to_string(*r.purged) : "-") +
           " vote " + (r.vote_value ? seshat::to_string(*r.vote_value) : "-") + " committed " +
           (r.committed ? seshat::to_string(*r.committed) : "-") + "\n";
    for (const seg::piece& p : r.pieces) {
      out += "  seq " + std::to_string(p.seq) + " [" + std::to_string(p.base) + ", " +
             std::to_string(p.end()) + ") runs";
      for (const auto& run : p.runs) out += " " + std::to_string(run.term) + "x" + std::to_string(run.count);
      out += " records";
      for (const auto& ref : p.records) out += " " + std::to_string(ref.offset) + "/" + std::to_string(ref.first);
      out += "\n";
    }
  }
  return out;
}

void replay_records(replayed& state, const built_segment& b) {
  for (const seg::record& r : b.records) {
    const seshat::status s = state[r.group()].apply(r, b.seq);
    INFO(s.to_string());
    REQUIRE(s.ok());
  }
}

void apply_footer(replayed& state, const built_segment& b) {
  auto footer = seg::decode_seal(b.file, header_of(b.file));
  INFO(footer.status().to_string());
  REQUIRE(footer.ok());
  for (const seg::group_summary& s : footer->groups) {
    const seshat::status st = state[s.group].apply(s, b.seq);
    INFO(st.to_string());
    REQUIRE(st.ok());
  }
}

}  // namespace

TEST_CASE("footer summaries applied in seq order equal replaying every record, from any segment on") {
  const std::uint64_t seeds = env_number("SESHAT_SEGMENT_SEEDS", 200);
  const std::uint64_t first_seed = env_number("SESHAT_SEGMENT_SEED", 1);
  for (std::uint64_t seed = first_seed; seed < first_seed + seeds; ++seed) {
    CAPTURE(seed);
    workload w(seed);
    const std::vector<built_segment> segments = build_segments(w, 6);
    replayed all;
    for (const auto& b : segments) replay_records(all, b);
    for (std::size_t split = 0; split <= segments.size(); ++split) {
      CAPTURE(split);
      replayed mixed;
      for (std::size_t i = 0; i < split; ++i) replay_records(mixed, segments[i]);
      for (std::size_t i = split; i < segments.size(); ++i) apply_footer(mixed, segments[i]);
      for (auto& [g, s] : all) mixed[g];  // a group touched only by no-ops has an empty state too
      INFO("replayed:\n" << describe(all) << "from summaries:\n" << describe(mixed));
      REQUIRE(mixed == all);
    }
    // And what replay holds agrees with the workload's own model of each group.
    for (const auto& [g, m] : w.groups) {
      const seg::replayed_group& r = all[g];
      CHECK(r.vote_value == m.v);
      CHECK(r.committed == m.committed);
      CHECK(r.purged == m.purged_id);
      CHECK(r.last_index() == m.last);
      std::uint64_t live = 0;
      for (const seg::piece& p : r.pieces)
        for (std::uint64_t i = std::max(p.base, m.purged + 1); i < p.end(); ++i) ++live;
      CHECK(live == m.terms.size());
    }
  }
}

TEST_CASE("replay refuses an append that leaves a gap or lands at or below the purge point") {
  seg::replayed_group g;
  auto entries = [](std::uint64_t first, std::uint32_t n) {
    seg::record r;
    r.offset = 4096;
    seg::entries_record e;
    e.group = k_data7;
    e.first = first;
    e.count = n;
    e.runs = {{1, n}};
    r.body = e;
    return r;
  };
  REQUIRE(g.apply(entries(10, 5), 1).ok());  // a group first seen at 10: its older segments are freed
  check_refused(g.apply(entries(16, 1), 1), {"entries from 16 after last index 14 (a gap)"});
  seg::record purge;
  purge.body = seg::purge_record{k_data7, {1, 12}};
  REQUIRE(g.apply(purge, 1).ok());
  check_refused(g.apply(entries(12, 1), 1), {"entries from 12 at or below last purged 12"});
  seg::group_summary s;
  s.group = k_data7;
  s.own.base = 20;
  s.own.count = 1;
  s.own.runs = {{1, 1}};
  s.own.records = {{4096, 0}};
  check_refused(g.apply(s, 2), {"entries from 20 after last index 14"});
}

}  // TEST_SUITE
