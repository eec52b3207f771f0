#!/usr/bin/env bash
# Cluster mode: how fast a change made through one node reaches the others, what a node costs
# to start with a large shared state in etcd, and what each change writes into etcd.
#
#   bench/cluster.sh [zones, default 1000] [records per zone, default 100] [start-up rounds, default 3]
#
# 1. Propagation: a single-member etcd and three nodes; 100 drains/undrains of a data center
#    and 100 record edits (in a small zone and in a zone of RECORDS names), each sent to node 1's
#    API and timed until nodes 2 and 3 both answer the new answer (UDP queries every ~1 ms),
#    beside the API's own latency (node 1 answers once its own watch applied the change).
#    The drains and edits are made again with the large state of 2 held: by a single node
#    serving it from files (the peer, timed until it answers itself), then by three nodes.
# 2. Start-up: ZONES zones of RECORDS A names each, seeded into a fresh etcd with one
#    `etcdctl txn` per 100 zones; time from process start to the ready file, and VmRSS/VmHWM
#    then, for a node with no cache (it reads etcd whole) and the same node restarted with its
#    cache, against the same zones served from files by a single node (the peer, same run).
#    The three take turns for the given rounds; medians are reported.
# 3. etcd's writes per change, from its metrics (puts, deletes, WAL bytes and fsyncs, backend
#    commits, db size) and its history (the keys each revision wrote) around each series of 1.
#
# Release build; etcd's data on /tmp; every address is on 127.0.0.1. Needs etcd and etcdctl
# (apt-get install etcd-server etcd-client), python3 (standard library only) and curl.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
root=$(dirname "$here")
zones=${1:-1000}
records=${2:-100}
rounds=${3:-3}
for tool in etcd etcdctl; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install etcd-server etcd-client)" >&2; exit 2; }
done
for tool in python3 curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install $tool)" >&2; exit 2; }
done
(cd "$root" && cargo build --release --quiet)
bin="$root/target/release/meridian"
py() { python3 "$here/cluster.py" "$@"; }
work=$(mktemp -d /tmp/meridian-bench.XXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/results"
export ETCDCTL_API=3

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
etcd_url="http://127.0.0.1:$(free_port)"
etcd_peer="http://127.0.0.1:$(free_port)"
ctl() { etcdctl --endpoints="$etcd_url" "$@"; }
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
  until ctl endpoint health >/dev/null 2>&1; do
    kill -0 "$etcd_pid" 2>/dev/null || { echo "etcd exited:" >&2; tail "$work/etcd.log" >&2; exit 1; }
    sleep 0.1
  done
}
stop_etcd() { kill "$etcd_pid"; wait "$etcd_pid" 2>/dev/null || true; }

# cluster_node NAME: a node's directory (meridian.yaml in cluster mode, its own state_dir).
cluster_node() {
  mkdir -p "$work/$1"
  cat > "$work/$1/meridian.yaml" <<EOC
log: { level: warn }
admin:
  tokens: [{ name: bench, role: admin, token_file: $work/admin.token }]
state_dir: state
cluster:
  node: $1
  etcd: { endpoints: ["$etcd_url"], prefix: $prefix }
EOC
}

# start_node NAME: `meridian serve` in $work/NAME on free loopback ports, until its ready file
# appears. Sets node_pid, node_secs (process start to ready file), node_dns and node_api.
start_node() {
  local dir="$work/$1"
  serve_node "$dir"
}

# series KIND DNS ETCD HELD: 100 changes of KIND through the API at $api, timed until every
# server in DNS (comma-separated) answers each; ETCD (or none) is read around them.
i=0
series() {
  i=$((i + 1))
  py changes "$1" 100 "$work/results/changes-$(printf %02d "$i").json" --api "$api" --token "$work/admin.token" \
    --dns "$2" --etcd "$3" --prefix "$prefix" --held "$4"
}

# === 1 and 3: propagation to three nodes, and etcd's writes per change ===
start_etcd
py zones "$work/p1/zones" 1 "$records" "$work/p1/txn" "$prefix" >/dev/null
ctl txn < "$work/p1/txn/0000.txn" >/dev/null   # the data centers and z00000.bench.test
ctl put "${prefix}zones/example.test" "zone: example.test
ttl: 300
soa: { mname: ns1.example.test., rname: hostmaster.example.test., serial: 10 }
ns: [ns1.example.test.]
records:
  ns1: { A: [192.0.2.1] }
  static: { A: [192.0.2.80] }
  edit: { A: [198.18.0.1] }
