#!/usr/bin/env bash
# Geo benchmark: a geo-balanced name asked with EDNS Client Subnet, Meridian vs gdnsd's geoip
# DYNA resource, each pinned to CPU 0 with dnsperf on CPU 1. Reports answered QPS and server
# CPU µs per query.
#
#   bench/geo.sh [seconds per run, default 10]   (ROUNDS=3: servers take turns, medians reported)
#
# Both servers get the same map: 10.1.0.0/16 → eu then us, 10.2.0.0/16 → ap then us,
# everything else → us then eu. Every query carries ECS 10.1.0.0/24 (answer: eu).
# Meridian also runs a second time with continent rules over a GeoIP database (the demo one),
# which adds a GeoIP lookup to every query.
# MODE=instructions: user-space instructions per query under callgrind instead (see lib.sh).
# `bare` is bench/bare_responder.rs (one canned record for every query, ECS ignored): the
# physical limit of this machine's kernel.
# Needs: dnsperf gdnsd dig; traffic stays on 127.0.0.0/8.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
secs=${1:-10}
. "$here/lib.sh"
need dnsperf gdnsd taskset dig ss python3
(cd "$root" && cargo build --release --quiet && cargo build --release --quiet --example bare-responder)
work=$(mktemp -d /tmp/meridian-bench.XXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# gdnsd monitors its data centers with tcp_connect on port 18080: give it something to reach.
python3 - <<'EOP' &
import socket, threading
def serve(addr):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 18080)); s.listen(64)
    while True:
        c, _ = s.accept(); c.close()
for a in ("127.0.1.1", "127.0.2.1", "127.0.3.1"):
    threading.Thread(target=serve, args=(a,), daemon=True).start()
threading.Event().wait()
EOP
monitor=$!

zone='$TTL 300
@ SOA ns1 hostmaster 1 7200 1800 259200 900
@ NS ns1
ns1 A 127.0.0.1
static A 192.0.2.1'

for _ in $(seq 1 2000); do echo "www.example.com A"; done > "$work/queries"
ecs="8:000118000a0100"   # family 1, source /24, scope 0, 10.1.0.0

meridian_config() {   # $1: rules block
  mkdir -p "$work/meridian/zones"
  "$root/target/release/meridian" geoip build --csv "$root/geoip/demo.csv" --out "$work/meridian/geo.mmdb" >/dev/null
  cat > "$work/meridian/meridian.yaml" <<EOC
dns: { listen: ["127.0.0.1:$port"], udp_workers: 1 }
log: { level: warn }
zones_dir: zones
geoip: { database: geo.mmdb }
datacenters:
  us: { location: { continent: NA, country: US }, endpoints: [{ address: 127.0.1.1 }] }
  eu: { location: { continent: EU, country: DE }, endpoints: [{ address: 127.0.2.1 }] }
  ap: { location: { continent: AS, country: IN }, endpoints: [{ address: 127.0.3.1 }] }
EOC
  printf '%s\n' "$zone" > "$work/meridian/zones/example.com.zone"
  cat > "$work/meridian/zones/example.com.yaml" <<EOC
zone: example.com
import: example.com.zone
gslb:
  www:
    policy: geo
    ttl: 30
    datacenters: [us, eu, ap]
    geo:
$1
EOC
}

start_meridian_nets() {
  meridian_config '      "net:10.1.0.0/16": [eu, us]
      "net:10.2.0.0/16": [ap, us]
      default: [us, eu]'
  taskset -c 0 $wrap "${1:-$root/target/release/meridian}" serve --config "$work/meridian/meridian.yaml" &
}
# OLD_MERIDIAN=path: another build with the net rules too, for a before/after.
start_meridian_old() { start_meridian_nets "$OLD_MERIDIAN"; }

start_meridian_geoip() {
  # The demo database puts 10.1.0.0 nowhere and 10.20.0.0/16 in Europe: ask with 10.20.
  meridian_config '      "continent:EU": [eu, us]
      "continent:AS": [ap, us]
      default: [us, eu]'
  taskset -c 0 $wrap "$root/target/release/meridian" serve --config "$work/meridian/meridian.yaml" &
}

start_gdnsd() {
  mkdir -p "$work/gdnsd/zones" "$work/gdnsd/run"
  cat > "$work/gdnsd/config" <<EOC
options => { listen => [ 127.0.0.1:$port ], udp_threads => 1, tcp_threads => 1, run_dir => $work/gdnsd/run, state_dir => $work/gdnsd/run }
service_types => { web => { plugin => tcp_connect, port => 18080, up_thresh => 2, ok_thresh => 2, down_thresh => 2, interval => 5, timeout => 2 } }
plugins => { geoip => {
  maps => { prod => { datacenters => [us, eu, ap], nets => { 10.1.0.0/16 => [eu, us], 10.2.0.0/16 => [ap, us], 0.0.0.0/0 => [us, eu] } } }
  resources => { www => { map => prod, service_types => web, dcmap => { us => 127.0.1.1, eu => 127.0.2.1, ap => 127.0.3.1 } } }
} }
EOC
  printf '%s\nwww 30 DYNA geoip!www\n' "$zone" > "$work/gdnsd/zones/example.com"
  taskset -c 0 $wrap gdnsd -c "$work/gdnsd" -f start &
}

start_bare() { taskset -c 0 $wrap "$root/target/release/examples/bare-responder" "127.0.0.1:$port" & }

check_answer() {   # the answer for the benchmark's client must be eu
  local got; got=$(dig +short +time=1 +tries=1 @127.0.0.1 -p "$port" www.example.com A "+subnet=$1")
  [ "$got" = "127.0.2.1" ] || { echo "$2: expected 127.0.2.1 for $1, got '$got'" >&2; exit 1; }
}

stop_server() {   # every job but the monitor, waited for
  local p; p=$(jobs -p | grep -v "^$monitor$" || true)
  # shellcheck disable=SC2086
  [ -z "$p" ] || { kill $p 2>/dev/null || true; wait $p 2>/dev/null || true; }
  sleep 0.5
}

run() {   # name label ecs-option ecs-subnet
  if [ "$mode" = instructions ]; then
    instructions "$2" "start_$1" stop_server "$work/queries" -E "$3"
    return
  fi
  "start_$1" >"$work/$1.log" 2>&1
  wait_ready static.example.com
  [ "$1" = bare ] || check_answer "$4" "$2"
  measure "$2" "$work/queries" "$secs" -E "$3"
  stop_server
}

rounds=${ROUNDS:-3}
echo "geo name with ECS: ${rounds} rounds of ${secs}s per server, taking turns; medians. Server on CPU 0, dnsperf on CPU 1 ($(nproc) CPUs)"
echo
for _ in $(seq 1 "$rounds"); do
  run gdnsd "gdnsd (geoip nets)" "$ecs" 10.1.0.0/24
  run meridian_nets "meridian (net rules)" "$ecs" 10.1.0.0/24
  [ -z "${OLD_MERIDIAN:-}" ] || run meridian_old "meridian before (net rules)" "$ecs" 10.1.0.0/24
  run meridian_geoip "meridian (GeoIP rules)" "8:000118000a1400" 10.20.0.0/24
  run bare "bare responder" "$ecs" 10.1.0.0/24
done
labels=("gdnsd (geoip nets)" "meridian (net rules)" "meridian (GeoIP rules)" "bare responder")
[ -z "${OLD_MERIDIAN:-}" ] || labels+=("meridian before (net rules)")
if [ "$mode" = instructions ]; then report_instructions "${labels[@]}"; else report "${labels[@]}"; fi
