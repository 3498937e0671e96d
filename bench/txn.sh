#!/usr/bin/env bash
# bench/txn.sh: MULTI + N SETs + EXEC, side by side with redis-server, in one run.
#
# Starts redis-server and magpie-server (pinned to CPU 0, persistence off, each in a fresh
# temporary directory) and runs the txbench example (crates/magpie-client/examples/txbench.rs,
# pinned to CPU 1) against each in turn, alternating which goes first; prints the medians of
# the transactions per second and the ratio magpie/redis.
#
# Usage: bench/txn.sh [--repeat N] [--clients N] [--seconds S] [--sets N] [--skip-build]
set -euo pipefail
# magpie-server's HTTP API (port 7379 by default) stays off, so that servers never clash;
# builds from before it have no such flag.
http_off() { "$1" --help 2>/dev/null | grep -q -- --http-port && echo "--http-port 0" || true; }
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
REPEAT=3 CLIENTS=50 SECONDS_=5 SETS=10 SKIP_BUILD=0
while [[ $# -gt 0 ]]; do
    case $1 in
    --repeat) REPEAT=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --seconds) SECONDS_=$2; shift 2 ;;
    --sets) SETS=$2; shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    -h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "txn.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release
if [[ $SKIP_BUILD == 0 ]]; then
    (cd "$ROOT" && cargo build --release -p magpie-server -p magpie-client --example txbench) >&2
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/magpie-txn.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
RPORT=$((20000 + RANDOM % 20000)) MPORT=$((RPORT + 1))
mkdir -p "$WORK/redis" "$WORK/magpie"
(cd "$WORK/redis" && exec taskset -c 0 redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no) >/dev/null 2>&1 &
PIDS+=($!)
(cd "$WORK/magpie" && exec taskset -c 0 "$TARGET/magpie-server" --port "$MPORT" $(http_off "$TARGET/magpie-server") --bind 127.0.0.1 --save '' --appendonly no) >/dev/null 2>&1 &
PIDS+=($!)
for p in $RPORT $MPORT; do
    for _ in $(seq 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
done
declare -A R=()
for rep in $(seq "$REPEAT"); do
    order=(redis magpie)
    ((rep % 2)) || order=(magpie redis)
    for name in "${order[@]}"; do
        port=$RPORT
        [[ $name == magpie ]] && port=$MPORT
        tps=$(taskset -c 1 "$TARGET/examples/txbench" "127.0.0.1:$port" "$CLIENTS" "$SECONDS_" "$SETS" | awk '{print $1}')
        echo "[$name] run $rep: $tps transactions/s" >&2
        R[$name]+="$tps "
    done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
r=$(median <<<"${R[redis]}") m=$(median <<<"${R[magpie]}")
echo "| test | clients | redis tx/s | magpie tx/s | magpie/redis |"
echo "|---|---:|---:|---:|---:|"
awk -v r="$r" -v m="$m" -v c="$CLIENTS" -v s="$SETS" 'BEGIN { printf "| MULTI + %d SET + EXEC | %d | %.0f | %.0f | %.2f |\n", s, c, r, m, m / r }'
echo
echo "loadavg $(cut -d' ' -f1-3 /proc/loadavg); $REPEAT runs of ${SECONDS_}s each, medians; $(redis-server --version | head -n1); magpie git $(git -C "$ROOT" rev-parse --short=12 HEAD)"
