#!/usr/bin/env bash
# The README's benchmark command: installs, configures and builds, runs the
# benchmark suite (RocksDB first, then LevelDB and memory) in
# build/bench-data, writes build/bench-results/results.json and prints a table.
# Extra arguments go to the benchmark binary (e.g. --benchmark_filter=W1).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
mkdir -p build/bench-data build/bench-results
SESHAT_BENCH_DIR="$PWD/build/bench-data" build/bench/seshat_bench \
  --benchmark_min_time=0.5 \
  --benchmark_out=build/bench-results/results.json --benchmark_out_format=json \
  "$@"
python3 scripts/bench_report.py build/bench-results/results.json
