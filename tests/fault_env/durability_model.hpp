// durability_model: what of a set of directories would survive a power loss,
// given the file operations an environment saw; and the simulation of that
// power loss on the real files.
//
// The model (the usual POSIX reading, as in LevelDB's FaultInjectionTestEnv,
// plus what Linux does when write-back fails):
//   - a file's bytes are durable up to the size it had at its last sync
//     (fsync or fdatasync); closing a file syncs nothing;
//   - a sync that fails loses the bytes it would have made durable, for
//     good: Linux drops the dirty pages whose write-back failed and marks
//     them clean, so a later sync of the file succeeds without them
//     (PostgreSQL's "fsyncgate", 2018). Those bytes read back as zeros
//     after a power loss when a later sync made the file longer, and are
//     cut off with the tail otherwise; only bytes written after the failure
//     can become durable. A failed directory sync makes nothing durable and
//     loses nothing already durable;
//   - writes in place (fault_log_fs, the log engine's file system: files
//     written at offsets, over bytes already there): a write records, per
//     512-byte sector it touches, the bytes the disk holds for that sector
//     (the old bytes: read from the file before the first unsynced write to
//     it). The sector is unsynced until an fdatasync of the file that
//     started after the write succeeds, or the write itself carried dsync
//     (then its sectors alone, and the file's size, are durable). A sync
//     that fails turns the file's unsynced sectors lost: they come back as
//     their old bytes after a power loss, whatever later syncs do, unless a
//     later write dirties the sector again. A file's size (grown by
//     allocate or a write) is durable after a successful sync;
//   - a directory entry (a file created, renamed, hard-linked or deleted) is
//     durable once its directory is synced, or once the environment reports
//     the entry durable by other means (entry_synced, see leveldb_fault_env);
//   - a power loss keeps exactly what is durable: every directory goes back
//     to its entries as of its last sync, each file to its synced size;
//     each unsynced sector below that size holds, at random, its new bytes
//     or its old ones (a torn write, 512 bytes at a time; seeded by
//     SESHAT_TEAR_SEED, or at random: tear_seed() says which), each lost
//     sector its old ones. A write after cut_power() never lands: its
//     sector holds its old bytes or, if written before the cut too, the
//     bytes it held at the cut.
// Files the environment never saw written (the store marker, LevelDB's LOG,
// files present before the environment first touched them) count as durable
// as they are when first touched, and are otherwise left alone.
//
// cut_power() marks the moment the power goes: the process runs on (its
// writes reach the files, its syncs return success) but nothing becomes
// durable any more, as for a machine whose disk lost power first. So a
// test can cut the power under a running store, close it, and then
// simulate the loss.
//
// simulate_power_loss() applies that to the real directories: truncates every
// file to its synced size, zeroes the bytes of its failed syncs within it,
// deletes every file whose directory entry is not durable, and puts back
// files whose deletion or rename was not durable (a deleted file's bytes are
// kept meanwhile by a hard link in `keep_dir`, which must be on the same
// file system). REQUIRES: nobody has the files open (the store is closed, or
// was abandoned after its writes were cut off).
//
// Directories are tracked under the roots a test names (watch_directories):
// the directories there at that moment count as durable; one that appears
// later is durable once its parent directory is synced while it exists
// (directory_synced lists the real parent, so the model needs no report of
// the mkdir itself, only of the syncs: the engines' through their Env, and
// seshat's own through the fs_observer seam, see seshat_seam.hpp). A power
// loss deletes every tracked directory that is not durable, with everything
// in it. A renamed directory takes its contents along (directory_renamed);
// its new name needs a sync of its parent, and a power loss deletes it
// rather than putting it back under its old name. Deletions of directories
// are not modelled (a deleted one stays deleted), nor are directories
// outside the watched roots: they stay as they are.
//
// Thread-safety: every member may be called from any thread (one mutex).
// The notification members never throw (a failure to keep a deleted file is
// recorded in error()); simulate_power_loss throws std::runtime_error when a
// file operation fails.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace seshat::test {

// The unit a power loss tears an in-place write by.
inline constexpr std::uint64_t durability_sector = 512;

