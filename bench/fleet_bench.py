#!/usr/bin/env python3
"""Benchmark (not a test): what a fleet of gateways' caches costs a ZooKeeper ensemble when
it fails over, and when every session expires at once.

Starts a three-member ensemble, creates SERVICES x PER address nodes (as cache_bench.py
does), loads CACHES caches in one process (build/bench/fleet_bench), then:
  1. kills the leader and counts the packets the two survivors received in the minute
     after (their counters start again with the new leader's term), less the fleet's pings
     as measured before: divided by nodes x caches, the reads the failover cost per node
     and cache (a full re-read of every cache is about 1.0);
  2. stops the fleet's process (SIGSTOP) past its session timeout, so that every session
     expires at once, and resumes it: the packets received every 100 ms while the caches
     open new sessions and read the registry again (the peak rate, and how long the
     middle 90 % of those reads took: the jitter window spreads them).

  bench/fleet_bench.py [--services 1000 --per 10 --caches 50 --heap 256m --window 30]
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "harness"))
import zkserver  # noqa: E402
from cache_bench import populate  # noqa: E402
from kazoo.client import KazooClient  # noqa: E402


def received(member):
    for line in zkserver.four_letter(member["port"], "mntr").splitlines():
        key, _, value = line.partition("\t")
        if key == "zk_packets_received":
            return int(value)
    return 0


def total(members):
    return sum(received(m) for m in members)


def wait_whole(fleet, caches, loaded_at, timeout):
    """Reads the fleet's status lines until one written from now on says that every cache
    is connected and whole; returns the seconds from now to that line."""
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        line = fleet.stdout.readline().split()
        if line and line[0] == "t" and loaded_at + float(line[1]) >= t and int(line[2]) == caches:
            return loaded_at + float(line[1]) - t
    raise SystemExit("the fleet did not recover")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--per", type=int, default=10)
    ap.add_argument("--caches", type=int, default=50)
    ap.add_argument("--session-timeout", type=int, default=4000)
    ap.add_argument("--heap", default="256m", help="each member's Java heap")
    ap.add_argument("--window", type=float, default=30,
                    help="seconds the reads after the mass expiry are counted (the fleet must reload within it)")
    ap.add_argument("--bench", default=os.path.join(HERE, "..", "build", "bench", "fleet_bench"))
    a = ap.parse_args()

    d = tempfile.mkdtemp(prefix="svcctl-fleetbench-")
    members = zkserver.start_ensemble(d, heap=a.heap)
    fleet = None
    try:
        connect = members[0]["ensemble_connect"]
        kz = KazooClient(hosts=connect, timeout=30)
        kz.start(timeout=30)
        populate(kz, a.services, a.per)
        kz.stop()
        nodes = a.services * (a.per + 1) + 1
        fleet = subprocess.Popen([a.bench, "--zk", connect, "--caches", str(a.caches),
                                  "--session-timeout", str(a.session_timeout)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = fleet.stdout.readline().split()
        assert line and line[0] == "loaded", line
        loaded_at = time.monotonic()
        print(f"{a.caches} caches loaded {line[2]} nodes each in {line[3]} s")
        wait_whole(fleet, a.caches, loaded_at, 60)

        # The fleet's own traffic at rest (pings), per second.
        b0, t0 = total(members), time.monotonic()
        time.sleep(10)
        idle_rate = (total(members) - b0) / (time.monotonic() - t0)

        leader = next(m for m in members if zkserver.mode(m["port"]) == "leader")
        survivors = [m for m in members if m is not leader]
        before = {m["port"]: received(m) for m in survivors}
        zkserver.stop(leader["dir"])
        t_kill = time.monotonic()
        back = wait_whole(fleet, a.caches, loaded_at, 120)
        time.sleep(max(0.0, 60 - (time.monotonic() - t_kill)))
        got = 0
        for m in survivors:
            now = received(m)
            got += now if now < before[m["port"]] else now - before[m["port"]]
        reads = max(0.0, got - idle_rate * 60)
        print(f"leader killed: every cache whole again after {back:.1f} s; the survivors received "
              f"{got} packets in the minute after ({idle_rate:.0f}/s at rest): "
              f"{reads / (nodes * a.caches):.4f} reads per node and cache")

        # Every session expired at once.
        zkserver.restart(leader)  # three members again
        wait_whole(fleet, a.caches, loaded_at, 120)
        fleet.send_signal(signal.SIGSTOP)
        time.sleep(a.session_timeout / 1000 * 2 + 1)
        base = total(members)
        fleet.send_signal(signal.SIGCONT)
        t_cont, samples = time.monotonic(), []
        while time.monotonic() - t_cont < a.window:
            time.sleep(0.1)
            samples.append((time.monotonic() - t_cont, total(members) - base))
        # The rate between two samples over the time that really passed between them: asking
        # the three members for their counters takes longer while they are busy.
        prev = [(0.0, 0)] + samples[:-1]
        peak = max((n - pn) / (t - pt) for (t, n), (pt, pn) in zip(samples, prev) if t > pt)
        all_reads = samples[-1][1]
        first = next(t for t, n in samples if n >= 0.05 * all_reads)
        last = next(t for t, n in samples if n >= 0.95 * all_reads)
        print(f"all sessions expired: {all_reads} packets in {a.window:.0f} s ({all_reads / (nodes * a.caches):.2f} per node "
              f"and cache), peak {peak:.0f}/s between samples, the middle 90 % within {last - first:.1f} s")
    finally:
        if fleet:
            fleet.send_signal(signal.SIGCONT)
            fleet.stdin.close()
            fleet.wait(timeout=60)
        for m in members:
            zkserver.stop(m["dir"])


if __name__ == "__main__":
    main()
