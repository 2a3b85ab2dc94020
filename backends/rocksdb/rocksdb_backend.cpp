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

#include "seshat/detail/backend_guard.hpp"
#include "seshat/detail/engine_store.hpp"
#include "seshat/detail/files.hpp"
#include "seshat/detail/printable.hpp"
#include "seshat/detail/wal_check.hpp"
#include "seshat/detail/write_latch.hpp"

namespace seshat {

namespace {

constexpr std::uint64_t k_mb = 1024 * 1024;
// The most a log family's memtable takes (see family_options).
constexpr std::uint32_t k_log_write_buffer_mb = 32;

rocksdb::Slice slice(std::string_view s) { return {s.data(), s.size()}; }

using detail::printable;

std::string key_in(column_family cf, std::string_view key) {
  return "key '" + printable(key) + "' in column family " + std::string(name_of(cf));
}

status from_rocks(const rocksdb::Status& s, const std::string& context) {
  return detail::from_engine(s, context);
}

using detail::guarded;

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
      // A process that is killed leaves its memtable in the WAL alone: the
      // next open replays it and writes it out as a table. At most
      // k_log_write_buffer_mb keeps that open under 400 ms
      // (W6 after a kill: 418 ms at 64 MB, 237 ms at 32 MB), at no cost to
      // W2 or W8's write amplification (measured).
      c.write_buffer_size =
          std::min<std::size_t>(c.write_buffer_size, std::size_t{k_log_write_buffer_mb} * k_mb);
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

using engine_lock = detail::engine_lock<rocksdb::Env, rocksdb::FileLock>;

// Table and blob files are never modified in place: a checkpoint and a store
// may share them.
bool immutable_file(const std::string& name) {
  return name.ends_with(".sst") || name.ends_with(".blob");
}

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
    // Through the Env where it can, so that a fault environment sees the cut.
    rocksdb::Status s = env->Truncate(path.string(), static_cast<std::size_t>(size));
    if (!s.ok() && !s.IsNotSupported())
      return from_rocks(s, "open: cut the unsynced tail of " + path.string());
    return detail::cut_log_file(path, size, dir, s.ok());
  };
  return f;
}

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
    if (db != nullptr && synced.ok()) synced = flush_for_reopen();
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

  // At close: when the live WALs hold more than
  // detail::k_flush_on_close_log_bytes, flushes every family's memtables,
  // so that the next open replays a short WAL (RocksDB deletes the WALs no
  // family needs any more before the database closes). Not once a write
  // failed (the latch): the open then replays the WALs, as after a crash.
  status flush_for_reopen() {
    if (latch.latched()) return {};
    rocksdb::VectorLogPtr files;
    if (!db->GetSortedWalFiles(files).ok()) return {};  // then the open replays them all
    std::uint64_t bytes = 0;
    for (const auto& f : files)
      if (f->Type() == rocksdb::kAliveLogFile) bytes += f->SizeFileBytes();
    if (bytes < detail::k_flush_on_close_log_bytes) return {};
    return flush_all("close: flush the memtables of " + of_store());
  }

  // Flushes the memtables of every family, and waits. Every family: the
  // state families take a few small writes, and their memtables would
  // otherwise keep every WAL since their last flush alive.
  status flush_all(const std::string& context) {
    std::vector<rocksdb::ColumnFamilyHandle*> all(handles.begin(), handles.end());
    rocksdb::FlushOptions fo;
    fo.wait = true;
    return note_write(db->Flush(fo, all), context);
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

  std::shared_mutex mu;  // shared: using the database; exclusive: closing it
  // Set by close(), under `mu` exclusively and `iterators_mu`; iterators
  // read it with neither.
  std::atomic<bool> closed{false};
  rocksdb::DB* db = nullptr;
  rocksdb::ColumnFamilyHandle* default_handle = nullptr;  // RocksDB's, unused
  std::array<rocksdb::ColumnFamilyHandle*, k_column_family_count> handles{};

  detail::write_latch latch;  // the first I/O error of a write or sync

  std::mutex iterators_mu;         // guards `live_iterators`, and `closed` for close()
  std::size_t live_iterators = 0;  // RocksDB iterators made and not yet deleted
};

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
    rocksdb::DBOptions db_options;
    if (options.environment.rocksdb != nullptr) db_options.env = options.environment.rocksdb;
    // Before RocksDB replays its WAL: a torn unsynced tail is cut, damage
    // inside what was synced refuses the open (detail/wal_check.hpp). RocksDB
    // alone would refuse a torn tail with a piece of a later write after it
    // ("missing start of fragmented record"), and skip zeros to the next
    // block and replay what starts there: a hole.
    auto check_logs = [&](const std::filesystem::path& canonical) {
      return detail::check_logs(dir.string(), options.recovery,
                                rocks_log_files(db_options.env, canonical, dir.string()),
                                rocks_marker);
    };
    SESHAT_ASSIGN_OR_RETURN(const detail::engine_dir found,
                            detail::open_engine_dir<engine_lock>(dir, k_name, "RocksDB", options,
                                                                 check_logs));
    db_options.create_if_missing = found.create;
    db_options.create_missing_column_families = true;
    db_options.wal_recovery_mode = options.recovery == recovery_mode::absolute_consistency
                                       ? rocksdb::WALRecoveryMode::kAbsoluteConsistency
                                       : rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;

    const rocksdb::CompressionType compression = best_compression();
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    descriptors.emplace_back(rocksdb::kDefaultColumnFamilyName,
                             family_options(std::nullopt, options, compression));
    for (column_family cf : k_all_column_families)
      descriptors.emplace_back(std::string(name_of(cf)), family_options(cf, options, compression));

    auto st = std::make_shared<state>(dir);
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::Status s =
        rocksdb::DB::Open(db_options, found.canonical.string(), descriptors, &handles, &st->db);
    if (!s.ok()) {
      // RocksDB frees what it opened when Open fails.
      st->db = nullptr;
      st->closed = true;
      return detail::engine_open_error(s, dir.string());
    }
    // From here `st` owns the database: its destructor closes it on failure.
    if (handles.size() != descriptors.size()) {
      for (auto* h : handles) st->db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
      return status::backend_error("open store at " + dir.string() + ": RocksDB returned " +
                                   std::to_string(handles.size()) + " column family handles for " +
                                   std::to_string(descriptors.size()) + " families");
    }
    st->default_handle = handles[0];
    for (column_family cf : k_all_column_families)
      st->handles[index_of(cf)] = handles[1 + index_of(cf)];
    for (column_family cf : k_all_column_families) {
      if (st->handles[index_of(cf)]->GetName() != name_of(cf))
        return status::backend_error("open store at " + dir.string() + ": column family " +
                                     std::string(name_of(cf)) + " was opened as " +
                                     st->handles[index_of(cf)]->GetName());
    }
    SESHAT_RETURN_IF_ERROR(detail::finish_engine_dir(found, dir.string(), k_name));
    return std::unique_ptr<rocksdb_backend>(new rocksdb_backend(std::move(st), dir));
  });
}

