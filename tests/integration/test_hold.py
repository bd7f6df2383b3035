"""register address --hold: an ephemeral address held by a sidecar process."""
import functools
import http.server
import json
import signal
import subprocess
import threading
import time

from kazoo.client import KazooClient

from conftest import SVCCTL
from gatewaylib import eventually
from watchlib import Holder, Relay


wait_for = functools.partial(eventually, timeout=30)


class Health:
    """An HTTP health endpoint whose answer the test flips."""

    def __init__(self):
        self.ok = True
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                self.send_response(200 if outer.ok else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/health"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def node(kz, path):
    st = kz.exists(path)
    if not st:
        return None
    return json.loads(kz.get(path)[0]), st


def service_behind_relay(own_zk):
    """A kazoo client on the test's own server, with service s, and a relay in front of it
    that the test can cut."""
    _, zk = own_zk
    kz = KazooClient(hosts=zk["connect"], timeout=15)
    kz.start(timeout=30)
    kz.create("/service/s", b'{"status":"up"}', makepath=True)
    return kz, Relay(zk["port"])


def held(reg, address, *args):
    """Service s, a holder of `address` (more options in `args`), and its node once there:
    (holder, path, data, stat)."""
    reg.ok("register", "service", "s")
    h = Holder(reg.connect, "register", "address", "s", address, "--hold", *args)
    path = f"/address/s/{address}"
    try:
        data, st = wait_for(lambda: node(reg.kz, path), what="the held node")
    except AssertionError:
        h.stop(signal.SIGKILL)
        raise
    return h, path, data, st


def test_hold_registers_and_sigterm_removes_at_once(reg):
    reg.ok("register", "service", "s")
    h = Holder(reg.connect, "register", "address", "s", "10.0.0.1:80", "--hold", "--dc", "bj",
               "--weight", "30")
    path = "/address/s/10.0.0.1:80"
    data, st = wait_for(lambda: node(reg.kz, path), what="the held node")
    assert data == {"dc": "bj", "weight": 30, "status": "up"}
    assert st.ephemeralOwner != 0
    assert reg.ok("list", "s")["addresses"][0]["ephemeral"] is True
    assert h.stop() == 0
    assert reg.kz.exists(path) is None  # removed before the process exited
    assert "removed /address/s/10.0.0.1:80" in h.err


def test_sigkill_leaves_it_to_the_session_timeout(reg):
    reg.ok("register", "service", "s")
    h = Holder(reg.connect, "--zk-session-timeout", "1500", "register", "address", "s",
               "10.0.0.2:80", "--hold")
    path = "/address/s/10.0.0.2:80"
    wait_for(lambda: node(reg.kz, path), what="the held node")
    h.stop(signal.SIGKILL)
    wait_for(lambda: reg.kz.exists(path) is None, timeout=30, what="the session to expire")


def test_check_takes_it_down_and_brings_it_back(reg):
    reg.ok("register", "service", "s")
    health = Health()
    h = Holder(reg.connect, "register", "address", "s", "10.0.0.3:80", "--hold", "--check",
               health.url, "--interval", "50", "--rise", "2", "--fall", "2")
    path = "/address/s/10.0.0.3:80"
    try:
        wait_for(lambda: (node(reg.kz, path) or [{}])[0].get("status") == "up", what="up")
        health.ok = False
        wait_for(lambda: node(reg.kz, path)[0]["status"] == "down", what="down")
        health.ok = True
        wait_for(lambda: node(reg.kz, path)[0]["status"] == "up", what="up again")
    finally:
        assert h.stop() == 0
        health.close()
    assert "check failing: down" in h.err and "check passing: up" in h.err


def test_persistent_node_or_missing_service_is_refused(reg):
    r = reg.run("register", "address", "nosvc", "10.0.0.4:80", "--hold", timeout=30)
    assert r.code == 3 and 'service "nosvc" not found' in r.err
    reg.ok("register", "service", "s")
    reg.ok("register", "address", "s", "10.0.0.4:80")
    r = reg.run("register", "address", "s", "10.0.0.4:80", "--hold", timeout=30)
    assert r.code == 4 and "registered persistently" in r.err
    r = reg.run("register", "address", "s", "10.0.0.5:80", "--check", "http://x/")
    assert r.code == 2 and "--check goes with --hold" in r.err


def test_back_under_a_new_session_after_expiry(own_zk):
    kz, relay = service_behind_relay(own_zk)
    h = Holder(f"127.0.0.1:{relay.port}", "--zk-session-timeout", "1500", "register", "address",
               "s", "10.0.0.6:80", "--hold")
    path = "/address/s/10.0.0.6:80"
    try:
        _, st = wait_for(lambda: node(kz, path), what="the held node")
        first_owner = st.ephemeralOwner
        relay.cut()
        wait_for(lambda: kz.exists(path) is None, what="the old session to expire")
        relay.up()
        _, st = wait_for(lambda: node(kz, path), what="the node under a new session")
        assert st.ephemeralOwner not in (0, first_owner)
    finally:
        assert h.stop() == 0
        relay.close()
        kz.stop()
    # Ended by the server, or given up on once it could not reconnect for longer than its
    # timeout, whichever came first.
    assert "session expired" in h.err or "could not reconnect for" in h.err, h.err


def test_second_holder_waits_then_takes_over(reg):
    """The address is held by another session (an old holder whose session has not ended,
    or a second sidecar): wait for it to go, say so once, then hold it."""
    reg.ok("register", "service", "s")
    path = "/address/s/10.0.0.7:80"
    a = Holder(reg.connect, "register", "address", "s", "10.0.0.7:80", "--hold")
    _, st = wait_for(lambda: node(reg.kz, path), what="the first holder's node")
    b = Holder(reg.connect, "register", "address", "s", "10.0.0.7:80", "--hold")
    try:
        time.sleep(1.5)  # long enough for a polling holder to repeat itself many times
        assert node(reg.kz, path)[1].ephemeralOwner == st.ephemeralOwner
        assert a.stop() == 0
        _, st_b = wait_for(lambda: node(reg.kz, path), what="the second holder's node")
        assert st_b.ephemeralOwner not in (0, st.ephemeralOwner)
    finally:
        assert b.stop() == 0
    assert b.err.count("waiting for it to go") == 1, b.err
    assert reg.kz.exists(path) is None


def test_edits_are_kept_and_a_drain_stays_until_undrain(reg):
    """Others may edit a held address: the holder's later writes keep their fields, and a
    "down" it did not write (a drain) outlasts the check passing, until someone marks it up."""
    reg.ok("register", "service", "s")
    reg.ok("register", "address", "s", "10.0.0.8:80")  # a second address: drain refuses the last one
    health = Health()
    h = Holder(reg.connect, "register", "address", "s", "10.0.0.9:80", "--hold", "--weight", "30",
               "--check", health.url, "--interval", "200", "--rise", "2", "--fall", "2")
    path = "/address/s/10.0.0.9:80"
    passing, failing, wrote_up = "check passing: up", "check failing: down", "10.0.0.9:80 is up"

    def flip(ok, line):
        n = h.said(line)
        health.ok = ok
        wait_for(lambda: h.said(line) > n, what=line)

    try:
        wait_for(lambda: (node(reg.kz, path) or [{}])[0].get("status") == "up", what="up")
        reg.ok("register", "address", "s", "10.0.0.9:80", "--weight", "7", "--tags", "canary")
        health.ok = False
        wait_for(lambda: node(reg.kz, path)[0]["status"] == "down", what="down")
        health.ok = True
        wait_for(lambda: node(reg.kz, path)[0]["status"] == "up", what="up again")
        data = node(reg.kz, path)[0]
        assert data["weight"] == 7 and data["tags"] == ["canary"], data

        reg.ok("drain", "s", "10.0.0.9:80")
        wait_for(lambda: h.said("was marked down by someone else"), what="the holder to see the drain")
        ups = h.said(wrote_up)
        flip(False, failing)
        flip(True, passing)
        # The holder's turn that saw the check pass is over once a later one logs.
        flip(False, failing)
        assert h.said(wrote_up) == ups
        data, st = node(reg.kz, path)
        assert data["status"] == "down" and data["weight"] == 7, data
        assert st.ephemeralOwner != 0

        flip(True, passing)
        reg.ok("undrain", "s", "10.0.0.9:80")
        wait_for(lambda: h.said("was marked up again"), what="the holder to see the undrain")
        assert node(reg.kz, path)[0]["status"] == "up"
        # Marked up while the check fails: the check wins.
        flip(False, failing)
        wait_for(lambda: node(reg.kz, path)[0]["status"] == "down", what="down by the check")
        downs = h.said("10.0.0.9:80 is down")
        reg.ok("register", "address", "s", "10.0.0.9:80", "--status", "up")
        wait_for(lambda: h.said("10.0.0.9:80 is down") > downs, what="the holder to write down again")
        assert node(reg.kz, path)[0]["status"] == "down"
    finally:
        assert h.stop() == 0
        health.close()


def test_data_that_is_not_an_object_is_written_over(reg):
    h, path, first, _ = held(reg, "10.0.0.13:80", "--weight", "4")
    try:
        reg.kz.set(path, b"not json")
        wait_for(lambda: h.said("not a JSON object"), what="the holder to see it")
        wait_for(lambda: reg.kz.get(path)[0] != b"not json", what="the node written over")
        assert node(reg.kz, path)[0] == first
    finally:
        assert h.stop() == 0


def test_a_drain_and_edits_outlive_a_session_expiry(own_zk):
    kz, relay = service_behind_relay(own_zk)
    h = Holder(f"127.0.0.1:{relay.port}", "--zk-session-timeout", "1500", "register", "address",
               "s", "10.0.0.10:80", "--hold", "--dc", "bj")
    path = "/address/s/10.0.0.10:80"
    try:
        data, st = wait_for(lambda: node(kz, path), what="the held node")
        first_owner = st.ephemeralOwner
        data.update(status="down", weight=3)  # an operator's drain and edit
        kz.set(path, json.dumps(data).encode(), version=st.version)
        wait_for(lambda: h.said("was marked down by someone else"), what="the holder to see the drain")
        relay.cut()
        wait_for(lambda: kz.exists(path) is None, what="the old session to expire")
        relay.up()
        data, st = wait_for(lambda: node(kz, path), what="the node under a new session")
        assert st.ephemeralOwner not in (0, first_owner)
        assert data == {"dc": "bj", "weight": 3, "status": "down"}
    finally:
        assert h.stop() == 0
        relay.close()
        kz.stop()


def test_a_removed_node_is_registered_again(reg):
    h, path, first, st = held(reg, "10.0.0.11:80", "--weight", "5")
    try:
        reg.kz.delete(path)
        data, st2 = wait_for(lambda: node(reg.kz, path), what="the node again")
        assert data == first and data["weight"] == 5
        assert st2.ephemeralOwner == st.ephemeralOwner
    finally:
        assert h.stop() == 0
    assert "was removed by someone else: registering it again" in h.err


def test_a_holder_outlives_its_stderr_reader(reg):
    """A sidecar whose log reader went away goes on holding (no SIGPIPE, no abort)."""
    reg.ok("register", "service", "s")
    proc = subprocess.Popen([SVCCTL, "--zk", reg.connect, "register", "address", "s", "10.0.0.12:80", "--hold"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    path = "/address/s/10.0.0.12:80"
    try:
        _, st = wait_for(lambda: node(reg.kz, path), what="the held node")
        proc.stderr.close()
        for _ in range(3):  # each removal is logged, to the closed pipe, and undone
            reg.kz.delete(path)
            _, st2 = wait_for(lambda: node(reg.kz, path), what="the node again")
            assert st2.ephemeralOwner == st.ephemeralOwner
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
    assert code == 0
    assert reg.kz.exists(path) is None


def test_its_own_write_whose_answer_was_lost_is_not_a_drain(own_zk):
    """The check fails; the holder's "down" reaches the server but the answer never comes
    back. Read again later, that "down" is the holder's own, not someone's drain: when the
    check passes again, the address goes up."""
    kz, relay = service_behind_relay(own_zk)
    health = Health()
    h = Holder(f"127.0.0.1:{relay.port}", "--zk-timeout", "1000", "--zk-session-timeout", "8000", "register",
               "address", "s", "10.0.0.14:80", "--hold", "--check", health.url, "--interval", "100", "--rise",
               "1", "--fall", "1")
    path = "/address/s/10.0.0.14:80"
    try:
        _, st = wait_for(lambda: (node(kz, path) or [{}])[0].get("status") == "up" and node(kz, path),
                         what="up")
        relay.mute()
        health.ok = False
        wait_for(lambda: node(kz, path)[0]["status"] == "down", what="the unanswered down applied")
        # The client gives up on the muted connection and comes back on a new one, same session.
        health.ok = True
        data, st2 = wait_for(lambda: node(kz, path)[0]["status"] == "up" and node(kz, path), timeout=60,
                             what="up again")
        assert st2.ephemeralOwner == st.ephemeralOwner
    finally:
        code = h.stop()
        health.close()
        relay.close()
        kz.stop()
    assert code == 0
    assert "marked down by someone else" not in h.err, h.err
