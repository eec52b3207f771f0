#!/usr/bin/env bash
# Shared health decided by quorum: how fast three nodes agree that a target died, and what the
# health exchange writes into etcd.
#
#   bench/quorum.sh [rounds, default 10] [targets, default 1000] [window seconds, default 60]
#   INTERVALS="1s 100ms" LEASE_TTL=10s bench/quorum.sh   (the defaults; INTERVALS= skips part 1)
#
# 1. Failover convergence, for each check interval of INTERVALS (rise 2, fall 2): a failover
#    name over two data centers whose endpoints are HTTP servers on 127.0.41.1 and 127.0.42.1
#    (served by bench/quorum.py itself, so that stopping and starting one is instant). Three
#    nodes (health.quorum: majority, one etcd) and one node in file mode (the peer) answer the
#    name at once. Each round stops the primary's server at a random phase of the probes and
#    times the first answer without it on each node (DNS polled every ~2 ms), then starts it
#    again and times the first answer with it; a half-round ends when every node's own view
#    has turned too. Every node's events say when its own view and its verdict changed.
# 2. etcd's load: TARGETS endpoints on 127.60.x.y in data centers of 100, all checked by one
#    `tcp` check every second (a listener per address, bench/quorum.py targets), probed by
#    three nodes and by the peer in file mode. Once every node sees every target up: a steady
#    window, then a storm window where a tenth of the targets go down and up every 5 s. etcd's
#    revision (`etcdctl endpoint status -w json`), its metrics (puts, deletes, WAL fsyncs, lease
#    keep-alives received) and every process's CPU time are read around each window.
#
# Release build; etcd's data on /tmp; every address is in 127.0.0.0/8 (nodes on 127.0.0.10-13,
# each with its own ports and state_dir). Needs etcd and etcdctl (apt-get install etcd-server
# etcd-client) and python3 (standard library only).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
rounds=${1:-10}
targets=${2:-1000}
window=${3:-60}
intervals=${INTERVALS-1s 100ms}
lease_ttl=${LEASE_TTL:-10s}
for tool in etcd etcdctl python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install etcd-server etcd-client python3)" >&2; exit 2; }
done
(cd "$root" && cargo build --release --quiet)
bin="$root/target/release/meridian"
py() { python3 "$here/quorum.py" "$@"; }
work=$(mktemp -d /tmp/meridian-bench.XXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/results"
export ETCDCTL_API=3 PYTHONDONTWRITEBYTECODE=1   # quorum.py imports cluster.py: no __pycache__ in bench/

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
etcd_url="http://127.0.0.1:$(free_port)"
etcd_peer="http://127.0.0.1:$(free_port)"
prefix=/bench/
head -c 24 /dev/urandom | base64 > "$work/admin.token"

# A single-member etcd on a fresh data directory.
start_etcd() {
  rm -rf "$work/etcd"
  etcd --name=bench --data-dir="$work/etcd" \
    --listen-client-urls="$etcd_url" --advertise-client-urls="$etcd_url" \
    --listen-peer-urls="$etcd_peer" --initial-advertise-peer-urls="$etcd_peer" \
    --initial-cluster="bench=$etcd_peer" --log-level=error >>"$work/etcd.log" 2>&1 &
  etcd_pid=$!
  until etcdctl --endpoints="$etcd_url" endpoint health >/dev/null 2>&1; do
    kill -0 "$etcd_pid" 2>/dev/null || { echo "etcd exited:" >&2; tail "$work/etcd.log" >&2; exit 1; }
    sleep 0.1
  done
}
stop_etcd() { kill "$etcd_pid"; wait "$etcd_pid" 2>/dev/null || true; }

# configure DIR KIND ARGS...: the shared configuration (bench/quorum.py config), pushed into
# etcd, and the node files of DIR: ns1..ns3 in cluster mode, `single` in file mode.
configure() {
  local dir=$1
  shift
  py config "$dir/cfg" "$@"
  local common="log: { level: warn }
admin:
  tokens: [{ name: bench, role: admin, token_file: $work/admin.token }]
state_dir: state"
  local n
  for n in ns1 ns2 ns3; do
    mkdir -p "$dir/$n"
    cat > "$dir/$n/meridian.yaml" <<EOC
$common
health: { quorum: majority }
cluster:
  node: $n
  etcd: { endpoints: ["$etcd_url"], prefix: $prefix, lease_ttl: $lease_ttl }
EOC
  done
  mkdir -p "$dir/single"
  { echo "$common"; echo "zones_dir: $dir/cfg/zones"; cat "$dir/cfg/shared.yaml"; } > "$dir/single/meridian.yaml"
  { sed -n '/^cluster:/,$p' "$dir/ns1/meridian.yaml"; echo "zones_dir: $dir/cfg/zones"; cat "$dir/cfg/shared.yaml"; } > "$dir/cfg/push.yaml"
  "$bin" cluster push --config "$dir/cfg/push.yaml" >/dev/null
}

# start_node DIR ADDRESS: `meridian serve` in DIR on free ports of ADDRESS, until its ready file
# appears. Sets node_pid, node_dns and node_api.
start_node() {
  local dir=$1
  rm -f "$dir/ready"
  "$bin" serve --config "$dir/meridian.yaml" --listen "$2:0" --admin-listen "$2:0" \
    --ready-file "$dir/ready" >>"$dir/log" 2>&1 &
  node_pid=$!
  until [ -s "$dir/ready" ]; do
    kill -0 "$node_pid" 2>/dev/null || { echo "meridian in $dir exited:" >&2; tail "$dir/log" >&2; exit 1; }
    sleep 0.01
  done
  node_dns=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["dns"][0])' "$dir/ready")
  node_api=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["admin"])' "$dir/ready")
}

