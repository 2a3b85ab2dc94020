#!/bin/sh
# Builds the decoders' libFuzzer target with clang (AddressSanitizer and
# UBSan) and runs it from the seed corpus for a bounded time.
#
# usage: run.sh <source-dir> <build-dir>
# $SESHAT_FUZZ_SECONDS sets the run time (default 20; a long run: 3600).
# Exits non-zero when the target crashes, leaks, hangs or trips a sanitizer;
# the input that did it is left in <build-dir>.
set -eu
src=$1
out=$2
seconds=${SESHAT_FUZZ_SECONDS:-20}
mkdir -p "$out"
clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$src/include" -I"$src/backends/segment/include" -I"$src/tests" \
  "$src/tests/fuzz/decoders_fuzz.cpp" -o "$out/decoders_fuzz" -pthread -lboost_serialization
# Work on a copy: the fuzzer adds what it finds to its corpus directory.
rm -rf "$out/corpus"
cp -r "$src/tests/fuzz/corpus" "$out/corpus"
cd "$out"
./decoders_fuzz -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 \
  -print_final_stats=1 corpus 2>fuzz.log || { tail -n 40 fuzz.log; exit 1; }
grep -E "^Done|number_of_executed_units|new_units_added" fuzz.log
