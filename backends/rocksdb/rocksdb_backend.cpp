// rocksdb_backend.cpp: the RocksDB backend (see rocksdb_backend.hpp).
//
// Concurrency: the open database lives in a `state` shared by the backend
// and its iterators. Every operation holds the state's mutex shared while it
// uses the database; close() holds it exclusively while it marks the store
// closed and syncs the WAL. So an operation either runs on the open database
// or sees `closed` and fails cleanly. A RocksDB iterator belongs to its
// seshat iterator's thread, which alone deletes it (at its first move after
// close(), or in its destructor), and the database is closed only when no
// RocksDB iterator is left: by close() itself, or by the thread that deletes
// the last one. So no RocksDB object, and no view a caller took from an
// iterator's key() or value(), is used after it is freed.
#include "seshat/backends/rocksdb_backend.hpp"

#include <rocksdb/comparator.h>
#include <rocksdb/env.h>
#include <rocksdb/utilities/checkpoint.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/status.h>
#include <rocksdb/table.h>
#include <rocksdb/transaction_log.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <shared_mutex>
#include <system_error>
#include <utility>
#include <vector>

#include "seshat/detail/already_open.hpp"
#include "seshat/detail/directory_swap.hpp"
#include "seshat/detail/files.hpp"
#include "seshat/detail/printable.hpp"
#include "seshat/detail/store_marker.hpp"
#include "seshat/detail/wal_check.hpp"
#include "seshat/detail/write_latch.hpp"

namespace seshat {

namespace {

constexpr std::uint64_t k_mb = 1024 * 1024;

rocksdb::Slice slice(std::string_view s) { return {s.data(), s.size()}; }

using detail::printable;

std::string key_in(column_family cf, std::string_view key) {
  return "key '" + printable(key) + "' in column family " + std::string(name_of(cf));
}

// RocksDB's message ("IO error: ..."), without the dangling ": " of a status
// that has no detail ("NotFound: ").
std::string rocks_message(const rocksdb::Status& s) {
  std::string m = s.ToString();
  while (!m.empty() && (m.back() == ' ' || m.back() == ':')) m.pop_back();
  return m;
}

// Maps a RocksDB status; `context` says what was being done, to what.
status from_rocks(const rocksdb::Status& s, const std::string& context) {
  if (s.ok()) return {};
  std::string m = context + ": " + rocks_message(s);
  if (s.IsNotFound()) return status::not_found(std::move(m));
  if (s.IsCorruption()) return status::corrupted_data(std::move(m));
  if (s.IsIOError()) return status::io_error(std::move(m));
  return status::backend_error(std::move(m));
}

status exception_status(std::string_view op, const std::string& path, const char* what) {
  return status::backend_error(std::string(op) + " on store at " + path +
                               ": unexpected exception: " + what);
}

// Runs `f` (which returns a status or a result), turning any exception into a
// backend-error: no exception crosses the backend's boundary.
template <class F>
auto guarded(std::string_view op, const std::string& path, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    return exception_status(op, path, e.what());
  } catch (...) {
    return exception_status(op, path, "unknown exception");
  }
}

// A column family handle that carries only a family's id, for building write
// batches without touching the database: rocksdb::WriteBatch asks a handle
// for nothing but its id and comparator. Safe when the database is closed.
class id_handle final : public rocksdb::ColumnFamilyHandle {
 public:
  id_handle(column_family cf, std::uint32_t id) : cf_(cf), id_(id) {}
  const std::string& GetName() const override { return names()[index_of(cf_)]; }
  std::uint32_t GetID() const override { return id_; }
  rocksdb::Status GetDescriptor(rocksdb::ColumnFamilyDescriptor*) override {
    return rocksdb::Status::NotSupported("seshat id_handle has no descriptor");
  }
  const rocksdb::Comparator* GetComparator() const override {
    return rocksdb::BytewiseComparator();
  }

 private:
  static const std::array<std::string, k_column_family_count>& names() {
    static const std::array<std::string, k_column_family_count> n = [] {
      std::array<std::string, k_column_family_count> a;
      for (column_family cf : k_all_column_families) a[index_of(cf)] = std::string(name_of(cf));
      return a;
    }();
    return n;
  }

  column_family cf_;
  std::uint32_t id_;
};

// The options of one family (or of RocksDB's unused "default" family, when
// `cf` is empty).
rocksdb::ColumnFamilyOptions family_options(std::optional<column_family> cf,
                                            const open_options& o,
                                            rocksdb::CompressionType compression) {
  rocksdb::ColumnFamilyOptions c;
  c.compression = compression;
  c.write_buffer_size = static_cast<std::size_t>(o.write_buffer_mb * k_mb);
  c.max_write_buffer_number = static_cast<int>(o.max_write_buffers);
  c.target_file_size_base = o.target_file_mb * k_mb;
  if (!cf) return c;
  switch (*cf) {
    case column_family::system_raft_log:
    case column_family::data_raft_log:
      // Logs are appended and truncated from the front: compact L0 early so
      // deleted prefixes are dropped soon.
      c.level0_file_num_compaction_trigger = 2;
      break;
    case column_family::system_raft_state:
    case column_family::data_raft_state:
      // A few small keys rewritten often: small memtables, no background
      // compaction.
      c.disable_auto_compactions = true;
      c.write_buffer_size = 4 * k_mb;
      break;
    case column_family::system_data:
      c.write_buffer_size = 8 * k_mb;
      break;
    case column_family::data_kv: {
      rocksdb::BlockBasedTableOptions t;
      t.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
      c.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
      c.prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(4));
      break;
    }
  }
  return c;
}

