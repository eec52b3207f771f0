# Shared helpers for the benchmark scripts (sourced, not run).
# Servers run pinned to CPU 0, dnsperf to CPU 1; the figure reported is server CPU µs per
# answered query, read from /proc/PID/stat of every process holding the port.

port=${PORT:-15353}

need() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install dnsperf nsd gdnsd bind9-dnsutils)" >&2; exit 2; }
  done
}

# Every process holding the port (nsd runs a main, a server child and xfrd): all of its CPU counts.
server_pids() {
  ss -Hulpn "sport = :$port" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u
}

cpu_ticks() {
  local total=0
  # utime + stime; the command name may hold spaces ("nsd: main"), so cut it off first.
  for p in $1; do total=$((total + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}'))); done
  echo $total
}

# wait_ready NAME TYPE: until the server answers NAME.
wait_ready() {
  for _ in $(seq 1 100); do
    [ -n "$(dig +short +time=1 +tries=1 @127.0.0.1 -p "$port" "$1" "${2:-A}" 2>/dev/null | grep -v "^;")" ] && return 0
    sleep 0.1
  done
  echo "server on port $port never answered $1" >&2
  return 1
}

# measure LABEL QUERYFILE SECONDS [dnsperf args...]: appends "qps us lost" to $work/LABEL.runs.
measure() {
  local label=$1 queries=$2 secs=$3
  shift 3
  local pids; pids=$(server_pids)
  [ -n "$pids" ] || { echo "no process found on port $port for $label" >&2; return 1; }
  local hz; hz=$(getconf CLK_TCK)
  local before; before=$(cpu_ticks "$pids")
  taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$queries" -l "$secs" -c 8 -q 200 "$@" > "$work/perf.out" 2>&1
  local after; after=$(cpu_ticks "$pids")
  local answered qps lost us
  answered=$(awk '/Queries completed:/ {print $3}' "$work/perf.out")
  qps=$(awk '/Queries per second:/ {print $4}' "$work/perf.out")
  lost=$(awk '/Queries lost:/ {print $3}' "$work/perf.out")
  us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$answered" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
  echo "$qps $us $lost" >> "$work/$(echo "$label" | tr -c 'a-zA-Z0-9\n' _).runs"
}

# report LABEL...: one table row per label, the median of its runs (the first label is the
# reference the ratio column divides by).
report() {
  echo "| server                 |        QPS | CPU µs/q |   lost | CPU/q vs ${1%% *} |"
  echo "|------------------------|-----------:|---------:|-------:|------:|"
  local ref=""
  local label
  for label in "$@"; do
    local f; f="$work/$(echo "$label" | tr -c 'a-zA-Z0-9\n' _).runs"
    local qps us lost
    qps=$(sort -n -k1 "$f" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    us=$(sort -n -k2 "$f" | awk '{a[NR]=$2} END {print a[int((NR+1)/2)]}')
    lost=$(awk '{s+=$3} END {print s}' "$f")
    [ -n "$ref" ] || ref=$us
    printf '| %-22s | %10.0f | %8s | %6s | %5.2f× |\n' "$label" "$qps" "$us" "$lost" "$(awk -v a="$us" -v b="$ref" 'BEGIN {print a / b}')"
  done
}

stop_servers() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  sleep 0.5
}

# serve_node DIR [COMMAND PREFIX...]: `meridian serve` ($bin) of DIR/meridian.yaml on free
# loopback ports (the prefix, e.g. `taskset -c 0`, runs it), until its ready file appears. Sets
# node_pid, node_secs (process start to ready file), node_dns and node_api.
serve_node() {
  local dir=$1
  shift
  rm -f "$dir/ready"
  local t0; t0=$(date +%s.%N)
  "$@" "$bin" serve --config "$dir/meridian.yaml" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
    --ready-file "$dir/ready" >>"$dir/log" 2>&1 &
  node_pid=$!
  until [ -s "$dir/ready" ]; do
    kill -0 "$node_pid" 2>/dev/null || { echo "meridian in $dir exited:" >&2; tail "$dir/log" >&2; exit 1; }
    sleep 0.005
  done
  node_secs=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN {printf "%.3f", a - b}')
  node_dns=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["dns"][0])' "$dir/ready")
  node_api=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["admin"])' "$dir/ready")
}

stop_node() { kill -TERM "$1"; wait "$1" 2>/dev/null || true; }
