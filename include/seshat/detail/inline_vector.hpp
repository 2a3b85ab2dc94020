// seshat/detail/inline_vector.hpp: inline_vector<T>, a vector of a
// trivially copyable T that holds its first element in itself and only a
// second one on the heap. For the log engine's index pieces (segment_format.hpp's
// piece: its term runs and record refs), most of which hold one run and one
// record when a store has many groups (each group's piece in a segment is
// then one append): such a piece allocates nothing.
//
// The members std::vector's users here call, with its meaning; growth
// doubles. Not thread-safe (as std::vector).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <new>
#include <type_traits>
#include <vector>

namespace seshat::detail {

template <class T>
class inline_vector {
  static_assert(std::is_trivially_copyable_v<T>, "inline_vector<T> copies T with memcpy");

 public:
  using value_type = T;
  using iterator = T*;
  using const_iterator = const T*;

  inline_vector() noexcept : heap_(nullptr) {}
  inline_vector(std::initializer_list<T> list) : inline_vector() { assign(list.begin(), list.size()); }
  inline_vector(const inline_vector& o) : inline_vector() { assign(o.data(), o.size_); }
  inline_vector(inline_vector&& o) noexcept : inline_vector() { take(o); }
  inline_vector& operator=(const inline_vector& o) {
    if (this != &o) assign(o.data(), o.size_);
    return *this;
  }
  inline_vector& operator=(inline_vector&& o) noexcept {
    if (this != &o) {
      release();
      take(o);
    }
    return *this;
  }
  inline_vector& operator=(std::initializer_list<T> list) {
    assign(list.begin(), list.size());
    return *this;
  }
  inline_vector& operator=(const std::vector<T>& v) {
    assign(v.data(), v.size());
    return *this;
  }
  ~inline_vector() { release(); }

  T* data() noexcept { return cap_ == 1 ? &one_ : heap_; }
  const T* data() const noexcept { return cap_ == 1 ? &one_ : heap_; }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return cap_; }
  bool empty() const noexcept { return size_ == 0; }
  T* begin() noexcept { return data(); }
  T* end() noexcept { return data() + size_; }
  const T* begin() const noexcept { return data(); }
  const T* end() const noexcept { return data() + size_; }
  T& operator[](std::size_t i) noexcept { return data()[i]; }
  const T& operator[](std::size_t i) const noexcept { return data()[i]; }
  T& back() noexcept { return data()[size_ - 1]; }
  const T& back() const noexcept { return data()[size_ - 1]; }

  void reserve(std::size_t n) {
    if (n > cap_) grow(n);
  }
  void push_back(const T& x) {
    if (size_ == cap_) {
      const T copy = x;  // x may be an element of this vector
      grow(2 * std::size_t{cap_});
      data()[size_++] = copy;
      return;
    }
    data()[size_++] = x;
  }
  void pop_back() noexcept { --size_; }
  void clear() noexcept { size_ = 0; }
  // New elements are value-initialized.
  void resize(std::size_t n) {
    reserve(n);
    for (std::size_t i = size_; i < n; ++i) data()[i] = T{};
    size_ = static_cast<std::uint32_t>(n);
  }

  friend bool operator==(const inline_vector& a, const inline_vector& b) {
    if (a.size_ != b.size_) return false;
    for (std::size_t i = 0; i < a.size_; ++i)
      if (!(a[i] == b[i])) return false;
    return true;
  }

 private:
  void assign(const T* from, std::size_t n) {
    size_ = 0;
    reserve(n);
    if (n > 0) std::memcpy(static_cast<void*>(data()), from, n * sizeof(T));
    size_ = static_cast<std::uint32_t>(n);
  }
  void grow(std::size_t n) {
    T* bigger = static_cast<T*>(::operator new(n * sizeof(T)));
    if (size_ > 0) std::memcpy(static_cast<void*>(bigger), data(), size_ * sizeof(T));
    release();
    heap_ = bigger;
    cap_ = static_cast<std::uint32_t>(n);
  }
  void release() noexcept {
    if (cap_ > 1) ::operator delete(heap_);
    heap_ = nullptr;
    cap_ = 1;
  }
  // REQUIRES: this holds nothing on the heap.
  void take(inline_vector& o) noexcept {
    if (o.cap_ == 1) {
      if (o.size_ > 0) std::memcpy(static_cast<void*>(&one_), &o.one_, sizeof(T));
    } else {
      heap_ = o.heap_;
    }
    size_ = o.size_;
    cap_ = o.cap_;
    o.heap_ = nullptr;
    o.size_ = 0;
    o.cap_ = 1;
  }

  union {
    T one_;    // cap_ == 1
    T* heap_;  // cap_ > 1
  };
  std::uint32_t size_ = 0;
  std::uint32_t cap_ = 1;
};

}  // namespace seshat::detail
