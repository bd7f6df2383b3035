"""svcctl list: services, one service, keys; and data written by others that is wrong."""
import json



def test_list_services_summary(reg):
    reg.ok("register", "service", "user")
    reg.ok("register", "address", "user", "10.0.0.1:80", "--dc", "bj")
    reg.ok("register", "address", "user", "10.0.0.2:80", "--dc", "sh")
    reg.ok("register", "address", "user", "10.0.0.3:80", "--dc", "sh", "--status", "down")
    reg.ok("register", "api", "user", "a", "--path", "/a")
    reg.ok("register", "api", "user", "b", "--path", "/b")
    reg.ok("register", "service", "pay", "--status", "down", "--owner", "fin")
    assert reg.ok("list") == {"services": [
        {"service": "pay", "status": "down", "desc": "", "owner": "fin", "registered": True,
         "addresses_up": 0, "addresses_total": 0, "interfaces": 0, "dcs": [], "split": {}, "sticky": ""},
        {"service": "user", "status": "up", "desc": "", "owner": "", "registered": True,
         "addresses_up": 2, "addresses_total": 3, "interfaces": 2, "dcs": ["bj", "sh"], "split": {},
         "sticky": ""},
    ]}


def test_list_table(reg):
    reg.ok("register", "service", "user")
    reg.ok("register", "address", "user", "10.0.0.1:80", "--dc", "bj")
    reg.ok("register", "service", "payments-long-name")
    r = reg.run("-o", "table", "list")
    assert r.code == 0
    assert r.out.splitlines() == [
        "SERVICE             STATUS  ADDRESSES  INTERFACES  DCS",
        "payments-long-name  up      0/0 up     0           -",
        "user                up      1/1 up     0           bj",
    ]


def test_json_is_the_default_when_piped(reg):
    reg.ok("register", "service", "user")
    r = reg.run("list")
    assert r.code == 0
    assert json.loads(r.out)["services"][0]["service"] == "user"


def test_describe_service(reg):
    reg.ok("register", "service", "user", "--desc", "accounts")
    reg.ok("register", "address", "user", "10.0.0.1:80", "--dc", "bj", "--weight", "5")
    reg.ok("register", "api", "user", "find", "--path", "/rpc", "--encoding", "yar-json",
           "--timeout-ms", "250")
    reg.ok("register", "key", "k")
    reg.ok("register", "acl", "user", "k", "--rate", "10", "--apis", "find")
    reg.kz.create("/address/user/10.0.0.9:80", b'{"dc":"sh"}', ephemeral=True)
    d = reg.ok("list", "user")
    assert d["service"] == "user" and d["desc"] == "accounts" and d["registered"] is True
    assert d["addresses"] == [
        {"service": "user", "address": "10.0.0.1:80", "dc": "bj", "weight": 5, "status": "up",
         "version": "", "tags": [], "ephemeral": False},
        {"service": "user", "address": "10.0.0.9:80", "dc": "sh", "weight": 100, "status": "up",
         "version": "", "tags": [], "ephemeral": True},
    ]
    assert d["interfaces"] == [
        {"service": "user", "interface": "find", "path": "/rpc", "encoding": "yar-json",
         "status": "up", "timeout_ms": 250, "method": "find", "idempotent": False}]
    assert d["acls"] == [{"service": "user", "key": "k", "rate": 10.0, "burst": None,
                          "apis": ["find"], "shadow": False, "version": ""}]
    assert "problems" not in d
    r = reg.run("-o", "table", "list", "user")
    assert r.code == 0
    lines = r.out.splitlines()
    assert lines[0] == "service user  status up  owner -  desc accounts"
    assert lines[2].split() == ["ADDRESS", "DC", "WEIGHT", "STATUS", "VERSION", "TAGS", "KIND"]
    assert lines[3].split() == ["10.0.0.1:80", "bj", "5", "up", "-", "-", "persistent"]
    assert lines[4].split() == ["10.0.0.9:80", "sh", "100", "up", "-", "-", "ephemeral"]
    assert lines[7].split() == ["find", "/rpc", "yar-json", "up", "250ms", "find", "no"]
    assert lines[10].split() == ["k", "10/s", "-", "find", "enforce"]


