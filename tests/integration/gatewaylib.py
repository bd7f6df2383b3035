"""Helpers for the gateway tests: start `svcctl proxy` and the test providers as real
processes on 127.0.0.1, and speak Yar as a PHP client does (built here with struct and
msgpack, sharing no code with svcctl's codec)."""
import collections
import http.client
import json
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
PROVIDER = os.path.join(HERE, "..", "providers", "provider.py")
PY = "/usr/bin/python3"

MAGIC = 0x80DFEC60
HEADER = struct.Struct(">IHII32s32sI")


def start_provider(kind, port=0):
    """A test provider on `port` (0: a free one); a given port that is still held (a
    provider just killed) is tried again for a few seconds."""
    end = time.monotonic() + 10
    while True:
        p = subprocess.Popen([PY, PROVIDER, kind, str(port)], stdout=subprocess.PIPE, text=True)
        line = p.stdout.readline().split()
        if line and line[0] == "ready":
            return p, int(line[1])
        p.wait()
        p.stdout.close()
        assert port and time.monotonic() < end, f"the {kind} provider did not start: {line}"
        time.sleep(0.2)


def running_providers(kind, n):
    """n providers of a kind for a fixture: yields their addresses, stops them after."""
    procs = [start_provider(kind) for _ in range(n)]
    try:
        yield [f"127.0.0.1:{port}" for _, port in procs]
    finally:
        for p, _ in procs:
            stop_process(p)