gslb:
  www: { policy: failover, ttl: 30, datacenters: [eu, us] }
" >/dev/null
declare -a pids dns
for n in 3 2 1; do
  cluster_node "ns$n"
  start_node "ns$n"
  pids[n]=$node_pid
  dns[n]=$node_dns
done
api=$node_api   # node 1's, the last started

[ "$(py ask "${dns[3]}" www.example.test)" = "198.51.100.10" ] || { echo "www.example.test does not answer eu on node 3" >&2; exit 1; }
echo "propagation: 3 nodes, 100 changes of each kind through node 1" >&2
for kind in drain:example.test edit:example.test/edit "edit:z00000.bench.test/h1"; do
  series "$kind" "${dns[2]},${dns[3]}" "$etcd_url" 2
done
for n in 1 2 3; do stop_node "${pids[n]}"; done
stop_etcd

# === 2: start-up with a large shared state ===
start_etcd
py zones "$work/zones" "$zones" "$records" "$work/txn" "$prefix" >&2
t0=$(date +%s.%N)
for f in "$work"/txn/*.txn; do
  [ "$(ctl txn < "$f" | head -1)" = SUCCESS ] || { echo "etcdctl txn < $f failed" >&2; exit 1; }
done
seed=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN {printf "%.2f", a - b}')
sleep 1   # etcd's backend commits every 100 ms; its size metric follows
db=$(curl -s "$etcd_url/metrics" | awk '$1 == "etcd_mvcc_db_total_size_in_bytes" {printf "%d", $2}')
echo "$zones $records $seed $(ls "$work/txn" | wc -l) $db" > "$work/results/seed"

# The peer: the same zones and data centers from files, one node alone.
mkdir -p "$work/files"
cat > "$work/files/meridian.yaml" <<EOC
log: { level: warn }
admin:
  tokens: [{ name: bench, role: admin, token_file: $work/admin.token }]
state_dir: state
zones_dir: $work/zones
datacenters:
  eu: { endpoints: [{ address: 198.51.100.10 }] }
  us: { endpoints: [{ address: 192.0.2.10 }] }
EOC
cluster_node cold
last=$(printf 'h%d.z%05d.bench.test' $((records - 1)) $((zones - 1)))
record_start() {   # record_start LABEL: the figures of the node just started
  [ -n "$(py ask "$node_dns" "$last")" ] || { echo "$1: $last not answered at ready" >&2; exit 1; }
  echo "$1 $node_secs $(awk '/VmRSS/ {print $2}' "/proc/$node_pid/status") $(awk '/VmHWM/ {print $2}' "/proc/$node_pid/status")" >> "$work/results/starts"
  stop_node "$node_pid"
}
echo "start-up: $zones zones of $records records, $rounds rounds (seeded in $seed s)" >&2
for _ in $(seq 1 "$rounds"); do
  start_node files; record_start files
  rm -rf "$work/cold/state"
  start_node cold; record_start cold
  start_node cold; record_start cached
done

# === 1 again, with the large state held: a single node serving it from files (the peer), then
# three nodes in cluster mode ===
echo "propagation: 1 node serving $zones zones from files, 100 changes of each kind" >&2
start_node files
api=$node_api
for kind in drain:z00000.bench.test "edit:z00000.bench.test/h1"; do series "$kind" "$node_dns" none "$zones"; done
stop_node "$node_pid"
for n in 3 2 1; do
  cluster_node "big$n"
  start_node "big$n"
  pids[n]=$node_pid
  dns[n]=$node_dns
done
api=$node_api
echo "propagation: 3 nodes holding $zones zones, 100 changes of each kind through node 1" >&2
for kind in drain:z00000.bench.test "edit:z00000.bench.test/h1"; do
  series "$kind" "${dns[2]},${dns[3]}" "$etcd_url" "$zones"
done
for n in 1 2 3; do stop_node "${pids[n]}"; done
stop_etcd

py report "$work/results"
