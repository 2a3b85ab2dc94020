// leveldb_backend.cpp: the LevelDB backend (see the header for the key
// layout, ownership, thread-safety and error contracts).
#include "seshat/backends/leveldb_backend.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <system_error>
#include <utility>

#include <leveldb/cache.h>
#include <leveldb/db.h>
#include <leveldb/env.h>
#include <leveldb/filter_policy.h>
#include <leveldb/iterator.h>
#include <leveldb/options.h>
#include <leveldb/slice.h>
#include <leveldb/status.h>
#include <leveldb/write_batch.h>

#include "seshat/detail/backend_guard.hpp"
#include "seshat/detail/engine_store.hpp"
#include "seshat/detail/files.hpp"
#include "seshat/detail/printable.hpp"
#include "seshat/detail/wal_check.hpp"
#include "seshat/detail/write_latch.hpp"

namespace seshat {

// The database and the objects its options point to. Members are destroyed
// in reverse order: the database first, then what it used.
//
// log_watch is the environment LevelDB runs on: the caller's (or the
// default) environment, passed through, counting the log files LevelDB
// creates. LevelDB creates a log only at open and inside a write that
// switches memtables, and seshat serializes writes, so after a synced write
// an unchanged count means no log appeared since sync_older_logs last ran.
//
// Before LevelDB creates a newer log in this process (a memtable switch),
// it runs `sync_current_log` on the log LevelDB has written until now
// (LevelDB flushes each record to the file as it appends it), and fails the
// creation, and so the write, when that sync fails. LevelDB closes that log
// without syncing it, and the newer log's pages can reach the disk before
// its own: a power loss could then keep later writes and lose earlier ones,
// a hole that no damage in the logs shows. Synced at the switch, the older
// log is durable before the newer one holds a byte. (The pass after a
// synced write, sync_older_logs, still syncs the older logs and the
// directory: it covers the logs an open found.)
class log_watch final : public leveldb::EnvWrapper {
 public:
  explicit log_watch(leveldb::Env* target) : leveldb::EnvWrapper(target) {}
  std::function<leveldb::Status(const std::string& log)> sync_current_log;

  leveldb::Status NewWritableFile(const std::string& f, leveldb::WritableFile** r) override {
    if (is_log(f) && sync_current_log) {
      const std::string current = newest_log();
      if (!current.empty() && current != f)
        if (leveldb::Status s = sync_current_log(current); !s.ok()) return s;
    }
    note(f);
    return target()->NewWritableFile(f, r);
  }
  leveldb::Status NewAppendableFile(const std::string& f, leveldb::WritableFile** r) override {
    note(f);
    return target()->NewAppendableFile(f, r);
  }
  std::uint64_t logs_created() const { return logs_created_.load(std::memory_order_acquire); }
  // The path of the log LevelDB created last (the one it writes), or empty.
  std::string newest_log() const {
    std::lock_guard lock(mu_);
    return newest_log_;
  }

