// seshat/detail/backend_guard.hpp: the boundary a backend keeps between what
// its callers may hand it (a family cast from a number) or what is thrown
// inside it (by its engine, the standard library, or std::bad_alloc) and
// its callers, who get a status. Every backend runs each
// member through guarded() (and new_iterator through guarded_iterator()),
// so that no exception leaves it. Not part of the public API.
#pragma once

#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "seshat/column_family.hpp"
#include "seshat/status.hpp"

namespace seshat::detail {

// True when `cf` is one of the six families (a column_family cast from a
// number need not be). Every backend checks before it indexes by family.
constexpr bool is_known_family(column_family cf) noexcept {
  return index_of(cf) < k_column_family_count;
}

// column-family-not-found: "<op>: column family #N does not exist in the
// store at <path>".
inline status unknown_family(std::string_view op, column_family cf, std::string_view path) {
  return status::column_family_not_found(std::string(op) + ": column family #" +
                                         std::to_string(index_of(cf)) +
                                         " does not exist in the store at " + std::string(path));
}

// The exception being handled as a backend-error "<op> on store at <path>:
// unexpected exception: <what>". Call only from a catch block. Never throws:
// without memory for the message, the message is empty.
inline status current_exception_status(std::string_view op, std::string_view path) noexcept {
  try {
    try {
      throw;
    } catch (const std::exception& e) {
      return status::backend_error(std::string(op) + " on store at " + std::string(path) +
                                   ": unexpected exception: " + e.what());
    } catch (...) {
      return status::backend_error(std::string(op) + " on store at " + std::string(path) +
                                   ": unexpected exception of unknown type");
    }
  } catch (...) {
    return status::backend_error(std::string());
  }
}

// Runs `f` (which returns a status or a result<T>), turning any exception
// it throws into current_exception_status(op, path).
template <class F>
auto guarded(std::string_view op, std::string_view path, F&& f) -> decltype(f()) {
  try {
    return std::forward<F>(f)();
  } catch (...) {
    return current_exception_status(op, path);
  }
}

// new_iterator's guard: the iterator `make()` returns (a std::unique_ptr,
// never null), or, when it throws, `failed(status)`: an iterator in an
// error state whose status() is current_exception_status(op, path). Never
// null. When even that iterator cannot be allocated (the process is out of
// memory for a few hundred bytes) the program terminates (std::terminate,
// this function being noexcept) instead of handing out a null iterator that
// every caller would dereference.
template <class Make, class Failed>
auto guarded_iterator(std::string_view op, std::string_view path, Make&& make,
                      Failed&& failed) noexcept -> decltype(make()) {
  try {
    return std::forward<Make>(make)();
  } catch (...) {
    return std::forward<Failed>(failed)(current_exception_status(op, path));
  }
}

}  // namespace seshat::detail
