// seshat/entry.hpp: the Entry policy, the user's log entry type.
//
// The store must know each entry's log id. entry_traits<E>::id_of(e) gives
// it; the default works for a type with integer members `term` and `index`,
// or with a member function `log_id()` returning seshat::log_id. Specialize
// entry_traits for any other type.
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <concepts>
#include <cstdint>

#include "seshat/log_id.hpp"

namespace seshat {

template <class E>
struct entry_traits {};

template <class E>
  requires requires(const E& e) {
    { e.term } -> std::convertible_to<std::uint64_t>;
    { e.index } -> std::convertible_to<std::uint64_t>;
  }
struct entry_traits<E> {
  static log_id id_of(const E& e) {
    return {static_cast<std::uint64_t>(e.term), static_cast<std::uint64_t>(e.index)};
  }
};

template <class E>
  requires requires(const E& e) {
    { e.log_id() } -> std::convertible_to<log_id>;
  }
struct entry_traits<E> {
  static log_id id_of(const E& e) { return e.log_id(); }
};

// A type the log store can hold: copyable, default-constructible (to decode
// into), and with a known log id.
template <class E>
concept log_entry = std::default_initializable<E> && std::copy_constructible<E> &&
                    requires(const E& e) {
                      { entry_traits<E>::id_of(e) } -> std::same_as<log_id>;
                    };

template <class E>
log_id id_of(const E& e) {
  return entry_traits<E>::id_of(e);
}

}  // namespace seshat