 private:
  static bool is_log(const std::string& f) { return f.size() > 4 && f.compare(f.size() - 4, 4, ".log") == 0; }
  void note(const std::string& f) {
    if (is_log(f)) {
      {
        std::lock_guard lock(mu_);
        newest_log_ = f;
      }
      logs_created_.fetch_add(1, std::memory_order_acq_rel);
    }
  }
  std::atomic<std::uint64_t> logs_created_{0};
  mutable std::mutex mu_;
  std::string newest_log_;
};

struct leveldb_backend::engine {
  std::string path;             // the store's directory, as given to open()
  std::filesystem::path dir;    // the same, canonical: what LevelDB was given
  leveldb::Env* env = nullptr;  // open_options::environment.leveldb: null is the default
  // The first failed write or sync of this open database. See write_db().
  detail::write_latch latch;
  // log_watch's count when sync_older_logs last finished a pass, or none.
  // Guarded by the backend's write_mutex_.
  std::optional<std::uint64_t> logs_at_last_pass;
  std::unique_ptr<log_watch> watch;
  std::unique_ptr<const leveldb::FilterPolicy> filter_policy;
  std::unique_ptr<leveldb::Cache> block_cache;
  std::unique_ptr<leveldb::DB> db;
};

namespace {

constexpr int k_bloom_bits_per_key = 10;
constexpr std::size_t k_block_cache_bytes = std::size_t{32} << 20;
// LevelDB keeps every family in one memtable, and a process that is killed
// leaves it in LevelDB's log alone: the next open replays it and writes it
// out as a table. At most this many MB keeps that open well under 400 ms
// with 1 M log entries (W6 after a kill, one run: 426 ms at 64 MB, 156 at
// 16, 155 at 8, 113 at 4), while W2 B=256 keeps 0.91 x the hand-written
// loop (0.97 at 64 MB, 0.79 at 8, 0.77 at 4; docs/benchmarks.md).
constexpr std::uint32_t k_max_write_buffer_mb = 16;

static_assert(k_column_family_count < 255, "a family's end prefix must fit in a byte");

char prefix_of(column_family cf) {
  return static_cast<char>(static_cast<unsigned char>(cf));
}

bool known_family(column_family cf) { return detail::is_known_family(cf); }

// stored_key := cf_byte user_key
std::string stored_key(column_family cf, std::string_view key) {
  std::string k;
  k.reserve(key.size() + 1);
  k.push_back(prefix_of(cf));
  k.append(key);
  return k;
}

// The family's first possible stored key, and the first key past it.
std::string family_begin(column_family cf) { return std::string(1, prefix_of(cf)); }
std::string family_end(column_family cf) {
  return std::string(1, static_cast<char>(static_cast<unsigned char>(cf) + 1));
}

leveldb::Slice slice(std::string_view s) { return {s.data(), s.size()}; }

using detail::printable;

std::string family_name(column_family cf) {
  if (known_family(cf)) return std::string(name_of(cf));
  return "#" + std::to_string(index_of(cf));
}

std::string store_context(const std::string& path) { return "store at " + path; }

std::string family_context(std::string_view op, column_family cf, const std::string& path) {
  return std::string(op) + " in column family " + family_name(cf) + " of " + store_context(path);
}

std::string key_context(std::string_view op, column_family cf, std::string_view key,
                        const std::string& path) {
  return std::string(op) + " key '" + printable(key) + "' in column family " + family_name(cf) +
         " of " + store_context(path);
}

std::string range_context(std::string_view op, column_family cf, std::string_view begin,
                          std::string_view end, const std::string& path) {
  return std::string(op) + " ['" + printable(begin) + "', '" + printable(end) +
         "') in column family " + family_name(cf) + " of " + store_context(path);
}

status from_leveldb(const leveldb::Status& s, const std::string& context) {
  return detail::from_engine(s, context);
}

status exception_status(std::string_view op, std::string_view path) noexcept {
  return detail::current_exception_status(op, path);
}

using detail::unknown_family;

using engine_lock = detail::engine_lock<leveldb::Env, leveldb::FileLock>;

// Table files are never modified in place: a checkpoint and a store may
// share them.
bool immutable_file(const std::string& name) {
  return name.ends_with(".ldb") || name.ends_with(".sst");
}

// LevelDB closes the log it leaves at a memtable switch without syncing it,
// and does not sync the directory entry of the new log until it writes its
// manifest. While such an older log exists (until its memtable is in a
// synced table), a synced write to the newest log does not make the older
// log's writes durable. This fdatasyncs every log but the newest and then
// the directory. REQUIRES: no write is in flight (the writer mutex is held),
// so that no log is being created.
//
// With a custom environment the logs are synced through it (opened for
// appending, synced, closed), so that an environment which tracks
// durability sees the sync; a log compacted away between the existence
// check and the open comes back as an empty file below LevelDB's log
// number, which LevelDB ignores and deletes. LevelDB's Env has no directory
// sync: the directory is fsynced directly either way.
status sync_log_via_env(leveldb::Env& env, const std::filesystem::path& file,
                        const std::string& path) {
  if (!env.FileExists(file.string())) return {};  // compacted into a synced table meanwhile
  leveldb::WritableFile* raw = nullptr;
  leveldb::Status s = env.NewAppendableFile(file.string(), &raw);
  std::unique_ptr<leveldb::WritableFile> f(raw);
  if (s.ok()) s = f->Sync();
  if (f) {
    leveldb::Status closed = f->Close();
    if (s.ok()) s = closed;
  }
  if (s.ok()) return {};
  return from_leveldb(s, "sync: older log " + file.string() + " of " + store_context(path));
}

// fdatasyncs the log `file`: through `env` when one is set
// (sync_log_via_env), else directly; a log compacted away meanwhile is no
// error.
status sync_log(leveldb::Env* env, const std::filesystem::path& file, const std::string& path) {
  if (env != nullptr) return sync_log_via_env(*env, file, path);
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return {};  // compacted into a synced table meanwhile
    return detail::errno_status("sync: open older log of " + store_context(path) + ":", file, errno);
  }
  const int rc = ::fdatasync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return detail::errno_status("sync: fdatasync older log of " + store_context(path) + ":", file, err);
  return {};
}

status sync_older_logs_pass(const std::filesystem::path& dir, leveldb::Env* env,
                            const std::string& path) {
  std::vector<std::pair<std::uint64_t, std::filesystem::path>> logs;
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    if (const auto number = detail::log_number(it->path().filename().string()))
      logs.emplace_back(*number, it->path());
  }
  if (ec) return status::io_error("sync: cannot list " + store_context(path) + ": " + ec.message());
  if (logs.size() <= 1) return {};
  std::sort(logs.begin(), logs.end());
  logs.pop_back();  // the newest log: LevelDB has just synced it
  for (const auto& [number, file] : logs) SESHAT_RETURN_IF_ERROR(sync_log(env, file, path));
  return detail::fsync_path(dir, true);
}

