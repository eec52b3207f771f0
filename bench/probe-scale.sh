#!/usr/bin/env bash
# Probe scale: 10,000 endpoints, each with its own HTTP check at a 1 s interval, against one
# HTTP server on loopback. Reports the server's CPU use and memory while probing, and the probe
# rate the target saw.
#
#   bench/probe-scale.sh [endpoints, default 10000] [seconds measured, default 20]
#   CHECK=tcp bench/probe-scale.sh    (TCP connect checks instead of HTTP)
#   TARGET=python bench/probe-scale.sh (the target is nginx when installed, else a Python server)
#
# Every endpoint has a distinct check (path /p<N>), so none are shared: N endpoints are N probes.
# Answers use 10.x addresses that are never contacted; probes go to 127.0.100.1 (probe_address).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
n=${1:-10000}
secs=${2:-20}
. "$here/lib.sh"
need python3 dig
(cd "$root" && cargo build --release --quiet)
work=$(mktemp -d /tmp/meridian-bench.XXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; pkill -f "$work/nginx/nginx.conf" 2>/dev/null || true; rm -rf "$work"' EXIT
target_port=18082

check=${CHECK:-http}
python3 - "$work" "$n" "$port" "$target_port" "$check" <<'EOP'
import sys, os
work, n, port, tport, check = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
os.makedirs(f"{work}/zones")
with open(f"{work}/meridian.yaml", "w") as f:
    f.write(f'dns: {{ listen: ["127.0.0.1:{port}"] }}\nlog: {{ level: warn }}\nzones_dir: zones\nhealth: {{ max_concurrent: 512 }}\nchecks:\n')
    for i in range(n):
        if check == "tcp":
            # Distinct checks without paths: the same port under different names would be one
            # probe, so vary the timeout by a microsecond-free step instead: 400ms + i % 100 ms.
            f.write(f"  c{i}: {{ type: tcp, port: {tport}, interval: 1s, timeout: {400 + i % 100}ms, rise: {1 + i // 100 % 10} }}\n")
        else:
            f.write(f"  c{i}: {{ type: http, port: {tport}, path: /p{i}, interval: 1s, timeout: 500ms }}\n")
    f.write("datacenters:\n")
    per = 100
    for d in range((n + per - 1) // per):
        f.write(f"  dc{d}:\n    endpoints:\n")
        for i in range(d * per, min(n, (d + 1) * per)):
            f.write(f"      - {{ address: 10.{i // 65536}.{i // 256 % 256}.{i % 256}, check: c{i}, probe_address: 127.0.100.1 }}\n")
with open(f"{work}/zones/example.com.yaml", "w") as f:
    f.write("zone: example.com\nsoa: { mname: ns1.example.com., rname: h.example.com. }\nns: [ns1.example.com.]\n"
            "records: { ns1: { A: [127.0.0.1] } }\ngslb:\n  www: { policy: failover, datacenters: [dc0, dc1] }\n")
EOP

# The target: answers 200 "ok" and counts requests. nginx (4 workers) when installed: a single
# Python process saturates before Meridian does.
target=${TARGET:-$(command -v nginx >/dev/null && echo nginx || echo python)}
if [ "$target" = nginx ]; then
  mkdir -p "$work/nginx"
  cat > "$work/nginx/nginx.conf" <<EOC
worker_processes 4;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log crit;
events { worker_connections 8192; }
http {
  access_log $work/nginx/access.log;
  client_body_temp_path $work/nginx; proxy_temp_path $work/nginx; fastcgi_temp_path $work/nginx;
  uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
  server { listen 127.0.100.1:$target_port backlog=8192; location / { return 200 "ok"; } }
}
EOC
  nginx -c "$work/nginx/nginx.conf" -g 'daemon off;' &
  target_pid=$!
  count_requests() { wc -l < "$work/nginx/access.log" 2>/dev/null || echo 0; }
  target_ticks() { cpu_ticks "$target_pid $(pgrep -P "$target_pid" | tr '\n' ' ')"; }
else
python3 - "$target_port" "$work/count" "$check" <<'EOP' &
import asyncio, sys, signal
port, out, CHECK = int(sys.argv[1]), sys.argv[2], sys.argv[3]
count = 0
async def handle(r, w):
    global count
    try:
        count += 1
        if CHECK == "tcp":
            w.close()
            return
        await r.readuntil(b"\r\n\r\n")
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await w.drain()
    except Exception:
        pass
    w.close()
async def report():
    while True:
        await asyncio.sleep(0.5)
        open(out, "w").write(str(count))
async def main():
    srv = await asyncio.start_server(handle, "127.0.100.1", port, backlog=4096)
    asyncio.create_task(report())
    async with srv:
        await srv.serve_forever()
asyncio.run(main())
EOP
  target_pid=$!
  count_requests() { cat "$work/count" 2>/dev/null || echo 0; }
  target_ticks() { cpu_ticks "$target_pid"; }
fi
sleep 1
start=$(date +%s.%N)
"$root/target/release/meridian" serve --config "$work/meridian.yaml" &
pid=$!
wait_ready www.example.com
ready=$(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN {printf "%.1f", a - b}')
sleep 5   # let the probes spread over the interval
hz=$(getconf CLK_TCK)
c0=$(count_requests); t0=$(cpu_ticks "$pid"); p0=$(target_ticks); s0=$(date +%s.%N)
sleep "$secs"
c1=$(count_requests); t1=$(cpu_ticks "$pid"); p1=$(target_ticks); s1=$(date +%s.%N)
split=$(sed 's/.*) //' "/proc/$pid/stat" | awk '{printf "%d user / %d system ticks since start", $12, $13}')
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
elapsed=$(awk -v a="$s1" -v b="$s0" 'BEGIN {print a - b}')
answer=$(dig +short @127.0.0.1 -p "$port" www.example.com A | head -1)
echo "probe scale: $n endpoints, distinct $check checks at 1 s, measured over ${secs}s"
echo
echo "| endpoints | probes/s seen by target | server CPU (% of one core) | RSS (MiB) | peak RSS (MiB) | start to ready (s) |"
echo "|----------:|------------------------:|---------------------------:|----------:|---------------:|-------------------:|"
awk -v n="$n" -v c="$((c1 - c0))" -v e="$elapsed" -v t="$((t1 - t0))" -v hz="$hz" -v rss="$rss" -v hwm="$hwm" -v ready="$ready" \
  'BEGIN {printf "| %9d | %23.0f | %26.1f | %9.1f | %14.1f | %18s |\n", n, c / e, 100 * t / hz / e, rss / 1024, hwm / 1024, ready}'
echo
awk -v t="$((p1 - p0))" -v hz="$hz" -v e="$elapsed" -v who="$target" 'BEGIN {printf "(the target (%s) used %.1f%% of a core; the machine has '"$(nproc)"' cores)\n", who, 100 * t / hz / e}'
echo "(Meridian: $split)"
echo "(DNS still answering during the run: www → $answer)"
