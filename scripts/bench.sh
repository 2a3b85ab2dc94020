#!/usr/bin/env bash
# The README's benchmark command: installs, configures and builds, runs the
# benchmark suite (RocksDB first, then LevelDB and memory) on stores in
# build/bench-data, and prints one table of results with its ratios.
# Writes build/bench-results/: results.json (Google Benchmark JSON),
# report.md (the table) and throughput.png / latency.png (gnuplot).
#
# Usage: scripts/bench.sh [--full] [benchmark options, e.g. --benchmark_filter=W1]
#   default  every workload at WORKLOADS.md's sizes, short runs (~5 minutes)
#   --full   longer runs of each benchmark (more stable figures)
set -euo pipefail
cd "$(dirname "$0")/.."
min_time=0.3
if [ "${1:-}" = "--full" ]; then
  min_time=3
  shift
fi
scripts/setup.sh gnuplot-nox
scripts/build.sh
out=build/bench-results
mkdir -p build/bench-data "$out"
SESHAT_BENCH_DIR="$PWD/build/bench-data" build/bench/seshat_bench \
  --benchmark_min_time="$min_time" \
  --benchmark_out="$out/results.json" --benchmark_out_format=json "$@" | tee "$out/console.txt"
python3 scripts/bench_report.py "$out/results.json" --markdown >"$out/report.md"
python3 scripts/bench_report.py "$out/results.json"
python3 scripts/bench_plot.py "$out/results.json" "$out"
