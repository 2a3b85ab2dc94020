// seshat/backends/leveldb_backend.hpp: the LevelDB backend.
//
// leveldb_backend keeps a seshat store in one LevelDB database. LevelDB has
// no column families, so the six families share one key space and each
// stored key starts with its family's number:
//
//   stored_key := cf_byte user_key
//   cf_byte    := one byte, the column_family's numeric value (0 to 5)
//   user_key   := the caller's key bytes, unchanged
//
// A family is therefore the contiguous stored-key range [cf_byte, cf_byte+1),
// and within it LevelDB's bytewise order is the order of the user keys. One
// more key lies outside every family: 0xff "seshat-synced", the durability
// marker written after each sync (seshat/detail/wal_check.hpp).
// Iterators are bounded to their family's range in both directions: they
// never show another family's keys.
//
// The store directory holds the SESHAT_STORE marker (seshat/detail/
// store_marker.hpp) next to LevelDB's own files; open() checks the marker
// before LevelDB touches the directory.
//
// Ownership: open() returns the only handle to the store. The LevelDB
// database is shared by the backend and the iterators made from it: close()
// (or the destructor) drops the backend's share, and the database, with its
// LOCK, is released when the last live iterator is destroyed as well. An
// iterator therefore stays usable after close(); destroy it to release the
// store.
//
// Thread-safety: every member of leveldb_backend may be called from many
// threads at once. Writes (put, del, write, sync_wal) are serialized by one
// writer mutex, so that a del_range is atomic with respect to other writers.
// close() waits for the operations already running. A batch or an iterator
// belongs to one thread at a time.
//
// Errors: LevelDB's NotFound, Corruption and IOError become not_found,
// corrupted_data and io_error; any other LevelDB error becomes
// backend_error. Every message names the operation, the column family and
// key (non-printable bytes escaped as \xNN) where there is one, the store's
// path, and ends with LevelDB's own message. No member lets an exception
// escape (std::bad_alloc included): it becomes a backend_error.
//
// Durability: write_options::sync and sync_wal() also fdatasync the log
// files LevelDB left behind at a memtable switch (LevelDB closes them
// without syncing), so that a synced write makes every earlier write
// durable, as seshat/options.hpp promises. The first I/O error of a write
// or sync (LevelDB's, or of that fdatasync, or of the directory's fsync)
// stops the open store: every later write and sync fails with it until the
// store is reopened (detail/write_latch.hpp).
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "seshat/backend.hpp"
#include "seshat/column_family.hpp"
#include "seshat/detail/op_batch.hpp"
#include "seshat/options.hpp"
#include "seshat/status.hpp"

namespace leveldb {
class DB;
class Iterator;
}  // namespace leveldb

namespace seshat {

class leveldb_backend {
  struct engine;  // the LevelDB database and what it needs; in the .cpp

 public:
  static constexpr std::string_view k_name = "leveldb";

  // An ordered list of operations, applied atomically by write()
  // (detail/op_batch.hpp: shared by every backend; it holds copies of the
  // keys and values and no reference to any store).
  using batch = detail::op_batch;

  // Iterates one family as it was when the iterator was made (a LevelDB
  // iterator is a consistent view of the database at its creation). Starts
  // unpositioned (not valid). next()/prev() on an iterator that is not
  // valid do nothing; prev() from the family's first key, or next() from its
  // last, leaves it not valid.
  class iterator {
   public:
    ~iterator();
    iterator(const iterator&) = delete;
    iterator& operator=(const iterator&) = delete;

    void seek_to_first();
    void seek_to_last();
    void seek(std::string_view key);           // first key >= key
    void seek_for_prev(std::string_view key);  // last key <= key
    void next();
    void prev();
    bool valid() const { return valid_; }
    // REQUIRES: valid(). The key without its cf_byte; both views stay valid
    // until the iterator moves or is destroyed.
    std::string_view key() const { return key_; }
    std::string_view value() const;
    // Success, or why the iterator stopped early: LevelDB's error, an
    // exception, or a store that was closed before the iterator was made.
    seshat::status status() const;

   private:
    friend class leveldb_backend;
    iterator(std::shared_ptr<engine> e, column_family cf);
    explicit iterator(seshat::status error);

    void settle();  // recomputes valid_ and key_ after a move
    void fail() noexcept;  // records the exception being handled

    std::shared_ptr<engine> engine_;    // keeps the database alive
    std::unique_ptr<leveldb::Iterator> it_;  // destroyed before engine_
    column_family cf_ = column_family::system_raft_log;
    bool valid_ = false;
    std::string_view key_;  // the current key without its cf_byte
    std::string target_;    // scratch for seek targets
    seshat::status error_;
  };

