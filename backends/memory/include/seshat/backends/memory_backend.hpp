// seshat/backends/memory_backend.hpp: a complete in-memory backend.
//
// memory_backend keeps each column family in a sorted map. It is a real
// backend (atomic batches, snapshot iterators, the same errors as the
// on-disk ones) and the reference model the Raft-level tests stand on.
//
// The "disk" of a memory store lives in a process-wide registry keyed by the
// directory path it was opened with: closing and reopening the same path
// finds the same data, as with an on-disk store, until destroy(path).
//
// Power loss: the backend remembers what was written without sync since the
// last synced write (or sync_wal()). drop_unsynced() undoes exactly that, as a
// machine that lost power would, like leveldb's FaultInjectionTestEnv.
// inject_write_failure() makes a later batch fail in its middle, to prove
// that a failed batch leaves nothing behind.
//
// Thread-safety: all members may be called from many threads at once.
// Iterators see the family as it was when they were made (copy-on-write).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "seshat/backend.hpp"
#include "seshat/column_family.hpp"
#include "seshat/options.hpp"
#include "seshat/status.hpp"

namespace seshat {

class memory_backend {
 public:
  static constexpr std::string_view k_name = "memory";
  using map = std::map<std::string, std::string, std::less<>>;

  // An ordered list of operations, applied atomically by write().
  class batch {
   public:
    void put(column_family cf, std::string_view key, std::string_view value) {
      ops_.push_back({op_kind::put, cf, std::string(key), std::string(value)});
    }
    void del(column_family cf, std::string_view key) {
      ops_.push_back({op_kind::del, cf, std::string(key), {}});
    }
    // Deletes [begin, end).
    void del_range(column_family cf, std::string_view begin, std::string_view end) {
      ops_.push_back({op_kind::del_range, cf, std::string(begin), std::string(end)});
    }
    std::size_t size() const { return ops_.size(); }
    bool empty() const { return ops_.empty(); }
    void clear() { ops_.clear(); }

   private:
    friend class memory_backend;
    enum class op_kind { put, del, del_range };
    struct op {
      op_kind kind;
      column_family cf;
      std::string key;
      std::string value;  // the value of a put, the end of a del_range
    };
    std::vector<op> ops_;
  };

  // Iterates one family as it was when the iterator was made.
  class iterator {
   public:
    explicit iterator(std::shared_ptr<const map> snapshot)
        : map_(std::move(snapshot)), it_(map_->end()) {}
    void seek_to_first() { it_ = map_->begin(); }
    void seek_to_last() { it_ = map_->empty() ? map_->end() : std::prev(map_->end()); }
    void seek(std::string_view key) { it_ = map_->lower_bound(key); }
    void seek_for_prev(std::string_view key) {
      auto up = map_->upper_bound(key);
      it_ = up == map_->begin() ? map_->end() : std::prev(up);
    }
    void next() {
      if (it_ != map_->end()) ++it_;
    }
    void prev() { it_ = it_ == map_->begin() || it_ == map_->end() ? map_->end() : std::prev(it_); }
    bool valid() const { return it_ != map_->end(); }
    std::string_view key() const { return it_->first; }
    std::string_view value() const { return it_->second; }
    seshat::status status() const { return {}; }

   private:
    std::shared_ptr<const map> map_;
    map::const_iterator it_;
  };

  static result<std::unique_ptr<memory_backend>> open(const std::filesystem::path& dir,
                                                      const open_options& options) {
    SESHAT_RETURN_IF_ERROR(options.validate());
    std::lock_guard lock(registry_mutex());
    auto& disks = registry();
    auto found = disks.find(dir.string());
    if (found == disks.end()) {
      if (!options.create_if_missing)
        return status::not_found("no seshat store at " + dir.string() +
                                 " (memory backend) and create_if_missing is off");
      found = disks.emplace(dir.string(), std::make_shared<disk>()).first;
    }
    if (found->second->open)
      return status::backend_error("store at " + dir.string() +
                                   " is locked: it is already open in this process");
    found->second->open = true;
    return std::unique_ptr<memory_backend>(new memory_backend(found->second, dir.string()));
  }

  // Forgets the store at `dir`. REQUIRES: it is not open.
  static status destroy(const std::filesystem::path& dir) {
    std::lock_guard lock(registry_mutex());
    auto found = registry().find(dir.string());
    if (found == registry().end()) return {};
    if (found->second->open)
      return status::backend_error("cannot destroy " + dir.string() + ": the store is open");
    registry().erase(found);
    return {};
  }

  memory_backend(const memory_backend&) = delete;
  memory_backend& operator=(const memory_backend&) = delete;
  ~memory_backend() { close().ignore(); }

  status get(column_family cf, std::string_view key, std::string* value) {
    std::shared_lock lock(disk_->mutex);
    const map& m = *disk_->families[index_of(cf)];
    auto it = m.find(key);
    if (it == m.end()) return status::not_found(key_context(cf, key));
    value->assign(it->second);
    return {};
  }

  status put(column_family cf, std::string_view key, std::string_view value, write_options wo) {
    batch b;
    b.put(cf, key, value);
    return write(b, wo);
  }

  status del(column_family cf, std::string_view key, write_options wo) {
    batch b;
    b.del(cf, key);
    return write(b, wo);
  }

  batch new_batch() { return {}; }

