// seshat/storage_batch.hpp: an atomic batch of writes across column
// families, built for one storage<B>.
//
// Operations apply in the order they were added, all or nothing. A batch
// that touches a family whose writes require sync (the raft_state ones) is
// written with sync, whatever the caller asked.
//
// Log tracking: the batch records which log families it touches. Its keys
// there bypass storage's log operations (storage.hpp), so storage::write
// drops the cached bounds of every log in those families (they are read
// again at their next use); storage::reset_log refuses such a batch as the
// companion of a log write. Logs are written through storage's log
// operations, not through batches.
//
// Thread-safety: a batch belongs to one thread at a time.
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <chrono>
#include <cstdint>
#include <string_view>
#include <utility>

#include "seshat/backend.hpp"
#include "seshat/column_family.hpp"
#include "seshat/detail/counters.hpp"

namespace seshat {

template <backend B>
class storage;

template <backend B>
class storage_batch {
 public:
  void put(column_family cf, std::string_view key, std::string_view value) {
    note(cf, key.size() + value.size());
    batch_.put(cf, key, value);
  }
  void del(column_family cf, std::string_view key) {
    note(cf, key.size());
    batch_.del(cf, key);
  }
  // Deletes the keys in [begin, end).
  void del_range(column_family cf, std::string_view begin, std::string_view end) {
    note(cf, begin.size() + end.size());
    batch_.del_range(cf, begin, end);
  }

  // Makes the batch durable before write() returns even when no family
  // requires it.
  void set_sync() { sync_ = true; }

  std::size_t size() const { return batch_.size(); }
  bool empty() const { return batch_.empty(); }
  // True when write() will sync this batch.
  bool sync() const { return sync_; }
  // After a successful synced write(): how long its write and sync took
  // (for metrics); 0 otherwise.
  std::chrono::nanoseconds synced_in() const { return tally_.synced_in; }

 private:
  friend class storage<B>;
  explicit storage_batch(typename B::batch batch) : batch_(std::move(batch)) {}

  void note(column_family cf, std::size_t bytes) {
    sync_ = sync_ || requires_sync(cf);
    if (holds_log(cf)) log_families_ |= 1u << index_of(cf);
    tally_.note(cf, bytes);
  }

  typename B::batch batch_;
  bool sync_ = false;
  unsigned log_families_ = 0;  // bit index_of(cf) set for each log family touched
  detail::family_tally tally_;  // for storage's counters
};

}  // namespace seshat