// sync_older_logs_pass, unless no log was created since the last pass
// finished: the older logs it synced get no more writes, and the directory
// entries it synced stay durable. REQUIRES: the writer mutex is held.
// `last_pass`: the engine's logs_at_last_pass.
status sync_older_logs(const log_watch& watch, std::optional<std::uint64_t>& last_pass,
                       const std::filesystem::path& dir, leveldb::Env* env,
                       const std::string& path) {
  const std::uint64_t created = watch.logs_created();
  if (last_pass == created) return {};
  SESHAT_RETURN_IF_ERROR(sync_older_logs_pass(dir, env, path));
  last_pass = created;
  return {};
}

// The durability marker (detail/wal_check.hpp) is the value of this key,
// outside every column family (their prefixes are below 0xff):
//   batch := sequence:u64le count:u32le (1) 0x01 (put) 14:varint32 marker_key
//            30:varint32 marker
const std::string& marker_key() {
  static const std::string k = std::string(1, '\xff') + "seshat-synced";
  return k;
}

std::optional<detail::wal_position> leveldb_marker(std::string_view batch) {
  const std::string& key = marker_key();
  const std::size_t header = 12;
  if (batch.size() != header + 3 + key.size() + detail::k_wal_marker_size ||
      batch.substr(8, 4) != std::string_view("\1\0\0\0", 4) || batch[header] != 0x01 ||
      static_cast<unsigned char>(batch[header + 1]) != key.size() ||
      batch.substr(header + 2, key.size()) != key ||
      static_cast<unsigned char>(batch[header + 2 + key.size()]) != detail::k_wal_marker_size)
    return std::nullopt;
  return detail::decode_wal_marker(batch.substr(header + 3 + key.size()));
}

// After a synced write or sync_wal succeeded (and, with it, the older-log
// pass): the newest log, as long as it is now, and every older log are
// durable; writes the marker that says so, unsynced. `e`: the backend's
// engine. REQUIRES: the writer mutex is held, so that the log holds nothing
// written since the sync.
template <class Engine>
status write_marker(Engine& e, const std::string& path) {
  const std::string log = e.watch->newest_log();
  const auto number = detail::log_number(std::filesystem::path(log).filename().string());
  std::uint64_t size = 0;
  if (!number || !e.watch->GetFileSize(log, &size).ok())
    return {};  // no marker for this sync: the check sees less, nothing wrong
  leveldb::WriteBatch wb;
  wb.Put(leveldb::Slice(marker_key()), leveldb::Slice(detail::encode_wal_marker({*number, size})));
  leveldb::Status s = e.db->Write(leveldb::WriteOptions(), &wb);
  if (s.ok()) return {};
  return e.latch.note(from_leveldb(s, "write the durability marker of " + store_context(path)));
}

// Writes `wb` and, when `o.sync`, the older logs (sync_older_logs) and the
// durability marker (write_marker). The
// first I/O error of either latches the store (detail/write_latch.hpp):
// every later write and sync fails with it until the store is reopened
// (recovery then starts a new log). Two reasons besides the latch's own: an
// older log whose fdatasync failed lost the pages that failed, and a later
// fdatasync of it (on a new descriptor) succeeds without them, acknowledging
// writes that are gone; and LevelDB 1.23 keeps writing its log after an
// append to it failed (only a failed sync stops it), with its record
// framing advanced past bytes that never reached the file: the records
// written after are unreadable at recovery, which drops them, acknowledged
// or not. `e`: the backend's engine; `context()`: the operation and the
// store, for errors. REQUIRES: the writer mutex is held.
template <class Engine, class Context>
status write_db(Engine& e, const leveldb::WriteOptions& o, leveldb::WriteBatch* wb,
                const std::string& path, Context&& context) {
  if (e.latch.latched()) return e.latch.refusal(context());
  leveldb::Status s = e.db->Write(o, wb);
  if (!s.ok()) return e.latch.note(from_leveldb(s, context()));
  if (!o.sync) return {};
  SESHAT_RETURN_IF_ERROR(
      e.latch.note(sync_older_logs(*e.watch, e.logs_at_last_pass, e.dir, e.env, path)));
  return write_marker(e, path);
}

