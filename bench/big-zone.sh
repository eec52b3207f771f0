#!/usr/bin/env bash
# Loading a large YAML zone: time and peak memory (max RSS) for `meridian check` and for
# `meridian serve` from start to its first answer, with a generated zone of N A records.
#
#   bench/big-zone.sh [records, default 1000000]
#
# The zone is one YAML file, one name per line (`hN: { A: [10.x.y.z] }`). The same records as an
# RFC 1035 master file are then loaded by Meridian (`import:`) and compiled by NSD's
# nsd-checkzone, the peer measured in the same run. Needs /usr/bin/time (GNU time), dig and
# nsd-checkzone (apt-get install time bind9-dnsutils nsd). Traffic stays on 127.0.0.1.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
records=${1:-1000000}
. "$here/lib.sh"
need dig python3 nsd-checkzone
[ -x /usr/bin/time ] || { echo "missing /usr/bin/time (apt-get install time)" >&2; exit 2; }
(cd "$root" && cargo build --release --quiet)
bin="$root/target/release/meridian"
work=$(mktemp -d /tmp/meridian-bench.XXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

mkdir -p "$work/zones"
python3 - "$records" "$work/zones/big.test.yaml" <<'EOP'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    f.write("zone: big.test\nsoa: { mname: ns1.big.test., rname: h.big.test., serial: 1 }\n")
    f.write("ns: [ns1.big.test.]\nrecords:\n  ns1: { A: [192.0.2.1] }\n")
    for i in range(n):
        f.write(f"  h{i}: {{ A: [10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}] }}\n")
EOP
mkdir -p "$work/master/zones"
python3 - "$records" "$work/master/zones" <<'EOP'
import sys
n, d = int(sys.argv[1]), sys.argv[2]
with open(f"{d}/big.test.yaml", "w") as f:
    f.write("zone: big.test\nimport: big.test.zone\n")
with open(f"{d}/big.test.zone", "w") as f:
    f.write("$ORIGIN big.test.\n$TTL 3600\n@ SOA ns1 h 1 3600 600 1209600 60\n@ NS ns1\nns1 A 192.0.2.1\n")
    for i in range(n):
        f.write(f"h{i} A 10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}\n")
EOP
cat > "$work/meridian.yaml" <<EOC
dns: { listen: ["127.0.0.1:$port"] }
admin: { listen: "off" }
log: { level: warn }
zones_dir: zones
EOC
size=$(du -m "$work/zones/big.test.yaml" | cut -f1)
echo "zone: $records A records, ${size} MB of YAML"

/usr/bin/time -f "%e %M" -o "$work/check.time" "$bin" check --config "$work/meridian.yaml"
read -r secs kb < "$work/check.time"
echo "check: ${secs} s, max RSS $((kb / 1024)) MB"

last=$((records - 1))
start=$(date +%s.%N)
"$bin" serve --config "$work/meridian.yaml" &
pid=$!
# Until the last record answers (loading a large zone takes longer than wait_ready waits).
until [ -n "$(dig +short +time=1 +tries=1 @127.0.0.1 -p "$port" "h$last.big.test" A 2>/dev/null | grep -v '^;')" ]; do
  kill -0 "$pid" 2>/dev/null || { echo "meridian serve exited" >&2; exit 1; }
  sleep 0.05
done
ready=$(date +%s.%N)
rss=$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$pid/status")
hwm=$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$pid/status")
echo "serve: first answer after $(awk -v a="$start" -v b="$ready" 'BEGIN {printf "%.2f", b - a}') s, RSS ${rss} MB serving (peak ${hwm} MB while loading)"
kill -TERM "$pid"
wait "$pid"

# The same records as a master file: Meridian (import:) against NSD compiling it.
printf 'zones_dir: zones\n' > "$work/master/meridian.yaml"
/usr/bin/time -f "%e %M" -o "$work/import.time" "$bin" check --config "$work/master/meridian.yaml"
read -r msecs mkb < "$work/import.time"
/usr/bin/time -f "%e %M" -o "$work/nsd.time" nsd-checkzone big.test "$work/master/zones/big.test.zone" >/dev/null
read -r nsecs nkb < "$work/nsd.time"
echo "master file: meridian check ${msecs} s, max RSS $((mkb / 1024)) MB; nsd-checkzone ${nsecs} s, max RSS $((nkb / 1024)) MB"
awk -v ms="$msecs" -v mk="$mkb" -v ns="$nsecs" -v nk="$nkb" -v ys="$secs" -v yk="$kb" 'BEGIN {
  printf "vs nsd-checkzone: meridian master file %.2fx time, %.2fx memory; meridian YAML %.2fx time, %.2fx memory\n", ms / ns, mk / nk, ys / ns, yk / nk }'
