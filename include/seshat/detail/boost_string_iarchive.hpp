// seshat/detail/boost_string_iarchive.hpp: a Boost.Serialization binary
// input archive that reads a std::string_view, with no streambuf and no
// locale, and checks every length against the bytes left.
//
// Derived the way Boost derives binary_iarchive (a primitive layer plus
// boost::archive::basic_binary_iarchive<Derived>): it reads what
// boost::archive::binary_oarchive writes with no_header | no_codecvt |
// no_tracking (and string_oarchive, which writes the same bytes).
//
// Unlike binary_iarchive it never reads past the input and never allocates
// for a length it has not checked:
//   - every primitive load checks the bytes left first;
//   - a string's length is checked against the bytes left before the
//     string is resized;
//   - a collection's element count (collection_size_type, which Boost's
//     loaders read before they resize or reserve) must not exceed the bytes
//     left. Every element takes at least one byte except elements that
//     serialize to nothing (an empty class), so a collection of more empty
//     elements than bytes follow it is refused;
//   - an unordered container's stored bucket count (Boost rehashes to it)
//     is only a hint: it is capped at the bytes left, never refused;
//   - a bool or a tracking flag must be 0 or 1;
//   - a char* or wchar_t* of unknown capacity is refused.
// Each of these throws archive_overrun naming what was read, where, and how
// many bytes it needed and had. Whether all bytes were consumed is the
// caller's to check (bytes_left()).
//
// Thread-safety: one archive per thread. Ownership: refers to the bytes,
// which must outlive it.
#pragma once

#include <boost/archive/basic_archive.hpp>
#include <boost/archive/basic_binary_iarchive.hpp>
#include <boost/archive/detail/register_archive.hpp>
#include <boost/serialization/array_optimization.hpp>
#include <boost/serialization/array_wrapper.hpp>
#include <boost/serialization/collection_size_type.hpp>
#include <boost/serialization/extended_type_info.hpp>  // BOOST_SERIALIZATION_MAX_KEY_SIZE
#include <boost/serialization/is_bitwise_serializable.hpp>
#include <boost/serialization/nvp.hpp>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

#include "seshat/detail/boost_serializer_map.hpp"
#include "seshat/detail/boost_string_oarchive.hpp"  // k_archive_flags

namespace seshat::detail {

// Thrown by string_iarchive for bytes that cannot be what an archive wrote.
class archive_overrun : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The primitive layer: how bytes become one primitive value. Boost's
// serializers call load(), load_binary() and load_array() on the archive.
class string_iprimitive {
 public:
  explicit string_iprimitive(std::string_view in) : in_(in) {}

  std::size_t bytes_left() const { return in_.size() - pos_; }
  std::size_t position() const { return pos_; }

  template <class T>
  void load(T& t) {
    load_binary(&t, sizeof(T));
  }
  void load(bool& t) { t = load_flag("a bool"); }
  void load(boost::archive::tracking_type& t) {
    t = boost::archive::tracking_type(load_flag("a tracking flag"));
  }
  void load(std::string& s) {
    std::size_t n = 0;
    load(n);
    need(n, "a string's bytes");
    // Into an empty string, a new one is cheaper than assign().
    if (s.capacity() >= n) s.assign(in_.data() + pos_, n);
    else s = std::string(in_.data() + pos_, n);
    pos_ += n;
  }
  void load(std::wstring& s) {
    std::size_t n = 0;
    load(n);
    if (n > bytes_left() / sizeof(wchar_t))
      overrun("a wide string of " + std::to_string(n) + " characters",
              std::to_string(n) + " x " + std::to_string(sizeof(wchar_t)) + " bytes");
    s.resize(n);
    load_binary(s.data(), n * sizeof(wchar_t));
  }
  void load(char*) {
    throw archive_overrun("Boost.Serialization: a char* cannot be loaded safely");
  }
  void load(wchar_t*) {
    throw archive_overrun("Boost.Serialization: a wchar_t* cannot be loaded safely");
  }

  struct use_array_optimization {
    template <class T>
    struct apply : boost::serialization::is_bitwise_serializable<T> {};
  };
  template <class V>
  void load_array(boost::serialization::array_wrapper<V>& a, unsigned /*version*/) {
    if (a.count() > bytes_left() / sizeof(V))
      overrun("an array of " + std::to_string(a.count()) + " elements",
              std::to_string(a.count()) + " x " + std::to_string(sizeof(V)) + " bytes");
    load_binary(a.address(), a.count() * sizeof(V));
  }

  void load_binary(void* p, std::size_t n) {
    need(n, "a value");
    if (n != 0) std::memcpy(p, in_.data() + pos_, n);
    pos_ += n;
  }

 protected:
  // Throws unless `n` bytes are left for `what`.
  void need(std::size_t n, const char* what) const {
    if (n > bytes_left()) overrun(what, std::to_string(n) + " bytes");
  }
  [[noreturn]] void overrun(const std::string& what, const std::string& needs) const {
    throw archive_overrun("Boost.Serialization: " + what + " at byte " + std::to_string(pos_) +
                          " needs " + needs + ", " + std::to_string(bytes_left()) +
                          " bytes are left");
  }

