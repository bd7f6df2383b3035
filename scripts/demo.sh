#!/usr/bin/env bash
# The main job: installs what is missing, builds svcctl, starts a local single-node
# ZooKeeper on 127.0.0.1 (data under .run/zookeeper, not the system service), and seeds a
# small registry to edit with svcctl. Safe to run again: it reuses what is running.
#
#   scripts/demo.sh          # start (or reuse) and seed
#   scripts/demo.sh stop     # stop the local ZooKeeper
#   scripts/demo.sh status
#
# Environment: SVCCTL_DEMO_PORT (default 2181).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
port=${SVCCTL_DEMO_PORT:-2181}
state=.run/zookeeper
py=/usr/bin/python3
zkctl() { "$py" tests/harness/zkserver.py "$@" --dir "$state"; }

case "${1:-start}" in
  stop)
    zkctl stop && echo "stopped the local ZooKeeper"
    exit 0 ;;
  status)
    zkctl status
    exit $? ;;
  start) ;;
  *) echo "usage: scripts/demo.sh [start|stop|status]" >&2; exit 2 ;;
esac

scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target svcctl
svcctl=$root/build/cmd/svcctl

mkdir -p .run
if zkctl status >/dev/null 2>&1; then
  echo "ZooKeeper already running (.run/zookeeper)"
else
  if "$py" -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$port))!=0)"; then
    echo "error: 127.0.0.1:$port is in use by something else; set SVCCTL_DEMO_PORT" >&2
    exit 1
  fi
  zkctl start --port "$port" >/dev/null
  echo "started ZooKeeper on 127.0.0.1:$port (data and log in .run/zookeeper)"
fi
export SVCCTL_ZK=127.0.0.1:$port

# A small registry to look at and edit.
"$svcctl" -q -o table register service hello --desc "demo greeting service" --owner demo
"$svcctl" -q -o table register api hello greet --path /greet --encoding json --timeout-ms 500
"$svcctl" -q -o table register api hello greetYar --path /rpc --encoding yar-msgpack --method greet
"$svcctl" -q -o table register key demo-key --owner demo
"$svcctl" -q -o table register acl hello demo-key --rate 100 --burst 20

cat <<MSG

Ready. Try:

  export SVCCTL_ZK=127.0.0.1:$port PATH=$root/build/cmd:\$PATH
  svcctl list
  svcctl register address hello 127.0.0.1:9101 --dc local --weight 100
  svcctl list hello
  svcctl -o json list --keys

Stop the local ZooKeeper with: scripts/demo.sh stop
MSG
