#!/usr/bin/python3
"""Gateway costs that ../shared/bench/proxy-compare.sh does not measure (a benchmark, not a
test):

  1. CPU per call of JSON passthrough (JSON caller, JSON provider) against JSON -> Yar/msgpack
     conversion (JSON caller, Yar provider: parse, encode, decode, answer), the same wrk load,
     alternating, several rounds; medians and the ratio.
     And the same passthrough with a caller key, an ACL and a rate limit in force (a rate
     high enough never to refuse: the cost of checking it), against none; and a service of
     two addresses split 50/50 by version, sticky by the caller's key, against the same two
     addresses without versions (both called with the key).
  2. Memory of the gateway holding N idle keep-alive client connections (RSS growth).
  3. How soon a registry change is in effect: another ZooKeeper client (kazoo) marks the
     address that serves down, and one caller on a keep-alive connection calls until the
     other address answers; the time from the write's acknowledgement to that answer.

Starts its own ZooKeeper (tests/harness/zkserver.py), two nginx backends (JSON: a fixed
JSON answer; Yar: a fixed Yar/msgpack answer served from a file), the gateway, and wrk.

  bench/gateway_bench.py --svcctl build/cmd/svcctl [--rounds 5] [--duration 5] [--idle 10000]
"""
import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PY = "/usr/bin/python3"
BODY = '{"service":"echo","method":"ping","args":{"id":12345,"user":"bench","tags":["a","b"]}}'


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def nginx_conf(d, json_port, yar_port):
    yar = {"i": 0, "s": 0, "r": {"ok": True, "n": 1}}
    payload = msgpack.packb(yar, use_bin_type=False)
    header = struct.pack(">IHII32s32sI", 0, 0, 0x80DFEC60, 0, b"PHP Yar Server", b"", 8 + len(payload))
    with open(os.path.join(d, "yar.bin"), "wb") as f:
        f.write(header + b"MSGPACK\0" + payload)
    return f"""
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 10240; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
    uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{json_port} backlog=4096;
        listen 127.0.0.2:{json_port} backlog=4096;
        location = /echo {{ default_type application/json; return 200 '{{"ok":true,"n":1}}'; }}
    }}
    server {{
        listen 127.0.0.1:{yar_port} backlog=4096;
        # a POST to a static file is 405; error_page turns it into a GET of the file
        location = /rpc {{ error_page 405 =200 /yar.bin; return 405; }}
        location = /yar.bin {{ root {d}; default_type application/octet-stream; }}
    }}
}}
"""


def wrk(port, path, duration, conns, script):
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "-s", script,
                          f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("BENCHJSON "):
            return json.loads(line[len("BENCHJSON "):])
    raise RuntimeError(out)


def follow(a, zk, jp):
    """Two addresses up (the one nginx under two names), a round-robin gateway with one
    worker, one caller: answers alternate. Another client marks one address down; the change
    is in effect at the first call after which the same address answers twice in a row."""
    import http.client
    from kazoo.client import KazooClient
    addrs = [f"127.0.0.1:{jp}", f"localhost:{jp}"]
    subprocess.run([a.svcctl, "--zk", zk, "-q", "register", "address", "j", addrs[1]], check=True,
                   stdout=subprocess.DEVNULL)
    port = free_port()
    gw = subprocess.Popen([a.svcctl, "--zk", zk, "proxy", "--listen", f"127.0.0.1:{port}", "--admin", "",
                           "--workers", "1", "--balance", "round-robin", *a.follow_proxy_args.split()],
                          stderr=subprocess.PIPE, text=True)
    try:
        assert "listening on" in gw.stderr.readline()
        kz = KazooClient(hosts=zk)
        kz.start()
        conn = http.client.HTTPConnection("127.0.0.1", port)

        def served():
            conn.request("POST", "/j/ping", BODY)
            r = conn.getresponse()
            r.read()
            assert r.status == 200, r.status
            return r.getheader("X-Upstream")

        def set_status(addr, status):
            path = f"/address/j/{addr}"
            data = json.loads(kz.get(path)[0])
            data["status"] = status
            kz.set(path, json.dumps(data).encode())  # returns once ZooKeeper acknowledged it

        times, calls = [], []
        for i in range(a.follow):
            down = addrs[i % 2]
            set_status(down, "down")
            t0 = time.monotonic()
            last, n = None, 0
            while True:
                who = served()
                n += 1
                if who == last:
                    break
                last = who
            times.append((time.monotonic() - t0) * 1000)
            calls.append(n)
            set_status(down, "up")
            seen = set()
            while len(seen) < 2:  # both answer again before the next round
                seen.add(served())
        kz.stop()
    finally:
        gw.send_signal(signal.SIGTERM)
        gw.wait(timeout=10)
    times.sort()
    q = lambda f: times[min(len(times) - 1, int(f * len(times)))]
    per_call = statistics.median(t / n for t, n in zip(times, calls))
    print(f"\nregistry change in effect (write acknowledged -> calls no longer alternate), {len(times)} changes: "
          f"p50 {q(0.5):.2f} ms, p90 {q(0.9):.2f} ms, p99 {q(0.99):.2f} ms, max {times[-1]:.2f} ms "
          f"(resolution: one call, about {per_call:.2f} ms here)")


