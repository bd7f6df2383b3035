"""The history of svcctl's writes (`svcctl history`, `svcctl revert`) against a real
ZooKeeper: each write's record before and after equal to what kazoo reads, written in the
write's own transaction (a refused write records nothing), who and the command line with
the password hidden, writers of other identities adding to the same history, trimming,
and reverts that restore the exact bytes or refuse when the registry moved on."""
import getpass
import json
import socket

from kazoo.security import make_digest_acl_credential


def records(reg, *args):
    return reg.ok("history", *args)


def node(reg, path):
    """The node's data as the history keeps it: its JSON, or None when it does not exist."""
    if not reg.kz.exists(path):
        return None
    raw, _ = reg.kz.get(path)
    return json.loads(raw)


def test_each_write_is_recorded_as_kazoo_reads_it(reg):
    steps = [
        (["register", "service", "s", "--desc", "first"], ["/service/s"]),
        (["register", "address", "s", "127.0.0.1:9101", "--provider-version", "v1"], ["/address/s/127.0.0.1:9101"]),
        (["register", "address", "s", "127.0.0.1:9102", "--provider-version", "v2"], ["/address/s/127.0.0.1:9102"]),
        (["register", "api", "s", "echo", "--path", "/echo"], ["/api/s/echo"]),
        (["register", "key", "k1"], ["/key/k1"]),
        (["register", "acl", "s", "k1", "--rate", "5"], ["/acl/s/k1"]),
        (["register", "address", "s", "127.0.0.1:9101", "--weight", "7"], ["/address/s/127.0.0.1:9101"]),
        (["split", "s", "v1=90", "v2=10"], ["/service/s"]),
        (["drain", "s", "127.0.0.1:9102", "--timeout-ms", "2000"], ["/address/s/127.0.0.1:9102"]),
        (["undrain", "s", "127.0.0.1:9102"], ["/address/s/127.0.0.1:9102"]),
        (["unregister", "acl", "s", "k1"], ["/acl/s/k1"]),
        (["unregister", "key", "k1"], ["/key/k1"]),
        (["unregister", "api", "s", "echo"], ["/api/s/echo"]),
    ]
    for argv, paths in steps:
        before = {p: node(reg, p) for p in paths}
        reg.ok(*argv)
        after = {p: node(reg, p) for p in paths}
        last = records(reg)[-1]
        assert last["command"].startswith("svcctl --zk ") and " ".join(argv[:2]) in last["command"], last
        got = {c["path"]: c for c in last["changes"]}
        assert set(got) == set(paths), (argv, last)
        for p in paths:
            assert got[p]["before"] == before[p], (argv, p)
            assert got[p]["after"] == after[p], (argv, p)
            if after[p] is not None:
                assert got[p]["version"] == reg.kz.get(p)[1].version
    everything = records(reg)
    assert [r["id"] for r in everything] == sorted(r["id"] for r in everything)
    assert len(everything) == len(steps)
    assert all(r["who"] == f"{getpass.getuser()}@{socket.gethostname()}" for r in everything)

    # apply: one record for the whole plan, each node's before and after
    doc = reg.ok("export")
    doc["services"]["s"]["addresses"]["127.0.0.1:9101"]["weight"] = 3
    doc["services"]["s"]["addresses"]["127.0.0.1:9103"] = {"status": "up"}
    before = node(reg, "/address/s/127.0.0.1:9101")
    reg.ok("apply", "-f", "-", "--yes", input=json.dumps(doc))
    last = records(reg)[-1]
    got = {c["path"]: c for c in last["changes"]}
    assert set(got) == {"/address/s/127.0.0.1:9101", "/address/s/127.0.0.1:9103"}
    assert got["/address/s/127.0.0.1:9101"]["before"] == before
    assert got["/address/s/127.0.0.1:9101"]["after"] == node(reg, "/address/s/127.0.0.1:9101")
    assert got["/address/s/127.0.0.1:9103"]["before"] is None
    assert got["/address/s/127.0.0.1:9103"]["after"] == node(reg, "/address/s/127.0.0.1:9103")

    # the record and the write are one transaction
    rec_stat = reg.kz.get(f"/history/r-{last['id']:010d}")[1]
    assert rec_stat.czxid == reg.kz.get("/address/s/127.0.0.1:9101")[1].mzxid

    # filters: by service, by time, the newest N
    reg.ok("register", "service", "other")
    assert [r["services"] for r in records(reg, "other")] == [["other"]]
    assert all("s" in r["services"] for r in records(reg, "s"))
    assert len(records(reg, "--limit", "2")) == 2
    assert len(records(reg, "--since", "1h")) == len(records(reg))
    assert reg.run("history", "--since", "yesterday").code == 2
    assert reg.run("history", "bad name").code == 2


def test_a_refused_write_records_nothing(reg):
    reg.ok("register", "service", "s")
    reg.ok("register", "address", "s", "127.0.0.1:9101")
    count = len(records(reg))
    # a version conflict, the last-up guard, a missing service, nothing to change
    assert reg.run("register", "address", "s", "127.0.0.1:9101", "--weight", "3", "--if-version", "9").code == 4
    assert reg.run("register", "address", "s", "127.0.0.1:9101", "--status", "down").code == 9
    assert reg.run("register", "address", "nosuch", "127.0.0.1:9101").code == 3
    reg.ok("register", "address", "s", "127.0.0.1:9101")
    assert len(records(reg)) == count


