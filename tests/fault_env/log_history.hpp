// log_history: what a log_store must show after a power loss or a disk
// fault, for the fault-environment tests.
//
// log_image is everything a log_store shows: its entries, last purged id,
// vote and committed id. log_history keeps the image after each operation a
// test issued and the last operation that was acknowledged (a call that
// returned success with its write durable, or an append_async whose callback
// fired with success). Writes reach the write-ahead log in issue order, so
// what survives must be the image after some operation k, with k at or after
// the last acknowledged one: nothing acknowledged is lost, nothing is
// invented, nothing goes backwards (a vote, a committed id, a purge).
//
// Thread-safety: acknowledge() may be called from any thread (the store's
// sync thread); the rest from the test's thread.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "log_entries.hpp"
#include "seshat/hard_state.hpp"
#include "seshat/log_id.hpp"
#include "seshat/log_store.hpp"
#include "seshat/storage.hpp"

namespace seshat::test {

struct log_image {
  std::map<std::uint64_t, text_entry> entries;  // consecutive indices [first, last]
  std::optional<log_id> last_purged;
  std::optional<vote> v;
  std::optional<log_id> committed;

  std::optional<log_id> last() const {
    if (entries.empty()) return last_purged;
    const text_entry& e = entries.rbegin()->second;
    return log_id{e.term, e.index};
  }
  std::uint64_t next_index() const {
    if (!entries.empty()) return entries.rbegin()->first + 1;
    return last_purged ? last_purged->index + 1 : 1;
  }
  std::uint64_t last_term() const {
    auto l = last();
    return l ? l->term : 0;
  }

  friend bool operator==(const log_image&, const log_image&) = default;

  std::string describe() const {
    auto id = [](const std::optional<log_id>& i) {
      return i ? to_string(*i) : std::string("none");
    };
    std::string s = "last purged " + id(last_purged) + ", last " + id(last()) + ", " +
                    std::to_string(entries.size()) + " entries, vote " +
                    (v ? to_string(*v) : std::string("none")) + ", committed " + id(committed);
    return s;
  }
};

// The image `log` shows, read back through it; the error when it cannot be
// read whole or is not hole-free. `count_keys`, when given, counts the keys
// stored in the log's family (they must be exactly the entries: no stray
// key, no hole).
template <class Log>
result<log_image> read_image(const Log& log, std::optional<std::uint64_t> count_keys) {
  log_image img;
  const log_state st = log.get_log_state();
  img.last_purged = st.last_purged;
  auto v = log.read_vote();
  if (!v.ok()) return v.status();
  img.v = *v;
  auto c = log.read_committed();
  if (!c.ok()) return c.status();
  img.committed = *c;
  if (st.last && (!st.last_purged || st.last->index > st.last_purged->index)) {
    const std::uint64_t first = st.last_purged ? st.last_purged->index + 1 : 1;
    auto es = log.entries(first, st.last->index + 1);
    if (!es.ok()) return es.status().with_context("entries [first, last]: ");
    for (const text_entry& e : *es) img.entries.emplace(e.index, e);
    if (img.entries.size() != st.last->index + 1 - first || img.last() != st.last)
      return status::corrupted_data("the log state says " + img.describe() +
                                    " but its entries do not match it");
  }
  if (count_keys && *count_keys != img.entries.size())
    return status::corrupted_data("the log family holds " + std::to_string(*count_keys) +
                                  " keys, the log state " + std::to_string(img.entries.size()) +
                                  " entries (" + img.describe() + ")");
  return img;
}

// The image a reopened `log` shows, with the keys of its family in `store`
// counted (read_image's hole and stray-key check).
// On a store with a log engine (log_backend) the family holds no keys: the
// engine's own index is what read_image checks.
template <class Log, class B>
result<log_image> read_stored_image(const Log& log, storage<B>& store) {
  if constexpr (log_backend<B>) return read_image(log, std::nullopt);
  std::uint64_t keys = 0;
  auto it = store.new_iterator(Log::k_log_family);
  for (it->seek_to_first(); it->valid(); it->next()) ++keys;
  SESHAT_RETURN_IF_ERROR(it->status());
  return read_image(log, keys);
}

class log_history {
 public:
  explicit log_history(log_image start) { images_.push_back(std::move(start)); }

  const log_image& current() const { return images_.back(); }
  // The image after operation k (0: before the first). REQUIRES: k <= issued().
  const log_image& image(std::size_t k) const { return images_.at(k); }
  std::size_t issued() const { return images_.size() - 1; }

  // Records the image after a new operation; returns its number (from 1).
  std::size_t issue(log_image next) {
    images_.push_back(std::move(next));
    return images_.size() - 1;
  }

  // Operation `op` is durable (and so is every one before it). False when
  // the acknowledgment came too late to be seen (stop_acknowledging).
  bool acknowledge(std::size_t op) {
    std::lock_guard lock(mu_);
    if (stopped_) return false;
    acked_ = std::max(acked_, op);
    return true;
  }
  // Later acknowledgments come after the power went: nobody sees them.
  void stop_acknowledging() {
    std::lock_guard lock(mu_);
    stopped_ = true;
  }
  std::size_t acknowledged() const {
    std::lock_guard lock(mu_);
    return acked_;
  }

  // The newest operation k >= acknowledged() whose image is `seen`.
  std::optional<std::size_t> match(const log_image& seen) const {
    const std::size_t lo = acknowledged();
    for (std::size_t k = images_.size(); k-- > lo;)
      if (images_[k] == seen) return k;
    return std::nullopt;
  }

  // For a failure message: the acknowledged image and the newest one.
  std::string describe() const {
    return "acknowledged " + std::to_string(acknowledged()) + " of " + std::to_string(issued()) +
           " operations; the acknowledged image: " + images_[acknowledged()].describe() +
           "; the newest: " + current().describe();
  }

 private:
  std::vector<log_image> images_;  // [0]: before the first operation
  mutable std::mutex mu_;
  std::size_t acked_ = 0;
  bool stopped_ = false;
};

}  // namespace seshat::test