// At close: when the logs hold more than detail::k_flush_on_close_log_bytes
// together, writes the memtables to table files (LevelDB then deletes the
// logs), so that the next open replays short logs instead of rebuilding the
// memtables from them and writing them out. The logs are the current
// memtable's and, while its flush is still queued (the background thread
// busy with a table compaction), the full one's before it: LevelDB's
// shutdown drops that flush, and the next open replays a whole memtable. A
// write of no batch (LevelDB's own TEST_CompactMemTable does this) waits for
// a queued flush, then switches to a new memtable and log and schedules the
// old memtable's flush; a second one waits for that flush (and switches once
// more, to an empty memtable). CompactRange would wait for a table
// compaction running meanwhile too; this does not, and the database's
// deletion then stops that compaction. Not once a write failed; a failed
// flush is latched and returned.
template <class Engine>
status flush_for_reopen(Engine& e, const std::string& path) {
  if (e.latch.latched()) return {};
  std::vector<std::string> names;
  if (!e.watch->GetChildren(e.dir.string(), &names).ok()) return {};
  std::uint64_t bytes = 0;
  for (const std::string& name : names) {
    std::uint64_t size = 0;
    if (detail::log_number(name) && e.watch->GetFileSize((e.dir / name).string(), &size).ok())
      bytes += size;
  }
  if (bytes < detail::k_flush_on_close_log_bytes) return {};
  leveldb::Status s = e.db->Write(leveldb::WriteOptions(), nullptr);
  if (s.ok()) s = e.db->Write(leveldb::WriteOptions(), nullptr);
  if (s.ok()) return {};
  return e.latch.note(from_leveldb(s, "close: flush the memtable of " + store_context(path)));
}

// The store's logs through LevelDB's environment, for detail::check_logs.
// LevelDB's Env cannot truncate: the cut is made on the file directly.
detail::log_files leveldb_log_files(leveldb::Env* env, const std::filesystem::path& dir,
                                    const std::string& path) {
  detail::log_files f;
  f.list = [=]() -> result<std::vector<std::string>> {
    std::vector<std::string> names;
    leveldb::Status s = env->GetChildren(dir.string(), &names);
    if (!s.ok()) return from_leveldb(s, "open: list " + store_context(path));
    return names;
  };
  f.open = [=](const std::string& name) -> result<detail::read_more> {
    const std::string file_path = (dir / name).string();
    leveldb::SequentialFile* raw = nullptr;
    leveldb::Status s = env->NewSequentialFile(file_path, &raw);
    if (!s.ok()) return from_leveldb(s, "open: read write-ahead log " + file_path);
    return detail::sequential_reader<leveldb::Slice>(std::shared_ptr<leveldb::SequentialFile>(raw),
                                                     file_path, from_leveldb);
  };
  f.cut = [=](const std::string& name, std::uint64_t size) -> status {
    return detail::cut_log_file(dir / name, size, dir);
  };
  return f;
}

}  // namespace

// ---------------------------------------------------------------------------
// iterator

leveldb_backend::iterator::iterator(std::shared_ptr<engine> e, column_family cf)
    : engine_(std::move(e)), cf_(cf) {
  it_.reset(engine_->db->NewIterator(leveldb::ReadOptions()));
}

leveldb_backend::iterator::iterator(seshat::status error) : error_(std::move(error)) {}

leveldb_backend::iterator::~iterator() {
  it_.reset();  // before the database it reads
  engine_.reset();
}

void leveldb_backend::iterator::settle() {
  valid_ = false;
  key_ = {};
  if (!it_->Valid()) return;
  const leveldb::Slice k = it_->key();
  if (k.empty() || k[0] != prefix_of(cf_)) return;  // outside the family
  key_ = std::string_view(k.data() + 1, k.size() - 1);
  valid_ = true;
}

