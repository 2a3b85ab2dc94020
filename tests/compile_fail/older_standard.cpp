// expect-error: seshat needs C++20: compile with -std=c++20
// flags: -std=c++17
// A user's build without C++20: one message, then the compiler stops.
#include "seshat/backends/memory_backend.hpp"
#include "seshat/log_store.hpp"

int main() {}
