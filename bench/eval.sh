#!/usr/bin/env bash
# bench/eval.sh: EVALSHA of a small script (INCR + EXPIRE) and of a 20-command script, side by
# side with redis-server, in one run.
#
# Starts redis-server and magpie-server (pinned to CPU 0, persistence off, each in a fresh
# temporary directory), loads both scripts into each with SCRIPT LOAD, and runs
# redis-benchmark (pinned to CPU 1) with EVALSHA against each in turn, alternating which goes
# first; prints the median requests per second and the ratio magpie/redis for each script and
# pipeline depth, and the same per server CPU-second (requests over the user + system time
# the server used during the run, all its threads: steadier on a shared machine).
#
# Usage: bench/eval.sh [--repeat N] [--clients N] [--requests N] [--pipelines LIST]
#                      [--keyspace N] [--skip-build] [--magpie-bin PATH]
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
REPEAT=3 CLIENTS=50 REQUESTS=200000 PIPELINES=1,16 KEYSPACE=100000 SKIP_BUILD=0 MAGPIE_BIN=
while [[ $# -gt 0 ]]; do
    case $1 in
    --repeat) REPEAT=$2; shift 2 ;;
    --clients) CLIENTS=$2; shift 2 ;;
    --requests) REQUESTS=$2; shift 2 ;;
    --pipelines) PIPELINES=$2; shift 2 ;;
    --keyspace) KEYSPACE=$2; shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --magpie-bin) MAGPIE_BIN=$2; SKIP_BUILD=1; shift 2 ;;
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "eval.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
for c in redis-server redis-benchmark redis-cli taskset; do
    command -v "$c" >/dev/null || { echo "eval.sh: $c is missing (apt-get install redis-server redis-tools util-linux)" >&2; exit 1; }
done
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release
: "${MAGPIE_BIN:=$TARGET/magpie-server}"
if [[ $SKIP_BUILD == 0 ]]; then
    (cd "$ROOT" && cargo build --release -p magpie-server) >&2
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/magpie-eval.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
RPORT=$((20000 + RANDOM % 20000)) MPORT=$((RPORT + 1))
mkdir -p "$WORK/redis" "$WORK/magpie"
(cd "$WORK/redis" && exec taskset -c 0 redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no) >/dev/null 2>&1 &
PIDS+=($!)
# --http-port 0: magpie's HTTP API (port 7379 by default) stays off, so that a second server
# on this machine does not stop this one from starting.
(cd "$WORK/magpie" && exec taskset -c 0 "$MAGPIE_BIN" --port "$MPORT" --bind 127.0.0.1 --save '' --appendonly no --http-port 0) >/dev/null 2>&1 &
PIDS+=($!)
for p in $RPORT $MPORT; do
    up=0
    for _ in $(seq 300); do redis-cli -p "$p" ping >/dev/null 2>&1 && { up=1; break; }; sleep 0.1; done
    [[ $up == 1 ]] || { echo "eval.sh: the server on port $p did not start" >&2; exit 1; }
done

# The two scripts, and their SHA1s (the same on both servers: SCRIPT LOAD returns it).
SMALL="local n = redis.call('INCR', KEYS[1]) redis.call('EXPIRE', KEYS[1], 100) return n"
TWENTY="local k = KEYS[1] for i = 1, 10 do redis.call('INCR', k) redis.call('GET', k) end return 20"
declare -A SHA=()
for p in $RPORT $MPORT; do
    SHA[small]=$(redis-cli -p "$p" script load "$SMALL")
    SHA[twenty]=$(redis-cli -p "$p" script load "$TWENTY")
done

# CPU time (user + system, all threads) a server has used, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)
declare -A SPID=([redis]=${PIDS[0]} [magpie]=${PIDS[1]})
declare -A R=() C=()
IFS=, read -r -a PIPE_LIST <<<"$PIPELINES"
for rep in $(seq "$REPEAT"); do
    order=(redis magpie)
    ((rep % 2)) || order=(magpie redis)
    for script in small twenty; do
        for pipe in "${PIPE_LIST[@]}"; do
            for name in "${order[@]}"; do
                port=$RPORT
                [[ $name == magpie ]] && port=$MPORT
                t0=$(cpu_ticks "${SPID[$name]}")
                rps=$(taskset -c 1 redis-benchmark -p "$port" -c "$CLIENTS" -n "$REQUESTS" -P "$pipe" -r "$KEYSPACE" --csv \
                    evalsha "${SHA[$script]}" 1 key:__rand_int__ | tail -n1 | cut -d, -f2 | tr -d '"')
                t1=$(cpu_ticks "${SPID[$name]}")
                per_cpu=$(awk -v n="$REQUESTS" -v t=$((t1 - t0)) -v hz="$TCK" 'BEGIN { printf "%.0f", (t > 0 ? n * hz / t : 0) }')
                echo "[$name] $script P$pipe run $rep: $rps requests/s, $per_cpu per server CPU-second" >&2
                R[$name/$script/$pipe]+="$rps "
                C[$name/$script/$pipe]+="$per_cpu "
            done
        done
    done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo "| script | pipeline | redis req/s | magpie req/s | magpie/redis | redis per CPU-s | magpie per CPU-s | magpie/redis per CPU-s |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for script in small twenty; do
    for pipe in "${PIPE_LIST[@]}"; do
        r=$(median <<<"${R[redis/$script/$pipe]}") m=$(median <<<"${R[magpie/$script/$pipe]}")
        rc=$(median <<<"${C[redis/$script/$pipe]}") mc=$(median <<<"${C[magpie/$script/$pipe]}")
        label="EVALSHA INCR + EXPIRE"
        [[ $script == twenty ]] && label="EVALSHA 10 x (INCR + GET)"
        awk -v l="$label" -v p="$pipe" -v r="$r" -v m="$m" -v rc="$rc" -v mc="$mc" 'BEGIN {
            printf "| %s | %d | %.0f | %.0f | %.2f | %.0f | %.0f | %.2f |\n", l, p, r, m, m / r, rc, mc, (rc > 0 ? mc / rc : 0) }'
    done
done
echo
echo "loadavg $(cut -d' ' -f1-3 /proc/loadavg); $REPEAT runs each, medians; $CLIENTS clients, $REQUESTS requests, keyspace $KEYSPACE;" \
    "$(redis-server --version | head -n1); magpie git $(git -C "$ROOT" rev-parse --short=12 HEAD)"
