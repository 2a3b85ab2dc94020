#!/usr/bin/env bash
# Installs what is missing, configures build/ (once) and builds it.
# Usage: scripts/build.sh [meson setup options ...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ ! -f build/build.ninja ]; then
  meson setup build "$@"
fi
ninja -C build
