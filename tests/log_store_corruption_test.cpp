// Corrupted stored bytes under log_store, on every backend and both shard
// kinds: bytes written straight into a log entry's value or a hard-state
// record (storage::put on the exact key, computed with group_keys). Whatever
// is wrong with the value, log_store reports corrupted data (version mismatch
// for an envelope of a newer format), naming the column family and the key;
// it never crashes and never returns wrong data, and what is not corrupted
// still reads.
#include <doctest/doctest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "seshat/detail/crc32c.hpp"
#include "seshat/detail/fixed_codec.hpp"
#include "seshat/detail/printable.hpp"
#include "seshat/envelope.hpp"
#include "seshat/log_store.hpp"
#include "log_entries.hpp"
#include "support.hpp"

TEST_SUITE_BEGIN("log corruption");

using namespace seshat;
using seshat::test::dump;
using seshat::test::open_store;
using seshat::test::scratch_dir;

namespace {

using stored_entry = seshat::test::tagged_entry;

stored_entry make_entry(std::uint64_t term, std::uint64_t index) {
  stored_entry e;
  e.term = term;
  e.index = index;
  e.payload = "entry " + std::to_string(index) + " of term " + std::to_string(term);
  e.tags = {static_cast<std::uint32_t>(index), static_cast<std::uint32_t>(term), 7};
  return e;
}

std::vector<stored_entry> make_entries(std::uint64_t term, std::uint64_t first, std::uint64_t count) {
  std::vector<stored_entry> out;
  for (std::uint64_t i = first; i < first + count; ++i) out.push_back(make_entry(term, i));
  return out;
}

// The stored value of an entry, as log_store writes it.
std::string stored_value(std::uint64_t stored_term, const stored_entry& e) {
  std::string payload;
  detail::put_u64(payload, stored_term);
  boost_serializer::encode(e, payload);
  return envelope::wrap(payload);
}

// One policy combination: a backend and the shard whose log is corrupted.
// `other` is another data group sharing the storage.
template <class B, class Shard>
struct corruption_config {
  using backend = B;
  using shard_type = Shard;
  using log = log_store<stored_entry, boost_serializer, B, Shard>;
  using other_log = log_store<stored_entry, boost_serializer, B, data_shard>;
  static Shard shard() {
    if constexpr (Shard::is_system) return Shard{};
    else return Shard{7};
  }
  static data_shard other() { return data_shard{8}; }
  static group_keys<binary_key_format> keys() { return {Shard::is_system, shard().id()}; }
};

template <class L, class B, class S>
std::unique_ptr<L> open_log(storage<B>& s, S shard) {
  auto opened = L::open(s, shard);
  if (!opened.ok()) throw std::runtime_error("log open failed: " + opened.status().to_string());
  return std::move(*opened);
}

// A corrupted version of a stored value and what reading it must answer.
struct corruption {
  std::string what;
  std::string bytes;
  std::set<errc> answers;
};

const std::set<errc> k_corrupted = {errc::corrupted_data};
const std::set<errc> k_newer = {errc::version_mismatch};
// A damaged version byte may read as corrupted data (the checksum fails) or
// as another format version, depending on which envelope.hpp checks first.
const std::set<errc> k_either = {errc::corrupted_data, errc::version_mismatch};

// What reading damaged envelope bytes must answer: corrupted data, or,
// when the version byte is not the current one, possibly version mismatch.
std::set<errc> answer_for(const std::string& bytes) {
  if (!bytes.empty() && static_cast<std::uint8_t>(bytes[0]) != envelope::k_version) return k_either;
  return k_corrupted;
}

// An intact envelope of format `version` around `payload`, sealed the way
// envelope::seal seals (whether its checksum covers the version byte or not).
std::string sealed_as(std::uint8_t version, std::string_view payload) {
  auto le32 = [](std::uint32_t v) {
    std::string out;
    for (int i = 0; i < 4; ++i) out += static_cast<char>(v >> (8 * i));
    return out;
  };
  const std::string current = envelope::wrap(payload);
  const std::string with_version(1, static_cast<char>(envelope::k_version));
  const bool covers_version =
      current.substr(1, 4) == le32(detail::crc32c(with_version + std::string(payload)));
  const std::string v(1, static_cast<char>(version));
  return v + le32(detail::crc32c(covers_version ? v + std::string(payload) : std::string(payload))) +
         std::string(payload);
}

// Every way the envelope of `good` can be damaged: each byte inverted and
// (when `every_bit`) each bit flipped, each truncation (down to empty), a
// byte appended, garbage (with the current version byte and with a random
// one); and intact envelopes of format version 0 (which no value has) and of
// newer versions.
std::vector<corruption> damaged(const std::string& good, bool every_bit = true) {
  std::vector<corruption> out;
  auto add = [&](std::string what, std::string bytes) {
    std::set<errc> answers = answer_for(bytes);
    out.push_back({std::move(what), std::move(bytes), std::move(answers)});
  };
  for (std::size_t i = 0; i < good.size(); ++i) {
    for (int bit = 0; bit < (every_bit ? 8 : 1); ++bit) {
      std::string b = good;
      b[i] = static_cast<char>(b[i] ^ (1 << bit));
      add("bit " + std::to_string(bit) + " of byte " + std::to_string(i) + " flipped", b);
    }
    std::string b = good;
    b[i] = static_cast<char>(~b[i]);
    add("byte " + std::to_string(i) + " inverted", b);
  }
  for (std::size_t n = 0; n < good.size(); ++n)
    add("truncated to " + std::to_string(n) + " bytes", good.substr(0, n));
  add("empty", "");
  add("a byte appended", good + 'x');
  add("all zero bytes", std::string(good.size(), '\0'));
  std::mt19937_64 rng(42);
  for (int n = 0; n < 32; ++n) {
    std::string garbage(std::uniform_int_distribution<std::size_t>(1, 120)(rng), '\0');
    for (char& c : garbage) c = static_cast<char>(rng());
    if (n % 2 == 0) garbage[0] = static_cast<char>(envelope::k_version);
    add("garbage of " + std::to_string(garbage.size()) + " bytes (#" + std::to_string(n) + ")", garbage);
  }
  const std::string_view payload = std::string_view(good).substr(envelope::k_header_size);
  for (int version : {2, 3, 0x7f, 0xff})
    out.push_back({"an intact envelope of format version " + std::to_string(version),
                   sealed_as(static_cast<std::uint8_t>(version), payload), k_newer});
  out.push_back({"an intact envelope of format version 0", sealed_as(0, payload), k_either});
  return out;
}

// "" when `s` is one of `answers` and names the family and key; else why not.
std::string refusal_problem(const status& s, const std::set<errc>& answers, column_family cf,
                            const std::string& key) {
  if (!answers.contains(s.code())) return "answered " + s.to_string();
  if (s.message().find(name_of(cf)) == std::string::npos)
    return "does not name the column family " + std::string(name_of(cf)) + ": " + s.to_string();
  if (s.message().find(detail::printable(key)) == std::string::npos)
    return "does not name the key '" + detail::printable(key) + "': " + s.to_string();
  return "";
}

// Collects failures of many variants, to report the first few at once.
class problems {
 public:
  void add(const std::string& variant, const std::string& problem) {
    if (problem.empty()) return;
    ++count_;
    if (count_ <= 8) text_ += "\n  " + variant + ": " + problem;
  }
  bool none() const { return count_ == 0; }
  std::string report() const {
    return std::to_string(count_) + " problem(s); the first:" + text_;
  }

