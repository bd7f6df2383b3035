"""Versions as subsets: `svcctl split` (its checks, its one write, `list`), and real
gateways routing by it: shares observed over many calls, pins by header, query and ACL,
sticky callers, a version without an address passing its share on, per-version stats."""
import collections
import json

import pytest

from gatewaylib import Proxy, eventually, running_providers


@pytest.fixture(scope="module")
def three():
    yield from running_providers("json", 3)


def versioned_service(reg, versions):
    """Service s with an address per (address, version) and the interface whoami."""
    reg.ok("register", "service", "s")
    for addr, version in versions.items():
        args = ["--provider-version", version] if version else []
        reg.ok("register", "address", "s", addr, *args)
    reg.ok("register", "api", "s", "whoami", "--path", "/whoami")


def upstreams(gw, n, headers=None, path="/s/whoami"):
    out = collections.Counter()
    for _ in range(n):
        status, h, body = gw.post(path, {}, headers)
        assert status == 200, (status, h, body)
        out[h["x-upstream"]] += 1
    return out


def test_split_checks_writes_and_lists(reg, three):
    a, b, c = three
    versioned_service(reg, {a: "v1", b: "v1", c: "v2"})
    assert reg.run("split", "nosuch", "v1=100").code == 3
    for bad in (["v1=90", "v2=5"], ["v1=90", "v2=10", "v1=0"], ["v 1=100"], ["v1"], ["v1=abc"], ["v1=101"]):
        r = reg.run("split", "s", *bad)
        assert r.code == 2, (bad, r)
        assert "svcctl: error:" in r.err
    assert "add up to 95" in reg.run("split", "s", "v1=90", "v2=5").err
    assert reg.run("split", "s").code == 2
    assert reg.run("split", "s", "v1=100", "--clear").code == 2
    assert reg.run("split", "s", "v1=100", "--sticky", "cookie").code == 2
    before = reg.data("/service/s")
    # v3 has no address; v2's only address is down: both refused, nothing written
    r = reg.run("split", "s", "v1=90", "v3=10")
    assert r.code == 9, r
    assert '"v3"' in r.err and "--force" in r.err
    reg.ok("register", "address", "s", c, "--status", "down")
    assert reg.run("split", "s", "v1=90", "v2=10").code == 9
    assert reg.data("/service/s") == before
    reg.ok("register", "address", "s", c, "--status", "up")

    out = reg.ok("split", "s", "v2=10", "v1=90", "--sticky", "key")
    assert out["split"] == {"v1": 90, "v2": 10} and out["sticky"] == "key"
    data = reg.data("/service/s")
    assert data["split"] == {"v1": 90, "v2": 10} and data["sticky"] == "key"
    assert data["status"] == "up"  # the other fields kept

    listed = reg.ok("list", "s")
    assert listed["split"] == {"v1": 90, "v2": 10}
    assert listed["sticky"] == "key"
    assert listed["versions"] == [
        {"version": "v1", "share": 90, "routable": 2, "total": 2},
        {"version": "v2", "share": 10, "routable": 1, "total": 1},
    ]
    table = reg.run("-o", "table", "list", "s")
    assert table.code == 0
    assert "split: v1=90 v2=10, sticky by key" in table.out
    assert any(line.split()[:3] == ["v2", "10%", "1/1"] for line in table.out.splitlines()), table.out

    forced = reg.run("split", "s", "v1=50", "v9=50", "--force")
    assert forced.code == 0, forced
    assert reg.data("/service/s")["split"] == {"v1": 50, "v9": 50}
    cleared = reg.ok("split", "s", "--clear")
    assert cleared["split"] == {} and cleared["sticky"] == ""
    data = reg.data("/service/s")
    assert "split" not in data and "sticky" not in data
    assert reg.ok("list", "s")["split"] == {}


def test_split_on_a_service_without_versions_is_refused(reg, three):
    a, _, _ = three
    versioned_service(reg, {a: ""})
    r = reg.run("split", "s", "v1=100")
    assert r.code == 9, r
    assert reg.ok("list", "s")["versions"] == []
    # the addresses without a version are the version ""
    assert reg.run("split", "s", "=100").code == 0


