// seshat/serializer.hpp: the Serializer policy, how the user's entries
// become bytes and back.
//
// A serializer S for a type T provides
//   static void S::encode(const T& value, std::string& out);   appends bytes
//   static status S::decode(std::string_view bytes, T& value);
// decode() of bytes that encode() did not produce returns a corrupted-data
// status; it never throws and never crashes.
//
// seshat ships boost_serializer (the default: Boost.Serialization binary
// archives, for any type with a serialize(Archive&, unsigned) member or free
// function; customise one type by specializing serializer_traits<T>) and
// memcpy_serializer (trivially copyable types: their bytes as they are).
#pragma once

#include <concepts>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <type_traits>

#include "seshat/detail/boost_archive.hpp"
#include "seshat/status.hpp"

namespace seshat {

template <class S, class T>
concept serializer_for = requires(const T& value, T& into, std::string& out, std::string_view in) {
  { S::encode(value, out) } -> std::same_as<void>;
  { S::decode(in, into) } -> std::same_as<status>;
};

// How boost_serializer encodes a T. The default uses Boost.Serialization's
// binary archive; specialize it to encode one type differently.
template <class T>
struct serializer_traits {
  static void encode(const T& value, std::string& out) { detail::boost_save(value, out); }
  static status decode(std::string_view in, T& value) { return detail::boost_load(in, value); }
};

// For a user's serialize(): refuses, with a version-mismatch error from
// decode(), a class version newer than T's BOOST_CLASS_VERSION:
//   template <class A> void serialize(A& a, unsigned version) {
//     seshat::refuse_newer_version<my_entry, A>("my_entry", version);
//     ...
//   }
using detail::refuse_newer_version;

struct boost_serializer {
  static constexpr std::string_view k_name = "boost";
  template <class T>
  static void encode(const T& value, std::string& out) {
    serializer_traits<T>::encode(value, out);
  }
  template <class T>
  static status decode(std::string_view in, T& value) {
    return serializer_traits<T>::decode(in, value);
  }
};

struct memcpy_serializer {
  static constexpr std::string_view k_name = "memcpy";
  template <class T>
    requires std::is_trivially_copyable_v<T>
  static void encode(const T& value, std::string& out) {
    out.append(reinterpret_cast<const char*>(&value), sizeof(T));
  }
  template <class T>
    requires std::is_trivially_copyable_v<T>
  static status decode(std::string_view in, T& value) {
    if (in.size() != sizeof(T))
      return status::corrupted_data("memcpy_serializer: expected " + std::to_string(sizeof(T)) +
                                    " bytes, got " + std::to_string(in.size()));
    std::memcpy(&value, in.data(), sizeof(T));
    return {};
  }
};

}  // namespace seshat
