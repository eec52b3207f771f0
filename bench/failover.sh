#!/usr/bin/env bash
# Failover convergence: how long from a data center's VIP dying to the first DNS answer that
# leaves it, and from its return to the first answer that comes back, with the default check
# settings (interval 1s, timeout 500ms, rise 2, fall 2).
#
#   bench/failover.sh [rounds, default 5]
#
# Expected from the settings: a death is noticed at the next probe, U(0, 1.1 s) later, and
# confirmed `fall - 1` intervals after that: (fall - 1) x interval + U(0, interval), so about
# 1.0 to 2.2 s, 1.5 s on average. A return likewise takes (rise - 1) x interval + U(0, interval).
# Traffic stays on 127.0.0.0/8.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
rounds=${1:-5}
. "$here/lib.sh"
need dig python3
(cd "$root" && cargo build --release --quiet)
work=$(mktemp -d /tmp/meridian-bench.XXXX)
trap 'kill $(jobs -p) $(cat "$work/vips" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
vip_port=18081

mkdir -p "$work/zones" "$work/www"
echo ok > "$work/www/healthz"
cat > "$work/meridian.yaml" <<EOC
dns: { listen: ["127.0.0.1:$port"] }
log: { level: warn }
zones_dir: zones
checks:
  web: { type: http, port: $vip_port, path: /healthz, body_contains: ok }   # defaults: 1s, 500ms, rise 2, fall 2
datacenters:
  primary: { endpoints: [{ address: 127.0.41.1, check: web }] }
  standby: { endpoints: [{ address: 127.0.42.1, check: web }] }
EOC
cat > "$work/zones/example.com.yaml" <<EOC
zone: example.com
soa: { mname: ns1.example.com., rname: hostmaster.example.com. }
ns: [ns1.example.com.]
records: { ns1: { A: [127.0.0.1] } }
gslb:
  www: { policy: failover, datacenters: [primary, standby] }
EOC

vip() {   # start a VIP's HTTP server in the background; prints its pid
  (cd "$work/www" && exec python3 -m http.server --bind "$1" "$vip_port" >/dev/null 2>&1) &
  echo $! | tee -a "$work/vips"
}
answer() { dig +short +time=1 +tries=1 @127.0.0.1 -p "$port" www.example.com A; }
now() { date +%s.%N; }
wait_answer() {   # until the answer is $1; prints seconds since $2
  while [ "$(answer)" != "$1" ]; do sleep 0.01; done
  awk -v a="$(now)" -v b="$2" 'BEGIN {printf "%.2f", a - b}'
}

vip 127.0.42.1 >/dev/null
primary=$(vip 127.0.41.1)
sleep 0.5
"$root/target/release/meridian" serve --config "$work/meridian.yaml" &
wait_ready www.example.com
[ "$(answer)" = "127.0.41.1" ] || { echo "primary not answered at start" >&2; exit 1; }

echo "failover with interval 1s, rise 2, fall 2: $rounds rounds"
echo
echo "| round | VIP down → answer moved (s) | VIP back → answer returned (s) |"
echo "|------:|----------------------------:|-------------------------------:|"
downs=(); ups=()
for r in $(seq 1 "$rounds"); do
  sleep "$(awk -v r=$RANDOM 'BEGIN {printf "%.2f", 1 + r / 32768}')"   # land at a random phase
  t=$(now); kill "$primary"; wait "$primary" 2>/dev/null || true
  d=$(wait_answer 127.0.42.1 "$t")
  sleep "$(awk -v r=$RANDOM 'BEGIN {printf "%.2f", 1 + r / 32768}')"
  t=$(now); primary=$(vip 127.0.41.1)
  u=$(wait_answer 127.0.41.1 "$t")
  printf '| %5d | %27s | %30s |\n' "$r" "$d" "$u"
  downs+=("$d"); ups+=("$u")
done
stats() { printf '%s\n' "$@" | awk '{s+=$1; if ($1>m) m=$1} END {printf "mean %.2f s, max %.2f s", s/NR, m}'; }
echo
echo "down: $(stats "${downs[@]}")   (formula: 1.0 to 2.2 s, mean 1.5 s)"
echo "back: $(stats "${ups[@]}")   (formula: 1.0 to 2.2 s, mean 1.5 s, plus the VIP's own start-up)"
