"""svcctl watch and the watch-driven cache under it, against real ZooKeeper servers."""
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest
from kazoo.client import KazooClient

from conftest import SVCCTL
from watchlib import Relay, Watch, WatchArgs, leaves

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "harness"))
import zkserver  # noqa: E402


def test_initial_state_then_changes_in_order(reg):
    reg.ok("register", "service", "user")
    reg.ok("register", "address", "user", "10.0.0.1:80", "--dc", "bj")
    w = Watch(reg.connect)
    try:
        first = [w.next(), w.next()]
        assert [(e["event"], e["path"]) for e in first] == [
            ("added", "/address/user/10.0.0.1:80"), ("added", "/service/user")]
        assert first[0]["kind"] == "address" and first[0]["service"] == "user"
        assert first[0]["name"] == "10.0.0.1:80"
        assert first[0]["data"] == {"dc": "bj", "weight": 100, "status": "up"}
        reg.ok("register", "address", "user", "10.0.0.1:80", "--weight", "5")
        e = w.next()
        assert e["event"] == "modified" and e["before"]["weight"] == 100 and e["data"]["weight"] == 5
        reg.ok("register", "api", "user", "get", "--path", "/g")
        e = w.next()
        assert (e["event"], e["path"], e["kind"]) == ("added", "/api/user/get", "api")
        reg.ok("unregister", "api", "user", "get")
        e = w.next()
        assert (e["event"], e["path"]) == ("deleted", "/api/user/get")
        assert e["before"]["path"] == "/g" and "data" not in e
        reg.kz.create("/address/user/10.0.0.9:80", b'{"dc":"sh"}', ephemeral=True)
        e = w.next()
        assert e["event"] == "added" and e["ephemeral"] is True
    finally:
        assert w.stop() == 0


def test_filter_by_service(reg):
    for s in ("a", "b"):
        reg.ok("register", "service", s)
    reg.ok("register", "key", "k")
    w = WatchArgs(reg.connect, "b")
    try:
        assert w.next()["path"] == "/service/b"
        reg.ok("register", "address", "a", "1.1.1.1:1")
        reg.ok("register", "key", "k2")
        reg.ok("register", "address", "b", "2.2.2.2:2")
        assert w.next()["path"] == "/address/b/2.2.2.2:2"
    finally:
        assert w.stop() == 0


def test_verbose_names_every_session(reg):
    """`-v` says which sessions the view is read through: as many as --zk-sessions."""
    reg.ok("register", "service", "a")
    for n in (1, 3):
        w = Watch(reg.connect, "-v", after=("--zk-sessions", str(n)))
        try:
            assert w.next()["path"] == "/service/a"
        finally:
            assert w.stop() == 0
        first = w.err.splitlines()[0]
        m = re.fullmatch(r"watching \S+ \(sessions ((?:0x[0-9a-f]+ )*0x[0-9a-f]+), \d+ nodes\)", first)
        assert m, first
        ids = m.group(1).split()
        assert len(ids) == n and len(set(ids)) == n and "0x0" not in ids


def test_randomized_changes_end_equal_to_the_tree(reg):
    """Another client makes thousands of random creates, updates and deletes; the state
    rebuilt from the events then equals a fresh full read, node for node."""
    rnd = random.Random(1234)
    for s in range(8):
        reg.kz.create(f"/service/s{s}", b'{"status":"up"}', makepath=True)
        reg.kz.ensure_path(f"/address/s{s}")
        reg.kz.ensure_path(f"/api/s{s}")
    w = Watch(reg.connect)
    try:
        w.converge(leaves(reg.kz))
        paths = [f"/address/s{s}/10.0.0.{i}:80" for s in range(8) for i in range(12)] + \
                [f"/api/s{s}/i{i}" for s in range(8) for i in range(4)]
        for n in range(2500):
            p = rnd.choice(paths)
            data = json.dumps({"weight": rnd.randint(0, 500), "n": n}).encode()
            op = rnd.random()
            exists = reg.kz.exists(p)
            if not exists:
                reg.kz.create(p, data)
            elif op < 0.35:
                reg.kz.delete(p)
            else:
                reg.kz.set(p, data)
            if n % 500 == 0:  # whole services come and go too
                s = rnd.randrange(8)
                reg.kz.delete(f"/address/s{s}", recursive=True)
                reg.kz.ensure_path(f"/address/s{s}")
        w.converge(leaves(reg.kz))
    finally:
        assert w.stop() == 0


