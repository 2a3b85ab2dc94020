#!/usr/bin/env python3
"""Prints "N passed, N failed, N skipped" over meson test logs.

usage: test_summary.py <testlog.json> ...
A log that does not exist counts as one failure: its tree did not build or
its tests did not run.
"""
import json
import sys

results = []
missing = 0
for path in sys.argv[1:]:
    try:
        with open(path) as log:
            results += [json.loads(line)["result"] for line in log if line.strip()]
    except FileNotFoundError:
        print(f"{path}: no test log (the tree did not build or its tests did not run)",
              file=sys.stderr)
        missing += 1
passed = sum(r in ("OK", "EXPECTEDFAIL") for r in results)
skipped = sum(r == "SKIP" for r in results)
failed = len(results) - passed - skipped + missing
print(f"{passed} passed, {failed} failed, {skipped} skipped")
