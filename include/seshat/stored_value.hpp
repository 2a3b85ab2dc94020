// seshat/stored_value.hpp: stored_value, one value of the state machine's
// key-value data (data_kv), with its version and time to live.
//
// On disk, in the envelope (envelope.hpp):
//   payload := version:u64le created_at_ms:u64le flags:u8 [ttl_ms:u64le]
//              size:u64le data
//   flags   := 0                       no time to live
//            | 1                       ttl_ms follows
//   data    := exactly `size` bytes; nothing follows them
// Any other flag bit, a short payload or bytes after `data` are corrupted
// data.
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "seshat/column_family.hpp"
#include "seshat/detail/fixed_codec.hpp"
#include "seshat/detail/printable.hpp"
#include "seshat/envelope.hpp"
#include "seshat/status.hpp"

namespace seshat {

// Milliseconds since the Unix epoch by the system clock: the `now_ms` that
// reads use by default.
inline std::uint64_t wall_clock_ms() {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(
      duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

// A value of the state machine: the user's bytes, the version the state
// machine gave them, when they were written and for how long they live.
// A value lives during [created_at_ms, created_at_ms + ttl_ms); without a
// ttl it lives forever.
// Thread-safety: a plain value.
struct stored_value {
  std::uint64_t version = 0;
  std::string data;
  std::uint64_t created_at_ms = 0;
  std::optional<std::uint64_t> ttl_ms;

  // True when the value's lifetime ended at or before `now_ms`. A clock
  // behind created_at_ms never expires a value.
  bool expired(std::uint64_t now_ms) const noexcept {
    return ttl_ms && now_ms >= created_at_ms && now_ms - created_at_ms >= *ttl_ms;
  }

  // The value as stored: its payload in the envelope.
  std::string encode() const {
    std::string out;
    out.reserve(envelope::k_header_size + 33 + data.size());
    const std::size_t at = envelope::begin(out);
    detail::put_u64(out, version);
    detail::put_u64(out, created_at_ms);
    detail::put_u8(out, ttl_ms ? 1 : 0);
    if (ttl_ms) detail::put_u64(out, *ttl_ms);
    detail::put_u64(out, data.size());
    out += data;
    envelope::seal(out, at);
    return out;
  }

  // The value that `stored` (the bytes of `key` in `cf`) holds. Fails with
  // corrupted-data or version-mismatch naming `cf` and `key`; never throws
  // on bad bytes.
  static result<stored_value> decode(std::string_view stored, column_family cf,
                                     std::string_view key) {
    auto payload = envelope::open(stored, cf, key);
    if (!payload.ok()) return payload.status();
    detail::fixed_reader r(*payload);
    stored_value v;
    v.version = r.u64();
    v.created_at_ms = r.u64();
    const std::uint8_t flags = r.u8();
    if (flags & 1) v.ttl_ms = r.u64();
    const std::uint64_t size = r.u64();
    if (!r.ok() || (flags & ~1) != 0 || r.rest().size() != size)
      return status::corrupted_data(std::string(name_of(cf)) + " key '" +
                                    detail::printable(key) + "': stored value of " +
                                    std::to_string(payload->size()) +
                                    " payload bytes does not decode");
    v.data.assign(r.rest());
    return v;
  }

  friend bool operator==(const stored_value&, const stored_value&) = default;
};

}  // namespace seshat
