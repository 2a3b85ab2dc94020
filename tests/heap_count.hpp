// tests/heap_count.hpp: the bytes a program holds on its heap, counted by
// the global operator new and delete of tests/heap_count.cpp (linked into
// log_engine_tests): every allocation's malloc_usable_size plus malloc's
// 8-byte chunk header, while it is live. For the log engine's memory cases
// (bytes per idle group, index bytes per entry): read before and after,
// with the engine's threads idle, the difference is what the engine holds.
#pragma once

#include <cstdint>

namespace seshat::test {

// Heap bytes held through operator new now, on every thread.
std::int64_t heap_live_bytes();
// Calls of operator new since the program started, on every thread.
std::int64_t heap_allocations();

}  // namespace seshat::test