def test_describe_missing_service(reg):
    r = reg.run("list", "nope")
    assert r.code == 3 and 'service "nope" not found' in r.err


def test_list_keys(reg):
    reg.ok("register", "service", "a")
    reg.ok("register", "service", "b")
    reg.ok("register", "key", "k1", "--owner", "web")
    reg.ok("register", "key", "k2", "--status", "down")
    reg.ok("register", "acl", "a", "k1", "--rate", "5")
    reg.ok("register", "acl", "b", "k1")
    keys = reg.ok("list", "--keys")["keys"]
    assert [k["key"] for k in keys] == ["k1", "k2"]
    assert keys[0]["owner"] == "web" and keys[1]["status"] == "down"
    assert [(a["service"], a["rate"]) for a in keys[0]["acls"]] == [("a", 5.0), ("b", None)]
    assert keys[1]["acls"] == []
    r = reg.run("-o", "table", "list", "--keys")
    assert r.out.splitlines()[1].split() == ["k1", "up", "web", "a(5/s),b"]


def test_bad_data_written_by_others_is_reported_not_fatal(reg):
    reg.ok("register", "service", "user")
    reg.ok("register", "address", "user", "10.0.0.1:80")
    reg.kz.create("/address/user/10.0.0.2:80", b"{not json")
    reg.kz.create("/address/user/10.0.0.3:80", b'{"weight": -5, "status": "maybe"}')
    reg.kz.create("/address/user/10.0.0.4:80", b'{"weight": "heavy"}')
    r = reg.run("-o", "json", "list")
    assert r.code == 0, r
    s = r.json["services"][0]
    assert s["addresses_total"] == 4
    # The malformed-status address counts as down; the others keep the defaults.
    assert s["addresses_up"] == 3
    assert set(s["problems"]) == {
        "/address/user/10.0.0.2:80: data is not valid JSON",
        '/address/user/10.0.0.3:80: field "weight" is not a whole number from 0 to 1000000; taken as 100',
        '/address/user/10.0.0.3:80: field "status" is not "up" or "down"; taken as down',
        '/address/user/10.0.0.4:80: field "weight" is not a whole number from 0 to 1000000; taken as 100',
    }
    assert "warning: /address/user/10.0.0.2:80: data is not valid JSON" in r.err
    r = reg.run("-q", "-o", "json", "list")
    assert r.code == 0 and r.err == ""


def test_update_of_a_node_holding_bad_json_is_refused_and_keeps_it(reg):
    reg.ok("register", "service", "user")
    reg.kz.create("/address/user/10.0.0.2:80", b"[1,2]")
    r = reg.run("register", "address", "user", "10.0.0.2:80", "--weight", "3")
    assert r.code == 1
    assert "cannot update /address/user/10.0.0.2:80: its data is JSON but not an object" in r.err
    assert reg.kz.get("/address/user/10.0.0.2:80")[0] == b"[1,2]"


def test_services_known_only_by_their_addresses(reg):
    # What an older tool, or a provider registering itself, may leave: no /service node.
    reg.kz.create("/address/echo/127.0.0.1:9001", b'{"dc":"","weight":100,"status":"up"}',
                  makepath=True)
    s = reg.ok("list")["services"]
    assert [(x["service"], x["registered"], x["addresses_up"]) for x in s] == [("echo", False, 1)]
    d = reg.ok("list", "echo")
    assert d["registered"] is False and len(d["addresses"]) == 1


def test_empty_registry(reg):
    assert reg.ok("list") == {"services": []}
    assert reg.ok("list", "--keys") == {"keys": []}
    r = reg.run("-o", "table", "list")
    assert r.code == 0 and r.out == "" and "no services registered" in r.err


def test_verbose_reports_the_session(reg):
    r = reg.run("-v", "-o", "json", "list")
    assert r.code == 0
    # The client asks for 10 s; the test server allows 1-60 s, so that is what is negotiated.
    assert "negotiated session timeout 10000 ms" in r.err, r
    assert f"connected to {reg.connect} (session 0x" in r.err
