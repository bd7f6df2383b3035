#!/usr/bin/python3
"""Two builds of the gateway against each other, in alternation (a benchmark, not a test).

For a change that must not cost the request path anything: the gateway built before the
change ("before") and after it ("after", the target) serve the same backends from the
same ZooKeeper, in one run of ../shared/bench/httpbench.py (wrk, the anchors restarted for
every run, rounds in alternation, medians and per-round ratios), with HAProxy as the
anchor. The ratio table's "after vs before" row is the comparison: CPU per call, req/s,
p50, p99.

  bench/ab_compare.py --before OLD/svcctl [--after build/cmd/svcctl] [--reps 5] [--out DIR]
"""
import argparse
import os
import shlex
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BEFORE_PORT = 8091


def gateway_cmd(svcctl, zk, port):
    s = shlex.quote(os.path.abspath(svcctl))
    return (f'{s} --zk "{zk}" register api echo ping --path /echo --create-service >/dev/null 2>&1; '
            f'exec {s} --zk "{zk}" proxy --listen "127.0.0.1:{port}" --admin "" --id "gw-{port}"')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="the svcctl binary built before the change")
    ap.add_argument("--after", default=os.path.join(ROOT, "build", "cmd", "svcctl"))
    ap.add_argument("--shared-bench", default=os.path.join(ROOT, "..", "shared", "bench"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--scenarios", default="t1c50,t2c200")
    ap.add_argument("--anchors", default="haproxy-t1")
    ap.add_argument("--out", help="results directory (default: a new one under /tmp)")
    a = ap.parse_args()
    shared = os.path.abspath(a.shared_bench)
    sys.path.insert(0, shared)
    import benchlib as B
    import httpbench

    real_build_configs = httpbench.build_configs

    # The "before" gateway is started once ZooKeeper is up (the target, "after", is by
    # then), and is one more config in the alternation, its own process CPU-accounted.
    def build_configs(args, target_proc):
        cfgs = real_build_configs(args, target_proc)
        zk = f"{B.HOST}:{args.zk_port}"
        proc = B.Proc("before", ["/bin/sh", "-c", gateway_cmd(a.before, zk, BEFORE_PORT)],
                      os.path.join(args.out or tempfile.gettempdir(), "before.log")).start()
        B.wait_port(B.HOST, BEFORE_PORT, timeout=30, proc=proc.p)
        cfgs.insert(len(cfgs) - 1, httpbench.Config("before", "target", B.HOST, BEFORE_PORT, path="/echo/ping",
                                                    fixed_pids=[proc.pid]))
        return cfgs

    httpbench.build_configs = build_configs
    out = a.out or tempfile.mkdtemp(prefix="ab-")
    print(f"before: {a.before}; after: {a.after}; results in {out}", flush=True)
    httpbench.main(["--target", "127.0.0.1:8090", "--target-name", "after", "--target-path", "/echo/ping",
                    "--target-cmd", gateway_cmd(a.after, "$BENCH_ZK", 8090), "--zk", "--anchors", a.anchors,
                    "--scenarios", a.scenarios, "--reps", str(a.reps), "--duration", str(a.duration), "--out", out])


if __name__ == "__main__":
    main()