// What one simulated power loss changed.
struct power_loss_report {
  std::uint64_t bytes_truncated = 0;  // unsynced tails cut off files that stay
  std::uint64_t bytes_zeroed = 0;     // bytes of failed syncs inside files that stay
  std::uint64_t files_removed = 0;    // files whose creation was not durable
  std::uint64_t bytes_removed = 0;    // their sizes
  std::uint64_t files_restored = 0;   // deletions and renames undone
  std::uint64_t directories_removed = 0;  // watched directories whose creation was not durable
  std::uint64_t sectors_torn = 0;     // unsynced sectors written in place that came back old
  std::uint64_t sectors_kept = 0;     // unsynced sectors written in place that came back new
  std::uint64_t sectors_lost = 0;     // sectors of failed syncs that came back old
  std::uint64_t bytes_dropped() const {
    return bytes_truncated + bytes_zeroed + bytes_removed +
           (sectors_torn + sectors_lost) * durability_sector;
  }
};

class durability_model {
 public:
  using file_id = std::uint64_t;

  explicit durability_model(std::filesystem::path keep_dir)
      : keep_(std::move(keep_dir)), tear_seed_(seed_from_environment()), tear_rng_(tear_seed_) {
    std::filesystem::create_directories(keep_);
  }

  // The seed of the torn-sector choices (SESHAT_TEAR_SEED replays it).
  std::uint64_t tear_seed() const { return tear_seed_; }
  durability_model(const durability_model&) = delete;
  durability_model& operator=(const durability_model&) = delete;

  // ---- notifications from an environment, after the operation succeeded --

  // `p` was opened for writing with truncation (a new file, or an existing
  // one emptied in place).
  file_id created(const std::filesystem::path& p) {
    std::lock_guard lock(mu_);
    const name n = split(p);
    know(n);
    if (auto id = live_id(n)) {
      files_[*id].size = 0;
      files_[*id].synced = 0;
      files_[*id].lost.clear();
      files_[*id].unsynced.clear();
      files_[*id].lost_sectors.clear();
      return *id;
    }
    const file_id id = next_id_++;
    files_[id] = {};
    live_[n.dir][n.file] = id;
    return id;
  }

  // `p` was opened for appending (created when missing).
  file_id opened_for_append(const std::filesystem::path& p) {
    std::lock_guard lock(mu_);
    const name n = split(p);
    know(n);
    if (auto id = live_id(n)) return *id;
    const file_id id = next_id_++;
    files_[id] = {};
    live_[n.dir][n.file] = id;
    return id;
  }

  void appended(file_id id, std::uint64_t bytes) {
    std::lock_guard lock(mu_);
    files_[id].size += bytes;
  }
  // Bytes were written ending at offset `end`.
  void wrote_to(file_id id, std::uint64_t end) {
    std::lock_guard lock(mu_);
    if (files_[id].size < end) files_[id].size = end;
  }
  void truncated(file_id id, std::uint64_t size) {
    std::lock_guard lock(mu_);
    files_[id].truncate(size);
  }
  void truncated(const std::filesystem::path& p, std::uint64_t size) {
    std::lock_guard lock(mu_);
    const name n = split(p);
    know(n);
    if (auto id = live_id(n)) files_[*id].truncate(size);
  }

  // The bytes written so far: what a sync starting now makes durable.
  std::uint64_t size_of(file_id id) {
    std::lock_guard lock(mu_);
    return files_[id].size;
  }

  // A sync that started when the file held `size` bytes succeeded: they are
  // durable (bytes appended while it ran may not be).
  void synced(file_id id, std::uint64_t size) {
    std::lock_guard lock(mu_);
    if (cut_) return;
    file& f = files_[id];
    f.synced = std::max(f.synced, std::min(size, f.size));
  }

  // A sync that started when the file held `size` bytes failed: the bytes
  // it would have made durable are lost, whatever follows (see the model).
  // A failed sync_file_range loses `[from, size)` only: pass its start.
  void sync_failed(file_id id, std::uint64_t size, std::uint64_t from = 0) {
    std::lock_guard lock(mu_);
    file& f = files_[id];
    const std::uint64_t begin = std::max(from, f.synced), end = std::min(size, f.size);
    if (begin < end) f.lose(begin, end);
  }

