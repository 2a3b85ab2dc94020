// seshat/detail/require_cxx20.hpp: seshat is C++20. Included first by every
// public header, so that an older -std gives one message instead of a page
// of errors from the code that follows.
#pragma once

#if __cplusplus < 202002L
#error "seshat needs C++20: compile with -std=c++20 (meson: cpp_std=c++20; CMake: CMAKE_CXX_STANDARD 20)"
// This header does not exist: a missing include is fatal, so the compiler
// stops here.
#include "seshat-stops-here-without-cxx20"
#endif
