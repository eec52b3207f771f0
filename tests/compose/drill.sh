#!/usr/bin/env bash
# The docker-compose drill: a three-member etcd, two Meridian nodes in cluster mode, three data
# centers each on its own region network (its VIP and both nodes), a client with dig. The `init`
# service pushes the shared state (compose/shared.yaml). Health is decided by quorum (majority).
#   1. clients on three continents (ECS) get their region from both nodes;
#   2. ns2 is cut from eu-west's network → ns2 sees eu-west down (its own event), but 1 of 2
#      nodes is not a majority: both nodes keep sending EU clients to eu-west;
#   3. ns2 is connected again → it sees eu-west up again;
#   4. eu-west's VIP stops → both nodes see it down (2 of 2) and send EU clients to the next
#      region within the bound;
#   5. it starts again → EU traffic returns on both;
#   6. ap-south is drained through ns1's admin API (meridian ctl --ca-file in the client) → ns2
#      follows within a second; undrained;
#   7. a record is put through ns2's API → ns1 answers it within a second;
#   8. one etcd member (etcd2) stops → both nodes answer as before, a drain through ns1 still
#      reaches ns2; it starts again;
#   9. the etcd leader stops → the same;
#  10. a second member stops (no quorum) → both nodes answer as before, writes get 503 and
#      /api/v1/status says `disconnected`;
#  11. both members start again → writes work again and a change reaches both nodes.
# The admin API is HTTPS only (admin.tls, the certificate made by the `certs` service): curl
# and meridian ctl verify it against the demo's CA.
# Times are measured in the client container, from the API's answer (or the region's stop or
# start) to each node's new answer; the bound is FOLLOW_BOUND_MS (1 s), or
# DEGRADED_FOLLOW_BOUND_MS (10 s) while an etcd member is down or just back (writes are retried
# on 503 meanwhile, and the 503s counted in the report), or FAILOVER_BOUND_MS for a region.
# Always ends with `down -v`. Needs Docker and Compose (v2 `docker compose` or v1
# `docker-compose`); builds the base image from Debian's packages when it is missing (no
# registry needed).
set -euo pipefail
cd "$(dirname "$0")/../.."
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-meridian-drill}
export MERIDIAN_BASE=${MERIDIAN_BASE:-meridian-base:bookworm}
# Compose v2 (`docker compose`) where it is installed, else v1 (`docker-compose`).
if docker compose version >/dev/null 2>&1; then
  compose() { docker compose "$@"; }
else
  compose() { docker-compose "$@"; }
fi
failover_ms=${FAILOVER_BOUND_MS:-5000}  # a region's stop or start reaches both nodes' answers within
                                   # this: fall or rise (2) × interval (1 s) + timeout + a margin
hold_ms=${HOLD_MS:-5000}           # how long answers must not move with one node cut (5 intervals)
see_ms=${SEE_BOUND_MS:-5000}       # ns2 reports its own view of a cut region within this
follow_ms=${FOLLOW_BOUND_MS:-1000} # a change through one node's API reaches the other within this
degraded_ms=${DEGRADED_FOLLOW_BOUND_MS:-10000}   # the same with an etcd member down or just back
write_bound=${WRITE_BOUND:-20}     # seconds for writes to work again (etcd elects a leader)
NET=${MERIDIAN_NET:-172.28}       # the demo's addresses: $NET.0.0/24 and one /24 per region
NS1=$NET.0.11; NS2=$NET.0.12
US=$NET.1.10; EU=$NET.2.10; AP=$NET.3.10   # each on its region's network, with both nodes
EU_NET=meridian-eu-west; NS2_EU=$NET.2.12     # the network ns2 is cut from, and its address there
NA_CLIENT=10.10.0.0/16; EU_CLIENT=10.20.0.0/16; AP_CLIENT=100.64.0.0/10
RECORD=drill.gslb.example.com; RECORD_A=192.0.2.10
ETCD_ENDPOINTS=http://$NET.0.31:2379,http://$NET.0.32:2379,http://$NET.0.33:2379
report=()
say() { echo "drill: $*"; report+=("$*"); }
fail() {
  echo "drill: FAILED: $*" >&2
  compose logs --tail=50 certs init etcd1 etcd2 etcd3 ns1 ns2 >&2 || true
  exit 1
}

