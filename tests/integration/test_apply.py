"""svcctl export and svcctl apply: the registry as a document, read back with kazoo; plans
shown and applied atomically with version checks (concurrent applies: each one all or
nothing), unsafe plans refused, --prune, bad documents, --wait on live gateways."""
import concurrent.futures
import json
import os
import pty
import select
import subprocess

from gatewaylib import Proxy, fake_gateway, registered, start_provider, stop_process


def seed(reg):
    reg.ok("register", "service", "s", "--desc", "first", "--owner", "team-a")
    reg.ok("register", "address", "s", "10.0.0.1:80", "--dc", "a")
    reg.ok("register", "address", "s", "10.0.0.2:80", "--dc", "b", "--weight", "50")
    reg.ok("register", "api", "s", "echo", "--path", "/echo", "--timeout-ms", "300")
    reg.ok("register", "key", "k1", "--owner", "ops")
    reg.ok("register", "acl", "s", "k1", "--rate", "5", "--apis", "echo")


def apply(reg, doc, *args, tmp_path, name="doc.json"):
    f = tmp_path / name
    f.write_text(json.dumps(doc))
    return reg.run("-o", "table", "apply", "-f", str(f), *args)


def test_export_is_the_registry_and_applying_it_changes_nothing(reg, tmp_path):
    seed(reg)
    doc = json.loads(reg.run("export").out)
    assert doc["format"] == "svcctl-registry-1"
    s = doc["services"]["s"]
    assert s["desc"] == "first" and s["owner"] == "team-a"
    assert s["addresses"]["10.0.0.2:80"] == reg.data("/address/s/10.0.0.2:80")
    assert s["interfaces"]["echo"] == reg.data("/api/s/echo")
    assert s["acls"]["k1"] == reg.data("/acl/s/k1")
    assert doc["keys"] == {"k1": reg.data("/key/k1")}
    before = reg.tree()
    r = apply(reg, doc, "--yes", tmp_path=tmp_path)
    assert r.code == 0 and "nothing to change" in r.out, r
    assert reg.tree() == before
    # A file, and one service only.
    r = reg.run("export", "s", "-f", str(tmp_path / "s.json"))
    assert r.code == 0, r
    assert json.loads((tmp_path / "s.json").read_text())["services"].keys() == {"s"}
    assert reg.run("export", "nope").code == 3


def test_plan_then_apply(reg, tmp_path):
    seed(reg)
    doc = json.loads(reg.run("export").out)
    s = doc["services"]["s"]
    s["addresses"]["10.0.0.1:80"]["weight"] = 30
    s["addresses"]["10.0.0.3:80"] = {"dc": "a"}
    s["interfaces"] = {"add": {"path": "/add", "encoding": "yar-msgpack"}}
    doc["services"]["t"] = {"desc": "new", "addresses": {"10.0.1.1:81": {}}}
    doc["keys"]["k2"] = {"owner": "new"}
    before = reg.tree()
    # Not on a terminal and no --yes: the plan only.
    r = apply(reg, doc, tmp_path=tmp_path)
    assert r.code == 0 and "not applied" in r.err, r
    assert "~ /address/s/10.0.0.1:80 weight: 100 → 30" in r.out, r.out
    assert "- /api/s/echo" in r.out and "+ /api/s/add " in r.out and "+ /address/t" in r.out, r.out
    assert "plan: 5 to create, 1 to change, 1 to delete" in r.out, r.out
    assert reg.tree() == before
    r = reg.run("-o", "json", "apply", "-f", str(tmp_path / "doc.json"), "--yes")
    assert r.code == 0, r
    out = r.json
    assert out["applied"] is True and out["zxid"].startswith("0x")
    assert out["summary"] == {"create": 5, "update": 1, "delete": 1}
    # Read back with kazoo: exactly what the document says, defaults for new nodes.
    assert reg.data("/address/s/10.0.0.1:80") == {"dc": "a", "weight": 30, "status": "up"}
    assert reg.data("/address/s/10.0.0.3:80") == {"dc": "a", "weight": 100, "status": "up"}
    assert reg.kz.exists("/api/s/echo") is None
    assert reg.data("/api/s/add") == {"path": "/add", "encoding": "yar-msgpack", "status": "up"}
    assert reg.data("/service/t") == {"desc": "new", "owner": "", "status": "up"}
    assert reg.data("/address/t/10.0.1.1:81")["weight"] == 100
    assert reg.data("/key/k2") == {"owner": "new", "status": "up"}
    assert reg.data("/acl/s/k1")["rate"] == 5  # untouched
    # Applying the same again: nothing to do.
    assert "nothing to change" in apply(reg, doc, "--yes", tmp_path=tmp_path).out


