#!/usr/bin/env python3
"""Cluster test for examples/kv_node (canonical raft over seshat).

Starts 3 kv_node processes on 127.0.0.1, writes commands through the
leader, SIGKILLs the leader with writes in flight, waits for a new leader,
keeps writing until the survivors' logs are purged above the last index the
killed node had, restarts it from its store and checks that it caught up
through a snapshot install (kv_node's `stats`). Then SIGKILLs a follower
with many writes in flight, keeps writing, restarts it and checks that it
catches up (by log or by snapshot, reported). Finally all three state
machines must be identical and hold every acknowledged command, and each
node's GET /metrics (Prometheus text) must report its log's last index as
`stats` does; the counts (commands acknowledged, kills, catch-ups by log and
by snapshot) are printed.

usage: cluster_test.py <path to kv_node> [--backend rocksdb|leveldb]
       [--shard N] [--commands N] [--keep]
python3 standard library only; bounded by a 50 s deadline.
"""
import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

DEADLINE_S = int(os.environ.get("CLUSTER_DEADLINE", "50"))

# commands acknowledged (OK replies, overwrites included)
COUNTS = {"acked": 0}


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
                    COUNTS["acked"] += 1
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


def stats(cluster, i):
    """kv_node `stats`: installs, restores, log first index, log last index, applied."""
    r = ask(cluster, i, "stats").split()
    if len(r) != 6 or r[0] != "STATS":
        raise Failure(f"node {i}: bad stats reply {r}")
    return dict(zip(("installs", "restores", "first", "last", "applied"), map(int, r[1:])))


def metrics(cluster, i):
    """kv_node's GET /metrics: {(metric name, labels text): value}."""
    conn = http.client.HTTPConnection("127.0.0.1", cluster.base + 100 + i, timeout=5)
    try:
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        body = r.read().decode()
        if r.status != 200 or not r.getheader("Content-Type", "").startswith("text/plain; version=0.0.4"):
            raise Failure(f"node {i}: GET /metrics: {r.status} {r.getheader('Content-Type')}: {body[:200]}")
    finally:
        conn.close()
    out = {}
    for line in body.splitlines():
        m = re.fullmatch(r'([a-z_]+)(\{.*\})? (\S+)', line)
        if m:
            out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def check_metrics(cluster, i, group):
    """Node i's metrics agree with its `stats` on the log's last index."""
    st = stats(cluster, i)
    m = metrics(cluster, i)
    def value(name):
        found = [v for (n, labels), v in m.items() if n == name and f'group="{group}"' in labels]
        if len(found) != 1:
            raise Failure(f"node {i}: GET /metrics has {len(found)} samples of {name} for group {group}")
        return found[0]
    if value("seshat_log_last_index") != st["last"]:
        raise Failure(f"node {i}: metrics say last index {value('seshat_log_last_index')}, "
                      f"stats {st['last']}")
    if value("seshat_log_appended_entries_total") <= 0:
        raise Failure(f"node {i}: metrics count no appended entries")
    return int(value("seshat_log_appended_entries_total"))


def start_lines(cluster, i):
    """The log states node i found on disk at each start (from its log file)."""
    with open(os.path.join(cluster.root, f"node{i}.log"), errors="replace") as f:
        start = os.path.basename(cluster.binary) + ": start log"
        lines = [l.split() for l in f if l.startswith(start)]
    # <program>: start log first F last L applied A (kv_node, nuraft_kv)
    return [{"first": int(l[4]), "last": int(l[6]), "applied": int(l[8])} for l in lines]


def restart(cluster, i, deadline):
    """Starts node i again; returns the log state it found on disk."""
    before = len(start_lines(cluster, i))
    cluster.start(i)
    while True:
        lines = start_lines(cluster, i)
        if len(lines) > before:
            return lines[-1]
        cluster.alive()
        if time.time() > deadline:
            raise Failure(f"node {i}: no start line after its restart")
        time.sleep(0.02)


