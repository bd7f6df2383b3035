"""svcctl drain and undrain against real gateways and providers: drain marks the address
down and returns only once every gateway has seen the write and has no call in flight to
it, with no call failing and no call sent to it afterwards; a timeout names the gateway
still busy (exit 10); the last up address is refused without --force (exit 9); a gateway
that does not answer blocks drain unless --ignore-unreachable; undrain brings traffic
back; with no gateway, drain just marks the address down."""
import threading
import time

import pytest

from gatewaylib import Load, Proxy, eventually, fake_gateway, registered, running_providers, served_by

SLOW_MS = 2000  # long enough that calls are surely in flight while drain starts


@pytest.fixture(scope="module")
def providers():
    yield from running_providers("json", 2)


def register(reg, addresses):
    reg.ok("register", "service", "s")
    for a in addresses:
        reg.ok("register", "address", "s", a)
    reg.ok("register", "api", "s", "slow", "--path", "/slow", "--timeout-ms", "60000")
    reg.ok("register", "api", "s", "echo", "--path", "/echo")


def start_gateways(reg, n, *args):
    gws = [Proxy(reg, *args) for _ in range(n)]
    registered(reg, *gws)
    return gws


def address_stats(gw, addr):
    return gw.stats().get("services", {}).get("s", {}).get("addresses", {}).get(addr, {})


def in_flight(gw, addr):
    return address_stats(gw, addr).get("in_flight", 0)


def test_drain_waits_for_calls_in_flight_and_no_call_fails(reg, providers):
    p1, p2 = providers
    register(reg, providers)
    a, b = start_gateways(reg, 2)
    loads = []
    try:
        loads = [Load(g, "/s/slow", {"ms": SLOW_MS}, threads=3) for g in (a, b)]
        eventually(lambda: in_flight(a, p1) > 0 and in_flight(b, p1) > 0, what="calls in flight to p1")
        r = reg.run("-o", "json", "drain", "s", p1, "--timeout-ms", "60000")
        # What the gateways said the moment drain returned: nothing in flight to p1, and
        # every call p1 ever got already counted as answered.
        after = {g.id: address_stats(g, p1) for g in (a, b)}
        assert r.code == 0, r
        out = r.json
        assert out["drained"] is True and out["service"] == "s" and out["address"] == p1
        assert sorted(g["id"] for g in out["gateways"]) == sorted([a.id, b.id])
        assert all(g["drained"] and g["in_flight"] == 0 and g["zxid"] >= out["zxid"] for g in out["gateways"])
        assert out["zxid"] == reg.kz.exists(f"/address/s/{p1}").mzxid
        assert "in flight" in r.err, r.err  # it did wait for the calls under way
        for gid, st in after.items():
            assert st["in_flight"] == 0 and st["requests"] > 0, (gid, st)
        # The gateways keep sending to p2 only.
        t_done = time.monotonic()
        for load in loads:
            eventually(lambda: [rec for rec in load.since(t_done) if rec[0] - rec[4] > t_done], timeout=60,
                       what="a call started after drain")
        results = [rec for load in loads for rec in load.stop()]
        loads = []
        assert all(rec[1] == 200 for rec in results), [rec for rec in results if rec[1] != 200][:5]
        for g in (a, b):
            assert address_stats(g, p1)["requests"] == after[g.id]["requests"], "a call went to p1 after drain"
        started_after = [rec for rec in results if rec[0] - rec[4] > t_done]
        assert started_after and all(rec[2] == p2 for rec in started_after)
        assert reg.data(f"/address/s/{p1}")["status"] == "down"
    finally:
        for load in loads:
            load.stop()
        a.stop()
        b.stop()


def test_drain_times_out_naming_the_busy_gateway(reg, providers):
    p1 = providers[0]
    register(reg, [p1])
    # No guard: it would hold the removal of the service's last address (test_guard.py).
    (a,) = start_gateways(reg, 1, "--guard-delay-ms", "0")
    call = threading.Thread(target=a.post, args=("/s/slow", {"ms": SLOW_MS * 3}), daemon=True)
    try:
        call.start()
        eventually(lambda: in_flight(a, p1) > 0, what="a call in flight")
        r = reg.run("drain", "s", p1, "--force", "--timeout-ms", "300")
        assert r.code == 10, r
        assert f"{a.id} still has 1 call in flight" in r.err, r.err
        assert "timed out after 300 ms" in r.err
        assert reg.data(f"/address/s/{p1}")["status"] == "down"  # it stays down
    finally:
        call.join(timeout=60)
        a.stop()


