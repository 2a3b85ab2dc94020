// seshat/state_machine_store.hpp: state_machine_store, one Raft group's
// state machine: its key-value data and what it has applied.
//
// state_machine_store<Entry, Backend, Shard, KeyFormat> (modelled on
// openraft's RaftStateMachine):
//   apply(entries, f)   f(entry, batch) for each entry; the batch's writes,
//                       the last entry's log id and any new membership are
//                       stored in one atomic write, or nothing is
//   applied_state()     last applied log id and membership
//   get(key)            a value; not-found when absent or expired
//   for_each(f)         every live value of the group, in key order
// and, for snapshots (raft_snapshot.hpp):
//   open_snapshot_view()  the applied state and an iterator over the group's
//                       data, taken together between two applies
//   replace_all(state, fill)
//                       replaces all the group's data and its applied state
//                       in one atomic write
//
// apply() must continue the applied log: its first entry's index is the
// last applied index + 1 (any index on a store that never applied), its
// indices consecutive. Anything else is refused with invalid-log-index,
// expected vs got, and nothing is written.
//
// On disk (KeyFormat spells the group part, see key_format.hpp):
//   data_kv             kv_group user_key      -> envelope(stored_value)
//   Shard::state_family state("applied")       -> envelope(term:u64le index:u64le)
//                       state("membership")    -> envelope(membership)
//   kv_group := group_keys<KeyFormat>(false, id).state("kv")
//               binary_key_format:   id:u64be "@kv"
//               decimal_key_format:  "shard:" id20 "/kv"
//   id       := the shard's id; the system shard is spelled as id 0
// Every group, the system one included, shares data_kv, so kv_group spells
// them all alike: the prefixes have one length and differ in the id, so no
// group's keys fall among another's, and a group's keys sort as its user
// keys do. state("applied") and state("membership") sit in the group's
// state family next to the log store's "vote" and "committed".
//
// Thread-safety: all members may be called from many threads; apply() calls
// are serialized. f runs under the store's lock: it must not call apply()
// or applied_state() of the same store (read through the batch instead).
// Ownership: the store refers to its storage, which must outlive it. Keep
// one store per group: it caches the applied state.
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <concepts>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "seshat/backend.hpp"
#include "seshat/column_family.hpp"
#include "seshat/detail/fixed_codec.hpp"
#include "seshat/detail/printable.hpp"
#include "seshat/entry.hpp"
#include "seshat/envelope.hpp"
#include "seshat/key_format.hpp"
#include "seshat/log_id.hpp"
#include "seshat/membership.hpp"
#include "seshat/shard.hpp"
#include "seshat/status.hpp"
#include "seshat/storage.hpp"
#include "seshat/stored_value.hpp"

namespace seshat {

// What a state machine has applied: the id of the last entry (nothing
// before the first apply) and the membership in force.
struct applied_state {
  std::optional<log_id> last_applied;
  seshat::membership membership;
  friend bool operator==(const applied_state&, const applied_state&) = default;
};

// The writes of one apply() call, handed to its function with each entry.
// They are buffered: apply() stores them all, with the applied log id, in
// one atomic write, or none of them. A later write of a key replaces an
// earlier one.
// Thread-safety: belongs to the apply() call that made it; do not keep it.
class state_machine_batch {
 public:
  void put(std::string_view key, stored_value value) {
    writes_.insert_or_assign(std::string(key), std::optional(std::move(value)));
  }
  void put(std::string_view key, std::string_view data, std::uint64_t version,
           std::uint64_t created_at_ms, std::optional<std::uint64_t> ttl_ms = std::nullopt) {
    put(key, stored_value{version, std::string(data), created_at_ms, ttl_ms});
  }
  void del(std::string_view key) {
    writes_.insert_or_assign(std::string(key), std::optional<stored_value>());
  }
  // Makes `m` the group's membership. Its log_id becomes entry_id().
  void set_membership(membership m) {
    m.log_id = current_;
    membership_ = std::move(m);
  }