rocksdb::CompressionType best_compression() {
  const auto supported = rocksdb::GetSupportedCompressions();
  const bool lz4 = std::find(supported.begin(), supported.end(), rocksdb::kLZ4Compression) !=
                   supported.end();
  return lz4 ? rocksdb::kLZ4Compression : rocksdb::kNoCompression;
}

// RocksDB's own lock on the store in `dir` (the name DB::Open locks, in
// the process-wide table of the default Env and with fcntl): held while
// seshat changes the directory without RocksDB, so that no open of the
// store, here or in another process, runs meanwhile.
class engine_lock {
 public:
  engine_lock() = default;
  engine_lock(const engine_lock&) = delete;
  engine_lock& operator=(const engine_lock&) = delete;
  ~engine_lock() {
    if (lock_ != nullptr) rocksdb::Env::Default()->UnlockFile(lock_).PermitUncheckedError();
  }
  // io-error naming the store when it is open (or being opened) elsewhere,
  // in this process or another (said as open() says it:
  // detail/already_open.hpp).
  status take(const std::filesystem::path& dir, const std::string& context) {
    std::error_code ec;
    const std::filesystem::path canonical = std::filesystem::canonical(dir, ec);
    rocksdb::Status locked =
        rocksdb::Env::Default()->LockFile((ec ? dir : canonical).string() + "/LOCK", &lock_);
    if (locked.ok()) return {};
    lock_ = nullptr;
    if (const auto holder = detail::lock_holder_of(locked.ToString());
        holder != detail::lock_holder::none)
      return detail::already_open(dir.string(), holder).with_context(context);
    return status::io_error(context +
                            "the store is open (cannot take its LOCK): " + rocks_message(locked));
  }

 private:
  rocksdb::FileLock* lock_ = nullptr;
};

rocksdb::ReadOptions iterator_read_options() {
  rocksdb::ReadOptions ro;
  // data_kv has a prefix extractor; without this its iterators would only be
  // correct within one prefix.
  ro.total_order_seek = true;
  return ro;
}

rocksdb::WriteOptions rocks_write_options(write_options wo) {
  rocksdb::WriteOptions w;
  w.sync = wo.sync;
  return w;
}

// The durability marker batch (detail/wal_check.hpp) as RocksDB logs it:
//   batch := sequence:u64le count:u32le (0) 0x03 (kTypeLogData) length:varint32 marker
// PutLogData keeps the marker in the WAL only: no memtable, no table file.
std::optional<detail::wal_position> rocks_marker(std::string_view batch) {
  constexpr std::size_t header = 12;
  if (batch.size() < header + 2 || batch.substr(8, 4) != std::string_view("\0\0\0\0", 4) ||
      batch[header] != 0x03)
    return std::nullopt;
  const auto length = static_cast<unsigned char>(batch[header + 1]);
  if (length >= 0x80 || batch.size() != header + 2 + length) return std::nullopt;
  return detail::decode_wal_marker(batch.substr(header + 2));
}

// The store's logs through RocksDB's environment, for detail::check_logs.
detail::log_files rocks_log_files(rocksdb::Env* env, const std::filesystem::path& dir,
                                  const std::string& store) {
  detail::log_files f;
  f.list = [=]() -> result<std::vector<std::string>> {
    std::vector<std::string> names;
    rocksdb::Status s = env->GetChildren(dir.string(), &names);
    if (!s.ok()) return from_rocks(s, "open: list the store at " + store);
    return names;
  };
  f.open = [=](const std::string& name) -> result<detail::read_more> {
    const std::string path = (dir / name).string();
    std::unique_ptr<rocksdb::SequentialFile> raw;
    rocksdb::Status s = env->NewSequentialFile(path, &raw, rocksdb::EnvOptions());
    if (!s.ok()) return from_rocks(s, "open: read write-ahead log " + path);
    return detail::sequential_reader<rocksdb::Slice>(
        std::shared_ptr<rocksdb::SequentialFile>(std::move(raw)), path, from_rocks);
  };
  f.cut = [=](const std::string& name, std::uint64_t size) -> status {
    const std::filesystem::path path = dir / name;
    rocksdb::Status s = env->Truncate(path.string(), static_cast<std::size_t>(size));
    if (s.IsNotSupported()) {
      std::error_code ec;
      std::filesystem::resize_file(path, size, ec);
      if (ec)
        return status::io_error("open: cut the unsynced tail of " + path.string() + ": " +
                                ec.message());
    } else if (!s.ok()) {
      return from_rocks(s, "open: cut the unsynced tail of " + path.string());
    }
    SESHAT_RETURN_IF_ERROR(detail::fsync_path(path, false));
    return detail::fsync_path(dir, true);
  };
  return f;
}

std::atomic<std::uint64_t> g_next_serial{1};

}  // namespace