  // ---- in-place writes (fault_log_fs) ---------------------------------------

  // Reads `durability_sector` bytes of the file at byte `offset` into `out`
  // (zeros past its end).
  using sector_reader = std::function<void(std::uint64_t offset, char* out)>;

  // BEFORE bytes [offset, offset + length) of `id` are written in place:
  // records the old bytes of each sector they touch that holds no unsynced
  // write yet (read with `read`).
  void writing_in_place(file_id id, std::uint64_t offset, std::uint64_t length,
                        const sector_reader& read) {
    std::lock_guard lock(mu_);
    if (length == 0) return;
    file& f = files_[id];
    ++f.generation;
    for (std::uint64_t s = offset / durability_sector; s <= (offset + length - 1) / durability_sector;
         ++s) {
      if (auto it = f.unsynced.find(s); it != f.unsynced.end()) {
        it->second.generation = f.generation;
        if (cut_ && !it->second.at_cut) {  // what the disk may hold: the bytes before the cut
          it->second.at_cut.emplace(durability_sector, '\0');
          read(s * durability_sector, it->second.at_cut->data());
        }
        continue;
      }
      std::string old(durability_sector, '\0');
      if (auto it = f.lost_sectors.find(s); it != f.lost_sectors.end()) {  // dirty again
        old = std::move(it->second);
        f.lost_sectors.erase(it);
      } else {
        read(s * durability_sector, old.data());
      }
      std::optional<std::string> at_cut;
      if (cut_) at_cut = old;  // the write never reaches the disk
      f.unsynced[s] = {std::move(old), f.generation, std::move(at_cut)};
    }
  }

  // The in-place write of [offset, offset + length) succeeded (`dsync`: it
  // carried RWF_DSYNC, so its sectors and the file's size are durable).
  void wrote_in_place(file_id id, std::uint64_t offset, std::uint64_t length, bool dsync) {
    std::lock_guard lock(mu_);
    file& f = files_[id];
    f.size = std::max(f.size, offset + length);
    if (!dsync || cut_ || length == 0) return;
    for (std::uint64_t s = offset / durability_sector; s <= (offset + length - 1) / durability_sector;
         ++s)
      f.unsynced.erase(s);
    f.synced = std::max(f.synced, f.size);
  }

  // The file was made at least `size` bytes long (fallocate).
  void allocated(file_id id, std::uint64_t size) {
    std::lock_guard lock(mu_);
    files_[id].size = std::max(files_[id].size, size);
  }

  // What an fdatasync starting now covers: pass it to sync_finished.
  struct sync_start {
    std::uint64_t size = 0;
    std::uint64_t generation = 0;
  };
  sync_start starting_sync(file_id id) {
    std::lock_guard lock(mu_);
    return {files_[id].size, files_[id].generation};
  }

  // The fdatasync that started at `start` succeeded (`ok`): the file's size
  // then and the sectors written before it are durable; or failed: those
  // sectors are lost (their old bytes come back at a power loss).
  void sync_finished(file_id id, sync_start start, bool ok) {
    std::lock_guard lock(mu_);
    file& f = files_[id];
    if (ok && cut_) return;
    for (auto it = f.unsynced.begin(); it != f.unsynced.end();) {
      if (it->second.generation > start.generation) {
        ++it;
        continue;
      }
      if (!ok) f.lost_sectors[it->first] = std::move(it->second.old);
      it = f.unsynced.erase(it);
    }
    if (ok) f.synced = std::max(f.synced, std::min(start.size, f.size));
  }

  // The directory entry of `p` (whatever file it names now) is durable.
  void entry_synced(const std::filesystem::path& p) {
    std::lock_guard lock(mu_);
    if (cut_) return;
    const name n = split(p);
    know(n);
    if (auto id = live_id(n)) durable_[n.dir][n.file] = *id;
  }

