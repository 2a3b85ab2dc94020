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

#include <boost/serialization/level.hpp>
#include <boost/serialization/serialization.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/vector.hpp>
#include <boost/serialization/version.hpp>

#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

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

// What a load that threw returns.
inline status boost_load_error() {
  try {
    throw;
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

// ok when `archive` read all of `in`.
inline status boost_check_used(const string_iarchive& archive, std::string_view in) {
  if (archive.bytes_left() == 0) return {};
  return status::corrupted_data("Boost.Serialization: the value ends at byte " +
                                std::to_string(in.size() - archive.bytes_left()) + " of " +
                                std::to_string(in.size()) + ", " +
                                std::to_string(archive.bytes_left()) + " bytes are left over");
}

template <class T>
status boost_load(std::string_view in, T& value) {
  try {
    string_iarchive archive(in);
    archive >> value;
    return boost_check_used(archive, in);
  } catch (...) {
    return boost_load_error();
  }
}

// T is a class that Boost saves with its class information (its
// implementation level): Boost's save_object and load_object, for an
// untracked T whose information the archive holds, call T's serialize
// with the version; the loader and saver below call it themselves then.
template <class T>
inline constexpr bool boost_class_info =
    boost::serialization::implementation_level<T>::value >=
    boost::serialization::object_class_info;

// Where the preamble of the value that `archive` (a string_iarchive or
// string_oarchive) has read or written from byte `start` ends, when that
// preamble was all of the metadata: the value's class information at its
// start (class id, untracked, version), or nothing (ends at `start`).
// nullopt when the archive read or wrote any other metadata.
template <class Archive>
std::optional<std::size_t> preamble_end(const Archive& archive, std::size_t start) {
  using kind = typename std::remove_cvref_t<decltype(archive.metadata(0))>::kind;
  const std::size_t n = archive.metadata_reads_or_writes();
  if (n == 0) return start;
  if (n != 3) return std::nullopt;
  const auto& id = archive.metadata(0);
  const auto& tracking = archive.metadata(1);
  const auto& version = archive.metadata(2);
  if (id.what != kind::class_id_optional || id.from != start || tracking.what != kind::tracking ||
      tracking.from != id.to || tracking.value != 0 || version.what != kind::version ||
      version.from != tracking.to)
    return std::nullopt;
  return version.to;
}

// Loads values one after another, each from bytes that boost_save wrote
// with an archive of its own, as boost_load() does (same values, same
// errors), at a lower cost per value: it keeps one archive from value to
// value while that gives the same result.
//
// How: every such value starts with the same preamble, T's class
// information (for a class: its tracking flag and version; nothing for a
// primitive or a class saved without it). An archive that has read T's
// once reads the next T without it, from what it kept. So while an archive
// has read nothing else of Boost's metadata (no class information of a
// member's class, no object id, no pointer), it is reused for each next
// value whose bytes start with the same preamble: the preamble is skipped,
// the rest read as Boost's load_object reads it then (T's serialize with
// the preamble's version; for a T without class information, Boost's >>).
// Any other metadata read, a
// different preamble (another class version) or an error: the value is
// read by (or was read by) an archive of its own, as boost_load reads it,
// and the next one starts afresh.
//
// Thread-safety: one loader per thread. Ownership: refers to no bytes
// between calls.
template <class T>
class boost_loader {
 public:
  status load(std::string_view in, T& value) {
    try {
      if (archive_ && in.substr(0, preamble_.size()) == preamble_) {
        archive_->restart(in, preamble_.size());
        if constexpr (k_class_info)  // what Boost's load_object would call
          boost::serialization::serialize_adl(*archive_, value, version_);
        else
          *archive_ >> value;
        status s = boost_check_used(*archive_, in);
        if (archive_->metadata_reads() != 0 || !s.ok()) archive_.reset();
        return s;
      }
      archive_.reset();
      archive_.emplace(in);
      *archive_ >> value;
      status s = boost_check_used(*archive_, in);
      if (!s.ok() || !learn_preamble(in)) archive_.reset();
      return s;
    } catch (...) {
      archive_.reset();
      return boost_load_error();
    }
  }

 private:
  // After a first value read whole by archive_: keeps the preamble it read,
  // when that was all the metadata it read.
  bool learn_preamble(std::string_view in) {
    const auto end = preamble_end(*archive_, 0);
    if (!end || (k_class_info && *end == 0)) return false;
    preamble_ = in.substr(0, *end);
    if (*end != 0) version_ = archive_->metadata(2).value;
    return true;
  }

  static constexpr bool k_class_info = boost_class_info<T>;
  std::optional<string_iarchive> archive_;  // reusable when set
  std::string preamble_;                    // the bytes every value starts with
  unsigned version_ = 0;                    // the class version it holds
};

// Saves values one after another as boost_save() does each (the same
// bytes), at a lower cost per value: it keeps one archive from value to
// value while that writes the same bytes. An archive writes a class's
// information once; so while the archive has written no metadata other
// than the first value's preamble (T's class information), the next value
// gets that preamble copied and the rest written as Boost's save_object
// writes it then (T's serialize with T's version). Any other metadata written
// (a member's class information, an object id, a pointer): the next value
// gets an archive of its own.
//
// Thread-safety: one saver per thread. Ownership: refers to no string
// between calls.
template <class T>
class boost_saver {
 public:
  void save(const T& value, std::string& out) {
    const std::size_t start = out.size();
    try {
      if (archive_) {
        archive_->restart(out);
        out.append(preamble_);
        if constexpr (boost_class_info<T>)  // what Boost's save_object would call
          boost::serialization::serialize_adl(*archive_, const_cast<T&>(value),
                                              boost::serialization::version<T>::value);
        else
          *archive_ << value;
        if (archive_->metadata_writes() != 0) archive_.reset();
        return;
      }
      archive_.emplace(out);
      *archive_ << value;
      const auto end = preamble_end(*archive_, start);
      if (end && !(boost_class_info<T> && *end == start)) preamble_.assign(out, start, *end - start);
      else archive_.reset();
    } catch (...) {
      archive_.reset();
      throw;
    }
  }

 private:
  std::optional<string_oarchive> archive_;  // reusable when set
  std::string preamble_;                    // the bytes every value starts with
};

}  // namespace seshat::detail