  // Opens the store in `dir`, or creates it (see seshat/backend.hpp). Checks
  // the options and the SESHAT_STORE marker before LevelDB touches `dir`,
  // after removing a `<dir>.restore` left by an interrupted
  // install_checkpoint.
  // LevelDB creates its database only when the store is new, or when an
  // earlier creation did not finish (its marker says so:
  // detail/store_marker.hpp; redone holding LevelDB's lock); a finished
  // store whose LevelDB files are gone is refused with corrupted_data. A store
  // already open, in this process or another, is refused with io_error
  // (LevelDB's LOCK). Tuning: write_buffer_size = write_buffer_mb MB, at
  // most 16 (the open after a killed process replays one memtable),
  // max_file_size = target_file_mb MB, a 10 bits/key bloom filter, a 32 MB
  // block cache, snappy compression; max_write_buffers is ignored.
  static result<std::unique_ptr<leveldb_backend>> open(const std::filesystem::path& dir,
                                                       const open_options& options);

  leveldb_backend(const leveldb_backend&) = delete;
  leveldb_backend& operator=(const leveldb_backend&) = delete;
  ~leveldb_backend();  // close()

  // After close(), every member below fails with a backend_error saying the
  // store is closed (new_iterator: an iterator whose status() says so).
  status get(column_family cf, std::string_view key, std::string* value);
  status put(column_family cf, std::string_view key, std::string_view value, write_options wo);
  status del(column_family cf, std::string_view key, write_options wo);
  batch new_batch() { return {}; }
  // One LevelDB WriteBatch, written atomically with WriteOptions::sync. A
  // del_range is expanded, under the writer mutex, into one delete per key of
  // the range (stored or put earlier in the batch): its cost grows with the
  // number of keys it deletes. Leaves `b` unchanged.
  status write(batch& b, write_options wo);
  // Never null (see seshat/backend.hpp). On failure (the store is closed,
  // an unknown family, an exception) the iterator is invalid and status()
  // says why.
  std::unique_ptr<iterator> new_iterator(column_family cf);
  // Makes every earlier write durable: a synced empty write, plus the
  // fdatasync of older logs described above.
  status sync_wal();
  // Compacts [begin, end) of the family; an empty begin or end means the
  // family's start or end. LevelDB reports no error here: success unless
  // the store is closed.
  status compact_range(column_family cf, std::string_view begin, std::string_view end);
  // LevelDB's estimate of the bytes the range takes in table files; writes
  // still in the memtable count as 0. Empty begin/end as in compact_range.
  result<std::uint64_t> approximate_size(column_family cf, std::string_view begin,
                                         std::string_view end);
  // Bytes taken by the regular files of the store directory.
  result<std::uint64_t> disk_usage();
  // Releases the backend's share of the database (see Ownership above).
  // Idempotent; waits for operations already running. Unsynced writes are
  // in the OS (they survive a process crash, not a power loss).
  status close();

  // Copies the store, as it is at this instant (a LevelDB snapshot), into a
  // fresh LevelDB database in the new directory `dir` (its parent must
  // exist), in large write batches, then closes that database, adds a copy
  // of the store's SESHAT_STORE marker and fsyncs every file and the
  // directory: `dir` is a store open() accepts. Writes may continue
  // meanwhile (they are not in the copy); close() waits for a checkpoint
  // running. Costs a read of the whole store and a write of its live data.
  // On failure `dir` is removed. invalid-argument when `dir` exists.
  status checkpoint(const std::filesystem::path& dir);

  // Replaces the store at `store_dir` with the checkpoint in
  // `checkpoint_dir`, crash-atomically, as every on-disk backend does
  // (detail/engine_store.hpp's install_engine_checkpoint, through
  // detail/directory_swap.hpp; table files hard-linked where possible).
  // Holds the store's LevelDB LOCK meanwhile: a store open in this process
  // (also one kept open by a live iterator after close()) or another is
  // refused (io-error), as is a checkpoint that is not a leveldb store
  // (invalid-argument, or version-mismatch for another backend's). REQUIRES: nobody opens the store until this returns.
  static status install_checkpoint(const std::filesystem::path& checkpoint_dir,
                                   const std::filesystem::path& store_dir);

  // The LevelDB database, for benchmarks and baselines only: it bypasses
  // the key layout and the writer mutex. Null after close(); otherwise
  // valid until close(). Include <leveldb/db.h> to use it.
  leveldb::DB* raw_db();

 private:
  leveldb_backend(std::shared_ptr<engine> e, std::string path);

  status closed_error(std::string_view operation) const;
  status copy_database(const std::filesystem::path& target);

  const std::string path_;  // the store's directory, as given to open()
  // Guards engine_: shared by every operation, exclusive for close().
  mutable std::shared_mutex life_mutex_;
  std::shared_ptr<engine> engine_;  // null once closed
  // Serializes every write, so that a del_range's expansion and its write
  // see no other writer in between. Taken after life_mutex_.
  std::mutex write_mutex_;
};

static_assert(backend<leveldb_backend>);

}  // namespace seshat
