#!/usr/bin/env python3
"""Plots the benchmark suite's results with gnuplot (Debian's gnuplot-nox):
  throughput.png  entries/s against batch size B, W1 (durable) and W2
                  (buffered) per backend, with W0 and W0p for reference
  latency.png     W1's p50 and p99 batch latency against B per backend

Usage: bench_plot.py results.json OUTPUT_DIR
"""
import json
import os
import subprocess
import sys


def series(runs, prefix, key):
    """{backend: [(B, value)]} for runs named prefix/<backend>/.../B:<n>."""
    out = {}
    for b in runs:
        parts = [p for p in b["name"].split("/") if p != "real_time"]
        if parts[0] != prefix or not parts[-1].startswith("B:") or key not in b:
            continue
        if prefix in ("W1", "W2") and "/".join(parts[2:4]) != "boost/binary":
            continue
        out.setdefault(parts[1], []).append((int(parts[-1][2:]), b[key]))
    return {k: sorted(v) for k, v in out.items()}


def plot(path, title, ylabel, curves):
    """curves: [(label, [(x, y)])] drawn as lines with points, log-log."""
    data = path + ".dat"
    with open(data, "w") as f:
        for label, points in curves:
            f.write(f'"{label}"\n')
            for x, y in points:
                f.write(f"{x} {y}\n")
            f.write("\n\n")
    plots = ", ".join(f'"{data}" index {i} using 1:2 with linespoints title columnhead(1)'
                      for i in range(len(curves)))
    script = f"""
set terminal pngcairo size 900,560 noenhanced
set output "{path}"
set title "{title}"
set logscale xy
set xlabel "batch size B (entries of 256 bytes)"
set ylabel "{ylabel}"
set key outside right
set grid
plot {plots}
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    os.remove(data)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        runs = [b for b in json.load(f)["benchmarks"] if b.get("run_type", "iteration") == "iteration"]
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    curves = []
    for workload in ("W0", "W0p", "W1", "W2"):
        for backend, points in series(runs, workload, "items_per_second").items():
            curves.append((f"{workload} {backend}", points))
    plot(os.path.join(out, "throughput.png"), "entries/s against batch size", "entries/s", curves)
    curves = []
    for key in ("p50_us", "p99_us"):
        for backend, points in series(runs, "W1", key).items():
            curves.append((f"W1 {backend} {key[:3]}", points))
    plot(os.path.join(out, "latency.png"), "W1 batch latency", "microseconds", curves)
    print(f"plots: {out}/throughput.png, {out}/latency.png")


if __name__ == "__main__":
    main()