cleanup() { compose down -v --remove-orphans >/dev/null 2>&1 || true; }
trap cleanup EXIT

if [ "$MERIDIAN_BASE" = "meridian-base:bookworm" ]; then bash tests/compose/base-image.sh; fi
cargo build --release --quiet
compose build --quiet 2>/dev/null || compose build
cleanup
compose up -d

token=$(tr -d '\n' < compose/drill.token)

# What runs in the client container (bash there): one exec per step, so that times measured
# are the system's, not docker-compose's. `docker exec` on the container: docker-compose takes
# most of a second to start one.
client_lib='
set -u
CA=/etc/meridian/tls/ca.crt   # the admin API is HTTPS only (admin.tls), its CA from the certs service
now() { date +%s%N; }
ask() {   # ask NODE NAME SUBNET|- → the first address answered (empty on no answer)
  local ecs=(); [ "$3" = - ] || ecs=("+subnet=$3")
  dig +short +time=1 +tries=1 "@$1" "$2" A "${ecs[@]}" 2>/dev/null | grep -v "^;" | head -1 || true
}
snapshot() {   # every answer the drill compares, from both nodes, on one line
  local node out=""; for node in '"$NS1 $NS2"'; do
    out+="$node: NA→$(ask $node www.gslb.example.com '"$NA_CLIENT"')"
    out+=" EU→$(ask $node www.gslb.example.com '"$EU_CLIENT"')"
    out+=" AS→$(ask $node www.gslb.example.com '"$AP_CLIENT"')"
    out+=" '"$RECORD"'→$(ask $node '"$RECORD"' -); "
  done
  echo "${out%; }"
}
# follow T0 BOUND_MS CHECK... with CHECK = node,name,subnet|-,want → for each check, how many
# ms after T0 (date +%s%N) the node answered as wanted (or "late:<answer>" past BOUND_MS). The
# checks are asked in turn, 20 ms apart, so that each time is its own.
follow() {
  local t0=$1 bound=$2; shift 2
  local checks=("$@") at=() last=() left=$# i n name subnet want got
  while :; do
    for i in "${!checks[@]}"; do
      [ -z "${at[$i]:-}" ] || continue
      IFS=, read -r n name subnet want <<< "${checks[$i]}"
      got=$(ask "$n" "$name" "$subnet")
      if [ "$got" = "$want" ]; then at[$i]=$(( ($(now) - t0) / 1000000 )); left=$((left - 1)); else last[$i]=$got; fi
    done
    [ "$left" -gt 0 ] || break
    if [ $(( ($(now) - t0) / 1000000 )) -gt "$bound" ]; then
      for i in "${!checks[@]}"; do [ -n "${at[$i]:-}" ] || at[$i]="late:${last[$i]:-none}"; done
      break
    fi
    sleep 0.02
  done
  echo "${at[*]}"
}
# change METHOD NODE PATH BODY BOUND_MS CHECK... → "CODE API_MS MS..." : the HTTP status, how
# long the API took to answer, and `follow` from that answer.
change() {
  local method=$1 node=$2 path=$3 body=$4 bound=$5; shift 5
  local args=(-s --cacert "$CA" -o /tmp/answer -w "%{http_code}" --max-time 30 -X "$method"
    -H "Authorization: Bearer '"$token"'" -H "Content-Type: application/json")
  [ -z "$body" ] || args+=(-d "$body")
  local t0 t1 code out
  t0=$(now); code=$(curl "${args[@]}" "https://$node:8053/api/v1/$path"); t1=$(now)
  out="$code $(( (t1 - t0) / 1000000 ))"
  case $code in 2??) ;; *) echo "$out $(head -c 300 /tmp/answer | tr "\n" " ")"; return ;; esac
  [ $# -eq 0 ] || out+=" $(follow "$t1" "$bound" "$@")"
  echo "$out"
}
# hold MS CHECK...: asks every check again and again (200 ms apart) for MS milliseconds →
# "held ROUNDS", or "moved NODE ANSWER MS" at the first answer not as wanted.
hold() {
  local ms=$1; shift
  local t0 rounds=0 c n name subnet want got
  t0=$(now)
  while [ $(( ($(now) - t0) / 1000000 )) -lt "$ms" ]; do
    for c in "$@"; do
      IFS=, read -r n name subnet want <<< "$c"
      got=$(ask "$n" "$name" "$subnet")
      if [ "$got" != "$want" ]; then echo "moved $n ${got:-none} $(( ($(now) - t0) / 1000000 ))"; return; fi
    done
    rounds=$((rounds + 1))
    sleep 0.2
  done
  echo "held $rounds"
}
# ctl_change NODE COMMAND BOUND_MS CHECK... → like `change`: "200 CTL_MS MS...", the command
# run with `meridian ctl` (over HTTPS, verified against the CA), or "ctl MS ERROR" when it fails.
ctl_change() {
  local node=$1 command=$2 bound=$3; shift 3
  local t0 t1 out
  t0=$(now)
  if out=$(MERIDIAN_TOKEN='"$token"' meridian ctl --admin "https://$node:8053" --ca-file "$CA" $command 2>&1); then
    t1=$(now)
    echo "200 $(( (t1 - t0) / 1000000 )) $(follow "$t1" "$bound" "$@")"
  else
    echo "ctl $(( ($(now) - t0) / 1000000 )) $(echo "$out" | tr "\n" " ")"
  fi
}
api() {   # api NODE PATH → the answer of GET /api/v1/PATH
  curl -s --cacert "$CA" --max-time 5 -H "Authorization: Bearer '"$token"'" "https://$1:8053/api/v1/$2"
}
link() {   # link NODE → connected or disconnected, from /api/v1/status
  curl -s --cacert "$CA" --max-time 5 -H "Authorization: Bearer '"$token"'" "https://$1:8053/api/v1/status" \
    | grep -o "\"cluster\":{[^}]*}" | grep -o "\"state\":\"[a-z]*\"" | cut -d\" -f4
}
roles() {   # every etcd member that answers: "etcd1=leader etcd2=follower ..."
  ETCDCTL_DIAL_TIMEOUT=1s etcdctl --command-timeout=2s --endpoints='"$ETCD_ENDPOINTS"' endpoint status 2>/dev/null \
    | awk -F", " "{ split(\$1, a, \".\"); sub(/:.*/, \"\", a[4]); printf \"%setcd%d=%s\", (NR > 1 ? \" \" : \"\"), a[4] - 30, (\$5 == \"true\" ? \"leader\" : \"follower\") }"
}
healthy() {   # healthy N: N members answer as members of a cluster with quorum
  [ "$(ETCDCTL_DIAL_TIMEOUT=1s etcdctl --command-timeout=2s --endpoints='"$ETCD_ENDPOINTS"' endpoint health 2>&1 | grep -c "is healthy")" -ge "$1" ]
}
'
client=$(compose ps -q client)
inclient() { docker exec "$client" bash -c "$client_lib"$'\n''"$@"' client "$@"; }

