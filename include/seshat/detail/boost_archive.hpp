// seshat/detail/boost_archive.hpp: Boost.Serialization binary archives over
// a std::string (out) and a std::string_view (in), without copies through a
// stringstream. Exceptions from Boost while loading become corrupted data.
// Boost loads a class version newer than the code's BOOST_CLASS_VERSION
// without complaint: a serialize() member calls refuse_newer_version<T>()
// to turn that into a version-mismatch error.
#pragma once

#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/vector.hpp>
#include <boost/serialization/version.hpp>

#include <exception>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <string_view>

#include "seshat/status.hpp"

namespace seshat::detail {

// A streambuf that appends to a string.
class string_sink : public std::streambuf {
 public:
  explicit string_sink(std::string& out) : out_(out) {}

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    out_.append(s, static_cast<std::size_t>(n));
    return n;
  }
  int_type overflow(int_type c) override {
    if (!traits_type::eq_int_type(c, traits_type::eof())) out_.push_back(traits_type::to_char_type(c));
    return traits_type::not_eof(c);
  }

 private:
  std::string& out_;
};

// A streambuf that reads a string_view.
class view_source : public std::streambuf {
 public:
  explicit view_source(std::string_view in) {
    char* p = const_cast<char*>(in.data());  // never written: get area only
    setg(p, p, p + in.size());
  }
};

// Thrown by a serialize() member that loads a class version newer than its
// BOOST_CLASS_VERSION; boost_load turns it into version-mismatch.
class newer_class_version : public std::runtime_error {
 public:
  newer_class_version(const char* type, unsigned stored, unsigned known)
      : std::runtime_error(std::string(type) + " was written with class version " +
                           std::to_string(stored) + ", this seshat reads up to " +
                           std::to_string(known)) {}
};

template <class T, class Archive>
void refuse_newer_version(const char* type, unsigned stored) {
  constexpr unsigned known = boost::serialization::version<T>::value;
  if (Archive::is_loading::value && stored > known)
    throw newer_class_version(type, stored, known);
}

inline constexpr unsigned k_archive_flags =
    boost::archive::no_header | boost::archive::no_codecvt | boost::archive::no_tracking;

template <class T>
void boost_save(const T& value, std::string& out) {
  string_sink sink(out);
  boost::archive::binary_oarchive archive(sink, k_archive_flags);
  archive << value;
}

template <class T>
status boost_load(std::string_view in, T& value) {
  try {
    view_source source(in);
    boost::archive::binary_iarchive archive(source, k_archive_flags);
    archive >> value;
    if (source.in_avail() != 0)
      return status::corrupted_data("Boost.Serialization: " + std::to_string(source.in_avail()) +
                                    " bytes left after the value");
    return {};
  } catch (const newer_class_version& e) {
    return status::version_mismatch(e.what());
  } catch (const std::exception& e) {
    return status::corrupted_data(std::string("Boost.Serialization could not decode: ") + e.what());
  }
}

}  // namespace seshat::detail
