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

// The kinds of error seshat reports, each with when seshat (and a backend
// written for it) chooses it. The message says what exactly; the kind says
// what the caller can do about it. Where two fit, the more specific wins:
// a log gap is invalid_log_index, not invalid_argument; a store made by a
// newer seshat is version_mismatch, not corrupted_data.
enum class errc {
  ok = 0,
  // The key-value engine refused or failed in a way that is none of the
  // kinds below (RocksDB's or LevelDB's status other than NotFound,
  // Corruption or IOError), an exception caught at a backend's boundary, or
  // a call on a store that is closed. Retrying does not help; reopening may.
  backend_error,
  // The operating system failed a file operation (open, write, fsync,
  // rename, lock), directly or inside the engine; also a store that is
  // open elsewhere (its LOCK is held). After a failed write or sync, the
  // open store refuses every later write with it until reopened
  // (detail/write_latch.hpp).
  io_error,
  // A column family value that is not one of the six (a cast out of range),
  // or a family the engine's store lacks. A known family used for what it
  // does not hold (a log operation on a state family) is invalid_argument.
  column_family_not_found,
  // An append, read or truncation that would break a log's contiguity: an
  // append that leaves a gap or does not follow the last index, a range
  // whose bounds are reversed. Nothing was changed.
  invalid_log_index,
  // A store snapshot or Raft snapshot could not be made, read, checked or
  // installed: the snapshot's own damage or refusal (its original kind and
  // message are inside the message). Prefer corrupted_data for damage in
  // the live store.
  snapshot_failed,
  // Stored bytes do not decode or fail their checksum: the store (or a
  // file seshat wrote) is damaged. Not retried; restore from a replica or a
  // snapshot.
  corrupted_data,
  // The bytes are sound but were written by a newer seshat (a schema or
  // format version this one does not know), or by another backend or key
  // format. Open with the software that wrote them.
  version_mismatch,
  // An option, of open_options or a component's options, is out of its
  // allowed range; checked before anything is changed.
  invalid_config,
  // A call's arguments make no sense in themselves or for the object's
  // state (an empty path, a null output pointer, a handle already open for
  // that group, a directory that is not a store). Nothing was changed.
  invalid_argument,
  // A key, a store or a file that was asked for is absent; for get(), the
  // normal answer "no such key".
  not_found,
  // Log entries asked for lie before the log's first index: they were
  // purged, and are in a snapshot now. Send the snapshot instead.
  compacted,
  // Log entries asked for lie past the log's last index: they are not
  // written yet. Wait, or ask for less.
  unavailable,
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

// `lhs = value of expr`, where `expr` is a result<T>; returns its status
// from the enclosing function when it failed (abseil's ASSIGN_OR_RETURN):
//   SESHAT_ASSIGN_OR_RETURN(auto text, detail::read_small_file(p));
//   SESHAT_ASSIGN_OR_RETURN(meta_, read_meta(dir));
// `lhs` may declare a variable (it is then in the enclosing scope) or name
// one. `expr` is evaluated once. A statement, not an expression: not the
// body of an if without braces.
#define SESHAT_ASSIGN_OR_RETURN(lhs, expr) \
  SESHAT_ASSIGN_OR_RETURN_IMPL_(SESHAT_CONCAT_(seshat_result_, __LINE__), lhs, expr)
#define SESHAT_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()
#define SESHAT_CONCAT_(a, b) SESHAT_CONCAT_IMPL_(a, b)
#define SESHAT_CONCAT_IMPL_(a, b) a##b
