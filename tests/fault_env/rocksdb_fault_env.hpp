// rocksdb_fault_env: a RocksDB environment over the real file system that
// tracks durability (durability_model.hpp) and injects disk faults
// (fault_plan.hpp). Give env() to open_options::environment.rocksdb.
//
// RocksDB 7 does its file I/O through env->GetFileSystem(), so this wraps
// the default rocksdb::FileSystem and builds the Env with NewCompositeEnv.
// What it sees:
//   - writable files (new, reopened, reused): appends, positioned appends
//     and truncations move the file's size; Sync and Fsync make it durable
//     (RangeSync and Close do not);
//   - FSDirectory::Fsync (and FsyncWithDirOptions) makes the directory's
//     entries durable; deletes, renames and hard links change entries;
//   - seshat's own directory fsyncs (outside the Env: the store's parents,
//     its marker) through seshat's fs_observer seam (seshat_seam.hpp);
//   - files written through NewRandomRWFile (RocksDB does not use them in
//     seshat's configuration) and the info LOG are not tracked.
// Faults: each of those calls asks the fault plan first and, when told,
// returns IOStatus::IOError or IOStatus::NoSpace without doing anything. A
// file sync (or RangeSync) that fails, injected or real, loses the bytes it
// would have made durable (durability_model::sync_failed).
//
// Ownership: owns the file system and the Env; must outlive every store
// opened with env(). Thread-safety: as RocksDB requires of an Env.
#pragma once

#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/io_status.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>

#include "fault_env/durability_model.hpp"
#include "fault_env/fault_plan.hpp"
#include "fault_env/seshat_seam.hpp"

namespace seshat::test {

namespace rocksdb_fault {

inline rocksdb::IOStatus injected(fault_error e, fault_op op, const std::string& file) {
  const std::string what = std::string(name_of(op)) + " of " + file;
  return e == fault_error::enospc ? rocksdb::IOStatus::NoSpace(what, message_of(e))
                                  : rocksdb::IOStatus::IOError(what, message_of(e));
}

struct shared {
  durability_model& model;
  fault_plan& plan;

  // The injected error for an operation of kind `op` on `file`, or OK.
  rocksdb::IOStatus check(fault_op op, const std::string& file) {
    if (auto e = plan.check(op, file)) return injected(*e, op, file);
    return rocksdb::IOStatus::OK();
  }
};

class writable_file final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  writable_file(std::unique_ptr<rocksdb::FSWritableFile> target, shared& s, std::string path,
                durability_model::file_id id)
      : FSWritableFileOwnerWrapper(std::move(target)), s_(s), path_(std::move(path)), id_(id) {}

  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           rocksdb::IODebugContext* dbg) override {
    if (auto e = s_.check(fault_op::write, path_); !e.ok()) return e;
    auto r = target()->Append(data, o, dbg);
    if (r.ok()) s_.model.appended(id_, data.size());
    return r;
  }
  rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                           const rocksdb::DataVerificationInfo& v,
                           rocksdb::IODebugContext* dbg) override {
    if (auto e = s_.check(fault_op::write, path_); !e.ok()) return e;
    auto r = target()->Append(data, o, v, dbg);
    if (r.ok()) s_.model.appended(id_, data.size());
    return r;
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, std::uint64_t offset,
                                     const rocksdb::IOOptions& o,
                                     rocksdb::IODebugContext* dbg) override {
    if (auto e = s_.check(fault_op::write, path_); !e.ok()) return e;
    auto r = target()->PositionedAppend(data, offset, o, dbg);
    if (r.ok()) s_.model.wrote_to(id_, offset + data.size());
    return r;
  }
  rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, std::uint64_t offset,
                                     const rocksdb::IOOptions& o,
                                     const rocksdb::DataVerificationInfo& v,
                                     rocksdb::IODebugContext* dbg) override {
    if (auto e = s_.check(fault_op::write, path_); !e.ok()) return e;
    auto r = target()->PositionedAppend(data, offset, o, v, dbg);
    if (r.ok()) s_.model.wrote_to(id_, offset + data.size());
    return r;
  }
  rocksdb::IOStatus Truncate(std::uint64_t size, const rocksdb::IOOptions& o,
                             rocksdb::IODebugContext* dbg) override {
    if (auto e = s_.check(fault_op::write, path_); !e.ok()) return e;
    auto r = target()->Truncate(size, o, dbg);
    if (r.ok()) s_.model.truncated(id_, size);
    return r;
  }
  rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    return sync([&] { return target()->Sync(o, dbg); });
  }
  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    return sync([&] { return target()->Fsync(o, dbg); });
  }
  // sync_file_range: starts write-back, promises nothing about a power loss.
  rocksdb::IOStatus RangeSync(std::uint64_t offset, std::uint64_t n, const rocksdb::IOOptions& o,
                              rocksdb::IODebugContext* dbg) override {
    const std::uint64_t size = s_.model.size_of(id_);
    rocksdb::IOStatus r = s_.check(fault_op::sync, path_);
    if (r.ok()) r = target()->RangeSync(offset, n, o, dbg);
    if (!r.ok()) s_.model.sync_failed(id_, std::min(size, offset + n), offset);
    return r;
  }

 private:
  template <class F>
  rocksdb::IOStatus sync(F&& f) {
    const std::uint64_t size = s_.model.size_of(id_);
    rocksdb::IOStatus r = s_.check(fault_op::sync, path_);
    if (r.ok()) r = f();
    if (r.ok())
      s_.model.synced(id_, size);
    else
      s_.model.sync_failed(id_, size);
    return r;
  }

  shared& s_;
  const std::string path_;
  const durability_model::file_id id_;
};

