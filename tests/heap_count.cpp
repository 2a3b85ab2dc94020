// tests/heap_count.cpp: replaces the global operator new and delete with
// malloc and free that count the live bytes and the allocations (heap_count.hpp). Every form the
// program can call is replaced, so each allocation is counted once and
// uncounted once; the count is one relaxed atomic add a call.
#include "heap_count.hpp"

#include <malloc.h>

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<std::int64_t> live{0};
std::atomic<std::int64_t> allocations{0};

void* counted(std::size_t n) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p) live.fetch_add(static_cast<std::int64_t>(malloc_usable_size(p) + sizeof(std::size_t)),
                        std::memory_order_relaxed);
  return p;
}
void uncounted(void* p) noexcept {
  if (!p) return;
  live.fetch_sub(static_cast<std::int64_t>(malloc_usable_size(p) + sizeof(std::size_t)),
                 std::memory_order_relaxed);
  std::free(p);
}
}  // namespace

std::int64_t seshat::test::heap_live_bytes() { return live.load(std::memory_order_relaxed); }
std::int64_t seshat::test::heap_allocations() { return allocations.load(std::memory_order_relaxed); }

void* operator new(std::size_t n) {
  if (void* p = counted(n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return counted(n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return counted(n); }
void operator delete(void* p) noexcept { uncounted(p); }
void operator delete[](void* p) noexcept { uncounted(p); }
void operator delete(void* p, std::size_t) noexcept { uncounted(p); }
void operator delete[](void* p, std::size_t) noexcept { uncounted(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { uncounted(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { uncounted(p); }