// ---------------------------------------------------------------------------
// state

struct rocksdb_backend::state {
  explicit state(std::filesystem::path dir) : path(std::move(dir)), path_text(path.string()) {}
  state(const state&) = delete;
  state& operator=(const state&) = delete;
  // Closes the database if it is still open: an open() that failed half-way.
  // (After close(), the last live iterator closes it before this runs: each
  // iterator holds the state.)
  ~state() { release_db().ignore(); }

  std::string of_store() const { return "store at " + path_text; }
  status closed_error(std::string_view op) const {
    return status::backend_error(std::string(op) + " on store at " + path_text +
                                 ": the store is closed");
  }

  // Marks the store closed (new operations and iterators fail, live
  // iterators fail at their next move) and syncs the WAL. Then closes the
  // database at once when no RocksDB iterator is alive; otherwise the last
  // of them closes it when it is freed (iterator_released()), since
  // RocksDB's iterators, and the views a caller took from them, must not
  // outlive their database. Returns the first error; the store is closed
  // regardless. Idempotent. REQUIRES: `mu` held exclusively.
  status close() {
    if (closed) return {};
    status synced;
    if (db != nullptr) synced = sync_wal("close: sync WAL of " + of_store());
    bool deferred = false;
    {
      std::lock_guard lock(iterators_mu);
      closed = true;
      deferred = live_iterators > 0;
    }
    if (deferred) return synced;
    status released = release_db();
    return synced.ok() ? released : synced;
  }

  // Called once per RocksDB iterator, after it was deleted: the last one
  // deleted after close() closes the database. Its errors have nobody to go
  // to: close() returned already.
  void iterator_released() {
    bool last = false;
    {
      std::lock_guard lock(iterators_mu);
      last = --live_iterators == 0 && closed;
    }
    if (last) release_db().ignore();
  }

  // Releases the handles and closes the database; the first error.
  // Idempotent. REQUIRES: no RocksDB iterator of the database is alive and
  // no other thread uses it (close() decides who calls this, and when).
  status release_db() {
    if (db == nullptr) return {};
    status first;
    auto keep = [&](status s) {
      if (first.ok() && !s.ok()) first = std::move(s);
    };
    for (column_family cf : k_all_column_families) {
      auto& h = handles[index_of(cf)];
      if (h == nullptr) continue;
      keep(from_rocks(db->DestroyColumnFamilyHandle(h),
                      "close: release column family " + std::string(name_of(cf)) + " of " +
                          of_store()));
      h = nullptr;
    }
    if (default_handle != nullptr) {
      keep(from_rocks(db->DestroyColumnFamilyHandle(default_handle),
                      "close: release column family default of " + of_store()));
      default_handle = nullptr;
    }
    keep(from_rocks(db->Close(), "close " + of_store()));
    delete db;
    db = nullptr;
    return first;
  }

  rocksdb::ColumnFamilyHandle* handle(column_family cf) const { return handles[index_of(cf)]; }

  // Once a write or a sync of this open database fails with an I/O error,
  // seshat sends it no more writes or syncs: they fail with that first error
  // until the store is reopened (detail/write_latch.hpp). On RocksDB 7.8
  // there is one more reason: it may write its WAL again after a WAL write
  // failed (fixed upstream in 2024, facebook/rocksdb#12448), and then its
  // WritableFileWriter fails an assertion: an abort in builds with
  // assertions, Debian's among them. (A write already queued inside RocksDB
  // when the first one failed is beyond this guard.)
  //
  // The refusal of `op` once a write or sync failed; ok when none did.
  status refuse_after_write_error(std::string_view op) const {
    if (!latch.latched()) return {};
    return latch.refusal(std::string(op) + " on " + of_store());
  }
  // `s` of a write or sync as a status (see from_rocks); latches the first
  // I/O error.
  status note_write(const rocksdb::Status& s, const std::string& context) {
    return latch.note(from_rocks(s, context));
  }

  // Makes every write so far durable: a synced write of an empty batch,
  // which appends a record to the WAL and syncs every live WAL file. Not
  // DB::SyncWAL: it runs beside RocksDB's write queue, so a SyncWAL already
  // waiting when a write fails goes on to the failed WAL before the guard
  // above knows (the disk-fault test aborted this way at once), whereas a
  // write waiting behind the failing one joins its write group and fails
  // with it. The cost: writes that arrive during the fsync wait for it, as
  // they do behind any synced write. `context`: the operation and the store.
  status sync_wal(const std::string& context) {
    SESHAT_RETURN_IF_ERROR(latch.refusal(context));
    rocksdb::WriteBatch empty;
    return write_logged(write_options{.sync = true}, context,
                        [&](const rocksdb::WriteOptions& w) { return db->Write(w, &empty); });
  }

