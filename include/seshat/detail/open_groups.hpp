// seshat/detail/open_groups.hpp: which groups of one storage have a
// log_store, a state_machine_store or a snapshot_manager open, so that a
// second handle on the same group is refused instead of overwriting the
// first one's entries. Used by storage<B> (one registry per storage) and
// claimed by the Raft layer's open(). Not part of the public API.
#pragma once

#include <cstdint>
#include <memory>
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

// "the system group" or "data shard 42" (describe_group, with its article).
inline std::string group_text(bool system, shard_id shard) {
  return (system ? "the " : "") + describe_group(system, shard);
}

class open_groups {
  using key = std::tuple<group_role, bool, shard_id>;
  // What the registry and its claims share: a claim keeps it alive, so that
  // a handle destroyed after its storage (against its contract) releases
  // its group harmlessly instead of touching freed memory.
  struct held_groups {
    std::mutex mutex;
    std::set<key> keys;
  };

 public:
  // A role held on a group; released when destroyed (or moved from).
  class claim {
   public:
    claim() = default;
    claim(claim&& o) noexcept : held_(std::move(o.held_)), key_(o.key_) {}
    claim& operator=(claim&& o) noexcept {
      if (this != &o) {
        release();
        held_ = std::move(o.held_);
        key_ = o.key_;
      }
      return *this;
    }
    claim(const claim&) = delete;
    claim& operator=(const claim&) = delete;
    ~claim() { release(); }

   private:
    friend class open_groups;
    claim(std::shared_ptr<held_groups> held, key k) : held_(std::move(held)), key_(k) {}
    void release() noexcept {
      if (!held_) return;
      {
        std::lock_guard lock(held_->mutex);
        held_->keys.erase(key_);
      }
      held_.reset();
    }
    std::shared_ptr<held_groups> held_;  // null once released or moved from
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
      std::lock_guard lock(held_->mutex);
      if (!held_->keys.emplace(role, system, shard).second)
        return status::invalid_argument(std::string(role_text(role)) + " of " +
                                        group_text(system, shard) +
                                        " is already open in the store at " + store +
                                        ": use the open handle, or destroy it before opening "
                                        "another");
      return claim(held_, key{role, system, shard});
    } catch (...) {
      return status::backend_error("cannot record the open " + std::string(role_text(role)) +
                                   ": out of memory");
    }
  }

 private:
  std::shared_ptr<held_groups> held_ = std::make_shared<held_groups>();
};

}  // namespace seshat::detail
