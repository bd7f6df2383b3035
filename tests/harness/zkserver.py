#!/usr/bin/env python3
"""Start and stop a real, standalone ZooKeeper server (Debian's `zookeeper` package) on a
free loopback port, with its own config and data folder. Used by the CTest fixture, the
demo script and the benchmarks.

  zkserver.py start --dir DIR [--port N]   # prints the port; DIR/state.json holds port and pid
  zkserver.py stop --dir DIR
  zkserver.py status --dir DIR
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

ZK_SCRIPT = "/usr/share/zookeeper/bin/zkServer.sh"

CONFIG = """\
tickTime=500
initLimit=10
syncLimit=5
# Sessions may be as short as 2 ticks (1 s), which the expiry tests rely on.
minSessionTimeout=1000
maxSessionTimeout=60000
dataDir={data}
clientPort={port}
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,mntr,stat,cons,dump
forceSync={force_sync}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def four_letter(port, cmd, timeout=1.0):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(cmd.encode())
            out = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
            return out.decode(errors="replace")
    except OSError:
        return ""


def alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # A zombie is not alive: reap it if it is our child, else read its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def start(d, port=0, force_sync="no", heap="256m", timeout=60.0, ensemble=None, myid=None):
    """Starts one server. With `ensemble` (lines "server.N=host:peer:election") and
    `myid`, it is that member of an ensemble, and is ready once it is leader or follower."""
    d = os.path.abspath(d)
    os.makedirs(os.path.join(d, "data"), exist_ok=True)
    port = port or free_port()
    conf = os.path.join(d, "zoo.cfg")
    with open(conf, "w") as f:
        f.write(CONFIG.format(data=os.path.join(d, "data"), port=port, force_sync=force_sync))
        if ensemble:
            f.write("\n".join(ensemble) + "\n")
    if myid is not None:
        with open(os.path.join(d, "data", "myid"), "w") as f:
            f.write(f"{myid}\n")
    env = dict(os.environ)
    env.pop("ZOO_NOEXEC", None)
    env.update({"JMXDISABLE": "true", "SERVER_JVMFLAGS": f"-Xms{heap} -Xmx{heap}",
                "ZOO_LOG_DIR": d})
    log = open(os.path.join(d, "server.log"), "ab")
    # start-foreground execs java, so this pid is the server's; it gets its own session so
    # that the harness's process group and terminal signals do not reach it.
    proc = subprocess.Popen([ZK_SCRIPT, "start-foreground", conf], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    state = {"port": port, "pid": proc.pid, "dir": d, "connect": f"127.0.0.1:{port}",
             "ensemble": ensemble, "myid": myid}
    with open(os.path.join(d, "state.json"), "w") as f:
        json.dump(state, f)
    if ensemble:
        return state  # members become ready together: see start_ensemble
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"zookeeper exited early (code {proc.returncode}); see {d}/server.log")
        if four_letter(port, "ruok") == "imok" and "Mode:" in four_letter(port, "srvr"):
            return state
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"zookeeper did not become ready in {timeout:.0f} s; see {d}/server.log")


def mode(port):
    """"leader", "follower", "standalone", or "" when not serving."""
    for line in four_letter(port, "srvr").splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return ""


def start_ensemble(d, n=3, timeout=90.0, heap="256m"):
    """Starts an n-member ensemble on loopback, members in d/zk1..zkN; returns their states
    once every member is leader or follower. The connect string lists them all."""
    ports = [(free_port(), free_port(), free_port()) for _ in range(n)]
    lines = [f"server.{i + 1}=127.0.0.1:{p[1]}:{p[2]}" for i, p in enumerate(ports)]
    members = [start(os.path.join(d, f"zk{i + 1}"), ports[i][0], heap=heap, ensemble=lines, myid=i + 1)
               for i in range(n)]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if all(mode(m["port"]) in ("leader", "follower") for m in members):
            connect = ",".join(m["connect"] for m in members)
            for m in members:
                m["ensemble_connect"] = connect
            return members
        time.sleep(0.3)
    for m in members:
        stop(m["dir"])
    raise SystemExit(f"the ensemble did not form in {timeout:.0f} s; see {d}/zk*/server.log")


def restart(state, timeout=60.0):
    """Starts a stopped server (or ensemble member) again with its old config and data."""
    d = state["dir"]
    return start(d, state["port"], ensemble=state.get("ensemble"), myid=state.get("myid"),
                 timeout=timeout)


def rebuild(state, timeout=60.0):
    """Starts a stopped standalone server again on its port with an empty data folder: what a
    rebuilt ensemble, or one restored from an older snapshot, is to its clients (its zxids
    start over, below those they have seen)."""
    shutil.rmtree(os.path.join(state["dir"], "data"), ignore_errors=True)
    return restart(state, timeout=timeout)


def stop(d, timeout=20.0):
    path = os.path.join(os.path.abspath(d), "state.json")
    try:
        with open(path) as f:
            state = json.load(f)
    except OSError:
        return False
    pid = state["pid"]
    if alive(pid):
        os.kill(pid, signal.SIGTERM)
        end = time.monotonic() + timeout
        while alive(pid) and time.monotonic() < end:
            time.sleep(0.1)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    os.unlink(path)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["start", "stop", "status"])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--force-sync", default="no", choices=["yes", "no"])
    ap.add_argument("--heap", default="256m")
    a = ap.parse_args()
    if a.action == "start":
        st = start(a.dir, a.port, a.force_sync, a.heap)
        print(st["port"])
    elif a.action == "stop":
        stop(a.dir)
    else:
        try:
            with open(os.path.join(a.dir, "state.json")) as f:
                st = json.load(f)
        except OSError:
            sys.exit(1)
        ok = alive(st["pid"]) and four_letter(st["port"], "ruok") == "imok"
        print(json.dumps(dict(st, running=ok)))
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
