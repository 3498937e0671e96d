#!/bin/bash
# Instruction count of one magpie-server binary running Lua scripts, under callgrind: the
# deterministic measure of the scripting path (compare two builds with the same arguments).
#
#   bench/callgrind-eval.sh BINARY [small|twenty] [OUT] [PORT] [REQUESTS]
#
# small:  local n = redis.call('INCR', KEYS[1]) redis.call('EXPIRE', KEYS[1], 100) return n
# twenty: local k = KEYS[1] for i = 1, 10 do redis.call('INCR', k) redis.call('GET', k) end return 20
#
# Load: REQUESTS (default 20k) EVALSHA of the chosen script over 1,000 keys, 10 clients,
# pipeline 16. Prints callgrind's total (summary: N) and the total divided by REQUESTS (the
# server's start and shutdown included, a few million instructions: compare totals of runs
# with the same REQUESTS, or take the difference of two REQUESTS for the exact per-script
# cost). The profile stays in OUT for callgrind_annotate.
set -euo pipefail
BIN=$1; S=${2:-twenty}; OUT=${3:-/tmp/callgrind-eval.out}; PORT=${4:-7032}; N=${5:-20000}
case $S in
small) BODY="local n = redis.call('INCR', KEYS[1]) redis.call('EXPIRE', KEYS[1], 100) return n" ;;
twenty) BODY="local k = KEYS[1] for i = 1, 10 do redis.call('INCR', k) redis.call('GET', k) end return 20" ;;
*) echo "callgrind-eval.sh: small or twenty" >&2; exit 2 ;;
esac
# redis-server itself (BINARY ending in redis-server) runs under the same load for comparison.
EXTRA=(--http-port 0)
[[ $(basename "$BIN") == redis-server ]] && EXTRA=()
valgrind --tool=callgrind --callgrind-out-file="$OUT" "$BIN" --port "$PORT" --save "" --appendonly no "${EXTRA[@]}" >/dev/null 2>&1 &
VP=$!
for _ in $(seq 100); do [[ $(redis-cli -p "$PORT" ping 2>/dev/null) == PONG ]] && break; sleep 0.2; done
SHA=$(redis-cli -p "$PORT" script load "$BODY")
redis-benchmark -p "$PORT" -c 10 -P 16 -n "$N" -r 1000 -q evalsha "$SHA" 1 'key:__rand_int__' >/dev/null
redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
wait $VP || true
TOTAL=$(awk '/^summary:/ {print $2}' "$OUT")
echo "summary: $TOTAL  per script: $((TOTAL / N))"
