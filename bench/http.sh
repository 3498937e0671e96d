#!/usr/bin/env bash
# bench/http.sh: GET of one key over HTTP, Magpie's API against webdis (Debian's HTTP gateway
# to Redis) in front of redis-server, with wrk; and Magpie's HTTP against Magpie's RESP
# (redis-benchmark, pipeline 1) for the same GET. One run of each.
#
# The server side is pinned to CPU 0 (webdis and redis-server together, against Magpie alone)
# and the client (wrk, redis-benchmark) to CPU 1. Prints requests/s and the ratios.
#
# Needs: apt-get install wrk webdis redis-server redis-tools
# Usage: bench/http.sh [--seconds S] [--connections N] [--value-size BYTES] [--skip-build]
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
SECONDS_=10 CONNS=50 SIZE=64 SKIP_BUILD=0
while [[ $# -gt 0 ]]; do
    case $1 in
    --seconds) SECONDS_=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --value-size) SIZE=$2; shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    -h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "http.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
for tool in wrk webdis redis-server redis-cli redis-benchmark taskset; do
    command -v "$tool" >/dev/null || { echo "http.sh: $tool not found (apt-get install wrk webdis redis-server redis-tools)" >&2; exit 2; }
done
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release
if [[ $SKIP_BUILD == 0 ]]; then
    (cd "$ROOT" && cargo build --release -p magpie-server) >&2
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/magpie-http.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(free_port) WPORT=$(free_port) MPORT=$(free_port) HPORT=$(free_port)
mkdir -p "$WORK/redis" "$WORK/magpie"
cat >"$WORK/webdis.json" <<EOF
{
    "redis_host": "127.0.0.1", "redis_port": $RPORT, "redis_auth": null,
    "http_host": "127.0.0.1", "http_port": $WPORT, "threads": 1, "pool_size": 10,
    "daemonize": false, "database": 0, "verbosity": 0, "logfile": "$WORK/webdis.log"
}
EOF
(cd "$WORK/redis" && exec taskset -c 0 redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no) >/dev/null 2>&1 &
PIDS+=($!)
(cd "$WORK/magpie" && exec taskset -c 0 "$TARGET/magpie-server" --port "$MPORT" --http-port "$HPORT" --bind 127.0.0.1 --save '' --appendonly no) >/dev/null 2>&1 &
PIDS+=($!)
for p in $RPORT $MPORT; do
    for _ in $(seq 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
done
taskset -c 0 webdis "$WORK/webdis.json" >/dev/null 2>&1 &
PIDS+=($!)
VALUE=$(head -c "$SIZE" /dev/zero | tr '\0' 'v')
redis-cli -p "$RPORT" set bench "$VALUE" >/dev/null
redis-cli -p "$MPORT" set bench "$VALUE" >/dev/null
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$WPORT/GET/bench" >/dev/null && break; sleep 0.1; done
# Check that each answers the value before measuring.
[[ $(curl -s "http://127.0.0.1:$HPORT/v1/keys/bench") == "$VALUE" ]] || { echo "magpie's HTTP GET failed" >&2; exit 1; }
curl -s "http://127.0.0.1:$WPORT/GET/bench" | grep -q "$VALUE" || { echo "webdis's GET failed" >&2; exit 1; }

rps_wrk() { # URL
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECONDS_}s" --latency "$1" | tee -a "$WORK/wrk.log" >&2
    grep -h 'Requests/sec' "$WORK/wrk.log" | tail -1 | awk '{print $2}'
}
echo "[webdis + redis-server] wrk GET /GET/bench" >&2
webdis=$(rps_wrk "http://127.0.0.1:$WPORT/GET/bench")
echo "[magpie http] wrk GET /v1/keys/bench" >&2
magpie_http=$(rps_wrk "http://127.0.0.1:$HPORT/v1/keys/bench")
echo "[magpie resp] redis-benchmark GET bench, pipeline 1" >&2
n=$(awk -v r="$magpie_http" -v s="$SECONDS_" 'BEGIN {n = int(r * s); print (n < 100000) ? 100000 : n}')
magpie_resp=$(taskset -c 1 redis-benchmark -p "$MPORT" -c "$CONNS" -n "$n" -P 1 -q GET bench | tr '\r' '\n' | awk '/requests per second/ {for (i = 1; i < NF; i++) if ($(i + 1) == "requests") print $i}' | tail -1)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo "| server | client | requests/s |"
echo "|---|---|---:|"
echo "| webdis + redis-server (GET /GET/bench) | wrk -c$CONNS, ${SECONDS_}s | $webdis |"
echo "| magpie HTTP (GET /v1/keys/bench) | wrk -c$CONNS, ${SECONDS_}s | $magpie_http |"
echo "| magpie RESP (GET bench, pipeline 1) | redis-benchmark -c$CONNS | $magpie_resp |"
echo
echo "magpie HTTP / webdis: $(ratio "$magpie_http" "$webdis")x (target: at least 2x)"
echo "magpie HTTP / magpie RESP: $(ratio "$magpie_http" "$magpie_resp")x"
