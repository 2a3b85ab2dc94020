// seshat/detail/crc32c.hpp: CRC-32C (Castagnoli), as used by the value
// envelope. The SSE4.2 instruction when the CPU has it (checked at run
// time), a table otherwise; both give the same values (crc32c("123456789")
// == 0xE3069283).
//
// The SSE4.2 path runs three crc32 chains at once: the crc32 instruction
// takes 3 cycles and issues one a cycle, so one chain uses a third of it.
// A block of 3 x L bytes is split into three lanes of L bytes, each
// checksummed on its own (the second and third from 0), and the three are
// combined: crc(A B C) = shift_L(shift_L(crc(A)) ^ crc(B)) ^ crc(C), where
// shift_L(c) is the register after L zero bytes (linear in c: a table of
// 4 x 256 entries per L). Blocks of 3 x 256 bytes, then 3 x 64 and 3 x 32,
// then one chain for the rest (under 96 bytes).
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

inline constexpr std::array<std::uint32_t, 256> k_crc32c_table = make_crc32c_table();

// The register (no pre- or post-inversion) after `n` more bytes.
inline std::uint32_t crc32c_portable(std::uint32_t crc, const unsigned char* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) crc = k_crc32c_table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return crc;
}

// shift_L: the register after L zero bytes, as four byte-indexed tables
// (the map is linear, so the register's four bytes add up).
struct crc32c_shift {
  std::array<std::array<std::uint32_t, 256>, 4> table{};
  explicit crc32c_shift(std::size_t zeros) {
    for (int byte = 0; byte < 4; ++byte)
      for (std::uint32_t v = 0; v < 256; ++v) {
        std::uint32_t c = v << (8 * byte);
        for (std::size_t i = 0; i < zeros; ++i) c = k_crc32c_table[c & 0xFF] ^ (c >> 8);
        table[byte][v] = c;
      }
  }
  std::uint32_t operator()(std::uint32_t c) const {
    return table[0][c & 0xFF] ^ table[1][(c >> 8) & 0xFF] ^ table[2][(c >> 16) & 0xFF] ^
           table[3][c >> 24];
  }
};

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define SESHAT_CRC32C_SSE42 1

// One chain: the register after `n` more bytes.
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

// Blocks of three lanes of `Lane` bytes while at least one is left (see
// the top); advances `p` and `n` past them.
template <std::size_t Lane>
__attribute__((target("sse4.2"))) inline std::uint32_t crc32c_sse42_lanes(std::uint32_t crc,
                                                                           const unsigned char*& p,
                                                                           std::size_t& n) {
  static_assert(Lane % 8 == 0);
  static const crc32c_shift shift(Lane);
  for (; n >= 3 * Lane; n -= 3 * Lane, p += 3 * Lane) {
    std::uint64_t a = crc, b = 0, c = 0;
    for (std::size_t i = 0; i < Lane; i += 8) {
      std::uint64_t wa, wb, wc;
      std::memcpy(&wa, p + i, 8);
      std::memcpy(&wb, p + Lane + i, 8);
      std::memcpy(&wc, p + 2 * Lane + i, 8);
      a = __builtin_ia32_crc32di(a, wa);
      b = __builtin_ia32_crc32di(b, wb);
      c = __builtin_ia32_crc32di(c, wc);
    }
    crc = shift(shift(static_cast<std::uint32_t>(a)) ^ static_cast<std::uint32_t>(b)) ^
          static_cast<std::uint32_t>(c);
  }
  return crc;
}

__attribute__((target("sse4.2"))) inline std::uint32_t crc32c_sse42_3way(std::uint32_t crc,
                                                                          const unsigned char* p,
                                                                          std::size_t n) {
  if (n >= 3 * 256) crc = crc32c_sse42_lanes<256>(crc, p, n);
  if (n >= 3 * 64) crc = crc32c_sse42_lanes<64>(crc, p, n);
  if (n >= 3 * 32) crc = crc32c_sse42_lanes<32>(crc, p, n);
  return crc32c_sse42(crc, p, n);
}

inline bool crc32c_hardware() {
  static const bool k_hardware = __builtin_cpu_supports("sse4.2");
  return k_hardware;
}
#endif

// The CRC-32C of the bytes whose CRC-32C is `crc`, followed by `data`:
// crc32c_extend(crc32c(a), b) == crc32c(a + b), and crc32c_extend(0, d) ==
// crc32c(d). For checksumming a file piece by piece.
inline std::uint32_t crc32c_extend(std::uint32_t crc, std::string_view data) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  crc ^= 0xFFFFFFFFu;
#ifdef SESHAT_CRC32C_SSE42
  if (crc32c_hardware()) return crc32c_sse42_3way(crc, p, data.size()) ^ 0xFFFFFFFFu;
#endif
  return crc32c_portable(crc, p, data.size()) ^ 0xFFFFFFFFu;
}

// The CRC-32C of `data`.
inline std::uint32_t crc32c(std::string_view data) { return crc32c_extend(0, data); }

}  // namespace seshat::detail