void leveldb_backend::iterator::fail() noexcept {
  valid_ = false;
  key_ = {};
  error_ = exception_status("iterator", engine_ ? std::string_view(engine_->path) : "?");
}

void leveldb_backend::iterator::seek_to_first() {
  if (!it_) return;
  try {
    target_.assign(1, prefix_of(cf_));
    it_->Seek(slice(target_));
    settle();
  } catch (...) {
    fail();
  }
}

void leveldb_backend::iterator::seek_to_last() {
  if (!it_) return;
  try {
    target_ = family_end(cf_);
    it_->Seek(slice(target_));  // the next family's first key, if any
    if (it_->Valid()) it_->Prev();
    else if (it_->status().ok()) it_->SeekToLast();
    settle();
  } catch (...) {
    fail();
  }
}

void leveldb_backend::iterator::seek(std::string_view key) {
  if (!it_) return;
  try {
    target_.assign(1, prefix_of(cf_));
    target_.append(key);
    it_->Seek(slice(target_));
    settle();
  } catch (...) {
    fail();
  }
}

void leveldb_backend::iterator::seek_for_prev(std::string_view key) {
  if (!it_) return;
  try {
    target_.assign(1, prefix_of(cf_));
    target_.append(key);
    it_->Seek(slice(target_));  // first stored key >= target
    if (it_->Valid()) {
      if (it_->key() != slice(target_)) it_->Prev();
    } else if (it_->status().ok()) {
      it_->SeekToLast();
    }
    settle();
  } catch (...) {
    fail();
  }
}

void leveldb_backend::iterator::next() {
  if (!valid_) return;
  try {
    it_->Next();
    settle();
  } catch (...) {
    fail();
  }
}

void leveldb_backend::iterator::prev() {
  if (!valid_) return;
  try {
    it_->Prev();
    settle();
  } catch (...) {
    fail();
  }
}

std::string_view leveldb_backend::iterator::value() const {
  const leveldb::Slice v = it_->value();
  return {v.data(), v.size()};
}

status leveldb_backend::iterator::status() const {
  if (!error_.ok() || !it_) return error_;
  try {
    leveldb::Status s = it_->status();
    if (s.ok()) return {};
    return from_leveldb(s, family_context("iterator", cf_, engine_->path));
  } catch (...) {
    return exception_status("iterator", engine_->path);
  }
}

// ---------------------------------------------------------------------------
// leveldb_backend

result<std::unique_ptr<leveldb_backend>> leveldb_backend::open(const std::filesystem::path& dir,
                                                               const open_options& options) {
  using result_t = result<std::unique_ptr<leveldb_backend>>;
  return detail::guarded("open", dir.string(), [&]() -> result_t {
    const std::string path = dir.string();
    // Before LevelDB replays its logs: a torn unsynced tail is cut, damage
    // inside what was synced refuses the open (detail/wal_check.hpp).
    // LevelDB alone would skip a damaged piece and replay what follows it (a
    // hole), or, with paranoid checks, refuse any torn tail.
    auto check_logs = [&](const std::filesystem::path& canonical) {
      leveldb::Env* env = options.environment.leveldb != nullptr ? options.environment.leveldb
                                                                 : leveldb::Env::Default();
      return detail::check_logs(path, options.recovery, leveldb_log_files(env, canonical, path),
                                leveldb_marker);
    };
    SESHAT_ASSIGN_OR_RETURN(const detail::engine_dir found,
                            detail::open_engine_dir<engine_lock>(dir, k_name, "LevelDB", options,
                                                                 check_logs));

    auto e = std::make_shared<engine>();
    e->path = path;
    e->dir = found.canonical;
    e->env = options.environment.leveldb;
    e->filter_policy.reset(leveldb::NewBloomFilterPolicy(k_bloom_bits_per_key));
    e->block_cache.reset(leveldb::NewLRUCache(k_block_cache_bytes));

    leveldb::Options lo;
    lo.create_if_missing = found.create;
    lo.paranoid_checks = options.recovery == recovery_mode::absolute_consistency;
    lo.error_if_exists = false;
    lo.write_buffer_size = std::size_t{std::min(options.write_buffer_mb, k_max_write_buffer_mb)} << 20;
    lo.max_file_size = std::size_t{options.target_file_mb} << 20;
    lo.filter_policy = e->filter_policy.get();
    lo.block_cache = e->block_cache.get();
    e->watch = std::make_unique<log_watch>(e->env != nullptr ? e->env : leveldb::Env::Default());
    e->watch->sync_current_log = [env = e->env, path](const std::string& log) {
      const status s = sync_log(env, log, path);
      return s.ok() ? leveldb::Status::OK() : leveldb::Status::IOError(s.message());
    };
    lo.env = e->watch.get();
    // compression: LevelDB's default, snappy.

    leveldb::DB* db = nullptr;
    leveldb::Status s = leveldb::DB::Open(lo, found.canonical.string(), &db);
    e->db.reset(db);
    if (!s.ok()) return detail::engine_open_error(s, path);
    SESHAT_RETURN_IF_ERROR(detail::finish_engine_dir(found, path, k_name));
    return std::unique_ptr<leveldb_backend>(new leveldb_backend(std::move(e), path));
  });
}