  // `key` as the entries applied so far left it, this call's earlier writes
  // included; not-found when absent. Ignores ttl: apply must give the same
  // result on every replica, so a state machine that needs expiry compares
  // created_at_ms + ttl_ms with a time carried by the entry, not a clock.
  result<stored_value> get(std::string_view key) const {
    auto it = writes_.find(key);
    if (it == writes_.end()) return read_(store_, key);
    if (!it->second)
      return status::not_found("key '" + detail::printable(key) + "' was deleted by this apply");
    return *it->second;
  }

  // The id of the entry being applied.
  log_id entry_id() const { return current_; }

 private:
  template <class, class, class, class>
  friend class state_machine_store;
  using reader = result<stored_value> (*)(const void* store, std::string_view key);

  state_machine_batch(const void* store, reader read) : store_(store), read_(read) {}

  std::map<std::string, std::optional<stored_value>, std::less<>> writes_;  // nothing: deleted
  std::optional<membership> membership_;
  log_id current_;
  const void* store_;
  reader read_;
};

// One group's state machine; see the file comment for what it offers, its
// on-disk format, thread-safety and ownership. Movable, not copyable; a
// moved-from store may only be destroyed or assigned to.
template <class Entry, class Backend, class Shard = system_shard,
          class KeyFormat = binary_key_format>
class state_machine_store {
  static_assert(log_entry<Entry>,
                "seshat::state_machine_store: Entry must be default-constructible, copyable and "
                "expose its log id: give it integer members `term` and `index`, or a member "
                "function `seshat::log_id log_id() const`, or specialize "
                "seshat::entry_traits<Entry>.");
  static_assert(backend<Backend>,
                "seshat::state_machine_store: Backend must model seshat::backend (see "
                "seshat/backend.hpp): rocksdb_backend, leveldb_backend or memory_backend.");
  static_assert(shard_policy<Shard>,
                "seshat::state_machine_store: Shard must be seshat::system_shard or "
                "seshat::data_shard (or provide log_family, state_family, is_system and id()).");
  static_assert(key_format<KeyFormat>,
                "seshat::state_machine_store: KeyFormat must be seshat::binary_key_format or "
                "seshat::decimal_key_format (see seshat/key_format.hpp).");

 public:
  using entry_type = Entry;
  using storage_type = storage<Backend>;
  static constexpr column_family k_data_family = column_family::data_kv;
  static constexpr column_family k_state_family = Shard::state_family;

  // The state machine of `shard` in `s`, its applied state loaded.
  // REQUIRES: `s` outlives the store. A data shard with id 0 is refused with
  // invalid-argument, and so is a group whose state machine is open already
  // in `s` (one state_machine_store per group; destroying it allows a new
  // one).
  static result<state_machine_store> open(storage_type& s, Shard shard = Shard{}) {
    if (!Shard::is_system && shard.id() == k_system_shard)
      return status::invalid_argument("data_shard 0 is the system group: use system_shard");
    auto claim = s.claim_group(detail::group_role::state_machine, Shard::is_system, shard.id());
    if (!claim.ok()) return claim.status();
    state_machine_store store(s, shard);
    store.claim_ = std::move(*claim);
    {
      std::lock_guard lock(*store.mutex_);
      SESHAT_RETURN_IF_ERROR(store.load_locked());
    }
    return store;
  }

  shard_id shard() const { return shard_.id(); }

  // The data_kv key that holds `user_key` (see the grammar above).
  std::string data_key(std::string_view user_key) const {
    return kv_prefix_ + std::string(user_key);
  }

  // The storage the store refers to.
  storage_type& underlying_storage() const { return *storage_; }

  // The group's data_kv keys are those in [data_key(""), data_end()).
  std::string data_end() const {
    std::string end = kv_prefix_;
    ++end.back();  // kv_group ends in "kv": no carry
    return end;
  }

