#!/usr/bin/env python3
"""Cluster test for examples/nuraft_kv (NuRaft over seshat, adapters/nuraft).

Runs itself inside a new network namespace that has only loopback
(`unshare -n`, then `ip link set lo up`): NuRaft listens on 0.0.0.0. Starts
3 nuraft_kv processes with parallel log appending on, writes commands
through the leader, and then, for each round (3 by default):
  1. SIGKILLs the leader with a window of writes in flight, waits for a new
     leader, keeps writing until both survivors' logs start past the last
     index the killed node has (round 1 only: it then catches up by
     snapshot), restarts it and waits until it caught up;
  2. SIGKILLs a follower with 512 writes in flight, keeps writing, restarts
     it and waits until it caught up (by log or by snapshot, reported).
At the end all three state machines must be identical and hold every
acknowledged command. Prints the counts: rounds, kills, commands
acknowledged, catch-ups by log and by snapshot, values checked.

usage: nuraft_cluster_test.py <path to nuraft_kv> [--backend rocksdb|leveldb]
       [--rounds N] [--commands N] [--keep]
python3 standard library only (it shares cluster_test.py's client); bounded
by a deadline (NURAFT_CLUSTER_DEADLINE, default 100 s). Exit 77 (skipped)
when no network namespace can be made.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_test as ct  # noqa: E402  (Cluster, Conn, write, find_leader, dump, stats, restart)

DEADLINE_S = int(os.environ.get("NURAFT_CLUSTER_DEADLINE", "100"))
SKIP = 77


def in_namespace():
    """Re-runs this script in a fresh network namespace; returns its exit code."""
    if os.environ.get("NURAFT_CLUSTER_NETNS") == "1":
        return None
    env = dict(os.environ, NURAFT_CLUSTER_NETNS="1")
    unshare = shutil.which("unshare")
    if not unshare:
        print("SKIP: no unshare(1)")
        return SKIP
    flags = ["-n"] if os.geteuid() == 0 else ["-r", "-n"]
    probe = subprocess.run([unshare] + flags + ["true"], capture_output=True)
    if probe.returncode != 0:
        print(f"SKIP: cannot make a network namespace: {probe.stderr.decode().strip()}")
        return SKIP
    return subprocess.call([unshare] + flags + [sys.executable] + sys.argv, env=env)


def loopback_up():
    ip = shutil.which("ip") or "/usr/sbin/ip"
    subprocess.run([ip, "link", "set", "lo", "up"], check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--backend", default="rocksdb")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--commands", type=int, default=2000)
    ap.add_argument("--keep", action="store_true", help="keep the data directories")
    a = ap.parse_args()
    code = in_namespace()
    if code is not None:
        return code
    loopback_up()

    t0 = time.time()
    deadline = t0 + DEADLINE_S
    root = tempfile.mkdtemp(prefix="seshat-nuraft-cluster-")
    # frequent snapshots, 1536 entries kept behind each: a follower killed
    # under load (~900 entries missed) catches up by log unless a snapshot
    # overtook it, the leader of round 1 (made to miss more than the
    # survivors keep) by snapshot
    extra = ["--backend", a.backend, "--parallel", "1",
             "--snapshot-distance", "256", "--reserved-logs", "1536",
             "--election-timeout", "500", "--heartbeat", "50"]
    cluster = ct.Cluster(os.path.abspath(a.binary), root, 20000, extra)
    acked = {}
    ok = False
    kills = 0
    catchups = {"log": 0, "snapshot": 0}
    next_key = [a.commands]

    def fresh(n, tag):
        first = next_key[0]
        next_key[0] += n
        return [(f"k{i}", f"{tag}{i}") for i in range(first, first + n)]

    def el():
        return f"[{time.time() - t0:5.1f}s]"

    print(f"data in {root}, base port {cluster.base}, backend {a.backend}")
    try:
        for i in (1, 2, 3):
            cluster.start(i)
        leader = ct.find_leader(cluster, deadline)
        print(f"{el()} leader {leader}")
        ct.write(cluster, [(f"k{i}", f"v{i}") for i in range(a.commands)], acked, deadline)
        print(f"{el()} {len(acked)} commands acknowledged")

        for rnd in range(1, a.rounds + 1):
            # 1. The leader, SIGKILLed with writes in flight; overwrites too.
            killed = {}

            def kill_leader(l):
                try:
                    killed["bound"] = ct.stats(cluster, l)["last"] + 64 + 16
                except (OSError, ConnectionError, ct.Failure):
                    killed["bound"] = None
                cluster.kill(l)
                killed["id"] = l
                print(f"{el()} round {rnd}: SIGKILL leader {l}")

            over = [(f"k{i}", f"r{rnd}w{i}") for i in range(0, a.commands // 4)]
            ct.write(cluster, over[:64], acked, deadline, on_first_window=kill_leader)
            kills += 1
            print(f"{el()} new leader {ct.find_leader(cluster, deadline)}")
            ct.write(cluster, over[64:] + fresh(a.commands // 4, f"r{rnd}v"), acked, deadline)
            k = killed["id"]
            bound = killed["bound"]
            if rnd == 1:
                # Until both survivors' logs start past what k has: only a
                # snapshot can bring it back.
                while True:
                    firsts = {i: ct.stats(cluster, i)["first"] for i in cluster.alive()}
                    if bound is None:
                        bound = max(ct.stats(cluster, i)["last"] for i in cluster.alive()) + 80
                    if all(f > bound for f in firsts.values()):
                        break
                    if time.time() > deadline:
                        raise ct.Failure(f"survivors' logs not purged above {bound}: {firsts}")
                    ct.write(cluster, fresh(128, f"r{rnd}p"), acked, deadline)
                print(f"{el()} survivors' log start indices {firsts} (node {k} had at most "
                      f"{bound}): restarting it")
            had = ct.restart(cluster, k, deadline)
            print(f"{el()} node {k} restarted with log [{had['first']}, {had['last']}], "
                  f"applied {had['applied']}")
            ct.write(cluster, fresh(200, f"r{rnd}x"), acked, deadline)
            st = ct.wait_caught_up(cluster, k, acked, deadline, t0)
            by_snapshot = st["installs"] > 0
            if rnd == 1:
                if st["first"] <= had["last"] or not by_snapshot:
                    raise ct.Failure(f"restarted leader {k}: log start {st['first']}, "
                                     f"{st['installs']} snapshots installed: not caught up by "
                                     f"snapshot past {had['last']}")
            catchups["snapshot" if by_snapshot else "log"] += 1
            print(f"{el()} node {k} caught up by {'snapshot' if by_snapshot else 'log'}: "
                  f"log now [{st['first']}, {st['last']}], applied {st['applied']}")

            # 2. A follower, SIGKILLed with many writes in flight.
            leader = ct.find_leader(cluster, deadline)
            follower = [i for i in cluster.alive() if i != leader][0]
            fkilled = {}

            def kill_follower(l):
                if l == follower or follower not in cluster.procs:
                    return
                cluster.kill(follower)
                fkilled["at"] = time.time()
                print(f"{el()} round {rnd}: SIGKILL follower {follower} (leader {l}, "
                      f"512 writes in flight)")

            ct.write(cluster, fresh(512, f"r{rnd}y"), acked, deadline, window=512,
                     on_first_window=kill_follower)
            if "at" not in fkilled:
                raise ct.Failure(f"follower {follower} was not killed (leadership moved to it)")
            kills += 1
            ct.write(cluster, [(f"k{i}", f"r{rnd}z{i}") for i in range(0, a.commands // 8)],
                     acked, deadline)
            fhad = ct.restart(cluster, follower, deadline)
            ct.write(cluster, fresh(200, f"r{rnd}u"), acked, deadline)
            st = ct.wait_caught_up(cluster, follower, acked, deadline, t0)
            how = "snapshot" if st["installs"] > 0 else "log"
            catchups[how] += 1
            print(f"{el()} follower {follower} (had log [{fhad['first']}, {fhad['last']}]) "
                  f"caught up by {how}: log now [{st['first']}, {st['last']}], "
                  f"applied {st['applied']}")

        # Converge: identical state machines holding every acknowledged write.
        while True:
            dumps = {}
            for i in cluster.alive():
                try:
                    dumps[i] = ct.dump(cluster, i)
                except (OSError, ConnectionError, ValueError):
                    pass
            missing = {i: sum(1 for k, v in acked.items() if d[0].get(k) != v)
                       for i, d in dumps.items()}
            same = len(dumps) == 3 and all(d[0] == dumps[1][0] for d in dumps.values())
            if same and all(m == 0 for m in missing.values()):
                break
            if time.time() > deadline:
                raise ct.Failure("no convergence before the deadline: " + ", ".join(
                    f"node {i}: {len(d[0])} keys, applied {d[1]}, {missing[i]} acknowledged "
                    f"writes missing or stale" for i, d in dumps.items()))
            time.sleep(0.1)
        checked = 3 * len(acked)
        print(f"{el()} converged: 3 identical state machines, {len(dumps[1][0])} keys, every one "
              f"of {len(acked)} acknowledged keys at its last acknowledged value on each node")
        print(f"COUNTS: rounds {a.rounds}, kills {kills}, commands acknowledged "
              f"{ct.COUNTS['acked']}, catch-ups by log {catchups['log']}, by snapshot "
              f"{catchups['snapshot']}, values checked {checked}")
        ok = True
    except ct.Failure as e:
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
