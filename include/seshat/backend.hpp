// seshat/backend.hpp: the Backend concept, a key-value engine with column
// families.
//
// A backend is pure persistence: bytes in six column families, no Raft
// knowledge. seshat ships three (backends/rocksdb, backends/leveldb,
// backends/memory); docs/backends.md explains how to add one.
//
// A type B models `backend` when it provides:
//
//   static result<std::unique_ptr<B>> open(const std::filesystem::path& dir,
//                                           const open_options& options);
//     Opens (or, with create_if_missing, creates) the store in `dir`, with
//     all six column families. Fails without changing anything when `dir`
//     is not a seshat store, was made by another backend (version-mismatch),
//     has a newer schema (version-mismatch), or is missing and
//     create_if_missing is off (not-found). A store is open at most once at a
//     time; a second open fails (the store is locked).
//   static constexpr std::string_view k_name;       "rocksdb", "leveldb", ...
//   static constexpr bool k_syncs_are_free;         optional, false if absent:
//     true when a synced write costs what an unsynced one does (memory keeps
//     no disk). storage then records each sync as taking 0 s and reads no
//     clock for it (sync latency metrics).
//
//   status get(column_family, std::string_view key, std::string* value);
//     not-found when the key is absent.
//   status put(column_family, std::string_view key, std::string_view value,
//              write_options);
//   status del(column_family, std::string_view key, write_options);
//   batch new_batch();
//   status write(batch&, write_options);
//     Applies every operation of the batch, in order, atomically: after a
//     crash either all of them are there or none.
//   std::unique_ptr<iterator> new_iterator(column_family);
//     An iterator over one family that sees the family as it was when the
//     iterator was made, whatever is written meanwhile (snapshot isolation).
//     Never null: when no iterator can be made (the store is closed, the
//     family is unknown, the engine failed or threw) it returns one that is
//     not valid() and whose status() says why; callers check status(), not
//     the pointer. (detail/backend_guard.hpp's guarded_iterator: should
//     even that iterator's allocation fail, the program terminates.)
//   status sync_wal();      makes every earlier write durable.
//     After a write or a sync (this one, a synced write's, or one the
//     backend does itself) fails with io-error, every later write and sync
//     of that open store fails with io-error naming the first failure,
//     until the store is reopened: a retried sync could claim durability
//     for data the OS dropped (detail/write_latch.hpp).
//   status compact_range(column_family, std::string_view begin, std::string_view end);
//     Compacts [begin, end); empty strings mean "from the start"/"to the end".
//   result<std::uint64_t> approximate_size(column_family, std::string_view begin,
//                                          std::string_view end);
//   result<std::uint64_t> disk_usage();   bytes the store takes on disk
//   status close();          flushes and releases the store; idempotent.
//     Safe while other threads use the backend: their calls finish first or
//     fail with backend_error (the store is closed); a live iterator's views
//     stay valid (see iterator below).
//
//   status checkpoint(const std::filesystem::path& dir);
//     Creates `dir` (which must not exist; its parent must) holding a
//     consistent point-in-time copy of all six families: every write that
//     returned before the call is in it, and every batch is in it whole or
//     not at all. Writes may continue meanwhile. The copy is durable (files
//     and directories fsynced) when this returns, and is a store that
//     install_checkpoint can install (on-disk backends: the engine's files
//     with a copy of the SESHAT_STORE marker, openable by B::open). On
//     failure `dir` is removed again. The checkpoint is not changed by the
//     store afterwards, but may share immutable files with it (hard links).
//   static status install_checkpoint(const std::filesystem::path& checkpoint_dir,
//                                    const std::filesystem::path& store_dir);
//     REQUIRES: the store at store_dir is closed, and nobody opens it until
//     this returns. Replaces the store's contents with those of a
//     checkpoint made by checkpoint() of the same backend (a missing store
//     is created). Crash-atomic: after a crash at any moment and a reopen,
//     the store holds either its old state or the checkpoint's, whole. On
//     failure the store holds its old state, except (on-disk backends)
//     when the failure came after the switch, a failed fsync of the parent
//     directory: it then holds the checkpoint's, which a power loss may
//     undo (storage::restore_snapshot finds and says which). The checkpoint is not changed (its
//     immutable files may end up shared with the store by hard links).
//
// with nested types
//
//   batch:    put(cf, key, value), del(cf, key), del_range(cf, begin, end)
//             deleting [begin, end), size() (operations), empty(), clear().
//             The shipped backends all use detail/op_batch.hpp's.
//   iterator: seek_to_first(), seek_to_last(), seek(key) (first key >= key),
//             seek_for_prev(key) (last key <= key), valid(), next(), prev(),
//             key(), value() (REQUIRES: valid(); the views stay valid until
//             the iterator moves or is destroyed, even across close()),
//             status().
//
// What the backends share lives in detail/: the batch (op_batch.hpp), the
// exception boundary (backend_guard.hpp), the checkpoint directory
// (checkpoint_dir.hpp) and, for the on-disk ones, the engine status
// mapping, the engine lock, the open sequence and install_checkpoint
// (engine_store.hpp).
//
// The three backends and their checkpoints: RocksDB uses its Checkpoint
// (table files hard-linked where the file system allows); LevelDB copies a
// LevelDB snapshot into a fresh database; the memory backend writes a single
// file in its own format. The on-disk backends install with
// detail/directory_swap.hpp (build a sibling directory, then swap the two
// with renameat2(RENAME_EXCHANGE)), and their open() removes what an
// interrupted install left behind.
//
// Thread-safety: every member of a backend may be called from many threads
// at once; a batch or an iterator belongs to one thread at a time.
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <concepts>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "seshat/column_family.hpp"
#include "seshat/options.hpp"
#include "seshat/status.hpp"