  // Runs `write(w)` (a Put, Delete or Write with `wo`) and maps its status as
  // note_write does. When `wo.sync`, and the write succeeded, it is followed
  // by the durability marker (detail/wal_check.hpp): the end of the current
  // WAL, taken before the synced write, is durable once it returns (a synced
  // write syncs every live WAL); writes that run meanwhile may make the WAL
  // longer, never the marker wrong.
  template <class F>
  status write_logged(write_options wo, const std::string& context, F&& write) {
    std::optional<detail::wal_position> end;
    if (wo.sync) end = wal_end();
    SESHAT_RETURN_IF_ERROR(note_write(write(rocks_write_options(wo)), context));
    if (!end) return {};
    rocksdb::WriteBatch marker;
    const std::string m = detail::encode_wal_marker(*end);
    SESHAT_RETURN_IF_ERROR(from_rocks(marker.PutLogData(slice(m)), context + ": durability marker"));
    return note_write(db->Write(rocksdb::WriteOptions(), &marker),
                      context + ": write the durability marker");
  }

  // The current WAL's number and size, or none when RocksDB cannot say (the
  // sync then goes without a marker).
  std::optional<detail::wal_position> wal_end() {
    std::unique_ptr<rocksdb::LogFile> f;
    if (!db->GetCurrentWalFile(&f).ok() || !f) return std::nullopt;
    return detail::wal_position{f->LogNumber(), f->SizeFileBytes()};
  }

  const std::filesystem::path path;
  const std::string path_text;
  const std::uint64_t serial = g_next_serial.fetch_add(1, std::memory_order_relaxed);

  std::shared_mutex mu;  // shared: using the database; exclusive: closing it
  // Set by close(), under `mu` exclusively and `iterators_mu`; iterators
  // read it with neither.
  std::atomic<bool> closed{false};
  rocksdb::DB* db = nullptr;
  rocksdb::ColumnFamilyHandle* default_handle = nullptr;  // RocksDB's, unused
  std::array<rocksdb::ColumnFamilyHandle*, k_column_family_count> handles{};
  std::array<std::uint32_t, k_column_family_count> ids{};

  detail::write_latch latch;  // the first I/O error of a write or sync

  std::mutex iterators_mu;         // guards `live_iterators`, and `closed` for close()
  std::size_t live_iterators = 0;  // RocksDB iterators made and not yet deleted
};

// ---------------------------------------------------------------------------
// batch

rocksdb_backend::batch::batch(std::uint64_t owner,
                              const std::array<std::uint32_t, k_column_family_count>& ids)
    : owner_(owner), ids_(ids) {}

rocksdb_backend::batch::batch(batch&& o) noexcept
    : wb_(std::move(o.wb_)),
      owner_(o.owner_),
      ids_(o.ids_),
      ops_(std::exchange(o.ops_, 0)),
      error_(std::exchange(o.error_, seshat::status())) {}

rocksdb_backend::batch& rocksdb_backend::batch::operator=(batch&& o) noexcept {
  if (this != &o) {
    wb_ = std::move(o.wb_);
    owner_ = o.owner_;
    ids_ = o.ids_;
    ops_ = std::exchange(o.ops_, 0);
    error_ = std::exchange(o.error_, seshat::status());
  }
  return *this;
}

rocksdb_backend::batch::~batch() = default;

rocksdb::WriteBatch& rocksdb_backend::batch::wb() {
  if (!wb_) wb_ = std::make_unique<rocksdb::WriteBatch>();
  return *wb_;
}

// Counts one operation and runs `f(handle)`, which adds it to the WriteBatch;
// keeps the first failure for write().
template <class F>
void rocksdb_backend::batch::record(std::string_view op, column_family cf, std::string_view key,
                                    F&& f) {
  ++ops_;
  if (!error_.ok()) return;
  try {
    id_handle h(cf, ids_[index_of(cf)]);
    rocksdb::Status s = f(&h);
    if (!s.ok()) error_ = from_rocks(s, "batch " + std::string(op) + " of " + key_in(cf, key));
  } catch (const std::exception& e) {
    error_ = status::backend_error("batch " + std::string(op) + " of " + key_in(cf, key) +
                                   ": unexpected exception: " + e.what());
  } catch (...) {
    error_ = status::backend_error("batch " + std::string(op) + ": unknown exception");
  }
}

void rocksdb_backend::batch::put(column_family cf, std::string_view key, std::string_view value) {
  record("put", cf, key, [&](rocksdb::ColumnFamilyHandle* h) {
    return wb().Put(h, slice(key), slice(value));
  });
}

void rocksdb_backend::batch::del(column_family cf, std::string_view key) {
  record("del", cf, key,
         [&](rocksdb::ColumnFamilyHandle* h) { return wb().Delete(h, slice(key)); });
}

void rocksdb_backend::batch::del_range(column_family cf, std::string_view begin,
                                       std::string_view end) {
  // std::string_view compares bytes as unsigned, as RocksDB's bytewise
  // comparator does. RocksDB refuses a reversed range; seshat makes it a no-op.
  record("del_range", cf, begin, [&](rocksdb::ColumnFamilyHandle* h) {
    if (begin >= end) return rocksdb::Status::OK();
    return wb().DeleteRange(h, slice(begin), slice(end));
  });
}

void rocksdb_backend::batch::clear() {
  if (wb_) wb_->Clear();
  ops_ = 0;
  error_ = seshat::status();
}

// ---------------------------------------------------------------------------
// iterator

rocksdb_backend::iterator::iterator(std::shared_ptr<state> st, column_family cf,
                                    rocksdb::Iterator* it, seshat::status error)
    : state_(std::move(st)), it_(it), cf_(cf), error_(std::move(error)) {}