 private:
  int count_ = 0;
  std::string text_;
};

}  // namespace

TEST_CASE_TEMPLATE_DEFINE("log_store: corrupted stored bytes are reported, never returned", C,
                          log_store_corruption) {
  using B = typename C::backend;
  using log_t = typename C::log;
  constexpr column_family k_log = log_t::k_log_family;
  constexpr column_family k_state = log_t::k_state_family;
  // Every write to a state family is synced: on disk, flip whole bytes only.
  constexpr bool k_every_bit = std::is_same_v<B, memory_backend>;
  const auto keys = C::keys();
  const auto good = make_entries(3, 1, 6);  // the log [1, 6], term 3
  scratch_dir dir;
  auto store = open_store<B>(dir.store());
  auto log = open_log<log_t>(*store, C::shard());
  REQUIRE(log->append(good).ok());
  REQUIRE(log->save_vote(vote{5, 2, true}).ok());
  REQUIRE(log->save_committed(log_id{3, 4}).ok());
  CAPTURE(B::k_name);
  INFO("group " << (C::shard_type::is_system ? std::string("system") : "data shard 7"));

  SUBCASE("every corruption of a stored entry makes reads of it fail with corrupted data naming "
          "the family and key; the entries around it still read") {
    const std::string key = keys.log(3);
    const std::string original = store->get(k_log, key).value();
    REQUIRE(original == stored_value(3, good[2]));  // the layout this test assumes
    problems found;
    const auto variants = damaged(original);
    for (const corruption& c : variants) {
      REQUIRE(store->put(k_log, key, c.bytes).ok());
      found.add(c.what + ", entries(1, 7)",
                refusal_problem(log->entries(1, 7).status(), c.answers, k_log, key));
      found.add(c.what + ", entries(3, 4)",
                refusal_problem(log->entries(3, 4).status(), c.answers, k_log, key));
      found.add(c.what + ", entries(2, 5)",
                refusal_problem(log->entries(2, 5).status(), c.answers, k_log, key));
      found.add(c.what + ", entry_at(3)",
                refusal_problem(log->entry_at(3).status(), c.answers, k_log, key));
      found.add(c.what + ", term_at(3)",
                refusal_problem(log->term_at(3).status(), c.answers, k_log, key));
      auto before = log->entries(1, 3);
      auto after = log->entries(4, 7);
      if (!before.ok() || *before != std::vector<stored_entry>(good.begin(), good.begin() + 2) ||
          !after.ok() || *after != std::vector<stored_entry>(good.begin() + 3, good.end()))
        found.add(c.what, "the entries around the corrupted one no longer read as written");
    }
    CHECK_MESSAGE(found.none(), found.report());
    CHECK(variants.size() > 400);
    REQUIRE(store->put(k_log, key, original).ok());
    CHECK(log->entries(1, 7).value() == good);
  }

  SUBCASE("an intact envelope whose entry bytes do not decode, or decode to another log id, is "
          "corrupted data naming the family and key") {
    const std::string key = keys.log(3);
    const std::string original = store->get(k_log, key).value();
    // The stored term, then the Boost encoding of the entry.
    std::string entry_bytes;
    boost_serializer::encode(good[2], entry_bytes);
    auto with_term = [](std::uint64_t term, std::string_view rest) {
      std::string p;
      detail::put_u64(p, term);
      p += rest;
      return envelope::wrap(p);
    };
    // A string length field of 2^64 - 1 (found by its marker payload).
    stored_entry marked = good[2];
    marked.payload = "MARKMARK";
    std::string marked_bytes;
    boost_serializer::encode(marked, marked_bytes);
    const std::size_t at = marked_bytes.find("MARKMARK");
    REQUIRE(at != std::string::npos);
    REQUIRE(at >= 8);
    std::string huge_length = marked_bytes;
    huge_length.replace(at - 8, 8, std::string(8, '\xff'));

    stored_entry other_index = good[2];
    other_index.index = 99;
    stored_entry other_term = good[2];
    other_term.term = 4;
    const std::vector<corruption> variants = {
        {"a payload too short for a term", envelope::wrap("abc"), k_corrupted},
        {"an empty payload", envelope::wrap(""), k_corrupted},
        {"a term and no entry", with_term(3, ""), k_corrupted},
        {"the entry cut short by 1 byte", with_term(3, entry_bytes.substr(0, entry_bytes.size() - 1)),
         k_corrupted},
        {"the entry cut in half", with_term(3, entry_bytes.substr(0, entry_bytes.size() / 2)),
         k_corrupted},
        {"the entry followed by 3 more bytes", with_term(3, entry_bytes + "xyz"), k_corrupted},
        {"the entry with a string length of 2^64 - 1", with_term(3, huge_length), k_corrupted},
        {"the entry bytes all 0xff", with_term(3, std::string(entry_bytes.size(), '\xff')),
         k_corrupted},
        {"the entry bytes all zero", with_term(3, std::string(entry_bytes.size(), '\0')), k_corrupted},
        {"entry 4's stored value under the key of entry 3", stored_value(3, good[3]), k_corrupted},
        {"an entry that says index 99", stored_value(3, other_index), k_corrupted},
        {"an entry of term 4 stored with term 3", stored_value(3, other_term), k_corrupted},
        {"an entry of term 3 stored with term 4", stored_value(4, good[2]), k_corrupted},
    };
    problems found;
    for (const corruption& c : variants) {
      REQUIRE(store->put(k_log, key, c.bytes).ok());
      found.add(c.what + ", entries(1, 7)",
                refusal_problem(log->entries(1, 7).status(), c.answers, k_log, key));
      found.add(c.what + ", entry_at(3)",
                refusal_problem(log->entry_at(3).status(), c.answers, k_log, key));
      CHECK(log->entries(4, 7).ok());
    }
    CHECK_MESSAGE(found.none(), found.report());

    // Without a stored term, term_at has nothing to answer either.
    for (std::string short_payload : {std::string(), std::string("abc"), std::string(7, '\x03')}) {
      REQUIRE(store->put(k_log, key, envelope::wrap(short_payload)).ok());
      CHECK(refusal_problem(log->term_at(3).status(), k_corrupted, k_log, key) == "");
    }

    // The message says which id the bytes hold and which the key says.
    REQUIRE(store->put(k_log, key, stored_value(3, good[3])).ok());
    const status moved = log->entry_at(3).status();
    CHECK(moved.is(errc::corrupted_data));
    CHECK(moved.message().find(to_string(log_id{3, 4})) != std::string::npos);
    CHECK(moved.message().find(to_string(log_id{3, 3})) != std::string::npos);
    REQUIRE(store->put(k_log, key, original).ok());
    CHECK(log->entries(1, 7).value() == good);
  }

  SUBCASE("truncate and purge that must read a corrupted entry refuse with corrupted data and "
          "write nothing") {
    const std::string key = keys.log(3);
    const std::string original = store->get(k_log, key).value();
    std::string flipped = original;
    flipped[original.size() - 2] = static_cast<char>(flipped[original.size() - 2] ^ 0x10);
    REQUIRE(store->put(k_log, key, flipped).ok());
    const auto before = dump(*store);
    const log_state state = log->get_log_state();

    const status purge = log->purge(3);  // records term_at(3) as the last purged id
    CHECK(refusal_problem(purge, k_corrupted, k_log, key) == "");
    const status truncate = log->truncate(4);  // the new last id is (term_at(3), 3)
    CHECK(refusal_problem(truncate, k_corrupted, k_log, key) == "");
    CHECK(dump(*store) == before);
    CHECK(log->get_log_state() == state);

    REQUIRE(store->put(k_log, key, original).ok());
    REQUIRE(log->purge(3).ok());
    CHECK(log->get_log_state().last_purged == log_id{3, 3});
  }

  SUBCASE("reopening a log whose last entry is corrupted fails naming it; repaired, it opens as "
          "before") {
    const std::string key = keys.log(6);
    const std::string original = store->get(k_log, key).value();
    log.reset();
    problems found;
    const auto variants = damaged(original);
    for (const corruption& c : variants) {
      REQUIRE(store->put(k_log, key, c.bytes).ok());
      auto reopened = log_t::open(*store, C::shard());
      found.add(c.what, reopened.ok() ? "the log opened" : refusal_problem(reopened.status(), c.answers, k_log, key));
    }
    CHECK_MESSAGE(found.none(), found.report());

    // An intact envelope with no room for a term: the last id is unknown.
    for (std::string short_payload : {std::string(), std::string(7, '\x03')}) {
      REQUIRE(store->put(k_log, key, envelope::wrap(short_payload)).ok());
      auto reopened = log_t::open(*store, C::shard());
      CHECK(refusal_problem(reopened.status(), k_corrupted, k_log, key) == "");
    }
    // A term, then entry bytes that do not decode: whether or not the log
    // opens, the entry never reads.
    {
      std::string payload;
      detail::put_u64(payload, 3);
      payload += "\x01\x02 not an entry";
      REQUIRE(store->put(k_log, key, envelope::wrap(payload)).ok());
      auto reopened = log_t::open(*store, C::shard());
      if (reopened.ok())
        CHECK(refusal_problem((*reopened)->entry_at(6).status(), k_corrupted, k_log, key) == "");
      else
        CHECK(refusal_problem(reopened.status(), k_corrupted, k_log, key) == "");
    }

    REQUIRE(store->put(k_log, key, original).ok());
    log = open_log<log_t>(*store, C::shard());
    CHECK(log->get_log_state().last == log_id{3, 6});
    CHECK(log->entries(1, 7).value() == good);
  }

  SUBCASE("reopening a log whose vote record is corrupted fails with corrupted data naming the "
          "family and key") {
    const std::string key = keys.state("vote");
    const std::string original = store->get(k_state, key).value();
    log.reset();
    auto vote_payload = [](std::string_view bytes) { return envelope::wrap(bytes); };
    std::string term_only;
    detail::put_u64(term_only, 5);
    auto variants = damaged(original, k_every_bit);
    // Intact envelopes whose vote record does not decode.
    variants.push_back({"a vote of 0 bytes", vote_payload(""), k_corrupted});
    variants.push_back({"a vote with a term and no flags", vote_payload(term_only), k_corrupted});
    variants.push_back({"a vote with an unknown flag", vote_payload(term_only + '\x04'), k_corrupted});
    variants.push_back({"a vote that says voted but names nobody", vote_payload(term_only + '\x01'),
                        k_corrupted});
    variants.push_back({"a vote with a byte too many", vote_payload(term_only + '\x00' + 'x'),
                        k_corrupted});
    problems found;
    for (const corruption& c : variants) {
      REQUIRE(store->put(k_state, key, c.bytes).ok());
      auto reopened = log_t::open(*store, C::shard());
      found.add(c.what, reopened.ok() ? "the log opened, with vote " +
                                            ((*reopened)->read_vote().value()
                                                 ? to_string(*(*reopened)->read_vote().value())
                                                 : std::string("none"))
                                      : refusal_problem(reopened.status(), c.answers, k_state, key));
    }
    CHECK_MESSAGE(found.none(), found.report());
    REQUIRE(store->put(k_state, key, original).ok());
    log = open_log<log_t>(*store, C::shard());
    CHECK(log->read_vote().value() == vote{5, 2, true});
  }

  SUBCASE("a corrupted committed or last-purged record also fails the reopen naming it") {
    REQUIRE(log->purge(2).ok());
    log.reset();
    for (const char* name : {"committed", "last_purged"}) {
      CAPTURE(name);
      const std::string key = keys.state(name);
      const std::string original = store->get(k_state, key).value();
      auto variants = damaged(original, k_every_bit);
      variants.push_back({"a log id of 15 bytes", envelope::wrap(std::string(15, '\1')), k_corrupted});
      variants.push_back({"a log id of 17 bytes", envelope::wrap(std::string(17, '\1')), k_corrupted});
      problems found;
      for (const corruption& c : variants) {
        REQUIRE(store->put(k_state, key, c.bytes).ok());
        auto reopened = log_t::open(*store, C::shard());
        found.add(c.what, reopened.ok() ? "the log opened"
                                        : refusal_problem(reopened.status(), c.answers, k_state, key));
      }
      CHECK_MESSAGE(found.none(), found.report());
      REQUIRE(store->put(k_state, key, original).ok());
    }
    log = open_log<log_t>(*store, C::shard());
    CHECK(log->read_committed().value() == log_id{3, 4});
    CHECK(log->get_log_state() == log_state{log_id{3, 2}, log_id{3, 6}});
    CHECK(log->entries(3, 7).value() == std::vector<stored_entry>(good.begin() + 2, good.end()));
  }

  SUBCASE("corrupted records of one group leave another group in the same storage intact") {
    using other_t = typename C::other_log;
    auto other = open_log<other_t>(*store, C::other());
    const auto theirs = make_entries(9, 1, 4);
    REQUIRE(other->append(theirs).ok());
    REQUIRE(other->save_vote(vote{9, 1, false}).ok());
    log.reset();
    other.reset();
    const std::string garbage = "\x01 and then not an envelope";
    REQUIRE(store->put(k_log, keys.log(2), garbage).ok());
    REQUIRE(store->put(k_log, keys.log(6), garbage).ok());
    for (const char* name : {"vote", "committed"})
      REQUIRE(store->put(k_state, keys.state(name), garbage).ok());
    CHECK(log_t::open(*store, C::shard()).status().is(errc::corrupted_data));
    other = open_log<other_t>(*store, C::other());
    CHECK(other->get_log_state().last == log_id{9, 4});
    CHECK(other->entries(1, 5).value() == theirs);
    CHECK(other->read_vote().value() == vote{9, 1, false});
  }
}

