#!/usr/bin/env python3
"""Benchmark (not a test): the watch-driven cache against the kazoo client, same tree, same run.

Starts its own ZooKeeper, creates SERVICES x PER address nodes (/address/svcN/host:port,
~100-byte JSON each), then alternates, REPS times:
  - build/bench/cache_bench: full load, memory, write -> visible-in-snapshot latency;
  - kazoo: pipelined asynchronous read of the whole tree, and a re-reading data watch
    (set in one session, event + get in another) over the same number of changes.

  bench/cache_bench.py [--services 10000 --per 10 --reps 3 --changes 1000 --heap 2g]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "harness"))
import zkserver  # noqa: E402
from kazoo.client import KazooClient  # noqa: E402


def populate(kz, services, per, window=2000):
    pending = []

    def flush():
        for p in pending:
            p.get()
        pending.clear()

    kz.ensure_path("/address")
    for s in range(services):
        pending.append(kz.create_async(f"/address/svc{s}"))
        if len(pending) >= window:
            flush()
    flush()
    for s in range(services):
        for a in range(per):
            d = json.dumps({"dc": ("bj", "sh")[a % 2], "weight": 100, "status": "up",
                            "version": "1.0.0", "tags": ["bench"]}).encode()
            pending.append(kz.create_async(f"/address/svc{s}/10.{s // 250}.{s % 250}.{a}:8080", d))
            if len(pending) >= window:
                flush()
    flush()


def kazoo_full_read(connect, window=2000):
    kz = KazooClient(hosts=connect, timeout=30)
    kz.start(timeout=30)
    t = time.monotonic()
    services = kz.get_children("/address")
    kids = []
    for i in range(0, len(services), window):
        fs = [kz.get_children_async(f"/address/{s}") for s in services[i:i + window]]
        kids += [(s, f.get()) for s, f in zip(services[i:i + window], fs)]
    paths = [f"/address/{s}/{c}" for s, cs in kids for c in cs]
    n = 0
    for i in range(0, len(paths), window):
        fs = [kz.get_async(p) for p in paths[i:i + window]]
        for f in fs:
            f.get()
            n += 1
    dt = time.monotonic() - t
    kz.stop()
    kz.close()
    return dt, n


def kazoo_datawatch_latency(connect, changes):
    reader = KazooClient(hosts=connect, timeout=30)
    writer = KazooClient(hosts=connect, timeout=30)
    reader.start(timeout=30)
    writer.start(timeout=30)
    path = "/address/svc0/10.0.0.0:8080"
    cond = threading.Condition()
    last = {"mzxid": -1, "t": 0.0}

    @reader.DataWatch(path)
    def _watch(data, stat):  # event, then re-read: the new data is visible here
        if stat:
            with cond:
                last["mzxid"], last["t"] = stat.mzxid, time.monotonic()
                cond.notify_all()

    lat = []
    for i in range(changes):
        t = time.monotonic()
        st = writer.set(path, json.dumps({"weight": i}).encode())
        with cond:  # the watch may have fired before set() returned here
            if not cond.wait_for(lambda: last["mzxid"] >= st.mzxid, timeout=10):
                raise SystemExit("kazoo DataWatch missed a change")
            lat.append((last["t"] - t) * 1000)
    reader.stop()
    writer.stop()
    lat.sort()
    return lat[len(lat) // 2], lat[int(0.99 * (len(lat) - 1))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--per", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--changes", type=int, default=1000)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--heap", default="2g", help="the ZooKeeper server's Java heap")
    ap.add_argument("--bench", default=os.path.join(HERE, "..", "build", "bench", "cache_bench"))
    a = ap.parse_args()

    d = tempfile.mkdtemp(prefix="svcctl-cachebench-")
    st = zkserver.start(d, heap=a.heap, force_sync="yes")
    try:
        kz = KazooClient(hosts=st["connect"], timeout=30)
        kz.start(timeout=30)
        t = time.monotonic()
        populate(kz, a.services, a.per)
        kz.stop()
        print(f"created {a.services * a.per} address nodes under {a.services} services "
              f"in {time.monotonic() - t:.1f} s")
        ours, theirs = [], []
        for rep in range(a.reps):
            out = subprocess.run([a.bench, "--zk", st["connect"], "--changes", str(a.changes),
                                  "--window", str(a.window)], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout)
            ours.append(r)
            k_load, n = kazoo_full_read(st["connect"])
            k_p50, k_p99 = kazoo_datawatch_latency(st["connect"], a.changes)
            theirs.append({"load_s": k_load, "p50": k_p50, "p99": k_p99, "nodes": n})
            print(f"round {rep + 1}: svcctl load {r['load_s']:.2f} s ({r['nodes']} nodes, "
                  f"{r['rss_mb']:.0f} MB), change visible p50 {r['latency_ms']['p50']:.2f} ms "
                  f"p99 {r['latency_ms']['p99']:.2f} ms | kazoo read {k_load:.2f} s ({n} nodes), "
                  f"DataWatch p50 {k_p50:.2f} ms p99 {k_p99:.2f} ms")
        med = statistics.median
        ol, kl = med([r["load_s"] for r in ours]), med([r["load_s"] for r in theirs])
        print("\nmedians over", a.reps, "rounds")
        print(f"  full load:            svcctl {ol:.2f} s   kazoo {kl:.2f} s   ratio {ol / kl:.2f}")
        held, heap = med([r["rss_mb"] for r in ours]), med([r["heap_mb"] for r in ours])
        n = ours[0]["nodes"]
        print(f"  cache memory:         svcctl {held:.0f} MB resident, {held * 2**20 / n:.0f} B/node "
              f"({heap:.0f} MB allocated, {heap * 2**20 / n:.0f} B/node)")
        for q in ("p50", "p99"):
            o, k = med([r["latency_ms"][q] for r in ours]), med([r[q] for r in theirs])
            print(f"  write->visible {q}:   svcctl {o:.2f} ms   kazoo {k:.2f} ms   ratio {o / k:.2f}")
    finally:
        zkserver.stop(d)


if __name__ == "__main__":
    main()
