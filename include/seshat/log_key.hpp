// seshat/log_key.hpp: the byte-level log key format of Storage's log
// helpers.
//
//   log_key   := "log:" index20        one entry of a log column family
//   index20   := 20 decimal digits, the index zero-padded (sorts as numbers)
//   floor_key := "log_floor"           the index an empty log accepts next,
//                                      as 20 digits; written by
//                                      truncate_log_before, and by
//                                      truncate_log_from when it empties the log
//
// "log_floor" sorts after every log_key ('_' > ':'), so the entries of a log
// are exactly the keys in ["log:", "log;").
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <cstdint>
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

// Writes index as 20 zero-padded decimal digits.
inline std::string digits(std::uint64_t index) { return detail::padded_digits(index, k_digits); }

inline std::string encode(std::uint64_t index) { return std::string(k_prefix) + digits(index); }

// The index of 20 decimal digits, or nothing when `text` is not that.
inline std::optional<std::uint64_t> parse_digits(std::string_view text) {
  return detail::parse_digits(text, k_digits);
}

// The index a log key encodes, or nothing when `key` is not a log key.
inline std::optional<std::uint64_t> decode(std::string_view key) {
  if (key.substr(0, k_prefix.size()) != k_prefix) return std::nullopt;
  return parse_digits(key.substr(k_prefix.size()));
}

}  // namespace seshat::log_key
