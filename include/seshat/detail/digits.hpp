// seshat/detail/digits.hpp: the one reader and writer of the numbers seshat
// spells as digits in names and text (log keys, the store marker's schema,
// the engines' log file numbers, a store snapshot's manifest, Raft snapshot
// file names). Not part of the public API.
//
//   number := digit+        base 10: '0'..'9'; base 16: '0'..'9' 'a'..'f'
//
// No sign, space, prefix ("0x") or upper-case hex digit: a name that holds
// one is not seshat's.
#pragma once

#include <charconv>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace seshat::detail {

// The number all of `text` spells in `base` (10 or 16), or nothing: when
// `text` is empty, holds anything but the digits of the grammar above, has
// not exactly `width` digits (when `width` is not 0), or overflows T.
// One pass, no std::from_chars: a log range read parses every entry's key.
template <std::unsigned_integral T = std::uint64_t>
std::optional<T> parse_digits(std::string_view text, std::size_t width = 0, int base = 10) {
  if (text.empty() || (width != 0 && text.size() != width)) return std::nullopt;
  T value = 0;
  for (char c : text) {
    unsigned digit = 0;
    if (c >= '0' && c <= '9') digit = static_cast<unsigned>(c - '0');
    else if (base == 16 && c >= 'a' && c <= 'f') digit = static_cast<unsigned>(c - 'a') + 10;
    else return std::nullopt;
    if (__builtin_mul_overflow(value, static_cast<T>(base), &value) ||
        __builtin_add_overflow(value, static_cast<T>(digit), &value))
      return std::nullopt;
  }
  return value;
}

// `value` in `base` (10 or 16, lower-case), zero-padded to `width` digits
// (more when it needs more).
inline std::string padded_digits(std::uint64_t value, std::size_t width, int base = 10) {
  char buffer[64];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value, base);
  (void)ec;  // 64 characters hold any u64 in base 10 or 16
  const std::size_t n = static_cast<std::size_t>(end - buffer);
  std::string s(n < width ? width - n : 0, '0');
  s.append(buffer, n);
  return s;
}

// Appends `value` in base 10 to `out`, zero-padded to exactly `width`
// digits (its lowest `width` digits when it has more): no temporary, for
// keys built on the append and read paths.
inline void append_padded_decimal(std::string& out, std::uint64_t value, std::size_t width) {
  const std::size_t at = out.size();
  out.resize(at + width);
  char* p = out.data() + at + width;
  for (std::size_t i = 0; i < width; ++i, value /= 10) *--p = static_cast<char>('0' + value % 10);
}

}  // namespace seshat::detail