rocksdb_backend::iterator::~iterator() { release(); }

// Deletes the RocksDB iterator (nothing when there is none); the last one
// deleted after close() closes the database, here.
void rocksdb_backend::iterator::release() noexcept {
  if (it_ == nullptr) return;
  delete it_;
  it_ = nullptr;
  if (!state_) return;
  try {
    state_->iterator_released();
  } catch (...) {
    // Locking failed (it cannot in practice): the database stays open until
    // the process ends, which beats crashing.
  }
}

// Runs `f(*it_)`, unless the store closed: then the iterator frees its
// RocksDB iterator and reports the closed store. An exception becomes the
// iterator's error. No lock: close() never touches a live RocksDB iterator.
template <class F>
void rocksdb_backend::iterator::step(F&& f) {
  if (it_ == nullptr) return;
  try {
    if (state_->closed.load(std::memory_order_acquire)) {
      release();
      error_ = status::backend_error("iterator on column family " + std::string(name_of(cf_)) +
                                     " of " + state_->of_store() + ": the store was closed");
      return;
    }
    f(*it_);
  } catch (const std::exception& e) {
    error_ =
        status::backend_error("iterator on column family " + std::string(name_of(cf_)) + " of " +
                              state_->of_store() + ": unexpected exception: " + e.what());
  } catch (...) {
    error_ = status::backend_error("iterator on column family " + std::string(name_of(cf_)) +
                                   " of " + state_->of_store() + ": unknown exception");
  }
}

void rocksdb_backend::iterator::seek_to_first() {
  step([](rocksdb::Iterator& it) { it.SeekToFirst(); });
}
void rocksdb_backend::iterator::seek_to_last() {
  step([](rocksdb::Iterator& it) { it.SeekToLast(); });
}
void rocksdb_backend::iterator::seek(std::string_view key) {
  step([&](rocksdb::Iterator& it) { it.Seek(slice(key)); });
}
void rocksdb_backend::iterator::seek_for_prev(std::string_view key) {
  step([&](rocksdb::Iterator& it) { it.SeekForPrev(slice(key)); });
}
void rocksdb_backend::iterator::next() {
  step([](rocksdb::Iterator& it) {
    if (it.Valid()) it.Next();
  });
}
void rocksdb_backend::iterator::prev() {
  step([](rocksdb::Iterator& it) {
    if (it.Valid()) it.Prev();
  });
}

bool rocksdb_backend::iterator::valid() const {
  return it_ != nullptr && error_.ok() && it_->Valid();
}

std::string_view rocksdb_backend::iterator::key() const {
  if (!valid()) return {};
  const rocksdb::Slice k = it_->key();
  return {k.data(), k.size()};
}

std::string_view rocksdb_backend::iterator::value() const {
  if (!valid()) return {};
  const rocksdb::Slice v = it_->value();
  return {v.data(), v.size()};
}

seshat::status rocksdb_backend::iterator::status() const {
  if (!error_.ok()) return error_;
  if (!state_) return status::backend_error("iterator could not be made");
  return guarded("iterator status", state_->path_text, [&]() -> seshat::status {
    if (it_ == nullptr) return state_->closed_error("iterator");
    return from_rocks(it_->status(), "iterator on column family " + std::string(name_of(cf_)) +
                                         " of " + state_->of_store());
  });
}

// ---------------------------------------------------------------------------
// rocksdb_backend

rocksdb_backend::rocksdb_backend(std::shared_ptr<state> st, std::filesystem::path dir)
    : state_(std::move(st)), path_(std::move(dir)) {}

rocksdb_backend::~rocksdb_backend() { close().ignore(); }