leveldb_backend::leveldb_backend(std::shared_ptr<engine> e, std::string path)
    : path_(std::move(path)), engine_(std::move(e)) {}

leveldb_backend::~leveldb_backend() { close().ignore(); }

status leveldb_backend::closed_error(std::string_view operation) const {
  return status::backend_error(std::string(operation) + ": " + store_context(path_) +
                               " is closed");
}

status leveldb_backend::get(column_family cf, std::string_view key, std::string* value) {
  try {
    if (value == nullptr)
      return status::invalid_argument(key_context("get", cf, key, path_) + ": value is null");
    if (!known_family(cf)) return unknown_family("get", cf, path_);
    std::shared_lock life(life_mutex_);
    if (!engine_) return closed_error("get");
    const std::string k = stored_key(cf, key);
    leveldb::Status s = engine_->db->Get(leveldb::ReadOptions(), slice(k), value);
    if (s.ok()) return {};
    return from_leveldb(s, key_context("get", cf, key, path_));
  } catch (...) {
    return exception_status("get", path_);
  }
}

status leveldb_backend::put(column_family cf, std::string_view key, std::string_view value,
                            write_options wo) {
  try {
    if (!known_family(cf)) return unknown_family("put", cf, path_);
    std::shared_lock life(life_mutex_);
    if (!engine_) return closed_error("put");
    leveldb::WriteBatch wb;
    wb.Put(slice(stored_key(cf, key)), slice(value));
    leveldb::WriteOptions lwo;
    lwo.sync = wo.sync;
    std::lock_guard writer(write_mutex_);
    return write_db(*engine_, lwo, &wb, path_, [&] { return key_context("put", cf, key, path_); });
  } catch (...) {
    return exception_status("put", path_);
  }
}

status leveldb_backend::del(column_family cf, std::string_view key, write_options wo) {
  try {
    if (!known_family(cf)) return unknown_family("del", cf, path_);
    std::shared_lock life(life_mutex_);
    if (!engine_) return closed_error("del");
    leveldb::WriteBatch wb;
    wb.Delete(slice(stored_key(cf, key)));
    leveldb::WriteOptions lwo;
    lwo.sync = wo.sync;
    std::lock_guard writer(write_mutex_);
    return write_db(*engine_, lwo, &wb, path_, [&] { return key_context("del", cf, key, path_); });
  } catch (...) {
    return exception_status("del", path_);
  }
}

status leveldb_backend::write(batch& b, write_options wo) {
  try {
    if (!b.ok()) return b.check().with_context("write to " + store_context(path_) + ": ");
    bool has_range = false;
    for (const batch::op& op : b)  // (b.check() refused unknown families)
      has_range = has_range || op.kind == batch::op_kind::del_range;
    std::shared_lock life(life_mutex_);
    if (!engine_) return closed_error("write");
    leveldb::DB& db = *engine_->db;

    std::lock_guard writer(write_mutex_);
    leveldb::WriteBatch wb;
    // With a del_range: the stored keys put so far in this batch, which a
    // later del_range must delete as well as the keys already in the DB.
    std::set<std::string, std::less<>> put_keys;
    for (const batch::op& op : b) {
      switch (op.kind) {
        case batch::op_kind::put: {
          std::string k = stored_key(op.cf, op.key);
          wb.Put(slice(k), slice(op.value));
          if (has_range) put_keys.insert(std::move(k));
          break;
        }
        case batch::op_kind::del:
          wb.Delete(slice(stored_key(op.cf, op.key)));
          break;
        case batch::op_kind::del_range: {
          if (op.key >= op.value) break;
          const std::string lo = stored_key(op.cf, op.key);
          const std::string hi = stored_key(op.cf, op.value);
          // The writer mutex keeps the DB as it is until our write is done.
          leveldb::ReadOptions ro;
          ro.fill_cache = false;
          std::unique_ptr<leveldb::Iterator> it(db.NewIterator(ro));
          const leveldb::Slice hi_slice = slice(hi);
          for (it->Seek(slice(lo)); it->Valid() && it->key().compare(hi_slice) < 0; it->Next())
            wb.Delete(it->key());
          if (!it->status().ok())
            return from_leveldb(it->status(),
                                range_context("write: del_range", op.cf, op.key, op.value, path_) +
                                    " (nothing written)");
          for (auto p = put_keys.lower_bound(lo); p != put_keys.end() && *p < hi;) {
            wb.Delete(slice(*p));
            p = put_keys.erase(p);
          }
          break;
        }
      }
    }
    if (b.empty() && !wo.sync) return {};
    leveldb::WriteOptions lwo;
    lwo.sync = wo.sync;
    return write_db(*engine_, lwo, &wb, path_, [&] {
      return "write batch of " + std::to_string(b.size()) + " operations" +
             (wo.sync ? " (sync)" : "") + " to " + store_context(path_);
    });
  } catch (...) {
    return exception_status("write", path_);
  }
}

