// seshat/log_backend.hpp: the log_engine and log_backend concepts
// (docs/log-engine.md section 2; milestone M4 builds on them).
//
// A log engine keeps, for each group address {family, id}
// (detail/segment_format.hpp's group_address), the entries, vote,
// committed id and last purged id that log_store persists, with the
// operations of section 2's table:
//
//   append(g, first, entries, sync)     one record; durable on return when sync
//   append_async(g, first, entries, std::move(done))
//                                       readable on return; done(status) after its sync;
//                                       refused: `done` left with the caller, not moved from
//   read(g, lo, hi, visit)              entries [lo, hi), visit(index, payload)
//   term_at(g, i) -> result<u64>        from memory
//   truncate_from(g, since, sync)       deletes [since, last]
//   purge_to(g, last_purged)            deletes [first, last_purged.index], durable
//   reset(g, last_purged)               deletes every entry, durable
//   save_vote(g, vote), save_committed(g, id)   durable on return
//   state(g)                            .vote_value .committed .last_purged .last
//   sync(), close()
//
// seshat's own engine, segment_log (backends/segment/), models it. A
// log_backend is a Backend (backend.hpp) that also owns such an engine,
// returned by log(): storage<B> then routes its log operations there (M4).
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <concepts>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>
#include <utility>

#include "seshat/backend.hpp"
#include "seshat/detail/segment_format.hpp"
#include "seshat/hard_state.hpp"
#include "seshat/log_id.hpp"
#include "seshat/status.hpp"

namespace seshat {

template <class L>
concept log_engine = requires(L& l, const L& cl, const detail::segment::group_address& g,
                              std::uint64_t i, std::span<const detail::segment::entry_input> e,
                              bool sync, std::function<void(status)> done, const log_id& id,
                              const vote& v,
                              const std::function<status(std::uint64_t, std::string_view)>& visit) {
  { l.append(g, i, e, sync) } -> std::same_as<status>;
  { l.append_async(g, i, e, std::move(done)) } -> std::same_as<status>;
  { cl.read(g, i, i, visit) } -> std::same_as<status>;
  { cl.term_at(g, i) } -> std::same_as<result<std::uint64_t>>;
  { l.truncate_from(g, i, sync) } -> std::same_as<status>;
  { l.purge_to(g, id) } -> std::same_as<status>;
  { l.reset(g, id) } -> std::same_as<status>;
  { l.save_vote(g, v) } -> std::same_as<status>;
  { l.save_committed(g, id) } -> std::same_as<status>;
  { cl.state(g).vote_value } -> std::convertible_to<std::optional<vote>>;
  { cl.state(g).committed } -> std::convertible_to<std::optional<log_id>>;
  { cl.state(g).last_purged } -> std::convertible_to<std::optional<log_id>>;
  { cl.state(g).last } -> std::convertible_to<std::optional<log_id>>;
  { l.sync() } -> std::same_as<status>;
  { l.close() } -> std::same_as<status>;
};

// A backend with its own log engine.
template <class B>
concept log_backend = backend<B> && requires(B& b) {
  requires std::is_lvalue_reference_v<decltype(b.log())>;
  requires log_engine<std::remove_cvref_t<decltype(b.log())>>;
};

}  // namespace seshat
