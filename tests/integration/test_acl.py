"""Caller keys, ACLs and rate limits in the gateway (DESIGN §2, §4): each refusal for JSON
and Yar callers, the token bucket measured against a burst of calls, two gateways sharing
one limit, shadow mode, and enforcement from the cache while ZooKeeper is unreachable."""
import json
import threading
import time
import types

import pytest

from gatewaylib import Proxy, eventually, start_provider, stop_process, yar_decode, yar_request
from watchlib import Relay


@pytest.fixture(scope="module")
def providers():
    procs = {kind: start_provider(kind) for kind in ("json", "yar")}
    yield {kind: port for kind, (_, port) in procs.items()}
    for p, _ in procs.values():
        stop_process(p)


ADD = {"a": 1, "b": 2}


def setup_registry(reg, providers):
    """Service "s" (JSON provider) guarded by ACLs, "y" (Yar provider) guarded too, and
    "open" with no ACL at all."""
    for svc, kind, apis, enc in (("s", "json", ("echo", "add"), "json"), ("y", "yar", ("add", "echo"), "yar-msgpack"),
                                 ("open", "json", ("echo",), "json")):
        reg.ok("register", "service", svc)
        reg.ok("register", "address", svc, f"127.0.0.1:{providers[kind]}")
        for iface in apis:
            path = "/rpc" if kind == "yar" else f"/{iface}"
            reg.ok("register", "api", svc, iface, "--path", path, "--encoding", enc)
    for key in ("k-all", "k-echo", "k-off", "k-none", "k-rate"):
        reg.ok("register", "key", key, "--owner", "team-" + key)
    reg.ok("register", "key", "k-off", "--status", "down")
    reg.ok("register", "acl", "s", "k-all")
    reg.ok("register", "acl", "s", "k-echo", "--apis", "echo")
    reg.ok("register", "acl", "s", "k-off")
    reg.ok("register", "acl", "y", "k-all")
    reg.ok("register", "acl", "y", "k-echo", "--apis", "echo")


@pytest.fixture
def gw(reg, providers):
    setup_registry(reg, providers)
    p = Proxy(reg)
    yield p
    p.stop()


def error(result):
    status, headers, body = result
    return status, body["error"]["code"], headers.get("x-svcctl-error")


def test_json_callers_get_each_refusal(gw):
    echo = {"x": 1}
    # No ACL on the service: open to everyone, with or without a key.
    assert gw.call("open", "echo", echo)[0] == 200
    assert gw.call("open", "echo", echo, {"X-Api-Key": "nobody"})[0] == 200
    cases = [
        ({}, "echo", 401, "missing_key"),
        ({"X-Api-Key": "nobody"}, "echo", 401, "unknown_key"),
        ({"X-Api-Key": "k-off"}, "echo", 401, "key_disabled"),
        ({"X-Api-Key": "k-none"}, "echo", 403, "forbidden"),   # a known key without an ACL here
        ({"X-Api-Key": "k-echo"}, "add", 403, "forbidden"),    # not among its interfaces
    ]
    for headers, iface, status, code in cases:
        got = error(gw.call("s", iface, ADD if iface == "add" else echo, headers))
        assert got == (status, code, code), (headers, iface, got)
    status, _, body = gw.call("s", "echo", echo, {"X-Api-Key": "nobody"})
    assert body["error"]["service"] == "s" and "nobody" in body["error"]["message"], body
    # Allowed: in the header or in ?key=.
    assert gw.call("s", "echo", echo, {"X-Api-Key": "k-echo"}) [0] == 200
    assert gw.call("s", "add", ADD, {"X-Api-Key": "k-all"})[2] == {"sum": 3}
    status, _, body = gw.post("/s/echo?key=k-all", echo)
    assert status == 200 and json.loads(body) == echo
    status, _, body = gw.post("/s/add?key=k-echo", ADD)
    assert status == 403 and json.loads(body)["error"]["code"] == "forbidden"
    # The header wins over the query.
    assert gw.post("/s/add?key=k-all", ADD, {"X-Api-Key": "k-echo"})[0] == 403
    # A refused call never reaches a provider, and is counted per key.
    svc = gw.stats()["services"]["s"]
    assert svc["errors"] == {"missing_key": 1, "unknown_key": 2, "key_disabled": 1, "forbidden": 4}, svc["errors"]
    assert sum(a["requests"] for a in svc["addresses"].values()) == 3
    assert svc["keys"]["k-echo"]["requests"] == 4 and svc["keys"]["k-echo"]["errors"] == {"forbidden": 3}
    assert svc["keys"]["k-all"]["requests"] == 2 and svc["keys"]["k-all"]["errors"] == {}
    assert "nobody" not in svc["keys"] and "k-off" not in svc["keys"]  # only known, enabled keys


