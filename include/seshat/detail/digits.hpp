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

#include <bit>
#include <charconv>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace seshat::detail {

// The 8 decimal digits at `p` as a number, or false when any of the 8
// bytes is not a digit: eight at once in one u64 (little-endian only).
inline bool eight_decimal_digits(const char* p, std::uint64_t& out) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  // Each byte is 0x30..0x39: its high nibble is 3, and adding 6 keeps it 3.
  if (((v & 0xF0F0F0F0F0F0F0F0u) | (((v + 0x0606060606060606u) & 0xF0F0F0F0F0F0F0F0u) >> 4)) !=
      0x3333333333333333u)
    return false;
  v -= 0x3030303030303030u;
  v = v * 10 + (v >> 8);  // pairs of digits in every other byte
  v = (((v & 0x000000FF000000FFu) * (100 + (1000000ull << 32))) +
       (((v >> 16) & 0x000000FF000000FFu) * (1 + (10000ull << 32)))) >>
      32;
  out = v;
  return true;
}

// The number all of `text` spells in `base` (10 or 16), or nothing: when
// `text` is empty, holds anything but the digits of the grammar above, has
// not exactly `width` digits (when `width` is not 0), or overflows T.
// One pass, no std::from_chars, eight decimal digits at a time: a log range
// read parses every entry's key.
template <std::unsigned_integral T = std::uint64_t>
std::optional<T> parse_digits(std::string_view text, std::size_t width = 0, int base = 10) {
  if (text.empty() || (width != 0 && text.size() != width)) return std::nullopt;
  T value = 0;
  if constexpr (std::endian::native == std::endian::little) {
    if (base == 10) {
      for (; text.size() >= 8; text.remove_prefix(8)) {
        std::uint64_t eight = 0;
        if (!eight_decimal_digits(text.data(), eight)) return std::nullopt;
        if (__builtin_mul_overflow(value, static_cast<T>(100'000'000), &value) ||
            __builtin_add_overflow(value, eight, &value))
          return std::nullopt;
      }
    }
  }
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
