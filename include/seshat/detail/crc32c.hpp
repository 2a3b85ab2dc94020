// seshat/detail/crc32c.hpp: CRC-32C (Castagnoli), as used by the value
// envelope. The SSE4.2 instruction when the CPU has it, a table otherwise;
// both give the same values (crc32c("123456789") == 0xE3069283).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace seshat::detail {

inline constexpr std::array<std::uint32_t, 256> make_crc32c_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
  return table;
}

inline std::uint32_t crc32c_portable(std::uint32_t crc, const unsigned char* p, std::size_t n) {
  static constexpr auto k_table = make_crc32c_table();
  for (std::size_t i = 0; i < n; ++i) crc = k_table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("sse4.2"))) inline std::uint32_t crc32c_sse42(std::uint32_t crc,
                                                                     const unsigned char* p,
                                                                     std::size_t n) {
  std::uint64_t c = crc;
  for (; n >= 8; n -= 8, p += 8) {
    std::uint64_t word;
    std::memcpy(&word, p, 8);
    c = __builtin_ia32_crc32di(c, word);
  }
  auto c32 = static_cast<std::uint32_t>(c);
  for (; n > 0; --n, ++p) c32 = __builtin_ia32_crc32qi(c32, *p);
  return c32;
}
#endif

// The CRC-32C of the bytes whose CRC-32C is `crc`, followed by `data`:
// crc32c_extend(crc32c(a), b) == crc32c(a + b), and crc32c_extend(0, d) ==
// crc32c(d). For checksumming a file piece by piece.
inline std::uint32_t crc32c_extend(std::uint32_t crc, std::string_view data) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  crc ^= 0xFFFFFFFFu;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  static const bool k_hardware = __builtin_cpu_supports("sse4.2");
  if (k_hardware) return crc32c_sse42(crc, p, data.size()) ^ 0xFFFFFFFFu;
#endif
  return crc32c_portable(crc, p, data.size()) ^ 0xFFFFFFFFu;
}

// The CRC-32C of `data`.
inline std::uint32_t crc32c(std::string_view data) { return crc32c_extend(0, data); }

}  // namespace seshat::detail
