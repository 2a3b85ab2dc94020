// leveldb_fault_env: a LevelDB environment over the real file system that
// tracks durability (durability_model.hpp) and injects disk faults
// (fault_plan.hpp). Give env() to open_options::environment.leveldb.
//
// A leveldb::EnvWrapper over Env::Default(). What it sees: files opened for
// writing (NewWritableFile, NewAppendableFile), their appends and syncs
// (Close and Flush sync nothing), RemoveFile and RenameFile. LevelDB's Env
// has no directory sync: LevelDB 1.23 fsyncs the directory inside its own
// PosixWritableFile::Sync when the file is a MANIFEST (SyncDirIfManifest),
// and seshat's leveldb_backend fsyncs it directly after syncing older logs.
// The second reaches the model through seshat's fs_observer seam
// (seshat_seam.hpp), as every directory fsync of seshat's own does; a
// wrapper cannot see the first, so the model here adds:
//   - a synced MANIFEST-* file makes every entry of its directory durable
//     (what LevelDB's own sync does);
//   - any synced file makes its own directory entry durable (the backend's
//     direct directory fsync follows every sync of a log it makes, and
//     LevelDB syncs a table before the MANIFEST that names it).
// The second rule is weaker than a real disk for a synced file nobody
// fsynced the directory of; it cannot hide a lost log entry, since the
// backend syncs every log through this environment.
// Faults: each of those calls asks the fault plan first and, when told,
// returns Status::IOError without doing anything. A sync that fails
// (injected or real) loses the bytes it would have made durable
// (durability_model::sync_failed).
// hold_background() keeps LevelDB's background work (compactions, among
// them the one that retires an older log) queued until
// release_background(), so that a test can keep an older log in place.
//
// Ownership: must outlive every store opened with env(). Thread-safety: as
// LevelDB requires of an Env.
#pragma once

#include <leveldb/env.h>
#include <leveldb/status.h>

#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "fault_env/durability_model.hpp"
#include "fault_env/fault_plan.hpp"
#include "fault_env/seshat_seam.hpp"

namespace seshat::test {

namespace leveldb_fault {

struct shared {
  durability_model& model;
  fault_plan& plan;

  // The injected error for an operation of kind `op` on `file`, or OK.
  leveldb::Status check(fault_op op, const std::string& file) {
    if (auto e = plan.check(op, file))
      return leveldb::Status::IOError(std::string(name_of(op)) + " of " + file, message_of(*e));
    return leveldb::Status::OK();
  }
};

class writable_file final : public leveldb::WritableFile {
 public:
  writable_file(std::unique_ptr<leveldb::WritableFile> target, shared& s, std::string path,
                durability_model::file_id id)
      : target_(std::move(target)), s_(s), path_(std::move(path)), id_(id) {
    const std::string name = std::filesystem::path(path_).filename().string();
    manifest_ = name.rfind("MANIFEST-", 0) == 0;
  }

  leveldb::Status Append(const leveldb::Slice& data) override {
    if (auto e = s_.check(fault_op::write, path_); !e.ok()) return e;
    auto r = target_->Append(data);
    if (r.ok()) s_.model.appended(id_, data.size());
    return r;
  }
  leveldb::Status Close() override { return target_->Close(); }
  leveldb::Status Flush() override {
    if (auto e = s_.check(fault_op::write, path_); !e.ok()) return e;
    return target_->Flush();
  }
  leveldb::Status Sync() override {
    const std::uint64_t size = s_.model.size_of(id_);
    leveldb::Status r = s_.check(fault_op::sync, path_);
    if (r.ok()) r = target_->Sync();
    if (!r.ok()) {
      s_.model.sync_failed(id_, size);
      return r;
    }
    s_.model.synced(id_, size);
    s_.model.entry_synced(path_);
    if (manifest_) s_.model.directory_synced(std::filesystem::path(path_).parent_path());
    return r;
  }

 private:
  std::unique_ptr<leveldb::WritableFile> target_;
  shared& s_;
  const std::string path_;
  const durability_model::file_id id_;
  bool manifest_ = false;
};

class env final : public leveldb::EnvWrapper {
 public:
  explicit env(shared& s) : EnvWrapper(leveldb::Env::Default()), s_(s) {}

