#!/usr/bin/env bash
# Context switches and CPU time per thread of one magpie-server (or redis-server) under SETs
# with the append-only log on: the server pinned to CPU 0, redis-benchmark on CPU 1, 50
# clients, 100k SETs. Prints the rate, the fsyncs made, and each thread's voluntary and
# involuntary switches and CPU ticks (1/100 s) during the run, from /proc/PID/task/*.
#
#   bench/switches.sh BINARY [always|everysec] [PIPELINE]
set -euo pipefail
BIN=$(realpath -s "$(command -v "$1")") POLICY=${2:-always} PIPE=${3:-1}
PORT=$((20000 + RANDOM % 20000))
WORK=$(mktemp -d /work/switches.XXXXXX 2>/dev/null || mktemp -d) # on the disk, not a tmpfs
EXTRA=(--http-port 0)
[[ $(basename "$BIN") == redis-server ]] && EXTRA=()
(cd "$WORK" && exec taskset -c 0 "$BIN" --port "$PORT" --bind 127.0.0.1 --save '' --appendonly yes \
    --appendfsync "$POLICY" "${EXTRA[@]}") >/dev/null 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; sleep 0.3; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
snap() {
    for t in /proc/$PID/task/*; do
        echo "$(basename "$t"):$(cat "$t/comm") $(awk '/^voluntary_ctxt/ {v=$2} /^nonvoluntary_ctxt/ {n=$2} END {print v, n}' "$t/status") $(awk '{print $14 + $15}' "$t/stat")"
    done | sort
}
snap >"$WORK/before"
taskset -c 1 redis-benchmark -p "$PORT" -c 50 -n 100000 -P "$PIPE" -r 100000 -q set 'k:__rand_int__' v | tr '\r' '\n' | tail -1
snap >"$WORK/after"
redis-cli -p "$PORT" info persistence | grep -E '^aof_fsyncs|^aof_delayed_fsync' || true
join "$WORK/before" "$WORK/after" | awk '{printf "%-24s voluntary %8d  involuntary %8d  cpu %5d ticks\n", $1, $5 - $2, $6 - $3, $7 - $4}'
