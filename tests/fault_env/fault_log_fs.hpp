// fault_log_fs: the log engine's file system (detail::log_fs) over the real
// one, tracking durability (durability_model.hpp) and injecting disk faults
// (fault_plan.hpp), as rocksdb_fault_env and leveldb_fault_env do for the
// KV engines. Give it to a store with open_options::environment.log_fs;
// with the same model and plan as the KV half's environment, one power loss
// and one fault plan apply to both halves of a segmented<B> store
// (backend_fault_env_of<segmented<B>>, docs/log-engine.md section 11).
//
// What it tells the model: a file created (open with create_exclusive) or
// opened; every pwrite and write_zeroes as an in-place write (the old bytes
// of each sector first; dsync writes durable on return); allocate as a size
// change; fdatasync as a sync of the file (its size, and the sectors written
// before it; a failed one loses them); sync_directory as the directory's
// entries made durable; rename, link and unlink as entry changes.
// Faults, by fault_plan kind, asked before the call (when told, the call
// returns io-error naming it, the path and the injected errno text, with
// that errno, and does nothing):
//   write     pwrite, allocate, write_zeroes
//   sync      datasync, sync_directory
//   create    open for writing (created or existing), link
//   metadata  rename (and replace), unlink, create_directory
// Reads (pread, size, link_count, list) and close are never failed.
// fail_next(call, error) fails the next call of one exact kind (an
// allocate, not any write), for tests of each engine step, optionally only
// a call on a file whose name holds a given part ("prep-": the
// preparation of a segment); it fires before the plan is asked, and counts
// in the plan's injected(). cut_power_at(call, ...) picks a call the same
// way and cuts the power (durability_model::cut_power) just before it
// runs: a power loss at that step.
//
// Ownership: must outlive every store opened with it; the model and plan
// it is given must outlive it. Thread-safety: as log_fs (one mutex for its
// handle table; the model and plan lock themselves).
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "fault_env/durability_model.hpp"
#include "fault_env/fault_plan.hpp"
#include "seshat/detail/log_fs.hpp"

namespace seshat::test {

class fault_log_fs final : public detail::log_fs {
 public:
  // The calls fail_next can single out.
  enum class call { open_write, pwrite, allocate, write_zeroes, datasync, sync_directory, rename, link, unlink, create_directory };

  fault_log_fs(durability_model& model, fault_plan& plan) : model_(model), plan_(plan) {}
  fault_log_fs(const fault_log_fs&) = delete;
  fault_log_fs& operator=(const fault_log_fs&) = delete;

  // The `nth` call of kind `c` from now (1: the next) fails with `e`, once;
  // with `name_part`, only calls on a path whose file name holds it count
  // (rename and link: either name). Replaces an earlier fail_next.
  void fail_next(call c, fault_error e, std::uint64_t nth = 1, std::string name_part = {}) {
    std::lock_guard lock(mu_);
    next_ = armed{c, nth, e, std::move(name_part), {}};
  }
  // At the call fail_next(c, ..., nth, name_part) would fail: calls
  // `before` (e.g. to stop acknowledging), then cuts the power, then runs
  // the call (it and every later call land, but nothing becomes durable
  // any more), once. Replaces an earlier fail_next or cut_power_at.
  void cut_power_at(call c, std::function<void()> before, std::uint64_t nth = 1,
                    std::string name_part = {}) {
    std::lock_guard lock(mu_);
    next_ = armed{c, nth, fault_error::eio, std::move(name_part), std::move(before)};
  }
  // True while a fail_next is armed and has not fired.
  bool pending() const {
    std::lock_guard lock(mu_);
    return next_.has_value();
  }
  // How many calls of kind `c` were made (failed ones included).
  std::uint64_t calls(call c) const {
    std::lock_guard lock(mu_);
    auto it = counts_.find(c);
    return it == counts_.end() ? 0 : it->second;
  }

  detail::fs_result<detail::log_file> open(const std::filesystem::path& path,
                                           detail::open_flags flags) override {
    if (!flags.read_only)
      if (auto e = fault(call::open_write, fault_op::create, "open", path)) return *e;
    auto f = real_.open(path, flags);
    if (!f.ok() || flags.read_only) return f;
    const durability_model::file_id id =
        flags.create_exclusive ? model_.created(path) : model_.opened_for_append(path);
    std::lock_guard lock(mu_);
    ids_[f->fd] = id;
    return f;
  }

