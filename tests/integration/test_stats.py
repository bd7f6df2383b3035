"""svcctl stats: every gateway registered under /gateway asked for its /-/stats at once,
their figures merged (counts summed; percentiles from the summed histograms), checked
against what each gateway reports on its own; the table and its dimensions, --top and a
service filter; unreachable gateways; --watch; per-key counts. Load is stopped before
comparing, so that no figure moves between the gateways' answers and svcctl's."""
import contextlib
import json
import math
import os
import queue
import signal
import socket
import subprocess
import threading

import pytest

from gatewaylib import Load, Proxy, closed_port, eventually, fake_gateway, registered, running_providers


@pytest.fixture(scope="module")
def providers():
    yield from running_providers("json", 2)


def register(reg, providers):
    for svc in ("s", "t"):
        reg.ok("register", "service", svc)
        for a in providers:
            reg.ok("register", "address", svc, a)
        for iface in ("echo", "add", "fail"):
            reg.ok("register", "api", svc, iface, "--path", f"/{iface}")


def drive(gw, calls):
    """Sends calls one after another: {(path, body): count}; returns the statuses seen."""
    seen = []
    for (path, body), n in calls.items():
        for _ in range(n):
            seen.append(gw.post(path, body)[0])
    return seen


@pytest.fixture
def two(reg, providers):
    """Two gateways in front of the same providers, each having served a different load
    (a loop of callers, then a fixed set of calls, errors included), now idle."""
    register(reg, providers)
    # No ejection: the failing calls below must not take an address out of rotation.
    a, b = Proxy(reg, "--eject-after", "0"), Proxy(reg, "--eject-after", "0")
    try:
        registered(reg, a, b)
        for gw, n in ((a, 300), (b, 120)):
            load = Load(gw, "/s/echo", {"x": 1}, threads=3)
            load.wait_for(n)
            load.stop()
            assert all(r[1] == 200 for r in load.results), load.results[:5]
        drive(a, {("/s/add", '{"a": 1, "b": 2}'): 7, ("/s/fail", "{}"): 3, ("/t/echo", "{}"): 4, ("/nope/x", "{}"): 2})
        drive(b, {("/s/add", '{"a": 1, "b": 2}'): 2, ("/s/fail", "{}"): 5, ("/t/fail", "{}"): 1})
        yield a, b
    finally:
        a.stop()
        b.stop()


def raw_stats(gw):
    status, _, body = gw.admin_get("/-/stats?histograms=1")
    assert status == 200
    return json.loads(body)


# ---- the histogram arithmetic of lib/gateway/src/stats.cpp, written again ------------------

def upper_edge(bucket):
    if bucket < 16:
        return bucket
    e = 4 + (bucket - 16) // 8
    sub = (bucket - 16) % 8
    return ((8 + sub + 1) << (e - 3)) - 1


def merged_histogram(*counters):
    h = {}
    for c in counters:
        for bucket, n in c.get("histogram", []):
            h[bucket] = h.get(bucket, 0) + n
    return h


def quantile_ms(h, q):
    count = sum(h.values())
    if count == 0:
        return 0.0
    rank = max(1, math.ceil(q * count))
    seen = 0
    for bucket in sorted(h):
        seen += h[bucket]
        if seen >= rank:
            return upper_edge(bucket) / 1000.0
    raise AssertionError("unreachable")


def summed_errors(*counters):
    out = {}
    for c in counters:
        for code, n in c["errors"].items():
            out[code] = out.get(code, 0) + n
    return out


def check_counters(merged, *each, where=""):
    """The merged counters are the sum of each gateway's, and their percentiles those of
    the summed histograms (not the mean of each gateway's percentiles)."""
    each = [c for c in each if c is not None]
    assert merged["requests"] == sum(c["requests"] for c in each), where
    assert merged["errors"] == summed_errors(*each), where
    h = merged_histogram(*each)
    assert sum(h.values()) == merged["requests"], where
    for q, name in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99")):
        assert merged["latency_ms"][name] == quantile_ms(h, q), (where, name)
    assert "histogram" not in merged


