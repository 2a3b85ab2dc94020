// seshat/prometheus.hpp: a store's metrics in the Prometheus text
// exposition format, version 0.0.4, written by seshat itself (no client
// library).
//
//   prometheus_text(store, options)  metrics() of one store, as text: each
//                                    sample labelled store="<directory>"
//                                    and with options.labels
//   write_prometheus(out, sources)   appends many stores' storage_metrics
//                                    to `out`, one HELP and TYPE line per
//                                    metric
//
// The metrics (docs/api.md lists them with their labels):
//   per store   seshat_disk_bytes, seshat_sync_duration_seconds (histogram),
//               seshat_group_commits_total, seshat_group_commit_requests_total
//   per family  seshat_family_keys (when counted), seshat_family_reads_total,
//               ..._read_bytes_total, ..._writes_total, ..._written_bytes_total
//   per group   seshat_log_appends_total, ..._appended_entries_total,
//               ..._appended_bytes_total, seshat_log_sync_duration_seconds
//               (histogram), ..._synced_entries_total, ..._reads_total,
//               ..._read_entries_total, ..._truncations_total,
//               ..._purges_total; while the log is open: seshat_log_first_index,
//               ..._last_index, ..._entries
// Label values are escaped (backslash, double quote, newline); a label name
// that is not [a-zA-Z_][a-zA-Z0-9_]*, starts with "__", repeats, or is one
// seshat sets (family, group, le) is refused with invalid-argument and
// nothing is written.
//
// Serve the text with the content type k_prometheus_content_type.
// Thread-safety: the functions share nothing; prometheus_text may run
// while the store is in use (see storage::metrics()).
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "seshat/backend.hpp"
#include "seshat/column_family.hpp"
#include "seshat/detail/printable.hpp"
#include "seshat/metrics.hpp"
#include "seshat/status.hpp"
#include "seshat/storage.hpp"

namespace seshat {

inline constexpr std::string_view k_prometheus_content_type = "text/plain; version=0.0.4; charset=utf-8";

// Labels put on every sample of one store, in order: {name, value}.
using prometheus_labels = std::vector<std::pair<std::string, std::string>>;

// One store's metrics and the labels that tell it from the others.
struct prometheus_source {
  const storage_metrics& metrics;
  prometheus_labels labels;
};

namespace detail {

inline bool valid_label_name(std::string_view name) {
  if (name.empty() || name.starts_with("__")) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!letter && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

inline status check_labels(const prometheus_labels& labels) {
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const std::string& name = labels[i].first;
    auto refuse = [&](std::string_view why) {
      return status::invalid_argument("prometheus label '" + detail::printable(name) + "' " +
                                      std::string(why));
    };
    if (!valid_label_name(name))
      return refuse("is not a label name: use [a-zA-Z_][a-zA-Z0-9_]*, not starting with __");
    if (name == "family" || name == "group" || name == "le")
      return refuse("is set by seshat: choose another name");
    for (std::size_t j = 0; j < i; ++j)
      if (labels[j].first == name) return refuse("is given twice");
  }
  return {};
}

// Writes the text format: HELP and TYPE lines, then samples.
class prometheus_writer {
 public:
  using extra = std::initializer_list<std::pair<std::string_view, std::string_view>>;

  explicit prometheus_writer(std::string& out) : out_(out) {}

  void header(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    for (char c : help) {
      if (c == '\\') out_ += "\\\\";
      else if (c == '\n') out_ += "\\n";
      else out_ += c;
    }
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }

  void sample(std::string_view name, const prometheus_labels& labels, extra more,
              std::uint64_t value) {
    begin(name, labels, more);
    char buf[24];
    out_.append(buf, std::to_chars(buf, buf + sizeof buf, value).ptr);
    out_ += '\n';
  }
  void sample(std::string_view name, const prometheus_labels& labels, extra more, double value) {
    begin(name, labels, more);
    number(value);
    out_ += '\n';
  }

  // name_bucket (cumulative, le in seconds, +Inf last), name_sum, name_count.
  void histogram(std::string_view name, const prometheus_labels& labels, std::string_view key,
                 std::string_view value, const latency_metrics& h) {
    const std::string bucket = std::string(name) + "_bucket";
    std::uint64_t below = 0;
    for (std::size_t i = 0; i < h.counts.size(); ++i) {
      below += h.counts[i];
      std::string le;
      if (i < k_latency_bounds.size()) {
        char buf[32];
        le.assign(buf, std::to_chars(buf, buf + sizeof buf, k_latency_bounds[i], std::chars_format::fixed).ptr);
      } else {
        le = "+Inf";
      }
      if (key.empty()) sample(bucket, labels, {{"le", le}}, below);
      else sample(bucket, labels, {{key, value}, {"le", le}}, below);
    }
    const extra none{}, one{{key, value}};
    sample(std::string(name) + "_sum", labels, key.empty() ? none : one, h.sum_seconds);
    sample(std::string(name) + "_count", labels, key.empty() ? none : one, below);
  }

