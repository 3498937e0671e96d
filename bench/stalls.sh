#!/usr/bin/env bash
# bench/stalls.sh: how long other clients wait while the server does heavy work, magpie and
# redis-server side by side in one run.
#
# For each scenario and each server (redis first, then magpie; each fresh, in its own temporary
# directory, pinned to CPU 0; the probe and the load on CPU 1), the probe
# (crates/magpie-client/examples/stallprobe.rs) sends PING on its own connection about every
# millisecond and reports the worst and the 99th/99.9th percentile reply time while:
#   set-grow     one client SADDs one set to --members members (pipelined by 100): every
#                table growth of a big set happens during the window;
#   list-bgsave  a list of --elements 64-byte elements is written (LPUSH/RPOP pairs) from
#                BGSAVE until the snapshot is finished;
#   rewrite      --keys 64-byte strings are overwritten at random (SET, pipelined by 50)
#                during BGREWRITEAOF (window `rewrite`), then during BGSAVE (`bgsave`).
#
# Usage: bench/stalls.sh [--members N] [--elements N] [--keys N] [--scenarios a,b,c]
#                        [--repeat R] [--magpie-bin PATH] [--skip-build] [--only redis|magpie]
#                        [--out DIR]
# Each cell of the table is the median over the repetitions of that run's value (every run's
# values are printed as they come, on stderr).
set -euo pipefail

readonly HOST=127.0.0.1
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
MEMBERS=4000000
ELEMENTS=4000000
KEYS=3000000
SCENARIOS=set-grow,list-bgsave,rewrite
REPEAT=1
MAGPIE_BIN=
SKIP_BUILD=0
ONLY=
OUT_DIR=$SCRIPT_DIR/out
SERVER_CPU=0
CLIENT_CPU=1

die() { printf 'stalls.sh: error: %s\n' "$*" >&2; exit 1; }
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

while [[ $# -gt 0 ]]; do
    case $1 in
    --members) MEMBERS=$2; shift 2 ;;
    --elements) ELEMENTS=$2; shift 2 ;;
    --keys) KEYS=$2; shift 2 ;;
    --scenarios) SCENARIOS=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --magpie-bin) MAGPIE_BIN=$2; SKIP_BUILD=1; shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --only) ONLY=$2; shift 2 ;;
    --out) OUT_DIR=$2; shift 2 ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
done
for n in "$MEMBERS" "$ELEMENTS" "$KEYS" "$REPEAT"; do
    [[ $n =~ ^[0-9]+$ && $n -ge 1 ]] || die "counts must be positive integers"
done
for c in redis-server redis-cli taskset awk; do
    command -v "$c" >/dev/null || die "missing $c (apt-get install redis-server redis-tools util-linux)"
done
[[ $(nproc) -ge 2 ]] || die "needs 2 CPUs (server on CPU $SERVER_CPU, probe on CPU $CLIENT_CPU)"

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [[ $SKIP_BUILD == 0 ]]; then
    log "building: cargo build --release -p magpie-server, and the probe"
    (cd "$ROOT" && cargo build --release -p magpie-server && cargo build --release -p magpie-client --example stallprobe) ||
        die "build failed"
elif [[ ! -x $TARGET/release/examples/stallprobe ]]; then
    (cd "$ROOT" && cargo build --release -p magpie-client --example stallprobe) || die "build of the probe failed"