result<std::unique_ptr<rocksdb_backend>> rocksdb_backend::open(const std::filesystem::path& dir,
                                                               const open_options& options) {
  using result_t = result<std::unique_ptr<rocksdb_backend>>;
  return guarded("open", dir.string(), [&]() -> result_t {
    SESHAT_RETURN_IF_ERROR(options.validate());
    // What an interrupted install_checkpoint left: the old or the new store
    // is whole in `dir` (detail/directory_swap.hpp).
    SESHAT_RETURN_IF_ERROR(detail::check_store_path(dir));
    SESHAT_RETURN_IF_ERROR(detail::remove_restore_leftover(dir));
    // Refuses a wrong directory before RocksDB touches it.
    auto prepared = detail::prepare_store_dir(dir, k_name, options);
    if (!prepared.ok()) return prepared.status();
    if (*prepared == detail::store_dir::interrupted_creation) {
      engine_lock lock;
      SESHAT_RETURN_IF_ERROR(
          lock.take(dir, "open store at " + dir.string() + ": redo its interrupted creation: "));
      SESHAT_RETURN_IF_ERROR(detail::clear_interrupted_creation(dir));
    }
    const bool create = *prepared != detail::store_dir::existing;
    std::error_code ec;
    if (!create && !std::filesystem::exists(dir / "CURRENT", ec)) {
      return status::corrupted_data(
          "open store at " + dir.string() + ": it has a " + std::string(detail::k_marker_file) +
          " marker but its RocksDB files are missing (no CURRENT file); refusing to recreate "
          "it empty");
    }

    // RocksDB keys its in-process lock table by the path as spelled: give it
    // the canonical one, so that another spelling of an open store's path
    // (d/store/., a symlink) is refused as locked, not opened twice.
    const std::filesystem::path canonical = std::filesystem::canonical(dir, ec);
    if (ec) return status::io_error("open store at " + dir.string() + ": " + ec.message());

    rocksdb::DBOptions db_options;
    db_options.create_if_missing = create;
    db_options.create_missing_column_families = true;
    if (options.environment.rocksdb != nullptr) db_options.env = options.environment.rocksdb;
    db_options.wal_recovery_mode = options.recovery == recovery_mode::absolute_consistency
                                       ? rocksdb::WALRecoveryMode::kAbsoluteConsistency
                                       : rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;

    // Before RocksDB replays its WAL: a torn unsynced tail is cut, damage
    // inside what was synced refuses the open (detail/wal_check.hpp). RocksDB
    // alone would refuse a torn tail with a piece of a later write after it
    // ("missing start of fragmented record"), and skip zeros to the next
    // block and replay what starts there: a hole. Under the store's LOCK:
    // the WAL of a store open elsewhere is live, never cut.
    if (!create) {
      engine_lock lock;
      SESHAT_RETURN_IF_ERROR(lock.take(dir, "open: "));
      SESHAT_RETURN_IF_ERROR(detail::check_logs(
          dir.string(), options.recovery,
          rocks_log_files(db_options.env, canonical, dir.string()), rocks_marker));
    }

    const rocksdb::CompressionType compression = best_compression();
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName,
                             family_options(std::nullopt, options, compression));
    for (column_family cf : k_all_column_families)
      descriptors.emplace_back(std::string(name_of(cf)), family_options(cf, options, compression));

    auto st = std::make_shared<state>(dir);
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::Status s =
        rocksdb::DB::Open(db_options, canonical.string(), descriptors, &handles, &st->db);
    if (!s.ok()) {
      // RocksDB frees what it opened when Open fails.
      st->db = nullptr;
      st->closed = true;
      if (const auto holder = detail::lock_holder_of(s.ToString());
          s.IsIOError() && holder != detail::lock_holder::none)
        return detail::already_open(dir.string(), holder).with_context("open: ");
      return from_rocks(s, "open store at " + dir.string());
    }
    // From here `st` owns the database: its destructor closes it on failure.
    if (handles.size() != descriptors.size()) {
      for (auto* h : handles) st->db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
      return status::backend_error("open store at " + dir.string() + ": RocksDB returned " +
                                   std::to_string(handles.size()) + " column family handles for " +
                                   std::to_string(descriptors.size()) + " families");
    }
    st->default_handle = handles[0];
    for (column_family cf : k_all_column_families) {
      rocksdb::ColumnFamilyHandle* h = handles[1 + index_of(cf)];
      st->handles[index_of(cf)] = h;
      st->ids[index_of(cf)] = h->GetID();
    }
    for (column_family cf : k_all_column_families) {
      if (st->handles[index_of(cf)]->GetName() != name_of(cf))
        return status::backend_error("open store at " + dir.string() + ": column family " +
                                     std::string(name_of(cf)) + " was opened as " +
                                     st->handles[index_of(cf)]->GetName());
    }
    if (create)
      SESHAT_RETURN_IF_ERROR(
          detail::finish_store_creation(dir, k_name)
              .with_context("open store at " + dir.string() + ": finish its creation: "));
    return std::unique_ptr<rocksdb_backend>(new rocksdb_backend(std::move(st), dir));
  });
}

status rocksdb_backend::get(column_family cf, std::string_view key, std::string* value) {
  return guarded("get", state_->path_text, [&]() -> status {
    if (value == nullptr)
      return status::invalid_argument("get of " + key_in(cf, key) + " of " + state_->of_store() +
                                      ": value is null");
    std::shared_lock lock(state_->mu);
    if (state_->closed) return state_->closed_error("get");
    rocksdb::Status s = state_->db->Get(rocksdb::ReadOptions(), state_->handle(cf), slice(key), value);
    return from_rocks(s, "get of " + key_in(cf, key) + " of " + state_->of_store());
  });
}

status rocksdb_backend::put(column_family cf, std::string_view key, std::string_view value,
                            write_options wo) {
  return guarded("put", state_->path_text, [&]() -> status {
    std::shared_lock lock(state_->mu);
    if (state_->closed) return state_->closed_error("put");
    SESHAT_RETURN_IF_ERROR(state_->refuse_after_write_error("put of " + key_in(cf, key)));
    return state_->write_logged(
        wo, "put of " + key_in(cf, key) + " of " + state_->of_store(),
        [&](const rocksdb::WriteOptions& w) {
          return state_->db->Put(w, state_->handle(cf), slice(key), slice(value));
        });
  });
}

status rocksdb_backend::del(column_family cf, std::string_view key, write_options wo) {
  return guarded("del", state_->path_text, [&]() -> status {
    std::shared_lock lock(state_->mu);
    if (state_->closed) return state_->closed_error("del");
    SESHAT_RETURN_IF_ERROR(state_->refuse_after_write_error("del of " + key_in(cf, key)));
    return state_->write_logged(
        wo, "del of " + key_in(cf, key) + " of " + state_->of_store(),
        [&](const rocksdb::WriteOptions& w) {
          return state_->db->Delete(w, state_->handle(cf), slice(key));
        });
  });
}

