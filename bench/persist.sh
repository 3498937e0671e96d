#!/usr/bin/env bash
# bench/persist.sh: snapshots side by side with redis-server, in one run.
#
# For each server (redis first, then magpie; each alone, fresh, in its own temporary
# directory, pinned to CPU 0; the clients on CPU 1):
#   1. load N string keys (bench/resp-gen.awk through redis-cli --pipe);
#   2. SAVE with no other load: the time to write the snapshot;
#   3. BGSAVE while redis-benchmark overwrites random keys (SET, 50 clients, -P 16): the time
#      it takes, and the peak memory of the server and any child it forks (the sum of their
#      PSS from /proc/PID/smaps_rollup, which counts pages shared after fork once) against the
#      memory just before;
#   4. restart on the snapshot: the time from exec to the server answering DBSIZE with N.
# With --log (instead of the steps above), the append-only log's replay: each server started
# with `--appendonly yes --appendfsync everysec` (automatic rewrites off, so the log holds
# every write), N SETs written through redis-cli --pipe, SHUTDOWN (which fsyncs the log), then
# a restart on the log: the time from exec to DBSIZE answering N (Redis replays its
# appendonly.aof.1.incr.aof over an empty base, Magpie its incremental log over an empty base).
#
# Usage: bench/persist.sh [--keys N] [--data-size BYTES] [--magpie-bin PATH] [--skip-build]
#                         [--only redis|magpie] [--log] [--out DIR]
set -euo pipefail
# magpie-server's HTTP API (port 7379 by default) stays off, so that servers never clash;
# builds from before it have no such flag.
http_off() { "$1" --help 2>/dev/null | grep -q -- --http-port && echo "--http-port 0" || true; }

readonly HOST=127.0.0.1
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
KEYS=1000000
DATA_SIZE=64
MAGPIE_BIN=
SKIP_BUILD=0
ONLY=
MODE=snapshot
OUT_DIR=$SCRIPT_DIR/out
SERVER_CPU=0
CLIENT_CPU=1

die() { printf 'persist.sh: error: %s\n' "$*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

while [[ $# -gt 0 ]]; do
    case $1 in
    --keys) KEYS=$2; shift 2 ;;
    --data-size) DATA_SIZE=$2; shift 2 ;;
    --magpie-bin) MAGPIE_BIN=$2; SKIP_BUILD=1; shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --only) ONLY=$2; shift 2 ;;
    --log) MODE=log; shift ;;
    --out) OUT_DIR=$2; shift 2 ;;
    -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
done
[[ $KEYS =~ ^[0-9]+$ && $KEYS -ge 1 ]] || die "--keys must be a positive integer"
for c in redis-server redis-cli redis-benchmark taskset awk; do
    command -v "$c" >/dev/null || die "missing $c (apt-get install redis-server redis-tools util-linux)"
done
if [[ $ONLY != redis ]]; then
    if [[ -z $MAGPIE_BIN ]]; then
        MAGPIE_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/magpie-server
        if [[ $SKIP_BUILD == 0 ]]; then
            log "building: cargo build --release -p magpie-server"
            (cd "$ROOT" && cargo build --release -p magpie-server) || die "build failed"
        fi
    fi
    [[ -x $MAGPIE_BIN ]] || die "no magpie-server at $MAGPIE_BIN"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/magpie-persist-bench.XXXXXX")
