"""Fixtures for the integration tests: the real `svcctl` binary against a real ZooKeeper
server started by the CTest fixture (tests/harness/zkserver.py). Each test gets its own
chroot, so tests never see each other's nodes. kazoo is the independent client that
prepares trees and reads back what svcctl wrote."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest
from kazoo.client import KazooClient

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "harness"))
import zkserver  # noqa: E402

SVCCTL = os.environ.get("SVCCTL_BIN", "")
ZK_DIR = os.environ.get("SVCCTL_TEST_ZK_DIR", "")

# A hang in svcctl fails the test instead of blocking the suite.
PROCESS_TIMEOUT = 60


def zk_port():
    with open(os.path.join(ZK_DIR, "state.json")) as f:
        return json.load(f)["port"]


class Result:
    def __init__(self, proc):
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr

    @property
    def json(self):
        return json.loads(self.out)

    def __repr__(self):
        return f"<exit {self.code}\nstdout: {self.out}\nstderr: {self.err}>"


class Registry:
    """One test's chroot: `run` calls svcctl on it, `kz` reads and writes it with kazoo."""

    def __init__(self, port, chroot):
        self.port = port
        self.chroot = chroot
        self.connect = f"127.0.0.1:{port}{chroot}"
        root = KazooClient(hosts=f"127.0.0.1:{port}", timeout=15)
        root.start(timeout=15)
        root.ensure_path(chroot)
        root.stop()
        root.close()
        self.kz = KazooClient(hosts=self.connect, timeout=15)
        self.kz.start(timeout=15)

    def run(self, *args, zk=None, env=None, input=None, timeout=PROCESS_TIMEOUT):
        e = dict(os.environ)
        e.pop("SVCCTL_ZK", None)
        e.pop("SVCCTL_AUTH", None)
        if env:
            e.update(env)
        argv = [SVCCTL, "--zk", zk or self.connect, *args]
        p = subprocess.run(argv, capture_output=True, text=True, env=e, input=input,
                           timeout=timeout)
        return Result(p)

    def ok(self, *args, **kw):
        r = self.run("-o", "json", *args, **kw)
        assert r.code == 0, r
        return r.json if r.out.strip() else None

    def data(self, path):
        raw, _ = self.kz.get(path)
        return json.loads(raw) if raw else None

    def tree(self, path="/"):
        """Every node below path as {path: parsed JSON data or None for empty}."""
        out = {}
        for child in self.kz.get_children(path):
            p = (path.rstrip("/") + "/" + child)
            raw, _ = self.kz.get(p)
            out[p] = json.loads(raw) if raw else None
            out.update(self.tree(p))
        return out

    def close(self):
        self.kz.stop()
        self.kz.close()


@pytest.fixture
def reg(request):
    assert SVCCTL and os.access(SVCCTL, os.X_OK), "SVCCTL_BIN must name the built svcctl"
    name = request.node.name.replace("[", "-").replace("]", "").replace("/", "-")[:60]
    r = Registry(zk_port(), f"/t-{name}-{uuid.uuid4().hex[:8]}")
    yield r
    r.close()


@pytest.fixture
def svcctl_bin():
    return SVCCTL


@pytest.fixture
def port():
    return zk_port()


@pytest.fixture
def own_zk():
    """A ZooKeeper of the test's own, so that it can be stopped and restarted: (dir, state)."""
    d = tempfile.mkdtemp(prefix="svcctl-zk-")
    st = zkserver.start(d)
    yield d, st
    zkserver.stop(d)
    shutil.rmtree(d, ignore_errors=True)
