#!/usr/bin/env bash
# The README's test command: installs, configures, builds and runs every test
# in build/, then again under the sanitizers (scripts/sanitize.sh: ASan+UBSan
# in build-asan/, TSan in build-tsan/). SESHAT_SANITIZE=0 skips the sanitizer
# trees (for a quick local run; CI always runs them).
# Arguments go to the plain run's `meson test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
status=0
meson test -C build --print-errorlogs --num-processes 2 "$@" || status=$?
logs=(build/meson-logs/testlog.json)
if [ "${SESHAT_SANITIZE:-1}" != 0 ]; then
  printf 'build: '
  python3 scripts/test_summary.py build/meson-logs/testlog.json
  scripts/sanitize.sh || status=1
  logs+=(build-asan/meson-logs/testlog.json build-tsan/meson-logs/testlog.json)
fi
# One closing line in the plain form, over every tree: "N passed, N failed, N skipped".
python3 scripts/test_summary.py "${logs[@]}" 2>/dev/null
exit "$status"
