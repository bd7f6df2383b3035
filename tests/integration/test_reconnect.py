"""A cache that reconnects within its session reads only what changed: the watches the
client library sets again bring every change made while it was cut off, and the registry
is not read again node by node (a read storm for the ensemble when every gateway
reconnects after a leader change)."""
import json
import os
import sys
import time

from kazoo.client import KazooClient

from watchlib import Relay, Watch, leaves

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "harness"))
import zkserver  # noqa: E402

NODES = 300


def packets_received(port):
    """What the server has received, in all (requests and pings of every client)."""
    for line in zkserver.four_letter(port, "mntr").splitlines():
        key, _, value = line.partition("\t")
        if key == "zk_packets_received":
            return int(value)
    raise AssertionError("no zk_packets_received in mntr")


def test_changes_while_disconnected_are_seen_without_reading_everything(own_zk):
    _, st = own_zk
    kz = KazooClient(hosts=f"127.0.0.1:{st['port']}", timeout=15)
    kz.start(timeout=30)
    expected = {}
    kz.ensure_path("/address/s")
    kz.create("/service/s", b'{"status":"up"}', makepath=True)
    tx = kz.transaction()
    expected["/service/s"] = {"status": "up"}
    for i in range(NODES):
        p = f"/address/s/10.0.{i // 250}.{i % 250}:80"
        tx.create(p, json.dumps({"weight": i}).encode())
        expected[p] = {"weight": i}
    tx.commit()
    relay = Relay(st["port"])
    w = Watch(f"127.0.0.1:{relay.port}", "--zk-session-timeout", "20000")
    try:
        w.converge(expected)
        relay.cut()
        # While it is cut off: deletes, creates, changes, and a service's /service node.
        paths = sorted(p for p in expected if p.startswith("/address/"))
        for p in paths[:10]:
            kz.delete(p)
            del expected[p]
        for p in paths[10:20]:
            kz.set(p, b'{"weight":999}')
            expected[p] = {"weight": 999}
        for i in range(10):
            p = f"/address/s/10.9.9.{i}:80"
            kz.create(p, b'{"weight":7}')
            expected[p] = {"weight": 7}
        kz.create("/service/t", b'{"status":"down"}')
        expected["/service/t"] = {"status": "down"}
        time.sleep(1)
        before = packets_received(st["port"])
        relay.up()
        e = w.until(lambda e: e["event"] == "resync", timeout=60)
        assert e["reason"] == "reconnected"  # the same session: not a new one
        w.settled()
        w.converge(expected, timeout=60)
        time.sleep(0.5)  # reads the reconnect caused, if any were still under way
        received = packets_received(st["port"]) - before
        print(f"packets received for the reconnect: {received}")
        # The changes (31 nodes, their listings), the roots' listings and pings: far
        # fewer than one read per node.
        assert received < NODES // 3, f"{received} packets for a reconnect of a {NODES}-node registry"
        assert w.state == leaves(kz)
    finally:
        assert w.stop() == 0
        relay.close()
        kz.stop()
