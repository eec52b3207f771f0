#!/usr/bin/env bash
# Resident memory (VmRSS, and the private memory of every process: PSS summed) of Meridian and
# NSD serving one generated zone, and what Meridian's grows to after edits, reloads and a burst
# of TCP connections.
#
#   bench/memory.sh [records, default 100000] [edits and reloads, default 60] [tcp connections, default 1000]
#
# 1. One zone of RECORDS names (`hN A 10.x.y.z`), as a YAML zone for `meridian serve` (release
#    build) and as an RFC 1035 master file for `nsd -d` (checked by `nsd-checkzone` first), each
#    measured once it answers the last name. Meridian also serves the master file (`import:`).
# 2. Meridian, started afresh: EDITS admin API PUTs of one name of the zone (`records/h1`), then
#    EDITS reloads (`POST /api/v1/reload`) with the zone file changed before each; VmRSS at start
#    and after every 10 (read 1.5 s after the 10th: memory freed by changes is handed back once
#    they are quiet for a second).
# 3. Meridian and NSD, started afresh: CONNS TCP connections opened together, one query on each,
#    all answered, then closed; VmRSS before, right after, and 3 s later.
#
# Every address is on 127.0.0.1. Needs dig, python3, nsd and nsd-checkzone (apt-get install
# bind9-dnsutils nsd). MERIDIAN_BIN=path measures another build of meridian instead of this
# tree's release build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
records=${1:-100000}
changes=${2:-60}
conns=${3:-1000}
. "$here/lib.sh"
need dig python3 nsd nsd-checkzone
if [ -z "${MERIDIAN_BIN:-}" ]; then
  (cd "$root" && cargo build --release --quiet)
