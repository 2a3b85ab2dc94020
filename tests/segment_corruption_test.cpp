// Damaged segment files of the log engine (backends/segment/, docs/
// log-engine.md section 12): every truncation at every byte of every
// segment of a small store, and bit flips at every byte (all eight bits of
// every byte of the format's structure, one bit of every payload, padding
// and free-space byte), each on a fresh copy in memory_log_fs. Open refuses
// with corrupted_data naming the segment and a byte, or it opens and then
// every group's state is the one written (or, after a flip in the last
// frame of the last segment, the one before that frame: the documented
// tail rule) and every read returns the written entries byte for byte or
// corrupted_data. The outcomes by region are the table of docs/format.md
// section 11, which the test checks too.
#include <doctest/doctest.h>

#include <array>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "seshat/backends/segment/segment_log.hpp"

TEST_SUITE_BEGIN("segment corruption");

namespace {

using seshat::errc;
using seshat::log_entry_input;
using seshat::log_group;
using seshat::log_id;
using seshat::segment_log;
using seshat::segment_log_options;
using seshat::status;
using seshat::detail::memory_log_fs;
namespace seg = seshat::detail::segment;

const log_group k_system{0, 0}, k_one{3, 1}, k_two{3, 2};

// The sanitizer trees (-O0, instrumented, about twenty times slower) flip
// one bit of every byte where the format has structure, and try one byte in
// k_unstructured_stride of the header padding, payloads and free space, for
// flips and for truncations (about 12,000 of each, instead of 65,536 of
// each there before and 141,000 flips here). The plain tree tries every one.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool k_every_bit_of_structure = false;
constexpr std::size_t k_unstructured_stride = 16;
#else
constexpr bool k_every_bit_of_structure = true;
constexpr std::size_t k_unstructured_stride = 1;
#endif
const log_group k_groups[] = {k_system, k_one, k_two};

// The files of /log, by name.
using disk = std::map<std::string, std::string>;

segment_log_options small_segments(seshat::recovery_mode m = seshat::recovery_mode::tolerate_corrupted_tail) {
  segment_log_options o;
  o.segment_bytes = 16 * 1024;
  o.recovery = m;
  // The store's last segment is the unsealed one a crash leaves, as the
  // fixture builds it; a prepared, still empty segment after it (all zeros
  // past its header) is not yet one of the regions this test damages.
  o.prepare_ahead = false;
  return o;
}

disk read_disk(memory_log_fs& mem) {
  disk d;
  auto names = mem.list("/log");
  REQUIRE(names.ok());
  for (const std::string& n : *names) d[n] = mem.contents("/log/" + n);
  return d;
}

std::unique_ptr<memory_log_fs> make_fs(const disk& d) {
  auto mem = std::make_unique<memory_log_fs>();
  REQUIRE(mem->create_directory("/log").ok());
  for (const auto& [name, bytes] : d) {
    auto f = mem->open("/log/" + name, {.create_exclusive = true});
    REQUIRE(f.ok());
    const std::string_view pieces[] = {bytes};
    if (!bytes.empty()) REQUIRE(mem->pwrite(*f, 0, pieces, {}).ok());
    REQUIRE(mem->close(*f).ok());
  }
  return mem;
}

std::string payload_of(const log_group& g, std::uint64_t i, std::uint64_t term) {
  std::string p = seg::to_string(g) + " entry " + std::to_string(i) + " term " + std::to_string(term) + " ";
  p.append(40 + (i * 37 + g.id * 11) % 160, static_cast<char>('a' + i % 26));
  return p;
}

void append(segment_log& log, const log_group& g, std::uint64_t first, std::size_t n, std::uint64_t term) {
  std::vector<std::string> payloads;
  for (std::size_t i = 0; i < n; ++i) payloads.push_back(payload_of(g, first + i, term));
  std::vector<log_entry_input> in;
  for (const std::string& p : payloads) in.push_back({term, p});
  const status s = log.append(g, first, in, true);
  REQUIRE_MESSAGE(s.ok(), s.to_string());
}

// The store: three groups over five 16 KiB segments, the first freed
// (its groups purged past it, the system group's vote carried forward), a
// truncation and a term change, votes and committed ids; every append
// synced. Every segment but the last sealed, then the disk copied as a
// crash leaves it (the last segment unsealed), and one middle segment's
// trailer broken as a seal lost to a power loss: it is scanned.
struct fixture {
  disk files;
  std::string lost_seal;  // the segment whose seal is broken
  std::string last;       // the unsealed last segment
  std::uint32_t last_frame = 0;  // the offset of the last segment's last frame
};

fixture build_store() {
  memory_log_fs mem;
  auto opened = segment_log::open(mem, "/log", small_segments());
  REQUIRE_MESSAGE(opened.ok(), opened.status().to_string());
  segment_log& log = **opened;
  REQUIRE(log.save_vote(k_system, seshat::vote{1, 1, true}).ok());
  append(log, k_system, 1, 3, 1);
  std::uint64_t next1 = 1, next2 = 1, next0 = 4, term2 = 1;
  for (int round = 0; round < 12; ++round) {
    append(log, k_one, next1, 3, 1);
    next1 += 3;
    append(log, k_two, next2, 1, 1);
    next2 += 1;
  }
  REQUIRE(log.save_committed(k_one, log_id{1, next1 - 1}).ok());
  for (int round = 0; round < 70; ++round) {
    append(log, k_one, next1, 2 + round % 3, 1 + round / 25);
    next1 += 2 + round % 3;
    if (round % 4 == 0) {
      append(log, k_two, next2, 1, term2);
      ++next2;
    }
    if (round == 15) {
      REQUIRE(log.truncate_from(k_two, next2 - 2, true).ok());
      next2 -= 2;
      term2 = 2;
      append(log, k_two, next2, 3, term2);
      next2 += 3;
      REQUIRE(log.save_vote(k_two, seshat::vote{2, 3, false}).ok());
    }
    if (round == 20) append(log, k_system, next0++, 1, 2);
  }
  // Purge each group past its entries in the first segment, so that it is freed.
  REQUIRE(log.sync().ok());
  {
    const std::string first = mem.contents("/log/" + seg::segment_name(1));
    std::map<log_group, std::uint64_t> highest;
    std::uint32_t at = seg::k_header_bytes;
    for (;;) {
      auto f = seg::decode_frame(std::string_view(first).substr(at), at, 1);
      REQUIRE(f.ok());
      if (f->what != seg::scanned_frame::kind::frame) break;
      std::vector<seg::record> records;
      REQUIRE(seg::decode_records(*f, records).ok());
      for (const seg::record& r : records)
        if (const auto* e = std::get_if<seg::entries_record>(&r.body))
          highest[e->group] = std::max(highest[e->group], e->first + e->count - 1);
      at += f->size;
    }
    REQUIRE(highest.size() == 3);
    for (const auto& [g, i] : highest) REQUIRE(log.purge_to(g, log_id{log.term_at(g, i).value(), i}).ok());
  }
  REQUIRE(log.settle().ok());
  REQUIRE(log.freed_segments() >= 1);
  // The last segment's frames: more appends, a vote and a committed id.
  append(log, k_one, next1, 2, 3);
  next1 += 2;
  REQUIRE(log.save_committed(k_one, log_id{3, next1 - 1}).ok());
  append(log, k_two, next2, 1, 2);
  ++next2;
  append(log, k_one, next1, 3, 3);  // the last frame
  next1 += 3;
  REQUIRE(log.sync().ok());
  fixture fx;
  fx.files = read_disk(mem);  // as a crash now leaves it
  REQUIRE_MESSAGE(fx.files.size() >= 4, fx.files.size() << " segments");
  REQUIRE(fx.files.count(seg::segment_name(1)) == 0);  // freed
  fx.last = fx.files.rbegin()->first;
  fx.lost_seal = std::next(fx.files.begin(), 1)->first;
  std::string& lost = fx.files[fx.lost_seal];
  lost.back() = static_cast<char>(~lost.back());  // the trailer's crc
  // The last frame of the last segment.
  const std::string& img = fx.files[fx.last];
  std::uint32_t at = seg::k_header_bytes;
  const std::uint64_t seq = *seg::parse_segment_name(fx.last);
  for (;;) {
    auto f = seg::decode_frame(std::string_view(img).substr(at), at, seq);
    REQUIRE(f.ok());
    if (f->what != seg::scanned_frame::kind::frame) break;
    fx.last_frame = at;
    at += f->size;
  }
  REQUIRE(fx.last_frame > seg::k_header_bytes);
  opened->reset();  // after the copy: what it writes at close is not in it
  return fx;
}

// What a store holds: each group's state, terms and payloads.
struct group_view {
  seshat::segment_group_state state;
  std::map<std::uint64_t, std::pair<std::uint64_t, std::string>> entries;  // index -> term, payload
  friend bool operator==(const group_view&, const group_view&) = default;
};
using store_view = std::map<log_group, group_view>;

store_view view_of(segment_log& log) {
  store_view v;
  for (const log_group& g : k_groups) {
    group_view& gv = v[g];
    gv.state = log.state(g);
    if (!gv.state.first) continue;
    auto got = log.read(g, *gv.state.first, gv.state.last->index + 1);
    REQUIRE_MESSAGE(got.ok(), got.status().to_string());
    for (std::uint64_t i = *gv.state.first; i <= gv.state.last->index; ++i)
      gv.entries[i] = {log.term_at(g, i).value(), (*got)[i - *gv.state.first]};
  }
  return v;
}

store_view view_of(const disk& d) {
  auto mem = make_fs(d);
  auto log = segment_log::open(*mem, "/log", small_segments(seshat::recovery_mode::absolute_consistency));
  REQUIRE_MESSAGE(log.ok(), log.status().to_string());
  return view_of(**log);
}

// The regions of a segment, as the table of format.md section 11 names them.
enum region : int {
  header_fields,   // magic to crc: [0, 48)
  header_padding,  // zeros to 4096
  frame_header,    // length, crc, kind, seq, number, durable
  entry_table,     // an entries record up to its entries: kind, group, first, count, runs, sizes
  payload,         // an entry's crc and payload
  other_record,    // vote, committed, truncate, purge, reset, state
  end_marker,      // the body's zero length
  free_space,      // after it, to the footer (or the file's end); zeros (nothing prepared: none recycled)
  footer_region,
  trailer_region,
  k_regions
};
const char* const k_region_names[] = {"header fields", "header padding", "frame header",
                                      "entry table",   "entry payload",  "other record",
                                      "end marker",    "free space",     "footer",
                                      "trailer"};

// Each byte's region in `img` (segment `seq`), from its frames and seal.
std::vector<region> regions_of(const std::string& img, std::uint64_t seq) {
  std::vector<region> out(img.size(), free_space);
  std::fill(out.begin(), out.begin() + seg::k_header_fields_bytes + 4, header_fields);
  std::fill(out.begin() + seg::k_header_fields_bytes + 4, out.begin() + seg::k_header_bytes, header_padding);
  auto h = seg::decode_header(std::string_view(img).substr(0, seg::k_header_bytes));
  REQUIRE(h.ok());
  std::size_t seal_from = img.size();
  if (auto t = seg::decode_trailer(std::string_view(img).substr(img.size() - seg::k_trailer_bytes), seq,
                                   img.size());
      t.ok()) {
    std::fill(out.begin() + t->footer_at, out.begin() + t->footer_at + t->footer_size, footer_region);
    seal_from = t->footer_at;
  }
  // A trailer that does not check (the lost seal) is still the trailer's bytes.
  std::fill(out.end() - seg::k_trailer_bytes, out.end(), trailer_region);
  if (seal_from == img.size()) {  // a broken trailer: its footer ends where it starts
    const std::string_view tail = std::string_view(img).substr(img.size() - seg::k_trailer_bytes);
    const std::uint32_t footer_at = seg::load32(tail.data()), footer_size = seg::load32(tail.data() + 4);
    if (footer_at >= seg::k_header_bytes && footer_at + footer_size == img.size() - seg::k_trailer_bytes)
      std::fill(out.begin() + footer_at, out.end() - seg::k_trailer_bytes, footer_region);
    else
      std::fill(out.end() - seg::k_trailer_bytes, out.end(), free_space);  // an unsealed segment
  }
  std::uint32_t at = seg::k_header_bytes;
  for (;;) {
    auto f = seg::decode_frame(std::string_view(img).substr(at), at, seq);
    REQUIRE(f.ok());
    if (f->what != seg::scanned_frame::kind::frame) break;
    std::fill(out.begin() + at, out.begin() + at + seg::k_frame_header_bytes, frame_header);
    std::vector<seg::record> records;
    REQUIRE(seg::decode_records(*f, records).ok());
    for (const seg::record& r : records) {
      if (const auto* e = std::get_if<seg::entries_record>(&r.body)) {
        std::fill(out.begin() + r.offset, out.begin() + e->body_offset, entry_table);
        std::fill(out.begin() + e->body_offset, out.begin() + r.offset + r.size, payload);
      } else {
        std::fill(out.begin() + r.offset, out.begin() + r.offset + r.size, other_record);
      }
    }
    at += f->size;
  }
  std::fill(out.begin() + at, out.begin() + at + 4, end_marker);
  return out;
}

enum outcome : int { refused, exact, read_errors, tail_cut, k_outcomes };
const char* const k_outcome_names[] = {"refused at open", "opens, reads exact", "opens, some reads corrupted_data",
                                       "opens, last frame cut"};

// A refusal that names segment `name` and a byte.
bool names_segment_and_byte(const status& s, const std::string& name) {
  return s.is(errc::corrupted_data) && s.message().find(name + ", byte ") != std::string::npos;
}

struct checker {
  const fixture& fx;
  store_view whole, cut;  // the store; the store without its last frame
  int failures = 0;