answer() {   # answer NODE SUBNET → the address dig gets (empty on no answer)
  docker exec "$client" dig +short +time=1 +tries=1 "@$1" www.gslb.example.com A "+subnet=$2" 2>/dev/null | grep -v '^;' | head -1 || true
}
expect() {   # expect NODE SUBNET WANT SECONDS: poll until the answer is WANT; prints the seconds it took
  local start=$SECONDS
  while [ "$(answer "$1" "$2")" != "$3" ]; do
    if [ $((SECONDS - start)) -ge "$4" ]; then fail "$1 answered '$(answer "$1" "$2")' for $2, expected $3 within $4 s"; fi
    sleep 0.2
  done
  echo $((SECONDS - start))
}
secs() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }   # milliseconds → seconds
# changed WHAT CHECK-NAMES BOUND_MS RESULT: checks a `change` result: 2xx and every check within
# BOUND_MS; says how long each took.
changed() {
  local what=$1 names=$2 limit=$3 result=$4 code api rest=() i=0 out
  read -r code api rest <<< "$result"; read -ra rest <<< "$rest"
  case $code in 2??) ;; *) fail "$what: HTTP $code (${rest[*]})" ;; esac
  out="$what: the API answered in $(secs "$api")s"
  for name in $names; do
    case ${rest[$i]} in late:*) fail "$what: $name did not follow within ${limit} ms (answered ${rest[$i]#late:})" ;; esac
    out+="; $name answered after $(secs "${rest[$i]}")s"
    i=$((i + 1))
  done
  say "$out"
}
# retried METHOD NODE PATH BODY CHECK...: `change` with the degraded bound, retried while the
# answer is 503 (etcd electing a leader), up to write_bound seconds; prints "RESULT|503s met".
retried() {
  local start=$SECONDS tries=0 result
  while result=$(inclient change "$1" "$2" "$3" "$4" "$degraded_ms" "${@:5}"); [ "${result%% *}" = 503 ]; do
    tries=$((tries + 1))
    [ $((SECONDS - start)) -lt "$write_bound" ] || break
    sleep 0.5
  done
  echo "$result|$tries"
}
running_members() {   # the etcd services running now
  for m in etcd1 etcd2 etcd3; do
    [ "$(docker inspect -f '{{.State.Running}}' "$(compose ps -q $m)" 2>/dev/null)" = true ] && echo -n "$m "
  done
  echo
}

