"""Bad input gets a clear message on stderr, the documented exit code, and writes nothing."""
import json
import os
import socket
import subprocess
import threading
import time

import pytest

from conftest import SVCCTL


BAD_NAMES = ["a/b", "", ".", "..", "x" * 129, "sp ace", "ü", "a:b", "new\nline"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_service_names_write_nothing(reg, name):
    for argv in (["register", "service", name],
                 ["register", "address", name, "10.0.0.1:80", "--create-service"],
                 ["register", "api", "ok", name, "--path", "/x", "--create-service"],
                 ["register", "key", name],
                 ["unregister", "service", name],
                 ["list", name]):
        r = reg.run(*argv)
        assert r.code == 2, (argv, r)
        assert "invalid" in r.err and "name" in r.err, r
        assert r.out == ""
    assert reg.kz.get_children("/") == []


@pytest.mark.parametrize("weight", ["-1", "1.5", "abc", "", "1000001", "1e3", " 5", "0x10",
                                    "99999999999999999999"])
def test_bad_weights(reg, weight):
    reg.ok("register", "service", "s")
    r = reg.run("register", "address", "s", "10.0.0.1:80", "--weight", weight)
    assert r.code == 2, r
    assert f'invalid weight "{weight}": use a whole number from 0 to 1000000' in r.err
    assert reg.kz.get_children("/address/s") == []


def test_weight_bounds_accepted(reg):
    reg.ok("register", "service", "s")
    reg.ok("register", "address", "s", "h:1", "--weight", "0")
    reg.ok("register", "address", "s", "h:2", "--weight", "1000000")
    assert reg.data("/address/s/h:1")["weight"] == 0
    assert reg.data("/address/s/h:2")["weight"] == 1000000


@pytest.mark.parametrize("addr,why", [
    ("10.0.0.1", "no port"), ("10.0.0.1:0", "port must be"), ("10.0.0.1:65536", "port must be"),
    ("10.0.0.1:-1", "port must be"), (":80", "empty host"), ("host:80x", "port must be"),
    ("::1:80", "IPv6 hosts go in [brackets]"), ("[::1]80", "[HOST]:PORT"),
    ("bad_host!:80", "bad character"), ("a..b:80", "malformed host"), ("[]:80", "empty host")])
def test_bad_addresses(reg, addr, why):
    reg.ok("register", "service", "s")
    r = reg.run("register", "address", "s", addr)
    assert r.code == 2, r
    assert f'invalid address "{addr}"' in r.err and why in r.err, r
    assert reg.kz.get_children("/address/s") == []


@pytest.mark.parametrize("argv,msg", [
    (["register", "service", "s", "--status", "UP"], 'invalid status "UP": use up or down'),
    (["register", "api", "s", "a", "--path", "/a", "--encoding", "xml"], 'invalid encoding "xml"'),
    (["register", "api", "s", "a", "--path", "a"], 'invalid path "a"'),
    (["register", "api", "s", "a", "--path", "/a b"], 'invalid path "/a b"'),
    (["register", "api", "s", "a", "--path", "/a", "--timeout-ms", "0"], 'invalid timeout "0"'),
    (["register", "acl", "s", "k", "--rate", "-3"], 'invalid rate "-3"'),
    (["register", "acl", "s", "k", "--rate", "nan"], 'invalid rate "nan"'),
    (["register", "acl", "s", "k", "--burst", "0"], 'invalid burst "0"'),
    (["register", "acl", "s", "k", "--apis", "a,,b"], "empty item"),
    (["register", "acl", "s", "k", "--apis", "a,b/c"], 'invalid interface name "b/c"'),
])
def test_bad_field_values(reg, argv, msg):
    reg.ok("register", "service", "s")
    before = reg.tree()
    r = reg.run(*argv)
    assert r.code == 2, r
    assert msg in r.err, r
    assert reg.tree() == before


def test_usage_errors(reg):
    for argv in (["frobnicate"], [], ["register"], ["register", "service"],
                 ["register", "service", "s", "--bogus"], ["--zk-timeout", "abc", "list"],
                 ["-o", "yaml", "list"], ["list", "s", "--keys"], ["--auth", "nocolon", "list"],
                 ["--zk-timeout", "0", "list"], ["register", "service", "s", "--if-version", "x"],
                 ["watch", "--zk-sessions", "0"], ["proxy", "--zk-sessions", "9"],
                 ["undrain", "s", "127.0.0.1:80", "--timeout-ms", "5"],
                 ["undrain", "s", "127.0.0.1:80", "--ignore-unreachable"]):
        r = reg.run(*argv)
        assert r.code == 2, (argv, r)
        assert r.err.strip() != "", argv
    assert reg.kz.get_children("/") == []


def test_help_and_version(reg, svcctl_bin):
    r = subprocess.run([svcctl_bin, "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("svcctl ")
    r = subprocess.run([svcctl_bin, "register", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "address" in r.stdout


def test_unreachable_zookeeper_closed_port(svcctl_bin):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens
    r = subprocess.run([svcctl_bin, "--zk", f"127.0.0.1:{port}", "--zk-timeout", "700", "list"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 5, r
    # One line of our own; the C client's log never reaches the terminal.
    assert r.stderr == f"svcctl: error: cannot reach ZooKeeper at 127.0.0.1:{port} within 700 ms\n"
    assert r.stdout == ""


def test_client_library_log_goes_to_the_named_file(tmp_path, svcctl_bin):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "zk.log"
    env = dict(os.environ, SVCCTL_ZK_LOG=str(log))
    r = subprocess.run([svcctl_bin, "--zk", f"127.0.0.1:{port}", "--zk-timeout", "500", "list"],
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 5
    assert r.stderr.count("\n") == 1
    assert f"127.0.0.1:{port}" in log.read_text()


def test_unreachable_zookeeper_silent_listener(svcctl_bin):
    """A server that accepts the connection and never answers: svcctl gives up after
    --zk-timeout instead of hanging."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    port = srv.getsockname()[1]
    conns = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        r = subprocess.run([svcctl_bin, "--zk", f"127.0.0.1:{port}", "--zk-timeout", "800",
                            "register", "service", "x"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 5, r
        assert "cannot reach ZooKeeper" in r.stderr
    finally:
        stop.set()
        t.join()
        for c in conns:
            c.close()
        srv.close()


def test_env_connect_string(reg, svcctl_bin):
    env = dict(os.environ, SVCCTL_ZK=reg.connect)
    r = subprocess.run([svcctl_bin, "-o", "json", "register", "service", "viaenv"],
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    assert reg.kz.exists("/service/viaenv")


def test_malformed_connect_string(svcctl_bin):
    r = subprocess.run([svcctl_bin, "--zk", "/only-a-chroot", "list"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2, r
    assert "invalid ZooKeeper connect string" in r.stderr


def unusable_lkg_files(d):
    """(path, what stderr must say) for --lkg-file values no mirroring command can use."""
    files = {
        "not-json.lkg": b"{not json",
        "bytes.lkg": bytes(range(256)),
        "nodes.lkg": b'{"format":"svcctl-lkg-1","nodes":[1]}',
        "format.lkg": b'{"format":1}',
        # The right format with one field of the wrong type, or a path outside the registry.
        "typed.lkg": json.dumps({"format": "svcctl-lkg-1", "written_ms": 1, "nodes": [
            ["/service/a", "{}", 1, 0, 0, False], ["/service/b", 17, 1, 0, 0, False]]}).encode(),
        "outside.lkg": json.dumps({"format": "svcctl-lkg-1", "written_ms": 1, "nodes": [
            ["/etc/passwd", "{}", 1, 0, 0, False]]}).encode(),
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
    return [(str(d / "no-such-dir" / "registry.lkg"), "No such file or directory"),
            (str(d), "Is a directory"),
            *((str(d / name), "is not one svcctl wrote") for name in files)]


@pytest.mark.parametrize("command", [["watch"], ["proxy", "--listen", "127.0.0.1:0", "--admin", ""]],
                         ids=["watch", "proxy"])
def test_unusable_lkg_file_is_refused_at_once(tmp_path, svcctl_bin, command):
    """An --lkg-file that could not be written, or that is there but is not what the cache
    writes: exit 1 at once, naming the file and why, before any wait for ZooKeeper (here a
    closed port, with 15 s to give up on it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for path, why in unusable_lkg_files(tmp_path):
        t = time.monotonic()
        r = subprocess.run([svcctl_bin, "--zk", f"127.0.0.1:{port}", "--zk-timeout", "15000", *command,
                            "--lkg-file", path], capture_output=True, text=True, timeout=60)
        took = time.monotonic() - t
        assert r.returncode == 1, (path, r)
        assert f"last-known-good file {path}" in r.stderr and why in r.stderr, (path, r.stderr)
        assert took < 5, (path, took)
