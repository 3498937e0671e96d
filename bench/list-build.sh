#!/bin/bash
# Memory of lists by how they are built: 10,000 lists of 100 64-byte elements, pushed one
# element a command with PUSH (LPUSH or RPUSH), through redis-cli --pipe, into a fresh server
# pinned to CPU 0. Prints the RSS growth per list. bench/run.sh --memory builds with RPUSH only;
# a chunk grows differently at its head, so both ways are worth measuring.
#
#   bench/list-build.sh SERVER_BINARY [LPUSH|RPUSH] [PORT]     (redis-server or magpie-server)
set -euo pipefail
BIN=$1; PUSH=${2:-LPUSH}; PORT=${3:-23480}
W=$(mktemp -d); PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
args=(--port "$PORT" --bind 127.0.0.1 --save '' --appendonly no)
"$BIN" --help 2>/dev/null | grep -q -- --http-port && args+=(--http-port 0)
(cd "$W" && exec taskset -c 0 "$BIN" "${args[@]}") >/dev/null 2>&1 &
PID=$!
for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
before=$(rss)
awk -v cmd="$PUSH" 'BEGIN {
    v = sprintf("%064d", 7)
    for (i = 0; i < 1000000; i++) {
        k = sprintf("list:%012d", int(i / 100))
        printf "*3\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$64\r\n%s\r\n", length(cmd), cmd, length(k), k, v
    }
}' | taskset -c 1 redis-cli -p "$PORT" --pipe >/dev/null
after=$(rss)
echo "$BIN $PUSH: $(( (after - before) * 1024 / 10000 )) bytes a list (VmRSS $before -> $after KiB)"