def test_nodes_deleted_and_created_again_while_being_read(reg):
    """Leaves that vanish between being listed and being read, then come back: each must be
    read again when it does. Each leaf goes through create, delete, create as fast as the
    writer can, so that some changes land inside the cache's own list-then-read window."""
    rnd = random.Random(99)
    reg.kz.create("/service/s", b'{"status":"up"}', makepath=True)
    reg.kz.ensure_path("/address/s")
    w = Watch(reg.connect)
    try:
        w.converge(leaves(reg.kz))
        names = [f"/address/s/10.0.1.{i}:80" for i in range(8)]
        for n in range(4000):
            p = rnd.choice(names)
            d = json.dumps({"n": n}).encode()
            if reg.kz.exists(p):
                reg.kz.delete(p)
            reg.kz.create(p, d)
            reg.kz.delete(p)
            reg.kz.create(p, d)
        w.converge(leaves(reg.kz), timeout=30)
    finally:
        assert w.stop() == 0


def kazoo(port):
    kz = KazooClient(hosts=f"127.0.0.1:{port}", timeout=15)
    kz.start(timeout=30)
    return kz


def test_zookeeper_restart_gives_resync_and_later_changes(own_zk):
    d, st = own_zk
    kz = kazoo(st["port"])
    kz.create("/service/a", b'{"status":"up"}', makepath=True)
    kz.stop()
    w = Watch(st["connect"])
    try:
        assert w.next()["path"] == "/service/a"
        zkserver.stop(d)
        time.sleep(1)
        zkserver.start(d, port=st["port"])
        e = w.until(lambda e: e["event"] == "resync")
        assert e["gap"] is True and e["reason"] == "reconnected"
        w.settled()
        kz = kazoo(st["port"])
        kz.create("/service/b", b'{"status":"up"}')
        kz.set("/service/a", b'{"status":"down"}')
        w.until_state({"/service/b": {"status": "up"}, "/service/a": {"status": "down"}})
        assert w.state == leaves(kz)
        kz.stop()
    finally:
        assert w.stop() == 0


def test_session_expiry_reconciles(own_zk):
    """Cut svcctl off for longer than its session timeout while another client deletes,
    adds and changes nodes: after the new session, the view equals the tree, with no
    deleted node left behind."""
    d, st = own_zk
    kz = kazoo(st["port"])
    for i in range(20):
        kz.create(f"/address/s/10.0.0.{i}:80", json.dumps({"weight": i}).encode(), makepath=True)
    kz.create("/service/s", b'{"status":"up"}', makepath=True)
    kz.create("/service/gone", b'{"status":"up"}', makepath=True)
    relay = Relay(st["port"])
    w = Watch(f"127.0.0.1:{relay.port}", "--zk-session-timeout", "1500")
    try:
        for _ in range(22):
            w.next()
        relay.cut()
        for i in range(0, 20, 2):
            kz.delete(f"/address/s/10.0.0.{i}:80")
        kz.delete("/service/gone")
        kz.set("/address/s/10.0.0.1:80", b'{"weight":999}')
        kz.create("/address/s/10.9.9.9:80", b'{"weight":7}')
        kz.create("/service/new", b'{"status":"up"}')
        time.sleep(4)  # the session (1.5 s) expires on the server while cut off
        relay.up()
        e = w.until(lambda e: e["event"] == "resync")
        assert e["reason"] == "session expired"
        w.settled()  # the round that reads everything again is over: the view is the truth
        assert w.state == leaves(kz)
        assert "/service/gone" not in w.state and "/address/s/10.0.0.0:80" not in w.state
        assert w.state["/address/s/10.0.0.1:80"] == {"weight": 999}
    finally:
        assert w.stop() == 0
        relay.close()
        kz.stop()