# 0. Both nodes up and answering: the init service pushed the shared state, each node read it
# from etcd (the first round of health checks is done before a data center takes answers).
for node in $NS1 $NS2; do expect "$node" "$NA_CLIENT" "$US" 90 >/dev/null; done
say "both nodes answering; init: $(compose logs --no-color init 2>/dev/null | grep -v '^Attaching' | sed 's/^[^|]*| *//' | grep -v '^$' | tail -1)"
for node in $NS1 $NS2; do
  [ "$(inclient link $node)" = connected ] || fail "$node: /api/v1/status does not say the cluster is connected"
done
say "etcd members: $(inclient roles); both nodes connected"

# 1. Three continents, both nodes.
for node in $NS1 $NS2; do
  [ "$(answer $node $NA_CLIENT)" = "$US" ] || fail "$node: North America not sent to us-east"
  [ "$(answer $node $EU_CLIENT)" = "$EU" ] || fail "$node: Europe not sent to eu-west"
  [ "$(answer $node $AP_CLIENT)" = "$AP" ] || fail "$node: Asia not sent to ap-south"
done
scope=$(docker exec "$client" dig @$NS1 www.gslb.example.com A "+subnet=$EU_CLIENT" | grep -o 'CLIENT-SUBNET: [^ ]*' || true)
say "NA→us-east, EU→eu-west, AS→ap-south on ns1 and ns2 ($scope)"
ids=$(for node in $NS1 $NS2; do
  docker exec "$client" dig +nsid @$node www.gslb.example.com A | grep -o 'NSID: .*' | sed 's/.*("\(.*\)").*/\1/'
done | tr '\n' ' ')
[ "$ids" = "ns1 ns2 " ] || fail "NSID should name ns1 and ns2, got '$ids'"
say "NSID tells the nodes apart: $ids"