  void fail(const std::string& what) {
    if (++failures <= 20) FAIL_CHECK(what);
  }

  // Opens `d` (damaged at `name`, byte `at`) and checks what it gives.
  outcome run(const disk& d, const std::string& name, std::size_t at, const std::string& what) {
    auto mem = make_fs(d);
    auto opened = segment_log::open(*mem, "/log", small_segments());
    if (!opened.ok()) {
      if (!names_segment_and_byte(opened.status(), name))
        fail(what + ": open refused without naming " + name + " and a byte: " + opened.status().to_string());
      return refused;
    }
    segment_log& log = **opened;
    bool same = true, same_as_cut = true;
    for (const log_group& g : k_groups) {
      same = same && log.state(g) == whole[g].state;
      same_as_cut = same_as_cut && log.state(g) == cut[g].state;
    }
    if (!same && !same_as_cut) {
      fail(what + ": opened with group states other than the written ones");
      return exact;
    }
    const bool is_cut = !same;
    if (is_cut && (name != fx.last || at < fx.last_frame))
      fail(what + ": the last frame was cut, for damage outside it");
    const store_view& want = is_cut ? cut : whole;
    bool errors = false;
    for (const log_group& g : k_groups) {
      const group_view& gv = want.at(g);
      for (const auto& [i, te] : gv.entries) {
        auto t = log.term_at(g, i);
        if (!t.ok() || *t != te.first) fail(what + ": term of entry " + std::to_string(i) + " differs");
      }
      if (!gv.state.first) continue;
      const std::uint64_t lo = *gv.state.first, hi = gv.state.last->index + 1;
      auto all = log.read(g, lo, hi);
      if (all.ok()) {
        for (std::uint64_t i = lo; i < hi; ++i)
          if ((*all)[i - lo] != gv.entries.at(i).second)
            fail(what + ": entry " + std::to_string(i) + " of " + seg::to_string(g) + " read back other bytes");
        continue;
      }
      if (!all.status().is(errc::corrupted_data)) {
        fail(what + ": a read failed other than corrupted_data: " + all.status().to_string());
        continue;
      }
      errors = true;
      for (std::uint64_t i = lo; i < hi; ++i) {
        auto one = log.read(g, i, i + 1);
        if (one.ok()) {
          if (one->front() != gv.entries.at(i).second)
            fail(what + ": entry " + std::to_string(i) + " of " + seg::to_string(g) + " read back other bytes");
        } else if (!names_segment_and_byte(one.status(), name)) {
          fail(what + ": a read refused without naming " + name + " and a byte: " + one.status().to_string());
        }
      }
    }
    if (is_cut) {  // and refused under absolute consistency
      opened->reset();
      auto strict_fs = make_fs(d);
      auto strict = segment_log::open(*strict_fs, "/log", small_segments(seshat::recovery_mode::absolute_consistency));
      if (strict.ok() || !names_segment_and_byte(strict.status(), name))
        fail(what + ": a cut tail was not refused under absolute_consistency");
      return tail_cut;
    }
    return errors ? read_errors : exact;
  }
};

using table = std::map<std::string, std::array<std::array<int, k_outcomes>, k_regions>>;

void print(const table& t, const char* title) {
  std::printf("%s\n", title);
  for (const auto& [kind, rows] : t)
    for (int r = 0; r < k_regions; ++r) {
      int total = 0;
      for (int o = 0; o < k_outcomes; ++o) total += rows[r][o];
      if (total == 0) continue;
      std::printf("  %-22s %-15s %7d:", kind.c_str(), k_region_names[r], total);
      for (int o = 0; o < k_outcomes; ++o)
        if (rows[r][o]) std::printf("  %s %d", k_outcome_names[o], rows[r][o]);
      std::printf("\n");
    }
}

int total(const std::array<int, k_outcomes>& row) {
  int n = 0;
  for (int x : row) n += x;
  return n;
}

// Whether the byte at `at` of region `r` is one the test damages (every one
// outside the sanitizer trees).
bool tried(region r, std::size_t at) {
  const bool unstructured = r == header_padding || r == payload || r == free_space;
  return !unstructured || at % k_unstructured_stride == 0;
}

std::string kind_of(const fixture& fx, const std::string& name) {
  if (name == fx.last) return "unsealed, last";
  if (name == fx.lost_seal) return "seal lost (scanned)";
  return "sealed";
}

}  // namespace

