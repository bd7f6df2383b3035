"""svcctl register: the exact layout written, field merging, compare-and-set."""
import json
import subprocess


from conftest import SVCCTL, PROCESS_TIMEOUT


def populate(reg):
    reg.ok("register", "service", "user", "--desc", "user accounts", "--owner", "team-a")
    reg.ok("register", "address", "user", "10.0.0.1:8080", "--dc", "bj")
    reg.ok("register", "address", "user", "10.0.0.2:8080", "--dc", "sh", "--weight", "50",
           "--provider-version", "1.4.2", "--tags", "canary,v1")
    reg.ok("register", "api", "user", "getUser", "--path", "/user/get")
    reg.ok("register", "api", "user", "find", "--path", "/rpc/user", "--encoding", "yar-msgpack",
           "--timeout-ms", "300", "--method", "findUser", "--idempotent")
    reg.ok("register", "key", "k-web", "--owner", "web")
    reg.ok("register", "acl", "user", "k-web", "--rate", "100", "--burst", "20",
           "--apis", "getUser,find")


def test_layout_read_back_by_another_client(reg):
    populate(reg)
    tree = reg.tree()
    history = sorted(p for p in tree if p.startswith("/history/"))
    assert len(history) == 7 and all(tree[p]["changes"] for p in history)  # one record per write
    assert tree.pop("/history") is None
    for p in history:
        del tree[p]
    assert tree == {
        "/service": None,
        "/service/user": {"status": "up", "desc": "user accounts", "owner": "team-a"},
        "/address": None,
        "/address/user": None,
        "/address/user/10.0.0.1:8080": {"dc": "bj", "weight": 100, "status": "up"},
        "/address/user/10.0.0.2:8080": {"dc": "sh", "weight": 50, "status": "up",
                                        "version": "1.4.2", "tags": ["canary", "v1"]},
        "/api": None,
        "/api/user": None,
        "/api/user/getUser": {"path": "/user/get", "encoding": "json", "status": "up"},
        "/api/user/find": {"path": "/rpc/user", "encoding": "yar-msgpack", "status": "up",
                           "timeout_ms": 300, "method": "findUser", "idempotent": True},
        "/key": None,
        "/key/k-web": {"owner": "web", "status": "up"},
        "/acl": None,
        "/acl/user": None,
        "/acl/user/k-web": {"rate": 100.0, "burst": 20, "apis": ["getUser", "find"],
                            "shadow": False},
    }
    # Node data is compact UTF-8 JSON.
    raw, _ = reg.kz.get("/address/user/10.0.0.1:8080")
    assert raw.decode() == json.dumps(json.loads(raw), separators=(",", ":"), sort_keys=True)


def test_result_json_reports_action_and_version(reg):
    r = reg.ok("register", "service", "pay")
    assert r == {"path": "/service/pay", "action": "created", "version": 0,
                 "data": {"status": "up", "desc": "", "owner": ""}}
    r = reg.ok("register", "service", "pay", "--status", "down")
    assert r["action"] == "updated" and r["version"] == 1 and r["data"]["status"] == "down"
    r = reg.ok("register", "service", "pay", "--status", "down")
    assert r["action"] == "unchanged" and r["version"] == 1
    assert reg.kz.exists("/service/pay").version == 1


def test_update_sets_only_given_fields_and_keeps_unknown_ones(reg):
    reg.ok("register", "service", "user")
    reg.ok("register", "address", "user", "10.0.0.1:8080", "--dc", "bj", "--weight", "30")
    # Another writer adds fields svcctl does not know.
    d = reg.data("/address/user/10.0.0.1:8080")
    d.update({"zone": "bj-3", "meta": {"rack": 7}})
    reg.kz.set("/address/user/10.0.0.1:8080", json.dumps(d).encode())
    reg.ok("register", "address", "user", "10.0.0.1:8080", "--weight", "80")
    assert reg.data("/address/user/10.0.0.1:8080") == {
        "dc": "bj", "weight": 80, "status": "up", "zone": "bj-3", "meta": {"rack": 7}}


def test_address_or_api_for_missing_service_is_refused(reg):
    r = reg.run("register", "address", "ghost", "10.0.0.1:80")
    assert r.code == 3
    assert 'service "ghost" not found' in r.err and "--create-service" in r.err
    r = reg.run("register", "api", "ghost", "a", "--path", "/a")
    assert r.code == 3
    assert not reg.kz.exists("/service/ghost")
    assert not reg.kz.exists("/address/ghost/10.0.0.1:80")
    assert not reg.kz.exists("/api/ghost/a")