  detail::fs_status pwrite(const detail::log_file& f, std::uint64_t offset,
                           std::span<const std::string_view> pieces,
                           detail::write_flags flags) override {
    std::uint64_t total = 0;
    for (std::string_view p : pieces) total += p.size();
    const char* name = flags.dsync ? "pwritev2 (RWF_DSYNC)" : "pwritev2";
    if (auto e = fault(call::pwrite, fault_op::write, name, f.path, detail::byte_range(offset, total)))
      return *e;
    const auto id = id_of(f);
    if (id) model_.writing_in_place(*id, offset, total, reader(f));
    detail::fs_status s = real_.pwrite(f, offset, pieces, flags);
    if (s.ok() && id) model_.wrote_in_place(*id, offset, total, flags.dsync);
    return s;
  }

  detail::fs_result<std::size_t> pread(const detail::log_file& f, std::uint64_t offset,
                                       std::span<char> buffer) override {
    return real_.pread(f, offset, buffer);
  }

  detail::fs_status datasync(const detail::log_file& f) override {
    const auto id = id_of(f);
    const auto start = id ? model_.starting_sync(*id) : durability_model::sync_start{};
    detail::fs_status s;
    if (auto e = fault(call::datasync, fault_op::sync, "fdatasync", f.path))
      s = *e;
    else
      s = real_.datasync(f);
    if (id) model_.sync_finished(*id, start, s.ok());
    return s;
  }

  detail::fs_status allocate(const detail::log_file& f, std::uint64_t size) override {
    if (auto e = fault(call::allocate, fault_op::write, "fallocate", f.path, detail::byte_range(0, size)))
      return *e;
    detail::fs_status s = real_.allocate(f, size);
    if (s.ok())
      if (const auto id = id_of(f)) model_.allocated(*id, size);
    return s;
  }

  detail::fs_result<bool> write_zeroes(const detail::log_file& f, std::uint64_t offset,
                                       std::uint64_t length) override {
    if (auto e = fault(call::write_zeroes, fault_op::write, "fallocate (FALLOC_FL_WRITE_ZEROES)", f.path,
                       detail::byte_range(offset, length)))
      return *e;
    const auto id = id_of(f);
    if (id) model_.writing_in_place(*id, offset, length, reader(f));
    auto r = real_.write_zeroes(f, offset, length);
    if (r.ok() && *r && id) model_.wrote_in_place(*id, offset, length, false);
    return r;
  }

  detail::fs_result<std::uint64_t> size(const detail::log_file& f) override { return real_.size(f); }
  detail::fs_result<std::uint64_t> link_count(const detail::log_file& f) override {
    return real_.link_count(f);
  }

  detail::fs_status close(const detail::log_file& f) override {
    {
      std::lock_guard lock(mu_);
      ids_.erase(f.fd);
    }
    return real_.close(f);
  }

  detail::fs_status create_directory(const std::filesystem::path& path) override {
    if (auto e = fault(call::create_directory, fault_op::metadata, "mkdir", path)) return *e;
    return real_.create_directory(path);
  }

  detail::fs_status rename(const std::filesystem::path& from, const std::filesystem::path& to) override {
    if (auto e = fault(call::rename, fault_op::metadata, "rename " + from.string() + " to", to, {}, &from))
      return *e;
    model_.before_unlink(to);
    detail::fs_status s = real_.rename(from, to);
    if (s.ok()) model_.renamed(from, to);
    return s;
  }

  detail::fs_status replace(const std::filesystem::path& from, const std::filesystem::path& to) override {
    if (auto e = fault(call::rename, fault_op::metadata, "rename " + from.string() + " over", to, {}, &from))
      return *e;
    model_.before_unlink(to);
    detail::fs_status s = real_.replace(from, to);
    if (s.ok()) model_.renamed(from, to);
    return s;
  }

  detail::fs_status link(const std::filesystem::path& from, const std::filesystem::path& to) override {
    if (auto e = fault(call::link, fault_op::create, "link " + from.string() + " to", to, {}, &from))
      return *e;
    detail::fs_status s = real_.link(from, to);
    if (s.ok()) model_.linked(from, to);
    return s;
  }

