#!/usr/bin/env python3
"""Benchmark (not a test): wall time of `svcctl list -o json` on a populated registry.

Starts its own ZooKeeper (tests/harness/zkserver.py) unless --zk is given, fills a chroot
with SERVICES services of ADDRESSES addresses and INTERFACES interfaces each (kazoo,
pipelined async creates), then runs the command RUNS times and prints the median.

  bench/list_bench.py --svcctl build/cmd/svcctl [--services 1000 --addresses 10 --interfaces 5]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "harness"))
import zkserver  # noqa: E402
from kazoo.client import KazooClient  # noqa: E402


def populate(kz, services, addresses, interfaces, window=2000):
    pending = []

    def create(path, data=b""):
        pending.append(kz.create_async(path, data))
        if len(pending) >= window:
            for p in pending:
                p.get()
            pending.clear()

    def flush():
        for p in pending:
            p.get()
        pending.clear()

    for root in ("/service", "/address", "/api"):
        create(root)
    flush()
    for s in range(services):
        name = f"svc{s:05d}"
        create(f"/service/{name}", json.dumps({"status": "up", "desc": f"service {s}", "owner": "bench"}).encode())
        create(f"/address/{name}")
        create(f"/api/{name}")
    flush()
    for s in range(services):
        name = f"svc{s:05d}"
        for a in range(addresses):
            d = {"dc": ("bj", "sh")[a % 2], "weight": 100, "status": "up" if a % 5 else "down"}
            create(f"/address/{name}/10.{s // 250}.{s % 250}.{a}:8080", json.dumps(d).encode())
        for i in range(interfaces):
            create(f"/api/{name}/iface{i}", json.dumps({"path": f"/api/{i}", "encoding": "json", "status": "up"}).encode())
    flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--svcctl", required=True)
    ap.add_argument("--zk", help="host:port of a running ZooKeeper (default: start one)")
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--addresses", type=int, default=10)
    ap.add_argument("--interfaces", type=int, default=5)
    ap.add_argument("--runs", type=int, default=11)
    a = ap.parse_args()

    scratch = tempfile.mkdtemp(prefix="svcctl-listbench-")
    started = None
    if not a.zk:
        started = zkserver.start(scratch, heap="1g")
        a.zk = started["connect"]
    chroot = f"/listbench-{os.getpid()}"
    try:
        kz = KazooClient(hosts=a.zk, timeout=30)
        kz.start(timeout=30)
        kz.ensure_path(chroot)
        kz.stop()
        kz = KazooClient(hosts=a.zk + chroot, timeout=30)
        kz.start(timeout=30)
        t0 = time.monotonic()
        populate(kz, a.services, a.addresses, a.interfaces)
        nodes = a.services * (3 + a.addresses + a.interfaces)
        print(f"populated {nodes} nodes in {time.monotonic() - t0:.1f} s")
        kz.stop()

        times = []
        for _ in range(a.runs):
            t = time.monotonic()
            p = subprocess.run([a.svcctl, "--zk", a.zk + chroot, "-o", "json", "list"],
                               capture_output=True)
            times.append(time.monotonic() - t)
            if p.returncode != 0:
                sys.exit(f"svcctl failed: {p.stderr.decode()}")
        out = json.loads(p.stdout)
        assert len(out["services"]) == a.services
        assert all(s["addresses_total"] == a.addresses and s["interfaces"] == a.interfaces
                   for s in out["services"])
        print(f"svcctl list -o json: {a.services} services x {a.addresses} addresses x "
              f"{a.interfaces} interfaces ({len(p.stdout)} bytes of JSON)")
        print(f"  runs {a.runs}: median {statistics.median(times) * 1000:.0f} ms, "
              f"min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms")
    finally:
        if started:
            zkserver.stop(scratch)


if __name__ == "__main__":
    main()