def test_create_service_flag(reg):
    r = reg.run("-o", "json", "register", "address", "fresh", "10.0.0.1:80", "--create-service")
    assert r.code == 0, r
    assert 'created service "fresh"' in r.err
    assert r.json["notes"] == ['created service "fresh"']
    assert reg.data("/service/fresh") == {"status": "up", "desc": "", "owner": ""}
    assert reg.data("/address/fresh/10.0.0.1:80")["status"] == "up"
    assert reg.kz.exists("/api/fresh")


def test_new_api_needs_path(reg):
    reg.ok("register", "service", "user")
    r = reg.run("register", "api", "user", "getUser")
    assert r.code == 2
    assert "--path is required" in r.err
    assert not reg.kz.exists("/api/user/getUser")
    # An existing interface can be updated without it.
    reg.ok("register", "api", "user", "getUser", "--path", "/u")
    reg.ok("register", "api", "user", "getUser", "--status", "down")
    assert reg.data("/api/user/getUser") == {"path": "/u", "encoding": "json", "status": "down"}


def test_acl_needs_service_and_key(reg):
    reg.ok("register", "service", "user")
    r = reg.run("register", "acl", "user", "nokey", "--rate", "5")
    assert r.code == 3 and 'key "nokey" not found' in r.err
    reg.ok("register", "key", "k1")
    r = reg.run("register", "acl", "nosvc", "k1")
    assert r.code == 3 and 'service "nosvc" not found' in r.err
    assert not reg.kz.exists("/acl/user/nokey")
    r = reg.ok("register", "acl", "user", "k1", "--shadow")
    assert r["data"] == {"apis": ["*"], "shadow": True}
    reg.ok("register", "acl", "user", "k1", "--no-shadow", "--rate", "0.5")
    assert reg.data("/acl/user/k1") == {"apis": ["*"], "shadow": False, "rate": 0.5}


def test_if_version(reg):
    reg.ok("register", "service", "user")
    r = reg.ok("register", "service", "user", "--desc", "one", "--if-version", "0")
    assert r["version"] == 1
    r = reg.run("register", "service", "user", "--desc", "two", "--if-version", "0")
    assert r.code == 4
    assert "is at version 1, not 0" in r.err
    assert reg.data("/service/user")["desc"] == "one"
    r = reg.run("register", "service", "other", "--if-version", "0")
    assert r.code == 3
    assert not reg.kz.exists("/service/other")


def test_concurrent_writers_lose_no_field(reg):
    """Three writers update different fields of one node at the same moment; every round,
    all three values must be there and the node must have been written exactly three times."""
    reg.ok("register", "service", "user")
    for rnd in range(8):
        before = reg.kz.exists("/service/user").version
        argvs = [["register", "service", "user", "--desc", f"d{rnd}"],
                 ["register", "service", "user", "--owner", f"o{rnd}"],
                 ["register", "service", "user", "--status", "down" if rnd % 2 else "up"]]
        procs = [subprocess.Popen([SVCCTL, "--zk", reg.connect, "-q", *a],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for a in argvs]
        for p in procs:
            out, err = p.communicate(timeout=PROCESS_TIMEOUT)
            assert p.returncode == 0, err
        data = reg.data("/service/user")
        assert data["desc"] == f"d{rnd}" and data["owner"] == f"o{rnd}"
        assert data["status"] == ("down" if rnd % 2 else "up")
        # Round 0's status write changes nothing ("up" already), so it does not write.
        writes = 3 if rnd > 0 else 2
        assert reg.kz.exists("/service/user").version - before == writes


def test_missing_chroot_is_created(reg, port):
    chroot = reg.chroot + "/deeper/still"
    r = reg.run("-o", "json", "register", "service", "user", zk=f"127.0.0.1:{port}{chroot}")
    assert r.code == 0, r
    assert reg.kz.exists("/deeper/still/service/user")
    r = reg.run("-o", "json", "list", zk=f"127.0.0.1:{port}{reg.chroot}/nowhere")
    assert r.code == 0, r
    assert r.json == {"services": []}


def test_tags_and_clearing(reg):
    reg.ok("register", "service", "s")
    reg.ok("register", "address", "s", "h1:1", "--tags", "a,b")
    assert reg.data("/address/s/h1:1")["tags"] == ["a", "b"]
    reg.ok("register", "address", "s", "h1:1", "--tags", "")
    assert reg.data("/address/s/h1:1")["tags"] == []


def test_ipv6_address_node_name(reg):
    reg.ok("register", "service", "s")
    r = reg.ok("register", "address", "s", "[::1]:8080")
    assert r["path"] == "/address/s/[::1]:8080"
    assert reg.kz.exists("/address/s/[::1]:8080")
