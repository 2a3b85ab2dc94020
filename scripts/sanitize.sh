#!/usr/bin/env bash
# Runs seshat's tests once more under the sanitizers, each in its own tree:
#
#   build-asan/  every test of seshat's code (the doctest suites, the process
#                kill, the 3-node cluster) under AddressSanitizer, with
#                LeakSanitizer, and UndefinedBehaviorSanitizer. The first
#                report fails the test (halt_on_error,
#                -fno-sanitize-recover=undefined). The libFuzzer run, the
#                compile-fail and the install tests run in build/ only.
#   build-tsan/  the doctest suite "concurrency" (several threads on one
#                store: group commit, snapshots while writing) under
#                ThreadSanitizer, on the memory and LevelDB backends (not
#                RocksDB: tests/meson.build says why).
#
# Both build at -O0 with line tables (-g1) and without the benchmarks or
# anything else that is not a test: the build is most of the time this
# takes, and instrumented template code compiles about 4 times slower at
# -O1 than at -O0 (docs/testing.md has the figures). RocksDB and LevelDB
# come from Debian, uninstrumented: ASan still checks every access seshat
# makes to their memory, TSan sees their locks through the pthread calls.
# tests/sanitizer/tsan.supp holds the suppressions, each for a report inside
# a Debian library (never in seshat's code), with the reason; no leak needs
# one.
#
# Prints one "N passed, N failed, N skipped" line per tree; exits non-zero
# when a tree fails to build or a test fails. Meson's test log of each tree,
# build-*/meson-logs/testlog.json, is removed first, so a tree that did not
# build leaves none. Called by scripts/test.sh after the plain run.
#
# usage: scripts/sanitize.sh [asan] [tsan]   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

trees=("$@")
[ ${#trees[@]} -eq 0 ] && trees=(asan tsan)
supp="$PWD/tests/sanitizer"
common_args="-O0 -g1 -fno-omit-frame-pointer"

# Configures build-<tree> with the sanitizer options (again, when it exists:
# the options may have changed since).
configure() {
  local dir=$1 sanitize=$2 args=$3
  shift 3
  # NuRaft (adapters/nuraft) is left out: building it again instrumented
  # would cost CI minutes for code that is not seshat's; its adapter's tests
  # run in build/. Never a download either (scripts/build.sh).
  local options=(-Dbuildtype=plain -Db_ndebug=false -Db_sanitize="$sanitize"
                 -Dbenchmarks=disabled -Dnuraft=disabled -Dwrap_mode=nodownload
                 -Dcpp_args="$args" -Dcpp_link_args="$args" "$@")
  if [ -f "$dir/build.ninja" ]; then
    meson configure "$dir" "${options[@]}" >/dev/null
  else
    meson setup "$dir" "${options[@]}" >/dev/null
  fi
}

run_tree() {
  local tree=$1 dir=build-$1
  rm -f "$dir/meson-logs/testlog.json"
  case $tree in
    asan)
      configure "$dir" address,undefined "$common_args -fno-sanitize-recover=undefined"
      export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1:print_summary=1"
      export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:print_summary=1"
      ;;
    tsan)
      configure "$dir" thread "$common_args" -Dcanonical_raft=disabled
      export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$supp/tsan.supp:print_suppressions=0"
      ;;
    *) echo "sanitize.sh: unknown tree '$tree' (asan or tsan)" >&2; return 1 ;;
  esac
  echo "== $dir: building" >&2
  ninja -C "$dir" || return 1
  echo "== $dir: testing" >&2
  # Sanitized code runs several times slower than the plain build.
  meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes 2 \
    --timeout-multiplier 3
}

status=0
for tree in "${trees[@]}"; do
  ( run_tree "$tree" ) || status=1
  printf '%s: ' "build-$tree"
  python3 scripts/test_summary.py "build-$tree/meson-logs/testlog.json"
done
exit "$status"