# start_all DIR: the peer on 127.0.0.10, ns1..ns3 on 127.0.0.11..13. Sets pids, dns, apis.
declare -A pids dns apis
start_all() {
  local i=10 n
  for n in single ns1 ns2 ns3; do
    start_node "$1/$n" "127.0.0.$i"
    pids[$n]=$node_pid
    dns[$n]=$node_dns
    apis[$n]=$node_api
    i=$((i + 1))
  done
}
stop_all() {
  local n
  for n in single ns1 ns2 ns3; do kill -TERM "${pids[$n]}"; done
  for n in single ns1 ns2 ns3; do wait "${pids[$n]}" 2>/dev/null || true; done
}

t_start=$(date +%s)

# === 1. failover convergence ===
vip_port=$(free_port)
k=0
for interval in $intervals; do
  k=$((k + 1))
  dir="$work/failover-$interval"
  start_etcd
  configure "$dir" failover --vip-port "$vip_port" --interval "$interval"
  start_all "$dir"
  echo "failover, checks every $interval, $rounds rounds: 1 node in file mode and 3 by majority" >&2
  py failover "$rounds" "$work/results/failover-$k.json" \
    --vip-port "$vip_port" --interval "$interval" --token "$work/admin.token" --etcd "$etcd_url" --prefix "$prefix" \
    --single "single=${dns[single]}=${apis[single]}" \
    --cluster "ns1=${dns[ns1]}=${apis[ns1]},ns2=${dns[ns2]}=${apis[ns2]},ns3=${dns[ns3]}=${apis[ns3]}"
  stop_all
  stop_etcd
done

# === 2. etcd's load with many targets ===
dir="$work/load"
target_port=$(free_port)
start_etcd
configure "$dir" many --port "$target_port" --targets "$targets"
python3 "$here/quorum.py" targets "$target_port" "$targets" $((targets / 10)) &
targets_pid=$!
last=$(python3 -c "import sys; sys.path.insert(0, '$here'); import quorum; print(quorum.target_address($targets - 1))")
until python3 -c "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()" "$last" "$target_port" 2>/dev/null; do
  kill -0 "$targets_pid" 2>/dev/null || { echo "the targets exited" >&2; exit 1; }
  sleep 0.1
done
start_all "$dir"
echo "etcd's load: $targets targets, tcp checks every 1 s, lease_ttl $lease_ttl" >&2
py load "$work/results/load.json" --etcd "$etcd_url" --token "$work/admin.token" \
  --nodes "single=${pids[single]}=${apis[single]},ns1=${pids[ns1]}=${apis[ns1]},ns2=${pids[ns2]}=${apis[ns2]},ns3=${pids[ns3]}=${apis[ns3]}" \
  --etcd-pid "$etcd_pid" --targets-pid "$targets_pid" --targets "$targets" --flap $((targets / 10)) \
  --window "$window" --phase 5
stop_all
kill "$targets_pid"; wait "$targets_pid" 2>/dev/null || true
stop_etcd

echo "(run took $(($(date +%s) - t_start)) s, lease_ttl $lease_ttl)" >&2
echo
py report "$work/results"