def report(rows):
    med = {k: {m: statistics.median(x[m] for x in v) for m in ("rps", "us", "p50", "p99")} for k, v in rows.items()}
    ratios = [y["us"] / p["us"] for p, y in zip(rows["passthrough"], rows["json->yar"])]
    print("\n| path | req/s | gateway CPU µs/req | p50 ms | p99 ms |\n|---|---|---|---|---|")
    for k, m in med.items():
        print(f"| {k} | {m['rps']:,.0f} | {m['us']:.1f} | {m['p50']:.2f} | {m['p99']:.2f} |")
    print(f"\nconversion / passthrough CPU per call: median of per-round ratios {statistics.median(ratios):.2f} "
          f"(rounds {min(ratios):.2f}–{max(ratios):.2f})")
    rps = [k["rps"] / p["rps"] for p, k in zip(rows["passthrough"], rows["acl+rate"])]
    cpu = [k["us"] / p["us"] for p, k in zip(rows["passthrough"], rows["acl+rate"])]
    print(f"ACL + rate limit / passthrough: req/s median of per-round ratios {statistics.median(rps):.3f} "
          f"(rounds {min(rps):.3f}–{max(rps):.3f}), CPU per call {statistics.median(cpu):.3f} "
          f"(rounds {min(cpu):.3f}–{max(cpu):.3f})")
    rps = [v["rps"] / w["rps"] for w, v in zip(rows["two addresses"], rows["split+sticky"])]
    cpu = [v["us"] / w["us"] for w, v in zip(rows["two addresses"], rows["split+sticky"])]
    print(f"split 50/50 by version, sticky by key / the same two addresses without: req/s median of per-round "
          f"ratios {statistics.median(rps):.3f} (rounds {min(rps):.3f}–{max(rps):.3f}), CPU per call "
          f"{statistics.median(cpu):.3f} (rounds {min(cpu):.3f}–{max(cpu):.3f})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--svcctl", default=os.path.join(ROOT, "build", "cmd", "svcctl"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--idle", type=int, default=10000, help="idle connections for the memory figure (0: skip)")
    ap.add_argument("--follow", type=int, default=200, help="registry changes to time (0: skip)")
    ap.add_argument("--follow-proxy-args", default="", metavar="ARGS",
                    help="more options for the gateway of the --follow test, e.g. \"--zk-sessions 1\"")
    ap.add_argument("--perf", metavar="FILE", help="also record a CPU profile (perf record) of one conversion run")
    a = ap.parse_args()
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed (apt-get install {tool})")

    d = tempfile.mkdtemp(prefix="svcctl-gwbench-")
    os.chmod(d, 0o755)  # nginx's workers (nobody) read the Yar answer from here
    procs = []
    zkdir = os.path.join(d, "zk")
    try:
        zk = subprocess.run([PY, os.path.join(ROOT, "tests/harness/zkserver.py"), "start", "--dir", zkdir],
                            capture_output=True, text=True, check=True).stdout.strip()
        zk = f"127.0.0.1:{zk.splitlines()[-1]}"
        jp, yp, gp = free_port(), free_port(), free_port()
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(nginx_conf(d, jp, yp))
        procs.append(subprocess.Popen(["nginx", "-p", d + "/", "-c", os.path.join(d, "nginx.conf")],
                                      stderr=subprocess.DEVNULL))
        s = [a.svcctl, "--zk", zk, "-q"]
        for args in (["register", "service", "j"], ["register", "address", "j", f"127.0.0.1:{jp}"],
                     ["register", "api", "j", "ping", "--path", "/echo"],
                     ["register", "service", "y"], ["register", "address", "y", f"127.0.0.1:{yp}"],
                     ["register", "api", "y", "ping", "--path", "/rpc", "--encoding", "yar-msgpack"],
                     ["register", "service", "k"], ["register", "address", "k", f"127.0.0.1:{jp}"],
                     ["register", "api", "k", "ping", "--path", "/echo"], ["register", "key", "bench"],
                     ["register", "acl", "k", "bench", "--rate", "10000000", "--burst", "1000000"],
                     # two addresses (one backend, two loopback IPs): w plain, v split by version
                     ["register", "service", "w"], ["register", "address", "w", f"127.0.0.1:{jp}"],
                     ["register", "address", "w", f"127.0.0.2:{jp}"], ["register", "api", "w", "ping", "--path", "/echo"],
                     ["register", "service", "v"],
                     ["register", "address", "v", f"127.0.0.1:{jp}", "--provider-version", "v1"],
                     ["register", "address", "v", f"127.0.0.2:{jp}", "--provider-version", "v2"],
                     ["register", "api", "v", "ping", "--path", "/echo"],
                     ["split", "v", "v1=50", "v2=50", "--sticky", "key"]):
            subprocess.run(s + args, check=True, stdout=subprocess.DEVNULL)
        gw = subprocess.Popen([a.svcctl, "--zk", zk, "proxy", "--listen", f"127.0.0.1:{gp}", "--admin", "",
                               "--workers", str(a.workers)], stderr=subprocess.PIPE, text=True)
        procs.append(gw)
        line = gw.stderr.readline()
        assert "listening on" in line, line
        script = os.path.join(d, "post.lua")
        with open(os.path.join(os.path.dirname(ROOT), "shared", "bench", "wrk", "post.lua")) as src, \
                open(script, "w") as dst:
            dst.write(src.read())
        keyed = os.path.join(d, "post-key.lua")
        with open(script) as src, open(keyed, "w") as dst:
            dst.write(src.read() + '\nwrk.headers["X-Api-Key"] = "bench"\n')
        # check every path answers as expected before measuring
        for path, want, headers in (("/j/ping", {"ok": True, "n": 1}, []), ("/y/ping", {"ok": True, "n": 1}, []),
                                    ("/k/ping", {"ok": True, "n": 1}, ["-H", "X-Api-Key: bench"]),
                                    ("/w/ping", {"ok": True, "n": 1}, ["-H", "X-Api-Key: bench"]),
                                    ("/v/ping", {"ok": True, "n": 1}, ["-H", "X-Api-Key: bench"])):
            out = subprocess.run(["curl", "-s", "-XPOST", f"http://127.0.0.1:{gp}{path}", "-d", BODY, *headers],
                                 capture_output=True, text=True).stdout
            assert json.loads(out) == want, (path, out)
        out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-XPOST",
                              f"http://127.0.0.1:{gp}/k/ping", "-d", BODY], capture_output=True, text=True).stdout
        assert out == "401", out  # the ACL is in force

        rows = {"passthrough": [], "json->yar": [], "acl+rate": [], "two addresses": [], "split+sticky": []}
        for r in range(a.rounds):
            for name, path, lua in (("passthrough", "/j/ping", script), ("json->yar", "/y/ping", script),
                                    ("acl+rate", "/k/ping", keyed), ("two addresses", "/w/ping", keyed),
                                    ("split+sticky", "/v/ping", keyed)):
                wrk(gp, path, 1, a.conns, lua)  # warm-up
                c0 = cpu_seconds(gw.pid)
                res = wrk(gp, path, a.duration, a.conns, lua)
                c1 = cpu_seconds(gw.pid)
                n = res["requests"]
                bad = res["err_status"] + res["err_connect"] + res["err_read"] + res["err_timeout"]
                rows[name].append({"rps": n / (res["duration_us"] / 1e6), "us": (c1 - c0) / n * 1e6,
                                   "p50": res["p50_us"] / 1000, "p99": res["p99_us"] / 1000, "errors": bad})
                x = rows[name][-1]
                print(f"round {r + 1} {name:12} {x['rps']:9,.0f} req/s  {x['us']:5.1f} µs/req  "
                      f"p50 {x['p50']:.2f} p99 {x['p99']:.2f} ms  errors {bad}", flush=True)
        if a.perf:
            rec = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "4999", "-g", "-p", str(gw.pid),
                                    "-o", a.perf, "--", "sleep", str(a.duration)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wrk(gp, "/y/ping", a.duration, a.conns, script)
            rec.wait()
        if a.rounds:
            report(rows)

        if a.follow:
            follow(a, zk, jp)

        if a.idle:
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            time.sleep(1)
            before = rss_kib(gw.pid)
            socks = []
            for i in range(a.idle):
                s = socket.create_connection(("127.0.0.1", gp))
                socks.append(s)
            # one call on every 10th connection, so some have been used (buffers allocated)
            for s in socks[::10]:
                s.sendall(b"POST /j/ping HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
            for s in socks[::10]:
                s.recv(65536)
            time.sleep(2)
            after = rss_kib(gw.pid)
            print(f"\nidle connections: {a.idle}; gateway RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB "
                  f"(+{(after - before) / 1024:.1f} MiB, {(after - before) * 1024 / a.idle:,.0f} bytes each)")
            for s in socks:
                s.close()
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        subprocess.run([PY, os.path.join(ROOT, "tests/harness/zkserver.py"), "stop", "--dir", zkdir],
                       capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
