#!/bin/bash
# Paired A/B of two magpie-server binaries on EVALSHA: both pinned to core 0, redis-benchmark
# (50 clients, 200k requests over 100k keys) alternating between them from core 1, ROUNDS
# times. Each run reports requests per server CPU-second (from /proc/PID/stat); the median of
# B/A is the answer. bench/eval.sh compares with redis-server; this compares two builds.
#
#   bench/ab-eval.sh A_BINARY B_BINARY [small|twenty] [PIPELINE] [ROUNDS]   (env: N=200000 requests a run)
#
# small:  local n = redis.call('INCR', KEYS[1]) redis.call('EXPIRE', KEYS[1], 100) return n
# twenty: local k = KEYS[1] for i = 1, 10 do redis.call('INCR', k) redis.call('GET', k) end return 20
set -euo pipefail
A=$1; B=$2; S=${3:-small}; P=${4:-16}; ROUNDS=${5:-8}; N=${N:-200000}
case $S in
small) BODY="local n = redis.call('INCR', KEYS[1]) redis.call('EXPIRE', KEYS[1], 100) return n" ;;
twenty) BODY="local k = KEYS[1] for i = 1, 10 do redis.call('INCR', k) redis.call('GET', k) end return 20" ;;
*) echo "ab-eval.sh: small or twenty" >&2; exit 2 ;;
esac
PORT_A=$((20000 + RANDOM % 20000)) PORT_B=$((PORT_A + 1))
DIR=$(mktemp -d)
(cd "$DIR" && exec taskset -c 0 "$A" --port "$PORT_A" --bind 127.0.0.1 --save '' --appendonly no --http-port 0) >/dev/null 2>&1 &
PA=$!
(cd "$DIR" && exec taskset -c 0 "$B" --port "$PORT_B" --bind 127.0.0.1 --save '' --appendonly no --http-port 0) >/dev/null 2>&1 &
PB=$!
trap 'kill $PA $PB 2>/dev/null || true; wait $PA $PB 2>/dev/null || true; rm -rf "$DIR"' EXIT
for p in $PORT_A $PORT_B; do
    for _ in $(seq 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
done
SHA=$(redis-cli -p "$PORT_A" script load "$BODY")
redis-cli -p "$PORT_B" script load "$BODY" >/dev/null
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
per_cpu() { # PORT PID: requests per server CPU-second of one run
    local t0 t1
    t0=$(ticks "$2")
    taskset -c 1 redis-benchmark -p "$1" -c 50 -n "$N" -P "$P" -r 100000 -q evalsha "$SHA" 1 'key:__rand_int__' >/dev/null
    t1=$(ticks "$2")
    echo $((N * $(getconf CLK_TCK) / (t1 - t0 > 0 ? t1 - t0 : 1)))
}
RATIOS=()
TICKS_A=0 TICKS_B=0
for r in $(seq "$ROUNDS"); do
    a=$(per_cpu "$PORT_A" "$PA"); b=$(per_cpu "$PORT_B" "$PB")
    ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }')
    echo "round $r: A $a  B $b  B/A $ratio"
    RATIOS+=("$ratio")
    TICKS_A=$((TICKS_A + N * $(getconf CLK_TCK) / a)) TICKS_B=$((TICKS_B + N * $(getconf CLK_TCK) / b))
done
printf '%s\n' "${RATIOS[@]}" | sort -g | awk '{a[NR]=$1} END {printf "median B/A: %.3f\n", (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'
# The CPU ticks of all rounds together: one ratio that the rounds' spread does not skew.
awk -v a="$TICKS_A" -v b="$TICKS_B" 'BEGIN { printf "all rounds: A %d ticks, B %d ticks, B/A (per CPU-second) %.3f\n", a, b, a / b }'
