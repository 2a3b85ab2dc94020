// seshat/status.hpp: errors as values.
//
// `status` says whether an operation succeeded and, when it did not, what
// kind of error happened and a message with its context (column family,
// key, expected vs got). `result<T>` is a `T` or a failed `status`.
// Both are [[nodiscard]]: an error is never silently ignored.
//
// Thread-safety: values; distinct objects may be used from distinct threads.
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace seshat {

// The kinds of error seshat reports.
enum class errc {
  ok = 0,
  backend_error,            // the key-value engine failed (RocksDB, LevelDB)
  io_error,                 // the operating system failed a file operation
  column_family_not_found,  // a column family is missing or unusable here
  invalid_log_index,        // an append or read broke the log's contiguity
  snapshot_failed,          // a snapshot could not be made, checked or used
  corrupted_data,           // stored bytes do not decode
  version_mismatch,         // written by a newer seshat, or another backend
  invalid_config,           // an option is out of its allowed range
  invalid_argument,         // a call's arguments make no sense
  not_found,                // a key or store that was asked for is absent
  compacted,                // log entries asked for were purged (in a snapshot)
  unavailable,              // log entries asked for are not written yet
};

constexpr std::string_view to_string(errc code) noexcept {
  switch (code) {
    case errc::ok: return "ok";
    case errc::backend_error: return "backend error";
    case errc::io_error: return "I/O error";
    case errc::column_family_not_found: return "column family not found";
    case errc::invalid_log_index: return "invalid log index";
    case errc::snapshot_failed: return "snapshot failed";
    case errc::corrupted_data: return "corrupted data";
    case errc::version_mismatch: return "version mismatch";
    case errc::invalid_config: return "invalid config";
    case errc::invalid_argument: return "invalid argument";
    case errc::not_found: return "not found";
    case errc::compacted: return "compacted";
    case errc::unavailable: return "unavailable";
  }
  return "unknown error";
}

class [[nodiscard]] status {
 public:
  // A default-constructed status is success.
  status() = default;

  static status backend_error(std::string m) { return {errc::backend_error, std::move(m)}; }
  static status io_error(std::string m) { return {errc::io_error, std::move(m)}; }
  static status column_family_not_found(std::string m) {
    return {errc::column_family_not_found, std::move(m)};
  }
  static status invalid_log_index(std::string m) { return {errc::invalid_log_index, std::move(m)}; }
  static status snapshot_failed(std::string m) { return {errc::snapshot_failed, std::move(m)}; }
  static status corrupted_data(std::string m) { return {errc::corrupted_data, std::move(m)}; }
  static status version_mismatch(std::string m) { return {errc::version_mismatch, std::move(m)}; }
  static status invalid_config(std::string m) { return {errc::invalid_config, std::move(m)}; }
  static status invalid_argument(std::string m) { return {errc::invalid_argument, std::move(m)}; }
  static status not_found(std::string m) { return {errc::not_found, std::move(m)}; }
  static status compacted(std::string m) { return {errc::compacted, std::move(m)}; }
  static status unavailable(std::string m) { return {errc::unavailable, std::move(m)}; }

  bool ok() const noexcept { return code_ == errc::ok; }
  bool is(errc code) const noexcept { return code_ == code; }
  errc code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }

  // "ok", or "<kind>: <message>".
  std::string to_string() const {
    if (ok()) return "ok";
    std::string s(seshat::to_string(code_));
    s += ": ";
    s += message_;
    return s;
  }

  // The same error with `before` put in front of its message and `after`
  // behind it; success stays success.
  status with_context(std::string_view before, std::string_view after = {}) const {
    if (ok()) return *this;
    return {code_, std::string(before) + message_ + std::string(after)};
  }

  // Marks a status as deliberately unchecked (destructors, best-effort
  // cleanup). Prefer handling it.
  void ignore() const noexcept {}

 private:
  status(errc code, std::string message) : code_(code), message_(std::move(message)) {}

  errc code_ = errc::ok;
  std::string message_;
};

// Thrown only by result<T>::value() on a failed result: reading a value that
// is not there is a programming error, reported instead of undefined.
class bad_result_access : public std::logic_error {
 public:
  explicit bad_result_access(const status& s)
      : std::logic_error("seshat: value() of a failed result: " + s.to_string()) {}
};

// A T, or the status that explains why there is none.
// Invariant: has a value exactly when status().ok().
template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  result(seshat::status error) : status_(std::move(error)) {  // NOLINT: implicit by design
    if (status_.ok()) status_ = seshat::status::invalid_argument("result built from a success status without a value");
  }

  bool ok() const noexcept { return status_.ok(); }
  const seshat::status& status() const noexcept { return status_; }

  T& value() & { check(); return *value_; }
  const T& value() const& { check(); return *value_; }
  T&& value() && { check(); return std::move(*value_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  void check() const {
    if (!status_.ok()) throw bad_result_access(status_);
  }

  std::optional<T> value_;
  seshat::status status_;
};

}  // namespace seshat

// Returns the status of `expr` from the enclosing function when it failed.
#define SESHAT_RETURN_IF_ERROR(expr)              \
  do {                                            \
    ::seshat::status seshat_status_ = (expr);     \
    if (!seshat_status_.ok()) return seshat_status_; \
  } while (0)
