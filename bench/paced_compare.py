#!/usr/bin/python3
"""The gateway against HAProxy at about the same offered load (a benchmark, not a test).

../shared/bench/proxy-compare.sh drives every proxy as hard as wrk's closed loop can, so a
proxy that answers sooner is sent more calls, and its latency is measured with the machine
fuller. Here every one of wrk's connections waits --delay-ms after each answer
(bench/paced.lua), so the load offered is about connections / (latency + delay) for every
proxy, below what fills the machine: the latencies compare the proxies at about the same
request rate.

Starts, through ../shared/bench/benchlib.py, the two nginx backends, ZooKeeper with them
registered under /address/echo, and HAProxy (1 and 2 threads, the anchors' configuration);
then the gateway (`svcctl proxy`, default options). Rounds alternate the proxies, each
running throughout; medians of the rounds, and of the per-round ratios.

  bench/paced_compare.py [--svcctl build/cmd/svcctl] [--rounds 5] [--delay-ms 1]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys

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
    a = ap.parse_args()
    sys.path.insert(0, os.path.abspath(a.shared_bench))
    import benchlib as B
    import zkregister

    B.install_signal_handlers()
    B.WRK_LUA = os.path.join(HERE, "paced.lua")
    os.environ["BENCH_POST_LUA"] = os.path.join(os.path.abspath(a.shared_bench), "wrk", "post.lua")
    os.environ["BENCH_DELAY_MS"] = str(a.delay_ms)
    backends, zk_port, gw_port = [9001, 9002], 2181, 8090
    anchors = {"haproxy-t1": 8082, "haproxy-t2": 8083}
    scratch = B.make_scratch("paced")
    gw = None
    try:
        B.require_free(backends + [zk_port, gw_port] + list(anchors.values()))
        for p in backends:
            B.start_backend(scratch, p)
        B.start_zookeeper(scratch, zk_port)
        zk = f"{B.HOST}:{zk_port}"
        zkregister.register(zk, "echo", [(B.HOST, p) for p in backends])
        pids = {}
        for name, port in anchors.items():
            pids[name] = [B.start_haproxy(scratch, port, int(name[-1]), backends).p.pid]
        subprocess.run([a.svcctl, "--zk", zk, "register", "api", "echo", "ping", "--path", "/echo",
                        "--create-service"], check=True, stdout=subprocess.DEVNULL)
        gw = subprocess.Popen([a.svcctl, "--zk", zk, "proxy", "--listen", f"{B.HOST}:{gw_port}", "--admin", ""],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        B.wait_port(B.HOST, gw_port, proc=gw)
        pids["gateway"] = [gw.pid]
        urls = {"gateway": f"http://{B.HOST}:{gw_port}/echo/ping"}
        urls.update({n: f"http://{B.HOST}:{p}/echo" for n, p in anchors.items()})
        rows = {n: [] for n in urls}
        for r in range(a.rounds):
            for name, url in urls.items():
                B.run_wrk(url, 1, a.conns, 2)
                c0 = B.tree_cpu_seconds(pids[name])
                res = B.run_wrk(url, 1, a.conns, a.duration)
                c1 = B.tree_cpu_seconds(pids[name])
                n = res["requests"]
                errors = sum(res[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout"))
                row = {"rps": n / res["duration_us"] * 1e6, "p50": res["p50_us"] / 1e3, "p90": res["p90_us"] / 1e3,
                       "p99": res["p99_us"] / 1e3, "p999": res["p999_us"] / 1e3, "cpu_us": (c1 - c0) / n * 1e6,
                       "errors": errors}
                rows[name].append(row)
                B.log(f"round {r} {name:10s} {row['rps']:8.0f} req/s  p50 {row['p50']:.2f}  p90 {row['p90']:.2f}  "
                      f"p99 {row['p99']:.2f}  p99.9 {row['p999']:.2f} ms  {row['cpu_us']:.1f} us/req  "
                      f"errors {errors}")
        keys = ["rps", "p50", "p90", "p99", "p999", "cpu_us"]
        print(f"\nwrk -t1 -c{a.conns}, each connection pausing {a.delay_ms} ms after every answer; "
              f"medians of {a.rounds} rounds\n")
        print("| proxy | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | proxy CPU µs/req | errors |")
        print("|---|---|---|---|---|---|---|---|")
        for name, rs in rows.items():
            m = {k: statistics.median(x[k] for x in rs) for k in keys}
            print(f"| {name} | {m['rps']:,.0f} | {m['p50']:.2f} | {m['p90']:.2f} | {m['p99']:.2f} | "
                  f"{m['p999']:.2f} | {m['cpu_us']:.1f} | {sum(x['errors'] for x in rs)} |")
        print("\n| gateway vs | req/s | p50 | p90 | p99 | p99.9 | CPU/req |")
        print("|---|---|---|---|---|---|---|")
        for name in anchors:
            ratio = {k: statistics.median(g[k] / h[k] for g, h in zip(rows["gateway"], rows[name])) for k in keys}
            print(f"| {name} | " + " | ".join(f"{ratio[k]:.2f}" for k in keys) + " |")
    finally:
        if gw is not None and gw.poll() is None:
            gw.terminate()
            gw.wait(timeout=30)
        B.stop_all()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
