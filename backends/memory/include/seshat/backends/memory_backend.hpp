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
// that a failed batch leaves nothing behind: the store knows nothing of it
// reached the "disk", and goes on. inject_sync_failure() makes the next sync
// fail as a disk's fsync can: what it was to make durable stays undurable
// (drop_unsynced() undoes it) and, as on the disk backends, the store is
// stopped: every later write and sync fails with that error until it is
// reopened (detail/write_latch.hpp).
//
// Checkpoints are real files: checkpoint(dir) creates the directory `dir`
// holding one file, `memory.checkpoint`:
//
//   file    := header record* trailer
//   header  := "seshat-memory-checkpoint 1\n"
//   record  := family:u8 key_size:u64le key value_size:u64le value
//              (family: the column_family's value, 0 to 5; records sorted by
//              family, then key)
//   trailer := 0xFF count:u64le crc:u32le
//              (count: the number of records; crc: the CRC-32C of every byte
//              of the file before it)
//
// install_checkpoint(dir, store) reads and checks the whole file before it
// changes anything, then replaces the store's families in one step: all or
// nothing. The installed state counts as synced (drop_unsynced() keeps it).
//
// Thread-safety: all members may be called from many threads at once,
// close() included: it waits for the operations running, and every later
// one fails with a backend-error saying the store is closed. Iterators see
// the family as it was when they were made (copy-on-write): an iterator
// holds its family's map, so it keeps working after close().
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <array>
#include <atomic>
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
#include "seshat/detail/already_open.hpp"
#include "seshat/detail/backend_guard.hpp"
#include "seshat/detail/checkpoint_dir.hpp"
#include "seshat/detail/crc32c.hpp"
#include "seshat/detail/files.hpp"
#include "seshat/detail/op_batch.hpp"
#include "seshat/detail/printable.hpp"
#include "seshat/detail/store_marker.hpp"
#include "seshat/detail/write_latch.hpp"
#include "seshat/options.hpp"
#include "seshat/status.hpp"

namespace seshat {

class memory_backend {
 public:
  static constexpr std::string_view k_name = "memory";
  static constexpr bool k_syncs_are_free = true;  // nothing is on a disk
  using map = std::map<std::string, std::string, std::less<>>;

  // An ordered list of operations, applied atomically by write()
  // (detail/op_batch.hpp: shared by every backend).
  using batch = detail::op_batch;

  // Iterates one family as it was when the iterator was made.
  class iterator {
   public:
    explicit iterator(std::shared_ptr<const map> snapshot, seshat::status error = {})
        : map_(std::move(snapshot)), it_(map_->end()), error_(std::move(error)) {}
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
    seshat::status status() const { return error_; }

   private:
    std::shared_ptr<const map> map_;
    map::const_iterator it_;
    seshat::status error_;  // set on an iterator of a closed store, which is empty
  };

  static result<std::unique_ptr<memory_backend>> open(const std::filesystem::path& dir,
                                                      const open_options& options) {
    SESHAT_RETURN_IF_ERROR(options.validate());
    SESHAT_RETURN_IF_ERROR(detail::check_store_path(dir));
    std::lock_guard lock(registry_mutex());
    auto& disks = registry();
    auto found = disks.find(registry_key(dir));
    if (found == disks.end()) {
      if (!options.create_if_missing)
        return status::not_found("no seshat store at " + registry_key(dir) +
                                 " (memory backend) and create_if_missing is off");
      found = disks.emplace(registry_key(dir), std::make_shared<disk>()).first;
    }
    if (found->second->open)
      return detail::already_open(registry_key(dir), detail::lock_holder::this_process)
          .with_context("open: ");
    found->second->open = true;
    return std::unique_ptr<memory_backend>(new memory_backend(found->second, registry_key(dir)));
  }

  // Forgets the store at `dir`. REQUIRES: it is not open.
  static status destroy(const std::filesystem::path& dir) {
    std::lock_guard lock(registry_mutex());
    auto found = registry().find(registry_key(dir));
    if (found == registry().end()) return {};
    if (found->second->open)
      return status::backend_error("cannot destroy " + registry_key(dir) + ": the store is open");
    registry().erase(found);
    return {};
  }

