#!/usr/bin/env python3
"""Benchmark row: a 3-node nuraft_kv cluster under one client load, with
seshat_log_store and with NuRaft's in-memory example log store (the upper
bound: it keeps nothing on disk), as a ratio.

Runs in a network namespace with only loopback, as the cluster test does.
Each run: 3 fresh nodes (same backend for the state machine and NuRaft's
state, parallel log appending on), a warm-up, then `--commands` puts
through the leader, pipelined `--window` at a time; the figure is
acknowledged commands per second.

usage: nuraft_cluster_bench.py <path to nuraft_kv> [--backend rocksdb|leveldb]
       [--commands N] [--window N] [--json FILE]
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "cluster"))
import cluster_test as ct  # noqa: E402
import nuraft_cluster_test as nct  # noqa: E402


def run(binary, backend, log_store, commands, window):
    root = tempfile.mkdtemp(prefix=f"seshat-nuraft-bench-{log_store}-")
    extra = ["--backend", backend, "--log-store", log_store, "--parallel", "1",
             "--snapshot-distance", "100000", "--reserved-logs", "100000",
             "--election-timeout", "500", "--heartbeat", "50"]
    cluster = ct.Cluster(os.path.abspath(binary), root, 21000, extra)
    try:
        for i in (1, 2, 3):
            cluster.start(i)
        deadline = time.time() + 120
        ct.find_leader(cluster, deadline)
        acked = {}
        ct.write(cluster, [(f"w{i}", "x") for i in range(500)], acked, deadline, window=window)
        t = time.time()
        ct.write(cluster, [(f"k{i}", f"v{i}") for i in range(commands)], acked, deadline,
                 window=window)
        return commands / (time.time() - t)
    finally:
        cluster.stop_all()
        shutil.rmtree(root, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--backend", default="rocksdb")
    ap.add_argument("--commands", type=int, default=5000)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--json")
    a = ap.parse_args()
    sys.argv = [sys.argv[0]] + sys.argv[1:]
    code = nct.in_namespace()
    if code is not None:
        return code
    nct.loopback_up()
    seshat = run(a.binary, a.backend, "seshat", a.commands, a.window)
    memory = run(a.binary, a.backend, "nuraft-memory", a.commands, a.window)
    row = {"name": f"nuraft_cluster/{a.backend}/window:{a.window}", "commands": a.commands,
           "seshat_commands_per_s": round(seshat), "nuraft_memory_commands_per_s": round(memory),
           "ratio_seshat_to_memory": round(seshat / memory, 3)}
    print(f"{row['name']}: seshat_log_store {seshat:.0f} commands/s, NuRaft in-memory "
          f"{memory:.0f} commands/s, ratio {seshat / memory:.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(row, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