def test_who_and_the_command_line_hide_the_password_and_other_identities_add_to_the_history(reg):
    for root in ("/service", "/address", "/api"):
        reg.kz.ensure_path(root)  # open to all: each identity registers its own services
    alice = ["--auth", "alice:s3cret"]
    reg.ok(*alice, "register", "service", "s", "--desc", "it's mine")
    # bob is another identity: /history lets every writer add and trim, the records stay theirs
    reg.ok("--auth=bob:hunter2", "register", "service", "t")
    got = records(reg)
    assert [r["who"] for r in got] == ["alice", "bob"]
    assert "s3cret" not in got[0]["command"] and "alice:***" in got[0]["command"]
    assert "'it'\\''s mine'" in got[0]["command"]  # as a shell would take it back
    assert "hunter2" not in got[1]["command"] and "--auth=bob:***" in got[1]["command"]
    # a record cannot be changed by another identity
    from kazoo.exceptions import NoAuthError
    reg.kz.add_auth("digest", "mallory:x")
    try:
        reg.kz.set(f"/history/r-{got[0]['id']:010d}", b"{}")
        raise AssertionError("a record was changed by another identity")
    except NoAuthError:
        pass
    # the server hides digests from other identities: read the ACL as alice
    from test_auth import acls_as
    assert acls_as(reg, "alice:s3cret", "/history") == sorted([
        ("world", "anyone", 1 | 4 | 8),  # read, create, delete
        ("digest", make_digest_acl_credential("alice", "s3cret"), 31)])


def test_revert_restores_the_exact_data_and_refuses_when_the_registry_moved(reg):
    reg.ok("register", "service", "s")
    reg.ok("register", "address", "s", "127.0.0.1:9101", "--weight", "5", "--dc", "a")
    reg.ok("register", "address", "s", "127.0.0.1:9102")
    raw_before, _ = reg.kz.get("/address/s/127.0.0.1:9101")
    reg.ok("register", "address", "s", "127.0.0.1:9101", "--weight", "8", "--tags", "x,y")
    changed = records(reg)[-1]["id"]

    out = reg.ok("revert", str(changed), "--dry-run")
    assert out["applied"] is False and out["record"] == changed
    assert [s["action"] for s in out["steps"]] == ["update"]
    assert reg.kz.get("/address/s/127.0.0.1:9101")[0] != raw_before
    assert reg.run("revert", str(changed)).code == 0  # not a terminal, no --yes: the plan only
    assert reg.kz.get("/address/s/127.0.0.1:9101")[0] != raw_before

    table = reg.run("-o", "table", "revert", str(changed), "--yes")
    assert table.code == 0, table
    assert f"reverting #{changed}" in table.out and "~ /address/s/127.0.0.1:9101" in table.out
    assert reg.kz.get("/address/s/127.0.0.1:9101")[0] == raw_before
    undo = records(reg)[-1]
    assert undo["command"].endswith(f"revert {changed} --yes")

    # the record now describes a state that is gone
    r = reg.run("revert", str(changed), "--yes")
    assert r.code == 4, r
    assert "/address/s/127.0.0.1:9101 is at version" in r.err
    assert reg.kz.get("/address/s/127.0.0.1:9101")[0] == raw_before
    # the revert of the revert is the change again
    reg.ok("revert", str(undo["id"]), "--yes")
    assert node(reg, "/address/s/127.0.0.1:9101")["weight"] == 8

    # a removed service comes back whole
    snapshot = reg.tree("/address")
    snapshot.update(reg.tree("/service"))
    reg.ok("unregister", "service", "s", "--recursive")
    assert not reg.kz.exists("/service/s")
    reg.ok("revert", str(records(reg)[-1]["id"]), "--yes")
    again = reg.tree("/address")
    again.update(reg.tree("/service"))
    assert again == snapshot

    assert reg.run("revert", "999").code == 3
    assert reg.run("revert", "abc").code == 2


def test_revert_keeps_the_safety_of_apply(reg):
    reg.ok("register", "service", "s")
    reg.ok("register", "address", "s", "127.0.0.1:9101")
    created = records(reg)[-1]["id"]
    # undoing the only address's creation leaves the service with none up
    r = reg.run("revert", str(created), "--yes")
    assert r.code == 9, r
    assert reg.kz.exists("/address/s/127.0.0.1:9101")
    reg.ok("revert", str(created), "--yes", "--force")
    assert not reg.kz.exists("/address/s/127.0.0.1:9101")


def test_the_oldest_records_are_trimmed(reg):
    reg.ok("history", "--set-keep", "5")
    assert json.loads(reg.kz.get("/history")[0]) == {"keep": 5}
    reg.ok("register", "service", "s")
    for w in range(1, 12):
        reg.ok("register", "address", "s", "127.0.0.1:9101", "--weight", str(w))
    got = records(reg)
    assert 5 <= len(got) <= 6
    assert got[-1]["changes"][0]["after"]["weight"] == 11
    assert len(reg.kz.get_children("/history")) == len(got)
    assert reg.run("history", "--set-keep", "0").code == 2