def table_of(out):
    """The header and rows (split into cells) of a table printed after the summary lines."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("SERVICE "))
    return lines[start].split(), [line.split() for line in lines[start + 1:]]


# ---- merging -------------------------------------------------------------------------------

def test_stats_merges_two_gateways_exactly(reg, two, providers):
    a, b = two
    each = [raw_stats(a), raw_stats(b)]
    r = reg.run("-o", "json", "stats")
    assert r.code == 0, r
    assert r.err == ""
    out = r.json

    assert out["gateways"] == sorted(
        [{"id": g.id, "admin": g.admin, "listen": g.listen, "dc": "", "version": out["gateways"][0]["version"],
          "ok": True} for g in two], key=lambda g: g["id"])
    assert set(out["services"]) == {"s", "t"}
    for svc in ("s", "t"):
        m = out["services"][svc]
        per = [st["services"].get(svc) for st in each]
        check_counters(m, *per, where=svc)
        assert m["in_flight"] == 0
        assert m["retries"] == sum(p["retries"] for p in per if p)
        for iface in ("echo", "add", "fail"):
            parts = [p["interfaces"].get(iface) for p in per if p]
            if any(parts):
                check_counters(m["interfaces"][iface], *parts, where=f"{svc}/{iface}")
        for addr in m["addresses"]:
            parts = [p["addresses"].get(addr) for p in per if p]
            check_counters(m["addresses"][addr], *parts, where=f"{svc} {addr}")
            assert m["addresses"][addr]["ejections"] == 0 and m["addresses"][addr]["in_flight"] == 0
    check_counters(out["unrouted"], *[st["unrouted"] for st in each], where="unrouted")
    assert out["accepted"] == sum(st["accepted"] for st in each)
    assert out["upstream_connects"] == sum(st["upstream_connects"] for st in each)

    # What the two gateways were sent, as the merge sees it.
    s = out["services"]["s"]
    assert s["interfaces"]["add"]["requests"] == 9 and s["interfaces"]["fail"]["errors"] == {"provider_error": 8}
    assert s["interfaces"]["echo"]["requests"] >= 420
    assert set(s["addresses"]) == set(providers)
    assert out["services"]["t"]["requests"] == 5 and out["services"]["t"]["errors"] == {"provider_error": 1}
    assert out["unrouted"]["errors"] == {"unknown_service": 2}

    # The rows: one per service, busiest first, with the merged figures.
    assert out["by"] == "service"
    assert [row["service"] for row in out["rows"]] == ["s", "t"]
    row = out["rows"][0]
    assert row["requests"] == s["requests"] and row["errors"] == 8
    assert row["latency_ms"] == {k: s["latency_ms"][k] for k in ("p50", "p90", "p99")}


def test_stats_table_dimensions_top_and_filter(reg, two, providers):
    a, b = two
    ids = sorted(g.id for g in two)
    r = reg.run("-o", "table", "stats")
    assert r.code == 0, r
    lines = r.out.splitlines()
    assert lines[0] == f"2 gateways: {ids[0]}, {ids[1]}"
    assert lines[1] == "unrouted: 2 requests (unknown_service 2)"
    header, rows = table_of(r.out)
    assert header == ["SERVICE", "REQUESTS", "ERRORS", "ERR%", "RATE-LIMITED", "P50", "P90", "P99", "IN-FLIGHT"]
    assert [row[0] for row in rows] == ["s", "t"]
    assert rows[1][1:4] == ["5", "1", "20.0%"]
    assert all(cell.endswith("ms") for cell in rows[0][5:8])

    by_iface = reg.ok("stats", "--by", "interface")
    assert by_iface["by"] == "interface"
    got = {(row["service"], row["interface"]): row["requests"] for row in by_iface["rows"]}
    assert got[("s", "add")] == 9 and got[("s", "fail")] == 8 and got[("t", "echo")] == 4 and got[("t", "fail")] == 1
    assert by_iface["rows"][0]["interface"] == "echo"  # the busiest first
    r = reg.run("-o", "table", "stats", "--by", "interface")
    assert r.code == 0, r
    header, rows = table_of(r.out)
    assert header[:3] == ["SERVICE", "INTERFACE", "REQUESTS"] and rows[0][:2] == ["s", "echo"]

    by_addr = reg.ok("stats", "--by", "address", "s")
    assert {row["address"] for row in by_addr["rows"]} == set(providers)
    assert all(row["ejected_by"] == 0 and row["service"] == "s" for row in by_addr["rows"]), by_addr
    assert sum(row["requests"] for row in by_addr["rows"]) == by_addr["services"]["s"]["requests"]
    r = reg.run("-o", "table", "stats", "--by", "address")
    assert r.code == 0, r
    header, rows = table_of(r.out)
    assert header == ["SERVICE", "ADDRESS", "REQUESTS", "ERRORS", "ERR%", "P50", "P90", "P99", "IN-FLIGHT",
                      "EJECTIONS", "EJECTED"]
    every = reg.ok("stats", "--by", "address")
    pairs = {(svc, addr) for svc, s in every["services"].items() for addr, a in s["addresses"].items() if a["requests"]}
    assert {tuple(row[:2]) for row in rows} == pairs
    assert all(row[-1] == "no" for row in rows)

    top = reg.ok("stats", "--top", "1", "--by", "interface")
    assert [(row["service"], row["interface"]) for row in top["rows"]] == [("s", "echo")]
    r = reg.run("-o", "table", "stats", "--top", "1")
    assert r.code == 0 and [row[0] for row in table_of(r.out)[1]] == ["s"], r

    only_t = reg.ok("stats", "t")
    assert set(only_t["services"]) == {"t"} and [row["service"] for row in only_t["rows"]] == ["t"]
    r = reg.run("-o", "table", "stats", "t", "--by", "interface")
    assert r.code == 0, r
    assert r.out.splitlines()[0].startswith("2 gateways: ")
    assert sorted((row[0], row[1]) for row in table_of(r.out)[1]) == [("t", "echo"), ("t", "fail")]
    # A service no gateway has seen a call for: said, not an error.
    r = reg.run("-o", "table", "stats", "quiet")
    assert r.code == 0 and "no calls to service quiet" in r.out, r
    nothing = reg.run("-o", "json", "stats", "quiet")
    assert nothing.code == 0 and nothing.json["rows"] == [] and nothing.json["services"] == {}, nothing

    for bad in (("--by", "host"), ("--top", "0"), ("--timeout-ms", "0"), ("--interval", "5"), ("bad/name",)):
        r = reg.run("stats", *bad)
        assert r.code == 2, (bad, r)


def test_an_ejected_address_says_by_how_many_gateways(reg, providers):
    register(reg, providers)
    a = Proxy(reg, "--eject-after", "1", "--eject-ms", "60000")
    b = Proxy(reg, "--eject-after", "0")
    try:
        registered(reg, a, b)
        b.post("/s/echo", "{}")
        # Failures at a eject one address there (never both: at most half of them).
        eventually(lambda: a.post("/s/fail", "{}") and any(x["ejected"] for x in raw_stats(a)["services"]["s"]["addresses"].values()),
                   what="an ejection at the first gateway")
        out = reg.ok("stats", "--by", "address", "s")
        rows = {row["address"]: row for row in out["rows"]}
        ejected = [addr for addr, row in rows.items() if row["ejected_by"]]
        assert len(ejected) == 1, rows
        row = rows[ejected[0]]
        assert row["ejected_by"] == 1 and row["ejections"] == 1 and 0 < row["ejected_for_ms"] <= 60000
        assert out["services"]["s"]["addresses"][ejected[0]]["ejected"] is True
        r = reg.run("-o", "table", "stats", "--by", "address", "s")
        assert r.code == 0, r
        row, = [row for row in table_of(r.out)[1] if row[1] == ejected[0]]
        assert row[-4:-1] == ["1", "of", "2"] and row[-1].endswith("s)"), row
    finally:
        a.stop()
        b.stop()


# ---- gateways that do not answer ---------------------------------------------------------

def test_unreachable_gateways_are_reported_and_the_others_merged(reg, two):
    a, b = two
    dead = f"127.0.0.1:{closed_port()}"
    fake_gateway(reg, "dead", dead)
    # A gateway that accepts connections but never answers: bounded by --timeout-ms.
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)
    try:
        fake_gateway(reg, "hung", f"127.0.0.1:{hung.getsockname()[1]}")
        fake_gateway(reg, "noadmin", None)
        each = [raw_stats(a), raw_stats(b)]
        r = reg.run("-o", "json", "stats", "--timeout-ms", "1500")
        assert r.code == 0, r
        gws = {g["id"]: g for g in r.json["gateways"]}
        assert gws[a.id]["ok"] and gws[b.id]["ok"]
        assert gws["dead"]["ok"] is False and gws["dead"]["admin"] == dead
        assert "cannot connect" in gws["dead"]["error"]
        assert gws["hung"]["ok"] is False and "within 1500 ms" in gws["hung"]["error"]
        assert gws["noadmin"]["ok"] is False and "admin" in gws["noadmin"]["error"]
        for gid in ("dead", "hung", "noadmin"):
            assert f"warning: gateway {gid}" in r.err, r.err
        check_counters(r.json["services"]["s"], *[st["services"]["s"] for st in each], where="s")

        r = reg.run("-o", "table", "stats", "--timeout-ms", "1500")
        assert r.code == 0, r
        first = r.out.splitlines()[0]
        assert first.startswith("2 gateways: ") and "; 3 unreachable: dead (cannot connect" in first, first
    finally:
        hung.close()


def test_no_gateway_answering_and_no_gateway_registered(reg):
    r = reg.run("stats")
    assert r.code == 3 and "no gateway registered under /gateway" in r.err, r
    reg.kz.ensure_path("/gateway")
    r = reg.run("stats")
    assert r.code == 3, r
    fake_gateway(reg, "dead", f"127.0.0.1:{closed_port()}")
    fake_gateway(reg, "noadmin", None)
    r = reg.run("-o", "json", "stats")
    assert r.code == 8 and r.out == "", r
    assert "no gateway answered" in r.err and "dead (cannot connect" in r.err and "noadmin" in r.err, r
    r = reg.run("--zk-timeout", "1000", "stats", zk="127.0.0.1:1")
    assert r.code == 5, r


# ---- --watch -------------------------------------------------------------------------------

class Lines:
    """A process's stdout lines, read on a thread so that waiting for one has a timeout."""

    def __init__(self, proc):
        self.q = queue.Queue()
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc):
        for line in proc.stdout:
            self.q.put(line)
        self.q.put(None)

    def next(self, timeout=60):
        line = self.q.get(timeout=timeout)
        assert line is not None, "the output ended"
        return line


