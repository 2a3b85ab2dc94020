// seshat/detail/fixed_codec.hpp: little-endian fixed-width fields for
// seshat's own records (votes, log ids). A reader that runs out of bytes
// reports it instead of reading past the end.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace seshat::detail {

inline void put_u64(std::string& out, std::uint64_t v) {
  char b[8];  // one append, not eight
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(v >> (8 * i));
  out.append(b, 8);
}
inline void put_u8(std::string& out, std::uint8_t v) { out += static_cast<char>(v); }

// Reads fields front to back; ok() turns false on the first short read.
class fixed_reader {
 public:
  explicit fixed_reader(std::string_view in) : in_(in) {}
  std::uint64_t u64() {
    if (!take(8)) return 0;
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in_[i])) << (8 * i);
    in_.remove_prefix(8);
    return v;
  }
  std::uint8_t u8() {
    if (!take(1)) return 0;
    auto v = static_cast<std::uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return v;
  }
  std::string_view rest() const { return in_; }
  bool ok() const { return ok_; }
  // True when every byte was read and none was missing.
  bool done() const { return ok_ && in_.empty(); }

 private:
  bool take(std::size_t n) {
    if (ok_ && in_.size() >= n) return true;
    ok_ = false;
    return false;
  }
  std::string_view in_;
  bool ok_ = true;
};

}  // namespace seshat::detail
