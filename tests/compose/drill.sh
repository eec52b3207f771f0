#!/usr/bin/env bash
# The docker-compose drill: two Meridian nodes, three data centers, a client with dig.
#   1. clients on three continents (ECS) get their region from both nodes;
#   2. eu-west's VIP stops → both nodes send EU clients to the next region within the bound;
#   3. it starts again → EU traffic returns;
#   4. ap-south is drained through ns1's admin API → ns1 moves AP clients, ns2 (own state) does not.
# Always ends with `docker-compose down -v`. Needs Docker and docker-compose; builds the base
# image from Debian's packages when it is missing (no registry needed).
set -euo pipefail
cd "$(dirname "$0")/../.."
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-meridian-drill}
export MERIDIAN_BASE=${MERIDIAN_BASE:-meridian-base:bookworm}
compose() { docker-compose "$@"; }
bound=${FAILOVER_BOUND:-10}   # seconds: fall (2) × interval (1 s) + probe phase + TTL-free margin
US=172.28.0.21; EU=172.28.0.22; AP=172.28.0.23
NA_CLIENT=10.10.0.0/16; EU_CLIENT=10.20.0.0/16; AP_CLIENT=100.64.0.0/10
report=()
say() { echo "drill: $*"; report+=("$*"); }
fail() { echo "drill: FAILED: $*" >&2; compose logs --tail=50 ns1 ns2 >&2 || true; exit 1; }

cleanup() { compose down -v --remove-orphans >/dev/null 2>&1 || true; }
trap cleanup EXIT

if [ "$MERIDIAN_BASE" = "meridian-base:bookworm" ]; then bash tests/compose/base-image.sh; fi
cargo build --release --quiet
compose build --quiet 2>/dev/null || compose build
cleanup
compose up -d

answer() {   # answer NODE SUBNET → the address dig gets (empty on no answer)
  compose exec -T client dig +short +time=1 +tries=1 "@$1" www.gslb.example.com A "+subnet=$2" 2>/dev/null | grep -v '^;' | head -1 || true
}
expect() {   # expect NODE SUBNET WANT SECONDS: poll until the answer is WANT; prints the seconds it took
  local start=$SECONDS
  while [ "$(answer "$1" "$2")" != "$3" ]; do
    if [ $((SECONDS - start)) -ge "$4" ]; then fail "$1 answered '$(answer "$1" "$2")' for $2, expected $3 within $4 s"; fi
    sleep 0.2
  done
  echo $((SECONDS - start))
}

# 0. Both nodes up and answering (the first round of health checks is done before they answer).
for node in 172.28.0.11 172.28.0.12; do expect "$node" "$NA_CLIENT" "$US" 60 >/dev/null; done
say "both nodes answering"

# 1. Three continents, both nodes.
for node in 172.28.0.11 172.28.0.12; do
  [ "$(answer $node $NA_CLIENT)" = "$US" ] || fail "$node: North America not sent to us-east"
  [ "$(answer $node $EU_CLIENT)" = "$EU" ] || fail "$node: Europe not sent to eu-west"
  [ "$(answer $node $AP_CLIENT)" = "$AP" ] || fail "$node: Asia not sent to ap-south"
done
scope=$(compose exec -T client dig @172.28.0.11 www.gslb.example.com A "+subnet=$EU_CLIENT" | grep -o 'CLIENT-SUBNET: [^ ]*' || true)
say "NA→us-east, EU→eu-west, AS→ap-south on ns1 and ns2 ($scope)"
ids=$(for node in 172.28.0.11 172.28.0.12; do
  compose exec -T client dig +nsid @$node www.gslb.example.com A | grep -o 'NSID: .*' | sed 's/.*("\(.*\)").*/\1/'
done | tr '\n' ' ')
[ "$ids" = "ns1 ns2 " ] || fail "NSID should name ns1 and ns2, got '$ids'"
say "NSID tells the nodes apart: $ids"

# 2. eu-west's VIP dies: both nodes move EU clients to us-east, each by its own probes.
compose stop -t 1 dc-eu-west >/dev/null 2>&1
t1=$(expect 172.28.0.11 "$EU_CLIENT" "$US" "$bound")
t2=$(expect 172.28.0.12 "$EU_CLIENT" "$US" "$bound")
say "eu-west stopped: EU clients moved to us-east on ns1 after ${t1}s, ns2 after ${t2}s (bound ${bound}s)"

# 3. It comes back.
compose start dc-eu-west >/dev/null 2>&1
t1=$(expect 172.28.0.11 "$EU_CLIENT" "$EU" "$bound")
t2=$(expect 172.28.0.12 "$EU_CLIENT" "$EU" "$bound")
say "eu-west started: EU clients back on ns1 after ${t1}s, ns2 after ${t2}s"

# 4. Drain ap-south on ns1 only.
token=$(tr -d '\n' < compose/drill.token)
code=$(compose exec -T client curl -s -o /dev/null -w '%{http_code}' -X POST \
  -H "Authorization: Bearer $token" http://172.28.0.11:8053/api/v1/datacenters/ap-south/drain)
[ "$code" = "200" ] || fail "drain through ns1's admin API returned $code"
[ "$(answer 172.28.0.11 $AP_CLIENT)" = "$EU" ] || fail "ns1 still sends Asia to ap-south after the drain"
[ "$(answer 172.28.0.12 $AP_CLIENT)" = "$AP" ] || fail "ns2 changed though only ns1 was drained"
say "ap-south drained on ns1: ns1 sends Asia to eu-west at once; ns2 still to ap-south"

echo
echo "drill report"
for line in "${report[@]}"; do echo "  - $line"; done
echo "drill: PASSED"
