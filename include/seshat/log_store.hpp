// seshat/log_store.hpp: log_store, one Raft group's log and hard state.
//
// log_store<Entry, Serializer, Backend, Shard, KeyFormat> is what a Raft
// engine talks to (modelled on openraft's RaftLogStorage and RaftLogReader):
//
//   get_log_state()          last purged log id and last log id
//   save_vote / read_vote    durable before save returns; never backwards
//   save_committed / read_committed
//   append(entries)          readable on return; durable on return when the
//                            sync policy is durable (the default)
//   append_async(entries, done)
//                            readable on return; `done` fires once, when the
//                            entries are durable (group commit: one write
//                            and one fsync serve every group's pending
//                            appends)
//   truncate(since)          deletes the suffix [since, last]
//   purge(upto)              deletes the prefix [first, upto]
//   reset_to(last_purged)    deletes every entry; the log continues after
//                            last_purged (installing a snapshot)
//   entries(lo, hi)          the entries [lo, hi), hole-free
//   entry_at(i), term_at(i)
//
// The log holds consecutive indices [first, last]. An append must continue
// it: its first index is last + 1 (on an empty log, last purged + 1, or
// options.first_index when nothing was ever purged), its indices consecutive
// and its terms never below the last term. Anything else is refused with
// invalid-log-index, expected vs got, and nothing is written.
//
// Layering: log_store serializes and picks the log (Shard::log_family and
// the group's id, a log_address) and the key format; the log itself is
// storage<B>'s (storage.hpp), the one log layer: append -> storage's
// append_log with its gap check -> the backend; append_async -> storage's
// append_log_async -> group commit's pending batch; entries(lo, hi) ->
// storage's read_log of [lo, hi) -> the backend; truncate, purge and
// reset_to -> storage's truncate_log_from, truncate_log_before, reset_log.
// log_store writes no log key of its own. It keeps the log's floor itself
// (last purged + 1, or options.first_index: log_floor::kept_by_caller), so
// its logs have no floor key.
//
// On disk (KeyFormat spells the keys, see key_format.hpp):
//   Shard::log_family   log_key(i)          -> envelope(term:u64le entry)
//   Shard::state_family state("vote")       -> envelope(vote)       hard_state.hpp
//                       state("committed")  -> envelope(log_id)
//                       state("last_purged")-> envelope(log_id)
// `entry` is the Serializer's encoding of the user's Entry.
//
// Crash safety: purge records the last purged log id durably before it
// deletes entries; open() finishes a purge a crash interrupted.
//
// On a backend with its own log engine (log_backend<Backend>:
// segmented<B>), the entries go to the engine through the same storage log
// operations (the stored bytes are the same envelope(term:u64le entry)),
// and the vote, committed id and last purged id are the engine's records,
// not state keys: a purge is one engine record carrying the last purged id
// (the id and the deletion are one), a reset_to another.
//
// Metrics: appends, syncs, reads, truncations and purges are counted in
// the storage's registry for this group (storage::metrics(),
// detail/counters.hpp), which reads the log's extent while it is open.
//
// Thread-safety: all members may be called from many threads; mutations of
// one group are serialized. Many log_stores (one per group) may share one
// storage. Ownership: a log_store refers to its storage, which must outlive
// it.
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "seshat/backend.hpp"
#include "seshat/detail/fixed_codec.hpp"
#include "seshat/entry.hpp"
#include "seshat/envelope.hpp"
#include "seshat/hard_state.hpp"
#include "seshat/key_format.hpp"
#include "seshat/log_id.hpp"
#include "seshat/serializer.hpp"
#include "seshat/shard.hpp"
#include "seshat/status.hpp"
#include "seshat/storage.hpp"