#if SESHAT_HAVE_ROCKSDB
#define SESHAT_CORRUPTION_ROCKSDB                              \
  , corruption_config<rocksdb_backend, system_shard>,          \
      corruption_config<rocksdb_backend, data_shard>
#else
#define SESHAT_CORRUPTION_ROCKSDB
#endif
#if SESHAT_HAVE_LEVELDB
#define SESHAT_CORRUPTION_LEVELDB                              \
  , corruption_config<leveldb_backend, system_shard>,          \
      corruption_config<leveldb_backend, data_shard>
#else
#define SESHAT_CORRUPTION_LEVELDB
#endif

TEST_CASE_TEMPLATE_INVOKE(log_store_corruption, corruption_config<memory_backend, system_shard>,
                          corruption_config<memory_backend, data_shard>
                              SESHAT_CORRUPTION_ROCKSDB SESHAT_CORRUPTION_LEVELDB);

// The checksum every envelope carries: the CRC-32C values the stored bytes
// were written with, whichever way this CPU computes them.
TEST_CASE("crc32c gives the standard values, on every length and alignment, as one chain does") {
  auto bytes = [](std::size_t n, auto byte) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(byte(i));
    return s;
  };
  // RFC 3720 (iSCSI), B.4, and the check value of the catalogue.
  CHECK(detail::crc32c("123456789") == 0xE3069283u);
  CHECK(detail::crc32c("") == 0u);
  CHECK(detail::crc32c(bytes(32, [](std::size_t) { return 0; })) == 0x8A9136AAu);
  CHECK(detail::crc32c(bytes(32, [](std::size_t) { return 0xFF; })) == 0x62A8AB43u);
  CHECK(detail::crc32c(bytes(32, [](std::size_t i) { return i; })) == 0x46DD794Eu);
  CHECK(detail::crc32c(bytes(32, [](std::size_t i) { return 31 - i; })) == 0x113FDB5Cu);
  // Long runs cross every lane size (3 x 256, 3 x 64, 3 x 32 bytes).
  CHECK(detail::crc32c(bytes(4096, [](std::size_t) { return 0; })) == 0x98F94189u);

  // Every length up to 2,100 bytes (each lane size's blocks and tails) at
  // every alignment mod 16, from a random register: the table, one crc32
  // chain and the three-lane path agree.
  std::mt19937_64 rng(13);
  const std::string data = bytes(2200, [&](std::size_t) { return rng(); });
  const auto* base = reinterpret_cast<const unsigned char*>(data.data());
  for (std::size_t n = 0; n <= 2100; ++n) {
    const std::size_t align = n % 16;
    const auto start = static_cast<std::uint32_t>(rng());
    const std::uint32_t table = detail::crc32c_portable(start, base + align, n);
#ifdef SESHAT_CRC32C_SSE42
    if (detail::crc32c_hardware()) {
      REQUIRE_MESSAGE(detail::crc32c_sse42(start, base + align, n) == table, "length " << n);
      REQUIRE_MESSAGE(detail::crc32c_sse42_3way(start, base + align, n) == table, "length " << n);
    }
#endif
    const std::string_view piece(data.data() + align, n);
    REQUIRE_MESSAGE(detail::crc32c_extend(start, piece) ==
                        (detail::crc32c_portable(start ^ 0xFFFFFFFFu, base + align, n) ^ 0xFFFFFFFFu),
                    "length " << n);
    // Piece by piece, split anywhere: the same as whole.
    const std::size_t cut = n == 0 ? 0 : static_cast<std::size_t>(rng() % (n + 1));
    REQUIRE(detail::crc32c_extend(detail::crc32c(piece.substr(0, cut)), piece.substr(cut)) ==
            detail::crc32c(piece));
  }
}

TEST_SUITE_END();  // "log corruption"
