// seshat/envelope.hpp: the envelope around every value the Raft layer
// stores: a format version and a checksum over the payload.
//
//   envelope := version:u8 crc:u32le payload
//   version  := 1                      the format of the payload (k_version)
//   crc      := CRC-32C of version and payload
//
// Every version keeps this 5-byte header, so any reader can check the
// checksum before it trusts the version. open() refuses a value that is too
// short or whose checksum fails (corrupted data), then one whose version it
// does not know (version mismatch). Every error names the column family and
// key.
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "seshat/column_family.hpp"
#include "seshat/detail/crc32c.hpp"
#include "seshat/detail/printable.hpp"
#include "seshat/status.hpp"

namespace seshat::envelope {

inline constexpr std::uint8_t k_version = 1;
inline constexpr std::size_t k_header_size = 5;

// The CRC-32C of the version byte followed by the payload.
inline std::uint32_t checksum(char version, std::string_view payload) {
  return detail::crc32c_extend(detail::crc32c(std::string_view(&version, 1)), payload);
}

// Appends a header placeholder to `out`; returns where it starts. The
// payload is appended after it, then seal() fills the header in.
inline std::size_t begin(std::string& out) {
  const std::size_t at = out.size();
  static constexpr char k_zeros[k_header_size] = {};
  out.append(k_zeros, k_header_size);
  return at;
}

// Fills in the header at `at` for the payload that follows it to the end.
inline void seal(std::string& out, std::size_t at) {
  out[at] = static_cast<char>(k_version);
  const std::uint32_t crc = checksum(out[at], std::string_view(out).substr(at + k_header_size));
  for (int i = 0; i < 4; ++i) out[at + 1 + i] = static_cast<char>(crc >> (8 * i));
}

// `payload` in an envelope.
inline std::string wrap(std::string_view payload) {
  std::string out;
  out.reserve(k_header_size + payload.size());
  const std::size_t at = begin(out);
  out.append(payload);
  seal(out, at);
  return out;
}

// The payload of the stored value `stored` of `key` in `cf`, checked.
inline result<std::string_view> open(std::string_view stored, column_family cf,
                                     std::string_view key) {
  auto where = [&] {
    return std::string(name_of(cf)) + " key '" + detail::printable(key) + "': ";
  };
  if (stored.size() < k_header_size)
    return status::corrupted_data(where() + "value of " + std::to_string(stored.size()) +
                                  " bytes is shorter than its " +
                                  std::to_string(k_header_size) + "-byte envelope header");
  const auto version = static_cast<std::uint8_t>(stored[0]);
  std::uint32_t expected = 0;
  for (int i = 0; i < 4; ++i)
    expected |= static_cast<std::uint32_t>(static_cast<unsigned char>(stored[1 + i])) << (8 * i);
  const std::string_view payload = stored.substr(k_header_size);
  const std::uint32_t actual = checksum(stored[0], payload);
  if (actual != expected)
    return status::corrupted_data(where() + "checksum mismatch: stored " +
                                  std::to_string(expected) + ", computed " +
                                  std::to_string(actual));
  if (version == 0 || version > k_version)
    return status::version_mismatch(where() + "value format version " + std::to_string(version) +
                                    ", this seshat reads 1 to " + std::to_string(k_version));
  return payload;
}

}  // namespace seshat::envelope