@pytest.mark.parametrize("packager", ["MSGPACK", "JSON"])
def test_yar_callers_get_the_same_decisions_as_yar_errors(gw, packager):
    def call(method, params, token=b"", headers=None):
        status, h, body = gw.post("/y", yar_request(method, params, packager, token=token), headers)
        assert status == 200, body
        return h, yar_decode(body)[1]

    for token, method, code in ((b"", "add", "missing_key"), (b"nobody", "add", "unknown_key"),
                                (b"k-off", "add", "key_disabled"), (b"k-none", "add", "forbidden"),
                                (b"k-echo", "add", "forbidden")):
        h, reply = call(method, [1, 2], token)
        assert h["x-svcctl-error"] == code, (token, reply)
        assert isinstance(reply["e"], str) and reply["e"].startswith(code + ": "), (token, reply)
        assert "r" not in reply or reply["r"] is None
    assert call("add", [1, 2], b"k-all")[1]["r"] == 3
    assert call("echo", ["hi"], b"k-echo")[1]["r"] == "hi"
    # X-Api-Key counts for Yar callers too.
    assert call("add", [2, 2], headers={"X-Api-Key": "k-all"})[1]["r"] == 4


def flood(gateways, path, headers, seconds, threads_per_gateway=2, body=b'{"x":1}'):
    """Calls as fast as the callers can for `seconds`; returns (answers by status, the
    headers of one 429 and one 200, the time from the first call sent to the last answer)."""
    import http.client
    statuses = {}
    samples = {}
    lock = threading.Lock()
    start = time.monotonic()
    end = start + seconds

    def run(port):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < end:
            c.request("POST", path, body, headers)
            r = c.getresponse()
            r.read()
            with lock:
                statuses[r.status] = statuses.get(r.status, 0) + 1
                samples.setdefault(r.status, {k.lower(): v for k, v in r.getheaders()})
        c.close()

    ts = [threading.Thread(target=run, args=(g.port,)) for g in gateways for _ in range(threads_per_gateway)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return statuses, samples, time.monotonic() - start


def test_rate_limit_allows_rate_times_time_plus_burst(gw, reg):
    rate, burst = 100, 20
    reg.ok("register", "acl", "s", "k-rate", "--rate", str(rate), "--burst", str(burst))
    eventually(lambda: gw.call("s", "echo", {}, {"X-Api-Key": "k-rate"})[0] == 200, what="the ACL in the gateway")
    time.sleep(burst / rate + 0.1)  # the bucket full again
    statuses, samples, secs = flood([gw], "/s/echo", {"X-Api-Key": "k-rate"}, 3.0)
    expected = rate * secs + burst
    print(f"FIGURE rate limit: {statuses} in {secs:.2f} s, allowed {statuses.get(200)} against {expected:.0f}")
    assert set(statuses) == {200, 429}, statuses
    assert abs(statuses[200] - expected) <= 0.05 * expected, (statuses, expected)
    ok, limited = samples[200], samples[429]
    assert ok["x-ratelimit-limit"] == str(burst) and 0 <= int(ok["x-ratelimit-remaining"]) < burst
    assert limited["x-ratelimit-limit"] == str(burst) and limited["x-ratelimit-remaining"] == "0"
    # One call's worth of the rate is 10 ms: the next second, rounded up.
    assert limited["retry-after"] == "1" and int(limited["x-ratelimit-reset"]) >= 1
    assert limited["x-svcctl-error"] == "rate_limited"
    # Counted per key, as the gateway's rate_limited error.
    key = gw.stats()["services"]["s"]["keys"]["k-rate"]
    assert key["errors"]["rate_limited"] == statuses[429]
    # Keys without a rate are not limited, and get no rate headers.
    status, headers, _ = gw.call("s", "echo", {}, {"X-Api-Key": "k-all"})
    assert status == 200 and "x-ratelimit-limit" not in headers
    # A Yar caller over its rate gets a Yar error.
    reg.ok("register", "acl", "y", "k-rate", "--rate", "1", "--burst", "1")
    eventually(lambda: b"rate_limited" in gw.post("/y", yar_request("add", [1, 2], token=b"k-rate"))[2],
               what="a Yar caller refused for its rate")
    status, h, body = gw.post("/y", yar_request("add", [1, 2], token=b"k-rate"))
    assert status == 200 and h["x-svcctl-error"] == "rate_limited" and h["retry-after"] == "1"
    assert yar_decode(body)[1]["e"].startswith("rate_limited: ")


def test_two_gateways_share_one_limit(reg, providers):
    setup_registry(reg, providers)
    rate, burst = 100, 20
    reg.ok("register", "acl", "s", "k-rate", "--rate", str(rate), "--burst", str(burst))
    a, b = Proxy(reg), Proxy(reg)
    try:
        for g in (a, b):
            eventually(lambda: json.loads(g.admin_get("/-/registry")[2])["gateways"] == 2,
                       what="each gateway to see both")
        time.sleep(0.5)
        statuses, samples, secs = flood([a, b], "/s/echo", {"X-Api-Key": "k-rate"}, 3.0)
        expected = rate * secs + burst
        print(f"FIGURE two gateways: {statuses} in {secs:.2f} s, allowed {statuses.get(200)} against {expected:.0f}")
        assert abs(statuses[200] - expected) <= 0.05 * expected, (statuses, expected)
        assert samples[429]["x-ratelimit-limit"] == str(burst // 2)
        per = [g.stats()["services"]["s"]["keys"]["k-rate"] for g in (a, b)]
        assert all(p["requests"] - p["errors"].get("rate_limited", 0) > 0 for p in per), per
        # One gone: the other takes the whole limit.
        b.stop()
        eventually(lambda: json.loads(a.admin_get("/-/registry")[2])["gateways"] == 1,
                   what="the gateway to see the other gone")
        time.sleep(0.5)
        statuses, samples, secs = flood([a], "/s/echo", {"X-Api-Key": "k-rate"}, 2.0, threads_per_gateway=4)
        expected = rate * secs + burst
        print(f"FIGURE one gateway left: {statuses} in {secs:.2f} s, allowed {statuses.get(200)}")
        assert abs(statuses[200] - expected) <= 0.05 * expected, (statuses, expected)
        assert samples[429]["x-ratelimit-limit"] == str(burst)
    finally:
        a.stop()
        b.stop()


def test_shadow_mode_counts_and_refuses_nothing(reg, providers):
    setup_registry(reg, providers)
    reg.ok("register", "service", "sh")
    reg.ok("register", "address", "sh", f"127.0.0.1:{providers['json']}")
    reg.ok("register", "api", "sh", "echo", "--path", "/echo")
    reg.ok("register", "api", "sh", "add", "--path", "/add")
    reg.ok("register", "acl", "sh", "k-echo", "--apis", "echo", "--rate", "2", "--burst", "1", "--shadow")
    # In an enforcing service, one key's ACL in shadow mode.
    reg.ok("register", "acl", "s", "k-rate", "--rate", "1", "--burst", "1", "--shadow")
    gw = Proxy(reg)
    try:
        calls = [("sh", "echo", {}, 8), ("sh", "echo", {"X-Api-Key": "nobody"}, 3),
                 ("sh", "add", {"X-Api-Key": "k-echo"}, 2), ("sh", "echo", {"X-Api-Key": "k-echo"}, 20),
                 ("s", "echo", {"X-Api-Key": "k-rate"}, 20)]
        for svc, iface, headers, n in calls:
            for _ in range(n):
                status, h, _ = gw.call(svc, iface, ADD if iface == "add" else {}, headers)
                assert status == 200, (svc, iface, headers, status)
                assert "x-ratelimit-limit" not in h
        st = gw.stats()["services"]
        assert st["sh"]["errors"] == {} and st["s"]["errors"] == {}
        shadow = st["sh"]["shadow"]
        assert shadow["missing_key"] == 8 and shadow["unknown_key"] == 3 and shadow["forbidden"] == 2, shadow
        # 20 calls in well under the time of 2/s: at least 15 over the rate.
        assert 15 <= shadow["rate_limited"] <= 19, shadow
        assert st["sh"]["keys"]["k-echo"]["shadow"]["rate_limited"] == shadow["rate_limited"]
        assert 15 <= st["s"]["shadow"]["rate_limited"] <= 19 and st["s"]["keys"]["k-rate"]["requests"] == 20
        metrics = gw.admin_get("/metrics")[2].decode()
        assert 'svcctl_shadow_rejections_total{service="sh",code="missing_key"} 8' in metrics
        # The same service, enforcing once the ACL leaves shadow mode.
        reg.ok("register", "acl", "sh", "k-echo", "--no-shadow")
        eventually(lambda: gw.call("sh", "echo", {})[0] == 401, what="the ACL enforced")
        assert gw.call("sh", "add", [1, 2], {"X-Api-Key": "k-echo"})[0] == 403
    finally:
        gw.stop()


def test_registry_changes_take_effect_and_keys_hold_while_zookeeper_is_away(reg, providers):
    setup_registry(reg, providers)
    relay = Relay(reg.port)
    gw = Proxy(types.SimpleNamespace(connect=f"127.0.0.1:{relay.port}{reg.chroot}"), "--zk-session-timeout", "30000")
    try:
        key = {"X-Api-Key": "k-echo"}
        assert gw.call("s", "add", ADD, key)[0] == 403
        reg.ok("register", "acl", "s", "k-echo", "--apis", "*")
        eventually(lambda: gw.call("s", "add", ADD, key)[0] == 200, what="the wider ACL")
        reg.ok("register", "key", "k-echo", "--status", "down")
        eventually(lambda: gw.call("s", "add", ADD, key)[0] == 401, what="the key disabled")
        reg.ok("register", "key", "k-echo", "--status", "up")
        eventually(lambda: gw.call("s", "add", ADD, key)[0] == 200, what="the key enabled")
        # ZooKeeper out of reach: the snapshot keeps deciding.
        relay.cut()
        eventually(lambda: json.loads(gw.admin_get("/-/healthz")[2])["registry"]["session"] != "connected",
                   what="the gateway to lose ZooKeeper")
        reg.ok("unregister", "acl", "s", "k-echo")  # not seen until it is back
        assert gw.call("s", "add", ADD, key)[0] == 200
        assert error(gw.call("s", "echo", {}, {"X-Api-Key": "nobody"}))[:2] == (401, "unknown_key")
        assert error(gw.call("s", "echo", {}, {"X-Api-Key": "k-none"}))[:2] == (403, "forbidden")
        assert error(gw.call("s", "echo", {}))[:2] == (401, "missing_key")
        relay.up()
        eventually(lambda: gw.call("s", "add", ADD, key)[0] == 403, timeout=60,
                   what="the ACL removal once ZooKeeper is back")
        # The last ACL of a service gone: it is open again.
        reg.ok("unregister", "acl", "s", "k-all")
        reg.ok("unregister", "acl", "s", "k-off")
        eventually(lambda: gw.call("s", "echo", {})[0] == 200, what="the service open again")
    finally:
        gw.stop()
        relay.close()


def test_require_keys_guards_every_service(reg, providers):
    setup_registry(reg, providers)
    gw = Proxy(reg, "--require-keys")
    try:
        assert error(gw.call("open", "echo", {}))[:2] == (401, "missing_key")
        assert error(gw.call("open", "echo", {}, {"X-Api-Key": "k-all"}))[:2] == (403, "forbidden")
        reg.ok("register", "acl", "open", "k-all")
        eventually(lambda: gw.call("open", "echo", {}, {"X-Api-Key": "k-all"})[0] == 200, what="the ACL")
    finally:
        gw.stop()


def test_list_shows_keys_and_who_may_call(reg, providers):
    setup_registry(reg, providers)
    reg.ok("register", "acl", "s", "k-rate", "--rate", "2.5", "--burst", "4", "--shadow")
    keys = {k["key"]: k for k in reg.ok("list", "--keys")["keys"]}
    assert keys["k-off"]["status"] == "down" and keys["k-echo"]["owner"] == "team-k-echo"
    assert sorted(a["service"] for a in keys["k-all"]["acls"]) == ["s", "y"]
    acls = {a["key"]: a for a in reg.ok("list", "s")["acls"]}
    assert acls["k-echo"]["apis"] == ["echo"] and acls["k-all"]["apis"] == ["*"]
    assert acls["k-rate"]["rate"] == 2.5 and acls["k-rate"]["burst"] == 4 and acls["k-rate"]["shadow"] is True
    table = reg.run("-o", "table", "list", "s").out
    assert "k-rate" in table and "2.5" in table and "shadow" in table, table
