"""svcctl proxy routing with several real providers: registry changes made while callers
keep sending (no request may fail, traffic follows the change), weights as observed in
the distribution, and datacenter preference."""
import collections
import time

import pytest

from gatewaylib import Load, Proxy, running_providers, served_by


@pytest.fixture(scope="module")
def three():
    yield from running_providers("json", 3)


def register_service(reg, addrs, **weights):
    reg.ok("register", "service", "s")
    for a in addrs:
        reg.ok("register", "address", "s", a, "--weight", str(weights.get(a, 100)))
    reg.ok("register", "api", "s", "whoami", "--path", "/whoami")


def failures(results):
    return [r for r in results if r[1] != 200]


def wait_until(load, predicate, timeout=10):
    """Waits until the answers after now satisfy `predicate`; returns how long it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        t = time.monotonic()
        time.sleep(0.05)
        if predicate(served_by(load.since(t))):
            return time.monotonic() - t0
    raise AssertionError(f"traffic did not follow: {served_by(load.since(time.monotonic() - 0.5))}")


@pytest.mark.parametrize("balance", ["p2c", "round-robin"])
def test_changes_under_load_fail_no_request(reg, three, balance):
    a, b, c = three
    register_service(reg, [a, b])
    gw = Proxy(reg, "--balance", balance)
    load = Load(gw, "/s/whoami", {}, threads=4)
    try:
        load.wait_for(200)
        assert set(served_by(load.results)) == {a, b}

        # an address marked down gets no more traffic
        reg.ok("register", "address", "s", b, "--status", "down")
        wait_until(load, lambda seen: seen and set(seen) == {a})

        # an address added gets traffic
        reg.ok("register", "address", "s", c)
        wait_until(load, lambda seen: set(seen) == {a, c})

        # weights changed: c weighs three times a. Round robin serves them 3:1 (each worker
        # exactly, so the total too). P2C draws by weight and then takes the draw with fewer
        # requests in flight per unit of weight: with a few requests in flight, integer
        # counts pull the split toward even, so c's share lies between 1/2 and 3/4.
        reg.ok("register", "address", "s", c, "--weight", "300")
        time.sleep(0.5)
        t = time.monotonic()
        load.wait_for(load.count() + 2000)
        seen = served_by(load.since(t))
        share = seen[c] / (seen[a] + seen[c])
        low, high = (0.70, 0.80) if balance == "round-robin" else (0.55, 0.85)
        assert low < share < high, seen

        # back up: all three
        reg.ok("register", "address", "s", b, "--status", "up")
        wait_until(load, lambda seen: set(seen) == {a, b, c})
        # an address removed from the registry
        reg.ok("unregister", "address", "s", c)
        wait_until(load, lambda seen: seen and set(seen) == {a, b})
    finally:
        results = load.stop()
        gw.stop()
    assert not failures(results), failures(results)[:5]
    assert len(results) > 2000


def test_round_robin_follows_weights_exactly(reg, three):
    a, b, _ = three
    register_service(reg, [a, b], **{a: 100, b: 300})
    gw = Proxy(reg, "--balance", "round-robin", workers=1)
    try:
        order = [gw.call("s", "whoami", {})[1]["x-upstream"] for _ in range(40)]
    finally:
        gw.stop()
    for i in range(0, 40, 4):  # one a in every four
        assert collections.Counter(order[i:i + 4]) == {a: 1, b: 3}, order
    # spread: never two a's or four b's running (the exact smooth sequence is a unit test)
    assert all(not (x == y == a) for x, y in zip(order, order[1:])), order
    assert all(order[i:i + 3] != [b, b, b] or order[i + 3:i + 4] != [b] for i in range(37)), order


def test_p2c_follows_weights_when_idle(reg, three):
    a, b, _ = three
    register_service(reg, [a, b], **{a: 100, b: 300})
    gw = Proxy(reg)
    try:
        seen = collections.Counter(gw.call("s", "whoami", {})[1]["x-upstream"] for _ in range(1000))
    finally:
        gw.stop()
    # Binomial(1000, 0.75): mean 750, standard deviation 13.7; 6 deviations either side.
    assert 668 <= seen[b] <= 832, seen


def test_datacenter_preference_and_fallback(reg, three):
    a, b, c = three
    reg.ok("register", "service", "s")
    reg.ok("register", "address", "s", a, "--dc", "east")
    reg.ok("register", "address", "s", b, "--dc", "west")
    reg.ok("register", "address", "s", c, "--dc", "west")
    reg.ok("register", "api", "s", "whoami", "--path", "/whoami")
    gw = Proxy(reg, "--dc", "west")
    load = Load(gw, "/s/whoami", {}, threads=2)
    try:
        load.wait_for(300)
        assert set(served_by(load.results)) == {b, c}  # only the local datacenter
        reg.ok("register", "address", "s", b, "--status", "down")
        reg.ok("register", "address", "s", c, "--status", "down", "--force")
        wait_until(load, lambda seen: seen and set(seen) == {a})  # the other one, when none is local
        reg.ok("register", "address", "s", c, "--status", "up")
        wait_until(load, lambda seen: seen and set(seen) == {c})
    finally:
        results = load.stop()
        gw.stop()
    assert not failures(results), failures(results)[:5]


def test_datacenter_threshold_spills_a_share(reg, three):
    """--dc-min-percent 50 with 1 of 3 addresses local (33 %): local takes 33/50 = 2/3."""
    a, b, c = three
    reg.ok("register", "service", "s")
    reg.ok("register", "address", "s", a, "--dc", "west")
    reg.ok("register", "address", "s", b, "--dc", "east")
    reg.ok("register", "address", "s", c, "--dc", "east")
    reg.ok("register", "api", "s", "whoami", "--path", "/whoami")
    gw = Proxy(reg, "--dc", "west", "--dc-min-percent", "50")
    try:
        seen = collections.Counter(gw.call("s", "whoami", {})[1]["x-upstream"] for _ in range(1500))
        spilled = gw.stats()["services"]["s"]["dc_spilled"]
    finally:
        gw.stop()
    local = seen[a] / 1500
    assert 0.60 <= local <= 0.73, seen  # 2/3, sd 1.2 points
    assert seen[b] > 0 and seen[c] > 0
    assert spilled == seen[b] + seen[c]
    assert reg.run("proxy", "--dc-min-percent", "101").code == 2