  // Every entry of `dir` is durable as it is now: its files, and its
  // subdirectories when it lies in a watched root.
  void directory_synced(const std::filesystem::path& dir) {
    std::lock_guard lock(mu_);
    if (cut_) return;
    const std::filesystem::path d = normal(dir);
    durable_[d] = live_[d];
    drop_unneeded_keeps();
    if (!watched(canonical(dir))) return;
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator(dir, ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
      if (it->symlink_status(ec).type() == std::filesystem::file_type::directory)
        durable_dirs_.insert(canonical(it->path()));
  }

  // The directory `from` was renamed to `to` (`exchanged`: the two swapped):
  // what is under it, and how durable, moves with it. The new name itself
  // is durable once its parent is synced; an exchange keeps both names as
  // durable as they were (a simplification: a power loss does not undo it).
  void directory_renamed(const std::filesystem::path& from, const std::filesystem::path& to,
                         bool exchanged) {
    std::lock_guard lock(mu_);
    rename_directory(from, to, exchanged);
  }

  // Tracks the directories under `root` from now on (see the header
  // comment); those there now count as durable.
  void watch_directories(const std::filesystem::path& root) {
    std::lock_guard lock(mu_);
    roots_.push_back(canonical(root));
    for (const auto& d : directories_under(roots_.back())) durable_dirs_.insert(d);
  }

  // Call BEFORE deleting `p` or renaming onto it: keeps the file's bytes
  // when its name is durable, so a power loss can bring it back.
  void before_unlink(const std::filesystem::path& p) {
    std::lock_guard lock(mu_);
    const name n = split(p);
    know(n);
    if (auto id = live_id(n); id && durably_named(*id)) keep(*id, n);
  }

  void removed(const std::filesystem::path& p) {
    std::lock_guard lock(mu_);
    const name n = split(p);
    live_[n.dir].erase(n.file);
  }

  // REQUIRES: before_unlink(to) was called before the rename.
  // A directory's rename is directory_renamed's.
  void renamed(const std::filesystem::path& from, const std::filesystem::path& to) {
    std::lock_guard lock(mu_);
    std::error_code ec;
    if (std::filesystem::is_directory(to, ec)) return rename_directory(from, to, false);
    const name f = split(from), t = split(to);
    know(f);
    auto id = live_id(f);
    live_[f.dir].erase(f.file);
    if (id)
      live_[t.dir][t.file] = *id;
    else
      live_[t.dir].erase(t.file);
  }

  void linked(const std::filesystem::path& from, const std::filesystem::path& to) {
    std::lock_guard lock(mu_);
    const name f = split(from), t = split(to);
    know(f);
    if (auto id = live_id(f)) live_[t.dir][t.file] = *id;
  }

  // ---- the test's side ----------------------------------------------------

  // From now on nothing becomes durable, until simulate_power_loss().
  void cut_power() {
    std::lock_guard lock(mu_);
    cut_ = true;
  }

  // Applies a power loss to the real files (see the header comment) and
  // makes the model agree: afterwards everything is durable as it is.
  power_loss_report simulate_power_loss() {
    namespace fs = std::filesystem;
    std::lock_guard lock(mu_);
    power_loss_report r;
    // 0. Delete every tracked directory whose entry is not durable, whole,
    // and forget the files in it.
    for (const fs::path& root : roots_)
      for (const fs::path& d : directories_under(root)) {
        if (durable_dirs_.count(d) || !fs::exists(d)) continue;  // kept, or inside one deleted
        for (auto it = fs::recursive_directory_iterator(d);
             it != fs::recursive_directory_iterator(); ++it)
          if (it->is_regular_file()) {
            ++r.files_removed;
            r.bytes_removed += it->file_size();
          }
        fs::remove_all(d);
        ++r.directories_removed;
        for (auto* m : {&live_, &durable_})
          for (auto it = m->begin(); it != m->end();)
            it = within(canonical(it->first), d) ? m->erase(it) : std::next(it);
      }
    for (const fs::path& root : roots_)
      for (const auto& d : directories_under(root)) durable_dirs_.insert(d);
    std::set<fs::path> dirs;
    for (const auto& [d, m] : live_) dirs.insert(d);
    for (const auto& [d, m] : durable_) dirs.insert(d);
    auto mismatched = [&](const fs::path& d, const std::string& f, file_id id) {
      auto it = live_[d].find(f);
      return it == live_[d].end() || it->second != id;
    };
    // 1. Keep every durable file that is not in place under its name.
    for (const fs::path& d : dirs)
      for (const auto& [f, id] : durable_[d])
        if (mismatched(d, f, id) && !files_[id].kept) {
          if (auto where = live_path(id)) keep(id, split(*where));
          if (!files_[id].kept)
            throw std::runtime_error("simulate_power_loss: the bytes of " + (d / f).string() +
                                     " were not kept: " + error_);
        }
    // 2. Remove every name that is not durable as it is.
    for (const fs::path& d : dirs)
      for (const auto& [f, id] : live_[d]) {
        auto it = durable_[d].find(f);
        if (it != durable_[d].end() && it->second == id) continue;
        std::error_code ec;
        const std::uintmax_t size = fs::file_size(d / f, ec);
        if (ec) continue;  // changed outside the environment: left alone
        fs::remove(d / f);
        ++r.files_removed;
        r.bytes_removed += size;
      }
    // 3. Put back the durable names, 4. cut every file to its synced size,
    // 5. tear its unsynced sectors, put back its lost ones (once a file).
    std::set<file_id> torn;
    for (const fs::path& d : dirs)
      for (const auto& [f, id] : durable_[d]) {
        if (mismatched(d, f, id)) {
          fs::create_hard_link(keep_path(id), d / f);
          ++r.files_restored;
        }
        std::error_code ec;
        const std::uintmax_t size = fs::file_size(d / f, ec);
        if (ec) continue;
        if (size > files_[id].synced) {
          fs::resize_file(d / f, files_[id].synced);
          r.bytes_truncated += size - files_[id].synced;
        }
        r.bytes_zeroed += zero_lost(d / f, files_[id]);
        if (torn.insert(id).second) tear(d / f, files_[id], r);
      }
    // The survivors are the new durable state.
    live_ = durable_;
    std::map<file_id, file> survivors;
    for (const auto& [d, m] : durable_)
      for (const auto& [f, id] : m)
        survivors[id] = file{files_[id].synced, files_[id].synced, false, {}, {}, {}, 0};
    files_ = std::move(survivors);
    fs::remove_all(keep_);
    fs::create_directories(keep_);
    cut_ = false;
    return r;
  }

  // The first failure to keep a deleted file's bytes, or empty.
  std::string error() const {
    std::lock_guard lock(mu_);
    return error_;
  }

 private:
  struct name {
    std::filesystem::path dir;
    std::string file;
  };
  struct file {
    std::uint64_t size = 0;    // bytes written
    std::uint64_t synced = 0;  // bytes durable, but for `lost`
    bool kept = false;         // a hard link in keep_ holds its bytes
    // [begin, end) byte ranges of failed syncs: never durable.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> lost;
    // In-place writes: sector number -> the old bytes the disk holds for
    // it, and the write generation that last dirtied it.
    struct dirty_sector {
      std::string old;
      std::uint64_t generation = 0;
      // Written again after cut_power(): the bytes it held at the cut (the
      // newest the disk can hold; the old bytes when first written after it).
      std::optional<std::string> at_cut;
    };
    std::map<std::uint64_t, dirty_sector> unsynced;
    std::map<std::uint64_t, std::string> lost_sectors;  // failed syncs: old bytes, for good
    std::uint64_t generation = 0;                       // of the last in-place write

    // Adds [begin, end) to `lost`, kept sorted and disjoint.
    void lose(std::uint64_t begin, std::uint64_t end) {
      lost.emplace_back(begin, end);
      std::sort(lost.begin(), lost.end());
      std::vector<std::pair<std::uint64_t, std::uint64_t>> merged;
      for (const auto& r : lost) {
        if (!merged.empty() && r.first <= merged.back().second)
          merged.back().second = std::max(merged.back().second, r.second);
        else
          merged.push_back(r);
      }
      lost = std::move(merged);
    }
    void truncate(std::uint64_t to) {
      size = to;
      const std::uint64_t first_gone = (to + durability_sector - 1) / durability_sector;
      unsynced.erase(unsynced.lower_bound(first_gone), unsynced.end());
      lost_sectors.erase(lost_sectors.lower_bound(first_gone), lost_sectors.end());
      if (synced > to) synced = to;
      for (auto& [begin, end] : lost) end = std::min(end, to);
      std::erase_if(lost, [](const auto& r) { return r.first >= r.second; });
    }
  };

  // Puts back, in the file at `p` (cut to f.synced already), the old bytes
  // of every lost sector and of each unsynced sector the tear picks.
  void tear(const std::filesystem::path& p, const file& f, power_loss_report& r) {
    if (f.unsynced.empty() && f.lost_sectors.empty()) return;
    std::fstream out(p, std::ios::in | std::ios::out | std::ios::binary);
    auto put_back = [&](std::uint64_t sector, const std::string& old) {
      const std::uint64_t at = sector * durability_sector;
      if (at >= f.synced) return false;
      const std::uint64_t n = std::min<std::uint64_t>(durability_sector, f.synced - at);
      out.seekp(static_cast<std::streamoff>(at));
      out.write(old.data(), static_cast<std::streamsize>(n));
      return true;
    };
    for (const auto& [sector, d] : f.unsynced) {
      if (sector * durability_sector >= f.synced) continue;
      if (tear_rng_() % 2 == 0 && (!d.at_cut || *d.at_cut != d.old)) {
        if (d.at_cut) put_back(sector, *d.at_cut);
        ++r.sectors_kept;
      } else if (put_back(sector, d.old)) {
        ++r.sectors_torn;
      }
    }
    for (const auto& [sector, old] : f.lost_sectors)
      if (put_back(sector, old)) ++r.sectors_lost;
    out.flush();
    if (!out)
      throw std::runtime_error("simulate_power_loss: cannot put back the old sectors of " +
                               p.string());
  }

  static std::uint64_t seed_from_environment() {
    if (const char* v = std::getenv("SESHAT_TEAR_SEED")) return std::strtoull(v, nullptr, 10);
    return std::random_device{}();
  }

  // Overwrites with zeros the lost ranges of `f` below its synced size (the
  // file at `p` is cut to that size already). Returns the bytes zeroed.
  static std::uint64_t zero_lost(const std::filesystem::path& p, const file& f) {
    std::uint64_t zeroed = 0;
    for (const auto& [begin, end] : f.lost) {
      const std::uint64_t stop = std::min(end, f.synced);
      if (begin >= stop) continue;
      std::fstream out(p, std::ios::in | std::ios::out | std::ios::binary);
      out.seekp(static_cast<std::streamoff>(begin));
      const std::string zeros(static_cast<std::size_t>(stop - begin), '\0');
      out.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
      out.flush();
      if (!out)
        throw std::runtime_error("simulate_power_loss: cannot zero the lost bytes of " +
                                 p.string());
      zeroed += stop - begin;
    }
    return zeroed;
  }

  static std::filesystem::path normal(const std::filesystem::path& p) {
    return std::filesystem::absolute(p).lexically_normal();
  }
  static name split(const std::filesystem::path& p) {
    std::filesystem::path n = normal(p);
    return {n.parent_path(), n.filename().string()};
  }

  // Directories are compared by their canonical paths (an engine names them
  // canonically, seshat as the user spelled them).
  static std::filesystem::path canonical(const std::filesystem::path& p) {
    std::error_code ec;
    std::filesystem::path c = std::filesystem::weakly_canonical(std::filesystem::absolute(p), ec);
    return ec ? normal(p) : c;
  }
  // See directory_renamed. REQUIRES: mu_ held.
  void rename_directory(const std::filesystem::path& from, const std::filesystem::path& to,
                        bool exchanged) {
    const std::filesystem::path f = canonical_parent(from), t = canonical(to);
    const std::filesystem::path parked = t.string() + ".model-exchange";
    auto move = [&](const std::filesystem::path& a, const std::filesystem::path& b) {
      auto rebase = [&](const std::filesystem::path& p) {
        return p == a ? b : b / p.lexically_relative(a);
      };
      for (auto* m : {&live_, &durable_}) {
        std::map<std::filesystem::path, std::map<std::string, file_id>> moved;
        for (auto it = m->begin(); it != m->end();) {
          const std::filesystem::path c = canonical(it->first);
          if (within(c, a)) {
            moved[rebase(c)] = std::move(it->second);
            it = m->erase(it);
          } else {
            ++it;
          }
        }
        for (auto& [k, v] : moved) (*m)[k] = std::move(v);
      }
      std::set<std::filesystem::path> dirs;
      for (const auto& d : durable_dirs_) dirs.insert(within(d, a) && d != a ? rebase(d) : d);
      durable_dirs_ = std::move(dirs);
    };
    if (exchanged) {
      move(f, parked);
      move(t, f);
      move(parked, t);
    } else {
      move(f, t);
      durable_dirs_.erase(f);
    }
  }

  // `p`, a name that may no longer exist, with its parent canonical.
  static std::filesystem::path canonical_parent(const std::filesystem::path& p) {
    const std::filesystem::path n = normal(p);
    return canonical(n.parent_path()) / n.filename();
  }
  static bool within(const std::filesystem::path& inner, const std::filesystem::path& outer) {
    auto i = inner.begin();
    for (auto o = outer.begin(); o != outer.end(); ++o, ++i)
      if (i == inner.end() || *i != *o) return false;
    return true;
  }
  bool watched(const std::filesystem::path& dir) const {
    for (const auto& root : roots_)
      if (within(dir, root)) return true;
    return false;
  }
  // Every directory under `root` (not `root`, not the keep directory), canonical.
  std::vector<std::filesystem::path> directories_under(const std::filesystem::path& root) const {
    std::vector<std::filesystem::path> out;
    std::error_code ec;
    const std::filesystem::path keep = canonical(keep_);
    for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (it->symlink_status(ec).type() != std::filesystem::file_type::directory) continue;
      const std::filesystem::path d = canonical(it->path());
      if (within(d, keep)) {
        it.disable_recursion_pending();
        continue;
      }
      out.push_back(d);
    }
    return out;
  }

