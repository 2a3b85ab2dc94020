#!/usr/bin/env bash
# The README's test command: installs, configures, builds and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
meson test -C build --print-errorlogs --num-processes 2 "$@"