  memory_backend(const memory_backend&) = delete;
  memory_backend& operator=(const memory_backend&) = delete;
  ~memory_backend() { close().ignore(); }

  status get(column_family cf, std::string_view key, std::string* value) {
    if (!detail::is_known_family(cf)) return detail::unknown_family("get", cf, path_);
    std::shared_lock lock(disk_->mutex);
    if (closed_) return closed_error();
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
    if (!b.ok()) return b.check().with_context("write to store at " + path_ + ": ");
    std::unique_lock lock(disk_->mutex);
    if (closed_) return closed_error();
    if (latch_.latched()) return latch_.refusal("write to store at " + path_);
    std::vector<undo_record> undo;
    std::size_t applied = 0;
    try {
      for (const batch::op& op : b) {
        if (disk_->fail_after && applied == *disk_->fail_after) {
          disk_->fail_after.reset();
          rollback(undo);
          return status::io_error("injected write failure after " + std::to_string(applied) +
                                  " of " + std::to_string(b.size()) + " operations");
        }
        apply(op, undo);
        ++applied;
      }
    } catch (...) {
      // Out of memory part way: the batch is all or nothing.
      rollback(undo);
      return detail::current_exception_status("write", path_);
    }
    if (wo.sync && disk_->fail_sync) {
      disk_->fail_sync = false;
      disk_->unsynced.insert(disk_->unsynced.end(), std::make_move_iterator(undo.begin()),
                             std::make_move_iterator(undo.end()));
      return latch_.note(
          status::io_error("write to store at " + path_ + ": sync: injected sync failure"));
    }
    if (wo.sync) {
      disk_->unsynced.clear();
    } else {
      disk_->unsynced.insert(disk_->unsynced.end(), std::make_move_iterator(undo.begin()),
                             std::make_move_iterator(undo.end()));
    }
    return {};
  }

  // Never null (see seshat/backend.hpp): on a closed store, an empty
  // iterator whose status() says so.
  std::unique_ptr<iterator> new_iterator(column_family cf) {
    return detail::guarded_iterator(
        "new_iterator", path_,
        [&] {
          if (!detail::is_known_family(cf))
            return std::make_unique<iterator>(empty_map(),
                                              detail::unknown_family("new_iterator", cf, path_));
          std::shared_lock lock(disk_->mutex);
          if (closed_) return std::make_unique<iterator>(empty_map(), closed_error());
          return std::make_unique<iterator>(disk_->families[index_of(cf)]);
        },
        [](seshat::status error) { return std::make_unique<iterator>(empty_map(), std::move(error)); });
  }

  status sync_wal() {
    std::unique_lock lock(disk_->mutex);
    if (closed_) return closed_error();
    if (latch_.latched()) return latch_.refusal("sync_wal of store at " + path_);
    if (disk_->fail_sync) {
      disk_->fail_sync = false;
      return latch_.note(
          status::io_error("sync_wal of store at " + path_ + ": injected sync failure"));
    }
    disk_->unsynced.clear();
    return {};
  }

  status compact_range(column_family, std::string_view, std::string_view) {
    return closed_ ? closed_error() : status{};
  }

  result<std::uint64_t> approximate_size(column_family cf, std::string_view begin,
                                         std::string_view end) {
    if (!detail::is_known_family(cf)) return detail::unknown_family("approximate_size", cf, path_);
    std::shared_lock lock(disk_->mutex);
    if (closed_) return closed_error();
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
      if (!size.ok()) return size.status();
      total += *size;
    }
    return total;
  }

  // Waits for the operations running (they hold the disk's mutex): once it
  // returns, this object no longer reads or changes the store, and a new
  // open() may take it. Iterators keep their snapshot.
  status close() {
    {
      std::unique_lock lock(disk_->mutex);
      if (closed_.exchange(true)) return {};
    }
    std::lock_guard lock(registry_mutex());
    disk_->open = false;
    return {};
  }

