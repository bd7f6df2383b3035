"""svcctl proxy when things break: providers killed, gone or hanging, ZooKeeper stopped,
the gateway's session expired, an ensemble's leader killed, SIGTERM, SIGHUP, a writer
that empties a service. Real processes throughout, with callers sending during each
fault. Each fault prints one FIGURE line (requests sent, failed, p99 during the fault)."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import types

import pytest
from kazoo.client import KazooClient
from kazoo.retry import KazooRetry

from gatewaylib import Load, Proxy, eventually, served_by, start_provider, stop_process, summary
from watchlib import Holder, Relay, Watch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "harness"))
import zkserver  # noqa: E402


def figure(name, s):
    print(f"\nFIGURE {name}: sent {s['sent']}, failed {s['failed']}, p99 {s['p99_ms']} ms", flush=True)


def address_stats(gw, svc, addr):
    return gw.stats()["services"].get(svc, {}).get("addresses", {}).get(addr, {})


def register(reg, svc, addrs, apis=(("whoami", "/whoami"),), idempotent=False):
    reg.ok("register", "service", svc)
    for a in addrs:
        reg.ok("register", "address", svc, a)
    for name, path in apis:
        extra = ["--idempotent"] if idempotent else []
        reg.ok("register", "api", svc, name, "--path", path, *extra)


@pytest.mark.parametrize("idempotent", [False, True])
def test_provider_killed_under_load(reg, idempotent):
    """One of two providers killed: nothing that could be retried fails (only calls the dead
    provider had taken, and none when the interface is idempotent); the address is ejected,
    and back in rotation once it returns and its ejection ends."""
    (p1, port1), (p2, port2) = start_provider("json"), start_provider("json")
    a, b = f"127.0.0.1:{port1}", f"127.0.0.1:{port2}"
    register(reg, "s", [a, b], idempotent=idempotent)
    gw = Proxy(reg, "--eject-ms", "1500")
    load = Load(gw, "/s/whoami", {}, threads=4)
    try:
        load.wait_for(300)
        assert set(served_by(load.results)) == {a, b}
        t_kill = time.monotonic()
        p2.kill()
        p2.wait()
        ejected_at = eventually(lambda: address_stats(gw, "s", b).get("ejected") and time.monotonic(),
                                what="ejection")
        print(f"\nFIGURE ejected after {(ejected_at - t_kill) * 1000:.0f} ms (stats polled every 50 ms)")
        t_ejected = time.monotonic()
        load.wait_for(load.count() + 300)
        assert set(served_by(load.since(t_ejected))) == {a}
        fault = summary(load.results, t_kill, time.monotonic())
        figure(f"provider killed (idempotent={idempotent})", fault)
        # Calls the dead provider had taken may fail (not sent again unless idempotent);
        # a call that could not be sent never does.
        bad = [r for r in load.since(t_kill) if r[1] != 200]
        assert all(r[3] == "bad_response" for r in bad), bad[:5]
        assert len(bad) <= (0 if idempotent else 4), bad[:5]
        st = gw.stats()["services"]["s"]
        assert st["addresses"][b]["ejections"] >= 1
        assert st["retries"] >= 1  # connect errors were sent to a
        # The provider returns on its port: after the ejection, traffic again.
        p2, _ = start_provider("json", port2)
        eventually(lambda: b in served_by(load.since(time.monotonic() - 0.5)), timeout=30,
                   what="traffic to the returned provider")
    finally:
        results = load.stop()
        gw.stop()
        stop_process(p1)
        stop_process(p2)
    assert all(r[1] == 200 for r in results if r[0] > t_kill + 5), "failures long after the kill"


def test_all_providers_gone(reg):
    """Every provider dead: 503 at once, never a wait for a timeout."""
    (p1, port1), (p2, port2) = start_provider("json"), start_provider("json")
    register(reg, "s", [f"127.0.0.1:{port1}", f"127.0.0.1:{port2}"])
    reg.ok("register", "api", "s", "whoami", "--path", "/whoami", "--timeout-ms", "30000")
    gw = Proxy(reg, "--eject-ms", "1500")
    load = Load(gw, "/s/whoami", {}, threads=4)
    try:
        load.wait_for(200)
        for p in (p1, p2):
            p.kill()
            p.wait()
        time.sleep(0.3)  # calls already taken by the providers when they died end first
        t = time.monotonic()
        load.wait_for(load.count() + 1000)
        after = load.since(t)
        assert after and all(r[1] == 503 and r[3] == "upstream_unreachable" for r in after), after[:5]
        s = summary(after)
        figure("all providers gone (503s, latency of the 503)", s)
        # Far under the interface's 30 s timeout: nobody waited for it.
        assert max(r[4] for r in after) < 10
        # Never more than half of the addresses out: one of the two, at most.
        addrs = gw.stats()["services"]["s"]["addresses"]
        assert sum(a["ejected"] for a in addrs.values()) <= 1, addrs
        assert sum(a["ejections"] for a in addrs.values()) >= 1, addrs
    finally:
        load.stop()
        gw.stop()
        stop_process(p1)
        stop_process(p2)


def test_hanging_provider_gives_504_and_spares_other_interfaces(reg):
    p, port = start_provider("json")
    addr = f"127.0.0.1:{port}"
    register(reg, "s", [addr], apis=(("whoami", "/whoami"),))
    reg.ok("register", "api", "s", "hang", "--path", "/slow", "--timeout-ms", "400")
    gw = Proxy(reg)
    load = Load(gw, "/s/whoami", {}, threads=3)
    try:
        load.wait_for(100)
        t = time.monotonic()
        for _ in range(3):
            t0 = time.monotonic()
            status, h, body = gw.call("s", "hang", {"ms": 20000})
            took = time.monotonic() - t0
            assert status == 504 and body["error"]["code"] == "timeout", body
            assert 0.39 < took < 10, took  # at the interface's timeout, not the provider's 20 s
        s = summary(load.since(t))
        figure("hanging interface (the other interface's calls)", s)
        assert s["sent"] > 0 and s["failed"] == 0, s
    finally:
        load.stop()
        gw.stop()
        stop_process(p)


def kazoo(connect):
    kz = KazooClient(hosts=connect, timeout=15)
    kz.start(timeout=60)
    return kz


def put_service(kz, svc, addrs, api="whoami", path="/whoami"):
    kz.create(f"/service/{svc}", b'{"status":"up"}', makepath=True)
    for a in addrs:
        kz.create(f"/address/{svc}/{a}", b'{"weight":100,"status":"up"}', makepath=True)
    kz.create(f"/api/{svc}/{api}", json.dumps({"path": path}).encode(), makepath=True)


def test_zookeeper_stopped_for_30_seconds(own_zk):
    d, st = own_zk
    (p1, port1), (p2, port2) = start_provider("json"), start_provider("json")
    a, b = f"127.0.0.1:{port1}", f"127.0.0.1:{port2}"
    kz = kazoo(st["connect"])
    put_service(kz, "s", [a])
    kz.stop()
    gw = Proxy(types.SimpleNamespace(connect=st["connect"]), "--zk-session-timeout", "4000")
    load = Load(gw, "/s/whoami", {}, threads=4)
    try:
        load.wait_for(200)
        t = time.monotonic()
        zkserver.stop(d)
        eventually(lambda: json.loads(gw.admin_get("/-/healthz")[2])["registry"]["session"] != "connected",
                   what="the gateway to see ZooKeeper gone")
        health = json.loads(gw.admin_get("/-/healthz")[2])
        assert health["status"] == "ok" and health["registry"]["stale_seconds"] > 0, health
        time.sleep(30)
        st2 = zkserver.restart(st)
        s = summary(load.results, t, time.monotonic())
        figure("ZooKeeper stopped 30 s", s)
        assert s["failed"] == 0 and s["sent"] > 0, s
        # Changes made after it returns take effect.
        kz = kazoo(st2["connect"])
        kz.create(f"/address/s/{b}", b'{"weight":100,"status":"up"}')
        eventually(lambda: b in served_by(load.since(time.monotonic() - 0.5)), timeout=60,
                   what="traffic to the address added after ZooKeeper returned")
        kz.stop()
    finally:
        results = load.stop()
        gw.stop()
        stop_process(p1)
        stop_process(p2)
    assert all(r[1] == 200 for r in results), [r for r in results if r[1] != 200][:5]


def test_session_expiry_under_load(own_zk):
    d, st = own_zk
    (p1, port1), (p2, port2), (p3, port3) = (start_provider("json") for _ in range(3))
    a, b, c = (f"127.0.0.1:{p}" for p in (port1, port2, port3))
    kz = kazoo(st["connect"])
    put_service(kz, "s", [a, b])
    relay = Relay(st["port"])
    gw = Proxy(types.SimpleNamespace(connect=f"127.0.0.1:{relay.port}"), "--zk-session-timeout", "1500")
    load = Load(gw, "/s/whoami", {}, threads=4)
    try:
        load.wait_for(200)
        t = time.monotonic()
        relay.cut()
        # While the gateway is cut off: c added, b taken out.
        kz.create(f"/address/s/{c}", b'{"weight":100,"status":"up"}')
        kz.delete(f"/address/s/{b}")
        time.sleep(4)  # the session (1.5 s) expires on the server meanwhile
        assert set(served_by(load.since(time.monotonic() - 1))) == {a, b}  # the snapshot
        relay.up()
        eventually(lambda: set(served_by(load.since(time.monotonic() - 0.5))) == {a, c}, timeout=60,
                   what="the changes made while expired")
        s = summary(load.results, t, time.monotonic())
        figure("gateway session expired", s)
        assert s["failed"] == 0, s
        # Each of the gateway's sessions is replaced after its own random delay.
        eventually(lambda: gw.stats()["registry"]["session"] == "connected", timeout=30,
                   what="every session connected again")
    finally:
        load.stop()
        gw.stop()
        relay.close()
        kz.stop()
        for p in (p1, p2, p3):
            stop_process(p)


def test_ensemble_leader_killed_under_load(tmp_path):
    members = zkserver.start_ensemble(str(tmp_path))
    connect = members[0]["ensemble_connect"]
    (p1, port1), (p2, port2) = start_provider("json"), start_provider("json")
    a, b = f"127.0.0.1:{port1}", f"127.0.0.1:{port2}"
    kz = kazoo(connect)
    gw = load = None
    try:
        put_service(kz, "s", [a])
        gw = Proxy(types.SimpleNamespace(connect=connect), "--zk-session-timeout", "6000")
        load = Load(gw, "/s/whoami", {}, threads=4)
        load.wait_for(200)
        leader = next(m for m in members if zkserver.mode(m["port"]) == "leader")
        t = time.monotonic()
        zkserver.stop(leader["dir"])
        KazooRetry(max_tries=-1, delay=0.2, max_delay=1, deadline=60)(
            lambda: kz.create(f"/address/s/{b}", b'{"weight":100,"status":"up"}'))
        eventually(lambda: b in served_by(load.since(time.monotonic() - 0.5)), timeout=60,
                   what="a change made after the leader died")
        s = summary(load.results, t, time.monotonic())
        figure("ensemble leader killed", s)
        assert s["failed"] == 0, s
    finally:
        if load:
            load.stop()
        if gw:
            gw.stop()
        kz.stop()
        stop_process(p1)
        stop_process(p2)
        for m in members:
            zkserver.stop(m["dir"])


def test_sigterm_drains(reg):
    """SIGTERM: calls under way finish, new connections are refused (the callers turn to a
    second gateway), /gateway/{id} goes, exit 0."""
    p, port = start_provider("json")
    register(reg, "s", [f"127.0.0.1:{port}"])
    reg.ok("register", "api", "s", "slow", "--path", "/slow", "--timeout-ms", "10000")
    g1, g2 = Proxy(reg), Proxy(reg)
    load = Load(g1, "/s/whoami", {}, threads=4, failover=[g2])
    slow = []
    try:
        load.wait_for(200)
        eventually(lambda: reg.kz.exists(f"/gateway/{g1.id}") and reg.kz.exists(f"/gateway/{g2.id}"),
                   what="both gateways registered")
        conns = []

        def call_slow():
            slow.append(g1.call("s", "slow", {"ms": 4000}))

        for _ in range(5):
            th = threading.Thread(target=call_slow)
            th.start()
            conns.append(th)
        eventually(lambda: g1.stats()["services"].get("s", {}).get("in_flight", 0) >= 5, what="slow calls in flight")
        t = time.monotonic()
        g1.proc.send_signal(signal.SIGTERM)

        def refused():
            try:
                socket.create_connection(("127.0.0.1", g1.port), timeout=1).close()
                return False
            except ConnectionRefusedError:
                return True
        eventually(refused, timeout=5, what="the listener to close")
        assert len(slow) < 5  # refused while calls were still under way
        for th in conns:
            th.join(timeout=30)
        assert g1.proc.wait(timeout=30) == 0
        assert [s[0] for s in slow] == [200] * 5, slow
        assert reg.kz.exists(f"/gateway/{g1.id}") is None
        assert reg.kz.exists(f"/gateway/{g2.id}")
        load.wait_for(load.count() + 200)
        s = summary(load.results, t, time.monotonic())
        figure("SIGTERM drain (callers fail over)", s)
        assert s["failed"] == 0, s
        assert any(r[5] == g2.port for r in load.since(t))
        assert "drained, stopped" in "".join(g1.log)
    finally:
        load.stop()
        g1.stop()
        g2.stop()
        stop_process(p)


def test_start_with_zookeeper_down(tmp_path, own_zk):
    d, st = own_zk
    pr, port = start_provider("json")
    lkg = tmp_path / "registry.lkg"
    kz = kazoo(st["connect"])
    put_service(kz, "s", [f"127.0.0.1:{port}"])
    kz.stop()
    zk = types.SimpleNamespace(connect=st["connect"])
    try:
        gw = Proxy(zk, "--lkg-file", str(lkg))
        assert gw.call("s", "whoami", {})[0] == 200
        eventually(lambda: lkg.exists(), what="the last-known-good file")
        gw.stop()
        zkserver.stop(d)
        # ZooKeeper down, with the file: serves from it (and /-/healthz says it is stale
        # once that lasts longer than --max-stale-s).
        gw = Proxy(zk, "--lkg-file", str(lkg), "--zk-timeout", "1000", "--max-stale-s", "2")
        status, _, body = gw.call("s", "whoami", {})
        assert status == 200 and body == {"port": port}
        health = json.loads(gw.admin_get("/-/healthz")[2])
        assert health["registry"]["serving_last_known_good"] is True
        eventually(lambda: gw.admin_get("/-/healthz")[0] == 503, what="stale health")
        health = json.loads(gw.admin_get("/-/healthz")[2])
        assert health["status"] == "stale" and health["registry"]["stale_seconds"] > 2, health
        assert gw.call("s", "whoami", {})[0] == 200  # still routing
        assert any("unreachable" in line for line in gw.log)
        # ZooKeeper back: reconciled (a change made now takes effect).
        st2 = zkserver.restart(st)
        kz = kazoo(st2["connect"])
        kz.set("/service/s", b'{"status":"down"}')
        eventually(lambda: gw.call("s", "whoami", {})[0] == 503, timeout=60, what="reconciliation")
        kz.stop()
        gw.stop()
        zkserver.stop(d)
        # Without a usable file: a clear error, exit 5.
        r = subprocess.run([os.environ["SVCCTL_BIN"], "--zk", st["connect"], "--zk-timeout", "800", "proxy",
                            "--listen", "127.0.0.1:0", "--admin", "", "--lkg-file", str(tmp_path / "none.lkg")],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 5, r
        assert "no usable last-known-good file" in r.stderr
    finally:
        stop_process(pr)


def test_mass_change_guard(reg):
    """A writer takes 3 of 4 addresses away at once: held, the service routed as it was,
    until a second read confirms it; a change under the limit applies at once."""
    procs = [start_provider("json") for _ in range(4)]
    addrs = [f"127.0.0.1:{port}" for _, port in procs]
    register(reg, "s", addrs)
    gw = Proxy(reg, "--guard-delay-ms", "3000")
    load = Load(gw, "/s/whoami", {}, threads=4)
    try:
        load.wait_for(400)
        assert set(served_by(load.results)) == set(addrs)
        tx = reg.kz.transaction()
        for a in addrs[1:]:
            tx.delete(f"/address/s/{a}")
        tx.commit()
        eventually(lambda: gw.stats()["guard"]["held"] == ["s"], what="the hold")
        t = time.monotonic()
        load.wait_for(load.count() + 200)
        assert len(served_by(load.since(t))) > 1  # still routed as it was
        eventually(lambda: set(served_by(load.since(time.monotonic() - 0.5))) == {addrs[0]}, timeout=30,
                   what="the confirmed change")
        g = gw.stats()["guard"]
        assert g["held"] == [] and g["holds"] == 1
        log = "".join(gw.log)
        assert "mass-change guard: holding service s" in log and "confirmed by a second read" in log
        # Two put back, then one of the three taken away: under the limit, applied at once.
        for a in addrs[1:3]:
            reg.ok("register", "address", "s", a)
        eventually(lambda: len(served_by(load.since(time.monotonic() - 0.5))) == 3, what="addresses back")
        reg.ok("unregister", "address", "s", addrs[2])
        eventually(lambda: set(served_by(load.since(time.monotonic() - 0.3))) == set(addrs[:2]), timeout=10,
                   what="a change under the limit")
        assert gw.stats()["guard"]["holds"] == 1
    finally:
        results = load.stop()
        gw.stop()
        for p, _ in procs:
            stop_process(p)
    assert all(r[1] == 200 for r in results), [r for r in results if r[1] != 200][:5]


def test_logs_json_access_log_and_sighup_reopen(reg, tmp_path):
    p, port = start_provider("json")
    register(reg, "s", [f"127.0.0.1:{port}"])
    log = tmp_path / "gw.log"
    gw = Proxy(reg, "--log-file", str(log), "--log-format", "json", "--access-log", "--id", "g1",
               started_by_log=log)
    try:
        status, h, _ = gw.call("s", "whoami", {}, headers={"X-Request-Id": "req-1"})
        assert status == 200
        gw.call("s", "nope", {})

        def lines(f):
            return [json.loads(x) for x in f.read_text().splitlines()] if f.exists() else []
        calls = eventually(lambda: [x for x in lines(log) if x.get("msg") == "call"] if len(
            [x for x in lines(log) if x.get("msg") == "call"]) >= 2 else None, what="access lines")
        ok = next(x for x in calls if x["request_id"] == "req-1")
        assert ok["service"] == "s" and ok["interface"] == "whoami" and ok["status"] == 200
        assert ok["upstream"] == f"127.0.0.1:{port}" and ok["error"] is None and ok["duration_ms"] > 0
        bad = next(x for x in calls if x["interface"] == "nope")
        assert bad["status"] == 404 and bad["error"] == "unknown_interface" and bad["upstream"] is None
        assert any("listening on" in x["msg"] for x in lines(log))
        # logrotate: the file moved away, SIGHUP, a new file.
        moved = tmp_path / "gw.log.1"
        log.rename(moved)
        gw.proc.send_signal(signal.SIGHUP)
        eventually(lambda: log.exists(), what="the reopened log")
        gw.call("s", "whoami", {}, headers={"X-Request-Id": "req-2"})
        eventually(lambda: any(x.get("request_id") == "req-2" for x in lines(log)), what="a line in the new file")
        assert not any(x.get("request_id") == "req-2" for x in lines(moved))
    finally:
        gw.stop()
        stop_process(p)


def test_pending_limit_answers_503_at_once(reg):
    p, port = start_provider("json")
    register(reg, "s", [f"127.0.0.1:{port}"])
    reg.ok("register", "api", "s", "slow", "--path", "/slow", "--timeout-ms", "10000")
    gw = Proxy(reg, "--max-pending", "2", workers=1)
    slow = []
    threads = [threading.Thread(target=lambda: slow.append(gw.call("s", "slow", {"ms": 8000}))) for _ in range(2)]
    try:
        for th in threads:
            th.start()
        # The service has no counters until its first call arrives.
        eventually(lambda: gw.stats()["services"].get("s", {}).get("in_flight") == 2, what="two calls in flight")
        t0 = time.monotonic()
        status, h, body = gw.call("s", "whoami", {})
        assert time.monotonic() - t0 < 6  # not queued behind the slow calls (8 s)
        assert status == 503 and body["error"]["code"] == "upstream_overloaded", body
        for th in threads:
            th.join(timeout=30)
        assert [s[0] for s in slow] == [200, 200]
        assert gw.call("s", "whoami", {})[0] == 200  # room again
    finally:
        gw.stop()
        stop_process(p)


def dead_address():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"  # closed: connections are refused


def test_retry_budget_caps_retries(reg):
    """No budget beyond the burst: 20 retries, then calls that hit the dead address fail."""
    p, port = start_provider("json")
    dead = dead_address()
    register(reg, "s", [f"127.0.0.1:{port}", dead])
    gw = Proxy(reg, "--retry-budget", "0", "--eject-after", "0", workers=1)
    try:
        answers = [gw.call("s", "whoami", {})[0] for _ in range(200)]
        st = gw.stats()["services"]["s"]
        assert st["retries"] == 20, st  # the burst, and nothing earned
        assert st["retries_denied"] >= 1, st
        assert answers.count(503) == st["retries_denied"], (answers.count(503), st)
        assert st["addresses"][dead]["ejections"] == 0  # --eject-after 0: never
    finally:
        gw.stop()
        stop_process(p)


def test_panic_routes_to_ejected_addresses(reg):
    """The only healthy address marked down, the one left ejected: panic routes to it
    anyway (and says so) rather than answering no_upstream."""
    p, port = start_provider("json")
    alive, dead = f"127.0.0.1:{port}", dead_address()
    register(reg, "s", [alive, dead])
    gw = Proxy(reg, "--eject-after", "1", "--eject-ms", "60000", workers=1)
    try:
        eventually(lambda: gw.call("s", "whoami", {}) and address_stats(gw, "s", dead).get("ejected"),
                   what="the dead address ejected")
        reg.ok("register", "address", "s", alive, "--status", "down", "--force")
        status, h, body = eventually(lambda: (lambda r: r if r[0] != 200 else None)(gw.call("s", "whoami", {})),
                                     what="the healthy address out of routing")
        assert status == 503 and body["error"]["code"] == "upstream_unreachable", body
        assert h["x-upstream"] == dead  # tried, though ejected
        assert gw.stats()["services"]["s"]["panic"] >= 1
    finally:
        gw.stop()
        stop_process(p)


def routed(gw, svc):
    """The addresses /-/registry says the gateway routes `svc` to."""
    routes = json.loads(gw.admin_get("/-/registry")[2])["routes"]
    return {a["address"] for a in routes.get(svc, {}).get("addresses", [])}


def test_mass_change_guard_after_session_expiry(reg):
    """Every session of the gateway expired (ZooKeeper cut off for longer than the session
    timeout), the confirming one included: a mass removal made after that is still
    confirmed by a second read, through a new session, and the log says the confirming
    session was replaced. The removed providers keep answering until the removal is in
    effect (calls still routed to them must not fail meanwhile), then are stopped."""
    procs = [start_provider("json") for _ in range(4)]
    addrs = [f"127.0.0.1:{port}" for _, port in procs]
    register(reg, "s", addrs)
    spare = [f"10.0.0.{i}:80" for i in range(1, 5)]  # never called
    register(reg, "w", spare)
    relay = Relay(reg.port)
    gw = Proxy(types.SimpleNamespace(connect=f"127.0.0.1:{relay.port}{reg.chroot}"),
               "--zk-session-timeout", "4000", "--guard-delay-ms", "1000")
    load = Load(gw, "/s/whoami", {}, threads=4)
    try:
        load.wait_for(200)
        # A first mass removal, confirmed: the confirming session is open.
        tx = reg.kz.transaction()
        for a in spare[1:]:
            tx.delete(f"/address/w/{a}")
        tx.commit()
        eventually(lambda: "service w confirmed by a second read" in "".join(gw.log), timeout=20,
                   what="the first removal confirmed")
        relay.cut()
        time.sleep(9)  # every session (4 s) expires on the server meanwhile
        relay.up()
        eventually(lambda: gw.stats()["registry"]["session"] == "connected", timeout=30,
                   what="the cache's new sessions")
        t = time.monotonic()
        tx = reg.kz.transaction()
        for a in addrs[1:]:
            tx.delete(f"/address/s/{a}")
        tx.commit()
        eventually(lambda: gw.stats()["guard"]["held"] == ["s"], timeout=20, what="the hold")
        try:
            eventually(lambda: routed(gw, "s") == {addrs[0]}, timeout=20, what="the removal confirmed")
        finally:
            print("".join(line for line in gw.log if "mass-change guard" in line))  # shown on failure
        eventually(lambda: set(served_by(load.since(time.monotonic() - 0.5))) == {addrs[0]}, timeout=10,
                   what="calls to the address left only")
        log = "".join(gw.log)
        assert "service s confirmed by a second read: 1 of " in log, log
        assert "failed a read" in log and "reading again through a new session" in log, log
        # Not routed any more: their providers gone, no call fails.
        for p, _ in procs[1:]:
            stop_process(p)
        load.wait_for(load.count() + 200)
        s = summary(load.results, t, time.monotonic())
        figure("mass removal confirmed after the gateway's sessions expired", s)
        assert s["failed"] == 0, s
    finally:
        load.stop()
        gw.stop()
        relay.close()
        for p, _ in procs:
            stop_process(p)


def session_events(gw):
    """The session transitions a gateway logging JSON lines has logged, in order."""
    out = []
    for line in list(gw.log):
        try:
            j = json.loads(line)
        except ValueError:
            continue
        if j.get("event") == "session":
            out.append(j)
    return out


def metric(gw, name):
    """A line's value on /metrics, by its full name with labels."""
    for line in gw.admin_get("/metrics")[2].decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} on /metrics")