  leveldb::Status NewWritableFile(const std::string& f, leveldb::WritableFile** r) override {
    if (auto e = s_.check(fault_op::create, f); !e.ok()) return e;
    leveldb::WritableFile* raw = nullptr;
    auto st = target()->NewWritableFile(f, &raw);
    if (st.ok()) *r = wrap(f, s_.model.created(f), raw);
    return st;
  }
  leveldb::Status NewAppendableFile(const std::string& f, leveldb::WritableFile** r) override {
    if (auto e = s_.check(fault_op::create, f); !e.ok()) return e;
    leveldb::WritableFile* raw = nullptr;
    auto st = target()->NewAppendableFile(f, &raw);
    if (st.ok()) *r = wrap(f, s_.model.opened_for_append(f), raw);
    return st;
  }
  leveldb::Status RemoveFile(const std::string& f) override {
    if (auto e = s_.check(fault_op::metadata, f); !e.ok()) return e;
    s_.model.before_unlink(f);
    auto st = target()->RemoveFile(f);
    if (st.ok()) s_.model.removed(f);
    return st;
  }
  leveldb::Status RenameFile(const std::string& from, const std::string& to) override {
    if (auto e = s_.check(fault_op::metadata, from); !e.ok()) return e;
    s_.model.before_unlink(to);
    auto st = target()->RenameFile(from, to);
    if (st.ok()) s_.model.renamed(from, to);
    return st;
  }
  leveldb::Status CreateDir(const std::string& d) override {
    if (auto e = s_.check(fault_op::metadata, d); !e.ok()) return e;
    return target()->CreateDir(d);
  }
  void Schedule(void (*work)(void*), void* arg) override {
    {
      std::lock_guard lock(held_mu_);
      if (holding_) {
        held_.emplace_back(work, arg);
        return;
      }
    }
    target()->Schedule(work, arg);
  }

  // See leveldb_fault_env::hold_background.
  void hold_background() {
    std::lock_guard lock(held_mu_);
    holding_ = true;
  }
  void release_background() {
    std::vector<std::pair<void (*)(void*), void*>> run;
    {
      std::lock_guard lock(held_mu_);
      holding_ = false;
      run.swap(held_);
    }
    for (auto [work, arg] : run) target()->Schedule(work, arg);
  }

 private:
  leveldb::WritableFile* wrap(const std::string& f, durability_model::file_id id,
                              leveldb::WritableFile* raw) {
    return new writable_file(std::unique_ptr<leveldb::WritableFile>(raw), s_, f, id);
  }

  shared& s_;
  std::mutex held_mu_;
  bool holding_ = false;
  std::vector<std::pair<void (*)(void*), void*>> held_;  // queued while holding_
};

}  // namespace leveldb_fault

class leveldb_fault_env {
 public:
  // `keep_dir`: scratch space on the stores' file system (durability_model).
  explicit leveldb_fault_env(const std::filesystem::path& keep_dir)
      : model_(keep_dir), shared_{model_, plan_}, env_(shared_) {}
  leveldb_fault_env(const leveldb_fault_env&) = delete;
  leveldb_fault_env& operator=(const leveldb_fault_env&) = delete;

  leveldb::Env* env() { return &env_; }
  fault_plan& faults() { return plan_; }
  durability_model& model() { return model_; }

  // From now on LevelDB's background work waits (queued) until
  // release_background(). REQUIRES: released before a store on env() is
  // closed (closing waits for the work), and no write needs a compaction
  // meanwhile (a second full memtable waits for one: keep writes small).
  void hold_background() { env_.hold_background(); }
  void release_background() { env_.release_background(); }

  // REQUIRES: every store on env() is closed (or its writes were cut off by
  // faults().fail_all and it was closed).
  power_loss_report simulate_power_loss() { return model_.simulate_power_loss(); }

 private:
  durability_model model_;
  seshat_sync_feed seshat_syncs_{model_};  // seshat's own directory fsyncs
  fault_plan plan_;
  leveldb_fault::shared shared_;
  leveldb_fault::env env_;
};

}  // namespace seshat::test