def test_shares_observed_and_counted_per_version(reg, three):
    a, b, c = three
    versioned_service(reg, {a: "v1", b: "v1", c: "v2"})
    reg.ok("split", "s", "v1=90", "v2=10")
    gw = Proxy(reg)
    try:
        seen = upstreams(gw, 2000)
        v2 = seen[c] / 2000
        assert 0.07 <= v2 <= 0.13, seen  # 10 % ± 3 points
        assert seen[a] > 0 and seen[b] > 0  # within v1, both addresses
        versions = gw.stats()["services"]["s"]["versions"]
        total = versions["v1"]["requests"] + versions["v2"]["requests"]
        assert total >= 2000
        assert versions["v2"]["requests"] >= seen[c]
        assert versions["v1"]["passed_over"] == versions["v2"]["passed_over"] == 0
        rows = {r["version"]: r for r in reg.ok("stats", "--by", "version")["rows"]}
        assert rows["v2"]["requests"] == versions["v2"]["requests"] and set(rows) == {"v1", "v2"}
        _, _, metrics = gw.admin_get("/metrics")
        assert b'svcctl_version_requests_total{service="s",version="v2"}' in metrics

        # v2's only address down: its share goes to v1, counted as passed over
        reg.ok("register", "address", "s", c, "--status", "down")
        eventually(lambda: c not in upstreams(gw, 200), what="v2 out of rotation")
        before = gw.stats()["services"]["s"]["versions"]["v2"]["passed_over"]
        seen = upstreams(gw, 500)
        assert set(seen) <= {a, b}
        passed = gw.stats()["services"]["s"]["versions"]["v2"]["passed_over"] - before
        assert 20 <= passed <= 90, passed  # ~50 of 500
        # a pin to it is not passed on: no_upstream
        status, h, body = gw.post("/s/whoami", {}, {"X-Svcctl-Version": "v2"})
        assert status == 503 and h["x-svcctl-error"] == "no_upstream", (status, body)
        assert b'version \\"v2\\"' in body or b'version "v2"' in body
    finally:
        gw.stop()


def test_pins_by_header_query_and_acl(reg, three):
    a, b, c = three
    versioned_service(reg, {a: "v1", b: "v2", c: ""})
    gw = Proxy(reg)
    try:
        # no split: every address; a pin narrows to one version
        assert set(upstreams(gw, 60)) == {a, b, c}
        assert set(upstreams(gw, 30, {"X-Svcctl-Version": "v2"})) == {b}
        assert set(upstreams(gw, 30, path="/s/whoami?version=v1")) == {a}
        status, h, _ = gw.post("/s/whoami", {}, {"X-Svcctl-Version": "v7"})
        assert status == 503 and h["x-svcctl-error"] == "no_upstream"
        # an ACL's pin wins over what the caller asks for
        reg.ok("register", "key", "pinned")
        reg.ok("register", "key", "free")
        reg.ok("register", "acl", "s", "pinned", "--pin-version", "v1")
        reg.ok("register", "acl", "s", "free")
        assert reg.data("/acl/s/pinned")["version"] == "v1"
        eventually(lambda: gw.post("/s/whoami", {}, {})[0] == 401, what="the ACLs")
        assert set(upstreams(gw, 30, {"X-Api-Key": "pinned", "X-Svcctl-Version": "v2"})) == {a}
        assert set(upstreams(gw, 30, {"X-Api-Key": "free", "X-Svcctl-Version": "v2"})) == {b}
        assert reg.run("register", "acl", "s", "free", "--pin-version", "bad version").code == 2
    finally:
        gw.stop()


@pytest.mark.parametrize("sticky", ["key", "header:X-User"])
def test_sticky_callers_keep_their_version(reg, three, sticky):
    a, b, c = three
    versioned_service(reg, {a: "v1", b: "v1", c: "v2"})
    reg.ok("split", "s", "v1=50", "v2=50", "--sticky", sticky)
    gw = Proxy(reg)
    version_of = {a: "v1", b: "v1", c: "v2"}
    try:
        header = "X-Api-Key" if sticky == "key" else "X-User"
        placed = collections.Counter()
        for n in range(20):
            seen = upstreams(gw, 100, {header: f"caller-{n}"})
            versions = {version_of[addr] for addr in seen}
            assert len(versions) == 1, (n, seen)  # one version for all its 100 calls
            placed[versions.pop()] += 1
        assert placed["v1"] >= 3 and placed["v2"] >= 3, placed  # 20 callers over a 50/50 split
        # a caller without one is placed at random, call by call
        assert {version_of[addr] for addr in upstreams(gw, 100)} == {"v1", "v2"}
    finally:
        gw.stop()