  // Applies `entries`: calls f(const Entry&, state_machine_batch&) for each,
  // in order, then stores the batch's writes, the last entry's log id and
  // the membership (when f set one) in one atomic write. Refused with
  // invalid-log-index when the entries do not continue the applied log; an
  // exception from f fails the call with invalid-argument. Either way, and
  // when the write fails, nothing is stored. No entries: nothing to do.
  template <class F>
  status apply(std::span<const Entry> entries, F&& f) {
    static_assert(std::invocable<F&, const Entry&, state_machine_batch&>,
                  "seshat::state_machine_store::apply: f must be callable as "
                  "f(const Entry&, seshat::state_machine_batch&).");
    if (entries.empty()) return {};
    std::lock_guard lock(*mutex_);
    SESHAT_RETURN_IF_ERROR(load_locked());
    SESHAT_RETURN_IF_ERROR(check_continues(entries));

    state_machine_batch batch(this, &read_hook);
    try {
      for (const Entry& e : entries) {
        batch.current_ = id_of(e);
        f(e, batch);
      }
    } catch (const std::exception& ex) {
      return threw(batch.current_, ex.what());
    } catch (...) {
      return threw(batch.current_, "an exception not derived from std::exception");
    }

    auto wb = storage_->new_batch();
    for (const auto& [key, value] : batch.writes_) {
      if (value) wb.put(k_data_family, data_key(key), value->encode());
      else wb.del(k_data_family, data_key(key));
    }
    const log_id last = id_of(entries.back());
    wb.put(k_state_family, applied_key_, encode_applied(last));
    if (batch.membership_) wb.put(k_state_family, membership_key_, batch.membership_->encode());
    SESHAT_RETURN_IF_ERROR(storage_->write(wb));
    applied_->last_applied = last;
    if (batch.membership_) applied_->membership = std::move(*batch.membership_);
    return {};
  }

  result<seshat::applied_state> applied_state() const {
    std::lock_guard lock(*mutex_);
    SESHAT_RETURN_IF_ERROR(load_locked());
    return *applied_;
  }

  // The value of `key`; not-found when absent or expired at `now_ms`.
  result<stored_value> get(std::string_view key, std::uint64_t now_ms = wall_clock_ms()) const {
    auto value = read(key);
    if (value.ok() && value->expired(now_ms))
      return status::not_found(where() + "key '" + detail::printable(key) + "' expired at " +
                               std::to_string(value->created_at_ms + *value->ttl_ms) + " ms");
    return value;
  }

  // Calls f(std::string_view key, const stored_value&) for every value of
  // the group not expired at `now_ms`, in key order, as the group was when
  // the call began. When f returns bool, false stops the walk. Stops at the
  // first value that does not decode, with its error; an exception from f
  // fails the call with invalid-argument.
  template <class F>
  status for_each(F&& f, std::uint64_t now_ms = wall_clock_ms()) const {
    static_assert(std::invocable<F&, std::string_view, const stored_value&>,
                  "seshat::state_machine_store::for_each: f must be callable as "
                  "f(std::string_view key, const seshat::stored_value&).");
    auto it = storage_->new_iterator(k_data_family);
    for (it->seek(kv_prefix_); it->valid(); it->next()) {
      const std::string_view full = it->key();
      if (!full.starts_with(kv_prefix_)) break;
      auto value = stored_value::decode(it->value(), k_data_family, full);
      if (!value.ok()) return value.status();
      if (value->expired(now_ms)) continue;
      const std::string_view key = full.substr(kv_prefix_.size());
      try {
        if constexpr (std::same_as<std::invoke_result_t<F&, std::string_view, const stored_value&>,
                                   bool>) {
          if (!f(key, std::as_const(*value))) return {};
        } else {
          f(key, std::as_const(*value));
        }
      } catch (const std::exception& ex) {
        return status::invalid_argument(where() + "for_each function threw at key '" +
                                        detail::printable(key) + "': " + ex.what());
      } catch (...) {
        return status::invalid_argument(where() + "for_each function threw at key '" +
                                        detail::printable(key) + "'");
      }
    }
    return it->status();
  }