class directory final : public rocksdb::FSDirectoryWrapper {
 public:
  directory(std::unique_ptr<rocksdb::FSDirectory> target, shared& s, std::string path)
      : FSDirectoryWrapper(std::move(target)), s_(s), path_(std::move(path)) {}

  rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    if (auto e = s_.check(fault_op::sync, path_); !e.ok()) return e;
    auto r = FSDirectoryWrapper::Fsync(o, dbg);
    if (r.ok()) s_.model.directory_synced(path_);
    return r;
  }
  rocksdb::IOStatus FsyncWithDirOptions(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg,
                                        const rocksdb::DirFsyncOptions& d) override {
    if (auto e = s_.check(fault_op::sync, path_); !e.ok()) return e;
    auto r = FSDirectoryWrapper::FsyncWithDirOptions(o, dbg, d);
    if (r.ok()) s_.model.directory_synced(path_);
    return r;
  }

 private:
  shared& s_;
  const std::string path_;
};

class file_system final : public rocksdb::FileSystemWrapper {
 public:
  explicit file_system(shared& s) : FileSystemWrapper(rocksdb::FileSystem::Default()), s_(s) {}

  const char* Name() const override { return "SeshatFaultFileSystem"; }

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override {
    if (auto e = s_.check(fault_op::create, f); !e.ok()) return e;
    auto st = target()->NewWritableFile(f, o, r, dbg);
    if (st.ok()) wrap(f, s_.model.created(f), r);
    return st;
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* dbg) override {
    if (auto e = s_.check(fault_op::create, f); !e.ok()) return e;
    auto st = target()->ReopenWritableFile(f, o, r, dbg);
    if (st.ok()) wrap(f, s_.model.opened_for_append(f), r);
    return st;
  }
  // A recycled log: a rename, then a new file under the new name.
  rocksdb::IOStatus ReuseWritableFile(const std::string& f, const std::string& old,
                                      const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSWritableFile>* r,
                                      rocksdb::IODebugContext* dbg) override {
    auto st = RenameFile(old, f, o.io_options, dbg);
    if (!st.ok()) return st;
    return NewWritableFile(f, o, r, dbg);
  }
  rocksdb::IOStatus NewRandomRWFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSRandomRWFile>* r,
                                    rocksdb::IODebugContext* dbg) override {
    if (auto e = s_.check(fault_op::create, f); !e.ok()) return e;
    return target()->NewRandomRWFile(f, o, r, dbg);
  }
  rocksdb::IOStatus NewDirectory(const std::string& name, const rocksdb::IOOptions& o,
                                 std::unique_ptr<rocksdb::FSDirectory>* r,
                                 rocksdb::IODebugContext* dbg) override {
    auto st = target()->NewDirectory(name, o, r, dbg);
    if (st.ok()) *r = std::make_unique<directory>(std::move(*r), s_, name);
    return st;
  }
  rocksdb::IOStatus DeleteFile(const std::string& f, const rocksdb::IOOptions& o,
                               rocksdb::IODebugContext* dbg) override {
    if (auto e = s_.check(fault_op::metadata, f); !e.ok()) return e;
    s_.model.before_unlink(f);
    auto st = target()->DeleteFile(f, o, dbg);
    if (st.ok()) s_.model.removed(f);
    return st;
  }
  rocksdb::IOStatus RenameFile(const std::string& from, const std::string& to,
                               const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    if (auto e = s_.check(fault_op::metadata, from); !e.ok()) return e;
    s_.model.before_unlink(to);
    auto st = target()->RenameFile(from, to, o, dbg);
    if (st.ok()) s_.model.renamed(from, to);
    return st;
  }
  rocksdb::IOStatus LinkFile(const std::string& from, const std::string& to,
                             const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
    if (auto e = s_.check(fault_op::create, to); !e.ok()) return e;
    auto st = target()->LinkFile(from, to, o, dbg);
    if (st.ok()) s_.model.linked(from, to);
    return st;
  }
  rocksdb::IOStatus Truncate(const std::string& f, std::size_t size, const rocksdb::IOOptions& o,
                             rocksdb::IODebugContext* dbg) override {
    if (auto e = s_.check(fault_op::write, f); !e.ok()) return e;
    auto st = target()->Truncate(f, size, o, dbg);
    if (st.ok()) s_.model.truncated(f, size);
    return st;
  }
  rocksdb::IOStatus CreateDir(const std::string& d, const rocksdb::IOOptions& o,
                              rocksdb::IODebugContext* dbg) override {
    if (auto e = s_.check(fault_op::metadata, d); !e.ok()) return e;
    return target()->CreateDir(d, o, dbg);
  }
  rocksdb::IOStatus CreateDirIfMissing(const std::string& d, const rocksdb::IOOptions& o,
                                       rocksdb::IODebugContext* dbg) override {
    if (auto e = s_.check(fault_op::metadata, d); !e.ok()) return e;
    return target()->CreateDirIfMissing(d, o, dbg);
  }

 private:
  void wrap(const std::string& f, durability_model::file_id id,
            std::unique_ptr<rocksdb::FSWritableFile>* r) {
    *r = std::make_unique<writable_file>(std::move(*r), s_, f, id);
  }

  shared& s_;
};

}  // namespace rocksdb_fault

class rocksdb_fault_env {
 public:
  // `keep_dir`: scratch space on the stores' file system (durability_model).
  explicit rocksdb_fault_env(const std::filesystem::path& keep_dir)
      : model_(keep_dir),
        shared_{model_, plan_},
        fs_(std::make_shared<rocksdb_fault::file_system>(shared_)),
        env_(rocksdb::NewCompositeEnv(fs_)) {}
  rocksdb_fault_env(const rocksdb_fault_env&) = delete;
  rocksdb_fault_env& operator=(const rocksdb_fault_env&) = delete;

  rocksdb::Env* env() { return env_.get(); }
  fault_plan& faults() { return plan_; }
  durability_model& model() { return model_; }

  // REQUIRES: every store on env() is closed (or its writes were cut off by
  // faults().fail_all and it was closed).
  power_loss_report simulate_power_loss() { return model_.simulate_power_loss(); }

 private:
  durability_model model_;
  seshat_sync_feed seshat_syncs_{model_};  // seshat's own directory fsyncs
  fault_plan plan_;
  rocksdb_fault::shared shared_;
  std::shared_ptr<rocksdb_fault::file_system> fs_;
  std::unique_ptr<rocksdb::Env> env_;
};

}  // namespace seshat::test