def wait_caught_up(cluster, i, acked, deadline, t0):
    """Waits until node i applied at least what the leader had applied when
    this was called and holds every write acknowledged so far."""
    want = dict(acked)
    leader = find_leader(cluster, deadline)
    target = stats(cluster, leader)["applied"]
    while True:
        try:
            st = stats(cluster, i)
            if st["applied"] >= target:
                kv, _ = dump(cluster, i)
                missing = sum(1 for k, v in want.items() if kv.get(k) != v)
                # a key may have been overwritten since `want` was taken
                if missing == 0 or all(kv.get(k) == acked.get(k) for k in want):
                    return st
        except (OSError, ConnectionError, ValueError):
            pass
        if time.time() > deadline:
            raise Failure(f"node {i} did not catch up to applied {target} before the deadline")
        time.sleep(0.05)


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
             # frequent snapshots; 1024 trailing entries: the follower killed
             # (~800 entries missed) catches up by log, the leader (made to
             # miss more than the survivors keep) by snapshot
             "--snapshot-threshold", "256", "--snapshot-trailing", "1024",
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
        catchups = {"log": 0, "snapshot": 0}
        kills = 0

        def kill_leader(l):
            try:  # an upper bound of its last index: what it had + the window in flight
                killed["bound"] = stats(cluster, l)["last"] + 64 + 16
            except (OSError, ConnectionError, Failure):
                killed["bound"] = None
            cluster.kill(l)  # SIGKILL with a window of writes in flight
            killed["id"] = l
            print(f"[{time.time() - t0:5.1f}s] SIGKILL leader {l}")

        # 1. The leader, SIGKILLed with writes in flight. Overwrite some keys
        # too, so that a stale value would show.
        second = [(f"k{i}", f"w{i}") for i in range(0, n // 4)] + \
                 [(f"k{i}", f"v{i}") for i in range(n, n + n // 2)]
        write(cluster, second[:64], acked, deadline, on_first_window=kill_leader)
        kills += 1
        new_leader = find_leader(cluster, deadline)
        print(f"[{time.time() - t0:5.1f}s] new leader {new_leader}")
        write(cluster, second[64:], acked, deadline)
        print(f"[{time.time() - t0:5.1f}s] {len(acked)} keys acknowledged")

        # Keep writing until both survivors purged their logs above (a bound
        # of) the last index the killed node has on disk, so that it can only
        # catch up by snapshot; its start line then tells the exact index.
        k = killed["id"]
        bound = killed["bound"]
        extra_i = n + n // 2
        while True:
            firsts = {i: stats(cluster, i)["first"] for i in cluster.alive()}
            if bound is not None and all(f > bound for f in firsts.values()):
                break
            if bound is None:  # no bound: the survivors' last index at least moved past
                bound = max(stats(cluster, i)["last"] for i in cluster.alive()) + 64 + 16
                continue
            if time.time() > deadline:
                raise Failure(f"survivors' logs not purged above {bound}: first indices {firsts}")
            write(cluster, [(f"k{i}", f"v{i}") for i in range(extra_i, extra_i + 128)], acked, deadline)
            extra_i += 128
        print(f"[{time.time() - t0:5.1f}s] survivors' log first indices {firsts} (killed node's "
              f"last index at most {bound}): restarting node {k}")
        had = restart(cluster, k, deadline)
        print(f"[{time.time() - t0:5.1f}s] node {k} restarted with log [{had['first']}, {had['last']}], "
              f"applied {had['applied']}")
        if not all(f > had["last"] for f in firsts.values()):
            raise Failure(f"survivors' first indices {firsts} not all above {had['last']}")
        third = [(f"k{i}", f"x{i}") for i in range(extra_i, extra_i + 200)]
        extra_i += 200
        write(cluster, third, acked, deadline)
        st = wait_caught_up(cluster, k, acked, deadline, t0)
        # Its log now begins past the last index it had: only a snapshot from
        # the leader (raft's InstallSnapshot, snapshot_put with trailing 0,
        # log_store::reset_to) gets it there. kv_node's own count of snapshots
        # its FSM installed is printed, not required: it also counts restores
        # it skipped as already applied.
        if st["first"] <= had["last"]:
            raise Failure(f"restarted leader {k}: log first index {st['first']} not above {had['last']}")
        catchups["snapshot"] += 1
        print(f"[{time.time() - t0:5.1f}s] node {k} caught up by snapshot: {st['installs']} installed, "
              f"log now [{st['first']}, {st['last']}], applied {st['applied']}")

        # 2. A follower, SIGKILLed with many writes in flight.
        leader = find_leader(cluster, deadline)
        follower = [i for i in cluster.alive() if i != leader][0]
        fkilled = {}

        def kill_follower(l):
            if l == follower or follower not in cluster.procs:
                return
            cluster.kill(follower)
            fkilled["at"] = time.time()
            print(f"[{time.time() - t0:5.1f}s] SIGKILL follower {follower} (leader {l}, 512 writes in flight)")

        heavy = [(f"k{i}", f"y{i}") for i in range(extra_i, extra_i + 512)]
        extra_i += 512
        write(cluster, heavy, acked, deadline, window=512, on_first_window=kill_follower)
        if "at" not in fkilled:
            raise Failure(f"follower {follower} was not killed (leadership moved to it)")
        kills += 1
        more = [(f"k{i}", f"z{i}") for i in range(0, n // 8)]  # overwrites
        write(cluster, more, acked, deadline)
        lfirst = stats(cluster, find_leader(cluster, deadline))["first"]
        fhad = restart(cluster, follower, deadline)
        write(cluster, [(f"k{i}", f"u{i}") for i in range(extra_i, extra_i + 200)], acked, deadline)
        extra_i += 200
        st = wait_caught_up(cluster, follower, acked, deadline, t0)
        how = "snapshot" if st["installs"] > 0 else "log"
        catchups[how] += 1
        print(f"[{time.time() - t0:5.1f}s] follower {follower} (had log [{fhad['first']}, {fhad['last']}], "
              f"leader's log first index {lfirst}) "
              f"caught up by {how}: {st['installs']} installed, log now [{st['first']}, {st['last']}], "
              f"applied {st['applied']}")

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
        group = "system" if a.shard == 0 else str(a.shard)
        appended = {}
        for i in cluster.alive():
            for attempt in range(3):  # a new term's entry may land between the two reads
                try:
                    appended[i] = check_metrics(cluster, i, group)
                    break
                except Failure:
                    if attempt == 2:
                        raise
                    time.sleep(0.2)
        print(f"[{time.time() - t0:5.1f}s] GET /metrics agrees with stats on every node "
              f"(entries appended since each start: {appended})")
        print(f"COUNTS: commands acknowledged {COUNTS['acked']}, kills {kills}, "
              f"catch-ups by log {catchups['log']}, by snapshot {catchups['snapshot']}")
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
