// seshat/detail/printable.hpp: keys as they appear in error messages.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace seshat::detail {

// `key` with bytes outside printable ASCII (and \ and ') written as \xNN,
// cut after 64 bytes: binary log keys stay readable in a message.
inline std::string printable(std::string_view key) {
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string out;
  const std::size_t shown = key.size() < 64 ? key.size() : 64;
  for (std::size_t i = 0; i < shown; ++i) {
    const auto c = static_cast<unsigned char>(key[i]);
    if (c >= 0x20 && c < 0x7F && c != '\\' && c != '\'') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += k_hex[c >> 4];
      out += k_hex[c & 0xF];
    }
  }
  if (shown < key.size()) out += "... (" + std::to_string(key.size()) + " bytes)";
  return out;
}

}  // namespace seshat::detail