  // ---- snapshots (raft_snapshot.hpp) ---------------------------------------

  // What a snapshot of the group holds: the applied state, and an iterator
  // over data_kv positioned at the group's first key (it ends at the first
  // key >= data_end()). Both are taken while no apply runs, and the iterator
  // has snapshot isolation, so it sees exactly the data that `state`
  // describes however many applies follow.
  struct snapshot_view {
    seshat::applied_state state;
    std::unique_ptr<typename storage_type::iterator> data;
  };

  // Takes the view under the apply lock (briefly: the walk is the caller's).
  result<snapshot_view> open_snapshot_view() const {
    snapshot_view view;
    {
      std::lock_guard lock(*mutex_);
      SESHAT_RETURN_IF_ERROR(load_locked());
      view.state = *applied_;
      view.data = storage_->new_iterator(k_data_family);
    }
    view.data->seek(kv_prefix_);
    return view;
  }

  // Replaces the whole state machine of the group, as installing a snapshot
  // does. In ONE atomic write: deletes every data_kv key of the group, puts
  // each record fill(put) hands over by calling
  //   put(std::string_view data_key, std::string_view stored) -> status
  // (a full data_kv key, as data_key() spells it, and the bytes to store
  // under it as they are, envelope(stored_value)), and stores `state` as the
  // applied state (its log id, deleted when it has none, and membership).
  // The cached applied state follows. fill returns a status; its error, an
  // exception from it (invalid-argument), a key outside the group
  // (invalid-argument) or a failed write: nothing is written. Refused with
  // snapshot-failed, before fill runs, when `state` is older than what is
  // applied (no log id, or an index below the applied one, while entries
  // are applied). Holds the apply lock throughout: fill must not call
  // apply(), applied_state() or replace_all() of this store. Durability:
  // synced.
  template <class F>
  status replace_all(const seshat::applied_state& state, F&& fill) {
    std::lock_guard lock(*mutex_);
    SESHAT_RETURN_IF_ERROR(load_locked());
    const std::optional<log_id>& applied = applied_->last_applied;
    if (applied && (!state.last_applied || state.last_applied->index < applied->index))
      return status::snapshot_failed(
          where() + "the state to install, at " +
          (state.last_applied ? to_string(*state.last_applied) : std::string("(none)")) +
          ", is older than the applied " + to_string(*applied) + "; nothing was written");
    auto wb = storage_->new_batch();
    wb.del_range(k_data_family, kv_prefix_, data_end());
    auto put = [&](std::string_view key, std::string_view stored) -> status {
      if (!key.starts_with(kv_prefix_))
        return status::invalid_argument(where() + "key '" + detail::printable(key) +
                                        "' is not a data key of this group");
      wb.put(k_data_family, key, stored);
      return {};
    };
    static_assert(std::is_invocable_r_v<status, F&, decltype(put)&>,
                  "seshat::state_machine_store::replace_all: fill must be callable as "
                  "fill(put) -> seshat::status, put being callable as "
                  "put(std::string_view data_key, std::string_view stored) -> seshat::status.");
    try {
      SESHAT_RETURN_IF_ERROR(fill(put));
    } catch (const std::exception& ex) {
      return status::invalid_argument(where() + "replace_all function threw: " + ex.what() +
                                      "; nothing was written");
    } catch (...) {
      return status::invalid_argument(where() + "replace_all function threw; nothing was written");
    }
    if (state.last_applied) wb.put(k_state_family, applied_key_, encode_applied(*state.last_applied));
    else wb.del(k_state_family, applied_key_);
    wb.put(k_state_family, membership_key_, state.membership.encode());
    SESHAT_RETURN_IF_ERROR(storage_->write(wb));
    *applied_ = state;
    return {};
  }

 private:
  // REQUIRES: `shard` is not data_shard{0} (open() checks it).
  explicit state_machine_store(storage_type& s, Shard shard = Shard{})
      : storage_(&s),
        shard_(shard),
        state_keys_(Shard::is_system, shard.id()),
        kv_prefix_(group_keys<KeyFormat>(false, shard.id()).state("kv")),
        applied_key_(state_keys_.state("applied")),
        membership_key_(state_keys_.state("membership")) {}

