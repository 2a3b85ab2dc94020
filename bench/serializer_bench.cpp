// S0: one entry of E payload bytes through each serializer alone, encode and
// decode, with no store: the per-entry cost a log_store pays on top of its
// backend (the W2 and W4 rows include it).
#include <string>

#include "bench_entries.hpp"
#include "bench_support.hpp"
#include "seshat/serializer.hpp"

namespace seshat::bench {
namespace {

template <class Serializer, class Entry>
void encode(benchmark::State& state) {
  Entry e;
  fill(e, 1, random_entries(1, k_entry_bytes)[0]);
  std::string out;
  for (auto _ : state) {
    out.clear();
    Serializer::encode(e, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(k_entry_bytes));
}

template <class Serializer, class Entry>
void decode(benchmark::State& state) {
  Entry e;
  fill(e, 1, random_entries(1, k_entry_bytes)[0]);
  std::string bytes;
  Serializer::encode(e, bytes);
  for (auto _ : state) {
    Entry back;
    status s = Serializer::decode(bytes, back);
    if (!s.ok()) return state.SkipWithError(s.to_string().c_str());
    benchmark::DoNotOptimize(back);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(k_entry_bytes));
}

BENCHMARK(encode<boost_serializer, boost_entry>)->Name("S0/boost/encode");
BENCHMARK(decode<boost_serializer, boost_entry>)->Name("S0/boost/decode");
BENCHMARK(encode<memcpy_serializer, pod_entry>)->Name("S0/memcpy/encode");
BENCHMARK(decode<memcpy_serializer, pod_entry>)->Name("S0/memcpy/decode");

}  // namespace
}  // namespace seshat::bench