namespace seshat {

template <class I>
concept backend_iterator = requires(I& it, const I& cit, std::string_view key) {
  it.seek_to_first();
  it.seek_to_last();
  it.seek(key);
  it.seek_for_prev(key);
  it.next();
  it.prev();
  { cit.valid() } -> std::same_as<bool>;
  { cit.key() } -> std::convertible_to<std::string_view>;
  { cit.value() } -> std::convertible_to<std::string_view>;
  { cit.status() } -> std::same_as<status>;
};

template <class W>
concept backend_batch = requires(W& w, const W& cw, column_family cf, std::string_view key) {
  w.put(cf, key, key);
  w.del(cf, key);
  w.del_range(cf, key, key);
  w.clear();
  { cw.size() } -> std::convertible_to<std::size_t>;
  { cw.empty() } -> std::same_as<bool>;
};

template <class B>
concept backend =
    requires { typename B::batch; typename B::iterator; } &&
    backend_batch<typename B::batch> && backend_iterator<typename B::iterator> &&
    requires(B& b, column_family cf, std::string_view key, std::string* out,
             typename B::batch& batch, write_options wo, const std::filesystem::path& dir,
             const open_options& oo) {
      { B::k_name } -> std::convertible_to<std::string_view>;
      { B::open(dir, oo) } -> std::same_as<result<std::unique_ptr<B>>>;
      { b.get(cf, key, out) } -> std::same_as<status>;
      { b.put(cf, key, key, wo) } -> std::same_as<status>;
      { b.del(cf, key, wo) } -> std::same_as<status>;
      { b.new_batch() } -> std::same_as<typename B::batch>;
      { b.write(batch, wo) } -> std::same_as<status>;
      { b.new_iterator(cf) } -> std::same_as<std::unique_ptr<typename B::iterator>>;
      { b.sync_wal() } -> std::same_as<status>;
      { b.compact_range(cf, key, key) } -> std::same_as<status>;
      { b.approximate_size(cf, key, key) } -> std::same_as<result<std::uint64_t>>;
      { b.disk_usage() } -> std::same_as<result<std::uint64_t>>;
      { b.close() } -> std::same_as<status>;
      { b.checkpoint(dir) } -> std::same_as<status>;
      { B::install_checkpoint(dir, dir) } -> std::same_as<status>;
    };

// Whether storage times the syncs of B (see k_syncs_are_free above).
template <class B>
inline constexpr bool times_syncs = !requires { requires B::k_syncs_are_free; };

}  // namespace seshat