fi
PROBE=$TARGET/release/examples/stallprobe
[[ -n $MAGPIE_BIN ]] || MAGPIE_BIN=$TARGET/release/magpie-server
[[ $ONLY == redis || -x $MAGPIE_BIN ]] || die "no magpie-server at $MAGPIE_BIN"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/magpie-stalls-bench.XXXXXX")
PID=
KEEP_LOGS=${KEEP_LOGS:-}
cleanup() {
    local rc=$?
    [[ -z $PID ]] || { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; } || true
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT

pick_port() { echo $((20000 + RANDOM % 30000)); }

# start NAME: a fresh server in $WORK/NAME on a free port (another is tried if the one picked
# is taken), no snapshot schedule, no log (the scenarios turn on what they use)
start() {
    local name=$1 attempt
    for attempt in 1 2 3 4 5; do
        PORT=$(pick_port)
        rm -rf "${WORK:?}/$name"
        mkdir -p "$WORK/$name"
        if [[ $name == redis ]]; then
            (cd "$WORK/$name" && exec taskset -c "$SERVER_CPU" redis-server --port "$PORT" --bind "$HOST" --save '' --appendonly no) >"$WORK/$name.log" 2>&1 &
        else
            (cd "$WORK/$name" && exec taskset -c "$SERVER_CPU" "$MAGPIE_BIN" --port "$PORT" --bind "$HOST" --save '' --appendonly no) >"$WORK/$name.log" 2>&1 &
        fi
        PID=$!
        for _ in $(seq 1000); do
            kill -0 "$PID" 2>/dev/null || break
            # Ours, not another program's server on the same port.
            redis-cli -h "$HOST" -p "$PORT" info server 2>/dev/null | tr -d '\r' | grep -qx "process_id:$PID" && return
            sleep 0.01
        done
        kill "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
        PID=
        grep -qi 'address already in use' "$WORK/$name.log" || break
        log "port $PORT is taken; trying another"
    done
    tail "$WORK/$name.log" >&2
    die "$name did not start"
}

stop() {
    redis-cli -h "$HOST" -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
    wait "$PID" 2>/dev/null || true
    PID=
}

# RUNS[server/window] = one "max p99 p999" line per repetition
declare -A RUNS
SERVERS=()
[[ $ONLY == magpie ]] || SERVERS+=(redis)
[[ $ONLY == redis ]] || SERVERS+=(magpie)
IFS=, read -r -a SCENARIO_LIST <<<"$SCENARIOS"
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
for scenario in "${SCENARIO_LIST[@]}"; do
    case $scenario in
    set-grow) args=(set-grow "$MEMBERS" 100) ;;
    list-bgsave) args=(list-bgsave "$ELEMENTS") ;;
    rewrite) args=(rewrite "$KEYS") ;;
    *) die "unknown scenario $scenario" ;;
    esac
    for ((r = 1; r <= REPEAT; r++)); do
        for name in "${SERVERS[@]}"; do
            start "$name"
            log "$name: $scenario (${args[*]}), run $r"
            out=$(taskset -c "$CLIENT_CPU" "$PROBE" "$HOST" "$PORT" "${args[@]}") || die "the probe failed against $name"
            printf '%s\n' "$out" | sed "s/^/    $name: /" >&2
            while read -r line; do
                window=$(sed -n 's/^window=\([^ ]*\).*/\1/p' <<<"$line")
                vals=$(awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } print v["max_ms"], v["p99_ms"], v["p999_ms"] }' <<<"$line")
                RUNS[$name/$window]+="$vals"$'\n'
            done <<<"$out"
            stop
        done
    done
done

# median COLUMN < lines: the median of one column (the mean of the middle two for an even count)
median() {
    awk -v c="$1" 'NF { print $c }' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
cell() { # cell SERVER/WINDOW -> "max p99 p999" medians, or "- - -"
    local runs=${RUNS[$1]:-}
    if [[ -z $runs ]]; then echo "- - -"; return; fi
    echo "$(median 1 <<<"$runs") $(median 2 <<<"$runs") $(median 3 <<<"$runs")"
}

mkdir -p "$OUT_DIR"
TS=$(date -u +%Y%m%dT%H%M%SZ)
{
    echo "## Stalls: magpie vs redis ($TS)"
    echo
    echo "- host: nproc=$(nproc), $(uname -r), loadavg at start $LOADAVG"
    echo "- $(redis-server --version | head -n 1)"
    if [[ $ONLY != redis ]]; then
        dirty=$(git -C "$ROOT" status --porcelain --untracked-files=no | grep -q . && echo " + uncommitted changes" || true)
        echo "- magpie: $MAGPIE_BIN, git $(git -C "$ROOT" rev-parse --short=12 HEAD)$dirty"
    fi
    echo "- servers on CPU $SERVER_CPU, probe and load on CPU $CLIENT_CPU; PING every ~1 ms on a second connection"
    echo "- set-grow: SADD to $MEMBERS members (pipeline 100); list-bgsave: $ELEMENTS-element list, LPUSH/RPOP during BGSAVE;"
    echo "  rewrite/bgsave: $KEYS keys, random SET (pipeline 50) during BGREWRITEAOF, then during BGSAVE"
    echo "- median of $REPEAT run(s) per cell; PING reply times in ms"
    echo
    echo "| window | redis max | magpie max | redis p99 | magpie p99 | redis p99.9 | magpie p99.9 |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for window in set-grow list-bgsave rewrite bgsave; do
        r=$(cell "redis/$window")
        m=$(cell "magpie/$window")
        [[ $r == "- - -" && $m == "- - -" ]] && continue
        read -r rmax rp99 rp999 <<<"$r"
        read -r mmax mp99 mp999 <<<"$m"
        echo "| $window | $rmax | $mmax | $rp99 | $mp99 | $rp999 | $mp999 |"
    done
    echo
    echo "Command: bench/stalls.sh --members $MEMBERS --elements $ELEMENTS --keys $KEYS --scenarios $SCENARIOS --repeat $REPEAT"
} | tee "$OUT_DIR/$TS-stalls.md"
