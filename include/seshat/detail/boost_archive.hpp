// seshat/detail/boost_archive.hpp: one value to and from Boost.Serialization
// binary archive bytes, through seshat's string archives
// (boost_string_oarchive.hpp, boost_string_iarchive.hpp), which write the
// bytes boost::archive::binary_oarchive writes with no_header | no_codecvt |
// no_tracking, without its per-archive locale and streambuf.
//
// boost_load() requires the value to use every byte: bytes left over after
// it are corrupted data, like a length that runs past the end. No exception
// leaves it. Boost loads a class version newer than the code's
// BOOST_CLASS_VERSION without complaint: a serialize() member calls
// refuse_newer_version<T>() to turn that into a version-mismatch error.
#pragma once

#include <boost/serialization/string.hpp>
#include <boost/serialization/vector.hpp>
#include <boost/serialization/version.hpp>

#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>

#include "seshat/detail/boost_string_iarchive.hpp"
#include "seshat/detail/boost_string_oarchive.hpp"
#include "seshat/status.hpp"

namespace seshat::detail {

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

template <class T>
void boost_save(const T& value, std::string& out) {
  string_oarchive archive(out);
  archive << value;
}

template <class T>
status boost_load(std::string_view in, T& value) {
  try {
    string_iarchive archive(in);
    archive >> value;
    if (archive.bytes_left() != 0)
      return status::corrupted_data("Boost.Serialization: the value ends at byte " +
                                    std::to_string(in.size() - archive.bytes_left()) + " of " +
                                    std::to_string(in.size()) + ", " +
                                    std::to_string(archive.bytes_left()) + " bytes are left over");
    return {};
  } catch (const newer_class_version& e) {
    return status::version_mismatch(e.what());
  } catch (const archive_overrun& e) {
    return status::corrupted_data(e.what());
  } catch (const std::exception& e) {
    return status::corrupted_data(std::string("Boost.Serialization could not decode: ") + e.what());
  } catch (...) {
    return status::corrupted_data("Boost.Serialization could not decode: unknown exception");
  }
}

}  // namespace seshat::detail