def test_a_brief_cut_is_logged_as_disconnected_then_reconnected(own_zk):
    """Cut off for less than its session timeout: the gateway says each session lost its
    connection and came back, counts it in /-/healthz and /metrics, and replaces nothing."""
    _, st = own_zk
    kz = kazoo(st["connect"])
    put_service(kz, "s", ["127.0.0.1:1"])
    relay = Relay(st["port"])
    gw = Proxy(types.SimpleNamespace(connect=f"127.0.0.1:{relay.port}"), "--zk-session-timeout", "20000")
    try:
        relay.cut()
        eventually(lambda: sum("disconnected: reconnecting" in line for line in gw.log) == 2, timeout=30,
                   what="both sessions logged as disconnected")
        relay.up()
        eventually(lambda: sum(re.search(r"session \d \(0x[0-9a-f]+\) reconnected$", line) is not None
                               for line in gw.log) == 2, timeout=30, what="both sessions logged as reconnected")
        lines = [line.rstrip() for line in gw.log if re.search(r"svcctl proxy: session \d", line)]
        # Nothing expired or was replaced; a reconnected session reads its share again.
        assert all(re.fullmatch(r"\S+Z svcctl proxy: session [01] \(0x[0-9a-f]+\) "
                                r"(disconnected: reconnecting|reconnected|resync done: .*)", line) for line in lines), lines
        health = json.loads(gw.admin_get("/-/healthz")[2])["registry"]
        assert health["session_events"]["disconnected"] == 2 and health["session_events"]["reconnected"] == 2
        assert health["sessions_replaced"] == 0 and "last_replaced_reason" not in health, health
        assert [s["state"] for s in health["sessions"]] == ["connected", "connected"], health
        assert [s["id"] for s in health["sessions"]] == health["session_ids"]
        assert metric(gw, 'svcctl_zk_session_events_total{event="reconnected"}') == 2
        assert metric(gw, 'svcctl_zk_session_events_total{event="replaced"}') == 0
    finally:
        gw.stop()
        relay.close()
        kz.stop()


