#!/usr/bin/env bash
# Admin API edits and reloads with 100,000 records held: how long an edit takes to be answered
# (the API's 200, and the first DNS answer with the new data), and what a reload costs while
# queries run (lost and failed answers counted).
#
#   bench/edits.sh [zones, default 1000] [records per zone, default 100] [edits per series, default 50] [reloads, default 10]
#
# Two setups, each a single node serving files (release build, pinned to CPU 0; the client, in
# bench/edits.py, on CPU 1), with two data centers and a failover name in every zone:
# 1. ZONES zones of RECORDS names each: PUTs of one name in one of them (`records/h1`), PUTs of
#    a whole small zone beside them; then reloads (`POST /api/v1/reload`) with 2,000 queries a
#    second running, for names all over the zones: with no file changed, with one zone file
#    changed before each, and with every zone file changed before each.
# 2. One zone of ZONES × RECORDS names and two small zones: PUTs of one name in a small zone,
#    and in the large one; reloads with no file changed and with the other small zone's file
#    changed before each.
# Every address is on 127.0.0.1. Needs python3 (standard library only). MERIDIAN_BIN=path runs
# another build of meridian instead of this tree's release build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
root=$(dirname "$here")
zones=${1:-1000}
records=${2:-100}
n=${3:-50}
reloads=${4:-10}
command -v python3 >/dev/null || { echo "missing python3" >&2; exit 2; }
# MERIDIAN_BIN: another build to measure (an older one, for a before/after comparison).
if [ -z "${MERIDIAN_BIN:-}" ]; then
  (cd "$root" && cargo build --release --quiet)
fi
bin=${MERIDIAN_BIN:-"$root/target/release/meridian"}
py() { taskset -c 1 python3 "$here/edits.py" "$@"; }
work=$(mktemp -d /tmp/meridian-bench.XXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/results"
head -c 24 /dev/urandom | base64 > "$work/admin.token"

# start_node DIR: `meridian serve` of DIR/meridian.yaml on free loopback ports, pinned to CPU 0,
# until its ready file appears. Sets node_pid, node_secs, node_dns and node_api.
start_node() {
  local dir=$1
  cat > "$dir/meridian.yaml" <<EOC
log: { level: warn }
admin:
  tokens: [{ name: bench, role: admin, token_file: $work/admin.token }]
state_dir: state
zones_dir: zones
datacenters:
  eu: { endpoints: [{ address: 198.51.100.10 }] }
  us: { endpoints: [{ address: 192.0.2.10 }] }
EOC
  serve_node "$dir" taskset -c 0
}

i=0
# run SETUP edits|reloads ARGS...: one series into the results.
run() {
  local setup=$1 cmd=$2 what=$3 count=$4
  shift 4
  i=$((i + 1))
  echo "$setup: $cmd $what × $count" >&2
  py "$cmd" "$what" "$count" "$work/results/$(printf %02d "$i").json" --api "$node_api" \
    --token "$work/admin.token" --dns "$node_dns" --setup "$setup" "$@"
}

# === 1: many zones ===
many="$zones zones × $records"
py zones "$work/many/zones" "$zones" "$records" >&2
start_node "$work/many"
echo "$many: ready after $node_secs s, VmRSS $(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$node_pid/status") MiB" >&2
run "$many" edits record:z00000.bench.test/h1 "$n"
run "$many" edits zone:small.bench.test "$n"
names=$(python3 -c "import sys; z, r = int(sys.argv[1]), int(sys.argv[2]); print(','.join(f'h{1 + (k * 7) % (r - 1)}.z{k * 37 % z:05d}.bench.test' for k in range(200)))" "$zones" "$records")
for mode in same one all; do
  run "$many" reloads "$mode" "$reloads" --zones "$work/many/zones" --names "$names" \
    --change "$work/many/zones/z00001.bench.test.yaml"
done
stop_node "$node_pid"

# === 2: one large zone ===
total=$((zones * records))
one="1 zone × $total"
py big "$work/one/zones" "$total" >&2
start_node "$work/one"
echo "$one: ready after $node_secs s, VmRSS $(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$node_pid/status") MiB" >&2
run "$one" edits record:small.bench.test/h1 "$n"
run "$one" edits record:big.bench.test/h1 "$((n / 5 > 0 ? n / 5 : 1))"
names=$(python3 -c "import sys; r = int(sys.argv[1]); print(','.join(f'h{1 + (k * 7919) % (r - 1)}.big.bench.test' for k in range(200)))" "$total")
run "$one" reloads same "$reloads" --zones "$work/one/zones" --names "$names"
run "$one" reloads one "$reloads" --zones "$work/one/zones" --names "$names" --change "$work/one/zones/other.bench.test.yaml"
stop_node "$node_pid"

python3 "$here/edits.py" report "$work/results"
