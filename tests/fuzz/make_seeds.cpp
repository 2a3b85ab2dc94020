// Writes the entry seeds of the fuzz corpus (real encoded entries, each
// after the byte that selects its decoder in decoders_fuzz.cpp):
//   g++ -std=c++20 -Iinclude -Ibackends/segment/include -Itests tests/fuzz/make_seeds.cpp \
//     -pthread -lboost_serialization \
//     -o /tmp/make_seeds && /tmp/make_seeds tests/fuzz/corpus
#include <fstream>
#include <string>
#include <unordered_map>

#include <boost/serialization/library_version_type.hpp>  // unordered_map.hpp needs it first
#include <boost/serialization/unordered_map.hpp>

#include "kv_entries.hpp"
#include "log_entries.hpp"
#include "seshat/cluster_metadata.hpp"
#include "seshat/backends/segment/segment_log.hpp"
#include "seshat/detail/segment_format.hpp"

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
  // The segment format (selectors 16-18): a header, a frame of every record
  // kind for segment 42, a footer of segment 42.
  namespace seg = detail::segment;
  auto raw = [&](const std::string& name, char selector, const std::string& bytes) {
    std::ofstream(dir + "/" + name, std::ios::binary) << std::string(1, selector) + bytes;
  };
  raw("segment_header", 16, seg::encode_header({512, 42, 17, 1 << 20, 1796010499438}));
  std::string frame;
  const std::size_t start = seg::begin_frame(frame, {42, 9, 4096});
  const seg::entry_input entries[] = {{3, "a"}, {3, "bc"}, {4, "def"}};
  if (!seg::append_entries(frame, 42, {3, 7}, 5, entries).ok()) return 1;
  seg::encode_record(frame, seg::vote_record{{0, 0}, vote{7, 2, true}});
  seg::encode_record(frame, seg::committed_record{{3, 7}, {4, 6}});
  seg::encode_record(frame, seg::truncate_record{{3, 7}, 7});
  seg::encode_record(frame, seg::purge_record{{3, 7}, {3, 5}});
  seg::encode_record(frame, seg::reset_record{{0, 0}, {9, 100}});
  seg::encode_record(frame, seg::state_record{{3, 7}, vote{8, 1, false}, log_id{4, 6}, log_id{3, 5}, log_id{4, 6}});
  seg::finish_frame(frame, start);
  raw("segment_frame", 17, frame);
  seg::group_summary s;
  s.group = {3, 7};
  s.cut = 3;
  s.purged = log_id{1, 4};
  s.vote_value = vote{2, 1, true};
  s.committed = log_id{2, 9};
  s.own.base = 5;
  s.own.count = 6;
  s.own.runs = {{1, 2}, {2, 4}};
  s.own.records = {{4096, 0}, {4200, 2}, {4300, 5}};
  raw("segment_footer", 18, seg::encode_footer({5000, 3, 77, {s}}, 42));
  // Whole segment images for the engine's recovery (selector 19, then the
  // recovery mode byte): a 16 KiB segment of two groups as a crash leaves it
  // (unsealed), and the same after a clean close (sealed).
  {
    detail::memory_log_fs mem;
    segment_log_options o;
    o.segment_bytes = 16 * 1024;
    auto log = segment_log::open(mem, "/log", o);
    if (!log.ok()) return 1;
    const std::string p1(60, 'x'), p2(90, 'y');
    const log_entry_input in[] = {{1, p1}, {1, p2}, {1, p1}};
    if (!(*log)->save_vote({0, 0}, vote{2, 1, true}).ok()) return 1;
    for (std::uint64_t i = 1; i <= 12; i += 3)
      if (!(*log)->append({3, 5}, i, in, true).ok() || !(*log)->append({0, 0}, i, in, true).ok()) return 1;
    if (!(*log)->truncate_from({3, 5}, 11, true).ok() || !(*log)->purge_to({0, 0}, log_id{1, 4}).ok() ||
        !(*log)->save_committed({3, 5}, log_id{2, 9}).ok() || !(*log)->sync().ok())
      return 1;
    const std::string name = "/log/" + seg::segment_name(1);
    raw("segment_image_unsealed", 19, std::string(1, '\0') + mem.contents(name));
    if (!(*log)->close().ok()) return 1;
    raw("segment_image_sealed", 19, std::string(1, '\1') + mem.contents(name));
  }
  return 0;
}
