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

# cpu_ticks PIDS: "utime stime" summed over PIDS, in clock ticks.
cpu_ticks() {
  local user=0 sys=0 u s
  # The command name may hold spaces ("nsd: main"), so cut it off first.
  for p in $1; do
    read -r u s < <(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12, $13}')
    user=$((user + u)); sys=$((sys + s))
  done
  echo "$user $sys"
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

# measure LABEL QUERYFILE SECONDS [dnsperf args...]: appends "qps us lost user_us sys_us" to
# $work/LABEL.runs. DNSPERF_CPUS: where dnsperf runs (default CPU 1).
measure() {
  local label=$1 queries=$2 secs=$3
  shift 3
  local pids; pids=$(server_pids)
  [ -n "$pids" ] || { echo "no process found on port $port for $label" >&2; return 1; }
  local hz; hz=$(getconf CLK_TCK)
  local u0 s0 u1 s1
  read -r u0 s0 < <(cpu_ticks "$pids")
  taskset -c "${DNSPERF_CPUS:-1}" dnsperf -s 127.0.0.1 -p "$port" -d "$queries" -l "$secs" -c 8 -q 200 "$@" > "$work/perf.out" 2>&1
  read -r u1 s1 < <(cpu_ticks "$pids")
  local answered qps lost
  answered=$(awk '/Queries completed:/ {print $3}' "$work/perf.out")
  qps=$(awk '/Queries per second:/ {print $4}' "$work/perf.out")
  lost=$(awk '/Queries lost:/ {print $3}' "$work/perf.out")
  awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$hz" -v n="$answered" -v qps="$qps" -v lost="$lost" \
    'BEGIN {printf "%s %.2f %s %.2f %.2f\n", qps, (u + s) / hz * 1e6 / n, lost, u / hz * 1e6 / n, s / hz * 1e6 / n}' \
    >> "$work/$(echo "$label" | tr -c 'a-zA-Z0-9\n' _).runs"
}

# report LABEL...: one table row per label, the median of its runs (the first label is the
# reference the ratio columns divide by): QPS, CPU µs per query and its user-space part.
report() {
  echo "| server                 |        QPS | CPU µs/q | user µs/q | system µs/q |   lost | CPU/q vs ${1%% *} | user/q vs ${1%% *} |"
  echo "|------------------------|-----------:|---------:|----------:|------------:|-------:|------:|------:|"
  local ref="" uref=""
  local label
  for label in "$@"; do
    local f; f="$work/$(echo "$label" | tr -c 'a-zA-Z0-9\n' _).runs"
    local qps us lost user sys
    median() { sort -n -k"$1" "$f" | awk -v k="$1" '{a[NR]=$k} END {print a[int((NR+1)/2)]}'; }
    qps=$(median 1); us=$(median 2); user=$(median 4); sys=$(median 5)
    lost=$(awk '{s+=$3} END {print s}' "$f")
    [ -n "$ref" ] || { ref=$us; uref=$user; }
    printf '| %-22s | %10.0f | %8s | %9s | %11s | %6s | %5.2f× | %5.2f× |\n' "$label" "$qps" "$us" "$user" "$sys" "$lost" \
      "$(awk -v a="$us" -v b="$ref" 'BEGIN {print a / b}')" "$(awk -v a="$user" -v b="$uref" 'BEGIN {print (b > 0 ? a / b : 0)}')"
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

# MODE=instructions: instead of CPU time under load, each server's user-space instructions per
# query, counted by valgrind's callgrind (`wrap` goes before the server's command in the start
# functions). Instruction counts repeat run after run, whatever else the machine is doing, so
# they compare user-space work where CPU time is too noisy to; the kernel's share is not in them.
# Each server runs twice, answering 5,000 and then 25,000 queries (100 lines of the query file,
# 50 and 250 times, one client): the difference divided by 20,000 leaves start-up and shutdown out.
wrap=""
mode=${MODE:-cpu}
[ "$mode" != instructions ] || need valgrind

# instructions LABEL START STOP QUERYFILE [dnsperf args...]: appends the instructions per query
# of the server START starts (STOP stops it) to $work/LABEL.instr.
instructions() {
  local label=$1 start=$2 stop=$3 queries=$4
  shift 4
  head -n 100 "$queries" > "$work/q100"
  local totals=() n
  for n in 50 250; do
    wrap="valgrind --tool=callgrind --trace-children=yes --callgrind-out-file=$work/callgrind.%p"
    "$start" > "$work/vg.log" 2>&1
    wrap=""
    wait_ready static.example.com
    taskset -c "${DNSPERF_CPUS:-1}" dnsperf -s 127.0.0.1 -p "$port" -d "$work/q100" -n "$n" -c 1 -q 20 "$@" > "$work/perf.out" 2>&1
    grep -Eq "Queries lost: +0 " "$work/perf.out" || { echo "$label: queries lost under valgrind" >&2; cat "$work/perf.out" >&2; }
    "$stop"
    # Every process of the server (NSD forks): the sum of their counts.
    totals+=("$(grep -h "Collected" "$work/vg.log" | awk '{gsub(",", "", $4); s += $4} END {print s}')")
    rm -f "$work"/callgrind.*
  done
  echo $(( (totals[1] - totals[0]) / 20000 )) >> "$work/$(echo "$label" | tr -c 'a-zA-Z0-9\n' _).instr"
}

# report_instructions LABEL...: instructions per query, and each against the first label's.
report_instructions() {
  echo "| server                 | instructions/q | vs ${1%% *} |"
  echo "|------------------------|---------------:|------:|"
  local ref="" label
  for label in "$@"; do
    local i; i=$(sort -n "$work/$(echo "$label" | tr -c 'a-zA-Z0-9\n' _).instr" | head -1)
    [ -n "$ref" ] || ref=$i
    printf '| %-22s | %14s | %5.2f× |\n' "$label" "$i" "$(awk -v a="$i" -v b="$ref" 'BEGIN {print a / b}')"
  done
}
