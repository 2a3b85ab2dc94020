#!/bin/sh
# Compile-fail tests of log_store's policy checks.
#
# usage: run.sh <compiler> <source-dir> <build-dir>
#
# Compiles each tests/compile_fail/*.cpp with -std=c++20 -fsyntax-only. The
# first line of each case says what must happen:
#   // expect: compiles            the case must compile (the control case);
#   // expect: <text>              the case must fail to compile with a
#                                  static assertion whose message contains
#                                  <text>, which must be part of a
#                                  static_assert message of log_store.hpp,
#                                  and no other log_store policy assertion.
#   // expect-error: <text>        the case must fail with an #error whose
#                                  text contains <text>, and that error
#                                  alone (the compiler stops there).
# A second line "// flags: <flags>" replaces -std=c++20 with <flags>.
# <compiler> may be a command with arguments ("ccache g++"); extra flags
# (say, -I for Boost outside the default paths) come from $CXXFLAGS. The
# compiler's output of each case is kept in <build-dir>/<case>.stderr.
# Exits non-zero when any case does not behave as expected.
set -u
if [ $# -ne 3 ]; then
  echo "usage: $0 <compiler> <source-dir> <build-dir>" >&2
  exit 2
fi
cxx=$1
src=$2
out=$3
header="$src/include/seshat/log_store.hpp"
mkdir -p "$out" || exit 2
[ -f "$header" ] || { echo "no $header" >&2; exit 2; }

assertion='static assertion failed|static_assert failed'
passed=0
failed=0
fail() {
  echo "FAIL $name: $1"
  [ -f "$log" ] && sed -n '1,15p' "$log" | sed 's/^/     | /'
  failed=$((failed + 1))
}

for case in "$src"/tests/compile_fail/*.cpp; do
  name=$(basename "$case" .cpp)
  log="$out/$name.stderr"
  rm -f "$log"
  expect=$(sed -n '1s|^// expect: ||p' "$case")
  expect_error=$(sed -n '1s|^// expect-error: ||p' "$case")
  flags=$(sed -n '2s|^// flags: ||p' "$case")
  [ -n "$flags" ] || flags=-std=c++20
  if [ -z "$expect" ] && [ -z "$expect_error" ]; then
    fail "its first line is not '// expect: <static_assert text>', '// expect-error: <text>' or '// expect: compiles'"
    continue
  fi
  if [ -n "$expect" ] && [ "$expect" != compiles ] && ! grep -qF -- "$expect" "$header"; then
    fail "'$expect' is not the text of a static_assert message in log_store.hpp"
    continue
  fi
  # shellcheck disable=SC2086  # $cxx, $CXXFLAGS and $flags may hold several words
  if $cxx ${CXXFLAGS:-} $flags -fsyntax-only -I"$src/include" \
      -I"$src/backends/memory/include" -I"$src/backends/segment/include" "$case" >"$log" 2>&1; then
    compiled=yes
  else
    compiled=no
  fi
  if [ -n "$expect_error" ]; then
    errors=$(grep -cE 'error' "$log")
    if [ $compiled = yes ]; then
      fail "it compiled; expected the error '$expect_error'"
    elif ! grep -F -- "$expect_error" "$log" | grep -q '#error'; then
      fail "it failed to compile, but not with the #error '$expect_error'"
    elif [ "$errors" -gt 3 ]; then
      fail "$errors lines of errors: the compiler did not stop at the #error"
    else
      echo "ok   $name: $expect_error ($errors error lines)"
      passed=$((passed + 1))
    fi
    continue
  fi
  if [ "$expect" = compiles ]; then
    if [ $compiled = yes ]; then
      echo "ok   $name: compiles"
      passed=$((passed + 1))
    else
      fail "it must compile, but does not"
    fi
    continue
  fi
  if [ $compiled = yes ]; then
    fail "it compiled; expected the static assertion '$expect'"
    continue
  fi
  # GCC and newer Clang say "static assertion failed", older Clang
  # "static_assert failed".
  if ! grep -F -- "$expect" "$log" | grep -qE "$assertion"; then
    fail "it failed to compile, but not with the static assertion '$expect'"
    continue
  fi
  others=$(grep -E "$assertion" "$log" | grep -F "seshat::log_store:" | grep -vF -- "$expect")
  if [ -n "$others" ]; then
    fail "other log_store policy assertions fired too: $others"
    continue
  fi
  echo "ok   $name: $expect"
  passed=$((passed + 1))
done

echo "$passed passed, $failed failed"
[ $failed -eq 0 ] && [ $passed -gt 0 ]