  std::string where() const {
    return describe(shard_) + ": ";
  }

  status threw(const log_id& at, std::string_view what) const {
    return status::invalid_argument(where() + "apply function threw at entry " + to_string(at) +
                                    ": " + std::string(what) + "; nothing was written");
  }

  // The stored value of `key`, expired or not.
  result<stored_value> read(std::string_view key) const {
    const std::string full = data_key(key);
    auto stored = storage_->get(k_data_family, full);
    if (stored.status().is(errc::not_found))
      return status::not_found(where() + "key '" + detail::printable(key) + "' is absent");
    if (!stored.ok()) return stored.status();
    return stored_value::decode(*stored, k_data_family, full);
  }

  static result<stored_value> read_hook(const void* self, std::string_view key) {
    return static_cast<const state_machine_store*>(self)->read(key);
  }

  status check_continues(std::span<const Entry> entries) const {
    const std::optional<log_id>& last = applied_->last_applied;
    std::optional<std::uint64_t> expected;
    if (last) expected = last->index + 1;
    for (const Entry& e : entries) {
      const std::uint64_t got = id_of(e).index;
      if (got > k_max_log_index)
        return status::invalid_log_index(where() + "apply of entry at " + past_max_index(got));
      if (expected && got != *expected)
        return status::invalid_log_index(
            where() + "apply of entry at index " + std::to_string(got) + ", expected " +
            std::to_string(*expected) +
            (&e != entries.data() ? std::string(" (entries must have consecutive indices)")
                                  : " (last applied is " + to_string(*last) + ")"));
      expected = got + 1;
    }
    return {};
  }

  static std::string encode_applied(const log_id& id) {
    std::string out;
    const std::size_t at = envelope::begin(out);
    detail::put_u64(out, id.term);
    detail::put_u64(out, id.index);
    envelope::seal(out, at);
    return out;
  }

  // Reads the applied state into the cache unless it is there.
  // REQUIRES: *mutex_ held.
  status load_locked() const {
    if (applied_) return {};
    seshat::applied_state state;
    auto applied = storage_->get(k_state_family, applied_key_);
    if (applied.ok()) {
      auto payload = envelope::open(*applied, k_state_family, applied_key_);
      if (!payload.ok()) return payload.status();
      detail::fixed_reader r(*payload);
      state.last_applied = log_id{r.u64(), r.u64()};
      if (!r.done())
        return status::corrupted_data(std::string(name_of(k_state_family)) + " key '" +
                                      detail::printable(applied_key_) + "': applied log id of " +
                                      std::to_string(payload->size()) +
                                      " bytes does not decode (expected 16)");
    } else if (!applied.status().is(errc::not_found)) {
      return applied.status();
    }
    auto stored = storage_->get(k_state_family, membership_key_);
    if (stored.ok()) {
      auto m = membership::decode(*stored, k_state_family, membership_key_);
      if (!m.ok()) return m.status();
      state.membership = std::move(*m);
    } else if (!stored.status().is(errc::not_found)) {
      return stored.status();
    }
    applied_ = std::move(state);
    return {};
  }

  storage_type* storage_;
  Shard shard_;
  group_keys<KeyFormat> state_keys_;
  std::string kv_prefix_;
  std::string applied_key_;
  std::string membership_key_;
  std::unique_ptr<std::mutex> mutex_ = std::make_unique<std::mutex>();
  detail::open_groups::claim claim_;  // this group's state machine, in *storage_
  mutable std::optional<seshat::applied_state> applied_;  // guarded by *mutex_
};

// The state machine of the system group, and of a data group.
template <class Entry, class Backend>
using system_state_machine = state_machine_store<Entry, Backend, system_shard>;
template <class Entry, class Backend>
using data_state_machine = state_machine_store<Entry, Backend, data_shard>;

}  // namespace seshat
