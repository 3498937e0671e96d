#!/usr/bin/env bash
# bench/wakeups.sh: what one request costs in system calls, and how often it wakes the client.
#
# Starts one server (redis-server, or a magpie-server binary) pinned to CPU 0, with
# persistence off, and runs redis-benchmark pinned to CPU 1 (50 clients) against it twice:
#   1. under `strace -c -f` on the server: its system calls per request, by name;
#   2. under `/usr/bin/time -v`: the client's voluntary context switches per request, i.e.
#      how often redis-benchmark found no reply waiting and slept until one came. Each such
#      sleep is a wake-up the server pays for inside its write (`sock_def_readable`).
#
# Usage: bench/wakeups.sh redis|BINARY get|set|small|twenty PIPELINE [REQUESTS]
#   small:  EVALSHA of  local n = redis.call('INCR', KEYS[1]) redis.call('EXPIRE', KEYS[1], 100) return n
#   twenty: EVALSHA of  local k = KEYS[1] for i = 1, 10 do redis.call('INCR', k) redis.call('GET', k) end return 20
# The keyspace is 100,000 keys (-r), values 64 bytes. strace slows the server: its rate is
# not reported, only counts.
set -euo pipefail
WHO=${1:?redis or a magpie-server binary}; LOAD=${2:?get, set, small or twenty}; PIPE=${3:?pipeline}
N=${4:-200000}
for c in redis-server redis-benchmark redis-cli taskset strace /usr/bin/time; do
    command -v "$c" >/dev/null || { echo "wakeups.sh: $c is missing (apt-get install redis-server redis-tools util-linux strace time)" >&2; exit 1; }
done
PORT=$((20000 + RANDOM % 20000))
WORK=$(mktemp -d "${TMPDIR:-/tmp}/magpie-wakeups.XXXXXX")
PID=
cleanup() { [[ -n $PID ]] && kill "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
if [[ $WHO == redis ]]; then
    (cd "$WORK" && exec taskset -c 0 redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no) >/dev/null 2>&1 &
else
    (cd "$WORK" && exec taskset -c 0 "$WHO" --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --http-port 0) >/dev/null 2>&1 &
fi
PID=$!
for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
case $LOAD in
get | set) ARGS=(-t "$LOAD" -d 64) ;;
small | twenty)
    if [[ $LOAD == small ]]; then
        BODY="local n = redis.call('INCR', KEYS[1]) redis.call('EXPIRE', KEYS[1], 100) return n"
    else
        BODY="local k = KEYS[1] for i = 1, 10 do redis.call('INCR', k) redis.call('GET', k) end return 20"
    fi
    ARGS=(evalsha "$(redis-cli -p "$PORT" script load "$BODY")" 1 'key:__rand_int__')
    ;;
*) echo "wakeups.sh: get, set, small or twenty" >&2; exit 2 ;;
esac
bench() { taskset -c 1 redis-benchmark -p "$PORT" -c 50 -P "$PIPE" -n "$N" -r 100000 -q --csv "${ARGS[@]}"; }

# 1. The server's system calls.
strace -c -f -p "$PID" -o "$WORK/strace.txt" 2>/dev/null &
TRACER=$!
sleep 0.5
bench >/dev/null
kill -INT "$TRACER"
wait "$TRACER" 2>/dev/null || true
echo "$(basename "$WHO") $LOAD P$PIPE: the server's system calls per request"
awk -v n="$N" 'NR > 2 && $4 ~ /^[0-9]+$/ && $4 / n >= 0.001 { printf "  %-14s %.3f\n", $NF, $4 / n }' "$WORK/strace.txt"

# 2. The client's sleeps.
OUT=$({ /usr/bin/time -v taskset -c 1 redis-benchmark -p "$PORT" -c 50 -P "$PIPE" -n "$N" -r 100000 -q --csv "${ARGS[@]}"; } 2>&1)
RATE=$(grep '^"' <<<"$OUT" | tail -1 | cut -d, -f2 | tr -d '"')
SLEEPS=$(awk -F: '/Voluntary context switches/ { print $2 + 0 }' <<<"$OUT")
awk -v s="$SLEEPS" -v n="$N" -v r="$RATE" 'BEGIN { printf "  client sleeps per request %.3f (%.0f requests/s)\n", s / n, r }'