namespace seshat {

enum class sync_policy {
  durable,   // append() returns once its entries survive a power loss
  buffered,  // append() returns once they are in the WAL (a process crash
             // keeps them, a power loss may not); append_async still fires
             // only when they are durable
};

struct log_store_options {
  sync_policy sync = sync_policy::durable;
  // The index of the first entry of a log that was never purged.
  std::uint64_t first_index = 1;
};

// The extent of a log. `last` is the last entry's id, or the last purged id
// when the log holds no entry, or nothing when it holds none and nothing
// was ever purged.
struct log_state {
  std::optional<log_id> last_purged;
  std::optional<log_id> last;
  friend bool operator==(const log_state&, const log_state&) = default;
};

template <class Entry, class Serializer, class Backend, class Shard = system_shard,
          class KeyFormat = binary_key_format>
class log_store {
  static_assert(log_entry<Entry>,
                "seshat::log_store: Entry must be default-constructible, copyable and expose "
                "its log id: give it integer members `term` and `index`, or a member function "
                "`seshat::log_id log_id() const`, or specialize seshat::entry_traits<Entry>.");
  static_assert(serializer_for<Serializer, Entry>,
                "seshat::log_store: Serializer must encode and decode Entry: provide "
                "`static void encode(const Entry&, std::string& out)` and "
                "`static seshat::status decode(std::string_view, Entry&)` (boost_serializer "
                "needs Entry::serialize(Archive&, unsigned); memcpy_serializer needs a "
                "trivially copyable Entry).");
  static_assert(!std::is_same_v<Serializer, boost_serializer> || boost_serializable<Entry>,
                "seshat::log_store: Entry has no serialize() for boost_serializer: give it a "
                "member `template <class Archive> void serialize(Archive& a, unsigned) { a & "
                "term & index & ...; }` (or a free serialize(Archive&, Entry&, unsigned) in its "
                "namespace, or specialize seshat::serializer_traits<Entry>). A std::map member "
                "needs #include <boost/serialization/map.hpp>, std::set <boost/serialization/"
                "set.hpp>, std::optional <boost/serialization/optional.hpp> (std::string and "
                "std::vector are included).");
  static_assert(backend<Backend>,
                "seshat::log_store: Backend must model seshat::backend (see "
                "seshat/backend.hpp): rocksdb_backend, leveldb_backend or memory_backend.");
  static_assert(shard_policy<Shard>,
                "seshat::log_store: Shard must be seshat::system_shard or seshat::data_shard "
                "(or provide log_family, state_family, is_system and id()).");
  static_assert(key_format<KeyFormat>,
                "seshat::log_store: KeyFormat must be seshat::binary_key_format or "
                "seshat::decimal_key_format (see seshat/key_format.hpp).");

 public:
  using entry_type = Entry;
  using storage_type = storage<Backend>;
  using callback = std::function<void(status)>;
  static constexpr column_family k_log_family = Shard::log_family;
  static constexpr column_family k_state_family = Shard::state_family;

  // Opens the log of `shard` in `store`. REQUIRES: `store` outlives the
  // result. A data shard with id 0 is refused with invalid-argument, and so
  // is a group whose log is open already in `store` (one log_store per
  // group; destroying it allows a new one).
  static result<std::unique_ptr<log_store>> open(storage_type& store, Shard shard = Shard{},
                                                 log_store_options options = {}) {
    if (!Shard::is_system && shard.id() == k_system_shard)
      return status::invalid_argument("data_shard 0 is the system group: use system_shard");
    auto claim = store.claim_group(detail::group_role::log, Shard::is_system, shard.id());
    if (!claim.ok()) return claim.status();
    std::unique_ptr<log_store> log(new log_store(store, shard, options));
    log->claim_ = std::move(*claim);
    SESHAT_RETURN_IF_ERROR(log->load());
    auto tracked = store.track_log(Shard::is_system, shard.id(), [raw = log.get()] {
      return raw->extent();
    });
    if (!tracked.ok()) return tracked.status();
    log->tracking_ = std::move(*tracked);
    return log;
  }

  log_store(const log_store&) = delete;
  log_store& operator=(const log_store&) = delete;

  shard_id shard() const { return shard_.id(); }

  log_state get_log_state() const {
    std::shared_lock lock(state_mutex_);
    return {last_purged_, last_in_log_ ? last_in_log_ : last_purged_};
  }

  // ---- hard state ---------------------------------------------------------

