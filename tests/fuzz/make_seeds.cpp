// Writes the entry seeds of the fuzz corpus (real encoded entries, each
// after the byte that selects its decoder in decoders_fuzz.cpp):
//   g++ -std=c++20 -Iinclude -Itests tests/fuzz/make_seeds.cpp -lboost_serialization \
//     -o /tmp/make_seeds && /tmp/make_seeds tests/fuzz/corpus
#include <fstream>
#include <string>
#include <unordered_map>

#include <boost/serialization/library_version_type.hpp>  // unordered_map.hpp needs it first
#include <boost/serialization/unordered_map.hpp>

#include "kv_entries.hpp"
#include "log_entries.hpp"
#include "seshat/cluster_metadata.hpp"

using namespace seshat;

template <class S, class T>
void write(const std::string& path, char selector, const T& value) {
  std::string bytes(1, selector);
  S::encode(value, bytes);
  std::ofstream(path, std::ios::binary) << bytes;
}

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::string dir = argv[1];
  write<boost_serializer>(dir + "/boost_text_entry", 10, test::make_entry<test::text_entry>(2, 9));
  write<boost_serializer>(dir + "/boost_kv_entry", 11, test::puts(3, 5, 1).front());
  write<boost_serializer>(dir + "/boost_cluster_config", 12,
                          cluster_config{"c", {{1, "10.0.0.1:7000", "/d1"}, {2, "h:1", "/d2"}}});
  write<boost_serializer>(dir + "/boost_shard_map", 13,
                          shard_map{{{shard_id{1}, {1, 2, 3}}, {shard_id{2}, {4}}}});
  write<memcpy_serializer>(dir + "/memcpy_fixed_entry", 14,
                           test::make_entry<test::fixed_entry>(2, 9));
  write<boost_serializer>(dir + "/boost_unordered_map", 15,
                          std::unordered_map<std::string, std::uint64_t>{{"a", 1}, {"bc", 2}});
  return 0;
}