def test_one_of_two_sessions_expiring_reconciles_its_share(own_zk):
    """The view is read through two sessions. Cut one off for longer than its timeout
    while another client changes every service: what the other session reads keeps
    coming; once the lost one is replaced and its round is over, the view is the tree."""
    d, st = own_zk
    kz = kazoo(st["port"])
    names = [f"svc{i}" for i in range(20)]
    for n in names:
        kz.create(f"/service/{n}", b'{"status":"up"}', makepath=True)
        for j in range(3):
            kz.create(f"/address/{n}/10.0.0.{j}:80", b'{"weight":1}', makepath=True)
    relay = Relay(st["port"])
    w = Watch(f"127.0.0.1:{relay.port}", "--zk-session-timeout", "1500")
    try:
        w.converge(leaves(kz))
        assert len(relay.sessions) == 2
        victim = relay.sessions[1]
        relay.block(victim)
        for n in names:
            kz.delete(f"/address/{n}/10.0.0.0:80")
            kz.set(f"/address/{n}/10.0.0.1:80", b'{"weight":2}')
            kz.create(f"/address/{n}/10.9.9.9:80", b'{"weight":3}')
        kz.delete("/service/svc0")
        kz.create("/service/new", b'{"status":"up"}')
        # Seen while the victim is cut off: the other session's share.
        w.until(lambda e: e["event"] == "added" and e["path"].endswith("/10.9.9.9:80"), timeout=30)
        assert not w.in_resync
        time.sleep(4)  # the victim's session (1.5 s) expires on the server
        relay.unblock(victim)
        e = w.until(lambda e: e["event"] == "resync", timeout=60)
        assert e["reason"] == "session expired"
        w.settled()
        w.converge(leaves(kz))
        assert "/address/svc3/10.0.0.0:80" not in w.state and "/service/svc0" not in w.state
        assert len(relay.sessions) == 3 and relay.sessions[0] != victim  # only the victim was replaced
    finally:
        assert w.stop() == 0
        relay.close()
        kz.stop()


