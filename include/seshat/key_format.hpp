// seshat/key_format.hpp: the KeyFormat policy, how a group's log and
// hard-state keys are spelled, and log_address, which log a key belongs to.
//
// decimal_key_format (the seed's, readable; the system group's log keys are
// log_key.hpp's):
//   log_key   := group "log:" index20      index20: 20 decimal digits
//   floor_key := group "log_floor"          value: index20
//   state_key := group name                 name: "vote", "committed", ...
//   group     := ""                         system shard
//              | "shard:" id20 "/"          data shard id, 20 digits
//
// binary_key_format (compact, faster to compare):
//   log_key   := group index:u64be
//   floor_key := group 0xff*9 "floor"       value: index:u64be
//   state_key := group "@" name
//   group     := ""                         system shard
//              | id:u64be                   data shard
//
// Both sort a group's log keys by index, and keep each group's keys in a
// contiguous range that no other group's keys fall in. A floor key sorts
// after every log key of its group (outside [log_key(0), log_end)); it is
// written only for a log whose floor storage keeps (storage.hpp), never by
// log_store.
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <concepts>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "seshat/column_family.hpp"
#include "seshat/log_key.hpp"
#include "seshat/shard.hpp"

namespace seshat {

// Which log: the log family it lives in and its group's id (k_system_shard,
// 0, is the system group; any other id a data group). A KeyFormat spells
// its keys (group_keys below); storage's log operations take it
// (storage.hpp). A family alone converts to its system group's log.
struct log_address {
  constexpr log_address(column_family family, shard_id id = k_system_shard) noexcept
      : cf(family), group(id) {}
  column_family cf;
  shard_id group;
  friend bool operator==(const log_address&, const log_address&) = default;
};

// "system_raft_log (system group)", "data_raft_log (group 7)": how errors
// name a log.
inline std::string describe(const log_address& a) {
  return std::string(name_of(a.cf)) +
         (a.group == k_system_shard ? std::string(" (system group)")
                                    : " (group " + std::to_string(a.group) + ")");
}

struct decimal_key_format {
  static constexpr std::string_view k_name = "decimal";
  static std::string group_prefix(bool system, shard_id id) {
    return system ? std::string() : "shard:" + log_key::digits(id) + "/";
  }
  static void append_index(std::string& out, std::uint64_t index) {
    out += log_key::k_prefix;
    log_key::append_digits(out, index);
  }
  // The index encoded by `suffix` (a log key without its group prefix).
  static std::optional<std::uint64_t> parse_index(std::string_view suffix) {
    return log_key::decode(suffix);
  }
  // `key`, ending with index i's 20 digits, ends with i + 1's.
  static void increment_index(std::string& key) {
    for (auto at = key.size(); at-- > 0;) {
      if (key[at] != '9') {
        ++key[at];
        return;
      }
      key[at] = '0';
    }
  }
  // A suffix greater than every index encoding (state keys live in another
  // family, so they need not sort apart from it).
  static std::string index_end() { return std::string(log_key::k_end); }
  // The floor key's suffix and value.
  static std::string floor_name() { return std::string(log_key::k_floor); }
  static std::string floor_value(std::uint64_t index) { return log_key::digits(index); }
  static std::optional<std::uint64_t> parse_floor(std::string_view value) {
    return log_key::parse_digits(value);
  }
  static std::string state_name(std::string_view name) { return std::string(name); }
};

struct binary_key_format {
  static constexpr std::string_view k_name = "binary";
  static std::string group_prefix(bool system, shard_id id) {
    std::string out;
    if (!system) append_index(out, id);
    return out;
  }
  static void append_index(std::string& out, std::uint64_t index) {
    char b[8];  // one append per key, not eight
    for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(index >> (56 - 8 * i));
    out.append(b, 8);
  }
  // `key`, ending with index i's 8 bytes, ends with i + 1's.
  static void increment_index(std::string& key) {
    for (auto at = key.size(); at-- > 0;)
      if (++reinterpret_cast<unsigned char&>(key[at]) != 0) return;
  }
  static std::optional<std::uint64_t> parse_index(std::string_view suffix) {
    if (suffix.size() != 8) return std::nullopt;
    std::uint64_t index = 0;
    for (char c : suffix) index = (index << 8) | static_cast<unsigned char>(c);
    return index;
  }
  static std::string index_end() { return std::string(9, '\xff'); }
  static std::string floor_name() { return index_end() + "floor"; }
  static std::string floor_value(std::uint64_t index) {
    std::string out;
    append_index(out, index);
    return out;
  }
  static std::optional<std::uint64_t> parse_floor(std::string_view value) {
    return parse_index(value);
  }
  static std::string state_name(std::string_view name) { return "@" + std::string(name); }
};

// A format may also give `static void increment_index(std::string& key)`:
// `key`, ending with index i's encoding, then ends with i + 1's (range reads
// advance their expected key with it; without it, they spell it again).
template <class F>
concept key_format = requires(std::string& out, std::string_view s, std::uint64_t i) {
  { F::k_name } -> std::convertible_to<std::string_view>;
  { F::group_prefix(true, i) } -> std::same_as<std::string>;
  F::append_index(out, i);
  { F::parse_index(s) } -> std::same_as<std::optional<std::uint64_t>>;
  { F::index_end() } -> std::same_as<std::string>;
  { F::floor_name() } -> std::same_as<std::string>;
  { F::floor_value(i) } -> std::same_as<std::string>;
  { F::parse_floor(s) } -> std::same_as<std::optional<std::uint64_t>>;
  { F::state_name(s) } -> std::same_as<std::string>;
};

// The keys of one group under key format F.
template <key_format F>
class group_keys {
 public:
  group_keys(bool system, shard_id id) : prefix_(F::group_prefix(system, id)) {}
  // The keys of the log at `a`.
  explicit group_keys(const log_address& a) : group_keys(a.group == k_system_shard, a.group) {}

  // The key of entry `index`, written into `out` (reused across calls).
  void log_into(std::string& out, std::uint64_t index) const {
    out.assign(prefix_);
    F::append_index(out, index);
  }
  // The key of entry i + 1, from `key`, this group's key of entry i
  // (i < k_max_log_index): a range read's next key, changed in place.
  void next_log_key(std::string& key, std::uint64_t i) const {
    if constexpr (requires { F::increment_index(key); }) {
      F::increment_index(key);
    } else {
      key.resize(prefix_.size());
      F::append_index(key, i + 1);
    }
  }
  std::string log(std::uint64_t index) const {
    std::string out;
    log_into(out, index);
    return out;
  }
  // The index of `key` when it is a log key of this group.
  std::optional<std::uint64_t> index_of(std::string_view key) const {
    if (!key.starts_with(prefix_)) return std::nullopt;
    return F::parse_index(key.substr(prefix_.size()));
  }
  // True when `key` lies in this group's log key range.
  bool in_log_range(std::string_view key) const {
    return key.substr(0, prefix_.size()) == prefix_ && key >= log(0) && key < log_end();
  }
  // A key past every log key of this group.
  std::string log_end() const { return prefix_ + F::index_end(); }
  // The key of this group's floor record (after log_end()).
  std::string floor() const { return prefix_ + F::floor_name(); }
  std::string state(std::string_view name) const { return prefix_ + F::state_name(name); }

 private:
  std::string prefix_;
};

}  // namespace seshat
