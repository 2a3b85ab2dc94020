#!/usr/bin/env bash
# Runs prometheus_sample and checks its output with `promtool check metrics`
# (format and lint). Skipped (exit 77) when meson found no promtool: install
# the Debian package `prometheus` (scripts/setup.sh does) and reconfigure.
#   promtool_check.sh <promtool or ""> <prometheus_sample> <scratch directory>
set -euo pipefail
promtool=$1 sample=$2 scratch=$3
if [ -z "$promtool" ]; then
  echo "SKIP: promtool was not found when meson configured this build directory;" \
       "install the Debian package prometheus and run meson setup --reconfigure" >&2
  exit 77
fi
mkdir -p "$(dirname "$scratch")"
text="$scratch.prom"
"$sample" "$scratch" >"$text"
echo "prometheus_sample wrote $(wc -l <"$text") lines to $text"
"$promtool" check metrics <"$text"
echo "promtool check metrics: no problems"
