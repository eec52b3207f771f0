#!/usr/bin/env bash
# ECS cache benchmark: how many cache entries a resolver keeps for a geo-balanced name, Meridian
# vs gdnsd over the same GeoIP database and the same continent map.
#
#   bench/ecs-cache.sh [networks, default 50000] [clients, default 10000]
#
# A synthetic GeoIP database (bench/ecs_cache.py gen: networks of /8–/30 over 1/8–223/8, most
# in the same country as the one before, 5% gaps) is built with `meridian geoip build`; each
# server answers www.example.com by continent (EU → eu, AS → ap, NA → us, default → sa, one
# address each, so every rule has its own answer). A sample of distinct random /24s is asked,
# each with ECS <subnet>/24:
#  1. straight to each server, recording the scope and the answer; the resolver's cache is then
#     replayed (RFC 7871 §7.3.1: an answer of scope S for client C is kept under C/S and serves
#     every later client inside it; nothing expires) to count entries, and to count cached
#     answers that differ from what the server says for the client (a scope too wide);
#  2. through Unbound with its ECS cache (subnetcache), when `unbound` is installed: each
#     server behind its own Unbound, asked by clients in 127/8 (a sample of its /24s, each
#     query sent from <subnet>.1 without ECS: Unbound sends ECS <subnet>/24 itself, as for
#     ordinary stub clients); the figure is the number of queries Unbound sent on to the
#     server, counted by a UDP relay between them (`ecs_cache.py proxy`): one per cache entry
#     it created. (Unbound's own `total.num.cachemiss` counted all 10,000 in every run, subnet
#     cache hits included.) The same 127/8 sample is replayed as in part 1 beside it.
# OLD_MERIDIAN=path adds another Meridian binary (the code before the scope work) to both.
# The generator's network count is coarse (its average prefix length is a whole number):
# 50000 gives 71,426 networks, 1000000 gives 1,139,447.
# Needs: gdnsd dig python3 (unbound for part 2). Traffic stays on 127.0.0.0/8.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
networks=${1:-50000}
clients=${2:-10000}
. "$here/lib.sh"
need gdnsd dig python3
(cd "$root" && cargo build --release --quiet)
work=$(mktemp -d /tmp/meridian-ecs.XXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
py="python3 $here/ecs_cache.py"

# About `networks` networks: the generator's count follows its average prefix length.
$py gen "$((networks * 61 / 100))" "$work/geo.csv"
$py sample "$clients" "$work/sample"
$py sample127 "$clients" "$work/sample127"
"$root/target/release/meridian" geoip build --csv "$work/geo.csv" --out "$work/geo.mmdb" >/dev/null

zone='$TTL 3600
@ SOA ns1 hostmaster 1 7200 1800 259200 900
@ NS ns1
ns1 A 127.0.0.1
static A 192.0.2.1'

meridian_config() {
  mkdir -p "$work/meridian/zones"
  cat > "$work/meridian/meridian.yaml" <<EOC
dns: { listen: ["127.0.0.1:$port"], udp_workers: 1 }
admin: { listen: "off" }
log: { level: warn }
zones_dir: zones
geoip: { database: ../geo.mmdb }
datacenters:
  us: { location: { continent: NA }, endpoints: [{ address: 127.0.1.1 }] }
  eu: { location: { continent: EU }, endpoints: [{ address: 127.0.2.1 }] }
  ap: { location: { continent: AS }, endpoints: [{ address: 127.0.3.1 }] }
  sa: { location: { continent: SA }, endpoints: [{ address: 127.0.4.1 }] }
EOC
  printf '%s\n' "$zone" > "$work/meridian/zones/example.com.zone"
  cat > "$work/meridian/zones/example.com.yaml" <<EOC
zone: example.com
import: example.com.zone
gslb:
  www:
    policy: geo
    ttl: 3600
    datacenters: [us, eu, ap, sa]
    geo:
      "continent:EU": [eu]
      "continent:AS": [ap]
      "continent:NA": [us]
      default: [sa]
EOC
}

start_meridian() { meridian_config; "$root/target/release/meridian" serve --config "$work/meridian/meridian.yaml" & }
start_meridian_old() { meridian_config; "$OLD_MERIDIAN" serve --config "$work/meridian/meridian.yaml" & }

start_gdnsd() {
  mkdir -p "$work/gdnsd/zones" "$work/gdnsd/run" "$work/gdnsd/geoip"
  cp "$work/geo.mmdb" "$work/gdnsd/geoip/geo.mmdb"
  cat > "$work/gdnsd/config" <<EOC
options => { listen => [ 127.0.0.1:$port ], udp_threads => 1, tcp_threads => 1, run_dir => $work/gdnsd/run, state_dir => $work/gdnsd/run }
plugins => { geoip => {
  maps => { prod => {
    geoip2_db => geo.mmdb,
    datacenters => [us, eu, ap, sa],
    map => { EU => [eu], AS => [ap], NA => [us], default => [sa] }
  } }
  resources => { www => { map => prod, service_types => up, dcmap => { us => 127.0.1.1, eu => 127.0.2.1, ap => 127.0.3.1, sa => 127.0.4.1 } } }
} }
EOC
  printf '%s\nwww 3600 DYNA geoip!www\n' "$zone" > "$work/gdnsd/zones/example.com"
  gdnsd -c "$work/gdnsd" -f start &
}

# Unbound in front of whatever serves $port, on 127.0.0.1:$((port + 1)).
start_unbound() {
  local dir="$work/unbound.$1"
  mkdir -p "$dir"
  cat > "$dir/unbound.conf" <<EOC
server:
  interface: 127.0.0.1
  port: $((port + 1))
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "$dir"
  pidfile: "$dir/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 0
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  module-config: "subnetcache validator iterator"
  send-client-subnet: 127.0.0.1
  client-subnet-always-forward: yes
  max-client-subnet-ipv4: 24
  max-client-subnet-ipv6: 56
  max-ecs-tree-size-ipv4: 1000000   # default 100 entries per name: evictions would hide the difference
  msg-cache-size: 256m
  rrset-cache-size: 256m
  key-cache-size: 64m
  num-threads: 1
  domain-insecure: example.com
stub-zone:
  name: example.com
  stub-addr: 127.0.0.1@$((port + 2))
remote-control:
  control-enable: yes
  control-interface: $dir/control.sock
  control-use-cert: no
EOC
  unbound -d -c "$dir/unbound.conf" &
  for _ in $(seq 1 100); do
    unbound-control -c "$dir/unbound.conf" status >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "unbound never started" >&2
  return 1
}

stop() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; sleep 0.5; }