# events NODE SUBJECT: the node's recent events (GET /api/v1/events) whose subject matches
# SUBJECT (an extended regular expression), oldest first, one a line: "TIME OLD→NEW: REASON".
events() {
  inclient api "$1" events \
    | grep -oE '"time":"[^"]*","subject":"'"$2"'","old":"[a-z]*","new":"[a-z]*","reason":"([^"\\]|\\.)*"\}' \
    | sed -E 's/^"time":"([^"]*)","subject":"[^"]*","old":"([a-z]*)","new":"([a-z]*)","reason":"(.*)"\}$/\1 \2→\3: \4/' || true
}
# The eu-west target as events name it: its own view on one node (`... seen from ns2`) and the
# cluster's verdict.
EU_TARGET="target http://${NET//./\\.}\\.2\\.10:8080/[^\"]*\\(check vip\\)"
seen_from() { events "$1" "$EU_TARGET seen from $2" | tail -1; }
verdict() { events "$1" "$EU_TARGET" | tail -1; }
# until_seen ADDRESS NODE STATE BOUND_MS: until the node's last own event on eu-west says
# STATE; prints the milliseconds it took.
until_seen() {
  local t0 e; t0=$(date +%s%N)
  until e=$(seen_from "$1" "$2"); [[ "$e" == *"→$3:"* ]]; do
    [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt "$4" ] || fail "$2's own view of eu-west did not turn $3 within $4 ms (last: ${e:-no event})"
    sleep 0.2
  done
  echo $(( ($(date +%s%N) - t0) / 1000000 ))
}
# until_verdict NODE STATE: the node's last cluster verdict event on eu-west, once it says STATE
# (within a second: the answers follow the verdict, its event comes with them).
until_verdict() {
  local t0 e; t0=$(date +%s%N)
  until e=$(verdict "$1"); [[ "$e" == *"→$2:"* ]]; do
    [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 1000 ] || fail "$1: the last cluster verdict event on eu-west is not $2: ${e:-none}"
    sleep 0.1
  done
  echo "${e#* }"
}
eu_answers() {   # what dig shows for Europe on both nodes
  echo "ns1 EU→$(answer $NS1 "$EU_CLIENT") ns2 EU→$(answer $NS2 "$EU_CLIENT")"
}
on_eu=("$NS1,www.gslb.example.com,$EU_CLIENT,$EU" "$NS2,www.gslb.example.com,$EU_CLIENT,$EU")
off_eu=("$NS1,www.gslb.example.com,$EU_CLIENT,$US" "$NS2,www.gslb.example.com,$EU_CLIENT,$US")
# failover WHAT RESULT: checks a `follow` result for both nodes against failover_ms.
failover() {
  local what=$1 a b t; read -r a b <<< "$2"
  for t in "$a" "$b"; do
    [[ $t =~ ^[0-9]+$ ]] || fail "$what: not on both nodes within $failover_ms ms (ns1: ${a:-?}, ns2: ${b:-?})"
  done
  say "$what: ns1 after $(secs "$a")s, ns2 after $(secs "$b")s (bound $(secs "$failover_ms")s); dig: $(eu_answers)"
}

# 2. ns2 is cut from eu-west's network: only ns2's probes fail. ns2 says so in its own events,
# but one node of two seeing it down is not a majority: both keep sending Europe to eu-west.
ns2c=$(compose ps -q ns2); eu_dc=$(compose ps -q dc-eu-west)
before1=$(verdict $NS1); before2=$(verdict $NS2)
docker network disconnect "$EU_NET" "$ns2c"
t=$(until_seen $NS2 ns2 down "$see_ms")
own=$(seen_from $NS2 ns2)
say "ns2 cut from $EU_NET: after $(secs "$t")s ns2's own view says down (${own#* }); dig: $(eu_answers)"
r=$(inclient hold "$hold_ms" "${on_eu[@]}")
case $r in held*) ;; *) fail "ns2 cut from eu-west: the answers moved ($r): 1 of 2 nodes is not a majority" ;; esac
[ "$(verdict $NS1)" = "$before1" ] || fail "ns2 cut from eu-west: ns1's cluster verdict changed: $(verdict $NS1)"
[ "$(verdict $NS2)" = "$before2" ] || fail "ns2 cut from eu-west: ns2's cluster verdict changed: $(verdict $NS2)"
[[ "$(seen_from $NS1 ns1)" != *"→down:"* ]] || fail "ns2 cut from eu-west: ns1 sees eu-west down too: $(seen_from $NS1 ns1)"
say "ns2 cut from eu-west: both nodes kept answering eu-west for $(secs "$hold_ms")s (${r#held } rounds of dig on both; no cluster verdict event); dig: $(eu_answers)"