 private:
  void begin(std::string_view name, const prometheus_labels& labels, extra more) {
    out_ += name;
    bool first = true;
    auto label = [&](std::string_view k, std::string_view v) {
      out_ += first ? '{' : ',';
      first = false;
      out_ += k;
      out_ += "=\"";
      for (char c : v) {
        if (c == '\\') out_ += "\\\\";
        else if (c == '"') out_ += "\\\"";
        else if (c == '\n') out_ += "\\n";
        else out_ += c;
      }
      out_ += '"';
    };
    for (const auto& [k, v] : labels) label(k, v);
    for (const auto& [k, v] : more) label(k, v);
    if (!first) out_ += '}';
    out_ += ' ';
  }
  void number(double v) {
    if (std::isnan(v)) out_ += "NaN";
    else if (std::isinf(v)) out_ += v > 0 ? "+Inf" : "-Inf";
    else {
      char buf[32];
      out_.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
    }
  }

  std::string& out_;
};

}  // namespace detail

// Appends the metrics of `sources` to `out`; each source's labels go on all
// of its samples (give each store a label that tells it apart). Refused
// (invalid-argument, `out` unchanged) for a bad label name (see the header
// comment). Never throws: out of memory is a backend-error, `out` unchanged.
inline status write_prometheus(std::string& out, std::span<const prometheus_source> sources) try {
  for (const prometheus_source& s : sources) SESHAT_RETURN_IF_ERROR(detail::check_labels(s.labels));
  std::string text;
  detail::prometheus_writer w(text);
  using u64 = std::uint64_t;

  // ---- per store ----
  w.header("seshat_disk_bytes", "gauge", "Bytes the store takes on disk.");
  for (const auto& s : sources) w.sample("seshat_disk_bytes", s.labels, {}, u64{s.metrics.disk_bytes});
  w.header("seshat_sync_duration_seconds", "histogram",
           "Syncs of the write-ahead log (synced writes, sync_wal, group commits): the time of "
           "each write and fsync.");
  for (const auto& s : sources)
    w.histogram("seshat_sync_duration_seconds", s.labels, {}, {}, s.metrics.sync_seconds);
  w.header("seshat_group_commits_total", "counter", "Syncs run by sync_async (group commit).");
  for (const auto& s : sources)
    w.sample("seshat_group_commits_total", s.labels, {}, u64{s.metrics.group_commits});
  w.header("seshat_group_commit_requests_total", "counter",
           "sync_async calls (append_async included) served by group commits.");
  for (const auto& s : sources)
    w.sample("seshat_group_commit_requests_total", s.labels, {},
             u64{s.metrics.group_commit_requests});

  // ---- per family ----
  auto per_family = [&](std::string_view name, std::string_view type, std::string_view help,
                        auto value) {
    w.header(name, type, help);
    for (const auto& s : sources)
      for (column_family cf : k_all_column_families)
        w.sample(name, s.labels, {{"family", name_of(cf)}}, u64{value(s.metrics, index_of(cf))});
  };
  bool keys = false;
  for (const auto& s : sources) keys = keys || s.metrics.keys_counted;
  if (keys) {
    w.header("seshat_family_keys", "gauge", "Keys held in the column family.");
    for (const auto& s : sources)
      if (s.metrics.keys_counted)
        for (column_family cf : k_all_column_families)
          w.sample("seshat_family_keys", s.labels, {{"family", name_of(cf)}},
                   u64{s.metrics.keys[index_of(cf)]});
  }
  using sm = const storage_metrics&;
  per_family("seshat_family_reads_total", "counter",
             "Keys read (get, exists hits, log entries read).",
             [](sm m, std::size_t i) { return m.families[i].reads; });
  per_family("seshat_family_read_bytes_total", "counter", "Value bytes read.",
             [](sm m, std::size_t i) { return m.families[i].bytes_read; });
  per_family("seshat_family_writes_total", "counter",
             "Write operations (put, del, del_range, log entries).",
             [](sm m, std::size_t i) { return m.families[i].writes; });
  per_family("seshat_family_written_bytes_total", "counter", "Key and value bytes written.",
             [](sm m, std::size_t i) { return m.families[i].bytes_written; });

  // ---- per group ----
  auto group_name = [](const group_metrics& g) {
    return g.system ? std::string("system") : std::to_string(g.shard);
  };
  auto per_group = [&](std::string_view name, std::string_view type, std::string_view help,
                       auto value, bool open_only = false) {
    w.header(name, type, help);
    for (const auto& s : sources)
      for (const group_metrics& g : s.metrics.groups)
        if (g.open || !open_only) w.sample(name, s.labels, {{"group", group_name(g)}}, u64{value(g)});
  };
  using gm = const group_metrics&;
  per_group("seshat_log_appends_total", "counter", "Appends to the group's log that wrote.",
            [](gm g) { return g.appends; });
  per_group("seshat_log_appended_entries_total", "counter", "Entries appended.",
            [](gm g) { return g.entries_appended; });
  per_group("seshat_log_appended_bytes_total", "counter",
            "Key and encoded entry bytes appended.", [](gm g) { return g.bytes_appended; });
  w.header("seshat_log_sync_duration_seconds", "histogram",
           "Appends made durable (a durable append, or an append_async whose callback fired "
           "with success): the time from the write until durable.");
  for (const auto& s : sources)
    for (const group_metrics& g : s.metrics.groups)
      w.histogram("seshat_log_sync_duration_seconds", s.labels, "group", group_name(g),
                  g.sync_seconds);
  per_group("seshat_log_synced_entries_total", "counter",
            "Entries of the appends made durable (over the histogram's count: entries per sync).",
            [](gm g) { return g.entries_synced; });
  per_group("seshat_log_reads_total", "counter", "entries() calls that returned entries.",
            [](gm g) { return g.reads; });
  per_group("seshat_log_read_entries_total", "counter", "Entries read by entries().",
            [](gm g) { return g.entries_read; });
  per_group("seshat_log_truncations_total", "counter", "truncate() calls that deleted entries.",
            [](gm g) { return g.truncations; });
  per_group("seshat_log_purges_total", "counter", "purge() calls that deleted entries.",
            [](gm g) { return g.purges; });
  per_group("seshat_log_first_index", "gauge",
            "Index of the log's first entry (of the next append when it holds none).",
            [](gm g) { return g.first_index; }, true);
  per_group("seshat_log_last_index", "gauge",
            "Index of the log's last entry (first index - 1 when it holds none).",
            [](gm g) { return g.last_index; }, true);
  per_group("seshat_log_entries", "gauge", "Entries the log holds.",
            [](gm g) { return g.entries; }, true);
  out += text;
  return {};
} catch (const std::exception& e) {
  return status::backend_error(std::string("write_prometheus: ") + e.what());
}

// One store's metrics; `labels` go on every sample.
inline status write_prometheus(std::string& out, const storage_metrics& metrics,
                               const prometheus_labels& labels = {}) try {
  const prometheus_source one[] = {{metrics, labels}};
  return write_prometheus(out, one);
} catch (const std::exception& e) {
  return status::backend_error(std::string("write_prometheus: ") + e.what());
}

struct prometheus_options {
  // Put on every sample after store="<the store's directory>".
  prometheus_labels labels;
  // Report seshat_family_keys: reads every key of the store (O(keys)) at
  // every scrape, so off unless asked.
  bool count_keys = false;
};

// The metrics of `store` (storage::metrics()) as Prometheus text, each
// sample labelled store="<directory>" and with options.labels. Errors: those
// of metrics() and write_prometheus ("store" is refused as a label name).
template <backend B>
result<std::string> prometheus_text(storage<B>& store, const prometheus_options& options = {}) try {
  for (const auto& label : options.labels)
    if (label.first == "store")
      return status::invalid_argument("prometheus label 'store' is set by seshat (the store's "
                                      "directory): choose another name");
  auto m = store.metrics(metrics_options{options.count_keys});
  if (!m.ok()) return m.status();
  prometheus_labels labels{{"store", store.directory().string()}};
  labels.insert(labels.end(), options.labels.begin(), options.labels.end());
  std::string out;
  SESHAT_RETURN_IF_ERROR(write_prometheus(out, *m, labels));
  return out;
} catch (const std::exception& e) {
  return status::backend_error("prometheus text of the store at " + store.directory().string() +
                               ": " + e.what());
}

}  // namespace seshat