 private:
  bool load_flag(const char* what) {
    unsigned char b = 0;
    load_binary(&b, 1);
    if (b > 1)
      throw archive_overrun("Boost.Serialization: " + std::string(what) + " at byte " +
                            std::to_string(pos_ - 1) + " is " + std::to_string(b) +
                            ", expected 0 or 1");
    return b == 1;
  }

  friend class string_iarchive;  // restart()

  std::string_view in_;
  std::size_t pos_ = 0;
};

// The archive: Boost's binary archive logic over string_iprimitive.
class string_iarchive : public string_iprimitive,
                        public boost::archive::basic_binary_iarchive<string_iarchive> {
  using base = boost::archive::basic_binary_iarchive<string_iarchive>;
  friend class boost::archive::detail::interface_iarchive<string_iarchive>;
  friend class boost::archive::detail::common_iarchive<string_iarchive>;
  friend class boost::archive::basic_binary_iarchive<string_iarchive>;
  friend class boost::archive::load_access;

 public:
  // Reads `in`, which has no header (k_archive_flags).
  explicit string_iarchive(std::string_view in) : string_iprimitive(in), base(k_archive_flags) {}

  // What Boost's own machinery (basic_iarchive) read of the archive's
  // metadata: class information, object ids, class ids and names. It reads
  // them through vload(), never through a serialize() of the user's; what
  // it reads there it keeps in the archive's state, so an archive that read
  // any is not one to reuse for bytes that another archive wrote.
  struct metadata_read {
    enum class kind { class_id_optional, tracking, version, other } what;
    std::size_t from, to;  // the bytes [from, to) it took
    unsigned value;        // of a tracking flag or a version
  };
  static constexpr std::size_t k_metadata_kept = 3;  // the first ones, and the count
  std::size_t metadata_reads() const { return metadata_count_; }
  std::size_t metadata_reads_or_writes() const { return metadata_count_; }
  const metadata_read& metadata(std::size_t i) const { return metadata_[i]; }

  // Reads `in` from byte `from` on, the archive's state (the classes it has
  // read the information of) kept; forgets the metadata reads.
  void restart(std::string_view in, std::size_t from) {
    in_ = in;
    pos_ = from;
    metadata_count_ = 0;
  }

 protected:
  template <class T>
  void load_override(T& t) {
    base::load_override(t);
  }
  // A collection's element count, read before Boost's loaders allocate.
  void load_override(boost::serialization::collection_size_type& t) {
    base::load_override(t);
    check_count(t);
  }
  // The same, named: Boost's loaders name the bucket count of an unordered
  // container "bucket_count", a rehash hint, capped rather than checked.
  void load_override(
      const boost::serialization::nvp<boost::serialization::collection_size_type>& t) {
    base::load_override(t.value());  // the primitive, unchecked
    if (std::strcmp(t.name(), "bucket_count") != 0)
      check_count(t.value());
    else if (t.value() > bytes_left())
      t.value() = bytes_left();
  }
  // A class name (only for pointers to exported classes), bounded.
  void load_override(boost::archive::class_name_type& t) {
    std::string name;
    load(name);
    if (name.size() > BOOST_SERIALIZATION_MAX_KEY_SIZE - 1)
      throw archive_overrun("Boost.Serialization: a class name of " + std::to_string(name.size()) +
                            " bytes, the limit is " +
                            std::to_string(BOOST_SERIALIZATION_MAX_KEY_SIZE - 1));
    std::memcpy(t.t, name.data(), name.size());
    t.t[name.size()] = '\0';
  }

 private:
  // basic_iarchive's metadata reads, read as common_iarchive reads them
  // (through operator>>), and noted.
  template <class T>
  void load_metadata(T& t, metadata_read::kind what) {
    const std::size_t from = position();
    *this >> t;
    unsigned value = 0;
    if constexpr (std::is_same_v<T, boost::archive::tracking_type>) value = t ? 1 : 0;
    if constexpr (std::is_same_v<T, boost::archive::version_type>) value = t;
    if (metadata_count_ < k_metadata_kept) metadata_[metadata_count_] = {what, from, position(), value};
    ++metadata_count_;
  }
  using kind = metadata_read::kind;
  void vload(boost::archive::version_type& t) override { load_metadata(t, kind::version); }
  void vload(boost::archive::object_id_type& t) override { load_metadata(t, kind::other); }
  void vload(boost::archive::class_id_type& t) override { load_metadata(t, kind::other); }
  void vload(boost::archive::class_id_optional_type& t) override {
    load_metadata(t, kind::class_id_optional);
  }
  void vload(boost::archive::tracking_type& t) override { load_metadata(t, kind::tracking); }
  void vload(boost::archive::class_name_type& t) override { load_metadata(t, kind::other); }

  void check_count(std::size_t count) const {
    if (count > bytes_left())
      overrun("a collection of " + std::to_string(count) + " elements",
              "at least " + std::to_string(count) + " bytes");
  }

  metadata_read metadata_[k_metadata_kept] = {};
  std::size_t metadata_count_ = 0;
};

}  // namespace seshat::detail

BOOST_SERIALIZATION_REGISTER_ARCHIVE(seshat::detail::string_iarchive)
// Vectors of bitwise-serializable values as one block, as binary_iarchive.
BOOST_SERIALIZATION_USE_ARRAY_OPTIMIZATION(seshat::detail::string_iarchive)
