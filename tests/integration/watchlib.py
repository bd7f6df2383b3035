"""Helpers for tests that run `svcctl watch -o json` and follow its output, hold an address
with `register address --hold`, or cut svcctl off from ZooKeeper with a relay."""
import json
import queue
import signal
import socket
import struct
import subprocess
import threading
import time

from conftest import SVCCTL


class Watch:
    """A running `svcctl -o json watch`; every line is parsed and queued; `state` is the
    registry rebuilt from the events (leaf path -> data)."""

    def __init__(self, connect, *args, after=()):
        self.proc = subprocess.Popen([SVCCTL, "--zk", connect, "-o", "json", *args, "watch", *after],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events = queue.Queue()
        self.seen = []
        self.state = {}
        self.in_resync = False  # a resync began and its "synced" has not come yet
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.events.put(json.loads(line))
        self.events.put(None)

    def next(self, timeout=30):
        e = self.events.get(timeout=timeout)
        assert e is not None, f"watch exited: {self.proc.stderr.read()}"
        self.seen.append(e)
        if e["event"] in ("added", "modified"):
            self.state[e["path"]] = e["data"]
        elif e["event"] == "deleted":
            self.state.pop(e["path"], None)
        elif e["event"] == "resync":
            self.in_resync = True
        elif e["event"] == "synced":
            self.in_resync = False
        return e

    def until_state(self, expected, timeout=60):
        """Consumes events until the view holds every path -> data in `expected` (changes
        to different nodes may be shown in any order)."""
        def holds(_):
            return all(self.state.get(p) == d for p, d in expected.items())
        if not holds(None):
            self.until(holds, timeout=timeout)

    def converge(self, tree, timeout=120):
        """Once writers have stopped, consumes events until the view equals `tree` (a fresh
        full read); fails if it never does. Changes to different nodes are applied in the
        order their reads complete, so no single event marks "everything before is in"."""
        if self.state != tree:
            self.until(lambda e: self.state == tree, timeout=timeout)
        assert self.state == tree

    def settled(self, timeout=120):
        """Waits, if a resync is under way, for its end: a resync reads in its own order,
        so until "synced" an event seen does not mean that everything before it was."""
        if self.in_resync:
            self.until(lambda e: e["event"] == "synced", timeout=timeout)

    def until(self, pred, timeout=60):
        """Consumes events until one matches; returns it."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            assert left > 0, f"no matching event; last: {self.seen[-5:]}"
            e = self.next(timeout=left)
            if pred(e):
                return e

    def stop(self):
        self.proc.terminate()
        code = self.proc.wait(timeout=30)
        self.err = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code


def WatchArgs(connect, *services):
    """`svcctl watch SVC...`."""
    return Watch(connect, after=services)


def leaves(kz, roots=(("/service", 1), ("/address", 2), ("/api", 2), ("/key", 1), ("/acl", 2))):
    """The registry's leaves as {path: parsed data}, read with kazoo."""
    out = {}

    def walk(path, depth, leaf_depth):
        if not kz.exists(path):
            return
        for c in kz.get_children(path):
            p = f"{path}/{c}"
            if depth + 1 == leaf_depth:
                try:
                    raw, _ = kz.get(p)
                except Exception:
                    continue
                try:
                    out[p] = json.loads(raw) if raw else None
                except ValueError:
                    out[p] = raw.decode("utf-8", "replace")
            else:
                walk(p, depth + 1, leaf_depth)

    for root, depth in roots:
        walk(root, 0, depth)
    return out


class Holder:
    def __init__(self, connect, *args):
        self.proc = subprocess.Popen([SVCCTL, "--zk", connect, *args], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = []  # stderr so far, read as it comes
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def said(self, text):
        """How many stderr lines so far contain `text`."""
        return sum(text in line for line in list(self.lines))

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        self.reader.join(timeout=30)
        self.err = "".join(self.lines)
        self.proc.stderr.close()
        return code


class Relay:
    """A TCP relay on loopback that can cut every connection and refuse new ones for a
    while, so that a client's ZooKeeper session expires; or do that to one session only
    (block), telling sessions apart by the ids in ZooKeeper's connect handshake."""

    def __init__(self, target_port, delay=0.0):
        """`delay`: seconds every piece of the server's answers waits before it is passed on."""
        self.target = target_port
        self.delay = delay
        self.upstreams = set()  # server-side sockets
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.conns = []
        self.sessions = []  # session ids, in the order the server first gave them
        self.by_session = {}
        self.blocked = set()
        self.muted = set()  # server-side sockets whose answers are dropped
        self.lock = threading.Lock()
        self.listener = None
        self.stopped = False
        self.up()

    def up(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(16)
        self.listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, s):
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                c.close()
                continue
            threading.Thread(target=self._handshake, args=(c, u), daemon=True).start()

    @staticmethod
    def _packet(sock):
        """One length-prefixed packet of ZooKeeper's protocol, prefix included."""
        def exactly(n):
            b = b""
            while len(b) < n:
                d = sock.recv(n - len(b))
                if not d:
                    raise OSError("closed")
                b += d
            return b
        head = exactly(4)
        return head + exactly(struct.unpack(">i", head)[0])

    def _handshake(self, c, u):
        # ConnectRequest: length, protocol version, last zxid, timeout, session id (0: new).
        # ConnectResponse: length, protocol version, timeout, session id (0: expired).
        try:
            req = self._packet(c)
            asked = struct.unpack(">q", req[20:28])[0] if len(req) >= 28 else 0
            with self.lock:
                refused = asked in self.blocked
            if refused:
                raise OSError("blocked")
            u.sendall(req)
            resp = self._packet(u)
            sid = struct.unpack(">q", resp[12:20])[0] if len(resp) >= 20 else 0
            with self.lock:
                if sid in self.blocked:
                    raise OSError("blocked")
                self.conns += [c, u]
                self.upstreams.add(u)
                if sid:
                    self.by_session.setdefault(sid, []).extend([c, u])
                    if sid not in self.sessions:
                        self.sessions.append(sid)
            c.sendall(resp)
        except OSError:
            for x in (c, u):
                x.close()
            return
        for a, b in ((c, u), (u, c)):
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def block(self, sid):
        """Cuts session `sid`'s connection and refuses its reconnects until unblock()."""
        with self.lock:
            self.blocked.add(sid)
            for x in self.by_session.pop(sid, []):
                try:
                    x.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def unblock(self, sid):
        with self.lock:
            self.blocked.discard(sid)

    def mute(self):
        """From now on, the connections open now carry requests to the server but drop its
        answers (they are applied, and the client never hears): until the client gives up
        on the connection and makes a new one, which is not muted."""
        with self.lock:
            self.muted.update(self.conns[1::2])

    def _pump(self, a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                if a in self.muted:  # server-side sockets only
                    continue
                if self.delay and a in self.upstreams:
                    time.sleep(self.delay)
                b.sendall(d)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        # close() alone does not stop a thread blocked in accept() on Linux: the listener
        # would keep accepting. shutdown() wakes it.
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()
            self.conns = []

    def close(self):
        self.cut()