# 3. ns2 is connected again, at the same address: its own view comes back up.
docker network connect --ip "$NS2_EU" "$EU_NET" "$ns2c"
t=$(until_seen $NS2 ns2 up "$see_ms")
say "ns2 connected to $EU_NET again: after $(secs "$t")s ns2's own view says up; dig: $(eu_answers)"

# 4. eu-west's VIP dies: both nodes see it down, 2 of 2: both move Europe to us-east.
t0=$(date +%s%N)
docker kill "$eu_dc" >/dev/null
failover "eu-west killed: EU clients moved to us-east" "$(inclient follow "$t0" "$failover_ms" "${off_eu[@]}")"
v1=$(until_verdict $NS1 down); v2=$(until_verdict $NS2 down)
say "eu-west killed: the cluster verdict on ns1: $v1; on ns2: $v2"

# 5. It comes back: both nodes see it up again.
docker start "$eu_dc" >/dev/null
t0=$(date +%s%N)
failover "eu-west started: EU clients back on eu-west" "$(inclient follow "$t0" "$failover_ms" "${on_eu[@]}")"
v1=$(until_verdict $NS1 up); v2=$(until_verdict $NS2 up)
say "eu-west started: the cluster verdict on ns1: $v1; on ns2: $v2"

# 6. Drain ap-south through ns1: ns2 follows through etcd. Then undrain.
drained=("$NS1,www.gslb.example.com,$AP_CLIENT,$EU" "$NS2,www.gslb.example.com,$AP_CLIENT,$EU")
undrained=("$NS1,www.gslb.example.com,$AP_CLIENT,$AP" "$NS2,www.gslb.example.com,$AP_CLIENT,$AP")
drain() { inclient ctl_change "$1" "drain ap-south" "$follow_ms" "${drained[@]}"; }
undrain() { inclient change POST "$1" datacenters/ap-south/undrain "" "$follow_ms" "${undrained[@]}"; }
changed "ap-south drained through ns1 with meridian ctl over HTTPS (Asia → eu-west)" "ns1 ns2" "$follow_ms" "$(drain $NS1)"
changed "ap-south undrained through ns1 (Asia → ap-south)" "ns1 ns2" "$follow_ms" "$(undrain $NS1)"

# 7. A record put through ns2 is answered by ns1.
changed "$RECORD A $RECORD_A put through ns2's API" "ns1 ns2" "$follow_ms" "$(inclient change PUT $NS2 \
  zones/gslb.example.com/records/drill "{\"A\": [\"$RECORD_A\"], \"ttl\": 60}" "$follow_ms" \
  "$NS1,$RECORD,-,$RECORD_A" "$NS2,$RECORD,-,$RECORD_A")"
baseline=$(inclient snapshot)
echo "drill: answers now: $baseline"

