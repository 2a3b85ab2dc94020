// seshat/serializer.hpp: the Serializer policy, how the user's entries
// become bytes and back.
//
// A serializer S for a type T provides
//   static void S::encode(const T& value, std::string& out);   appends bytes
//   static status S::decode(std::string_view bytes, T& value);
// decode() of bytes that encode() did not produce returns a corrupted-data
// status; it never throws and never crashes. Optionally, for many values in
// a row (the entries of one append or of one range read), class templates
//   S::encoder<T>  with  void encode(const T& value, std::string& out);
//   S::decoder<T>  with  status decode(std::string_view bytes, T& value);
// each of whose calls does what S::encode or S::decode would, at a lower
// cost per value (encoder_for<S, T> and decoder_for<S, T> are them, or
// call S::encode and S::decode when S has none).
//
// seshat ships boost_serializer (the default: Boost.Serialization binary
// archives, for any type with a serialize(Archive&, unsigned) member or free
// function; customise one type by specializing serializer_traits<T>) and
// memcpy_serializer (trivially copyable types: their bytes as they are).
#pragma once

#include "seshat/detail/require_cxx20.hpp"

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
  static constexpr bool k_boost_archive = true;  // only in this primary template
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

namespace detail {

struct serialize_probe {
  void serialize();
};
template <class T>
struct serialize_probe_derived : T, serialize_probe {};

// T declares a member named `serialize`, public or private (a private one
// befriends boost::serialization::access): the name is then ambiguous in
// a class derived from T and serialize_probe.
template <class T>
concept has_member_serialize =
    std::is_class_v<T> && !std::is_final_v<T> &&
    !requires { &serialize_probe_derived<T>::serialize; };

// A free serialize(Archive&, T&, unsigned) that argument-dependent lookup
// finds (declared in T's namespace), as Boost.Serialization finds it.
template <class T>
concept has_free_serialize = requires(T& value, string_oarchive& archive) {
  serialize(archive, value, 0u);
};

}  // namespace detail

// What boost_serializer can encode: a type Boost.Serialization handles
// itself, a class with a serialize() member or a free serialize() in its
// namespace, or a type whose serializer_traits is specialized. A final
// class is taken on trust (the member check needs to derive from it).
template <class T>
concept boost_serializable =
    std::is_arithmetic_v<T> || std::is_enum_v<T> || std::same_as<T, std::string> ||
    (std::is_class_v<T> && std::is_final_v<T>) || detail::has_member_serialize<T> ||
    detail::has_free_serialize<T> || !requires { serializer_traits<T>::k_boost_archive; };

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
  // Encode and decode values one after another as encode() and decode()
  // do; through the default serializer_traits, with one archive while they
  // can (detail::boost_saver, detail::boost_loader). Thread-safety: one
  // encoder or decoder per thread.
  template <class T>
  class encoder {
    static constexpr bool k_archive = requires { serializer_traits<T>::k_boost_archive; };

   public:
    void encode(const T& value, std::string& out) {
      if constexpr (k_archive) saver_.save(value, out);
      else serializer_traits<T>::encode(value, out);
    }

   private:
    struct none {};
    [[no_unique_address]] std::conditional_t<k_archive, detail::boost_saver<T>, none> saver_;
  };
  template <class T>
  class decoder {
    static constexpr bool k_archive = requires { serializer_traits<T>::k_boost_archive; };

   public:
    status decode(std::string_view in, T& value) {
      if constexpr (k_archive) return loader_.load(in, value);
      else return serializer_traits<T>::decode(in, value);
    }

   private:
    struct none {};
    [[no_unique_address]] std::conditional_t<k_archive, detail::boost_loader<T>, none> loader_;
  };
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

namespace detail {

template <class S, class T>
struct plain_encoder {
  void encode(const T& value, std::string& out) { S::encode(value, out); }
};
template <class S, class T>
struct encoder_of {
  using type = plain_encoder<S, T>;
};
template <class S, class T>
  requires requires { typename S::template encoder<T>; }
struct encoder_of<S, T> {
  using type = typename S::template encoder<T>;
};

template <class S, class T>
struct plain_decoder {
  status decode(std::string_view in, T& value) { return S::decode(in, value); }
};
template <class S, class T>
struct decoder_of {
  using type = plain_decoder<S, T>;
};
template <class S, class T>
  requires requires { typename S::template decoder<T>; }
struct decoder_of<S, T> {
  using type = typename S::template decoder<T>;
};

}  // namespace detail

// What encodes or decodes many values of T in a row with S: S::encoder<T>
// and S::decoder<T> when S has them, else ones that call S::encode and
// S::decode.
template <class S, class T>
using encoder_for = typename detail::encoder_of<S, T>::type;
template <class S, class T>
using decoder_for = typename detail::decoder_of<S, T>::type;

}  // namespace seshat