@contextlib.contextmanager
def watch(reg, *args):
    """svcctl running until the block ends (killed then, if it has not exited)."""
    argv = [os.environ["SVCCTL_BIN"], "--zk", reg.connect, *args]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield p
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
        p.stdout.close()
        p.stderr.close()


def test_watch_json_prints_a_frame_per_round_until_sigint(reg, two):
    a, _ = two
    with watch(reg, "-o", "json", "stats", "--watch", "--interval", "200") as p:
        lines = Lines(p)
        first = json.loads(lines.next())
        assert first["services"]["s"]["requests"] > 0 and first["at"].endswith("Z")
        assert all("requests_per_second" not in row for row in first["rows"])
        a.post("/t/echo", "{}")  # traffic between rounds: seen in a later frame
        seen = eventually(lambda: (f := json.loads(lines.next())) and f["services"]["t"]["requests"] == 6 and f,
                          what="a frame with the new call")
        assert len(seen["gateways"]) == 2
        for row in seen["rows"]:
            assert row["requests_per_second"] >= 0
        # The call made between the two rounds shows as a rate in t's row.
        assert [r["requests_per_second"] > 0 for r in seen["rows"] if r["service"] == "t"] == [True], seen["rows"]
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=30) == 0
        assert p.stderr.read() == ""


