#!/usr/bin/env python3
"""Cluster test for examples/kv_node (canonical raft over seshat).

Starts 3 kv_node processes on 127.0.0.1, writes commands through the
leader, SIGKILLs the leader with writes in flight, waits for a new leader,
keeps writing, restarts the killed node from its store and checks that it
catches up (by log or by snapshot install). Finally all three state
machines must be identical and hold every acknowledged command.

usage: cluster_test.py <path to kv_node> [--backend rocksdb|leveldb]
       [--shard N] [--commands N] [--keep]
python3 standard library only; bounded by a 90 s deadline.
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

DEADLINE_S = int(os.environ.get("CLUSTER_DEADLINE", "90"))


class Failure(Exception):
    pass


def free_base_port():
    # raft ports base+1..3, control ports base+101..103: find a free block.
    for _ in range(200):
        base = 20000 + (os.getpid() * 7 + int(time.time() * 1000)) % 30000
        ok = True
        for p in (1, 2, 3, 101, 102, 103):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", base + p))
            except OSError:
                ok = False
            finally:
                s.close()
            if not ok:
                break
        if ok:
            return base
        time.sleep(0.01)
    raise Failure("no free port block")


class Cluster:
    def __init__(self, binary, root, base, extra):
        self.binary, self.root, self.base, self.extra = binary, root, base, extra
        self.procs = {}

    def start(self, i):
        d = os.path.join(self.root, f"node{i}")
        log = open(os.path.join(self.root, f"node{i}.log"), "ab")
        self.procs[i] = subprocess.Popen(
            [self.binary, str(i), "3", str(self.base), d] + self.extra,
            stdout=log, stderr=log)

    def kill(self, i, sig=signal.SIGKILL):
        p = self.procs.pop(i)
        p.send_signal(sig)
        p.wait(timeout=10)

    def stop_all(self):
        for i in list(self.procs):
            try:
                self.kill(i, signal.SIGTERM)
            except subprocess.TimeoutExpired:
                self.kill(i, signal.SIGKILL)

    def alive(self):
        for i, p in self.procs.items():
            if p.poll() is not None:
                raise Failure(f"node {i} exited with {p.returncode} (see node{i}.log)")
        return list(self.procs)


class Conn:
    def __init__(self, cluster, i, timeout=2.0):
        self.s = socket.create_connection(("127.0.0.1", cluster.base + 100 + i), timeout=timeout)
        self.f = self.s.makefile("rw", newline="\n")

    def send(self, line):
        self.f.write(line + "\n")
        self.f.flush()

    def line(self):
        l = self.f.readline()
        if not l:
            raise ConnectionError("closed")
        return l.rstrip("\n")

    def cmd(self, line):
        self.send(line)
        return self.line()

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def ask(cluster, i, line):
    c = Conn(cluster, i)
    try:
        return c.cmd(line)
    finally:
        c.close()


def find_leader(cluster, deadline, exclude=()):
    while time.time() < deadline:
        for i in cluster.alive():
            if i in exclude:
                continue
            try:
                r = ask(cluster, i, "leader?").split()
            except OSError:
                continue
            if len(r) == 3 and r[2] == "leader" and int(r[1]) == i:
                return i
        time.sleep(0.05)
    raise Failure("no leader before the deadline")


def dump(cluster, i):
    c = Conn(cluster, i, timeout=5.0)
    try:
        c.send("dump")
        kv = {}
        while True:
            l = c.line()
            if l.startswith("END"):
                _, n, applied = l.split()
                return kv, int(applied)
            _, k, v = l.split(" ", 2)
            kv[k] = v
    finally:
        c.close()


def write(cluster, items, acked, deadline, window=64, on_first_window=None):
    """Writes items [(k, v)] through the leader, pipelined; retries what was
    not acknowledged (a put is idempotent). Records acks in `acked`."""
    pending = list(items)
    leader = None
    conn = None
    first = True
    while pending:
        if time.time() > deadline:
            raise Failure(f"{len(pending)} writes not acknowledged before the deadline")
        try:
            if conn is None:
                leader = find_leader(cluster, deadline)
                conn = Conn(cluster, leader, timeout=5.0)
            batch, pending = pending[:window], pending[window:]
            for k, v in batch:
                conn.send(f"put {k} {v}")
            if first and on_first_window:
                first = False
                on_first_window(leader)
            unacked = dict(batch)
            for _ in batch:
                r = conn.line().split()
                if r[0] == "OK":
                    acked[r[1]] = unacked.pop(r[1])
            if unacked:
                pending = list(unacked.items()) + pending
                conn.close()
                conn = None
                time.sleep(0.05)
        except (OSError, ConnectionError, Failure) as e:
            if isinstance(e, Failure) and "deadline" in str(e):
                raise
            pending = [kv for kv in batch if acked.get(kv[0]) != kv[1]] + pending
            if conn:
                conn.close()
            conn = None
            time.sleep(0.05)
    if conn:
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--backend", default="rocksdb")
    ap.add_argument("--shard", type=int, default=0)
    ap.add_argument("--commands", type=int, default=2000)
    ap.add_argument("--keep", action="store_true", help="keep the data directories")
    a = ap.parse_args()

    t0 = time.time()
    deadline = t0 + DEADLINE_S
    root = tempfile.mkdtemp(prefix="seshat-cluster-")
    extra = ["--backend", a.backend, "--shard", str(a.shard),
             # small snapshots: the restarted node must catch up by one
             "--snapshot-threshold", "256", "--snapshot-trailing", "64",
             "--election-timeout", "500", "--heartbeat", "50"]
    cluster = Cluster(os.path.abspath(a.binary), root, free_base_port(), extra)
    acked = {}
    ok = False
    print(f"data in {root}, base port {cluster.base}")
    try:
        for i in (1, 2, 3):
            cluster.start(i)
        leader = find_leader(cluster, deadline)
        print(f"[{time.time() - t0:5.1f}s] leader {leader}")

        n = a.commands
        write(cluster, [(f"k{i}", f"v{i}") for i in range(n)], acked, deadline)
        print(f"[{time.time() - t0:5.1f}s] {len(acked)} commands acknowledged")

        killed = {}

        def kill_leader(l):
            cluster.kill(l)  # SIGKILL with a window of writes in flight
            killed["id"] = l
            print(f"[{time.time() - t0:5.1f}s] SIGKILL leader {l}")

        # Overwrite some keys too, so that a stale value would show.
        second = [(f"k{i}", f"w{i}") for i in range(0, n // 4)] + \
                 [(f"k{i}", f"v{i}") for i in range(n, n + n // 2)]
        write(cluster, second[:64], acked, deadline, on_first_window=kill_leader)
        new_leader = find_leader(cluster, deadline)
        print(f"[{time.time() - t0:5.1f}s] new leader {new_leader}")
        write(cluster, second[64:], acked, deadline)
        print(f"[{time.time() - t0:5.1f}s] {len(acked)} keys acknowledged, restarting node {killed['id']}")

        cluster.start(killed["id"])
        third = [(f"k{i}", f"x{i}") for i in range(n + n // 2, n + n // 2 + 200)]
        write(cluster, third, acked, deadline)

        # Converge: identical state machines holding every acknowledged write.
        while True:
            dumps = {}
            for i in cluster.alive():
                try:
                    dumps[i] = dump(cluster, i)
                except (OSError, ConnectionError, ValueError):
                    pass
            missing = {i: sum(1 for k, v in acked.items() if d[0].get(k) != v)
                       for i, d in dumps.items()}
            same = len(dumps) == 3 and all(d[0] == dumps[1][0] for d in dumps.values())
            if same and all(m == 0 for m in missing.values()):
                break
            if time.time() > deadline:
                for i, d in dumps.items():
                    bad = [(k, v, d[0].get(k)) for k, v in acked.items() if d[0].get(k) != v][:8]
                    extra = [k for k in d[0] if k not in acked][:8]
                    print(f"node {i}: wrong {bad} unacknowledged-but-present {extra}")
                raise Failure("no convergence before the deadline: "
                              + ", ".join(f"node {i}: {len(d[0])} keys, applied {d[1]}, "
                                          f"{missing[i]} acknowledged writes missing or stale"
                                          for i, d in dumps.items()))
            time.sleep(0.1)
        print(f"[{time.time() - t0:5.1f}s] converged: 3 identical state machines, "
              f"{len(dumps[1][0])} keys, every one of {len(acked)} acknowledged writes present "
              f"(applied indices {', '.join(str(d[1]) for d in dumps.values())})")
        ok = True
    except Failure as e:
        print(f"FAIL: {e}")
    finally:
        cluster.stop_all()
        if ok and not a.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"data and logs kept in {root}")
    print(f"{'PASS' if ok else 'FAIL'} in {time.time() - t0:.1f}s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
