// seshat/backends/rocksdb_backend.hpp: the RocksDB backend.
//
// rocksdb_backend stores each of the six seshat column families in a real
// RocksDB column family of the same name (name_of(cf)), in one RocksDB
// database per store directory, next to the SESHAT_STORE marker. Every
// family is tuned for what it holds (see rocksdb_backend.cpp): LZ4 (or no
// compression where LZ4 is not built in), the memtable sizes of
// open_options, a bloom filter and a 4-byte prefix extractor for data_kv,
// no automatic compaction and small memtables for the two raft_state
// families, early L0 compaction for the two logs.
//
// Errors: RocksDB's NotFound becomes not-found, Corruption corrupted-data,
// IOError io-error (including "the store is locked": a second open of an open
// store fails with RocksDB's own LOCK message), everything else
// backend-error. Every message names the operation, the column family, the
// key where there is one and the store's path, followed by RocksDB's message.
// No exception leaves this type: one thrown inside becomes a backend-error.
// After a write or sync fails with an I/O error, every later write, sync,
// compact_range and checkpoint fails with that error until the store is
// reopened (detail/write_latch.hpp).
//
// Thread-safety: every member of rocksdb_backend may be called from many
// threads at once, close() included: operations already running finish
// first (close() waits for them); after close() every operation returns a
// backend-error saying the store is closed. A batch or an iterator belongs
// to one thread at a time; iterators made from one backend may be used by
// different threads at once, also while another thread closes the store.
//
// Ownership: open() returns the only owner of the store; the destructor
// closes it. An iterator keeps a reference to the backend's shared state, so
// it may outlive its backend safely. close() never frees a live iterator's
// RocksDB iterator (the memory that key() and value() point into): an
// iterator stays as it is until its next move, which fails with the closed
// store (valid() false, status() a backend-error) and frees its RocksDB
// iterator. The database closes, releasing RocksDB's LOCK, when close()
// returns if no iterator holds a RocksDB iterator; otherwise when the last
// of them moves or is destroyed, in that iterator's thread. Until then a
// reopen of the store fails as locked (io-error). A batch holds no
// reference to the store at all.
//
// RocksDB's headers stay out of this header: the RocksDB types appear only
// as forward declarations.
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "seshat/backend.hpp"
#include "seshat/column_family.hpp"
#include "seshat/detail/op_batch.hpp"
#include "seshat/options.hpp"
#include "seshat/status.hpp"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class Iterator;
}  // namespace rocksdb

namespace seshat {

class rocksdb_backend {
  struct state;  // the open database, shared with the iterators

 public:
  static constexpr std::string_view k_name = "rocksdb";

  // An ordered list of operations, applied atomically by write(), which
  // turns it into one rocksdb::WriteBatch (detail/op_batch.hpp: shared by
  // every backend; it holds no reference to any store).
  using batch = detail::op_batch;

  // Iterates one family as it was when the iterator was made: a RocksDB
  // iterator, whose implicit snapshot is taken at creation. It always scans
  // in total order (data_kv's prefix extractor does not restrict it).
  // key() and value() REQUIRE valid(); their views stay valid until the
  // iterator moves or is destroyed, close() or not (see Ownership above).
  class iterator {
   public:
    iterator(const iterator&) = delete;
    iterator& operator=(const iterator&) = delete;
    ~iterator();

    void seek_to_first();
    void seek_to_last();
    void seek(std::string_view key);           // first key >= key
    void seek_for_prev(std::string_view key);  // last key <= key
    void next();
    void prev();
    bool valid() const;
    std::string_view key() const;    // empty when !valid()
    std::string_view value() const;  // empty when !valid()
    // RocksDB's iterator status, mapped; a backend-error once a move found
    // the store closed, or when the iterator could not be made.
    seshat::status status() const;

   private:
    friend class rocksdb_backend;
    iterator(std::shared_ptr<state> st, column_family cf, rocksdb::Iterator* it,
             seshat::status error);
    template <class F>
    void step(F&& f);
    void release() noexcept;

    std::shared_ptr<state> state_;
    // Owned, and touched only by the iterator's thread; null on error, and
    // once a move found the store closed. While it is alive the database
    // stays open.
    rocksdb::Iterator* it_ = nullptr;
    column_family cf_;
    seshat::status error_;
  };

