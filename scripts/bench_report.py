#!/usr/bin/env python3
"""Prints the benchmark suite's results as one table with the ratios of
bench/WORKLOADS.md: each durable workload against W0 and W0p at the same
batch size, and each backend against RocksDB on the same workload.

Usage: bench_report.py results.json [--markdown]
"""
import json
import sys

UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def parse(name):
    # "W1/rocksdb/B:16/real_time" -> ("W1", "rocksdb", {"B": "16"})
    parts = [p for p in name.split("/") if p != "real_time"]
    params = dict(p.split(":", 1) for p in parts[2:] if ":" in p)
    return parts[0], parts[1] if len(parts) > 1 else "", params


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    markdown = "--markdown" in sys.argv
    with open(sys.argv[1]) as f:
        runs = [b for b in json.load(f)["benchmarks"] if b.get("run_type", "iteration") == "iteration"]

    rate = {}
    for b in runs:
        workload, backend, params = parse(b["name"])
        rate[(workload, backend, params.get("B"))] = b.get("items_per_second", 0.0)

    header = ["benchmark", "entries/s", "MB/s", "p50 us", "p99 us", "CPU ns/entry",
              "x W0", "x W0p", "x rocksdb"]
    rows = []
    for b in runs:
        workload, backend, params = parse(b["name"])
        batch = params.get("B")
        eps = b.get("items_per_second", 0.0)
        mbs = b.get("bytes_per_second", 0.0) / 1e6
        cpu_ns = b["cpu_time"] * UNIT_NS[b.get("time_unit", "ns")] / int(batch) if batch else None

        def ratio(key):
            ref = rate.get(key)
            return f"{eps / ref:.2f}" if ref else ""

        durable = workload == "W1"
        rows.append([
            b["name"].replace("/real_time", ""),
            f"{eps:,.0f}",
            f"{mbs:,.1f}",
            f"{b['p50_us']:.1f}" if "p50_us" in b else "",
            f"{b['p99_us']:.1f}" if "p99_us" in b else "",
            f"{cpu_ns:,.0f}" if cpu_ns is not None else "",
            ratio(("W0", "raw-fsync", batch)) if durable else "",
            ratio(("W0p", "raw-fsync-prealloc", batch)) if durable else "",
            ratio((workload, "rocksdb", batch)) if workload not in ("W0", "W0p") else "",
        ])
        if b.get("error_occurred"):
            rows[-1][1] = "ERROR: " + b.get("error_message", "")

    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    sep = " | " if markdown else "  "
    def line(r):
        cells = [str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(r)]
        return ("| " + sep.join(cells) + " |") if markdown else sep.join(cells)
    print(line(header))
    print(("|" + "|".join("-" * (w + 2) for w in widths) + "|") if markdown else sep.join("-" * w for w in widths))
    for r in rows:
        print(line(r))
    print("\nx W0, x W0p: entries/s over the raw file's at the same batch size (durable workloads);"
          " x rocksdb: over RocksDB's on the same workload. Ratios are from this one run.")


if __name__ == "__main__":
    main()
