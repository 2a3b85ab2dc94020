// log_workload: random log_store operations, each recorded in a log_history
// before it runs and acknowledged when it is durable, for the
// fault-environment tests.
//
// Operations: append (synced), append_async (acknowledged from its
// callback), save_vote, save_committed, truncate, purge, with entries of
// random sizes whose text names the operation (a rewrite after a truncate
// differs from what it replaced). Every operation is valid for the image it
// starts from, so under a healthy disk every one succeeds.
//
// Thread-safety: one thread issues; callbacks may run on the store's sync
// thread. The log, the history and `acks` must outlive every callback (close
// the store before they go).
#pragma once

#include <atomic>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "fault_env/log_history.hpp"

namespace seshat::test {

template <class Log>
class log_workload {
 public:
  // `max_payload`: entry texts are [0, max_payload] bytes.
  log_workload(Log& log, log_history& h, std::mt19937_64& rng, std::atomic<std::uint64_t>& acks,
               std::size_t max_payload)
      : log_(log), h_(h), rng_(rng), acks_(acks), max_payload_(max_payload) {}

  // Issues one random operation; its status (for append_async: the status
  // append_async returned).
  status step() {
    const log_image& now = h_.current();
    const std::uint64_t pick = below(100);
    if (pick < 35) return append(false);
    if (pick < 70) return append(true);
    if (pick < 78) return save_vote();
    if (pick < 86) return save_committed();
    if (!now.entries.empty() && pick < 93) return truncate();
    if (!now.entries.empty()) return purge();
    return append(false);
  }

 private:
  std::uint64_t below(std::uint64_t n) {
    return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng_);
  }

  text_entry make(std::uint64_t term, std::uint64_t index) {
    text_entry e;
    e.term = term;
    e.index = index;
    e.text = "op " + std::to_string(h_.issued() + 1) + " entry " + std::to_string(index) + ":";
    const std::size_t n = below(max_payload_ + 1);
    for (std::size_t i = 0; i < n; ++i) e.text.push_back(static_cast<char>('a' + below(26)));
    if (below(3) == 0) e.tags = {"t" + std::to_string(term)};
    return e;
  }

  // Runs `f` as operation `op`; acknowledges it when it returns success.
  template <class F>
  status durable(F&& f) {
    const std::size_t op = h_.issue(next_);
    status s = f();
    if (s.ok() && h_.acknowledge(op)) ++acks_;
    return s;
  }

  status append(bool async) {
    next_ = h_.current();
    if (below(8) == 0) ++term_;
    term_ = std::max(term_, next_.last_term());
    std::vector<text_entry> es;
    const std::uint64_t count = 1 + below(4);
    for (std::uint64_t i = 0; i < count; ++i) {
      es.push_back(make(term_, next_.next_index()));
      next_.entries.emplace(es.back().index, es.back());
    }
    if (!async) return durable([&] { return log_.append(es); });
    const std::size_t op = h_.issue(next_);
    log_history* h = &h_;
    std::atomic<std::uint64_t>* acks = &acks_;
    return log_.append_async(es, [h, acks, op](status s) {
      if (s.ok() && h->acknowledge(op)) ++*acks;
    });
  }

  status save_vote() {
    next_ = h_.current();
    vote v = next_.v.value_or(vote{});
    if (!next_.v || below(2) == 0) {
      v = vote{v.term + 1 + below(2), 1 + below(5), false};
    } else if (!v.voted_for) {
      v.voted_for = 1 + below(5);
    } else {
      v.committed = true;
    }
    next_.v = v;
    return durable([&] { return log_.save_vote(v); });
  }

  status save_committed() {
    next_ = h_.current();
    const std::uint64_t from = next_.committed ? next_.committed->index : 0;
    const log_id id{next_.last_term(), from + below(4)};
    next_.committed = id;
    return durable([&] { return log_.save_committed(id); });
  }

  status truncate() {
    next_ = h_.current();
    const std::uint64_t first = next_.entries.begin()->first;
    const std::uint64_t n = next_.entries.size();
    const std::uint64_t since = first + n / 2 + below(n - n / 2);  // the newer half
    next_.entries.erase(next_.entries.find(since), next_.entries.end());
    return durable([&] { return log_.truncate(since); });
  }

  status purge() {
    next_ = h_.current();
    const std::uint64_t first = next_.entries.begin()->first;
    const std::uint64_t upto = first + below(next_.entries.size() / 3 + 1);  // the oldest third
    next_.last_purged = log_id{next_.entries.at(upto).term, upto};
    next_.entries.erase(next_.entries.begin(), next_.entries.upper_bound(upto));
    return durable([&] { return log_.purge(upto); });
  }

  Log& log_;
  log_history& h_;
  std::mt19937_64& rng_;
  std::atomic<std::uint64_t>& acks_;
  const std::size_t max_payload_;
  std::uint64_t term_ = 1;
  log_image next_;
};

}  // namespace seshat::test
