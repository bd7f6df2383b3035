"""svcctl doctor: a registry with one of each problem (a service without addresses, one
with none up, an interface without a path, addresses without a /service node, an up
address nothing listens on and that the gateway ejected, the ephemeral address of a
holder killed with SIGKILL, a key no ACL names, ACLs naming a missing key or interface);
each finding's fix command is run and doctor no longer reports it; a clean registry
exits 0."""
import json
import os
import signal
import subprocess

import pytest

from gatewaylib import Load, Proxy, closed_port, eventually, running_providers, stop_process


@pytest.fixture(scope="module")
def providers():
    yield from running_providers("json", 4)


def doctor(reg, *args):
    r = reg.run("-o", "json", "doctor", *args)
    assert r.code in (0, 11), r
    return r, r.json


def by_check(findings):
    out = {}
    for f in findings:
        out.setdefault(f["check"], []).append(f)
    return out


def clean(reg, providers):
    reg.ok("register", "service", "s")
    for a in providers[:2]:
        reg.ok("register", "address", "s", a)
    reg.ok("register", "api", "s", "echo", "--path", "/echo")
    reg.ok("register", "key", "k")
    reg.ok("register", "acl", "s", "k", "--apis", "echo")


def test_clean_registry_exits_0(reg, providers):
    clean(reg, providers)
    r, out = doctor(reg)
    assert r.code == 0 and out["findings"] == [], r
    assert {"check": "ejected", "reason": "no gateway registered under /gateway"} in out["skipped"]
    r = reg.run("-o", "table", "doctor")
    assert r.code == 0 and r.out.startswith("no problems found"), r


def test_each_problem_is_found_and_its_fix_fixes_it(reg, providers, svcctl_bin):
    clean(reg, providers)
    live, spare = providers[1], providers[2]
    dead = f"127.0.0.1:{closed_port()}"
    held = providers[3]  # listening: its only finding is its holder's session
    # A service with an interface and no address; one whose only address is down.
    reg.ok("register", "api", "empty", "echo", "--path", "/echo", "--create-service")
    reg.ok("register", "address", "off", live, "--create-service")
    reg.ok("register", "address", "off", live, "--status", "down", "--force")
    # An interface without a path, addresses without a /service node (written by others).
    reg.kz.create("/api/s/nopath", json.dumps({"encoding": "json", "status": "up"}).encode())
    reg.kz.create(f"/address/ghost/{live}", json.dumps({"status": "up"}).encode(), makepath=True)
    # Keys and ACLs.
    reg.ok("register", "key", "lonely")
    reg.kz.create("/acl/s/missing", json.dumps({"apis": ["*"]}).encode(), makepath=True)
    reg.ok("register", "key", "k2")
    reg.ok("register", "acl", "s", "k2", "--apis", "echo,gone")
    # An up address nothing listens on, which the gateway ejects after one failure.
    reg.ok("register", "address", "s", dead)
    gw = Proxy(reg, "--eject-after", "1")
    holder = None
    try:
        eventually(lambda: reg.kz.exists(f"/gateway/{gw.id}"), what="the gateway")
        load = Load(gw, "/s/echo?key=k", {"x": 1}, threads=2)  # s has ACLs: calls need a key
        eventually(lambda: gw.stats().get("services", {}).get("s", {}).get("addresses", {}).get(dead, {}).get("ejected"),
                   what="ejection")
        load.stop()
        # The ephemeral address of a holder that dies without closing its session.
        holder = subprocess.Popen([svcctl_bin, "--zk", reg.connect, "--zk-session-timeout", "60000", "register",
                                   "address", "s", held, "--hold"], stderr=subprocess.DEVNULL)
        eventually(lambda: reg.kz.exists(f"/address/s/{held}"), what="the held address")
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()

        def with_stale():
            r, out = doctor(reg)
            return (r, out) if any(f["check"] == "stale-ephemeral" for f in out["findings"]) else None

        r, out = eventually(with_stale, what="the stale ephemeral found")
        assert r.code == 11 and "doctor found" in r.err, r
        found = by_check(out["findings"])
        expect = {
            "no-address": ("empty", None, "svcctl register address empty HOST:PORT"),
            "no-up-address": ("off", None, f"svcctl undrain off {live}"),
            "interface-without-path": ("s", "nopath", "svcctl register api s nopath --path /nopath"),
            "unregistered-service": ("ghost", None, "svcctl register service ghost"),
            "stale-ephemeral": ("s", held, f"svcctl unregister address s {held}"),
            "unused-key": (None, "lonely", "svcctl unregister key lonely"),
            "acl-without-key": ("s", "missing", "svcctl unregister acl s missing"),
            "acl-unknown-interface": ("s", "k2", "svcctl register acl s k2 --apis echo"),
        }
        for check, (svc, subject, fix) in expect.items():
            assert len(found.get(check, [])) == 1, (check, out)
            f = found[check][0]
            assert (f["service"], f["address"], f["fix"]) == (svc, subject, fix), f
            assert f["message"]
        for check in ("ejected", "unreachable"):
            assert [(f["service"], f["address"], f["fix"]) for f in found[check]] == \
                [("s", dead, f"svcctl drain s {dead}")], (check, out)
        assert "is held by session 0x" in found["stale-ephemeral"][0]["message"]

        # Each fix, as printed (HOST:PORT is the operator's to give).
        fixes = [f["fix"].replace("HOST:PORT", spare) for f in out["findings"]]
        for fix in dict.fromkeys(fixes):
            argv = fix.split()
            assert argv[0] == "svcctl"
            r = reg.run(*argv[1:])
            assert r.code == 0, (fix, r)
        r, out = doctor(reg)
        assert r.code == 0 and out["findings"] == [], out
        r, out = doctor(reg, "--no-probe")
        assert {"check": "unreachable", "reason": "--no-probe"} in out["skipped"]
    finally:
        if holder and holder.poll() is None:
            holder.kill()
        gw.stop()


def test_table_on_request(reg, providers):
    clean(reg, providers)
    reg.ok("register", "key", "lonely")
    r = reg.run("-o", "table", "doctor", "--no-probe")
    assert r.code == 11, r
    lines = r.out.splitlines()
    assert lines[0].split() == ["CHECK", "WHAT", "FIX"]
    assert lines[1].startswith("unused-key") and lines[1].endswith("svcctl unregister key lonely")
    assert "skipped unreachable: --no-probe" in r.out


def test_zookeeper_unreachable_is_exit_5(reg):
    r = reg.run("--zk-timeout", "500", "doctor", zk=f"127.0.0.1:{closed_port()}")
    assert r.code == 5, r


def test_held_address_of_a_live_holder_is_not_a_finding(reg, providers, svcctl_bin):
    clean(reg, providers)
    spare = providers[2]
    holder = subprocess.Popen([svcctl_bin, "--zk", reg.connect, "register", "address", "s", spare, "--hold"],
                              stderr=subprocess.DEVNULL)
    try:
        eventually(lambda: reg.kz.exists(f"/address/s/{spare}"), what="the held address")
        r, out = doctor(reg)
        assert r.code == 0 and out["findings"] == [], out
        assert not [s for s in out["skipped"] if s["check"].endswith("-ephemeral")], out
    finally:
        holder.terminate()
        stop_process(holder)