servers="meridian gdnsd"
[ -n "${OLD_MERIDIAN:-}" ] && servers="meridian_old $servers"
echo "$(grep -vc network "$work/geo.csv") networks in the database, $clients client /24s"
for s in $servers; do
  "start_$s" >"$work/$s.log" 2>&1
  wait_ready static.example.com
  $py ask "$port" www.example.com "$work/sample" "$work/$s.answers"
  stop
done
echo
echo "Part 1: answers straight from each server, the cache replayed"
echo
(cd "$work" && for s in $servers; do echo "$s.answers"; done | xargs $py cache)
# The answers must agree: same database, same map.
for s in $servers; do
  awk '{print $1, $3}' "$work/$s.answers" > "$work/$s.who"
done
for s in $servers; do
  cmp -s "$work/meridian.who" "$work/$s.who" || echo "note: $s answers differ from meridian's for $(diff "$work/meridian.who" "$work/$s.who" | grep -c '^<') clients"
done

if command -v unbound >/dev/null; then
  echo
  echo "Part 2: through Unbound (subnetcache): what it sent on to the server"
  echo
  echo "| server | queries to Unbound | queries Unbound sent to the server (= entries created) | total.num.cachemiss |"
  echo "|---|---:|---:|---:|"
  for s in $servers; do
    "start_$s" >"$work/$s.log" 2>&1
    wait_ready static.example.com
    $py proxy "$((port + 2))" "$port" "$work/$s.sent" &
    start_unbound "$s" >"$work/unbound.$s.log" 2>&1
    $py ask "$port" www.example.com "$work/sample127" "$work/$s.127.answers"
    $py via "$((port + 1))" www.example.com "$work/sample127" "$work/$s.via"
    stats=$(unbound-control -c "$work/unbound.$s/unbound.conf" stats_noreset)
    miss=$(echo "$stats" | awk -F= '$1 == "total.num.cachemiss" {print $2}')
    sent=$(cat "$work/$s.sent" 2>/dev/null || echo 0)
    echo "| $s | $clients | $sent | $miss |"
    cmp -s <(awk '{print $1, $3}' "$work/$s.via") <(awk '{print $1, $3}' "$work/$s.127.answers") || echo "note: through Unbound, $s's answers differ from its own for $(diff <(awk '{print $1, $3}' "$work/$s.via") <(awk '{print $1, $3}' "$work/$s.127.answers") | grep -c '^<') clients"
    stop
  done
  echo
  echo "The same 127/8 clients straight from each server, the cache replayed:"
  echo
  (cd "$work" && for s in $servers; do echo "$s.127.answers"; done | xargs $py cache)
fi