  // The name of the one file of a checkpoint, and its first line.
  static constexpr std::string_view k_checkpoint_file = "memory.checkpoint";
  static constexpr std::string_view k_checkpoint_header = "seshat-memory-checkpoint 1\n";

  // Writes the families, as they are at this instant, into the new directory
  // `dir` (see the file format above), fsynced. Writes may continue
  // meanwhile. invalid-argument when `dir` exists.
  status checkpoint(const std::filesystem::path& dir) {
    std::array<std::shared_ptr<const map>, k_column_family_count> frozen;
    {
      std::shared_lock lock(disk_->mutex);
      if (closed_) return closed_error();
      // Writers copy a family before changing it while we hold it.
      for (std::size_t i = 0; i < k_column_family_count; ++i) frozen[i] = disk_->families[i];
    }
    return detail::make_checkpoint_dir(
        "store at " + path_, dir, [&](const std::filesystem::path& target, bool& owned) -> status {
          const std::string out = encode_checkpoint(frozen);
          SESHAT_RETURN_IF_ERROR(detail::claim_checkpoint_dir(target, owned));
          SESHAT_RETURN_IF_ERROR(detail::write_file_durably(target / k_checkpoint_file, out));
          return detail::fsync_path(detail::parent_of(target), true);
        });
  }