  detail::fs_status unlink(const std::filesystem::path& path) override {
    if (auto e = fault(call::unlink, fault_op::metadata, "unlink", path)) return *e;
    model_.before_unlink(path);
    detail::fs_status s = real_.unlink(path);
    if (s.ok()) model_.removed(path);
    return s;
  }

  detail::fs_status sync_directory(const std::filesystem::path& path) override {
    if (auto e = fault(call::sync_directory, fault_op::sync, "fsync directory", path)) return *e;
    detail::fs_status s = real_.sync_directory(path);
    if (s.ok()) model_.directory_synced(path);
    return s;
  }

  detail::fs_result<std::vector<std::string>> list(const std::filesystem::path& directory) override {
    return real_.list(directory);
  }

 private:
  struct armed {
    call what;
    std::uint64_t left;
    fault_error error;
    std::string name_part;  // empty: any path
    std::function<void()> cut;  // cut_power_at: called, then the power cut, instead of failing

    bool covers(call c, const std::filesystem::path& path, const std::filesystem::path* other) const {
      auto holds = [&](const std::filesystem::path& p) {
        return p.filename().string().find(name_part) != std::string::npos;
      };
      return what == c && (name_part.empty() || holds(path) || (other && holds(*other)));
    }
  };

  // The injected failure of call `c` (plan kind `op`) on `path` (and
  // `other`: a rename's or link's source), if one is due: an io-error as
  // the OS's would read, with the injected errno's text.
  std::optional<detail::fs_status> fault(call c, fault_op op, std::string_view name,
                                         const std::filesystem::path& path, std::string_view where = {},
                                         const std::filesystem::path* other = nullptr) {
    std::optional<fault_error> e;
    std::function<void()> cut;
    {
      std::lock_guard lock(mu_);
      ++counts_[c];
      if (next_ && next_->covers(c, path, other) && --next_->left == 0) {
        if (next_->cut)
          cut = std::move(next_->cut);
        else
          e = next_->error;
        next_.reset();
      }
    }
    if (cut) {
      cut();
      model_.cut_power();
      return std::nullopt;
    }
    if (e)
      plan_.note_injected();
    else
      e = plan_.check(op, path.string());
    if (!e) return std::nullopt;
    return detail::fs_status(status::io_error(std::string(name) + " " + path.string() + std::string(where) +
                                              ": " + message_of(*e)),
                             *e == fault_error::enospc ? ENOSPC : EIO);
  }

  std::optional<durability_model::file_id> id_of(const detail::log_file& f) const {
    std::lock_guard lock(mu_);
    auto it = ids_.find(f.fd);
    if (it == ids_.end()) return std::nullopt;
    return it->second;
  }

  // Reads a sector of `f` from the real file (zeros past its end). An
  // O_DIRECT descriptor (the log engine's direct mode) reads the aligned
  // 4096 bytes holding the sector into an aligned buffer: an unaligned read
  // would be refused (EINVAL), and the old bytes taken for zeros.
  durability_model::sector_reader reader(const detail::log_file& f) {
    return [this, f](std::uint64_t offset, char* out) {
      std::memset(out, 0, durability_sector);
      if (!f.direct) {
        (void)real_.pread(f, offset, std::span<char>(out, durability_sector));
        return;
      }
      constexpr std::size_t k_block = 4096;
      void* raw = nullptr;
      if (::posix_memalign(&raw, k_block, k_block) != 0) return;
      std::unique_ptr<void, decltype(&std::free)> block(raw, &std::free);
      const std::uint64_t start = offset / k_block * k_block;
      auto n = real_.pread(f, start, std::span<char>(static_cast<char*>(raw), k_block));
      if (!n.ok() || *n <= offset - start) return;
      std::memcpy(out, static_cast<char*>(raw) + (offset - start),
                  std::min<std::size_t>(durability_sector, *n - (offset - start)));
    };
  }

  durability_model& model_;
  fault_plan& plan_;
  detail::posix_log_fs real_;
  mutable std::mutex mu_;
  std::map<int, durability_model::file_id> ids_;  // open descriptors written through
  std::optional<armed> next_;
  std::map<call, std::uint64_t> counts_;
};

}  // namespace seshat::test
