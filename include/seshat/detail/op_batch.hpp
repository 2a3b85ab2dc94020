// seshat/detail/op_batch.hpp: the batch of every backend (B::batch): an
// ordered list of put, del and del_range operations, each family tagged,
// that the backend's write() applies atomically. It holds copies of the
// keys and values and no reference to any store: a batch may be written to
// any backend, any number of times (write() leaves it as it was).
//
// The operations are kept back to back in one buffer, so that adding one
// costs no allocation of its own:
//
//   rep := op*
//   op  := kind:u8 family:u8 key_size:u64 key value_size:u64 value
//          (kind: 0 put, 1 del, 2 del_range; for a del the value is empty,
//          for a del_range key and value are its begin and end)
//
// put/del/del_range never throw: when the buffer cannot grow (out of
// memory), the batch remembers it and every write() of it fails with a
// backend-error, writing nothing, until clear(); likewise an operation on a
// family that is not one of the six (column-family-not-found).
//
// Thread-safety: a batch belongs to one thread at a time. Not part of the
// public API: name it B::batch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "seshat/column_family.hpp"
#include "seshat/status.hpp"

namespace seshat::detail {

class op_batch {
 public:
  enum class op_kind : unsigned char { put, del, del_range };

  // One operation, as views into the batch: valid until the batch changes.
  struct op {
    op_kind kind;
    column_family cf;
    std::string_view key;    // the key of a put or del, the begin of a del_range
    std::string_view value;  // the value of a put, the end of a del_range
  };

  void put(column_family cf, std::string_view key, std::string_view value) noexcept {
    add(op_kind::put, cf, key, value);
  }
  void del(column_family cf, std::string_view key) noexcept { add(op_kind::del, cf, key, {}); }
  // Deletes [begin, end): every key k of `cf` with begin <= k < end, the
  // keys already stored as well as those put earlier in this batch (a put
  // later in the batch survives). Nothing when begin >= end (still one
  // operation).
  void del_range(column_family cf, std::string_view begin, std::string_view end) noexcept {
    add(op_kind::del_range, cf, begin, end);
  }
  // Operations added since the batch was made or cleared.
  std::size_t size() const noexcept { return count_; }
  bool empty() const noexcept { return count_ == 0; }
  // The bytes the operations take here: at least what an engine's own batch
  // of them takes, so a backend can reserve that much before it copies them.
  std::size_t byte_size() const noexcept { return rep_.size(); }
  void clear() noexcept {
    rep_.clear();
    count_ = 0;
    out_of_memory_ = false;
    unknown_family_ = std::nullopt;
  }

  // Whether the batch can be written: check() is then ok. Cheap, for the
  // write path (which builds check()'s context only when it fails).
  bool ok() const noexcept { return !out_of_memory_ && !unknown_family_; }
  // Success, or why the batch cannot be written (an operation did not fit
  // in memory). A backend's write() returns it, writing nothing.
  status check() const {
    if (unknown_family_)
      return status::column_family_not_found(
          "batch operation " + std::to_string(unknown_family_->first + 1) + " of " +
          std::to_string(count_) + ": column family #" + std::to_string(unknown_family_->second) +
          " does not exist");
    if (!out_of_memory_) return {};
    return status::backend_error("batch of " + std::to_string(count_) +
                                 " operations: out of memory while adding one; nothing can be "
                                 "written until clear()");
  }

  // The operations in the order they were added.
  class const_iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = op;
    using difference_type = std::ptrdiff_t;
    using pointer = const op*;
    using reference = const op&;

    const_iterator() = default;
    reference operator*() const { return op_; }
    pointer operator->() const { return &op_; }
    const_iterator& operator++() {
      at_ = next_;
      decode();
      return *this;
    }
    const_iterator operator++(int) {
      const_iterator before = *this;
      ++*this;
      return before;
    }
    friend bool operator==(const const_iterator& a, const const_iterator& b) {
      return a.at_ == b.at_;
    }

   private:
    friend class op_batch;
    const_iterator(std::string_view rep, std::size_t at) : rep_(rep), at_(at) { decode(); }
    void decode() {
      if (at_ >= rep_.size()) return;
      std::size_t pos = at_;
      op_.kind = static_cast<op_kind>(rep_[pos++]);
      op_.cf = static_cast<column_family>(static_cast<unsigned char>(rep_[pos++]));
      op_.key = bytes(pos);
      op_.value = bytes(pos);
      next_ = pos;
    }
    std::string_view bytes(std::size_t& pos) const {
      std::uint64_t n = 0;
      std::memcpy(&n, rep_.data() + pos, sizeof n);
      pos += sizeof n;
      const std::string_view b = rep_.substr(pos, static_cast<std::size_t>(n));
      pos += static_cast<std::size_t>(n);
      return b;
    }

    std::string_view rep_;
    std::size_t at_ = 0;
    std::size_t next_ = 0;
    op op_{};
  };

  const_iterator begin() const { return {rep_, 0}; }
  const_iterator end() const { return {rep_, rep_.size()}; }

 private:
  void add(op_kind kind, column_family cf, std::string_view key, std::string_view value) noexcept {
    ++count_;
    if (out_of_memory_ || unknown_family_) return;
    if (index_of(cf) >= k_column_family_count) {
      unknown_family_.emplace(count_ - 1, index_of(cf));
      return;
    }
    const std::size_t before = rep_.size();
    try {
      rep_.reserve(before + 2 + 2 * sizeof(std::uint64_t) + key.size() + value.size());
      rep_.push_back(static_cast<char>(kind));
      rep_.push_back(static_cast<char>(static_cast<unsigned char>(cf)));
      append_bytes(key);
      append_bytes(value);
    } catch (...) {
      rep_.resize(before);  // shrinking never allocates
      out_of_memory_ = true;
    }
  }
  void append_bytes(std::string_view b) {
    const std::uint64_t n = b.size();
    char size[sizeof n];
    std::memcpy(size, &n, sizeof n);
    rep_.append(size, sizeof n);
    rep_.append(b);
  }

  std::string rep_;
  std::size_t count_ = 0;
  bool out_of_memory_ = false;
  // The first operation on an unknown family: its position and family number.
  std::optional<std::pair<std::size_t, std::size_t>> unknown_family_;
};

}  // namespace seshat::detail