  // Durable before it returns. Refused (invalid-argument, nothing changes)
  // when it would undo a vote: a term below the saved one, or in the same
  // term another candidate than the one voted for, or an uncommitted vote
  // over a committed one.
  status save_vote(const vote& v) {
    std::lock_guard write(write_mutex_);
    auto refuse = [&](std::string_view why) {
      return status::invalid_argument(where() + std::string(why) + ": saved " + to_string(*vote_) +
                                      ", got " + to_string(v));
    };
    if (vote_ && v.term < vote_->term) return refuse("vote term goes backwards");
    if (vote_ && v.term == vote_->term) {
      if (vote_->voted_for && v.voted_for != vote_->voted_for)
        return refuse("a second vote in the same term");
      if (vote_->committed && !v.committed) return refuse("a committed vote cannot be uncommitted");
    }
    if constexpr (k_log_engine) {
      SESHAT_RETURN_IF_ERROR(store_.log_engine().save_vote(engine_group(), v));
    } else {
      std::string value;
      const std::size_t at = envelope::begin(value);
      codec::encode(v, value);
      envelope::seal(value, at);
      SESHAT_RETURN_IF_ERROR(store_.put(k_state_family, keys_.state("vote"), value));
    }
    std::unique_lock lock(state_mutex_);
    vote_ = v;
    return {};
  }

  // The saved vote (read at open, kept since): never waits for a write.
  result<std::optional<vote>> read_vote() const {
    std::shared_lock lock(state_mutex_);
    return vote_;
  }

  // Durable before it returns. A committed index below the saved one is
  // refused (invalid-argument) and nothing changes.
  status save_committed(const log_id& id) {
    std::lock_guard write(write_mutex_);
    if (committed_ && id.index < committed_->index)
      return status::invalid_argument(where() + "committed index goes backwards: saved " +
                                      to_string(*committed_) + ", got " + to_string(id));
    if constexpr (k_log_engine)
      SESHAT_RETURN_IF_ERROR(store_.log_engine().save_committed(engine_group(), id));
    else
      SESHAT_RETURN_IF_ERROR(store_.put(k_state_family, keys_.state("committed"), seal_id(id)));
    std::unique_lock lock(state_mutex_);
    committed_ = id;
    return {};
  }

  // The saved committed log id: never waits for a write.
  result<std::optional<log_id>> read_committed() const {
    std::shared_lock lock(state_mutex_);
    return committed_;
  }

  // ---- writing the log ----------------------------------------------------

  // Appends `entries` (see the class comment for what is accepted).
  // Readable on return; durable on return under sync_policy::durable.
  status append(std::span<const Entry> entries) {
    return append_entries(entries, options_.sync == sync_policy::durable);
  }

  // Appends `entries`, readable on return, and calls `done` once, from the
  // store's sync thread, when they are durable. When the append itself is
  // refused or fails, `done` is called at once with that error, which is
  // also returned. Group commit: the entries join the store's pending batch
  // (storage::append_log_async), which each round writes, with the pending
  // appends of every group, as one synced write; any later write to the
  // store (this group's or another's) writes them first, so the order of
  // the calls is the order on disk. After a failed round `done` fires with
  // its error, and every later append_async is refused until the store is
  // reopened.
  status append_async(std::span<const Entry> entries, callback done) {
    status s = append_entries(entries, false, &done);
    if (!s.ok()) done(s);
    return s;
  }

  // Deletes [since, last]: Raft's conflict resolution. Nothing to do when
  // since > last. Refused (compacted) when since is at or below the last
  // purged index.
  status truncate(std::uint64_t since) {
    std::lock_guard write(write_mutex_);
    const log_state state = get_log_state();
    if (state.last_purged && since <= state.last_purged->index)
      return status::compacted(where() + "truncate from index " + std::to_string(since) +
                               ": entries up to " + std::to_string(state.last_purged->index) +
                               " are purged");
    // Nothing to delete: returns, as a call that writes does, with every
    // earlier call (append_async's pending entries) written.
    if (!last_in_log_ || since > last_in_log_->index) return store_.write_pending();
    std::optional<log_id> new_last;
    if (since > first_in_log()) {
      auto term = read_term(since - 1);
      if (!term.ok()) return term.status();
      new_last = log_id{*term, since - 1};
    }
    SESHAT_RETURN_IF_ERROR(store_.template truncate_log_from<KeyFormat>(
        address_, std::max(since, first_in_log()),
        write_options{options_.sync == sync_policy::durable}));
    log_counters::add(tracking_.counters().truncations);
    std::unique_lock lock(state_mutex_);
    last_in_log_ = new_last;
    return {};
  }

