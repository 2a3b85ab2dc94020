// seshat/hard_state.hpp: the hard state a Raft node must never forget:
// its vote (current term, whom it voted for) and its committed log id.
//
// On disk, each in the envelope (envelope.hpp) of its group's state family:
//   vote      := term:u64le flags:u8 [voted_for:u64le]   flags bit 0: voted
//                                                        flags bit 1: committed
//   committed := term:u64le index:u64le                  a log_id
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "seshat/detail/fixed_codec.hpp"
#include "seshat/log_id.hpp"
#include "seshat/status.hpp"

namespace seshat {

// A node's vote: the term it is in, the node it voted for in that term (if
// any), and whether that vote is committed (granted by a quorum: the
// node is, or follows, the leader of `term`).
struct vote {
  std::uint64_t term = 0;
  std::optional<std::uint64_t> voted_for;
  bool committed = false;
  friend bool operator==(const vote&, const vote&) = default;
};

inline std::string to_string(const vote& v) {
  return "(term " + std::to_string(v.term) +
         (v.voted_for ? ", voted for " + std::to_string(*v.voted_for) : std::string()) +
         (v.committed ? ", committed)" : ")");
}

namespace codec {

inline void encode(const vote& v, std::string& out) {
  detail::put_u64(out, v.term);
  detail::put_u8(out, static_cast<std::uint8_t>((v.voted_for ? 1 : 0) | (v.committed ? 2 : 0)));
  if (v.voted_for) detail::put_u64(out, *v.voted_for);
}

inline status decode(std::string_view in, vote& v) {
  detail::fixed_reader r(in);
  v.term = r.u64();
  const std::uint8_t flags = r.u8();
  v.committed = (flags & 2) != 0;
  v.voted_for.reset();
  if (flags & 1) v.voted_for = r.u64();
  if (!r.done() || (flags & ~3) != 0)
    return status::corrupted_data("vote record of " + std::to_string(in.size()) +
                                  " bytes does not decode");
  return {};
}

inline void encode(const log_id& id, std::string& out) {
  detail::put_u64(out, id.term);
  detail::put_u64(out, id.index);
}

inline status decode(std::string_view in, log_id& id) {
  detail::fixed_reader r(in);
  id.term = r.u64();
  id.index = r.u64();
  if (!r.done())
    return status::corrupted_data("log id record of " + std::to_string(in.size()) +
                                  " bytes does not decode (expected 16)");
  return {};
}

}  // namespace codec
}  // namespace seshat
