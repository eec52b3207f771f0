#!/usr/bin/env bash
# Static-zone benchmark: the same zone served by Meridian, NSD and gdnsd, one at a time, each
# pinned to CPU 0 with dnsperf pinned to CPU 1. Meridian runs twice: on 127.0.0.1, and on
# 0.0.0.0 (`meridian_any`: replies sourced from each query's destination address, PKTINFO).
# `bare` is bench/bare_responder.rs, a recvmmsg/sendmmsg loop answering every query with one
# canned record: the physical limit of this machine's kernel, no DNS server can cost less.
# Reports answered QPS and server CPU µs per query (from /proc/PID/stat), the figure that
# survives a noisy machine.
#
#   bench/static.sh [seconds per run, default 10]   (ROUNDS=3: servers take turns, medians reported)
#
# MODE=instructions: user-space instructions per query under callgrind instead (see lib.sh).
#
# Scaling over cores: WORKERS=2 gives each server two UDP threads (Meridian's udp_workers, one
# socket each; gdnsd's udp_threads; NSD's server-count with reuseport), and SERVERS= picks
# which run. With SERVER_CPUS=0,1 DNSPERF_CPUS=0,1 they share both CPUs with dnsperf; the
# figure to compare is still CPU µs per query (its inverse: queries per CPU-second).
#
# Needs: dnsperf nsd gdnsd (Debian packages) and a release build (done here).
# Sends traffic to 127.0.0.1 only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
secs=${1:-10}
. "$here/lib.sh"
need dnsperf nsd gdnsd taskset dig ss
(cd "$root" && cargo build --release --quiet && cargo build --release --quiet --example bare-responder)
work=$(mktemp -d /tmp/meridian-bench.XXXX)
workers=${WORKERS:-1}
cpus=${SERVER_CPUS:-0}
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

zone='$TTL 300
@ SOA ns1 hostmaster 1 7200 1800 259200 900
@ NS ns1
ns1 A 127.0.0.1
static A 192.0.2.1
www 30 A 127.0.1.1'

# The query mix: positive answers, NODATA, NXDOMAIN.
for i in $(seq 1 250); do
  echo "static.example.com A"; echo "www.example.com A"; echo "static.example.com AAAA"; echo "nx$i.example.com A"
done > "$work/queries"

start_meridian() { meridian_on "127.0.0.1:$port"; }
# OLD_MERIDIAN=path: another build on 127.0.0.1 (SERVERS="... meridian_old"), for a before/after.
start_meridian_old() { meridian_on "127.0.0.1:$port" "$OLD_MERIDIAN"; }
# The UDP workers sharing one socket instead of one each (SO_REUSEPORT).
start_meridian_shared() { meridian_on "127.0.0.1:$port" "" ", udp_reuseport: false"; }
# On the wildcard address: every reply's source comes from the query's destination (PKTINFO).
start_meridian_any() { meridian_on "0.0.0.0:$port"; }

meridian_on() {
  rm -rf "$work/meridian"
  mkdir -p "$work/meridian/zones"
  printf '%s\n' "$zone" > "$work/meridian/zones/example.com.zone"
  cat > "$work/meridian/zones/example.com.yaml" <<EOC
zone: example.com
import: example.com.zone
EOC
  cat > "$work/meridian/meridian.yaml" <<EOC
dns: { listen: ["$1"], udp_workers: $workers${3:-} }
log: { level: warn }
zones_dir: zones
EOC
  taskset -c "$cpus" $wrap "${2:-$root/target/release/meridian}" serve --config "$work/meridian/meridian.yaml" &
}

start_bare() { taskset -c "$cpus" $wrap "$root/target/release/examples/bare-responder" "127.0.0.1:$port" & }

start_nsd() {
  mkdir -p "$work/nsd"
  printf '$ORIGIN example.com.\n%s\n' "$zone" > "$work/nsd/example.com.zone"
  cat > "$work/nsd/nsd.conf" <<EOC
server:
  ip-address: 127.0.0.1@$port
  server-count: $workers
  reuseport: $([ "$workers" -gt 1 ] && echo yes || echo no)
  rrl-ratelimit: 0
  zonesdir: "$work/nsd"
  username: ""
  pidfile: "$work/nsd/nsd.pid"
  database: ""
  zonelistfile: "$work/nsd/zone.list"
  xfrdfile: "$work/nsd/xfrd.state"
  verbosity: 0
remote-control:
  control-enable: no
zone:
  name: example.com
  zonefile: example.com.zone
EOC
  taskset -c "$cpus" $wrap nsd -c "$work/nsd/nsd.conf" -d &
}

start_gdnsd() {
  mkdir -p "$work/gdnsd/zones" "$work/gdnsd/run"
  cat > "$work/gdnsd/config" <<EOC
options => { listen => [ 127.0.0.1:$port ], udp_threads => $workers, tcp_threads => 1, run_dir => $work/gdnsd/run, state_dir => $work/gdnsd/run }
EOC
  printf '%s\n' "$zone" > "$work/gdnsd/zones/example.com"
  taskset -c "$cpus" $wrap gdnsd -c "$work/gdnsd" -f start &
}

run() {
  local name=$1
  if [ "$mode" = instructions ]; then
    instructions "$name" "start_$name" stop_servers "$work/queries"
    return
  fi
  "start_$name" >"$work/$name.log" 2>&1
  wait_ready static.example.com
  measure "$name" "$work/queries" "$secs"
  stop_servers
}

rounds=${ROUNDS:-3}
servers=${SERVERS:-gdnsd nsd meridian meridian_any bare}
echo "static zone: ${rounds} rounds of ${secs}s per server, taking turns; medians. $workers UDP thread(s) per server on CPU $cpus, dnsperf on CPU ${DNSPERF_CPUS:-1} ($(nproc) CPUs)"
echo
for _ in $(seq 1 "$rounds"); do
  for s in $servers; do run $s; done
done
# shellcheck disable=SC2086
if [ "$mode" = instructions ]; then report_instructions $servers; else report $servers; fi