  // Replaces the families of the store at `store_dir` (created if there is
  // none) with the checkpoint in `checkpoint_dir`, all or nothing. Refuses
  // (backend-error) a store that is open; corrupted-data, naming the byte
  // offset, for a checkpoint file that does not decode.
  static status install_checkpoint(const std::filesystem::path& checkpoint_dir,
                                   const std::filesystem::path& store_dir) {
    return detail::guarded("install_checkpoint", registry_key(store_dir), [&]() -> status {
      const std::filesystem::path file = checkpoint_dir / k_checkpoint_file;
      auto text = detail::read_small_file(file);
      if (!text.ok()) return text.status().with_context("install checkpoint: ");
      SESHAT_ASSIGN_OR_RETURN(families_type families, decode_checkpoint(*text, file.string()));
      std::lock_guard registry_lock(registry_mutex());
      auto& d = registry()[registry_key(store_dir)];
      if (!d) d = std::make_shared<disk>();
      if (d->open)
        return status::backend_error("install checkpoint into " + registry_key(store_dir) +
                                     ": the store is open");
      std::unique_lock lock(d->mutex);
      d->families = std::move(families);
      d->unsynced.clear();
      return {};
    });
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

  // Makes the next sync (a synced write, or sync_wal()) fail with an I/O
  // error, as a disk whose fsync failed: the write is applied (reads see
  // it), but it and every unsynced write before it stay undurable, and the
  // store refuses every later write and sync until it is reopened.
  void inject_sync_failure() {
    std::unique_lock lock(disk_->mutex);
    disk_->fail_sync = true;
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
    bool fail_sync = false;
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

  using families_type = std::array<std::shared_ptr<map>, k_column_family_count>;

  // The iterator of a closed store, or of one that could not be made.
  static const std::shared_ptr<const map>& empty_map() {
    static const std::shared_ptr<const map> m = std::make_shared<const map>();
    return m;
  }

  // A checkpoint file of `families` (see the format at the top).
  static std::string encode_checkpoint(
      const std::array<std::shared_ptr<const map>, k_column_family_count>& families) {
    std::string out(k_checkpoint_header);
    std::uint64_t count = 0;
    auto put_u64 = [&](std::uint64_t v) {
      for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
    };
    for (column_family cf : k_all_column_families) {
      for (const auto& [key, value] : *families[index_of(cf)]) {
        out.push_back(static_cast<char>(static_cast<unsigned char>(cf)));
        put_u64(key.size());
        out += key;
        put_u64(value.size());
        out += value;
        ++count;
      }
    }
    out.push_back(static_cast<char>(0xFF));
    put_u64(count);
    const std::uint32_t crc = detail::crc32c(out);
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((crc >> (8 * i)) & 0xFF));
    return out;
  }

  // The families of a checkpoint file (see the format at the top).
  static result<families_type> decode_checkpoint(std::string_view text, const std::string& file) {
    auto bad = [&](std::size_t offset, const std::string& why) {
      return status::corrupted_data("memory checkpoint " + file + ", byte " + std::to_string(offset) +
                                    ": " + why);
    };
    if (text.substr(0, k_checkpoint_header.size()) != k_checkpoint_header)
      return bad(0, "not a memory checkpoint (bad header)");
    constexpr std::size_t k_trailer = 1 + 8 + 4;
    if (text.size() < k_checkpoint_header.size() + k_trailer) return bad(text.size(), "truncated");
    const std::size_t crc_at = text.size() - 4;
    std::uint32_t stored = 0;
    for (int i = 0; i < 4; ++i)
      stored |= std::uint32_t{static_cast<unsigned char>(text[crc_at + static_cast<std::size_t>(i)])} << (8 * i);
    if (detail::crc32c(text.substr(0, crc_at)) != stored) return bad(crc_at, "checksum mismatch");
    std::size_t pos = k_checkpoint_header.size();
    auto get_u64 = [&](std::uint64_t* v) {
      if (crc_at - pos < 8) return false;
      *v = 0;
      for (int i = 0; i < 8; ++i)
        *v |= std::uint64_t{static_cast<unsigned char>(text[pos + static_cast<std::size_t>(i)])} << (8 * i);
      pos += 8;
      return true;
    };
    auto get_bytes = [&](std::string* out) {
      std::uint64_t n = 0;
      if (!get_u64(&n) || n > crc_at - pos) return false;
      out->assign(text.substr(pos, static_cast<std::size_t>(n)));
      pos += static_cast<std::size_t>(n);
      return true;
    };
    families_type families = make_families();
    std::uint64_t count = 0;
    for (;;) {
      if (pos >= crc_at) return bad(pos, "truncated: no trailer");
      const auto tag = static_cast<unsigned char>(text[pos]);
      if (tag == 0xFF) {
        ++pos;
        std::uint64_t expected = 0;
        if (!get_u64(&expected) || pos != crc_at) return bad(pos, "malformed trailer");
        if (expected != count)
          return bad(pos, "the trailer counts " + std::to_string(expected) + " records, the file holds " +
                              std::to_string(count));
        return families;
      }
      if (tag >= k_column_family_count) return bad(pos, "unknown column family " + std::to_string(tag));
      const std::size_t record_at = pos++;
      std::string key, value;
      if (!get_bytes(&key) || !get_bytes(&value)) return bad(record_at, "truncated record");
      if (!families[tag]->emplace(std::move(key), std::move(value)).second)
        return bad(record_at, "duplicate key");
      ++count;
    }
  }

  // The registry's name for a store directory: /a, /a/ and /b/../a are one.
  static std::string registry_key(const std::filesystem::path& dir) {
    std::string key = dir.lexically_normal().string();
    while (key.size() > 1 && key.back() == '/') key.pop_back();
    return key;
  }

  static std::string key_context(column_family cf, std::string_view key) {
    return "key '" + detail::printable(key) + "' in column family " + std::string(name_of(cf));
  }
  status closed_error() const { return status::backend_error("store at " + path_ + " is closed"); }

  // The family's map, copied first when an iterator still reads it.
  // REQUIRES: disk_->mutex held exclusively.
  map& writable(column_family cf) {
    auto& m = disk_->families[index_of(cf)];
    if (m.use_count() > 1) m = std::make_shared<map>(*m);
    return *m;
  }

  void set(column_family cf, std::string_view key, std::optional<std::string_view> value,
           std::vector<undo_record>& undo) {
    map& m = writable(cf);
    auto it = m.find(key);
    undo.push_back({cf, std::string(key), it == m.end() ? std::nullopt : std::optional(it->second)});
    if (value) {
      if (it == m.end()) m.emplace(std::string(key), std::string(*value));
      else it->second.assign(*value);
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
  std::atomic<bool> closed_{false};
  detail::write_latch latch_;  // of this open store: a reopen starts clear
};

static_assert(backend<memory_backend>);

}  // namespace seshat