std::unique_ptr<leveldb_backend::iterator> leveldb_backend::new_iterator(column_family cf) {
  return detail::guarded_iterator(
      "new_iterator", path_,
      [&] {
        if (!known_family(cf))
          return std::unique_ptr<iterator>(new iterator(unknown_family("new_iterator", cf, path_)));
        std::shared_lock life(life_mutex_);
        if (!engine_) return std::unique_ptr<iterator>(new iterator(closed_error("new_iterator")));
        return std::unique_ptr<iterator>(new iterator(engine_, cf));
      },
      [](seshat::status error) { return std::unique_ptr<iterator>(new iterator(std::move(error))); });
}

status leveldb_backend::sync_wal() {
  try {
    std::shared_lock life(life_mutex_);
    if (!engine_) return closed_error("sync_wal");
    std::lock_guard writer(write_mutex_);
    // A synced write of an empty batch: LevelDB appends a 12-byte record to
    // its log and fdatasyncs it, which makes the whole log durable.
    leveldb::WriteBatch empty;
    leveldb::WriteOptions lwo;
    lwo.sync = true;
    return write_db(*engine_, lwo, &empty, path_,
                    [&] { return "sync_wal of " + store_context(path_); });
  } catch (...) {
    return exception_status("sync_wal", path_);
  }
}

status leveldb_backend::compact_range(column_family cf, std::string_view begin,
                                      std::string_view end) {
  try {
    if (!known_family(cf)) return unknown_family("compact_range", cf, path_);
    std::shared_lock life(life_mutex_);
    if (!engine_) return closed_error("compact_range");
    if (!begin.empty() && !end.empty() && begin >= end) return {};
    const std::string lo = begin.empty() ? family_begin(cf) : stored_key(cf, begin);
    const std::string hi = end.empty() ? family_end(cf) : stored_key(cf, end);
    const leveldb::Slice lo_slice = slice(lo), hi_slice = slice(hi);
    // LevelDB's CompactRange compacts the levels that held files in the
    // range before it flushed the memtable: a memtable flushed into a level
    // below them would keep the range's deleted keys. So the memtable
    // first, by a CompactRange over a range that holds no key (above every
    // family's prefix, below the durability marker's key): it flushes the
    // memtable and finds no table to compact.
    static_assert(k_column_family_count < 0xfe, "no family's keys start with 0xfe");
    const std::string none(1, '\xfe');
    const leveldb::Slice none_slice(none);
    engine_->db->CompactRange(&none_slice, &none_slice);
    // LevelDB's end is inclusive: compacting one key past the range is harmless.
    engine_->db->CompactRange(&lo_slice, &hi_slice);
    return {};
  } catch (...) {
    return exception_status("compact_range", path_);
  }
}

result<std::uint64_t> leveldb_backend::approximate_size(column_family cf, std::string_view begin,
                                                        std::string_view end) {
  try {
    if (!known_family(cf)) return unknown_family("approximate_size", cf, path_);
    std::shared_lock life(life_mutex_);
    if (!engine_) return closed_error("approximate_size");
    if (!begin.empty() && !end.empty() && begin >= end) return std::uint64_t{0};
    const std::string lo = begin.empty() ? family_begin(cf) : stored_key(cf, begin);
    const std::string hi = end.empty() ? family_end(cf) : stored_key(cf, end);
    const leveldb::Range range(slice(lo), slice(hi));
    std::uint64_t size = 0;
    engine_->db->GetApproximateSizes(&range, 1, &size);
    return size;
  } catch (...) {
    return exception_status("approximate_size", path_);
  }
}

