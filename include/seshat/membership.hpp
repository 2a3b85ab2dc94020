// seshat/membership.hpp: membership, a Raft group's configuration (its
// voters and learners) and the log id of the entry that set it.
//
// On disk, in the envelope (envelope.hpp):
//   payload  := flags:u8 [term:u64le index:u64le] voters learners
//   flags    := 0                       no log id (the initial, empty config)
//             | 1                       the log id follows
//   voters   := count:u64le node:u64le*count
//   learners := count:u64le node:u64le*count
// Any other flag bit, a count larger than the bytes left, a short payload or
// trailing bytes are corrupted data.
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "seshat/column_family.hpp"
#include "seshat/detail/fixed_codec.hpp"
#include "seshat/detail/printable.hpp"
#include "seshat/envelope.hpp"
#include "seshat/log_id.hpp"
#include "seshat/status.hpp"

namespace seshat {

// A group's membership: node ids of its voters and learners, and the id of
// the log entry that made it the membership (nothing for a group that never
// changed it). Nodes keep the order they were given in.
// Thread-safety: a plain value.
struct membership {
  std::optional<seshat::log_id> log_id;
  std::vector<std::uint64_t> voters;
  std::vector<std::uint64_t> learners;

  // The membership as stored: its payload in the envelope.
  std::string encode() const {
    std::string out;
    const std::size_t at = envelope::begin(out);
    detail::put_u8(out, log_id ? 1 : 0);
    if (log_id) {
      detail::put_u64(out, log_id->term);
      detail::put_u64(out, log_id->index);
    }
    for (const auto* nodes : {&voters, &learners}) {
      detail::put_u64(out, nodes->size());
      for (std::uint64_t node : *nodes) detail::put_u64(out, node);
    }
    envelope::seal(out, at);
    return out;
  }

  // The membership that `stored` (the bytes of `key` in `cf`) holds. Fails
  // with corrupted-data or version-mismatch naming `cf` and `key`; never
  // throws on bad bytes.
  static result<membership> decode(std::string_view stored, column_family cf,
                                   std::string_view key) {
    auto payload = envelope::open(stored, cf, key);
    if (!payload.ok()) return payload.status();
    detail::fixed_reader r(*payload);
    membership m;
    const std::uint8_t flags = r.u8();
    if (flags & 1) m.log_id = seshat::log_id{r.u64(), r.u64()};
    bool ok = r.ok() && (flags & ~1) == 0;
    for (auto* nodes : {&m.voters, &m.learners}) {
      const std::uint64_t count = ok ? r.u64() : 0;
      ok = ok && r.ok() && count <= r.rest().size() / 8;
      if (!ok) break;
      nodes->reserve(count);
      for (std::uint64_t i = 0; i < count; ++i) nodes->push_back(r.u64());
    }
    if (!ok || !r.done())
      return status::corrupted_data(std::string(name_of(cf)) + " key '" +
                                    detail::printable(key) + "': membership of " +
                                    std::to_string(payload->size()) +
                                    " payload bytes does not decode");
    return m;
  }

  friend bool operator==(const membership&, const membership&) = default;
};

}  // namespace seshat