def test_an_expiry_is_logged_as_expired_replaced_and_resynced(own_zk):
    """Cut off for longer than its session timeout while an address is added and another
    removed: each session is logged (as JSON fields) expired, then replaced by a new one,
    then its resync done with what it found; /-/healthz counts the replacements."""
    _, st = own_zk
    kz = kazoo(st["connect"])
    put_service(kz, "s", ["127.0.0.1:1", "127.0.0.1:2"])
    relay = Relay(st["port"])
    gw = Proxy(types.SimpleNamespace(connect=f"127.0.0.1:{relay.port}"), "--zk-session-timeout", "4000",
               "--log-format", "json")
    try:
        old = json.loads(gw.admin_get("/-/healthz")[2])["registry"]["session_ids"]
        relay.cut()
        kz.create("/address/s/127.0.0.1:3", b'{"weight":100,"status":"up"}')
        kz.delete("/address/s/127.0.0.1:2")
        time.sleep(9)  # the sessions (4 s) are over on the server meanwhile
        relay.up()
        eventually(lambda: sum(e["what"] == "resynced" for e in session_events(gw)) == 2, timeout=60,
                   what="both sessions' resyncs done")
        events = session_events(gw)
        for i in (0, 1):
            mine = [e for e in events if e["session"] == i]
            whats = [e["what"] for e in mine]
            assert whats[0] == "disconnected" and whats[-3:] == ["expired", "replaced", "resynced"], mine
            expired, replaced, resynced = mine[-3:]
            assert expired["session_id"] == old[i] and "opening a new session" in expired["msg"]
            assert replaced["old_session_id"] == old[i] and replaced["session_id"] not in old
            assert replaced["reason"] == expired["reason"]
            assert resynced["session_id"] == replaced["session_id"] and resynced["duration_ms"] >= 0
        resynced = [e for e in events if e["what"] == "resynced"]
        # (The gateway's own /gateway/{id} is registered again meanwhile: it may count too.)
        assert sum(e["added"] for e in resynced) >= 1 and sum(e["deleted"] for e in resynced) >= 1, resynced
        assert sum(e["nodes_read"] for e in resynced) >= 5, resynced
        health = json.loads(gw.admin_get("/-/healthz")[2])["registry"]
        assert health["sessions_replaced"] == 2 and health["last_replaced_reason"], health
        assert health["session_events"]["expired"] == 2 and health["session_events"]["resynced"] == 2
        assert metric(gw, 'svcctl_zk_session_events_total{event="replaced"}') == 2
    finally:
        gw.stop()
        relay.close()
        kz.stop()