def test_watch_table_not_on_a_terminal_prints_frames_one_after_another(reg, two):
    with watch(reg, "-o", "table", "stats", "--watch", "--interval", "200", "--by", "address") as p:
        lines = Lines(p)
        summaries = 0
        headers = 0
        while summaries < 2 or headers < 2:
            line = lines.next()
            assert "\x1b" not in line
            summaries += line.startswith("2 gateways: ")
            headers += line.split()[:4] == ["SERVICE", "ADDRESS", "REQUESTS", "REQ/S"]
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0


# ---- keys --------------------------------------------------------------------------------

def test_by_key_counts_calls_with_a_known_key(reg, providers):
    """Calls carrying a key registered under /key are counted under their service's
    "keys": requests, rate-limited refusals, shadow-mode counts, summed over gateways."""
    register(reg, providers)
    reg.ok("register", "key", "K")
    reg.ok("register", "key", "K2")
    reg.ok("register", "acl", "s", "K", "--rate", "0.01", "--burst", "2")
    reg.ok("register", "acl", "s", "K2", "--rate", "0.01", "--burst", "1", "--shadow")
    a, b = Proxy(reg), Proxy(reg)
    try:
        registered(reg, a, b)
        for gw, n in ((a, 6), (b, 4)):
            for _ in range(n):
                gw.post("/s/echo", "{}", {"X-Api-Key": "K"})
            for _ in range(3):
                assert gw.post("/s/echo", "{}", {"X-Api-Key": "K2"})[0] == 200  # shadow: never refused
        each = [raw_stats(a)["services"]["s"]["keys"], raw_stats(b)["services"]["s"]["keys"]]
        out = reg.ok("stats", "--by", "key")
        keys = out["services"]["s"]["keys"]
        assert set(keys) == {"K", "K2"}
        for key in ("K", "K2"):
            check_counters(keys[key], *[e.get(key) for e in each], where=key)
        assert keys["K"]["requests"] == 10 and keys["K2"]["requests"] == 6
        assert keys["K"]["errors"].get("rate_limited", 0) >= 1
        assert keys["K2"]["shadow"] == summed_shadow(each, "K2") and keys["K2"]["shadow"].get("rate_limited", 0) >= 1
        rows = {row["key"]: row for row in out["rows"]}
        assert rows["K"]["requests"] == 10 and rows["K"]["rate_limited"] == keys["K"]["errors"]["rate_limited"]
        assert rows["K2"]["shadow"] == sum(keys["K2"]["shadow"].values())
        assert [row["key"] for row in out["rows"]] == ["K", "K2"]

        r = reg.run("-o", "table", "stats", "--by", "key")
        assert r.code == 0, r
        header, rows = table_of(r.out)
        assert header[:8] == ["SERVICE", "KEY", "REQUESTS", "ERRORS", "ERR%", "RATE-LIMITED", "SHADOW", "P50"]
        assert [row[:3] for row in rows] == [["s", "K", "10"], ["s", "K2", "6"]]
    finally:
        a.stop()
        b.stop()


def summed_shadow(each, key):
    out = {}
    for e in each:
        for code, n in e.get(key, {}).get("shadow", {}).items():
            out[code] = out.get(code, 0) + n
    return out