  // Deletes [first, upto] after recording (term_at(upto), upto) durably as
  // the last purged log id. Nothing to do when upto is already purged or
  // before the log's first index.
  // Refused (unavailable) when upto is past the last index.
  status purge(std::uint64_t upto) {
    std::lock_guard write(write_mutex_);
    const log_state state = get_log_state();
    if (state.last_purged ? upto <= state.last_purged->index : upto < options_.first_index)
      return store_.write_pending();  // as truncate's nothing to delete
    if (!state.last || upto > state.last->index)
      return status::unavailable(where() + "purge up to index " + std::to_string(upto) +
                                 " is past the last index " +
                                 (state.last ? std::to_string(state.last->index) : "(empty log)"));
    auto term = read_term(upto);
    if (!term.ok()) return term.status();
    const log_id purged{*term, upto};
    // An engine's purge record is the last purged id and the deletion at
    // once: written before the id is taken as purged here.
    if constexpr (k_log_engine)
      SESHAT_RETURN_IF_ERROR(delete_purged(purged.index));
    else
      SESHAT_RETURN_IF_ERROR(
          store_.put(k_state_family, keys_.state("last_purged"), seal_id(purged)));
    {
      std::unique_lock lock(state_mutex_);
      last_purged_ = purged;
      if (last_in_log_ && last_in_log_->index <= upto) last_in_log_.reset();
    }
    if constexpr (!k_log_engine) SESHAT_RETURN_IF_ERROR(delete_purged(purged.index));
    log_counters::add(tracking_.counters().purges);
    return {};
  }

  // Deletes every entry and records `last_purged` as the last purged log id,
  // in one synced write: the log state becomes {last_purged, last_purged}
  // and the next append is at last_purged.index + 1. For installing a
  // snapshot whose last log id the log does not hold, or holds with another
  // term (raft_snapshot.hpp). Refused (invalid-argument, nothing changes)
  // when last_purged.index is below the last purged index: a log never
  // moves back; invalid-log-index past k_max_log_index.
  status reset_to(const log_id& last_purged) {
    if (last_purged.index > k_max_log_index)
      return status::invalid_log_index(where() + "reset to " + to_string(last_purged) + ": " +
                                       past_max_index(last_purged.index));
    std::lock_guard write(write_mutex_);
    {
      std::shared_lock lock(state_mutex_);
      if (last_purged_ && last_purged.index < last_purged_->index)
        return status::invalid_argument(where() + "reset to " + to_string(last_purged) +
                                        " goes back before the last purged " +
                                        to_string(*last_purged_));
    }
    if constexpr (k_log_engine) {
      SESHAT_RETURN_IF_ERROR(store_.template reset_log<KeyFormat>(
          address_, last_purged.index + 1, nullptr, last_purged.term));
    } else {
      auto batch = store_.new_batch();
      batch.put(k_state_family, keys_.state("last_purged"), seal_id(last_purged));
      SESHAT_RETURN_IF_ERROR(
          store_.template reset_log<KeyFormat>(address_, last_purged.index + 1, &batch));
    }
    std::unique_lock lock(state_mutex_);
    last_purged_ = last_purged;
    last_in_log_.reset();
    return {};
  }

  // ---- reading the log ----------------------------------------------------

