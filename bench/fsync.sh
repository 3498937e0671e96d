#!/bin/bash
# Writes with the append-only log, redis-server and one or two magpie-server builds in one run:
# every server pinned to CPU 0, each in its own fresh directory with the same persistence flags,
# redis-benchmark on CPU 1; short runs alternate between the servers round by round, so that
# a disk whose fsync time drifts (a machine shared with builds) weighs on all of them alike.
# Prints each round's ops/s and the ratios, then the medians.
#
#   bench/fsync.sh MAGPIE_A [MAGPIE_B] [--policy always|everysec] [--pipeline P] [--rounds R]
#                  [--requests N]                 (defaults: always, 1, 5, 100000 requests)
#
# e.g. the build before a change against the build after it, both against Redis:
#   bench/fsync.sh /tmp/magpie-before target/release/magpie-server --policy always --pipeline 1
set -euo pipefail
http_off() { "$1" --help 2>/dev/null | grep -q -- --http-port && echo "--http-port 0" || true; }
BINS=(); POLICY=always; PIPE=1; ROUNDS=5; N=100000
while [[ $# -gt 0 ]]; do
    case $1 in
    --policy) POLICY=$2; shift 2 ;;
    --pipeline) PIPE=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --requests) N=$2; shift 2 ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) BINS+=("$1"); shift ;;
    esac
done
[[ ${#BINS[@]} -ge 1 && ${#BINS[@]} -le 2 ]] || { echo "usage: see --help" >&2; exit 2; }
WORK=$(mktemp -d /work/fsync-bench.XXXXXX) # on the disk under test, not a tmpfs
NAMES=(redis); PORTS=(7031); PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$WORK"; }
trap cleanup EXIT
FLAGS=(--save '' --appendonly yes --appendfsync "$POLICY" --auto-aof-rewrite-percentage 0)
mkdir -p "$WORK/redis"
(cd "$WORK/redis" && exec taskset -c 0 redis-server --port 7031 --bind 127.0.0.1 "${FLAGS[@]}") >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
i=0
for bin in "${BINS[@]}"; do
    name=$([[ $i == 0 ]] && echo A || echo B); port=$((7032 + i))
    mkdir -p "$WORK/$name"
    # shellcheck disable=SC2046
    (cd "$WORK/$name" && exec taskset -c 0 "$bin" --port "$port" --bind 127.0.0.1 $(http_off "$bin") "${FLAGS[@]}") >"$WORK/$name.log" 2>&1 &
    PIDS+=($!); NAMES+=("$name"); PORTS+=("$port"); i=$((i + 1))
done
for port in "${PORTS[@]}"; do
    until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
done
echo "# $POLICY, pipeline $PIPE, $N SETs per run, 50 clients, 64-byte values; A=${BINS[0]}${BINS[1]:+ B=${BINS[1]}}"
echo "# round ${NAMES[*]} (ops/s)  A/redis${BINS[1]:+ B/redis B/A}"
OUT=$(mktemp)
for r in $(seq "$ROUNDS"); do
    line="$r"
    for k in "${!NAMES[@]}"; do
        ops=$(taskset -c 1 redis-benchmark -p "${PORTS[$k]}" -t set -n "$N" -r 1000000 -d 64 -c 50 -P "$PIPE" -q --csv |
            awk -F'"' '/SET/ { print $4 }')
        line="$line $ops"
    done
    echo "$line" | awk '{ printf "%s", $0; printf " %.2f", $3 / $2; if (NF > 3) printf " %.2f %.2f", $4 / $2, $4 / $3; print "" }'
done | tee "$OUT"
python3 -c 'import sys, statistics
rows = [l.split()[1:] for l in open(sys.argv[1]) if l.strip()]
print("median", " ".join(f"{statistics.median(float(r[c]) for r in rows):g}" for c in range(len(rows[0]))))' "$OUT"
rm -f "$OUT"
