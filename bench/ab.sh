#!/bin/bash
# Paired A/B of two magpie-server binaries: both pinned to core 0 and filled identically
# (1M keys, 64-byte values), then short redis-benchmark runs alternate between them from
# core 1. Each run reports operations per server CPU-second (from /proc/PID/stat), which is
# steadier than ops/s on a shared machine; the median of B/A is the answer.
#
#   bench/ab.sh A_BINARY B_BINARY [get|set] [ROUNDS]      (env: N=1000000 PIPE=16
#                                                          PORT_A=7021 PORT_B=7022)
#
# TTL=SECONDS gives every key an expiry time after the fill.
# CMD runs that command instead of the -t test (redis-benchmark replaces __rand_int__ with a
# key number), e.g. CMD='RPUSH list:__rand_int__ xxxxxxxx' bench/ab.sh A B rpush. PREP is one
# command run on both servers after the fill, e.g. a queue of 100 elements that CMD rotates:
# PREP="RPUSH q $(printf 'x%.0s ' {1..100})" CMD='RPOPLPUSH q q' bench/ab.sh A B rotate.
# SAVE sets both servers' snapshot schedule (default "": off; e.g. SAVE="86400 1" keeps the
# schedule's bookkeeping on without a snapshot during the run; each server then runs in a
# temporary directory of its own). A_ARGS / B_ARGS add server flags to one side, A_AUTH /
# B_AUTH client flags (for redis-cli and redis-benchmark): e.g. the same binary with and without an ACL user,
#   B_ARGS="--aclfile users.acl" B_AUTH="--user bench -a pw" bench/ab.sh BIN BIN get
set -euo pipefail
# magpie-server's HTTP API (port 7379 by default) stays off, so that servers never clash;
# builds from before it have no such flag.
http_off() { "$1" --help 2>/dev/null | grep -q -- --http-port && echo "--http-port 0" || true; }
A=$1; B=$2; T=${3:-get}; ROUNDS=${4:-8}; N=${N:-1000000}; PIPE=${PIPE:-16}
PORT_A=${PORT_A:-7021}; PORT_B=${PORT_B:-7022}
read -r -a A_ARGS <<<"${A_ARGS:-}"; read -r -a B_ARGS <<<"${B_ARGS:-}"
read -r -a A_AUTH <<<"${A_AUTH:-}"; read -r -a B_AUTH <<<"${B_AUTH:-}"
read -r -a CMD_WORDS <<<"${CMD:-}"
if ((${#CMD_WORDS[@]})); then TEST=("${CMD_WORDS[@]}"); else TEST=(-t "$T"); fi
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(mktemp)
SAVE=${SAVE:-}
DIR_A=$(mktemp -d); DIR_B=$(mktemp -d)
PA=; PB=
# The servers' directories go once they have exited (with SAVE, a server saves on SIGTERM, and
# a save that fails keeps it running, as Redis does).
cleanup() { kill $PA $PB 2>/dev/null || true; wait $PA $PB 2>/dev/null || true; rm -f "$OUT"; rm -rf "$DIR_A" "$DIR_B"; }
trap cleanup EXIT
# taskset execs the server: $! is the server's PID.
# shellcheck disable=SC2046
taskset -c 0 "$A" --port "$PORT_A" --save "$SAVE" --dir "$DIR_A" $(http_off "$A") "${A_ARGS[@]}" >/dev/null 2>&1 & PA=$!
# shellcheck disable=SC2046
taskset -c 0 "$B" --port "$PORT_B" --save "$SAVE" --dir "$DIR_B" $(http_off "$B") "${B_ARGS[@]}" >/dev/null 2>&1 & PB=$!
sleep 0.5
awk -v type=string -v items=1000000 -v size=64 -v fields=1 -f "$HERE/resp-gen.awk" |
    taskset -c 1 redis-cli -p "$PORT_A" "${A_AUTH[@]}" --no-auth-warning --pipe >/dev/null
awk -v type=string -v items=1000000 -v size=64 -v fields=1 -f "$HERE/resp-gen.awk" |
    taskset -c 1 redis-cli -p "$PORT_B" "${B_AUTH[@]}" --no-auth-warning --pipe >/dev/null
# TTL=SECONDS: every key then gets an expiry time that far away (GET of keys with a TTL).
if [ -n "${TTL:-}" ]; then
  for port in "$PORT_A" "$PORT_B"; do
    if [ "$port" = "$PORT_A" ]; then auth=("${A_AUTH[@]}"); else auth=("${B_AUTH[@]}"); fi
    awk -v ttl="$TTL" 'BEGIN { for (i = 0; i < 1000000; i++) { k = sprintf("key:%012d", i);
        printf "*3\r\n$6\r\nEXPIRE\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(ttl), ttl } }' |
      taskset -c 1 redis-cli -p "$port" "${auth[@]}" --no-auth-warning --pipe >/dev/null
  done
fi
if [ -n "${PREP:-}" ]; then
  read -r -a PREP_WORDS <<<"$PREP"
  taskset -c 1 redis-cli -p "$PORT_A" "${A_AUTH[@]}" --no-auth-warning "${PREP_WORDS[@]}" >/dev/null
  taskset -c 1 redis-cli -p "$PORT_B" "${B_AUTH[@]}" --no-auth-warning "${PREP_WORDS[@]}" >/dev/null
fi
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
for _ in $(seq "$ROUNDS"); do
  for side in A B; do
    if [ $side = A ]; then port=$PORT_A; pid=$PA; auth=("${A_AUTH[@]}"); else port=$PORT_B; pid=$PB; auth=("${B_AUTH[@]}"); fi
    c0=$(cpu "$pid")
    taskset -c 1 redis-benchmark -p $port "${auth[@]}" -n "$N" -r 1000000 -d 64 -c 50 -P "$PIPE" -q "${TEST[@]}" >/dev/null
    c1=$(cpu "$pid")
    eval "r$side=$(( N * 100 / (c1 - c0 + 1) ))"
  done
  echo "$rA $rB $(awk -v a="$rA" -v b="$rB" 'BEGIN{printf "%.2f", b/a}')"
done | tee "$OUT"
sort -n -k3 "$OUT" | awk '{r[NR]=$3} END {print "median B/A:", r[int((NR+1)/2)]}'
# The CPU time of all rounds together: one ratio that the rounds' spread does not skew.
awk -v n="$N" '{ta += n * 100 / $1; tb += n * 100 / $2} END {printf "all rounds: B/A (per CPU-second) %.3f\n", ta / tb}' "$OUT"