  // The entries [lo, hi). Fails with compacted when part of the range is
  // purged, unavailable when part of it is not written, invalid-argument
  // when hi < lo; corrupted-data when a stored entry does not decode.
  result<std::vector<Entry>> entries(std::uint64_t lo, std::uint64_t hi) const {
    SESHAT_RETURN_IF_ERROR(check_range(lo, hi));
    std::vector<Entry> out;
    if (lo == hi) return out;
    out.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(hi - lo, k_reserve_limit)));
    decoder_for<Serializer, Entry> decoder;
    status s = store_.template read_log<KeyFormat>(
        address_, lo, hi, [&](std::uint64_t i, std::string_view key, std::string_view value) {
          return decode_entry(decoder, key, value, i, out.emplace_back());
        });
    // check_range saw [lo, hi) in the log: a missing entry went meanwhile.
    if (s.is(errc::invalid_log_index))
      return status::unavailable(where() + "entry " + std::to_string(lo + out.size()) + " of [" +
                                 std::to_string(lo) + ", " + std::to_string(hi) +
                                 ") is gone (truncated or purged meanwhile)");
    SESHAT_RETURN_IF_ERROR(s);
    if (!out.empty()) tracking_.counters().read(out.size());
    return out;
  }

  result<Entry> entry_at(std::uint64_t index) const {
    if (index > k_max_log_index)
      return status::unavailable(where() + "entry " + std::to_string(index) + ": " +
                                 past_max_index(index));
    auto one = entries(index, index + 1);
    if (!one.ok()) return one.status();
    return std::move(one->front());
  }

  // The term of entry `index`; also answers for the last purged index.
  result<std::uint64_t> term_at(std::uint64_t index) const {
    {
      std::shared_lock lock(state_mutex_);
      if (last_purged_ && index == last_purged_->index) return last_purged_->term;
      if (last_in_log_ && index == last_in_log_->index) return last_in_log_->term;
    }
    if (index > k_max_log_index)
      return status::unavailable(where() + "term of entry " + std::to_string(index) + ": " +
                                 past_max_index(index));
    SESHAT_RETURN_IF_ERROR(check_range(index, index + 1));
    return read_term(index);
  }

 private:
  // entries() reserves at most this many slots up front: a range is checked
  // against the log before it is read, but the log may shrink meanwhile.
  static constexpr std::uint64_t k_reserve_limit = 4096;

  log_store(storage_type& store, Shard shard, log_store_options options)
      : store_(store),
        shard_(shard),
        address_(k_log_family, shard.id()),
        keys_(Shard::is_system, shard.id()),
        options_(options) {}

  using log_counters = detail::log_counters;

  // Whether the store keeps its logs in a log engine (see the top).
  static constexpr bool k_log_engine = log_backend<Backend>;
  detail::segment::group_address engine_group() const {
    return storage_type::engine_group(address_);
  }

  // What metrics() reports of the log's bounds.
  detail::log_extent extent() const {
    std::shared_lock lock(state_mutex_);
    const std::uint64_t first = first_in_log();
    if (!last_in_log_) return {first, first == 0 ? 0 : first - 1, 0};
    return {first, last_in_log_->index, last_in_log_->index - first + 1};
  }

  std::string where() const {
    return describe(shard_) + ": ";
  }

  static std::string seal_id(const log_id& id) {
    std::string value;
    const std::size_t at = envelope::begin(value);
    codec::encode(id, value);
    envelope::seal(value, at);
    return value;
  }

  // Reads an optional record of the state family into `out`.
  template <class T>
  status load_state(std::string_view name, std::optional<T>& out) {
    const std::string key = keys_.state(name);
    auto stored = store_.get(k_state_family, key);
    if (stored.status().is(errc::not_found)) return {};
    if (!stored.ok()) return stored.status();
    auto payload = envelope::open(*stored, k_state_family, key);
    if (!payload.ok()) return payload.status();
    T value{};
    status s = codec::decode(*payload, value);
    if (!s.ok())
      return status::corrupted_data(std::string(name_of(k_state_family)) + " key '" +
                                    detail::printable(key) + "': " + s.message());
    out = value;
    return {};
  }

  // Reads the hard state and the log's extent; finishes an interrupted purge.
  status load() {
    if constexpr (k_log_engine) {
      const auto st = store_.log_engine().state(engine_group());
      vote_ = st.vote_value;
      committed_ = st.committed;
      last_purged_ = st.last_purged;
    } else {
      SESHAT_RETURN_IF_ERROR(load_state("vote", vote_));
      SESHAT_RETURN_IF_ERROR(load_state("committed", committed_));
      SESHAT_RETURN_IF_ERROR(load_state("last_purged", last_purged_));
    }
    // The floor is this log_store's: the index after the last purged one.
    SESHAT_RETURN_IF_ERROR(store_.template open_log<KeyFormat>(
        address_, log_floor::kept_by_caller(last_purged_ ? last_purged_->index + 1
                                                         : options_.first_index)));
    auto found = store_.template find_log<KeyFormat>(address_);
    if (!found.ok()) return found.status();
    log_.emplace(*found);
    auto last = store_.template last_log_index<KeyFormat>(address_);
    if (!last.ok()) return last.status();
    if (*last) {
      auto term = read_term(**last);
      if (!term.ok()) return term.status();
      last_in_log_ = log_id{*term, **last};
    }
    if (last_purged_) {
      if (last_in_log_ && last_in_log_->index <= last_purged_->index) last_in_log_.reset();
      // Finishes a purge a crash interrupted (a no-op when there is nothing
      // at or below the last purged index).
      SESHAT_RETURN_IF_ERROR(delete_purged(last_purged_->index));
    } else if (last_in_log_) {
      // options.first_index is not stored: a log must be reopened with the
      // value it was written with.
      auto first = store_.template first_log_index<KeyFormat>(address_);
      if (!first.ok()) return first.status();
      if (*first && **first != options_.first_index)
        return status::invalid_argument(where() + "the log begins at index " +
                                        std::to_string(**first) + ", options.first_index is " +
                                        std::to_string(options_.first_index));
    }
    return {};
  }

  // Deletes the entries at or below `upto` (a no-op when there are none).
  status delete_purged(std::uint64_t upto) {
    return store_.template truncate_log_before<KeyFormat>(address_, upto + 1);
  }

  // The first index held in the log. REQUIRES: last_in_log_ is set.
  std::uint64_t first_in_log() const {
    return last_purged_ ? last_purged_->index + 1 : options_.first_index;
  }

  std::uint64_t next_index() const {
    if (last_in_log_) return last_in_log_->index + 1;
    return last_purged_ ? last_purged_->index + 1 : options_.first_index;
  }

  status check_range(std::uint64_t lo, std::uint64_t hi) const {
    auto range = [&] { return "[" + std::to_string(lo) + ", " + std::to_string(hi) + ")"; };
    if (hi < lo) return status::invalid_argument(where() + "range " + range() + " ends before it starts");
    if (lo == hi) return {};
    std::shared_lock lock(state_mutex_);
    if (last_purged_ && lo <= last_purged_->index)
      return status::compacted(where() + "entries of " + range() + " up to " +
                               std::to_string(last_purged_->index) + " are purged");
    const std::uint64_t first = last_purged_ ? last_purged_->index + 1 : options_.first_index;
    if (lo < first)
      return status::unavailable(where() + "entries of " + range() + " before " +
                                 std::to_string(first) + " never existed (the log starts at " +
                                 std::to_string(first) + ")");
    const std::uint64_t end = last_in_log_ ? last_in_log_->index + 1 : first;
    if (hi > end)
      return status::unavailable(where() + "entries of " + range() + " from " +
                                 std::to_string(std::max(lo, end)) + " on are not written (last index " +
                                 (end > first ? std::to_string(end - 1) : "none") + ")");
    return {};
  }

  status open_entry(std::string_view key, std::string_view stored, std::string_view& payload) const {
    auto opened = envelope::open(stored, k_log_family, key);
    if (!opened.ok()) return opened.status();
    payload = *opened;
    if (payload.size() < 8)
      return status::corrupted_data(std::string(name_of(k_log_family)) + " key '" +
                                    detail::printable(key) + "': entry of " +
                                    std::to_string(payload.size()) + " bytes has no term");
    return {};
  }

  status decode_entry(decoder_for<Serializer, Entry>& decoder, std::string_view key,
                      std::string_view stored, std::uint64_t index, Entry& e) const {
    std::string_view payload;
    SESHAT_RETURN_IF_ERROR(open_entry(key, stored, payload));
    detail::fixed_reader r(payload);
    const log_id stored_id{r.u64(), index};
    auto context = [&] {
      return where() + "entry " + std::to_string(index) + " (" + std::string(name_of(k_log_family)) +
             " key '" + detail::printable(key) + "'): ";
    };
    status s = decoder.decode(r.rest(), e);
    if (s.is(errc::version_mismatch)) return s.with_context(context());
    // The envelope's checksum held: the bytes are as written, but not by
    // this Entry and Serializer.
    if (!s.ok())
      return status::corrupted_data(context() + "does not decode with serializer " +
                                    serializer_name() + ": " + s.message() +
                                    " (was the log written with another entry type or "
                                    "serializer?)");
    if (id_of(e) != stored_id)
      return status::corrupted_data(context() + "entry decodes as " + to_string(id_of(e)) +
                                    ", stored as " + to_string(stored_id));
    return {};
  }

  static std::string serializer_name() {
    if constexpr (requires { Serializer::k_name; }) return std::string(Serializer::k_name);
    else return "(the user's)";
  }

  result<std::uint64_t> read_term(std::uint64_t index) const {
    std::uint64_t term = 0;
    SESHAT_RETURN_IF_ERROR(store_.template read_log_entry<KeyFormat>(
        address_, index, [&](std::uint64_t, std::string_view key, std::string_view stored) {
          std::string_view payload;
          SESHAT_RETURN_IF_ERROR(open_entry(key, stored, payload));
          term = detail::fixed_reader(payload).u64();
          return status{};
        }));
    return term;
  }

  // Appends `entries`: synced when `sync`; with `async_done`, through group
  // commit, which takes it (and calls it once durable) unless refused.
  status append_entries(std::span<const Entry> entries, bool sync, callback* async_done = nullptr) {
    const auto start = async_done ? storage_type::sync_clock() : detail::metrics_clock::time_point{};
    std::lock_guard write(write_mutex_);
    // The counters live in the storage's registry, which outlives every
    // group-commit callback (storage stops its sync thread first).
    log_counters& counters = tracking_.counters();
    if (entries.empty()) {
      if (!async_done) return store_.write_pending();  // as truncate's nothing to delete
      store_.sync_async(std::move(*async_done), {&counters, 0, start});
      return {};
    }
    // The extent is written only under write_mutex_, held here: read
    // without state_mutex_.
    std::optional<log_id> prev = last_in_log_ ? last_in_log_ : last_purged_;
    // Checks each entry (storage checks the first index against its own
    // bounds too) and serializes it: appended to the buffer storage gives
    // (a log engine's append), or into value_, which storage then puts.
    auto into = [&](const Entry& e, std::uint64_t expected, std::string& out,
                    std::uint64_t& term) -> status {
      const log_id id = id_of(e);
      if (id.index > k_max_log_index)
        return status::invalid_log_index(where() + "append of entry " + to_string(id) + ": " +
                                         past_max_index(id.index));
      if (id.index != expected)
        return status::invalid_log_index(
            where() + "append of entry " + to_string(id) + ": expected index " +
            std::to_string(expected) + ", got " + std::to_string(id.index) +
            (id.index < expected ? " (overlaps the log: truncate first)" : " (a gap)"));
      if (prev && id.term < prev->term)
        return status::invalid_log_index(where() + "append of entry " + to_string(id) +
                                         ": term goes backwards, expected at least " +
                                         std::to_string(prev->term) + ", got " +
                                         std::to_string(id.term));
      const std::size_t at = envelope::begin(out);
      detail::put_u64(out, id.term);
      encoder_.encode(e, out);
      envelope::seal(out, at);
      term = id.term;
      prev = id;
      return {};
    };
    auto in_value = [&](const Entry& e, std::uint64_t expected, std::string_view& value,
                        std::uint64_t& term) -> status {
      value_.clear();
      SESHAT_RETURN_IF_ERROR(into(e, expected, value_, term));
      value = value_;
      return {};
    };
    struct both : decltype(into), decltype(in_value) {
      using decltype(into)::operator();
      using decltype(in_value)::operator();
    } encode{into, in_value};
    log_append_info written;
    if (async_done)
      SESHAT_RETURN_IF_ERROR(store_.append_log_async(
          *log_, next_index(), entries, encode, *async_done,
          {&counters, entries.size(), start}, &written));
    else
      SESHAT_RETURN_IF_ERROR(store_.append_log_encoded(*log_, next_index(), entries, encode,
                                                       write_options{sync}, &written));
    counters.appended(entries.size(), written.bytes);
    if (sync) counters.synced(entries.size(), written.synced_in);
    std::unique_lock lock(state_mutex_);
    last_in_log_ = prev;
    return {};
  }

  storage_type& store_;
  const Shard shard_;
  const log_address address_;          // this group's log, in store_
  // The same log, found at load() (its appends skip the store's lookup).
  std::optional<typename storage_type::template found_log<KeyFormat>> log_;
  const group_keys<KeyFormat> keys_;   // its state keys
  const log_store_options options_;
  detail::open_groups::claim claim_;  // this group's log, in store_

  // Serializes mutations; guards the buffer and the encoder, which keeps
  // its archive from one append to the next (an append of one entry builds
  // none).
  mutable std::mutex write_mutex_;
  std::string value_;
  encoder_for<Serializer, Entry> encoder_;

  // Guards what follows; written only with write_mutex_ held too, after the
  // write that makes it true.
  mutable std::shared_mutex state_mutex_;
  std::optional<vote> vote_;
  std::optional<log_id> committed_;
  std::optional<log_id> last_purged_;
  std::optional<log_id> last_in_log_;  // the last entry held, if any

  // Last, destroyed first: metrics() stops reading extent() before the
  // rest of this log_store goes.
  detail::group_registry::tracking tracking_;
};

}  // namespace seshat
