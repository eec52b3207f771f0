#!/usr/bin/env bash
# Memory and build time of the GeoIP location tree and of geo rule trees, with a large
# synthetic database (bench/ecs_cache.py gen; about `networks` networks).
#
#   bench/geo-trees.sh [networks, default 1000000]
#
# 1. `meridian check` of a configuration with only the database: wall time and max RSS of
#    opening it (every record decoded, the location tree built). OLD_MERIDIAN=path measures
#    another binary too (the code before the trees: no location tree).
# 2. `meridian serve` with no geo name, then with one and with three distinct rule sets (and
#    OLD_MERIDIAN with none and one): the
#    time from start to the ready file, VmRSS then, and the "geo rules compiled" log lines
#    (nodes, bytes, milliseconds per tree).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
networks=${1:-1000000}
. "$here/lib.sh"
need python3
(cd "$root" && cargo build --release --quiet)
work=$(mktemp -d /tmp/meridian-trees.XXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
bin="$root/target/release/meridian"

python3 "$here/ecs_cache.py" gen "$((networks * 61 / 100))" "$work/geo.csv"
/usr/bin/time -f "%e s, %M KB max RSS" "$bin" geoip build --csv "$work/geo.csv" --out "$work/geo.mmdb" 2>&1 | tail -1 | sed 's/^/geoip build: /'
ls -l "$work/geo.mmdb" | awk '{printf "database: %.1f MB\n", $5 / 1e6}'

config() {   # $1: number of geo names with distinct rule sets (0–3)
  mkdir -p "$work/zones"
  cat > "$work/meridian.yaml" <<EOC
dns: { listen: ["127.0.0.1:$port"] }
admin: { listen: "off" }
log: { level: info }
zones_dir: zones
geoip: { database: geo.mmdb }
datacenters:
  us: { location: { continent: NA }, endpoints: [{ address: 127.0.1.1 }] }
  eu: { location: { continent: EU }, endpoints: [{ address: 127.0.2.1 }] }
  ap: { location: { continent: AS }, endpoints: [{ address: 127.0.3.1 }] }
EOC
  {
    echo 'zone: example.com'
    echo 'soa: { mname: ns1.example.com., rname: h.example.com. }'
    echo 'ns: [ns1.example.com.]'
    echo 'records: { ns1: { A: [192.0.2.1] } }'
    [ "$1" -gt 0 ] && echo 'gslb:'
    local rules=('"continent:EU": [eu], "continent:AS": [ap], default: [us]'
                 '"country:DE": [eu], "country:JP": [ap], "net:10.0.0.0/8": [eu], default: [us]'
                 '"continent:EU": [eu], "country:US": [us], "country:CA": [us], default: [ap]')
    for i in $(seq 1 "$1"); do
      echo "  w$i: { policy: geo, datacenters: [us, eu, ap], geo: { ${rules[$((i - 1))]} } }"
    done
  } > "$work/zones/example.com.yaml"
}

echo
echo "| step | binary | time (s) | memory |"
echo "|---|---|---:|---:|"
config 0
for b in "$bin" ${OLD_MERIDIAN:-}; do
  r=$(/usr/bin/time -f "%e %M" "$b" check --config "$work/meridian.yaml" 2>&1 >/dev/null | tail -1)
  echo "| check (open the database) | $(basename "$b") | ${r% *} | $((${r#* } / 1024)) MiB max RSS |"
done
for run in "0 $bin" "1 $bin" "3 $bin" ${OLD_MERIDIAN:+"0 $OLD_MERIDIAN" "1 $OLD_MERIDIAN"}; do
  n=${run%% *}
  b=${run#* }
  config "$n"
  rm -f "$work/ready"
  start=$(date +%s.%N)
  "$b" serve --config "$work/meridian.yaml" --ready-file "$work/ready" >"$work/serve.$n.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do [ -e "$work/ready" ] && break; sleep 0.05; done
  [ -e "$work/ready" ] || { echo "serve never got ready" >&2; cat "$work/serve.$n.log" >&2; exit 1; }
  t=$(echo "$(date +%s.%N) - $start" | bc)
  rss=$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status")
  hwm=$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$pid/status")
  echo "| serve, $n geo rule sets, start → ready | $(basename "$b") | $(printf %.2f "$t") | $rss MiB RSS, $hwm MiB peak |"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  grep -o 'geo rules compiled.*' "$work/serve.$n.log" | sed 's/\x1b\[[0-9;]*m//g; s/^/    /' || true
done
