#!/usr/bin/env python3
"""Checks that tests/meson.build runs every doctest test case exactly once.

Each meson test of a doctest program selects doctest test suites
(--test-suite=a,b). For every program this checks that each suite named
selects at least one test case, that no suite is named by two of its meson
tests, and that together they select every test case the program holds: a
test case outside every suite named (a new file without its suite in
tests/meson.build, a suite renamed) would otherwise never run.

usage: check_doctest_selection.py PROGRAM 'TEST=SUITE,SUITE' ['TEST=...' ...]
                                  [-- PROGRAM ...]
"""
import re
import subprocess
import sys


def count(program, *filters):
    out = subprocess.run([program, "--count", *filters], check=True,
                         capture_output=True, text=True).stdout
    m = re.search(r"passing the current filters: (\d+)", out)
    if not m:
        sys.exit(f"{program} --count {' '.join(filters)}: no count in its output:\n{out}")
    return int(m.group(1))


def unselected(program, suites):
    out = subprocess.run([program, "--list-test-cases",
                          "--test-suite-exclude=" + ",".join(suites)],
                         check=True, capture_output=True, text=True).stdout
    return [line for line in out.splitlines()
            if line and not line.startswith("[doctest]") and not line.startswith("=====")]


def check(program, runs):
    errors = []
    named = {}
    selected = 0
    for run in runs:
        test, _, suites = run.partition("=")
        suites = [s for s in suites.split(",") if s]
        for suite in suites:
            if suite in named:
                errors.append(f"suite '{suite}' is run by both '{named[suite]}' and '{test}'")
            named[suite] = test
            n = count(program, "--test-suite=" + suite)
            if n == 0:
                errors.append(f"'{test}': suite '{suite}' selects no test case of {program}")
            selected += n
    total = count(program)
    if selected != total:
        missing = unselected(program, list(named))
        errors.append(f"{program} holds {total} test cases, its meson tests select {selected}; "
                      f"in no suite they name ({len(missing)}):\n    " + "\n    ".join(missing))
    print(f"{program}: {total} test cases, in {len(runs)} meson test(s) over {len(named)} suite(s)")
    return errors


def main(argv):
    groups, current = [], []
    for a in argv:
        if a == "--":
            groups.append(current)
            current = []
        else:
            current.append(a)
    groups.append(current)
    errors = []
    for g in groups:
        if g:
            errors += check(g[0], g[1:])
    for e in errors:
        print("error: " + e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
