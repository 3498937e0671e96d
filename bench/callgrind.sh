#!/bin/bash
# Instruction count of one magpie-server binary serving a fixed load, under callgrind: a
# measure of CPU work that this noisy machine cannot blur. Compare two builds with the same
# arguments.
#
#   bench/callgrind.sh BINARY [get|set] [OUT] [PORT]
#
# SERVER_ARGS adds server flags, AUTH client flags (redis-cli, redis-benchmark), e.g. an ACL
# user: SERVER_ARGS="--aclfile users.acl" AUTH="--user bench -a pw".
#
# Load: 20k SETs (10k keys, 64-byte values), then 120k of the chosen command at pipeline 16
# from 10 clients. Prints callgrind's total (summary: N) and leaves the profile in OUT for
# callgrind_annotate.
set -euo pipefail
# magpie-server's HTTP API (port 7379 by default) stays off, so that servers never clash;
# builds from before it have no such flag.
http_off() { "$1" --help 2>/dev/null | grep -q -- --http-port && echo "--http-port 0" || true; }
BIN=$1; T=${2:-get}; OUT=${3:-/tmp/callgrind.out}; PORT=${4:-7031}
read -r -a SERVER_ARGS <<<"${SERVER_ARGS:-}"; read -r -a AUTH <<<"${AUTH:-}"
valgrind --tool=callgrind --callgrind-out-file="$OUT" "$BIN" --port "$PORT" --save "" $(http_off "$BIN") "${SERVER_ARGS[@]}" >/dev/null 2>&1 &
VP=$!
for _ in $(seq 100); do [[ $(redis-cli -p "$PORT" "${AUTH[@]}" --no-auth-warning ping 2>/dev/null) == PONG ]] && break; sleep 0.2; done
redis-benchmark -p "$PORT" "${AUTH[@]}" -t set -n 20000 -r 10000 -d 64 -c 10 -P 16 -q >/dev/null
redis-benchmark -p "$PORT" "${AUTH[@]}" -t "$T" -n 120000 -r 10000 -d 64 -c 10 -P 16 -q >/dev/null
redis-cli -p "$PORT" "${AUTH[@]}" --no-auth-warning shutdown nosave >/dev/null 2>&1 || true
wait $VP || true
grep summary "$OUT"
