// libFuzzer target for every decoder of untrusted bytes that seshat owns.
// The first input byte chooses the decoder, the rest is its input. Each
// decoder must return an error or a value, never crash, hang, read out of
// bounds or allocate for a length it has not checked (the target is built
// with AddressSanitizer and UBSan, and run with an RSS limit), and what it
// accepts must encode back to an equivalent value. A whole segment image
// goes through the log engine's recovery and reads (case 19).
//
// Entries go through boost_serializer (the test entry types, and the cluster
// metadata, which is stored the same way) and memcpy_serializer: whatever
// decodes must re-encode to bytes that decode to the same value.
#include <boost/serialization/library_version_type.hpp>  // unordered_map.hpp needs it first
#include <boost/serialization/unordered_map.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <type_traits>
#include <variant>
#include <vector>
#include <string>
#include <string_view>
#include <unordered_map>

#include "seshat/backends/segment/segment_log.hpp"
#include "kv_entries.hpp"
#include "log_entries.hpp"
#include "seshat/cluster_metadata.hpp"
#include "seshat/detail/segment_format.hpp"
#include "seshat/detail/store_marker.hpp"
#include "seshat/envelope.hpp"
#include "seshat/hard_state.hpp"
#include "seshat/key_format.hpp"
#include "seshat/log_key.hpp"
#include "seshat/membership.hpp"
#include "seshat/serializer.hpp"
#include "seshat/snapshot.hpp"
#include "seshat/stored_value.hpp"

