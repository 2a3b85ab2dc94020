// seshat/version.hpp: library and on-disk schema versions.
#pragma once

#include "seshat/detail/require_cxx20.hpp"

#include <cstdint>

namespace seshat {

inline constexpr int k_version_major = 0;
inline constexpr int k_version_minor = 1;

// The on-disk schema this code writes and understands. A store whose schema
// is newer is refused with a version-mismatch error, never misread.
inline constexpr std::uint32_t k_schema_version = 1;

}  // namespace seshat
