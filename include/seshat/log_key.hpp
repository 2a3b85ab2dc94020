// seshat/log_key.hpp: the decimal spelling of a log's index, and the keys
// of the system group's log under decimal_key_format (key_format.hpp).
//
//   log_key   := "log:" index20        one entry of the system group's log
//   index20   := 20 decimal digits, the index zero-padded (sorts as numbers)
//   floor_key := "log_floor"           the index an empty log accepts next,
//                                      as index20 (written only for a log
//                                      whose floor storage keeps, storage.hpp)
//
// "log_floor" sorts after every log_key ('_' > ':'), so the entries of a log
// are exactly the keys in ["log:", "log;"). A data group's keys are these
// with the group's prefix in front (key_format.hpp).
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "seshat/detail/digits.hpp"

namespace seshat::log_key {

inline constexpr std::string_view k_prefix = "log:";
inline constexpr std::string_view k_floor = "log_floor";
inline constexpr std::size_t k_digits = 20;
// The first key after every entry key.
inline constexpr std::string_view k_end = "log;";

// Appends index as 20 zero-padded decimal digits to `out` (no temporary).
inline void append_digits(std::string& out, std::uint64_t index) {
  detail::append_padded_decimal(out, index, k_digits);
}

// Index as 20 zero-padded decimal digits.
inline std::string digits(std::uint64_t index) {
  std::string s;
  append_digits(s, index);
  return s;
}

inline std::string encode(std::uint64_t index) {
  std::string s(k_prefix);
  append_digits(s, index);
  return s;
}

// The index of 20 decimal digits, or nothing when `text` is not that.
inline std::optional<std::uint64_t> parse_digits(std::string_view text) {
  return detail::parse_digits(text, k_digits);
}

// The index a log key encodes, or nothing when `key` is not a log key.
inline std::optional<std::uint64_t> decode(std::string_view key) {
  if (key.size() < k_prefix.size() || std::memcmp(key.data(), k_prefix.data(), k_prefix.size()) != 0)
    return std::nullopt;
  return parse_digits(key.substr(k_prefix.size()));
}

}  // namespace seshat::log_key