def closed_port():
    """A loopback port nothing listens on (just bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fake_gateway(reg, gid, admin="closed"):
    """A /gateway/{gid} node with no gateway behind it: its admin address a closed port by
    default, the one given, or none (None)."""
    node = {"listen": "127.0.0.1:1", "dc": "", "started": "2024-01-01T00:00:00Z", "version": "0.1.0"}
    if admin is not None:
        node["admin"] = f"127.0.0.1:{closed_port()}" if admin == "closed" else admin
    reg.kz.create(f"/gateway/{gid}", json.dumps(node).encode(), makepath=True)


def registered(reg, *gateways):
    """Waits until every gateway holds its /gateway/{id}."""
    for g in gateways:
        eventually(lambda: reg.kz.exists(f"/gateway/{g.id}"), what=f"/gateway/{g.id}")


def stop_process(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    for f in (p.stdout, p.stderr):
        if f:
            f.close()


class Proxy:
    """A running `svcctl proxy` on free ports; its stderr is collected in `log`."""

    def __init__(self, reg, *args, workers=2, started_by_log=None):
        """`started_by_log`: the --log-file the gateway writes to (its start line is there)."""
        self.reg = reg
        argv = [os.environ["SVCCTL_BIN"], "--zk", reg.connect, "proxy", "--listen", "127.0.0.1:0",
                "--admin", "127.0.0.1:0", "--workers", str(workers), *args]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.log = []
        deadline = time.time() + 30
        pattern = r"listening on (\S+) \(admin (\S+)\), gateway id ([^\s,]+),"
        while time.time() < deadline and not started_by_log:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            m = re.search(pattern, line)
            if m:
                self.listen, self.admin, self.id = m.group(1), m.group(2), m.group(3)
                break
        while started_by_log and time.time() < deadline and self.proc.poll() is None:
            m = re.search(pattern, started_by_log.read_text()) if started_by_log.exists() else None
            if m:
                self.listen, self.admin, self.id = m.group(1), m.group(2), m.group(3)
                break
            time.sleep(0.05)
        assert hasattr(self, "listen"), f"proxy did not start: {''.join(self.log)}"
        self.host, self.port = self.listen.rsplit(":", 1)
        self.port = int(self.port)
        self.admin_port = int(self.admin.rsplit(":", 1)[1])
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def post(self, path, body=b"", headers=None, conn=None):
        """POST and return (status, headers dict lower-cased, body bytes)."""
        own = conn is None
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        c.request("POST", path, body, headers or {})
        r = c.getresponse()
        data = r.read()
        out = (r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        if own:
            c.close()
        return out

    def call(self, svc, iface, params, headers=None):
        status, h, body = self.post(f"/{svc}/{iface}", params, headers)
        return status, h, json.loads(body) if body else None

    def admin_get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=30)
        c.request("GET", path)
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, r.getheader("Content-Type"), data

    def stats(self):
        status, _, data = self.admin_get("/-/stats")
        assert status == 200
        return json.loads(data)

    def alive(self):
        status, _, _ = self.admin_get("/-/healthz")
        return self.proc.poll() is None and status == 200

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode


def yar_request(method, params, packager="MSGPACK", rid=7, provider=b"", token=b""):
    body = {"i": rid, "m": method, "p": params}
    if packager == "JSON":
        payload = json.dumps(body).encode()
    else:
        payload = msgpack.packb(body, use_bin_type=False)
    header = HEADER.pack(rid & 0xFFFFFFFF, 0, MAGIC, 0, provider.ljust(32, b"\0"), token.ljust(32, b"\0"),
                         8 + len(payload))
    return header + packager.encode().ljust(8, b"\0") + payload


def yar_decode(packet):
    """(packager, body dict) of a Yar reply."""
    assert len(packet) >= 90, packet
    _id, _ver, magic, _res, _prov, _tok, _blen = HEADER.unpack(packet[:82])
    assert magic == MAGIC
    name = packet[82:90].split(b"\0")[0].decode()
    payload = packet[90:]
    if name == "JSON":
        return name, json.loads(payload)
    return name, msgpack.unpackb(payload, raw=False, strict_map_key=False)


def read_until_close(s):
    """Everything the peer sends until it closes; a peer that keeps the connection open
    past the socket's timeout raises socket.timeout (so a missing close fails the test)."""
    chunks = []
    while chunk := s.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def raw_exchange(port, data, timeout=10):
    """Sends raw bytes on a new connection, returns all that comes back until the gateway
    closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        return read_until_close(s)


def status_of(raw):
    """The status code of a raw HTTP response."""
    m = re.match(rb"HTTP/1\.[01] (\d{3})", raw)
    assert m, raw[:200]
    return int(m.group(1))


def body_of(raw):
    return raw.split(b"\r\n\r\n", 1)[1]


class Load:
    """Callers sending requests in a loop on keep-alive connections until stopped; every
    answer is recorded as (time, status, upstream, error code, seconds, gateway port).

    `failover`: more gateways to turn to when a connection cannot be made or is closed
    before any answer (what an HTTP client does with a gateway that stopped accepting);
    those are counted in `reconnects`, not recorded as answers."""

    def __init__(self, proxy, path, body, threads=4, failover=()):
        self.proxies = [proxy, *failover]
        self.path = path
        self.body = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
        self.results = []
        self.reconnects = 0
        self.lock = threading.Lock()
        self.stopping = False
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self):
        conn = None
        which = 0
        while not self.stopping:
            port = self.proxies[which].port
            t0 = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("POST", self.path, self.body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                rec = (time.monotonic(), r.status, r.getheader("X-Upstream"), r.getheader("X-Svcctl-Error"),
                       time.monotonic() - t0, port)
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (ConnectionRefusedError, http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError) as e:
                conn = None
                if len(self.proxies) > 1:
                    with self.lock:
                        self.reconnects += 1
                    which = (which + 1) % len(self.proxies)
                    continue
                rec = (time.monotonic(), f"exception: {e!r}", None, None, time.monotonic() - t0, port)
            except Exception as e:  # a failed request is a result too
                rec = (time.monotonic(), f"exception: {e!r}", None, None, time.monotonic() - t0, port)
                conn = None
            with self.lock:
                self.results.append(rec)

    def count(self):
        with self.lock:
            return len(self.results)

    def wait_for(self, n, timeout=30):
        deadline = time.time() + timeout
        while self.count() < n and time.time() < deadline:
            time.sleep(0.01)

    def since(self, t0):
        with self.lock:
            return [r for r in self.results if r[0] >= t0]

    def stop(self):
        self.stopping = True
        for t in self.threads:
            t.join(timeout=30)
        return self.results


def summary(results, t0=None, t1=None):
    """Requests, failures and the p99 latency (ms) of the answers between t0 and t1."""
    rs = [r for r in results if (t0 is None or r[0] >= t0) and (t1 is None or r[0] <= t1)]
    lat = sorted(r[4] for r in rs)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else 0.0
    failed = [r for r in rs if r[1] != 200]
    return {"sent": len(rs), "failed": len(failed), "p99_ms": round(p99, 2), "failures": failed[:5]}


def served_by(results):
    """How many of the answers (Load records) each upstream served with 200."""
    return collections.Counter(r[2] for r in results if r[1] == 200)


def eventually(pred, timeout=20, step=0.05, what="condition"):
    """Polls until pred() returns a true value, and returns it; fails after `timeout` s."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(step)