  status write(batch& b, write_options wo) {
    std::unique_lock lock(disk_->mutex);
    if (closed_) return closed_error();
    std::vector<undo_record> undo;
    std::size_t applied = 0;
    for (const auto& op : b.ops_) {
      if (disk_->fail_after && applied == *disk_->fail_after) {
        disk_->fail_after.reset();
        rollback(undo);
        return status::io_error("injected write failure after " + std::to_string(applied) +
                                " of " + std::to_string(b.size()) + " operations");
      }
      apply(op, undo);
      ++applied;
    }
    if (wo.sync) {
      disk_->unsynced.clear();
    } else {
      disk_->unsynced.insert(disk_->unsynced.end(), std::make_move_iterator(undo.begin()),
                             std::make_move_iterator(undo.end()));
    }
    return {};
  }

  std::unique_ptr<iterator> new_iterator(column_family cf) {
    std::shared_lock lock(disk_->mutex);
    return std::make_unique<iterator>(disk_->families[index_of(cf)]);
  }

  status sync_wal() {
    std::unique_lock lock(disk_->mutex);
    disk_->unsynced.clear();
    return {};
  }

  status compact_range(column_family, std::string_view, std::string_view) { return {}; }

  result<std::uint64_t> approximate_size(column_family cf, std::string_view begin,
                                         std::string_view end) {
    std::shared_lock lock(disk_->mutex);
    const map& m = *disk_->families[index_of(cf)];
    std::uint64_t total = 0;
    auto it = begin.empty() ? m.begin() : m.lower_bound(begin);
    auto stop = end.empty() ? m.end() : m.lower_bound(end);
    for (; it != stop; ++it) total += it->first.size() + it->second.size();
    return total;
  }

  result<std::uint64_t> disk_usage() {
    std::uint64_t total = 0;
    for (column_family cf : k_all_column_families) {
      auto size = approximate_size(cf, {}, {});
      total += *size;
    }
    return total;
  }

  status close() {
    if (closed_) return {};
    closed_ = true;
    std::lock_guard lock(registry_mutex());
    disk_->open = false;
    return {};
  }

  // Simulates a power loss: undoes every write made without sync since the
  // last synced write or sync_wal(), newest first.
  void drop_unsynced() {
    std::unique_lock lock(disk_->mutex);
    rollback(disk_->unsynced);
  }

  // Makes the next write() fail after `applied` of its operations, rolling
  // back those it applied: a crash in the middle of a batch.
  void inject_write_failure(std::size_t applied) {
    std::unique_lock lock(disk_->mutex);
    disk_->fail_after = applied;
  }

 private:
  struct undo_record {
    column_family cf;
    std::string key;
    std::optional<std::string> old_value;  // nothing: the key was absent
  };

  // What survives close(): the data of one store.
  struct disk {
    std::shared_mutex mutex;
    std::array<std::shared_ptr<map>, k_column_family_count> families = make_families();
    std::vector<undo_record> unsynced;   // oldest first
    std::optional<std::size_t> fail_after;
    bool open = false;  // guarded by registry_mutex()
  };

  static std::array<std::shared_ptr<map>, k_column_family_count> make_families() {
    std::array<std::shared_ptr<map>, k_column_family_count> f;
    for (auto& m : f) m = std::make_shared<map>();
    return f;
  }

  static std::mutex& registry_mutex() {
    static std::mutex m;
    return m;
  }
  static std::unordered_map<std::string, std::shared_ptr<disk>>& registry() {
    static std::unordered_map<std::string, std::shared_ptr<disk>> r;
    return r;
  }

  memory_backend(std::shared_ptr<disk> d, std::string path)
      : disk_(std::move(d)), path_(std::move(path)) {}

  static std::string key_context(column_family cf, std::string_view key) {
    return "key '" + std::string(key) + "' in column family " + std::string(name_of(cf));
  }
  status closed_error() const { return status::backend_error("store at " + path_ + " is closed"); }

  // The family's map, copied first when an iterator still reads it.
  // REQUIRES: disk_->mutex held exclusively.
  map& writable(column_family cf) {
    auto& m = disk_->families[index_of(cf)];
    if (m.use_count() > 1) m = std::make_shared<map>(*m);
    return *m;
  }

  void set(column_family cf, const std::string& key, std::optional<std::string> value,
           std::vector<undo_record>& undo) {
    map& m = writable(cf);
    auto it = m.find(key);
    undo.push_back({cf, key, it == m.end() ? std::nullopt : std::optional(it->second)});
    if (value) {
      if (it == m.end()) m.emplace(key, std::move(*value));
      else it->second = std::move(*value);
    } else if (it != m.end()) {
      m.erase(it);
    }
  }

  void apply(const batch::op& op, std::vector<undo_record>& undo) {
    switch (op.kind) {
      case batch::op_kind::put: set(op.cf, op.key, op.value, undo); break;
      case batch::op_kind::del: set(op.cf, op.key, std::nullopt, undo); break;
      case batch::op_kind::del_range: {
        if (op.key >= op.value) break;
        map& m = writable(op.cf);
        auto first = m.lower_bound(op.key);
        auto last = m.lower_bound(op.value);
        for (auto it = first; it != last; ++it) undo.push_back({op.cf, it->first, it->second});
        m.erase(first, last);
        break;
      }
    }
  }

  // Undoes `undo` newest first and empties it.
  void rollback(std::vector<undo_record>& undo) {
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) {
      map& m = writable(it->cf);
      if (it->old_value) m.insert_or_assign(it->key, std::move(*it->old_value));
      else m.erase(it->key);
    }
    undo.clear();
  }

  std::shared_ptr<disk> disk_;
  std::string path_;
  bool closed_ = false;
};

static_assert(backend<memory_backend>);

}  // namespace seshat
