#!/bin/bash
# Paired A/B of two magpie-server builds' load time at start: a snapshot of N keys (16-byte
# keys, 64-byte values), or a log of N SETs, written once by build A, then each build
# restarted on the same files in turn, pinned to CPU 0, ROUNDS times. The time is the one
# the server logs for the load itself ("snapshot loaded ... in X s", "append-only log loaded
# in X s"), so the process's start and the client's polling are not in it; bench/persist.sh
# gives the time from exec to DBSIZE, against redis-server.
#
#   bench/ab-load.sh A_BINARY B_BINARY [snapshot|log] [ROUNDS]     (env: KEYS=1000000 PORT=7041)
#
# Prints each round's two times and B/A, then the medians.
set -euo pipefail
A=$1; B=$2; MODE=${3:-snapshot}; ROUNDS=${4:-7}; KEYS=${KEYS:-1000000}; PORT=${PORT:-7041}
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=$(mktemp -d); OUT=$(mktemp)
PID=
cleanup() { [[ -z $PID ]] || kill -9 "$PID" 2>/dev/null || true; rm -rf "$DIR" "$OUT"; }
trap cleanup EXIT
case $MODE in
snapshot) FLAGS=(--save '' --appendonly no); PATTERN='snapshot loaded: .* in [0-9.]+ s' ;;
log) FLAGS=(--save '' --appendonly yes --appendfsync everysec --auto-aof-rewrite-percentage 0); PATTERN='log loaded in [0-9.]+ s' ;;
*) echo "ab-load.sh: snapshot or log, not $MODE" >&2; exit 2 ;;
esac

# start BIN: the server in $DIR, pinned to CPU 0; returns once it accepts connections.
start() {
    (cd "$DIR" && exec taskset -c 0 "$1" --port "$PORT" --http-port 0 "${FLAGS[@]}") >"$DIR/server.log" 2>&1 &
    PID=$!
    until grep -q "Ready to accept" "$DIR/server.log"; do
        kill -0 "$PID" 2>/dev/null || { cat "$DIR/server.log" >&2; exit 1; }
        sleep 0.02
    done
}

start "$A"
awk -v type=string -v items="$KEYS" -v size=64 -f "$HERE/resp-gen.awk" | taskset -c 1 redis-cli -p "$PORT" --pipe >/dev/null
[[ $MODE == snapshot ]] && redis-cli -p "$PORT" save >/dev/null
redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
wait "$PID" 2>/dev/null || true
PID=

# load BIN: restarts BIN on the files and prints the load time it logs (killed after, so
# that nothing is written back).
load() {
    start "$1"
    grep -oE "$PATTERN" "$DIR/server.log" | grep -oE '[0-9.]+ s$' | cut -d' ' -f1
    kill -9 "$PID"; wait "$PID" 2>/dev/null || true
    PID=
}

for _ in $(seq "$ROUNDS"); do
    a=$(load "$A"); b=$(load "$B")
    echo "$a $b $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b / a }')"
done | tee "$OUT"
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo "median A: $(cut -d' ' -f1 "$OUT" | median) s  median B: $(cut -d' ' -f2 "$OUT" | median) s  median B/A: $(cut -d' ' -f3 "$OUT" | median)"