result<std::uint64_t> leveldb_backend::disk_usage() {
  try {
    std::shared_lock life(life_mutex_);
    if (!engine_) return closed_error("disk_usage");
    return detail::directory_size(engine_->dir);
  } catch (...) {
    return exception_status("disk_usage", path_);
  }
}

status leveldb_backend::close() {
  try {
    // Under the exclusive lock, so that when any close() returns the
    // database is deleted (unless an iterator still holds it). Deleting it
    // waits for LevelDB's background compaction.
    std::unique_lock life(life_mutex_);
    status flushed;
    if (engine_) {
      std::lock_guard writer(write_mutex_);
      flushed = flush_for_reopen(*engine_, path_);
    }
    engine_.reset();
    return flushed;
  } catch (...) {
    return exception_status("close", path_);
  }
}

status leveldb_backend::checkpoint(const std::filesystem::path& dir) {
  return detail::guarded("checkpoint", path_, [&]() -> status {
    std::shared_lock life(life_mutex_);
    if (!engine_) return closed_error("checkpoint");
    return detail::make_checkpoint_dir(
        store_context(path_), dir, [&](const std::filesystem::path& target, bool& owned) -> status {
          SESHAT_RETURN_IF_ERROR(detail::claim_checkpoint_dir(target, owned));
          SESHAT_RETURN_IF_ERROR(copy_database(target));
          return detail::seal_checkpoint(engine_->dir, target);
        });
  });
}

// Copies the database, as it is at this instant (a LevelDB snapshot), into
// a fresh LevelDB database in `target`, in large unsynced write batches
// (the last one synced), then compacts and closes the copy. REQUIRES:
// life_mutex_ held (shared) and the store open.
status leveldb_backend::copy_database(const std::filesystem::path& target) {
  leveldb::DB& db = *engine_->db;
  leveldb::ReadOptions ro;
  ro.fill_cache = false;
  ro.snapshot = db.GetSnapshot();
  struct release_snapshot {
    leveldb::DB& db;
    const leveldb::Snapshot* snapshot;
    ~release_snapshot() { db.ReleaseSnapshot(snapshot); }
  } release{db, ro.snapshot};

  leveldb::Options lo;
  lo.create_if_missing = true;
  lo.error_if_exists = true;
  lo.write_buffer_size = std::size_t{32} << 20;
  lo.filter_policy = engine_->filter_policy.get();  // the same tables as the store's
  if (engine_->env != nullptr) lo.env = engine_->env;  // the store's environment
  leveldb::DB* raw = nullptr;
  leveldb::Status s = leveldb::DB::Open(lo, target.string(), &raw);
  std::unique_ptr<leveldb::DB> out(raw);
  if (!s.ok()) return from_leveldb(s, "create the copy");
  std::unique_ptr<leveldb::Iterator> it(db.NewIterator(ro));
  leveldb::WriteBatch wb;
  constexpr std::size_t k_batch_bytes = std::size_t{4} << 20;
  leveldb::WriteOptions unsynced;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    wb.Put(it->key(), it->value());
    if (wb.ApproximateSize() >= k_batch_bytes) {
      s = out->Write(unsynced, &wb);
      if (!s.ok()) return from_leveldb(s, "write the copy");
      wb.Clear();
    }
  }
  if (!it->status().ok()) return from_leveldb(it->status(), "read the store");
  leveldb::WriteOptions synced;
  synced.sync = true;
  s = out->Write(synced, &wb);
  if (!s.ok()) return from_leveldb(s, "write the copy");
  // Turns the copy's log into (compressed, immutable) table files: a
  // smaller checkpoint, whose files an install can hard-link.
  out->CompactRange(nullptr, nullptr);
  return {};  // `out` closes the copy
}

status leveldb_backend::install_checkpoint(const std::filesystem::path& checkpoint_dir,
                                           const std::filesystem::path& store_dir) {
  return detail::install_engine_checkpoint<engine_lock>(checkpoint_dir, store_dir, k_name,
                                                        immutable_file);
}

leveldb::DB* leveldb_backend::raw_db() {
  try {
    std::shared_lock life(life_mutex_);
    return engine_ ? engine_->db.get() : nullptr;
  } catch (...) {
    return nullptr;
  }
}

}  // namespace seshat