def test_concurrent_applies_are_each_all_or_nothing(reg, tmp_path):
    seed(reg)
    base = json.loads(reg.run("export").out)
    docs = []
    for i in range(8):
        d = json.loads(json.dumps(base))
        d["services"]["s"]["addresses"]["10.0.0.1:80"]["weight"] = 10 + i
        d["services"]["s"]["addresses"][f"10.0.9.{i}:80"] = {"dc": f"w{i}"}
        (tmp_path / f"d{i}.json").write_text(json.dumps(d))
        docs.append(tmp_path / f"d{i}.json")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda f: reg.run("apply", "-f", str(f), "--yes"), docs))
    codes = [r.code for r in results]
    assert set(codes) <= {0, 4}, results
    assert 0 in codes
    present = {i for i in range(8) if reg.kz.exists(f"/address/s/10.0.9.{i}:80")}
    # Each apply's plan removes the others' new addresses, so the registry ends as the last
    # successful apply left it; a refused one wrote nothing at all.
    for i, r in enumerate(results):
        if r.code == 4:
            assert "changed since the plan" in r.err, r
    assert len(present) == 1, (present, codes)
    (last,) = present
    assert codes[last] == 0
    assert reg.data("/address/s/10.0.0.1:80")["weight"] == 10 + last


def test_unsafe_plans_are_refused_without_force(reg, tmp_path):
    seed(reg)
    doc = json.loads(reg.run("export").out)
    doc["services"]["s"]["addresses"] = {}
    before = reg.tree()
    r = apply(reg, doc, "--yes", tmp_path=tmp_path)
    assert r.code == 9 and "removes 2 of its 2 addresses" in r.err and "leaves no address up" in r.err, r
    assert reg.tree() == before
    doc["services"]["s"]["addresses"] = {"10.0.0.1:80": {"status": "down"}, "10.0.0.2:80": {}}
    assert apply(reg, doc, "--yes", tmp_path=tmp_path).code == 0  # one of two down: fine
    doc["services"]["s"]["addresses"]["10.0.0.2:80"] = {"status": "down"}
    r = apply(reg, doc, "--yes", tmp_path=tmp_path)
    assert r.code == 9 and "leaves no address up" in r.err, r
    r = apply(reg, doc, "--yes", "--force", tmp_path=tmp_path)
    assert r.code == 0 and "applied with --force" in r.err, r
    assert reg.data("/address/s/10.0.0.2:80")["status"] == "down"


def test_prune_removes_what_the_document_does_not_name(reg, tmp_path):
    seed(reg)
    reg.ok("register", "service", "old")
    reg.ok("register", "api", "old", "x", "--path", "/x")
    reg.ok("register", "key", "stale")
    doc = json.loads(reg.run("export", "s").out)
    r = apply(reg, doc, "--yes", "--prune", tmp_path=tmp_path)
    assert r.code == 0, r
    assert reg.kz.exists("/service/old") is None and reg.kz.exists("/api/old") is None
    assert reg.kz.exists("/key/stale") is None
    assert reg.kz.exists("/key/k1") and reg.kz.exists("/address/s/10.0.0.1:80")
    assert [s["service"] for s in reg.ok("list")["services"]] == ["s"]


def test_bad_documents_name_their_problems_and_write_nothing(reg, tmp_path):
    seed(reg)
    before = reg.tree()
    (tmp_path / "bad.json").write_text("{not json")
    r = reg.run("apply", "-f", str(tmp_path / "bad.json"), "--yes")
    assert r.code == 2 and "is not JSON" in r.err, r
    doc = {"services": {"s": {"addresses": {"10.0.0.1:80": {"weight": -1}, "oops": {}},
                              "acls": {"ghost": {}}}}}
    r = apply(reg, doc, "--yes", tmp_path=tmp_path)
    assert r.code == 2, r
    assert "/address/s/10.0.0.1:80" in r.err and "oops" in r.err and "ghost" in r.err, r.err
    assert reg.run("apply", "-f", str(tmp_path / "missing.json")).code == 2
    assert reg.tree() == before
    # From standard input.
    r = reg.run("apply", "-f", "-", "--yes", input=json.dumps({"keys": {"k9": {}}}))
    assert r.code == 0, r
    assert reg.data("/key/k9")["status"] == "up"