namespace {

using namespace seshat;

struct pod {
  std::uint64_t term, index;
  char payload[16];
};

void require(bool ok) {
  if (!ok) std::abort();
}

bool same(const test::kv_entry& a, const test::kv_entry& b) {
  return a.term == b.term && a.index == b.index && a.key == b.key && a.value == b.value;
}
template <class T>
bool same(const T& a, const T& b) {
  return a == b;
}

// Decodes `in` as a T through S; what decodes must re-encode, and those
// bytes must decode to the same value.
template <class S, class T>
void round_trip(std::string_view in) {
  T value{};
  if (!S::decode(in, value).ok()) return;
  std::string out;
  S::encode(value, out);
  T again{};
  require(S::decode(out, again).ok() && same(again, value));
}

namespace seg = detail::segment;

// A frame of segment 42 at offset 4096: what decodes re-encodes to the same
// bytes, and its records replay without a crash (refused or applied).
void segment_frame(std::string_view in) {
  auto f = seg::decode_frame(in, 4096, 42);
  if (!f.ok() || f->what != seg::scanned_frame::kind::frame) return;
  std::vector<seg::record> records;
  if (!seg::decode_records(*f, records).ok()) return;
  std::string again;
  const std::size_t start = seg::begin_frame(again, f->header);
  bool entries_check = true;
  for (const seg::record& r : records) {
    std::visit([&](const auto& b) {
      using T = std::decay_t<decltype(b)>;
      if constexpr (std::is_same_v<T, seg::entries_record>) {
        std::vector<seg::entry_input> entries;
        for (std::uint32_t i = 0; i < b.count; ++i) {
          auto payload = seg::entry_payload(b, 42, i);
          if (!payload.ok()) {
            entries_check = false;
            return;
          }
          entries.push_back({b.term_of(i), *payload});
        }
        require(seg::append_entries(again, 42, b.group, b.first, entries).ok());
      } else {
        seg::encode_record(again, b);
      }
    }, r.body);
  }
  seg::finish_frame(again, start);
  if (entries_check) require(again == in.substr(0, f->size));
  std::map<seg::group_address, seg::replayed_group> groups;
  std::map<seg::group_address, seg::summary_builder> builders;
  for (const seg::record& r : records) {
    (void)groups[r.group()].apply(r, 42);
    builders.try_emplace(r.group(), r.group()).first->second.add(r);
  }
  for (const auto& [g, b] : builders) (void)b.finish();
}

// A footer at the end of a 1 MiB segment 42, re-encoded byte for byte.
void segment_footer(std::string_view in) {
  const std::uint64_t size = 1 << 20;
  if (in.size() + 32 + 4096 > size) return;
  auto f = seg::decode_footer(in, size - 32 - in.size(), 42, size);
  if (!f.ok()) return;
  require(seg::encode_footer(*f, 42) == in);
  seg::replayed_group g;
  for (const seg::group_summary& s : f->groups) (void)g.apply(s, 42);
}

// The whole recovery of a fuzzed segment image, the only file of a log on
// memory_log_fs (named after its header's seq when that decodes): open
// refuses with corrupted_data (version_mismatch for a newer header) or
// opens, and then every read of every group that recovery found returns
// its entries or corrupted_data. The first byte picks the recovery mode.
void segment_recovery(std::string_view in) {
  if (in.empty()) return;
  const auto mode = in[0] & 1 ? recovery_mode::absolute_consistency : recovery_mode::tolerate_corrupted_tail;
  const std::string_view image = in.substr(1);
  std::uint64_t seq = 1;
  if (auto h = seg::decode_header(image.substr(0, std::min(image.size(), seg::k_header_bytes))); h.ok())
    seq = h->seq;
  detail::memory_log_fs mem;
  require(mem.create_directory("/log").ok());
  auto f = mem.open("/log/" + seg::segment_name(seq), {.create_exclusive = true});
  require(f.ok());
  const std::string_view pieces[] = {image};
  require(mem.pwrite(*f, 0, pieces, {}).ok() && mem.close(*f).ok());
  // The groups, from a recovery of a copy (recover() seals what it scanned).
  detail::memory_log_fs probe;
  require(probe.create_directory("/log").ok());
  auto g = probe.open("/log/" + seg::segment_name(seq), {.create_exclusive = true});
  require(g.ok());
  require(probe.pwrite(*g, 0, pieces, {}).ok() && probe.close(*g).ok());
  auto rec = seg::recover(probe, "/log", mode);
  if (!rec.ok()) {
    require(rec.status().is(errc::corrupted_data) || rec.status().is(errc::version_mismatch));
    return;
  }
  for (auto& s : rec->segments) (void)probe.close(s->file);
  segment_log_options o;
  o.segment_bytes = 16 * 1024;
  o.recovery = mode;
  auto log = segment_log::open(mem, "/log", o);
  require(log.ok());  // the same recovery, on the same bytes
  for (const auto& [group, gl] : rec->groups) {
    const auto st = (*log)->state(group);
    if (!st.first) continue;
    auto got = (*log)->read(group, *st.first, st.last->index + 1);
    require(got.ok() ? got->size() == st.last->index + 1 - *st.first : got.status().is(errc::corrupted_data));
  }
  require((*log)->close().ok());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  const column_family cf = column_family::data_kv;
  switch (data[0] % 20) {
    case 0: {  // the value envelope
      auto payload = envelope::open(in, cf, "k");
      if (payload.ok()) require(envelope::wrap(*payload) == in);
      break;
    }
    case 1: {  // a vote record
      vote v;
      if (codec::decode(in, v).ok()) {
        std::string out;
        codec::encode(v, out);
        vote again;
        require(codec::decode(out, again).ok() && again == v);
      }
      break;
    }
    case 2: {  // a log id record
      log_id id;
      if (codec::decode(in, id).ok()) {
        std::string out;
        codec::encode(id, out);
        require(out == in);
      }
      break;
    }
    case 3: {  // storage's log keys
      if (auto index = log_key::decode(in)) require(log_key::encode(*index) == in);
      break;
    }
    case 4: {  // the Raft layer's key formats
      if (auto index = binary_key_format::parse_index(in)) {
        std::string out;
        binary_key_format::append_index(out, *index);
        require(out == in);
      }
      if (auto index = decimal_key_format::parse_index(in)) {
        std::string out;
        decimal_key_format::append_index(out, *index);
        require(out == in);
      }
      break;
    }
    case 5: {  // a stored value (its payload: the envelope is case 0)
      auto v = stored_value::decode(envelope::wrap(in), cf, "k");
      if (v.ok()) require(stored_value::decode(v->encode(), cf, "k").ok());
      break;
    }
    case 6: {  // a membership record (its payload)
      auto m = membership::decode(envelope::wrap(in), cf, "k");
      if (m.ok()) require(membership::decode(m->encode(), cf, "k").value() == *m);
      break;
    }
    case 7: {  // the snapshot manifest
      (void)detail::decode_manifest(in, "MANIFEST.seshat");
      break;
    }
    case 8: {  // the store marker
      auto m = detail::decode_marker(in, "SESHAT_STORE");
      if (m.ok()) require(detail::decode_marker(detail::encode_marker(*m), "SESHAT_STORE").ok());
      break;
    }
    case 9: {  // an entry through memcpy_serializer
      pod p;
      if (memcpy_serializer::decode(in, p).ok()) require(in.size() == sizeof p);
      break;
    }
    case 10:  // entries through boost_serializer
      round_trip<boost_serializer, test::text_entry>(in);
      break;
    case 11:
      round_trip<boost_serializer, test::kv_entry>(in);
      break;
    case 12:  // the cluster metadata: nested versioned classes, a map
      round_trip<boost_serializer, cluster_config>(in);
      break;
    case 13:
      round_trip<boost_serializer, shard_map>(in);
      break;
    case 14:  // an entry through memcpy_serializer
      round_trip<memcpy_serializer, test::fixed_entry>(in);
      break;
    case 15:  // an unordered container: its bucket count is only a hint
      round_trip<boost_serializer, std::unordered_map<std::string, std::uint64_t>>(in);
      break;
    case 16:  // a segment header
      if (auto h = seg::decode_header(in); h.ok()) require(seg::encode_header(*h) == in.substr(0, 4096));
      break;
    case 17:  // a frame and its records, replayed
      segment_frame(in);
      break;
    case 18:  // a footer: summaries
      segment_footer(in);
      break;
    case 19:  // a segment image, recovered by the log engine
      segment_recovery(in);
      break;
  }
  return 0;
}
