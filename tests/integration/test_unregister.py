"""svcctl unregister, and the guard rails around removing or downing providers."""
import subprocess

from conftest import SVCCTL, PROCESS_TIMEOUT


def service_with_two_addresses(reg):
    reg.ok("register", "service", "user")
    reg.ok("register", "address", "user", "10.0.0.1:80")
    reg.ok("register", "address", "user", "10.0.0.2:80")


def test_non_empty_service_is_refused_without_recursive(reg):
    service_with_two_addresses(reg)
    reg.ok("register", "api", "user", "a", "--path", "/a")
    before = reg.tree()
    r = reg.run("unregister", "service", "user")
    assert r.code == 9
    assert "2 addresses, 1 interface and 0 ACLs" in r.err and "--recursive" in r.err
    assert reg.tree() == before


def test_recursive_removes_everything_of_the_service_only(reg):
    service_with_two_addresses(reg)
    reg.ok("register", "api", "user", "a", "--path", "/a")
    reg.ok("register", "key", "k")
    reg.ok("register", "acl", "user", "k")
    reg.ok("register", "service", "other")
    r = reg.ok("unregister", "service", "user", "--recursive")
    assert r["action"] == "deleted"
    assert set(r["removed"]) == {
        "/address/user/10.0.0.1:80", "/address/user/10.0.0.2:80", "/address/user",
        "/api/user/a", "/api/user", "/acl/user/k", "/acl/user", "/service/user"}
    tree = reg.tree()
    assert not any("user" in p for p in tree), tree
    assert "/service/other" in tree and "/key/k" in tree


def test_empty_service_is_removed_with_its_containers(reg):
    reg.ok("register", "service", "user")
    reg.ok("unregister", "service", "user")
    assert not reg.kz.exists("/service/user")
    assert not reg.kz.exists("/address/user")
    assert not reg.kz.exists("/api/user")


def test_last_up_address_guard_on_remove(reg):
    service_with_two_addresses(reg)
    reg.ok("unregister", "address", "user", "10.0.0.1:80")
    r = reg.run("unregister", "address", "user", "10.0.0.2:80")
    assert r.code == 9 and "last up address" in r.err
    assert reg.kz.exists("/address/user/10.0.0.2:80")
    reg.ok("unregister", "address", "user", "10.0.0.2:80", "--force")
    assert reg.kz.get_children("/address/user") == []


def test_last_up_address_guard_on_mark_down(reg):
    service_with_two_addresses(reg)
    reg.ok("register", "address", "user", "10.0.0.1:80", "--status", "down")
    r = reg.run("register", "address", "user", "10.0.0.2:80", "--status", "down")
    assert r.code == 9 and "last up address" in r.err
    assert reg.data("/address/user/10.0.0.2:80")["status"] == "up"
    # Other fields of the last up address can still change.
    reg.ok("register", "address", "user", "10.0.0.2:80", "--weight", "7")
    reg.ok("register", "address", "user", "10.0.0.2:80", "--status", "down", "--force")
    assert reg.data("/address/user/10.0.0.2:80")["status"] == "down"
    # A down address may be removed freely.
    reg.ok("unregister", "address", "user", "10.0.0.1:80")


def test_guard_holds_against_concurrent_writers(reg):
    """Two pipelines each mark a different one of the last two up addresses down at the
    same moment: whatever the interleaving, one address stays up."""
    service_with_two_addresses(reg)
    for _ in range(10):
        procs = [subprocess.Popen([SVCCTL, "--zk", reg.connect, "-q", "register", "address",
                                   "user", hp, "--status", "down"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for hp in ("10.0.0.1:80", "10.0.0.2:80")]
        codes = sorted(p.wait(timeout=PROCESS_TIMEOUT) for p in procs)
        for p in procs:
            p.stdout.close()
            p.stderr.close()
        assert codes == [0, 9], codes
        statuses = [reg.data(f"/address/user/{hp}")["status"] for hp in ("10.0.0.1:80", "10.0.0.2:80")]
        assert sorted(statuses) == ["down", "up"]
        for hp in ("10.0.0.1:80", "10.0.0.2:80"):
            reg.ok("register", "address", "user", hp, "--status", "up")


def test_key_named_by_acl_is_refused_unless_forced(reg):
    reg.ok("register", "service", "a")
    reg.ok("register", "service", "b")
    reg.ok("register", "key", "k")
    reg.ok("register", "acl", "a", "k")
    reg.ok("register", "acl", "b", "k")
    r = reg.run("unregister", "key", "k")
    assert r.code == 9 and "a, b" in r.err
    assert reg.kz.exists("/key/k")
    r = reg.ok("unregister", "key", "k", "--force")
    assert set(r["removed"]) == {"/acl/a/k", "/acl/b/k", "/key/k"}
    assert not reg.kz.exists("/acl/a/k") and not reg.kz.exists("/key/k")


def test_unregister_api_and_acl(reg):
    reg.ok("register", "service", "s")
    reg.ok("register", "api", "s", "i", "--path", "/i")
    reg.ok("register", "key", "k")
    reg.ok("register", "acl", "s", "k")
    assert reg.ok("unregister", "api", "s", "i")["removed"] == ["/api/s/i"]
    assert reg.ok("unregister", "acl", "s", "k")["removed"] == ["/acl/s/k"]
    assert reg.ok("unregister", "key", "k")["removed"] == ["/key/k"]


def test_not_found_is_exit_3(reg):
    reg.ok("register", "service", "s")
    cases = [
        (["unregister", "service", "nope"], 'service "nope" not found'),
        (["unregister", "address", "s", "10.9.9.9:1"], "address 10.9.9.9:1 of service \"s\" not found"),
        (["unregister", "api", "s", "nope"], 'interface "nope" of service "s" not found'),
        (["unregister", "key", "nope"], 'key "nope" not found'),
        (["unregister", "acl", "s", "nope"], 'no ACL for key "nope" on service "s"'),
    ]
    for argv, msg in cases:
        r = reg.run(*argv)
        assert r.code == 3, (argv, r)
        assert msg in r.err, (argv, r)
        assert r.out == ""


def test_table_output_of_a_removal(reg):
    reg.ok("register", "service", "s")
    r = reg.run("-o", "table", "unregister", "service", "s")
    assert r.code == 0
    assert r.out == "deleted /service/s (3 nodes removed)\n"