rocksdb_backend::batch rocksdb_backend::new_batch() { return batch(state_->serial, state_->ids); }

status rocksdb_backend::write(batch& b, write_options wo) {
  return guarded("write", state_->path_text, [&]() -> status {
    if (b.owner_ != state_->serial)
      return status::invalid_argument("write to " + state_->of_store() +
                                      ": the batch was made by another backend object");
    if (!b.error_.ok())
      return b.error_.with_context("write to " + state_->of_store() + ": ",
                                   " (nothing was written)");
    std::shared_lock lock(state_->mu);
    if (state_->closed) return state_->closed_error("write");
    if (!b.wb_) {
      // Nothing was ever added. A synced empty write still makes every
      // earlier write durable.
      if (!wo.sync) return {};
      return state_->sync_wal("write of an empty synced batch: sync WAL of " + state_->of_store());
    }
    SESHAT_RETURN_IF_ERROR(state_->refuse_after_write_error(
        "write of a batch of " + std::to_string(b.size()) + " operations"));
    return state_->write_logged(
        wo,
        "write of a batch of " + std::to_string(b.size()) + " operations to " + state_->of_store(),
        [&](const rocksdb::WriteOptions& w) { return state_->db->Write(w, b.wb_.get()); });
  });
}

std::unique_ptr<rocksdb_backend::iterator> rocksdb_backend::new_iterator(column_family cf) {
  try {
    std::unique_ptr<iterator> it(new iterator(state_, cf, nullptr, {}));
    {
      std::shared_lock lock(state_->mu);
      if (state_->closed) {
        it->error_ = state_->closed_error("new_iterator on column family " +
                                          std::string(name_of(cf)));
        return it;
      }
      std::unique_ptr<rocksdb::Iterator> raw(
          state_->db->NewIterator(iterator_read_options(), state_->handle(cf)));
      {
        std::lock_guard g(state_->iterators_mu);
        ++state_->live_iterators;
      }
      it->it_ = raw.release();
    }
    return it;
  } catch (const std::exception& e) {
    try {
      return std::unique_ptr<iterator>(new iterator(
          nullptr, cf, nullptr,
          exception_status("new_iterator on column family " + std::string(name_of(cf)),
                           state_->path_text, e.what())));
    } catch (...) {
      return nullptr;
    }
  } catch (...) {
    try {
      return std::unique_ptr<iterator>(
          new iterator(nullptr, cf, nullptr,
                       exception_status("new_iterator", state_->path_text, "unknown exception")));
    } catch (...) {
      return nullptr;
    }
  }
}

status rocksdb_backend::sync_wal() {
  return guarded("sync_wal", state_->path_text, [&]() -> status {
    std::shared_lock lock(state_->mu);
    if (state_->closed) return state_->closed_error("sync_wal");
    return state_->sync_wal("sync WAL of " + state_->of_store());
  });
}

status rocksdb_backend::compact_range(column_family cf, std::string_view begin,
                                      std::string_view end) {
  return guarded("compact_range", state_->path_text, [&]() -> status {
    std::shared_lock lock(state_->mu);
    if (state_->closed) return state_->closed_error("compact_range");
    // A compaction may flush memtables, switching the WAL.
    SESHAT_RETURN_IF_ERROR(state_->refuse_after_write_error("compact_range"));
    const rocksdb::Slice b = slice(begin), e = slice(end);
    rocksdb::Status s = state_->db->CompactRange(rocksdb::CompactRangeOptions(), state_->handle(cf),
                                                 begin.empty() ? nullptr : &b,
                                                 end.empty() ? nullptr : &e);
    return from_rocks(s, "compact_range ['" + printable(begin) + "', '" + printable(end) +
                             "') of column family " + std::string(name_of(cf)) + " of " +
                             state_->of_store());
  });
}

result<std::uint64_t> rocksdb_backend::approximate_size(column_family cf, std::string_view begin,
                                                        std::string_view end) {
  return guarded("approximate_size", state_->path_text, [&]() -> result<std::uint64_t> {
    std::shared_lock lock(state_->mu);
    if (state_->closed) return state_->closed_error("approximate_size");
    auto context = [&] {
      return "approximate_size of ['" + printable(begin) + "', '" + printable(end) +
             "') of column family " + std::string(name_of(cf)) + " of " + state_->of_store();
    };
    // RocksDB wants a finite limit: "to the end" becomes just past the last key.
    std::string limit(end);
    if (end.empty()) {
      std::unique_ptr<rocksdb::Iterator> it(
          state_->db->NewIterator(iterator_read_options(), state_->handle(cf)));
      it->SeekToLast();
      if (!it->Valid()) {
        SESHAT_RETURN_IF_ERROR(from_rocks(it->status(), context()));
        return std::uint64_t{0};  // the family is empty
      }
      limit.assign(it->key().data(), it->key().size());
      limit.push_back('\0');
    }
    if (std::string_view(limit) <= begin) return std::uint64_t{0};
    rocksdb::SizeApproximationOptions o;
    o.include_memtables = true;
    o.include_files = true;
    const rocksdb::Range range(slice(begin), slice(limit));
    std::uint64_t size = 0;
    SESHAT_RETURN_IF_ERROR(
        from_rocks(state_->db->GetApproximateSizes(o, state_->handle(cf), &range, 1, &size),
                   context()));
    return size;
  });
}

