#!/usr/bin/python3
"""The gateway against HAProxy at about the same offered load (a benchmark, not a test).

../shared/bench/proxy-compare.sh drives every proxy as hard as wrk's closed loop can, so a
proxy that answers sooner is sent more calls, and its latency is measured with the machine
fuller. This runs the same harness (../shared/bench/httpbench.py: backends, ZooKeeper,
anchors restarted for every run, alternating rounds, medians and per-round ratios) with
one change: every one of wrk's connections waits --delay-ms after each answer
(bench/paced.lua), so the load offered is about connections / (latency + delay) for every
proxy, below what fills the machine, and the latencies compare the proxies at about the
same request rate. The gateway runs with its default options.

  bench/paced_compare.py [--svcctl build/cmd/svcctl] [--rounds 5] [--delay-ms 1] [--out DIR]
"""
import argparse
import os
import shlex
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--svcctl", default=os.path.join(ROOT, "build", "cmd", "svcctl"))
    ap.add_argument("--shared-bench", default=os.path.join(ROOT, "..", "shared", "bench"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--delay-ms", type=int, default=1)
    ap.add_argument("--anchors", default="haproxy-t1,haproxy-t2")
    ap.add_argument("--out", help="results directory (default: a new one under /tmp)")
    a = ap.parse_args()
    shared = os.path.abspath(a.shared_bench)
    sys.path.insert(0, shared)
    import benchlib
    import httpbench

    benchlib.WRK_LUA = os.path.join(HERE, "paced.lua")  # run_wrk's script, for every run
    os.environ["BENCH_POST_LUA"] = os.path.join(shared, "wrk", "post.lua")
    os.environ["BENCH_DELAY_MS"] = str(a.delay_ms)
    svcctl = shlex.quote(os.path.abspath(a.svcctl))
    target = (f'{svcctl} --zk "$BENCH_ZK" register api echo ping --path /echo --create-service >/dev/null && '
              f'exec {svcctl} --zk "$BENCH_ZK" proxy --listen "127.0.0.1:$BENCH_TARGET_PORT" --admin ""')
    out = a.out or tempfile.mkdtemp(prefix="paced-")
    print(f"wrk -t1 -c{a.conns}, each connection pausing {a.delay_ms} ms after every answer; results in {out}",
          flush=True)
    httpbench.main(["--target", "127.0.0.1:8090", "--target-name", "gateway", "--target-path", "/echo/ping",
                    "--target-cmd", target, "--zk", "--anchors", a.anchors, "--scenarios", f"t1c{a.conns}",
                    "--reps", str(a.rounds), "--duration", str(a.duration), "--out", out])


if __name__ == "__main__":
    main()
