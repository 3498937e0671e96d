#!/usr/bin/env bash
# bench/cache.sh: Magpie's eviction policies against redis-server 7.0's allkeys-lru and
# allkeys-lfu on a cache-aside load (GET, and SET on a miss) over 1M keys of 100-byte values,
# with each server's maxmemory set so that it holds 100k keys (10%) under the load's own churn
# (measured after writing 100k keys, then moved during the warm-up: see cacheload's --hold):
#   (a) Zipf 0.8, (b) Zipf 0.99, (c) Zipf 0.8 with a one-pass scan of twice the cache's size
#   every 100k requests.
# Prints, per server and policy: hit rate (all requests; Zipf requests only), throughput, keys
# held, the top-k mass (the hit rate of a perfect cache of that many keys), and the maxmemory
# that held them.
# Then the probe: maxmemory 100mb, allkeys-lru, 300 MB written; RSS growth against the limit
# and the PING latency of another client (percentiles and worst), and the same without a limit
# (the PINGs' baseline).
#
# Usage: bench/cache.sh [--quick] [--warmup N] [--workloads abc] [--no-probe] [--skip-build]
#   --quick         200k warm-up and 500k measured requests per run (default 1M and 2M)
#   --warmup N      N warm-up requests per run, for every server alike (the frequency policies
#                   need about 10M on (a) and (b) to learn what they can)
#   --workloads W   only these of a, b, c (default abc)
#   --no-probe      skip the probe
#   --skip-build    use the magpie-server already built
# Environment: MAGPIE_BIN, REDIS_BIN, CARGO_TARGET_DIR; POLICIES, Magpie's policies to run
# (default: allkeys-lru allkeys-lfu allkeys-random allkeys-s3fifo allkeys-wtinylfu).
set -euo pipefail

readonly HOST=127.0.0.1
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
MAGPIE_BIN=${MAGPIE_BIN:-$TARGET/release/magpie-server}
REDIS_BIN=${REDIS_BIN:-/usr/bin/redis-server}
WARMUP=1000000
POLICIES=${POLICIES:-allkeys-lru allkeys-lfu allkeys-random allkeys-s3fifo allkeys-wtinylfu}
REQUESTS=2000000
SKIP_BUILD=0
WORKLOADS=abc
PROBE=1
while [ $# -gt 0 ]; do
    case $1 in
        --quick) WARMUP=200000; REQUESTS=500000 ;;
        --warmup) WARMUP=${2:?--warmup needs a number}; shift ;;
        --workloads) WORKLOADS=${2:?--workloads needs a list such as ab}; shift ;;
        --no-probe) PROBE=0 ;;
        --skip-build) SKIP_BUILD=1 ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

if [ "$SKIP_BUILD" = 0 ]; then
    (cd "$ROOT" && cargo build --release -q -p magpie-server)
fi
(cd "$SCRIPT_DIR/cacheload" && cargo build --release -q)
LOAD=$SCRIPT_DIR/cacheload/target/release/cacheload

PID=
cleanup() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start KIND PORT: a fresh server with persistence off.
start() {
    local kind=$1 port=$2
    if [ "$kind" = magpie ]; then
        "$MAGPIE_BIN" --port "$port" --bind $HOST --save "" >/dev/null 2>&1 &
    else
        "$REDIS_BIN" --port "$port" --bind $HOST --save "" --appendonly no >/dev/null 2>&1 &
    fi
    PID=$!
    for _ in $(seq 100); do redis-cli -h $HOST -p "$port" PING >/dev/null 2>&1 && return; sleep 0.05; done
    echo "$kind did not start" >&2; exit 1
}

used() { redis-cli -h $HOST -p "$1" INFO memory | tr -d '\r' | awk -F: '$1=="used_memory"{print $2}'; }
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }

# One run: fresh server, maxmemory = what 100k keys took, then the load (whose warm-up moves
# maxmemory until the server holds 100k keys).
run() {
    local kind=$1 policy=$2 workload=$3
    local port; port=$(free_port)
    start "$kind" "$port"
    "$LOAD" fill --port "$port" --count 100000
    local max; max=$(used "$port")
    redis-cli -h $HOST -p "$port" FLUSHALL SYNC >/dev/null
    redis-cli -h $HOST -p "$port" CONFIG SET maxmemory "$max" >/dev/null
    redis-cli -h $HOST -p "$port" CONFIG SET maxmemory-policy "$policy" >/dev/null
    local args=(--zipf 0.8)
    case $workload in
        b) args=(--zipf 0.99) ;;
        c) args=(--zipf 0.8 --scan) ;;
    esac
    "$LOAD" run --port "$port" "${args[@]}" --warmup "$WARMUP" --requests "$REQUESTS" \
        --label "$kind $policy" --cache 100000 --hold 100000
    cleanup; PID=
}

echo "# cache-aside, 1M keys, 100-byte values, maxmemory set to hold 100k keys; $WARMUP warm-up + $REQUESTS measured requests"
for w in a b c; do
    case $WORKLOADS in *$w*) ;; *) continue ;; esac
    case $w in
        a) echo "## (a) Zipf 0.8" ;;
        b) echo "## (b) Zipf 0.99" ;;
        c) echo "## (c) Zipf 0.8 + scan of 2x the cache every 100k requests" ;;
    esac
    run redis allkeys-lru $w
    run redis allkeys-lfu $w
    for p in $POLICIES; do
        run magpie $p $w
    done
done

[ "$PROBE" = 1 ] || exit 0
echo "## probe: maxmemory 100mb, allkeys-lru, 300 MB of 1 KB values written (and, for the PINGs' baseline, no limit)"
for kind in redis magpie; do
    for limit in 100mb 0; do
        port=$(free_port)
        start "$kind" "$port"
        redis-cli -h $HOST -p "$port" CONFIG SET maxmemory "$limit" >/dev/null
        redis-cli -h $HOST -p "$port" CONFIG SET maxmemory-policy allkeys-lru >/dev/null
        before=$(rss_kib "$PID")
        out=$("$LOAD" probe --port "$port" --bytes $((300 << 20)))
        after=$(rss_kib "$PID")
        echo "$kind maxmemory $limit: $out; RSS grew $(( (after - before) / 1024 )) MB; used_memory $(( $(used "$port") >> 20 )) MB"
        cleanup; PID=
    done
done