fi
bin=${MERIDIAN_BIN:-"$root/target/release/meridian"}
work=$(mktemp -d /tmp/meridian-bench.XXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
ulimit -n 8192 2>/dev/null || true
last="h$((records - 1)).big.test"

# === the zone, twice ===
mkdir -p "$work/yaml/zones" "$work/master/zones" "$work/nsd"
python3 - "$records" "$work" <<'EOP'
import sys
n, w = int(sys.argv[1]), sys.argv[2]
addr = lambda i: f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
with open(f"{w}/yaml/zones/big.test.yaml", "w") as f:
    f.write("zone: big.test\nsoa: { mname: ns1.big.test., rname: h.big.test., serial: 1 }\n")
    f.write("ns: [ns1.big.test.]\nrecords:\n  ns1: { A: [192.0.2.1] }\n")
    for i in range(n):
        f.write(f"  h{i}: {{ A: [{addr(i)}] }}\n")
with open(f"{w}/master/zones/big.test.yaml", "w") as f:
    f.write("zone: big.test\nimport: big.test.zone\n")
with open(f"{w}/master/zones/big.test.zone", "w") as f:
    f.write("$ORIGIN big.test.\n$TTL 3600\n@ SOA ns1 h 1 3600 600 1209600 60\n@ NS ns1\nns1 A 192.0.2.1\n")
    for i in range(n):
        f.write(f"h{i} A {addr(i)}\n")
EOP
cp "$work/master/zones/big.test.zone" "$work/nsd/big.test.zone"
head -c 24 /dev/urandom | base64 > "$work/admin.token"
for setup in yaml master; do
  cat > "$work/$setup/meridian.yaml" <<EOC
log: { level: warn }
admin:
  tokens: [{ name: bench, role: admin, token_file: $work/admin.token }]
state_dir: state
zones_dir: zones
EOC
done
echo "zone: $records A records" >&2

# rss PID: VmRSS in KiB. pss PIDS: the proportional set size of all of them, summed, in KiB
# (NSD's processes share the zone's pages; VmRSS would count them once per process).
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
pss() {
  local total=0 p
  for p in "$@"; do total=$((total + $(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup"))); done
  echo "$total"
}
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

# wait_last PORT PID: until the last name of the zone answers on PORT.
wait_last() {
  until [ -n "$(dig +short +time=1 +tries=1 @127.0.0.1 -p "$1" "$last" A 2>/dev/null | grep -v '^;')" ]; do
    kill -0 "$2" 2>/dev/null || { echo "server $2 exited" >&2; exit 1; }
    sleep 0.05
  done
}

# serve DIR: meridian serving DIR, until it answers the last name. Sets node_pid, node_port.
serve() {
  serve_node "$1"
  node_port=${node_dns##*:}
  wait_last "$node_port" "$node_pid"
  sleep 1 # what a load leaves to free (tasks, the first health publication) is freed
}

# === NSD ===
nsd-checkzone big.test "$work/nsd/big.test.zone" >/dev/null
nsd_port=$((port + 7))
start_nsd() {
  cat > "$work/nsd/nsd.conf" <<EOC
server:
  ip-address: 127.0.0.1@$nsd_port
  port: $nsd_port
  server-count: 1
  tcp-count: $((conns + 100))
  database: ""
  zonelistfile: "$work/nsd/zone.list"
  xfrdfile: "$work/nsd/xfrd.state"
  pidfile: "$work/nsd/nsd.pid"
  zonesdir: "$work/nsd"
  username: ""
  chroot: ""
  logfile: "$work/nsd/log"
  verbosity: 0
remote-control:
  control-enable: no
zone:
  name: big.test
  zonefile: big.test.zone
EOC
  rm -f "$work/nsd/nsd.pid"
  nsd -d -c "$work/nsd/nsd.conf" >>"$work/nsd/log" 2>&1 &
  nsd_pid=$!
  wait_last "$nsd_port" "$nsd_pid"
  sleep 1
}
nsd_pids() { ss -Hulpn "sport = :$nsd_port" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u; echo "$nsd_pid"; }
nsd_rss() {
  # The largest VmRSS of NSD's processes (the serving child), and the PSS of all of them.
  local p max=0
  for p in $(nsd_pids | sort -u); do
    local r; r=$(rss "$p"); [ "$r" -gt "$max" ] && max=$r
  done
  echo "$max $(pss $(nsd_pids | sort -u))"
}
stop_nsd() { kill -TERM "$nsd_pid"; wait "$nsd_pid" 2>/dev/null || true; }

start_nsd
read -r nsd_kb nsd_pss < <(nsd_rss)
stop_nsd

serve "$work/yaml"
yaml_kb=$(rss "$node_pid")
yaml_pss=$(pss "$node_pid")
stop_node "$node_pid"
serve "$work/master"
master_kb=$(rss "$node_pid")
master_pss=$(pss "$node_pid")
stop_node "$node_pid"

echo
echo "### $records records served"
echo
echo "| server | VmRSS (MiB) | PSS (MiB) | bytes per record (VmRSS) | VmRSS vs NSD | PSS vs NSD |"
echo "|---|---:|---:|---:|---:|---:|"
row() {
  awk -v l="$1" -v k="$2" -v p="$3" -v nk="$nsd_kb" -v np="$nsd_pss" -v n="$records" 'BEGIN {
    printf "| %s | %.1f | %.1f | %.0f | %.2f× | %.2f× |\n", l, k / 1024, p / 1024, k * 1024 / n, k / nk, p / np }'
}
row "nsd (master file)" "$nsd_kb" "$nsd_pss"
row "meridian (YAML zone)" "$yaml_kb" "$yaml_pss"
row "meridian (import: master file)" "$master_kb" "$master_pss"

# === edits and reloads ===
# rewrite N: the zone file's h1 answers another address (as a person editing it would).
rewrite() {
  python3 - "$work/yaml/zones/big.test.yaml" "$1" <<'EOP'
import os, sys
path, n = sys.argv[1], int(sys.argv[2])
lines = open(path).read().split("\n")
for i, line in enumerate(lines):
    if line.startswith("  h1: "):
        lines[i] = f"  h1: {{ A: [198.18.{n >> 8 & 255}.{n & 255}] }}"
open(path + ".tmp", "w").write("\n".join(lines))
os.rename(path + ".tmp", path)
EOP
}
api() {
  curl -sS -f -o /dev/null -X "$1" -H "Authorization: Bearer $(cat "$work/admin.token")" \
    -H 'Content-Type: application/json' ${3:+--data "$3"} "http://$node_api$2"
}
series() {
  local what=$1 start=$2
  shift 2
  printf '| %s | %s |' "$what" "$(mib "$start")"
  local i
  for ((i = 1; i <= changes; i++)); do
    "$@" "$i"
    # Read once what the change freed has been handed back (a second after the last change).
    if ((i % 10 == 0)); then sleep 1.5; printf ' %s |' "$(mib "$(rss "$node_pid")")"; fi
  done
  awk -v a="$(rss "$node_pid")" -v b="$start" 'BEGIN {printf " %.2f× |\n", a / b}'
}
edit() {
  api PUT /api/v1/zones/big.test/records/h1 "{\"A\": [\"203.0.113.$(($1 % 250 + 1))\"]}"
}
reload() {
  rewrite "$((1000 + $1))"
  api POST /api/v1/reload
}
echo
echo "### $changes changes, meridian VmRSS (MiB)"
echo
header='| change | start |'
sep='|---|---:|'
for ((i = 10; i <= changes; i += 10)); do header="$header after $i |"; sep="$sep---:|"; done
echo "$header end vs start |"
echo "$sep---:|"
serve "$work/yaml"
series "PUT records/h1" "$(rss "$node_pid")" edit
stop_node "$node_pid"
serve "$work/yaml"
series "reload, zone file changed" "$(rss "$node_pid")" reload
stop_node "$node_pid"

# === TCP connections ===
# tcp_burst PORT: CONNS connections opened together, one query each, every answer read, then
# all closed.
tcp_burst() {
  python3 - "$1" "$conns" <<'EOP'
import socket, struct, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
def query(i):
    name = b"".join(bytes([len(l)]) + l for l in f"h{i}.big.test".encode().split(b".")) + b"\0"
    msg = struct.pack(">HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + name + struct.pack(">HH", 1, 1)
    return struct.pack(">H", len(msg)) + msg
socks = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(query(i))
    socks.append(s)
for s in socks:
    head = b""
    while len(head) < 2:
        chunk = s.recv(2 - len(head))
        if not chunk:
            sys.exit("connection closed before its answer")
        head += chunk
    need = struct.unpack(">H", head)[0]
    while need:
        chunk = s.recv(need)
        if not chunk:
            sys.exit("connection closed in the middle of an answer")
        need -= len(chunk)
for s in socks:
    s.close()
EOP
}
echo
echo "### $conns TCP connections, one query each, VmRSS (MiB)"
echo
echo "| server | before | all answered and closed | 3 s later | growth kept |"
echo "|---|---:|---:|---:|---:|"
start_nsd
read -r before _ < <(nsd_rss)
tcp_burst "$nsd_port"
read -r after _ < <(nsd_rss)
sleep 3
read -r later _ < <(nsd_rss)
printf '| nsd | %s | %s | %s | %s |\n' "$(mib "$before")" "$(mib "$after")" "$(mib "$later")" "$(mib $((later - before)))"
stop_nsd
serve "$work/yaml"
before=$(rss "$node_pid")
tcp_burst "$node_port"
after=$(rss "$node_pid")
sleep 3
later=$(rss "$node_pid")
printf '| meridian | %s | %s | %s | %s |\n' "$(mib "$before")" "$(mib "$after")" "$(mib "$later")" "$(mib $((later - before)))"
stop_node "$node_pid"
