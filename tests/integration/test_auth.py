"""--auth: nodes carry world-read + creator-all ACLs; other identities cannot write (exit 6).

ZooKeeper shows a digest identity's hash only to clients with ADMIN permission on the node
(others see "user:x"), so ACLs are read back by a kazoo client holding the same identity."""

from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import make_digest_acl_credential

import pytest


def acls_as(reg, user_password, path):
    kz = KazooClient(hosts=reg.connect, timeout=15, auth_data=[("digest", user_password)])
    kz.start(timeout=15)
    try:
        acls, _ = kz.get_acls(path)
        return sorted((a.id.scheme, a.id.id, a.perms) for a in acls)
    finally:
        kz.stop()
        kz.close()


def test_nodes_created_with_auth_carry_acl(reg):
    reg.ok("--auth", "alice:secret", "register", "service", "user")
    reg.ok("--auth", "alice:secret", "register", "address", "user", "10.0.0.1:80")
    expected_id = make_digest_acl_credential("alice", "secret")
    for path in ("/service", "/service/user", "/address/user", "/address/user/10.0.0.1:80"):
        got = acls_as(reg, "alice:secret", path)
        assert got == sorted([("world", "anyone", 1), ("digest", expected_id, 31)]), (path, got)


def test_other_identities_cannot_write(reg):
    reg.ok("--auth", "alice:secret", "register", "service", "user")
    reg.ok("--auth", "alice:secret", "register", "address", "user", "10.0.0.1:80")
    reg.ok("--auth", "alice:secret", "register", "address", "user", "10.0.0.2:80")
    before = reg.tree()
    for auth in ([], ["--auth", "bob:secret"], ["--auth", "alice:wrong"]):
        for argv in (["register", "service", "user", "--desc", "x"],
                     ["register", "service", "other"],
                     ["register", "address", "user", "10.0.0.1:80", "--weight", "1"],
                     ["unregister", "address", "user", "10.0.0.1:80"],
                     ["unregister", "service", "user", "--recursive"]):
            r = reg.run(*auth, *argv)
            assert r.code == 6, (auth, argv, r)
            assert "permission denied" in r.err, r
    assert reg.tree() == before
    # kazoo, unauthenticated, is refused too; reading stays open to everyone.
    with pytest.raises(NoAuthError):
        reg.kz.set("/service/user", b"{}")
    assert reg.ok("list")["services"][0]["addresses_up"] == 2
    # The owner still can.
    reg.ok("--auth", "alice:secret", "register", "service", "user", "--desc", "mine")
    assert reg.data("/service/user")["desc"] == "mine"


def test_auth_from_environment(reg):
    r = reg.run("-o", "json", "register", "service", "user", env={"SVCCTL_AUTH": "carol:pw"})
    assert r.code == 0, r
    assert ("digest", make_digest_acl_credential("carol", "pw"), 31) in acls_as(reg, "carol:pw", "/service/user")
    r = reg.run("register", "service", "user", "--desc", "x")
    assert r.code == 6


def test_admin_identity_may_change_what_another_created(reg):
    admin_id = make_digest_acl_credential("admin", "root-pw")
    reg.ok("--auth", "alice:secret", "--admin-id", admin_id, "register", "service", "user")
    reg.ok("--auth", "alice:secret", "--admin-id", admin_id, "register", "address", "user", "10.0.0.1:80")
    reg.ok("--auth", "alice:secret", "--admin-id", admin_id, "register", "address", "user", "10.0.0.2:80")
    got = acls_as(reg, "alice:secret", "/address/user/10.0.0.1:80")
    assert got == sorted([("world", "anyone", 1), ("digest", make_digest_acl_credential("alice", "secret"), 31),
                          ("digest", admin_id, 31)]), got
    # The admin may change and remove alice's nodes; bob still may not.
    assert reg.run("--auth", "bob:pw", "unregister", "address", "user", "10.0.0.2:80").code == 6
    reg.ok("--auth", "admin:root-pw", "register", "address", "user", "10.0.0.1:80", "--weight", "7")
    assert reg.data("/address/user/10.0.0.1:80")["weight"] == 7
    reg.ok("--auth", "admin:root-pw", "unregister", "address", "user", "10.0.0.2:80")
    assert reg.kz.exists("/address/user/10.0.0.2:80") is None


def test_bad_admin_id_is_a_usage_error(reg):
    for args in (["--auth", "alice:secret", "--admin-id", "admin:root-pw"],
                 ["--auth", "alice:secret", "--admin-id", ":" + "A" * 27 + "="],
                 ["--admin-id", make_digest_acl_credential("admin", "pw")]):
        r = reg.run(*args, "register", "service", "user")
        assert r.code == 2 and "--admin-id" in r.err, (args, r)
    assert reg.kz.exists("/service/user") is None


def test_gateway_reads_a_protected_registry_without_credentials(reg):
    """The gateway needs read access only: routing and key decisions from a registry that
    only alice may write."""
    from gatewaylib import Proxy, start_provider, stop_process
    p, port = start_provider("json")
    alice = ["--auth", "alice:secret"]
    reg.ok(*alice, "register", "service", "s")
    reg.ok(*alice, "register", "address", "s", f"127.0.0.1:{port}")
    reg.ok(*alice, "register", "api", "s", "echo", "--path", "/echo")
    reg.ok(*alice, "register", "key", "k1")
    reg.ok(*alice, "register", "acl", "s", "k1")
    gw = Proxy(reg)
    try:
        assert gw.call("s", "echo", {"x": 1}, {"X-Api-Key": "k1"}) [:1] == (200,)
        assert gw.call("s", "echo", {"x": 1})[0] == 401
        with pytest.raises(NoAuthError):
            reg.kz.delete("/acl/s/k1")
    finally:
        gw.stop()
        stop_process(p)