# unchanged WHEN: both nodes answer exactly as at the baseline.
unchanged() {
  local now; now=$(inclient snapshot)
  [ "$now" = "$baseline" ] || fail "$1: answers changed: $now (before: $baseline)"
}
# member_down_cycle WHAT: with a member down, a drain and an undrain through ns1 reach ns2.
member_down_cycle() {
  local r tries
  unchanged "$1"
  r=$(retried POST $NS1 datacenters/ap-south/drain "" "${drained[@]}"); tries=${r##*|}
  changed "$1: ap-south drained through ns1 (after $tries 503s)" "ns1 ns2" "$degraded_ms" "${r%|*}"
  r=$(retried POST $NS1 datacenters/ap-south/undrain "" "${undrained[@]}"); tries=${r##*|}
  changed "$1: undrained through ns1 (after $tries 503s)" "ns1 ns2" "$degraded_ms" "${r%|*}"
  unchanged "$1, after the drain and undrain"
}
wait_healthy() {   # wait_healthy N WHAT: until N members are healthy; prints the seconds
  local start=$SECONDS
  until inclient healthy "$1"; do
    [ $((SECONDS - start)) -lt 60 ] || fail "$2: etcd has not $1 healthy members after 60 s"
    sleep 0.5
  done
  echo $((SECONDS - start))
}

# unreachable_since TIME: how often each node logged its link to etcd down since TIME.
unreachable_since() {
  local node n out=""
  for node in ns1 ns2; do
    n=$(docker logs --since "$1" "$(compose ps -q $node)" 2>&1 | grep -c 'etcd unreachable' || true)
    out+="$node: $n, "
  done
  echo "${out%, }"
}

# 8. One member stops (etcd2): no outage.
one_down=$(date -u +%Y-%m-%dT%H:%M:%S)
roles=$(inclient roles)
compose stop -t 5 etcd2 >/dev/null 2>&1
say "etcd2 stopped (roles before: $roles; now: $(inclient roles))"
member_down_cycle "etcd2 down"
compose start etcd2 >/dev/null 2>&1
t=$(wait_healthy 3 "etcd2 started")
say "etcd2 started: three healthy members after ${t}s"

# 9. The leader stops: no outage either (etcd elects another).
roles=$(inclient roles)
leader=$(grep -o 'etcd[0-9]=leader' <<< "$roles" | cut -d= -f1 || true)
[ -n "$leader" ] || fail "no etcd leader found in '$roles'"
compose stop -t 5 "$leader" >/dev/null 2>&1
say "the leader $leader stopped (roles before: $roles; now: $(inclient roles))"
member_down_cycle "leader $leader down"
say "while one member was down, each node logged 'etcd unreachable' (then reconnected) this many times: $(unreachable_since "$one_down")"

# 10. A second member stops: no quorum. Answers stay, writes are refused, status says so.
second=$(running_members | awk '{print $1}')
compose stop -t 5 "$second" >/dev/null 2>&1
say "$second stopped too: running $(running_members)(no quorum)"
unchanged "quorum lost"
r=$(inclient change POST $NS1 datacenters/ap-south/drain "" "$follow_ms")
[ "${r%% *}" = 503 ] || fail "a drain through ns1 without quorum: HTTP ${r%% *}, expected 503 ($r)"
say "quorum lost: a drain through ns1 got 503 after $(secs "$(cut -d' ' -f2 <<< "$r")")s: $(cut -d' ' -f3- <<< "$r")"
r=$(inclient change PUT $NS2 zones/gslb.example.com/records/drill '{"A": ["192.0.2.11"]}' "$follow_ms")
[ "${r%% *}" = 503 ] || fail "a record put through ns2 without quorum: HTTP ${r%% *}, expected 503 ($r)"
say "quorum lost: a record put through ns2 got 503 after $(secs "$(cut -d' ' -f2 <<< "$r")")s"
start=$SECONDS
for node in $NS1 $NS2; do
  until [ "$(inclient link $node)" = disconnected ]; do
    [ $((SECONDS - start)) -lt 20 ] || fail "$node: /api/v1/status does not say disconnected 20 s after quorum was lost"
    sleep 0.5
  done
done
say "quorum lost: /api/v1/status says disconnected on both nodes within $((SECONDS - start))s"
unchanged "quorum lost, nodes disconnected"
say "quorum lost: both nodes answer as before ($baseline)"

# 11. Both members start again: writes work again, and a change reaches both nodes.
compose start "$leader" "$second" >/dev/null 2>&1
start=$SECONDS
r=$(retried POST $NS2 datacenters/ap-south/drain "" "${drained[@]}")
changed "$leader and $second started: writes work again after $((SECONDS - start))s (${r##*|} 503s); ap-south drained through ns2" "ns1 ns2" "$degraded_ms" "${r%|*}"
changed "ap-south undrained through ns1" "ns1 ns2" "$degraded_ms" "$(undrain $NS1)"
for node in $NS1 $NS2; do
  [ "$(inclient link $node)" = connected ] || fail "$node: /api/v1/status does not say connected after etcd came back"
done
unchanged "etcd back"
say "etcd back ($(inclient roles)): both nodes connected, answering as before"

echo
echo "drill report"
for line in "${report[@]}"; do echo "  - $line"; done
echo "drill: PASSED"