def test_last_up_address_is_refused_without_force(reg, providers):
    p1, p2 = providers
    register(reg, providers)
    reg.ok("drain", "s", p2)
    r = reg.run("drain", "s", p1)
    assert r.code == 9, r
    assert "last up address" in r.err
    assert reg.data(f"/address/s/{p1}")["status"] == "up"
    r = reg.run("drain", "s", p1, "--force")
    assert r.code == 0, r


def test_unknown_address_and_service(reg, providers):
    register(reg, providers)
    r = reg.run("drain", "s", "127.0.0.1:1")
    assert r.code == 3 and "address 127.0.0.1:1 of service \"s\" not found" in r.err, r
    assert not reg.kz.exists("/address/s/127.0.0.1:1")
    r = reg.run("drain", "nope", "127.0.0.1:1")
    assert r.code == 3 and "service \"nope\" not found" in r.err, r


def test_no_gateway_marks_down_and_says_so(reg, providers):
    p1 = providers[0]
    register(reg, providers)
    r = reg.run("-o", "json", "drain", "s", p1)
    assert r.code == 0, r
    assert r.json["gateways"] == [] and r.json["drained"] is True
    assert "no gateway registered" in r.err
    assert reg.data(f"/address/s/{p1}")["status"] == "down"
    r = reg.run("-q", "drain", "s", p1)
    assert r.code == 0 and r.err == "", r


def test_unreachable_gateway_blocks_unless_ignored(reg, providers):
    p1 = providers[0]
    register(reg, providers)
    (a,) = start_gateways(reg, 1)
    try:
        fake_gateway(reg, "ghost")
        r = reg.run("drain", "s", p1, "--timeout-ms", "500")
        assert r.code == 10, r
        assert "ghost did not answer" in r.err and a.id not in r.err.split("timed out")[1], r.err
        r = reg.run("-o", "json", "drain", "s", p1, "--timeout-ms", "30000", "--ignore-unreachable")
        assert r.code == 0, r
        by_id = {g["id"]: g for g in r.json["gateways"]}
        assert by_id["ghost"]["ignored"] is True and "error" in by_id["ghost"]
        assert by_id[a.id]["drained"] is True
        assert "gateway ghost did not answer" in r.err
    finally:
        a.stop()


def test_undrain_brings_traffic_back(reg, providers):
    p1, p2 = providers
    register(reg, providers)
    (a,) = start_gateways(reg, 1)
    load = None
    try:
        reg.ok("drain", "s", p1)
        load = Load(a, "/s/echo", {"x": 1}, threads=2)
        load.wait_for(20)
        t0 = time.monotonic()
        r = reg.run("-o", "json", "undrain", "s", p1, "--wait")
        assert r.code == 0, r
        assert r.json["seen"] is True and all(g["seen"] for g in r.json["gateways"])
        assert reg.data(f"/address/s/{p1}")["status"] == "up"
        eventually(lambda: served_by(load.since(time.monotonic() - 0.5)).get(p1, 0) > 0, what="calls to p1 again")
        results = load.stop()
        load = None
        assert all(rec[1] == 200 for rec in results)
        assert not [rec for rec in results if rec[0] < t0 and rec[2] == p1]
        # Without --wait it is the write alone, printed as register prints it.
        r = reg.run("-o", "json", "undrain", "s", p2)
        assert r.code == 0 and r.json["action"] == "unchanged", r
    finally:
        if load:
            load.stop()
        a.stop()


def test_undrain_wait_times_out_naming_the_gateway(reg, providers):
    register(reg, providers)
    reg.ok("register", "address", "s", providers[0], "--status", "down")
    fake_gateway(reg, "ghost")
    r = reg.run("-o", "json", "undrain", "s", providers[0], "--wait", "--timeout-ms", "500")
    assert r.code == 10 and "ghost" in r.err, r
    assert r.json["seen"] is False and r.json["gateways"][0]["id"] == "ghost"
    assert reg.data(f"/address/s/{providers[0]}")["status"] == "up"  # written; only the wait timed out


def test_usage_errors(reg):
    for args in (["drain", "s"], ["drain", "s", "nohost"], ["drain", "bad name", "127.0.0.1:1"],
                 ["drain", "s", "127.0.0.1:1", "--timeout-ms", "0"]):
        r = reg.run(*args)
        assert r.code == 2, (args, r)