def test_a_rebuilt_zookeeper_is_taken_up_without_restarts(own_zk):
    """ZooKeeper started again on an empty data dir refuses every session that has seen a
    newer zxid than its own. The gateway, a `register --hold` holder and a watch each open
    a new session once theirs could not reconnect for longer than its timeout, and say so:
    the holder registers its address again, the gateway routes to it and follows changes
    made since the rebuild, and the watch shows them."""
    d, st = own_zk
    (p1, port1), (p2, port2) = start_provider("json"), start_provider("json")
    a, b = f"127.0.0.1:{port1}", f"127.0.0.1:{port2}"
    kz = kazoo(st["connect"])
    put_service(kz, "s", [])
    holder = Holder(st["connect"], "--zk-session-timeout", "4000", "register", "address", "s", a, "--hold")
    gw = Proxy(types.SimpleNamespace(connect=st["connect"]), "--zk-session-timeout", "4000")
    w = Watch(st["connect"], "--zk-session-timeout", "4000")
    try:
        eventually(lambda: gw.call("s", "whoami", {})[0] == 200, what="calls to the held address")
        for i in range(100):  # the zxid moves on, far past what the rebuilt server will reach
            kz.create(f"/key/k{i}", b'{"status":"up"}', makepath=True)
        w.until(lambda e: e.get("path") == "/key/k99")
        time.sleep(3)  # a ping or two: the holder's session sees the last zxid too
        seen = int(json.loads(gw.admin_get("/-/healthz")[2])["registry"]["zxid"], 16)
        kz.stop()
        zkserver.stop(d)
        st = zkserver.rebuild(st)
        kz = kazoo(st["connect"])
        put_service(kz, "s", [])  # what the test needs of the registry, which is gone
        # The server is behind what the old sessions have seen: it refuses them for good.
        now = re.search(r"Zxid: (0x[0-9a-f]+)", zkserver.four_letter(st["port"], "srvr")).group(1)
        assert int(now, 16) < seen, (now, seen)
        eventually(lambda: kz.exists(f"/address/s/{a}"), timeout=60, what="the holder's address registered again")
        kz.create(f"/address/s/{b}", b'{"weight":100,"status":"up"}')
        eventually(lambda: gw.call("s", "whoami", {})[2] == {"port": port2}, timeout=60,
                   what="calls to the address added after the rebuild")
        assert holder.stop() == 0  # its address is removed: calls go to the other one only
        eventually(lambda: all(gw.call("s", "whoami", {})[2] == {"port": port2} for _ in range(10)),
                   timeout=30, what="calls no longer sent to the address removed")
        w.until_state({f"/address/s/{b}": {"weight": 100, "status": "up"}})
        assert "/key/k0" not in w.state
        # Each session is replaced after its own delay (the first attempts may find the
        # server still starting).
        def replaced():
            h = json.loads(gw.admin_get("/-/healthz")[2])
            return h if h["registry"]["sessions_replaced"] == 2 and h["registry"]["session"] == "connected" else None
        health = eventually(replaced, timeout=60, what="both sessions replaced and connected")
        assert health["status"] == "ok", health
        assert "could not reconnect" in health["registry"]["last_replaced_reason"], health
    finally:
        if holder.proc.poll() is None:
            holder.stop()
        w.stop()
        gw.stop()
        kz.stop()
        stop_process(p1)
        stop_process(p2)
    said = r"expired \(could not reconnect for \d+ ms, longer than the session timeout of 4000 ms\): opening a new session"
    assert sum(re.search(r"svcctl proxy: session \d \(0x[0-9a-f]+\) " + said, line) is not None for line in gw.log) == 2, gw.log
    assert any(re.search(rf"svcctl proxy: /gateway/{gw.id}: session 0x[0-9a-f]+ {said}", line) for line in gw.log), gw.log
    assert "could not reconnect for" in holder.err and f"registered /address/s/{a}" in holder.err, holder.err
    assert re.search(r"svcctl watch: session \d \(0x[0-9a-f]+\) " + said, w.err), w.err
