"""The gateway's mass-change guard against the changes that used to pass it: one
transaction seen in pieces, the /service node removed, removals one after another and a
service's last address. Real ZooKeeper, real gateway, real providers."""
import contextlib
import json
import time
import types

from gatewaylib import Load, Proxy, eventually, running_providers, served_by
from watchlib import Relay


# n test providers for a `with`: their addresses; stopped after.
providers = contextlib.contextmanager(running_providers)


def register(reg, svc, addrs):
    reg.ok("register", "service", svc)
    for a in addrs:
        reg.ok("register", "address", svc, a)
    reg.ok("register", "api", svc, "whoami", "--path", "/whoami")


def routes_of(gw):
    return json.loads(gw.admin_get("/-/registry")[2])["routes"]


def log_of(gw):
    return "".join(gw.log)


def test_one_transaction_is_judged_whole(reg):
    """A multi-op removes 30 of 40 addresses: the cache hands the routing view the whole
    transaction, so the guard sees 30 of 40 (more than half) and holds it, every time."""
    addrs = [f"127.0.0.1:{20000 + i}" for i in range(40)]
    reg.ok("register", "service", "s")
    tx = reg.kz.transaction()
    for a in addrs:
        tx.create(f"/address/s/{a}", b"{}")
    tx.commit()
    # Every answer from ZooKeeper comes 3 ms late: the reads the removal causes come back
    # over several milliseconds, in several bursts.
    relay = Relay(reg.port, delay=0.003)
    gw = Proxy(types.SimpleNamespace(connect=f"127.0.0.1:{relay.port}{reg.chroot}"), "--guard-delay-ms", "60000")
    try:
        eventually(lambda: len(routes_of(gw)["s"]["addresses"]) == 40, what="the registry loaded")
        for attempt in range(3):
            gone = addrs[:30]
            tx = reg.kz.transaction()
            for a in gone:
                tx.delete(f"/address/s/{a}")
            tx.commit()
            eventually(lambda: gw.stats()["guard"]["held"] == ["s"], what="the hold")
            assert gw.stats()["guard"]["holds"] == attempt + 1
            # Put back in one transaction: under the limit again, released at once.
            tx = reg.kz.transaction()
            for a in gone:
                tx.create(f"/address/s/{a}", b"{}")
            tx.commit()
            eventually(lambda: gw.stats()["guard"]["held"] == [], what="the release")
        holds = [line for line in gw.log if "holding service s" in line]
        assert len(holds) == 3, holds
        assert all("take 30 of its 40 addresses away" in line for line in holds), "".join(holds)
    finally:
        gw.stop()
        relay.close()


def test_service_node_removed_is_held_then_answered_404(reg):
    """`unregister service s --recursive` under load: no call fails during the guard
    delay; once a second read confirms it, calls get the documented 404."""
    with providers("json", 2) as addrs:
        register(reg, "s", addrs)
        gw = Proxy(reg, "--guard-delay-ms", "1500")
        load = Load(gw, "/s/whoami", {}, threads=2)
        try:
            load.wait_for(100)
            t = time.monotonic()
            reg.ok("unregister", "service", "s", "--recursive")
            eventually(lambda: gw.stats()["guard"]["held"] == ["s"], what="the hold")
            eventually(lambda: any(r[1] == 404 for r in load.since(t)), timeout=30, what="the confirmed removal")
            during = [r for r in load.since(t) if r[1] != 200]
            first_404 = min(r[0] for r in during if r[1] == 404)
            assert first_404 - t >= 1.4, "applied before the guard delay"
            assert all(r[1] == 200 for r in load.since(t) if r[0] < first_404), \
                [r for r in load.since(t) if r[0] < first_404 and r[1] != 200][:5]
            status, _, body = gw.post("/s/whoami", b"{}")
            assert status == 404 and b"unknown_service" in body
            log = log_of(gw)
            assert "remove the service node of a service routed to 2 addresses" in log
            assert "service s confirmed by a second read" in log
        finally:
            load.stop()
            gw.stop()


def test_removals_one_after_another_are_held(reg):
    """Four `unregister address` in a row (the last with --force): the third leaves one of
    the four the service had a moment ago, so it is held; calls keep being served by what
    was routed, until the second read confirms that nothing is left (503 no_upstream)."""
    with providers("json", 4) as addrs:
        register(reg, "s", addrs)
        gw = Proxy(reg, "--guard-delay-ms", "2000")
        load = Load(gw, "/s/whoami", {}, threads=2)
        try:
            load.wait_for(100)
            t = time.monotonic()
            for a in addrs[:3]:
                reg.ok("unregister", "address", "s", a)
            reg.ok("unregister", "address", "s", addrs[3], "--force")
            eventually(lambda: gw.stats()["guard"]["held"] == ["s"], what="the hold")
            # Routed as it was: more than one address still serves.
            t_held = time.monotonic()
            load.wait_for(load.count() + 100)
            assert len(served_by(load.since(t_held))) >= 2
            eventually(lambda: any(r[1] == 503 for r in load.since(t)), timeout=30, what="the confirmed removal")
            first_503 = min(r[0] for r in load.since(t) if r[1] == 503)
            assert all(r[1] == 200 for r in load.since(t) if r[0] < first_503)
            assert all(r[3] == "no_upstream" for r in load.since(first_503 + 0.1) if r[1] != 200)
            assert "a change would leave 1 of the 4 addresses it was routed to within 2000 ms" in log_of(gw)
        finally:
            load.stop()
            gw.stop()


def test_last_address_is_held(reg):
    """A service's only address removed: held, still served, then confirmed."""
    with providers("json", 1) as (addr,):
        register(reg, "s", [addr])
        gw = Proxy(reg, "--guard-delay-ms", "1500")
        try:
            assert gw.call("s", "whoami", {})[0] == 200
            reg.ok("unregister", "address", "s", addr, "--force")
            eventually(lambda: gw.stats()["guard"]["held"] == ["s"], what="the hold")
            assert gw.call("s", "whoami", {})[0] == 200
            eventually(lambda: gw.call("s", "whoami", {})[0] == 503, timeout=30, what="the confirmed removal")
            assert "take its last routable address away" in log_of(gw)
        finally:
            gw.stop()