def test_a_reader_that_goes_away_ends_it_as_a_filter(reg):
    """`svcctl watch | head -1`: the next line written after the reader closed ends the
    process by SIGPIPE, as any filter; it does not abort."""
    reg.ok("register", "service", "s")
    p = subprocess.Popen([SVCCTL, "--zk", reg.connect, "-o", "json", "watch"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        assert json.loads(p.stdout.readline())["path"] == "/service/s"
        p.stdout.close()
        for i in range(50):  # each change is a line written to the closed pipe
            reg.ok("register", "address", "s", f"10.0.0.{i + 1}:80")
            if p.poll() is not None:
                break
        assert p.wait(timeout=30) == -signal.SIGPIPE, p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stderr.close()


def test_a_second_sigterm_ends_a_watch_stuck_on_its_reader(reg):
    """A reader that keeps the pipe open but stops reading blocks the watch in a write, where
    the first SIGTERM's graceful stop cannot be acted on: the second ends it."""
    reg.kz.ensure_path("/address/s")
    for r in [reg.kz.create_async(f"/address/s/10.0.{i // 250}.{i % 250}:80", b'{"status":"up"}')
              for i in range(1500)]:
        r.get(timeout=30)  # 1,500 lines of about 120 bytes: more than a pipe holds
    p = subprocess.Popen([SVCCTL, "--zk", reg.connect, "-o", "json", "watch"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    try:
        p.stdout.read(1)  # it is writing; from now on nothing is read
        p.send_signal(signal.SIGTERM)
        with pytest.raises(subprocess.TimeoutExpired):  # stuck: the output is larger than the pipe
            p.wait(timeout=1)
        p.send_signal(signal.SIGINT)  # either signal, second
        assert p.wait(timeout=30) == -signal.SIGINT
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()


def test_unreachable_zookeeper_is_exit_5(svcctl_bin):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = subprocess.run([svcctl_bin, "--zk", f"127.0.0.1:{port}", "--zk-timeout", "800", "watch"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 5, r
    assert "could not load the registry from ZooKeeper" in r.stderr


def test_ensemble_leader_killed_mid_stream(tmp_path):
    """Three servers; the leader is killed while another client writes a stream of changes:
    the watcher ends with every change, equal to the tree."""
    members = zkserver.start_ensemble(str(tmp_path))
    connect = members[0]["ensemble_connect"]
    kz = KazooClient(hosts=connect, timeout=15)
    try:
        kz.start(timeout=60)
        kz.create("/service/s", b'{"status":"up"}', makepath=True)
        w = Watch(connect, "--zk-session-timeout", "4000")
        assert w.next()["path"] == "/service/s"
        from kazoo.retry import KazooRetry
        retry = KazooRetry(max_tries=-1, delay=0.1, max_delay=1, deadline=60)
        leader = next(m for m in members if zkserver.mode(m["port"]) == "leader")
        for i in range(300):
            path = f"/address/s/10.0.{i % 40}.1:80"
            data = json.dumps({"weight": i}).encode()

            def write():
                if kz.exists(path):
                    kz.set(path, data)
                else:
                    kz.create(path, data, makepath=True)
            retry(write)
            if i == 100:
                zkserver.stop(leader["dir"])  # SIGTERM, then SIGKILL if it lingers
                assert zkserver.mode(leader["port"]) == ""  # really gone
        w.converge(retry(lambda: leaves(kz)))
        assert w.state["/address/s/10.0.19.1:80"] == {"weight": 299}  # the last write, i = 299
        assert w.stop() == 0
    finally:
        kz.stop()
        for m in members:
            zkserver.stop(m["dir"])


def test_last_known_good_file_serves_while_zookeeper_is_down(own_zk, tmp_path):
    d, st = own_zk
    lkg = tmp_path / "registry.lkg"
    kz = kazoo(st["port"])
    kz.create("/service/a", b'{"status":"up"}', makepath=True)
    kz.create("/address/a/10.0.0.1:80", b'{"weight":1}', makepath=True)
    w = Watch(st["connect"], after=("--lkg-file", str(lkg)))
    w.next()
    w.next()
    kz.set("/address/a/10.0.0.1:80", b'{"weight":2}')
    w.until(lambda e: e["event"] == "modified")
    # written within about a second of the change, atomically
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if lkg.exists() and '{\\"weight\\":2}' in lkg.read_text():
            break
        time.sleep(0.1)
    assert '{\\"weight\\":2}' in lkg.read_text()
    assert w.stop() == 0
    expected = leaves(kz)
    kz.stop()

    zkserver.stop(d)
    w = Watch(st["connect"], "--zk-timeout", "800", after=("--lkg-file", str(lkg)))
    try:
        got = [w.next(), w.next()]
        assert {e["path"]: e["data"] for e in got} == expected
        zkserver.start(d, port=st["port"])
        e = w.until(lambda e: e["event"] == "resync")
        assert e["gap"] is True
        w.settled()
        kz = kazoo(st["port"])
        kz.set("/address/a/10.0.0.1:80", b'{"weight":3}')
        e = w.until(lambda e: e["event"] == "modified")
        assert e["data"] == {"weight": 3}
        assert w.state == leaves(kz)
        kz.stop()
    finally:
        assert w.stop() == 0
    assert "showing the last-known-good state from" in w.err


def test_no_zookeeper_and_no_lkg_file_yet(tmp_path, svcctl_bin):
    """A file not written yet (a first run) is no reason to refuse; with ZooKeeper down, the
    load fails as without one. (A file that is there and unusable: test_errors.)"""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = subprocess.run([svcctl_bin, "--zk", f"127.0.0.1:{port}", "--zk-timeout", "500", "watch",
                        "--lkg-file", str(tmp_path / "missing.lkg")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 5, r
    assert "no usable last-known-good file" in r.stderr


def test_session_transitions_on_stderr_and_as_json_events(own_zk):
    """A brief cut: each session disconnected, then reconnected. A cut past the session
    timeout: each expired, replaced by a new one, and its resync done. Said on stderr as
    `svcctl watch:` lines and, with -o json, as "session" events among the changes."""
    _, st = own_zk
    kz = kazoo(st["port"])
    kz.create("/service/a", b'{"status":"up"}', makepath=True)
    kz.create("/service/c", b'{"status":"up"}')
    relay = Relay(st["port"])
    w = Watch(f"127.0.0.1:{relay.port}", "--zk-session-timeout", "4000")
    try:
        assert [w.next()["path"] for _ in range(2)] == ["/service/a", "/service/c"]
        ids = {hex(i) for i in relay.sessions}
        assert len(ids) == 2
        relay.cut()
        for what in ("disconnected", "reconnected"):
            if what == "reconnected":
                relay.up()
            said = [w.until(lambda e: e["event"] == "session" and e["what"] == what, timeout=30) for _ in ids]
            assert {e["session_id"] for e in said} == ids and {e["session"] for e in said} == {0, 1}, said
        w.until(lambda e: e["event"] == "synced")  # the reconnected sessions' rounds are over
        relay.cut()
        kz.create("/service/b", b'{"status":"up"}')
        kz.set("/service/a", b'{"status":"down"}')
        kz.delete("/service/c")
        time.sleep(9)  # the sessions (4 s) are over on the server meanwhile
        relay.up()
        done = []
        while len(done) < 2:
            e = w.until(lambda e: e["event"] == "session" and e["what"] in ("expired", "replaced", "resynced"),
                        timeout=60)
            if e["what"] == "resynced":
                done.append(e)
        w.until_state({"/service/b": {"status": "up"}, "/service/a": {"status": "down"}})
        assert "/service/c" not in w.state
        session = [e for e in w.seen if e["event"] == "session"]
        for i in (0, 1):
            mine = [e["what"] for e in session if e["session"] == i]
            assert mine[-3:] == ["expired", "replaced", "resynced"], session
        replaced = [e for e in session if e["what"] == "replaced"]
        assert {e["old_session_id"] for e in replaced} == ids, replaced
        # Each round reads again what its session holds: the node changed is found by its
        # own. (The one deleted may be found first by the listing of /service, and the one
        # created be read after its session's round: neither is then counted.)
        assert sum(e["modified"] for e in done) == 1 and sum(e["deleted"] for e in done) <= 1, session
        assert sum(e["nodes_read"] for e in done) >= 2, session
    finally:
        assert w.stop() == 0
        relay.close()
        kz.stop()
    lines = [line for line in w.err.splitlines() if line.startswith("svcctl watch: session ")]
    for pattern in (r"session \d \(0x[0-9a-f]+\) disconnected: reconnecting", r"session \d \(0x[0-9a-f]+\) reconnected",
                    r"session \d \(0x[0-9a-f]+\) expired \(.+\): opening a new session",
                    r"session \d: new session 0x[0-9a-f]+ replaces 0x[0-9a-f]+ \(.+\)",
                    r"session \d \(0x[0-9a-f]+\) resync done: \d+ nodes read, \d+ added, \d+ modified, \d+ deleted in \d+ ms"):
        assert sum(re.fullmatch("svcctl watch: " + pattern, line) is not None for line in lines) >= 2, (pattern, lines)
