"""svcctl rollout against real gateways under load: a healthy new version rolled out
step by step, a failing one rolled back (the figures merged from two gateways), SIGINT
restoring the split (or keeping it with --keep), and bad input."""
import json
import signal
import subprocess
import time

import pytest

from gatewaylib import Load, Proxy, eventually, running_providers, start_provider, stop_process


@pytest.fixture(scope="module")
def healthy():
    yield from running_providers("json", 2)


@pytest.fixture(scope="module")
def flaky():
    p, port = start_provider("json-flaky")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop_process(p)


def two_versions(reg, v1, v2):
    reg.ok("register", "service", "s")
    reg.ok("register", "address", "s", v1, "--provider-version", "v1")
    reg.ok("register", "address", "s", v2, "--provider-version", "v2")
    reg.ok("register", "api", "s", "whoami", "--path", "/whoami")


class Fleet:
    """Two gateways, each with callers of its own."""

    def __init__(self, reg):
        self.gateways = [Proxy(reg, "--id", "gw-a"), Proxy(reg, "--id", "gw-b")]
        self.loads = [Load(gw, "/s/whoami", {}, threads=2) for gw in self.gateways]
        for load in self.loads:
            load.wait_for(50)

    def stop(self):
        results = [load.stop() for load in self.loads]
        for gw in self.gateways:
            gw.stop()
        return results


def json_lines(out):
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_rollout_completes_on_a_healthy_version(reg, healthy):
    v1, v2 = healthy
    two_versions(reg, v1, v2)
    fleet = Fleet(reg)
    try:
        r = reg.run("-o", "json", "rollout", "s", "--to", "v2", "--steps", "20,100", "--step-s", "1",
                    "--min-requests", "50")
        per_version = [gw.stats()["services"]["s"]["versions"] for gw in fleet.gateways]
    finally:
        results = fleet.stop()
    assert r.code == 0, r
    steps = json_lines(r.out)
    assert [s["split"] for s in steps[:2]] == [{"v1": 80, "v2": 20}, {"v2": 100}]
    assert all(s["verdict"] == "pass" and s["new"]["requests"] >= 50 for s in steps[:2]), steps
    assert 0.1 < steps[0]["new"]["requests"] / (steps[0]["new"]["requests"] + steps[0]["old"]["requests"]) < 0.3
    assert steps[1]["p99_ratio"] is None  # nothing left on v1 to compare with
    assert steps[-1]["result"] == "rolled_out"
    assert reg.data("/service/s")["split"] == {"v2": 100}
    assert all(v["v2"]["requests"] > 0 for v in per_version)  # both gateways served v2
    assert not [x for res in results for x in res if x[1] != 200]


def test_rollout_rolls_back_a_failing_version(reg, healthy, flaky):
    v1, _ = healthy
    two_versions(reg, v1, flaky)
    reg.ok("split", "s", "v1=100", "v2=0")
    fleet = Fleet(reg)
    try:
        r = reg.run("-o", "table", "rollout", "s", "--to", "v2", "--steps", "25,100", "--step-s", "1",
                    "--min-requests", "50")
        j = reg.run("-o", "json", "rollout", "s", "--to", "v2", "--steps", "50", "--step-s", "1",
                    "--min-requests", "50")
    finally:
        fleet.stop()
    assert r.code == 12, r
    lines = r.out.splitlines()
    assert lines[0].startswith("step 1/2  v1=75 v2=25  v2: "), r.out
    assert "error rate" in lines[0] and "> 1%" in lines[0]
    assert "rolled back: error rate" in r.err and "the split is back to v1=100 v2=0" in r.err
    assert "rolled back" not in r.out  # said once, on standard error
    assert reg.data("/service/s")["split"] == {"v1": 100, "v2": 0}
    assert j.code == 12, j
    step = json_lines(j.out)[0]
    assert step["verdict"] == "error_rate"
    assert 10 <= step["new"]["error_rate"] <= 30, step  # every fifth call fails
    assert step["old"]["errors"] == 0
    assert json_lines(j.out)[-1]["result"] == "rolled_back"
    assert reg.data("/service/s")["split"] == {"v1": 100, "v2": 0}


@pytest.mark.parametrize("keep", [False, True])
def test_sigint_restores_the_split_unless_keep(reg, healthy, svcctl_bin, keep):
    v1, v2 = healthy
    two_versions(reg, v1, v2)
    fleet = Fleet(reg)
    try:
        argv = [svcctl_bin, "--zk", reg.connect, "-o", "json", "rollout", "s", "--to", "v2", "--steps", "10,100",
                "--step-s", "60"] + (["--keep"] if keep else [])
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        eventually(lambda: (reg.data("/service/s") or {}).get("split") == {"v1": 90, "v2": 10}, what="step 1")
        time.sleep(0.5)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        fleet.stop()
    assert p.returncode == 12, (out, err)
    data = reg.data("/service/s")
    if keep:
        assert data["split"] == {"v1": 90, "v2": 10}
        assert json_lines(out)[-1]["result"] == "interrupted"
    else:
        assert "split" not in data  # it started from no split
        assert json_lines(out)[-1]["result"] == "rolled_back"


def test_rollout_bad_input(reg, healthy):
    v1, v2 = healthy
    two_versions(reg, v1, v2)
    assert reg.run("rollout", "nosuch", "--to", "v2").code == 3
    r = reg.run("rollout", "s", "--to", "v9")
    assert r.code == 9 and "no routable address" in r.err, r
    for steps in ("50,10", "0,100", "5,,100", "x"):
        assert reg.run("rollout", "s", "--to", "v2", "--steps", steps).code == 2, steps
    assert reg.run("rollout", "s", "--to", "v2", "--max-error-rate", "101").code == 2
    assert reg.run("rollout", "s", "--to", "bad version").code == 2
    # every address is already v2: nothing to roll out from
    reg.ok("register", "address", "s", v1, "--provider-version", "v2")
    assert reg.run("rollout", "s", "--to", "v2").code == 2
    reg.ok("register", "address", "s", v1, "--provider-version", "v1")
    # no gateway to judge by: the step is written, then put back
    r = reg.run("rollout", "s", "--to", "v2", "--steps", "50", "--step-s", "0.1")
    assert r.code == 3 and "no gateway answered" in r.err, r
    assert "split" not in reg.data("/service/s")