  std::optional<file_id> live_id(const name& n) {
    auto d = live_.find(n.dir);
    if (d == live_.end()) return std::nullopt;
    auto f = d->second.find(n.file);
    if (f == d->second.end()) return std::nullopt;
    return f->second;
  }

  // A file on disk the model has not seen: durable as it is.
  void know(const name& n) {
    if (live_id(n)) return;
    std::error_code ec;
    const std::filesystem::path p = n.dir / n.file;
    if (!std::filesystem::is_regular_file(p, ec)) return;
    const std::uintmax_t size = std::filesystem::file_size(p, ec);
    if (ec) return;
    const file_id id = next_id_++;
    files_[id] = file{size, size, false, {}, {}, {}, 0};
    live_[n.dir][n.file] = id;
    durable_[n.dir].try_emplace(n.file, id);
  }

  bool durably_named(file_id id) const {
    for (const auto& [d, m] : durable_)
      for (const auto& [f, i] : m)
        if (i == id) return true;
    return false;
  }

  std::optional<std::filesystem::path> live_path(file_id id) const {
    for (const auto& [d, m] : live_)
      for (const auto& [f, i] : m)
        if (i == id) return d / f;
    return std::nullopt;
  }

  std::filesystem::path keep_path(file_id id) const { return keep_ / std::to_string(id); }

