// seshat/detail/open_groups.hpp: which groups of one storage have a
// log_store, a state_machine_store or a snapshot_manager open, so that a
// second handle on the same group is refused instead of overwriting the
// first one's entries. Used by storage<B> (one registry per storage) and
// claimed by the Raft layer's open(). Not part of the public API.
#pragma once

#include <cstdint>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <utility>

#include "seshat/shard.hpp"
#include "seshat/status.hpp"

namespace seshat::detail {

// What a handle keeps of a group. One handle of each role per group.
enum class group_role : unsigned char { log, state_machine, snapshots };

inline const char* role_text(group_role role) {
  switch (role) {
    case group_role::log: return "the log";
    case group_role::state_machine: return "the state machine";
    case group_role::snapshots: return "the snapshot manager";
  }
  return "a handle";
}

// "the system group" or "data shard 42".
inline std::string group_text(bool system, shard_id shard) {
  return system ? std::string("the system group") : "data shard " + std::to_string(shard);
}

class open_groups {
  using key = std::tuple<group_role, bool, shard_id>;

 public:
  // A role held on a group; released when destroyed (or moved from).
  // REQUIRES: the registry outlives the claim.
  class claim {
   public:
    claim() = default;
    claim(claim&& o) noexcept : owner_(std::exchange(o.owner_, nullptr)), key_(o.key_) {}
    claim& operator=(claim&& o) noexcept {
      if (this != &o) {
        release();
        owner_ = std::exchange(o.owner_, nullptr);
        key_ = o.key_;
      }
      return *this;
    }
    claim(const claim&) = delete;
    claim& operator=(const claim&) = delete;
    ~claim() { release(); }

   private:
    friend class open_groups;
    claim(open_groups* owner, key k) : owner_(owner), key_(k) {}
    void release() noexcept {
      if (owner_ != nullptr) std::exchange(owner_, nullptr)->release(key_);
    }
    open_groups* owner_ = nullptr;
    key key_{};
  };

  open_groups() = default;
  open_groups(const open_groups&) = delete;
  open_groups& operator=(const open_groups&) = delete;

  // Takes `role` on the group, or fails with invalid-argument when another
  // handle holds it ("the log of data shard 42 is already open in the store
  // at /d"). `store` names the storage in that message.
  result<claim> acquire(group_role role, bool system, shard_id shard, const std::string& store) {
    try {
      std::lock_guard lock(mutex_);
      if (!held_.emplace(role, system, shard).second)
        return status::invalid_argument(std::string(role_text(role)) + " of " +
                                        group_text(system, shard) +
                                        " is already open in the store at " + store +
                                        ": use the open handle, or destroy it before opening "
                                        "another");
      return claim(this, key{role, system, shard});
    } catch (...) {
      return status::backend_error("cannot record the open " + std::string(role_text(role)) +
                                   ": out of memory");
    }
  }

 private:
  void release(const key& k) noexcept {
    std::lock_guard lock(mutex_);
    held_.erase(k);
  }

  std::mutex mutex_;
  std::set<key> held_;
};

}  // namespace seshat::detail
