// Entry types and serializers the Raft-layer tests use: one per serializer
// policy (Boost, memcpy, a user-written one).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "seshat/detail/fixed_codec.hpp"
#include "seshat/serializer.hpp"
#include "seshat/status.hpp"

namespace seshat::test {

// A user's entry with a string and a vector: Boost.Serialization encodes it.
struct text_entry {
  std::uint64_t term = 0;
  std::uint64_t index = 0;
  std::string text;
  std::vector<std::string> tags;

  template <class Archive>
  void serialize(Archive& a, unsigned /*version*/) {
    a & term & index & text & tags;
  }
  friend bool operator==(const text_entry&, const text_entry&) = default;
};

// A user's entry with a payload and a vector of numbers, for Boost: what the
// model and corruption tests store.
struct tagged_entry {
  std::uint64_t term = 0;
  std::uint64_t index = 0;
  std::string payload;
  std::vector<std::uint32_t> tags;

  template <class Archive>
  void serialize(Archive& a, unsigned /*version*/) {
    a & term & index & payload & tags;
  }
  friend bool operator==(const tagged_entry&, const tagged_entry&) = default;
};

// A trivially copyable entry: memcpy_serializer stores its bytes.
struct fixed_entry {
  std::uint64_t term = 0;
  std::uint64_t index = 0;
  char payload[24] = {};
  friend bool operator==(const fixed_entry& a, const fixed_entry& b) {
    return a.term == b.term && a.index == b.index && std::memcmp(a.payload, b.payload, 24) == 0;
  }
};

// A user-written serializer for text_entry: length-prefixed fields.
struct text_serializer {
  static void encode(const text_entry& e, std::string& out) {
    detail::put_u64(out, e.term);
    detail::put_u64(out, e.index);
    put_string(out, e.text);
    detail::put_u64(out, e.tags.size());
    for (const auto& t : e.tags) put_string(out, t);
  }
  static status decode(std::string_view in, text_entry& e) {
    detail::fixed_reader r(in);
    e.term = r.u64();
    e.index = r.u64();
    if (!take_string(r, e.text)) return bad();
    const std::uint64_t n = r.u64();
    if (!r.ok() || n > r.rest().size()) return bad();
    e.tags.assign(n, {});
    for (auto& t : e.tags)
      if (!take_string(r, t)) return bad();
    return r.done() ? status{} : bad();
  }

 private:
  static status bad() { return status::corrupted_data("text_serializer: malformed entry"); }
  static void put_string(std::string& out, const std::string& s) {
    detail::put_u64(out, s.size());
    out += s;
  }
  static bool take_string(detail::fixed_reader& r, std::string& s) {
    const std::uint64_t n = r.u64();
    if (!r.ok() || n > r.rest().size()) return false;
    s.assign(r.rest().substr(0, n));
    r = detail::fixed_reader(r.rest().substr(n));
    return true;
  }
};

// A distinct entry for (term, index).
template <class Entry>
Entry make_entry(std::uint64_t term, std::uint64_t index) {
  Entry e{};
  e.term = term;
  e.index = index;
  const std::string text = "entry " + std::to_string(index) + " of term " + std::to_string(term);
  if constexpr (std::is_same_v<Entry, text_entry>) {
    e.text = text;
    e.tags = {"t" + std::to_string(term), std::string(index % 7, 'x')};
  } else {
    std::memcpy(e.payload, text.data(), std::min(text.size(), sizeof e.payload));
  }
  return e;
}

template <class Entry>
std::vector<Entry> make_entries(std::uint64_t term, std::uint64_t first, std::uint64_t count) {
  std::vector<Entry> out;
  for (std::uint64_t i = first; i < first + count; ++i) out.push_back(make_entry<Entry>(term, i));
  return out;
}

}  // namespace seshat::test