PID=
LOADPID=
cleanup() {
    local rc=$?
    [[ -z $LOADPID ]] || kill "$LOADPID" 2>/dev/null || true
    [[ -z $PID ]] || { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; } || true
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT

pick_port() { echo $((20000 + RANDOM % 30000)); }
cli() { timeout 600 redis-cli -h "$HOST" -p "$PORT" "$@"; }

# start NAME: starts the server in $WORK/NAME (its snapshot file, or with --log its
# append-only log, if any, is loaded)
start() {
    local name=$1
    local -a persist=(--save '' --appendonly no)
    [[ $MODE == log ]] && persist=(--save '' --appendonly yes --appendfsync everysec --auto-aof-rewrite-percentage 0)
    mkdir -p "$WORK/$name"
    if [[ $name == redis ]]; then
        (cd "$WORK/$name" && exec taskset -c "$SERVER_CPU" redis-server --port "$PORT" --bind "$HOST" "${persist[@]}") >"$WORK/$name.log" 2>&1 &
    else
        (cd "$WORK/$name" && exec taskset -c "$SERVER_CPU" "$MAGPIE_BIN" --port "$PORT" $(http_off "$MAGPIE_BIN") --bind "$HOST" "${persist[@]}") >"$WORK/$name.log" 2>&1 &
    fi
    PID=$!
}

# wait_keys N: waits until DBSIZE answers N; prints the seconds since $T0
wait_keys() {
    local n
    while :; do
        kill -0 "$PID" 2>/dev/null || { tail "$WORK"/*.log >&2; die "server died"; }
        n=$(redis-cli -h "$HOST" -p "$PORT" dbsize 2>/dev/null || true)
        [[ $n == "$1" ]] && break
        sleep 0.01
    done
    awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'
}

pss_kib() { # the PSS of the server and its children, KiB
    local total=0 p v
    for p in "$PID" $(pgrep -P "$PID" 2>/dev/null || true); do
        v=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

declare -A R_SAVE R_BG R_STEADY R_PEAK R_LOAD R_SIZE
SERVERS=()
[[ $ONLY == magpie ]] || SERVERS+=(redis)
[[ $ONLY == redis ]] || SERVERS+=(magpie)
if [[ $MODE == log ]]; then
    for name in "${SERVERS[@]}"; do
        PORT=$(pick_port)
        start "$name"
        T0=$(date +%s.%N)
        wait_keys 0 >/dev/null
        log "$name: writing $KEYS SETs into the append-only log"
        awk -v type=string -v items="$KEYS" -v size="$DATA_SIZE" -f "$SCRIPT_DIR/resp-gen.awk" |
            taskset -c "$CLIENT_CPU" redis-cli -h "$HOST" -p "$PORT" --pipe --pipe-timeout 120 >/dev/null
        cli shutdown >/dev/null 2>&1 || true
        wait "$PID" 2>/dev/null || true
        PID=
        R_SIZE[$name]=$(du -sk --apparent-size "$WORK/$name/appendonlydir" | cut -f1)
        PORT=$(pick_port)
        T0=$(date +%s.%N)
        start "$name"
        R_LOAD[$name]=$(wait_keys "$KEYS")
        log "$name: restarted and replayed $KEYS SETs in ${R_LOAD[$name]} s (log ${R_SIZE[$name]} KiB)"
        cli shutdown nosave >/dev/null 2>&1 || true
        wait "$PID" 2>/dev/null || true
        PID=
        rm -rf "${WORK:?}/$name"
    done
    mkdir -p "$OUT_DIR"
    TS=$(date -u +%Y%m%dT%H%M%SZ)
    {
        echo "## Log replay: magpie vs redis ($TS)"
        echo
        echo "- host: nproc=$(nproc), $(uname -r), loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "- $(redis-server --version | head -n 1)"
        [[ $ONLY == redis ]] || echo "- magpie: $MAGPIE_BIN, git $(git -C "$ROOT" rev-parse --short=12 HEAD)"
        echo "- $KEYS SETs of $DATA_SIZE-byte values in the log (appendfsync everysec, no rewrite), then a restart"
        echo
        echo "| server | log on disk MiB | replay on restart s |"
        echo "|---|---:|---:|"
        for name in "${SERVERS[@]}"; do
            awk -v n="$name" -v sz="${R_SIZE[$name]}" -v l="${R_LOAD[$name]}" 'BEGIN { printf "| %s | %.1f | %s |\n", n, sz / 1024, l }'
        done
    } | tee "$OUT_DIR/$TS-persist-log.md"
    exit 0
fi
for name in "${SERVERS[@]}"; do
    PORT=$(pick_port)
    start "$name"
    T0=$(date +%s.%N)
    wait_keys 0 >/dev/null
    log "$name: loading $KEYS keys"
    awk -v type=string -v items="$KEYS" -v size="$DATA_SIZE" -f "$SCRIPT_DIR/resp-gen.awk" |
        taskset -c "$CLIENT_CPU" redis-cli -h "$HOST" -p "$PORT" --pipe --pipe-timeout 120 >/dev/null
    sleep 1
    T0=$(date +%s.%N)
    cli save >/dev/null
    R_SAVE[$name]=$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    log "$name: SAVE took ${R_SAVE[$name]} s"

    taskset -c "$CLIENT_CPU" redis-benchmark -h "$HOST" -p "$PORT" -t set -c 50 -P 16 -d "$DATA_SIZE" -r "$KEYS" -n 1000000000 -q >/dev/null 2>&1 &
    LOADPID=$!
    sleep 2
    steady=$(pss_kib)
    peak=$steady
    T0=$(date +%s.%N)
    cli bgsave >/dev/null
    sleep 0.05
    while [[ $(cli info persistence | tr -d '\r' | sed -n 's/^rdb_bgsave_in_progress://p') == 1 ]]; do
        v=$(pss_kib)
        ((v > peak)) && peak=$v
        sleep 0.02
    done
    R_BG[$name]=$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    kill "$LOADPID" 2>/dev/null || true
    wait "$LOADPID" 2>/dev/null || true
    LOADPID=
    R_STEADY[$name]=$steady
    R_PEAK[$name]=$peak
    log "$name: BGSAVE under SET load took ${R_BG[$name]} s; PSS ${steady} KiB before, peak ${peak} KiB"
    cli save >/dev/null # the snapshot the restart loads (with the overwritten values)
    cli shutdown nosave >/dev/null 2>&1 || true
    wait "$PID" 2>/dev/null || true
    PID=
    PORT=$(pick_port)
    T0=$(date +%s.%N)
    start "$name"
    R_LOAD[$name]=$(wait_keys "$KEYS")
    log "$name: restarted and loaded $KEYS keys in ${R_LOAD[$name]} s"
    cli shutdown nosave >/dev/null 2>&1 || true
    wait "$PID" 2>/dev/null || true
    PID=
done

mkdir -p "$OUT_DIR"
TS=$(date -u +%Y%m%dT%H%M%SZ)
{
    echo "## Snapshots: magpie vs redis ($TS)"
    echo
    echo "- host: nproc=$(nproc), $(uname -r), loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- $(redis-server --version | head -n 1)"
    [[ $ONLY == redis ]] || echo "- magpie: $MAGPIE_BIN, git $(git -C "$ROOT" rev-parse --short=12 HEAD)"
    echo "- $KEYS string keys of $DATA_SIZE bytes; BGSAVE under redis-benchmark -t set -c 50 -P 16 -r $KEYS"
    echo
    echo "| server | SAVE s | BGSAVE under load s | PSS before MiB | peak PSS MiB | peak/before | load on restart s |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for name in "${SERVERS[@]}"; do
        awk -v n="$name" -v s="${R_SAVE[$name]}" -v b="${R_BG[$name]}" -v st="${R_STEADY[$name]}" -v pk="${R_PEAK[$name]}" -v l="${R_LOAD[$name]}" \
            'BEGIN { printf "| %s | %s | %s | %.1f | %.1f | %.2f | %s |\n", n, s, b, st / 1024, pk / 1024, pk / st, l }'
    done
} | tee "$OUT_DIR/$TS-persist.md"