result<std::uint64_t> rocksdb_backend::disk_usage() {
  return guarded("disk_usage", state_->path_text, [&]() -> result<std::uint64_t> {
    std::shared_lock lock(state_->mu);
    if (state_->closed) return state_->closed_error("disk_usage");
    return detail::directory_size(state_->path);
  });
}

status rocksdb_backend::close() {
  return guarded("close", state_->path_text, [&]() -> status {
    std::unique_lock lock(state_->mu);
    return state_->close();
  });
}

status rocksdb_backend::checkpoint(const std::filesystem::path& dir) {
  return guarded("checkpoint", state_->path_text, [&]() -> status {
    const std::filesystem::path target = detail::without_trailing_separator(dir);
    const std::string context = "checkpoint of " + state_->of_store() + " into " + target.string();
    std::shared_lock lock(state_->mu);
    if (state_->closed) return state_->closed_error("checkpoint");
    // A checkpoint flushes memtables, switching the WAL.
    SESHAT_RETURN_IF_ERROR(state_->refuse_after_write_error("checkpoint"));
    std::error_code ec;
    if (target.empty() || std::filesystem::exists(std::filesystem::symlink_status(target, ec)))
      return status::invalid_argument(context + ": it already exists");
    rocksdb::Checkpoint* raw = nullptr;
    SESHAT_RETURN_IF_ERROR(from_rocks(rocksdb::Checkpoint::Create(state_->db, &raw), context));
    std::unique_ptr<rocksdb::Checkpoint> cp(raw);
    // Flushes the memtables of every family, then links the live table files
    // and copies the MANIFEST, CURRENT, OPTIONS and the live WAL up to the
    // point of the flush: one point in time across the families.
    SESHAT_RETURN_IF_ERROR(from_rocks(cp->CreateCheckpoint(target.string()), context));
    auto finish = [&]() -> status {
      auto marker = detail::read_small_file(state_->path / detail::k_marker_file);
      if (!marker.ok()) return marker.status();
      SESHAT_RETURN_IF_ERROR(detail::write_file_durably(target / detail::k_marker_file, *marker));
      for (auto it = std::filesystem::directory_iterator(target, ec);
           !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
        if (it->is_regular_file(ec)) SESHAT_RETURN_IF_ERROR(detail::fsync_path(it->path(), false));
      if (ec) return status::io_error("cannot list " + target.string() + ": " + ec.message());
      SESHAT_RETURN_IF_ERROR(detail::fsync_path(target, true));
      return detail::fsync_path(detail::parent_of(target), true);
    };
    status s = finish();
    if (!s.ok()) {
      detail::remove_all_durably(target).ignore();
      return s.with_context(context + ": ");
    }
    return {};
  });
}

status rocksdb_backend::install_checkpoint(const std::filesystem::path& checkpoint_dir,
                                           const std::filesystem::path& store_dir) {
  return guarded("install_checkpoint", store_dir.string(), [&]() -> status {
    const std::string context = "install checkpoint " + checkpoint_dir.string() + " into store at " +
                                store_dir.string() + ": ";
    std::error_code ec;
    // The checkpoint: a finished rocksdb store, with its RocksDB files.
    if (status s = detail::check_checkpoint_marker(checkpoint_dir, k_name); !s.ok())
      return s.with_context(context + "the checkpoint is not a rocksdb store: ");
    if (!std::filesystem::exists(checkpoint_dir / "CURRENT", ec))
      return status::corrupted_data(context + "the checkpoint has no CURRENT file");
    // The target: missing, empty, or a rocksdb store.
    const bool exists = std::filesystem::exists(store_dir, ec);
    if (exists && !std::filesystem::is_empty(store_dir, ec)) {
      auto store = detail::read_store_marker(store_dir, k_name);
      if (!store.ok()) return store.status().with_context(context);
    }
    // Refuses a store that is open, here or in another process, and keeps
    // it from being opened meanwhile.
    engine_lock lock;
    if (exists) SESHAT_RETURN_IF_ERROR(lock.take(store_dir, context));
    // Table and blob files are never modified in place: they may be shared.
    return detail::install_directory(checkpoint_dir, store_dir, [](const std::string& name) {
      return name.ends_with(".sst") || name.ends_with(".blob");
    });
  });
}

rocksdb::DB* rocksdb_backend::raw_db() {
  try {
    std::shared_lock lock(state_->mu);
    return state_->closed ? nullptr : state_->db;
  } catch (...) {
    return nullptr;
  }
}

rocksdb::ColumnFamilyHandle* rocksdb_backend::raw_handle(column_family cf) {
  try {
    std::shared_lock lock(state_->mu);
    return state_->closed ? nullptr : state_->handle(cf);
  } catch (...) {
    return nullptr;
  }
}

}  // namespace seshat
