#!/usr/bin/env bash
# The main job: installs what is missing, builds svcctl, starts a local single-node
# ZooKeeper on 127.0.0.1 (data under .run/zookeeper, not the system service), seeds a small
# registry, starts three demo providers (two JSON, one Yar answering as PHP's Yar_Server)
# and the gateway, and prints calls to try. Safe to run again: it reuses what is running.
#
#   scripts/demo.sh          # start (or reuse) and seed
#   scripts/demo.sh stop     # stop the gateway, the providers and the local ZooKeeper
#   scripts/demo.sh status
#
# Environment: SVCCTL_DEMO_PORT (ZooKeeper, default 2181), SVCCTL_DEMO_GATEWAY (default
# 127.0.0.1:8080), SVCCTL_DEMO_ADMIN (default 127.0.0.1:9901). Providers: 9101-9103.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
port=${SVCCTL_DEMO_PORT:-2181}
gateway=${SVCCTL_DEMO_GATEWAY:-127.0.0.1:8080}
admin=${SVCCTL_DEMO_ADMIN:-127.0.0.1:9901}
state=.run/zookeeper
py=/usr/bin/python3
zkctl() { "$py" tests/harness/zkserver.py "$@" --dir "$state"; }

# Background processes, each with a pid file under .run/.
running() { [ -f ".run/$1.pid" ] && kill -0 "$(cat ".run/$1.pid")" 2>/dev/null; }
stop_one() {
  if running "$1"; then
    kill "$(cat ".run/$1.pid")" 2>/dev/null || true
    for _ in $(seq 50); do running "$1" || break; sleep 0.1; done
    echo "stopped $1"
  fi
  rm -f ".run/$1.pid"
}
start_one() {  # start_one NAME LOG COMMAND...
  local name=$1 log=$2
  shift 2
  if running "$name"; then echo "$name already running"; return; fi
  setsid nohup "$@" >"$log" 2>&1 < /dev/null &
  echo $! > ".run/$name.pid"
}

case "${1:-start}" in
  stop)
    stop_one gateway
    for p in provider-9101 provider-9102 provider-9103; do stop_one "$p"; done
    zkctl stop && echo "stopped the local ZooKeeper"
    exit 0 ;;
  status)
    for p in gateway provider-9101 provider-9102 provider-9103; do
      running "$p" && echo "$p: running (pid $(cat ".run/$p.pid"))" || echo "$p: stopped"
    done
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

# Demo providers: the test providers (tests/providers/provider.py), two JSON, one Yar.
for p in 9101 9102 9103; do
  kind=json
  [ $p = 9103 ] && kind=yar
  start_one "provider-$p" ".run/provider-$p.log" "$py" tests/providers/provider.py "$kind" "$p"
done

# A small registry to look at and edit: "hello" (JSON, two addresses) and "calc" (Yar).
reg() { "$svcctl" -q -o table register "$@" >/dev/null; }
reg service hello --desc "demo JSON service" --owner demo
reg address hello 127.0.0.1:9101 --dc local
reg address hello 127.0.0.1:9102 --dc local
reg api hello echo --path /echo --timeout-ms 500
reg api hello add --path /add
reg service calc --desc "demo Yar service (PHP Yar_Server style)" --owner demo
reg address calc 127.0.0.1:9103 --dc local
reg api calc add --path /rpc --encoding yar-msgpack
reg api calc fail --path /rpc --encoding yar-msgpack
reg key demo-key --owner demo
reg acl hello demo-key --rate 100 --burst 20

# The gateway.
start_one gateway .run/gateway.log "$svcctl" proxy --listen "$gateway" --admin "$admin" --dc local --id demo \
  --lkg-file .run/registry.lkg
for _ in $(seq 100); do
  curl -sf "http://$admin/-/healthz" >/dev/null 2>&1 && break
  running gateway || { echo "error: the gateway did not start:" >&2; cat .run/gateway.log >&2; exit 1; }
  sleep 0.1
done

cat <<MSG

Ready: ZooKeeper on 127.0.0.1:$port, providers on 9101-9103, the gateway on $gateway
(admin $admin, log .run/gateway.log). Try:

  export SVCCTL_ZK=127.0.0.1:$port PATH=$root/build/cmd:\$PATH
  source $root/completions/svcctl.bash    # Tab completion (bash; zsh and fish: see the README)
  svcctl list
  curl -s -XPOST http://$gateway/hello/add -H 'X-Api-Key: demo-key' -d '{"a": 1, "b": 2}'
  curl -s -XPOST http://$gateway/hello/add -d '{"a": 1, "b": 2}'   # hello has ACLs: 401 without a key
  curl -s -XPOST http://$gateway/calc/add -d '[40, 2]'          # JSON in, Yar+msgpack to the provider
  curl -s -XPOST http://$gateway/calc/fail -d '[]'              # a PHP exception, as a 502
  svcctl call hello echo --via http://$gateway --key demo-key --data '{"hi": "there"}'
  svcctl register address hello 127.0.0.1:9102 --status down   # the next call avoids it
  svcctl stats
  curl -s http://$admin/-/stats
  svcctl watch

Stop everything with: scripts/demo.sh stop
MSG
