// seshat/detail/boost_serializer_map.hpp: the definition of Boost's
// archive_serializer_map<Archive>, which Boost compiles only for its own
// archives. Pointers to exported classes need it for seshat's archives; as
// a template included here, it is instantiated where used. Boost's .ipp
// has no include guard, so it is included from this header only.
#pragma once

#include <boost/archive/impl/archive_serializer_map.ipp>