  // Opens the store in `dir` with all six column families, creating it when
  // create_if_missing allows and `dir` is empty or missing. First removes a
  // `<dir>.restore` left by an interrupted install_checkpoint. Refuses, before
  // RocksDB touches anything: invalid options (invalid-config), a directory
  // that is not a seshat store (invalid-argument), a store of another backend
  // or a newer schema (version-mismatch), no store with create_if_missing off
  // (not-found). A finished store whose RocksDB files are missing is refused
  // (corrupted-data) rather than recreated empty; one whose creation was
  // interrupted (its marker says so: detail/store_marker.hpp) is created
  // again, holding RocksDB's lock meanwhile.
  static result<std::unique_ptr<rocksdb_backend>> open(const std::filesystem::path& dir,
                                                       const open_options& options);

  rocksdb_backend(const rocksdb_backend&) = delete;
  rocksdb_backend& operator=(const rocksdb_backend&) = delete;
  ~rocksdb_backend();  // close(), ignoring its status

  // not-found when the key is absent. REQUIRES: value != nullptr.
  status get(column_family cf, std::string_view key, std::string* value);
  status put(column_family cf, std::string_view key, std::string_view value, write_options wo);
  status del(column_family cf, std::string_view key, write_options wo);
  batch new_batch();
  // Writes the batch atomically (wo.sync: durable before returning), as one
  // rocksdb::WriteBatch. The batch is left as it was. An operation RocksDB
  // refuses (a key over 4 GiB) fails the whole write, writing nothing.
  status write(batch& b, write_options wo);
  // Never null (see seshat/backend.hpp). On failure (the store is closed,
  // an exception) the iterator is invalid and status() says why.
  std::unique_ptr<iterator> new_iterator(column_family cf);
  // Syncs the write-ahead log: every earlier write becomes durable.
  status sync_wal();
  // Compacts [begin, end) (RocksDB compacts the closed range, which includes
  // it); empty strings mean "from the start" / "to the end".
  status compact_range(column_family cf, std::string_view begin, std::string_view end);
  // Approximate bytes of [begin, end) in the family, memtables and files
  // included; empty strings mean unbounded.
  result<std::uint64_t> approximate_size(column_family cf, std::string_view begin,
                                         std::string_view end);
  // Bytes of the files in the store's directory.
  result<std::uint64_t> disk_usage();
  // Waits for the operations running, marks the store closed and syncs the
  // WAL; then releases the column families and closes the database
  // (releasing its LOCK), at once when no iterator holds a RocksDB iterator,
  // else when the last one is freed (see Ownership above). Idempotent: later
  // calls return success. Returns the first error met (of a deferred
  // closing: none); the store is closed regardless.
  status close();

  // A rocksdb::Checkpoint of the store in the new directory `dir` (its
  // parent must exist), plus a copy of the store's SESHAT_STORE marker, so
  // that `dir` is a store open() accepts. RocksDB flushes the memtables
  // first; table files are hard-linked where `dir` is on the store's file
  // system, copied otherwise; the other files are copied. Consistent across
  // the six families (one point in time); writes may continue meanwhile.
  // Durable when it returns. On failure `dir` is removed. invalid-argument
  // when `dir` exists.
  status checkpoint(const std::filesystem::path& dir);

  // Replaces the store at `store_dir` with the checkpoint in
  // `checkpoint_dir`, crash-atomically, as every on-disk backend does
  // (detail/engine_store.hpp's install_engine_checkpoint, through
  // detail/directory_swap.hpp; table and blob files hard-linked where possible).
  // Holds the store's RocksDB LOCK meanwhile: a store open in this process
  // or another is refused (io-error), as is a checkpoint that is not a
  // rocksdb store (invalid-argument, or version-mismatch for another
  // backend's). REQUIRES: nobody opens the store until this returns.
  static status install_checkpoint(const std::filesystem::path& checkpoint_dir,
                                   const std::filesystem::path& store_dir);

  // The store's directory, as given to open().
  const std::filesystem::path& path() const { return path_; }

  // The underlying RocksDB objects, for benchmarks and baselines that want
  // to compare against raw RocksDB on the same store. Null after close().
  // Not synchronised with close(): the caller must not close the backend
  // while using them.
  rocksdb::DB* raw_db();
  rocksdb::ColumnFamilyHandle* raw_handle(column_family cf);

 private:
  explicit rocksdb_backend(std::shared_ptr<state> st, std::filesystem::path dir);

  std::shared_ptr<state> state_;
  std::filesystem::path path_;
};

static_assert(backend<rocksdb_backend>);

}  // namespace seshat