status rocksdb_backend::get(column_family cf, std::string_view key, std::string* value) {
  return guarded("get", state_->path_text, [&]() -> status {
    if (!detail::is_known_family(cf)) return detail::unknown_family("get", cf, state_->path_text);
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
    if (!detail::is_known_family(cf)) return detail::unknown_family("put", cf, state_->path_text);
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
    if (!detail::is_known_family(cf)) return detail::unknown_family("del", cf, state_->path_text);
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

rocksdb_backend::batch rocksdb_backend::new_batch() { return {}; }

status rocksdb_backend::write(batch& b, write_options wo) {
  return guarded("write", state_->path_text, [&]() -> status {
    const std::string what = "write of a batch of " + std::to_string(b.size()) + " operations";
    if (!b.ok()) return b.check().with_context("write to " + state_->of_store() + ": ");
    std::shared_lock lock(state_->mu);
    if (state_->closed) return state_->closed_error("write");
    if (b.empty()) {
      // A synced empty write still makes every earlier write durable.
      if (!wo.sync) return {};
      return state_->sync_wal("write of an empty synced batch: sync WAL of " + state_->of_store());
    }
    SESHAT_RETURN_IF_ERROR(state_->refuse_after_write_error(what));
    // Reserved whole (op_batch's bytes cover WriteBatch's records and its
    // 12-byte header): one copy of each key and value, no regrowth.
    rocksdb::WriteBatch wb(b.byte_size() + 12);
    for (const batch::op& op : b) {
      rocksdb::ColumnFamilyHandle* h = state_->handle(op.cf);
      rocksdb::Status s;
      switch (op.kind) {
        case batch::op_kind::put: s = wb.Put(h, slice(op.key), slice(op.value)); break;
        case batch::op_kind::del: s = wb.Delete(h, slice(op.key)); break;
        case batch::op_kind::del_range:
          // std::string_view compares bytes as unsigned, as RocksDB's bytewise
          // comparator does. RocksDB refuses a reversed range; seshat makes it
          // a no-op.
          if (op.key < op.value) s = wb.DeleteRange(h, slice(op.key), slice(op.value));
          break;
      }
      if (!s.ok())
        return from_rocks(s, what + " to " + state_->of_store() + ": " + key_in(op.cf, op.key))
            .with_context("", " (nothing was written)");
    }
    return state_->write_logged(wo, what + " to " + state_->of_store(),
                                [&](const rocksdb::WriteOptions& w) { return state_->db->Write(w, &wb); });
  });
}

std::unique_ptr<rocksdb_backend::iterator> rocksdb_backend::new_iterator(column_family cf) {
  const std::string_view op = "new_iterator";
  return detail::guarded_iterator(
      op, state_->path_text,
      [&] {
        if (!detail::is_known_family(cf))
          return std::unique_ptr<iterator>(new iterator(
              nullptr, cf, nullptr, detail::unknown_family(op, cf, state_->path_text)));
        std::unique_ptr<iterator> it(new iterator(state_, cf, nullptr, {}));
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
        return it;
      },
      [&](seshat::status error) {
        return std::unique_ptr<iterator>(new iterator(nullptr, cf, nullptr, std::move(error)));
      });
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
    if (!detail::is_known_family(cf)) return detail::unknown_family("compact_range", cf, state_->path_text);
    std::shared_lock lock(state_->mu);
    if (state_->closed) return state_->closed_error("compact_range");
    // A compaction may flush memtables, switching the WAL.
    SESHAT_RETURN_IF_ERROR(state_->refuse_after_write_error("compact_range"));
    // Every family's memtables first: the WALs that held the range's data
    // go too (the state families' few writes would otherwise keep them).
    SESHAT_RETURN_IF_ERROR(
        state_->flush_all("compact_range: flush the memtables of " + state_->of_store()));
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
    if (!detail::is_known_family(cf))
      return detail::unknown_family("approximate_size", cf, state_->path_text);
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
    std::shared_lock lock(state_->mu);
    if (state_->closed) return state_->closed_error("checkpoint");
    // A checkpoint flushes memtables, switching the WAL.
    SESHAT_RETURN_IF_ERROR(state_->refuse_after_write_error("checkpoint"));
    return detail::make_checkpoint_dir(
        state_->of_store(), dir, [&](const std::filesystem::path& target, bool& owned) -> status {
          rocksdb::Checkpoint* raw = nullptr;
          SESHAT_RETURN_IF_ERROR(
              from_rocks(rocksdb::Checkpoint::Create(state_->db, &raw), "RocksDB checkpoint"));
          std::unique_ptr<rocksdb::Checkpoint> cp(raw);
          // Flushes the memtables of every family, then links the live table
          // files and copies the MANIFEST, CURRENT, OPTIONS and the live WAL up
          // to the point of the flush: one point in time across the families.
          // RocksDB creates `target` (and removes what it made on failure).
          SESHAT_RETURN_IF_ERROR(
              from_rocks(cp->CreateCheckpoint(target.string()), "RocksDB checkpoint"));
          owned = true;
          return detail::seal_checkpoint(state_->path, target);
        });
  });
}

status rocksdb_backend::install_checkpoint(const std::filesystem::path& checkpoint_dir,
                                           const std::filesystem::path& store_dir) {
  return detail::install_engine_checkpoint<engine_lock>(checkpoint_dir, store_dir, k_name,
                                                        immutable_file);
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