  void keep(file_id id, const name& n) {
    if (files_[id].kept) return;
    std::error_code ec;
    std::filesystem::create_hard_link(n.dir / n.file, keep_path(id), ec);
    if (ec) {
      if (error_.empty())
        error_ = "cannot keep " + (n.dir / n.file).string() + " in " + keep_.string() + ": " +
                 ec.message();
      return;
    }
    files_[id].kept = true;
  }

  void drop_unneeded_keeps() {
    for (auto& [id, f] : files_) {
      if (!f.kept || durably_named(id)) continue;
      std::error_code ec;
      std::filesystem::remove(keep_path(id), ec);
      f.kept = false;
    }
  }

  const std::filesystem::path keep_;
  mutable std::mutex mu_;
  file_id next_id_ = 1;
  std::map<file_id, file> files_;
  // Directory -> file name -> file: as it is now, and as a power loss leaves it.
  std::map<std::filesystem::path, std::map<std::string, file_id>> live_, durable_;
  std::string error_;
  bool cut_ = false;
  const std::uint64_t tear_seed_;
  std::mt19937_64 tear_rng_;
  std::vector<std::filesystem::path> roots_;      // watched, canonical
  std::set<std::filesystem::path> durable_dirs_;  // canonical
};

}  // namespace seshat::test