TEST_CASE("every bit flip of a segment gives an error or the written entries, never other bytes") {
  const fixture fx = build_store();
  checker c{fx, view_of(fx.files), {}};
  {
    disk without_last = fx.files;  // the cut a tolerated tail makes: an `end` at the last frame
    std::fill_n(without_last[fx.last].begin() + fx.last_frame, 4, '\0');
    c.cut = view_of(without_last);
  }
  REQUIRE_FALSE(c.cut == c.whole);
  table t;
  std::size_t trials = 0;
  for (const auto& [name, original] : fx.files) {
    const auto regions = regions_of(original, *seg::parse_segment_name(name));
    const std::string kind = kind_of(fx, name);
    disk d = fx.files;
    std::string& img = d[name];
    for (std::size_t at = 0; at < img.size(); ++at) {
      // Every bit where the format has structure; elsewhere one bit a byte, in turn.
      const region r = regions[at];
      if (!tried(r, at)) continue;
      const bool every_bit = k_every_bit_of_structure && r != header_padding && r != payload && r != free_space;
      for (int bit = every_bit ? 0 : static_cast<int>(at % 8); bit < 8; bit += every_bit ? 1 : 8) {
        img[at] = static_cast<char>(original[at] ^ (1 << bit));
        const std::string what = name + " byte " + std::to_string(at) + " bit " + std::to_string(bit) +
                                 " (" + kind + ", " + k_region_names[r] + ")";
        ++t[kind][r][c.run(d, name, at, what)];
        ++trials;
      }
      img[at] = original[at];
    }
  }
  print(t, "bit flips by segment kind and region:");
  CHECK(c.failures == 0);
  CHECK(trials > (k_every_bit_of_structure ? 100000u : 8000u));
  // The table of format.md section 11.
  for (const auto& [kind, rows] : t) {
    CAPTURE(kind);
    CHECK(rows[header_fields][refused] == total(rows[header_fields]));  // the header's crc
    CHECK(rows[header_padding][refused] == total(rows[header_padding]));  // decode_header checks the zeros
  }
  const auto& sealed = t.at("sealed");
  CHECK(sealed[footer_region][exact] > 0);  // scanned instead
  CHECK(sealed[footer_region][refused] + sealed[footer_region][read_errors] + sealed[footer_region][tail_cut] == 0);
  CHECK(sealed[trailer_region][exact] == total(sealed[trailer_region]));
  CHECK(sealed[payload][read_errors] > 0);
  CHECK(sealed[payload][refused] + sealed[payload][tail_cut] == 0);
  const auto& last = t.at("unsealed, last");
  CHECK(last[frame_header][tail_cut] > 0);
  CHECK(last[payload][read_errors] + last[entry_table][read_errors] == 0);  // the scan checks every frame
  const auto& lost = t.at("seal lost (scanned)");
  CHECK(lost[payload][refused] > 0);  // a later segment holds a frame: inside synced data
  CHECK(lost[payload][exact] + lost[payload][read_errors] + lost[payload][tail_cut] == 0);
}

TEST_CASE("every truncation of a segment is refused, naming the segment and a byte") {
  const fixture fx = build_store();
  int bad = 0;
  for (const auto& [name, original] : fx.files) {
    CAPTURE(name);
    disk d = fx.files;
    const auto regions = regions_of(original, *seg::parse_segment_name(name));
    for (std::size_t size = 0; size < original.size(); ++size) {
      if (!tried(regions[size], size)) continue;
      d[name] = original.substr(0, size);
      auto mem = make_fs(d);
      auto opened = segment_log::open(*mem, "/log", small_segments());
      if (opened.ok() || !names_segment_and_byte(opened.status(), name)) {
        if (++bad <= 10)
          FAIL_CHECK(name << " cut to " << size << " bytes: "
                          << (opened.ok() ? std::string("opened") : opened.status().to_string()));
      }
    }
  }
  CHECK(bad == 0);
}

TEST_SUITE_END();  // "segment corruption"
