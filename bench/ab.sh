#!/bin/bash
# Paired A/B of two magpie-server binaries: both pinned to core 0 and filled identically
# (1M keys, 64-byte values), then short redis-benchmark runs alternate between them from
# core 1. Each run reports operations per server CPU-second (from /proc/PID/stat), which is
# steadier than ops/s on a shared machine; the median of B/A is the answer.
#
#   bench/ab.sh A_BINARY B_BINARY [get|set] [ROUNDS]      (env: N=1000000 PIPE=16)
set -euo pipefail
A=$1; B=$2; T=${3:-get}; ROUNDS=${4:-8}; N=${N:-1000000}; PIPE=${PIPE:-16}
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$(mktemp)
pkill -f -- "--port 7021" || true; pkill -f -- "--port 7022" || true; sleep 0.3
(taskset -c 0 "$A" --port 7021 --save "" >/dev/null 2>&1 &); (taskset -c 0 "$B" --port 7022 --save "" >/dev/null 2>&1 &); sleep 0.5
for p in 7021 7022; do
  awk -v type=string -v items=1000000 -v size=64 -v fields=1 -f "$HERE/resp-gen.awk" | taskset -c 1 redis-cli -p $p --pipe >/dev/null
done
PA=$(pgrep -f -- "--port 7021"); PB=$(pgrep -f -- "--port 7022")
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
for _ in $(seq "$ROUNDS"); do
  for side in A B; do
    if [ $side = A ]; then port=7021; pid=$PA; else port=7022; pid=$PB; fi
    c0=$(cpu "$pid")
    taskset -c 1 redis-benchmark -p $port -t "$T" -n "$N" -r 1000000 -d 64 -c 50 -P "$PIPE" -q >/dev/null
    c1=$(cpu "$pid")
    eval "r$side=$(( N * 100 / (c1 - c0 + 1) ))"
  done
  echo "$rA $rB $(awk -v a="$rA" -v b="$rB" 'BEGIN{printf "%.2f", b/a}')"
done | tee "$OUT"
sort -n -k3 "$OUT" | awk '{r[NR]=$3} END {print "median B/A:", r[int((NR+1)/2)]}'
rm -f "$OUT"
pkill -f -- "--port 7021" || true; pkill -f -- "--port 7022" || true
