#!/usr/bin/env bash
# bench/txnmix.sh: GETs from 50 clients, alone and while 50 other clients run transactions
# (MULTI; INCR k1; INCR k2; EXEC on random keys), against redis-server and one or two
# magpie-server binaries in the same run. Prints, per server, the GETs' throughput and
# p50/p99 latency alone and under the transactions (medians over the rounds), and the ratios.
#
# Usage: bench/txnmix.sh [--rounds N] [--gets N] MAGPIE_BINARY [MAGPIE_BINARY_2]
#   (env: TXBENCH=path to the txbench example, default target/release/examples/txbench)
# Servers may use both cores (taskset -c 0,1: the point is what one transaction's locks do to
# other threads); both load generators run on core 1. The machine is shared: compare the
# ratios of one run, not absolute numbers across runs.
set -euo pipefail
http_off() { "$1" --help 2>/dev/null | grep -q -- --http-port && echo "--http-port 0" || true; }
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
ROUNDS=3 GETS=400000
while [[ $# -gt 0 ]]; do
    case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    --gets) GETS=$2; shift 2 ;;
    -h | --help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
    esac
done
[[ $# -ge 1 ]] || { echo "usage: bench/txnmix.sh [--rounds N] [--gets N] MAGPIE_BINARY [MAGPIE_BINARY_2]" >&2; exit 2; }
TXBENCH=${TXBENCH:-$ROOT/target/release/examples/txbench}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/magpie-txnmix.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
NAMES=(redis) PORTS=()
base=$((20000 + RANDOM % 20000))
PORTS+=("$base")
mkdir -p "$WORK/redis"
(cd "$WORK/redis" && exec taskset -c 0,1 redis-server --port "$base" --bind 127.0.0.1 --save '' --appendonly no) >/dev/null 2>&1 &
PIDS+=($!)
i=0
for bin in "$@"; do
    i=$((i + 1)); port=$((base + i)); name="magpie$i"
    mkdir -p "$WORK/$name"
    # shellcheck disable=SC2046
    (cd "$WORK/$name" && exec taskset -c 0,1 "$bin" --port "$port" $(http_off "$bin") --bind 127.0.0.1 --save '' --appendonly no) >/dev/null 2>&1 &
    PIDS+=($!); NAMES+=("$name"); PORTS+=("$port")
    echo "$name = $bin" >&2
done
for p in "${PORTS[@]}"; do
    for _ in $(seq 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
    # The GETs read existing keys (64-byte values).
    taskset -c 1 redis-benchmark -p "$p" -t set -n 200000 -r 100000 -d 64 -c 50 -P 16 -q >/dev/null
done
# One redis-benchmark GET run: "rps p50 p99" (ms).
gets() {
    taskset -c 1 redis-benchmark -p "$1" -t get -n "$GETS" -r 100000 -d 64 -c 50 --csv |
        awk -F, 'NR == 2 { gsub(/"/, ""); print $2, $5, $7 }'
}
declare -A R=()
for rep in $(seq "$ROUNDS"); do
    for idx in "${!NAMES[@]}"; do
        name=${NAMES[$idx]} port=${PORTS[$idx]}
        alone=$(gets "$port")
        taskset -c 1 "$TXBENCH" "127.0.0.1:$port" 50 600 2 incr >/dev/null 2>&1 &
        tx=$!
        sleep 1.5 # its connections are up and warm
        mixed=$(gets "$port")
        kill "$tx" 2>/dev/null || true
        wait "$tx" 2>/dev/null || true
        echo "[$name] round $rep: alone $alone | with transactions $mixed (rps p50 p99)" >&2
        R[$name.alone]+="$alone;" R[$name.mixed]+="$mixed;"
    done
done
median() { tr ';' '\n' | grep . | awk -v c="$1" '{print $c}' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo "| server | GET/s alone | GET/s with txns | ratio | p50 alone | p50 with | p99 alone (ms) | p99 with (ms) | p99 ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for name in "${NAMES[@]}"; do
    ra=$(median 1 <<<"${R[$name.alone]}") rm_=$(median 1 <<<"${R[$name.mixed]}")
    pa=$(median 2 <<<"${R[$name.alone]}") pm=$(median 2 <<<"${R[$name.mixed]}")
    qa=$(median 3 <<<"${R[$name.alone]}") qm=$(median 3 <<<"${R[$name.mixed]}")
    awk -v n="$name" -v ra="$ra" -v rm="$rm_" -v pa="$pa" -v pm="$pm" -v qa="$qa" -v qm="$qm" \
        'BEGIN { printf "| %s | %.0f | %.0f | %.2f | %.3f | %.3f | %.3f | %.3f | %.2f |\n", n, ra, rm, rm / ra, pa, pm, qa, qm, qm / qa }'
done
echo
echo "loadavg $(cut -d' ' -f1-3 /proc/loadavg); $ROUNDS rounds, medians; $GETS GETs per run, 50 clients; transactions: 50 clients of MULTI + 2 INCR + EXEC; $(redis-server --version | head -n1)"
