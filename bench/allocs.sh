#!/usr/bin/env bash
# Heap allocations per query, for every kind of answer (static, negative, CNAME chains,
# wildcards, referrals, every policy, ECS, TCP), the UDP worker loop and a TCP connection,
# counted by a counting global allocator in a release build (bench/allocs.rs). Prints a table
# and exits non-zero if anything allocates in steady state.
#
#   bench/allocs.sh [queries per kind, default 10000]
#
# Needs nothing beyond cargo; sends traffic to 127.0.0.1 only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$(dirname "$here")"
ALLOCS_N=${1:-10000} exec cargo bench --quiet --bench allocs
