// seshat/detail/boost_string_oarchive.hpp: a Boost.Serialization binary
// output archive that appends to a std::string, with no streambuf and no
// locale.
//
// Derived the way Boost derives binary_oarchive (a primitive layer plus
// boost::archive::basic_binary_oarchive<Derived>), with the primitive layer
// replaced: it writes every primitive exactly as basic_binary_oprimitive
// does (its native bytes; a std::string as its std::size_t length, then
// its bytes; bitwise-serializable arrays as one block), so the bytes are
// those of boost::archive::binary_oarchive with the flags
// no_header | no_codecvt | no_tracking, which this archive always uses.
// binary_oarchive builds a std::locale with a codecvt facet in its
// constructor whatever the flags; this one builds none.
//
// Thread-safety: one archive per thread. Ownership: refers to the string,
// which must outlive it.
#pragma once

#include <boost/archive/basic_archive.hpp>
#include <boost/archive/basic_binary_oarchive.hpp>
#include <boost/archive/detail/register_archive.hpp>
#include <boost/serialization/array_optimization.hpp>
#include <boost/serialization/array_wrapper.hpp>
#include <boost/serialization/is_bitwise_serializable.hpp>
#include <cstddef>
#include <cstring>
#include <cwchar>
#include <string>
#include <type_traits>

#include "seshat/detail/boost_serializer_map.hpp"

namespace seshat::detail {

// The flags every seshat archive uses, in both directions.
inline constexpr unsigned k_archive_flags =
    boost::archive::no_header | boost::archive::no_codecvt | boost::archive::no_tracking;

// The primitive layer: how one primitive value becomes bytes. Boost's
// serializers call save(), save_binary() and save_array() on the archive.
class string_oprimitive {
 public:
  explicit string_oprimitive(std::string& out) : out_(&out) {}

  // Arithmetic values and Boost's own small types (versions, class ids,
  // collection sizes, tracking flags): their native bytes.
  template <class T>
  void save(const T& t) {
    save_binary(&t, sizeof(T));
  }
  void save(const std::string& s) {
    save(s.size());
    save_binary(s.data(), s.size());
  }
  void save(const std::wstring& s) {
    save(s.size());
    save_binary(s.data(), s.size() * sizeof(wchar_t));
  }
  void save(const char* s) {
    const std::size_t n = std::strlen(s);
    save(n);
    save_binary(s, n);
  }
  void save(const wchar_t* s) {
    const std::size_t n = std::wcslen(s);
    save(n);
    save_binary(s, n * sizeof(wchar_t));
  }

  // Arrays of bitwise-serializable values are written as one block, as
  // binary_oarchive does (std::vector<int> is its size, then its bytes).
  struct use_array_optimization {
    template <class T>
    struct apply : boost::serialization::is_bitwise_serializable<T> {};
  };
  template <class V>
  void save_array(const boost::serialization::array_wrapper<V>& a, unsigned /*version*/) {
    save_binary(a.address(), a.count() * sizeof(V));
  }

  void save_binary(const void* p, std::size_t n) { out_->append(static_cast<const char*>(p), n); }

 protected:
  std::string* out_;
};

// The archive: Boost's binary archive logic over string_oprimitive.
class string_oarchive : public string_oprimitive,
                        public boost::archive::basic_binary_oarchive<string_oarchive> {
  using base = boost::archive::basic_binary_oarchive<string_oarchive>;
  friend class boost::archive::detail::interface_oarchive<string_oarchive>;
  friend class boost::archive::basic_binary_oarchive<string_oarchive>;
  friend class boost::archive::save_access;

 public:
  // Appends to `out`; writes no header (k_archive_flags).
  explicit string_oarchive(std::string& out) : string_oprimitive(out), base(k_archive_flags) {}

  // What Boost's own machinery (basic_oarchive) wrote of the archive's
  // metadata: class information, object ids, class ids and names. It
  // writes them through vsave(), never through a serialize() of the
  // user's; what it wrote it keeps in the archive's state (and does not
  // write again for the same class).
  struct metadata_write {
    enum class kind { class_id_optional, tracking, version, other } what;
    std::size_t from, to;  // the bytes [from, to) of the string it took
    unsigned value;        // of a tracking flag or a version
  };
  static constexpr std::size_t k_metadata_kept = 3;  // the first ones, and the count
  std::size_t metadata_writes() const { return metadata_count_; }
  std::size_t metadata_reads_or_writes() const { return metadata_count_; }
  const metadata_write& metadata(std::size_t i) const { return metadata_[i]; }

  // Appends to `out` from now on, the archive's state (the classes it has
  // written the information of) kept; forgets the metadata writes.
  void restart(std::string& out) {
    out_ = &out;
    metadata_count_ = 0;
  }

 protected:
  template <class T>
  void save_override(const T& t) {
    base::save_override(t);
  }

 private:
  // basic_oarchive's metadata writes, written as common_oarchive writes
  // them (through operator<<), and noted.
  template <class T>
  void save_metadata(const T& t, metadata_write::kind what) {
    const std::size_t from = out_->size();
    *this << t;
    unsigned value = 0;
    if constexpr (std::is_same_v<T, boost::archive::tracking_type>) value = t ? 1 : 0;
    if constexpr (std::is_same_v<T, boost::archive::version_type>) value = t;
    if (metadata_count_ < k_metadata_kept)
      metadata_[metadata_count_] = {what, from, out_->size(), value};
    ++metadata_count_;
  }
  using kind = metadata_write::kind;
  void vsave(const boost::archive::version_type t) override { save_metadata(t, kind::version); }
  void vsave(const boost::archive::object_id_type t) override { save_metadata(t, kind::other); }
  void vsave(const boost::archive::object_reference_type t) override {
    save_metadata(t, kind::other);
  }
  void vsave(const boost::archive::class_id_type t) override { save_metadata(t, kind::other); }
  void vsave(const boost::archive::class_id_reference_type t) override {
    save_metadata(t, kind::other);
  }
  void vsave(const boost::archive::class_id_optional_type t) override {
    save_metadata(t, kind::class_id_optional);
  }
  void vsave(const boost::archive::class_name_type& t) override { save_metadata(t, kind::other); }
  void vsave(const boost::archive::tracking_type t) override { save_metadata(t, kind::tracking); }

  metadata_write metadata_[k_metadata_kept] = {};
  std::size_t metadata_count_ = 0;
};

}  // namespace seshat::detail

BOOST_SERIALIZATION_REGISTER_ARCHIVE(seshat::detail::string_oarchive)
// Vectors of bitwise-serializable values as one block, as binary_oarchive.
BOOST_SERIALIZATION_USE_ARRAY_OPTIMIZATION(seshat::detail::string_oarchive)