def test_wait_returns_once_every_gateway_has_the_change(reg, tmp_path):
    seed(reg)
    p, port = start_provider("json")
    addr = f"127.0.0.1:{port}"
    reg.ok("register", "address", "s", addr)
    gws = [Proxy(reg), Proxy(reg)]
    try:
        registered(reg, *gws)
        doc = json.loads(reg.run("export").out)
        doc["services"]["s"]["addresses"][addr]["weight"] = 7
        r = reg.run("-o", "json", "apply", "-f", "-", "--yes", "--wait", input=json.dumps(doc))
        assert r.code == 0, r
        assert r.json["wait"]["gateways"] == 2
        for g in gws:  # at once, no polling: --wait said they have it
            routes = json.loads(g.admin_get("/-/registry")[2])["routes"]["s"]["addresses"]
            assert {a["address"]: a["weight"] for a in routes}[addr] == 7
        # A plan that only removes: waited for too.
        del doc["services"]["s"]["addresses"]["10.0.0.2:80"]
        r = reg.run("-o", "table", "apply", "-f", "-", "--yes", "--wait", input=json.dumps(doc))
        assert r.code == 0 and "every gateway (2) has it" in r.out, r
        for g in gws:
            nodes = json.loads(g.admin_get("/-/registry")[2])["nodes"]
            assert "/address/s/10.0.0.2:80" not in nodes
        # A gateway that cannot answer: exit 10, named.
        fake_gateway(reg, "ghost")
        doc["services"]["s"]["desc"] = "again"
        r = reg.run("apply", "-f", "-", "--yes", "--wait", "--wait-timeout-ms", "500", input=json.dumps(doc))
        assert r.code == 10 and "ghost" in r.err, r
        assert reg.data("/service/s")["desc"] == "again"  # written; only the wait timed out
    finally:
        for g in gws:
            g.stop()
        stop_process(p)


def test_apply_to_a_registry_that_does_not_exist_yet(reg):
    """A new environment: the chroot and the roots are created, as `register` creates them."""
    fresh = reg.connect + "/fresh"
    doc = {"services": {"s": {"addresses": {"10.0.0.1:80": {}}}}, "keys": {"k": {"owner": "o"}}}
    r = reg.run("apply", "-f", "-", "--yes", zk=fresh, input=json.dumps(doc))
    assert r.code == 0, r
    assert reg.data("/fresh/address/s/10.0.0.1:80")["weight"] == 100
    assert reg.data("/fresh/key/k")["owner"] == "o"


def apply_on_terminal(reg, args, answer, typed=b""):
    """`svcctl apply ARGS` with stdin and stdout on a terminal: types `typed`, waits (at most
    30 s) for the question and answers it. Returns (what the terminal showed, stderr)."""
    leader, follower = pty.openpty()
    p = subprocess.Popen([os.environ["SVCCTL_BIN"], "--zk", reg.connect, "apply", *args],
                         stdin=follower, stdout=follower, stderr=subprocess.PIPE)
    os.close(follower)
    try:
        os.write(leader, typed)
        seen = b""
        while b"[y/N]" not in seen:
            ready, _, _ = select.select([leader], [], [], 30)
            assert ready, f"no question after 30 s: {seen!r}"
            seen += os.read(leader, 4096)  # EIO, failing the test, if apply has exited
        os.write(leader, answer + b"\n")
        assert p.wait(timeout=30) == 0
        return seen.decode(), p.stderr.read().decode()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stderr.close()
        os.close(leader)


def test_dry_run_never_writes_and_a_terminal_is_asked(reg, tmp_path):
    seed(reg)
    doc = json.loads(reg.run("export").out)
    doc["services"]["s"]["desc"] = "changed"
    f = tmp_path / "doc.json"
    f.write_text(json.dumps(doc))
    before = reg.tree()
    r = reg.run("-o", "table", "apply", "-f", str(f), "--yes", "--dry-run")
    assert r.code == 0 and '~ /service/s desc: "first" → "changed"' in r.out, r
    assert reg.tree() == before

    assert "apply this change? [y/N]" in apply_on_terminal(reg, ["-f", str(f)], b"n")[0]
    assert reg.tree() == before
    apply_on_terminal(reg, ["-f", str(f)], b"y")
    assert reg.data("/service/s")["desc"] == "changed"


def test_a_document_typed_on_a_terminal_then_confirmed(reg):
    """`apply -f -` on a terminal says what it waits for; after Ctrl-D it still asks."""
    seed(reg)
    doc = json.loads(reg.run("export").out)
    doc["services"]["s"]["desc"] = "typed"
    _, err = apply_on_terminal(reg, ["-f", "-"], b"y", typed=json.dumps(doc).encode() + b"\n\x04")
    assert "reading the registry document from standard input; end it with Ctrl-D" in err
    assert reg.data("/service/s")["desc"] == "typed"
