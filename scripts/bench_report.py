#!/usr/bin/env python3
"""Prints the benchmark suite's results as one table with the ratios of
bench/WORKLOADS.md, all from the same run:
  x W0, x W0p   a durable workload's entries/s over the raw file's (W0, W0p)
                at the same batch size
  x rocksdb     a backend's entries/s over RocksDB's on the same benchmark
  x raw         seshat's entries/s over the same work done by hand on the
                backend's own API (the *-raw/seed rows)
  x W1 B=1      W3's entries/s over W1's at B=1 on the same backend

Usage: bench_report.py results.json [--markdown]
"""
import json
import sys

UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def split(name):
    """"W1/rocksdb/boost/binary/B:16" -> (parts, {"B": "16"})"""
    parts = [p for p in name.split("/")
             if p != "real_time" and not p.startswith("iterations:")]
    params = dict(p.split(":", 1) for p in parts if ":" in p)
    return parts, params


def other(b, workload, backend):
    """The workload's own figures: W5's purge time and disk use, W6's open
    time, W7's build and install times, W8's device bytes per payload byte
    and that over W0's and over a raw file synced after as many bytes as
    seshat wrote per batch."""
    if workload == "W5":
        return f"purge {b.get('purge_us', 0) / 1e3:.1f} ms, {b.get('disk_mb_after', 0):.0f} MB on disk"
    if workload == "W6":
        # A row that times the open alone says so in open_ms; otherwise its
        # iteration is the open (real_time).
        ms = b.get("open_ms", b["real_time"] * UNIT_NS[b.get("time_unit", "ns")] / 1e6)
        return f"open {ms:.1f} ms"
    if workload == "W7" and "ms_build" in b:
        return (f"build {b['ms_build']:.0f} ms, install {b['ms_install']:.0f} ms, "
                f"{b['MB']:.0f} MB, {b['MB_per_s']:.0f} MB/s")
    if workload == "W8" and "page_bytes_per_payload_byte" in b:
        # The log engine's rows count device bytes by page themselves (the
        # kernel's write_bytes charges a re-dirtied large folio whole).
        return (f"write-amp {b['page_bytes_per_payload_byte']:.2f} by page = "
                f"{b['page_bytes_over_same_bytes_floor']:.2f} x the same-bytes floor; "
                f"disk {b.get('disk_over_live', 0):.2f} x live")
    if workload == "W8" and "device_bytes_per_payload_byte" in b:
        amp = b["device_bytes_per_payload_byte"]
        text = f"write-amp {amp:.2f}"
        if backend != "raw-fsync" and W8_FLOOR.get("amp"):
            text += f" = {amp / W8_FLOOR['amp']:.2f} x W0's"
        if b.get("same_bytes_floor", 0) > 0 and backend != "memory":
            text += (f"; {b['x_same_bytes_floor']:.2f} x a raw file synced every "
                     f"{b['same_bytes_per_sync']:.0f} B (seshat's bytes per batch)")
        return text
    return ""


W8_FLOOR = {}


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    markdown = "--markdown" in sys.argv
    with open(sys.argv[1]) as f:
        runs = [b for b in json.load(f)["benchmarks"]
                if b.get("run_type", "iteration") == "iteration"]

    rate = {"/".join(split(b["name"])[0]): b.get("items_per_second", 0.0) for b in runs}
    for b in runs:
        if b["name"].startswith("W8/raw-fsync"):
            W8_FLOOR["amp"] = b.get("device_bytes_per_payload_byte")

    def ratio(eps, key):
        ref = rate.get(key)
        return f"{eps / ref:.2f}" if ref else ""

    header = ["benchmark", "entries/s", "MB/s", "p50 us", "p99 us", "CPU ns/entry",
              "x W0", "x W0p", "x rocksdb", "x raw", "x W1 B=1", "fsyncs/round", "other", "peak RSS MB"]
    rows = []
    for b in runs:
        parts, params = split(b["name"])
        workload, backend = parts[0], parts[1]
        batch = params.get("B")
        eps = b.get("items_per_second", 0.0)
        cpu_ns = ""
        if workload == "W2" and batch:
            cpu_ns = f"{b['cpu_time'] * UNIT_NS[b.get('time_unit', 'ns')] / int(batch):,.0f}"
        durable = workload == "W1"
        row = [
            "/".join(parts),
            f"{eps:,.0f}",
            f"{b.get('bytes_per_second', 0.0) / 1e6:,.1f}",
            f"{b['p50_us']:.1f}" if "p50_us" in b else "",
            f"{b['p99_us']:.1f}" if "p99_us" in b else "",
            cpu_ns,
            ratio(eps, f"W0/raw-fsync/B:{batch}") if durable else "",
            ratio(eps, f"W0p/raw-fsync-prealloc/B:{batch}") if durable else "",
            ratio(eps, "/".join([workload, "rocksdb-raw" if backend.endswith("-raw")
                                 else "rocksdb"] + parts[2:]))
            if not workload.startswith("W0") else "",
            ratio(eps, "/".join([workload, backend + "-raw", "seed"] + [p for p in parts if p.startswith("B:")]))
            if workload in ("W1", "W2", "W4") and not backend.endswith("-raw") else "",
            ratio(eps, f"W1/{backend}/boost/binary/B:1") if workload == "W3" else "",
            f"{b['fsyncs_per_round']:.2f}" if "fsyncs_per_round" in b else "",
            other(b, workload, backend),
            f"{b['peak_rss_mb']:.0f}" if "peak_rss_mb" in b else "",
        ]
        if b.get("error_occurred"):
            row[1] = "ERROR: " + b.get("error_message", "")
        rows.append(row)

    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]
    sep = " | " if markdown else "  "

    def line(r):
        cells = [c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)]
        return ("| " + sep.join(cells) + " |") if markdown else sep.join(cells)

    print(line(header))
    if markdown:
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    else:
        print(sep.join("-" * w for w in widths))
    for r in rows:
        print(line(r))
    print("\n" + __doc__.split("\n\n")[0].replace("Prints", "Ratios:", 1)
          if not markdown else "")


if __name__ == "__main__":
    main()
