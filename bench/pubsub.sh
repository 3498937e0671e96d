#!/usr/bin/env bash
# bench/pubsub.sh: PUBLISH fan-out, redis-server against magpie-server in one run.
#
# Each server (pinned to one CPU) gets N subscribers on one channel (one client process,
# crates/magpie-client/examples/subscribers.rs, pinned to the other CPU) and redis-benchmark
# publishing to that channel (same CPU as the subscribers). A run ends when every subscriber
# has every message; a subscriber that was disconnected (output buffer limit) or lost a message
# fails the run. Reported per server: publishes per second (redis-benchmark), deliveries per
# second end to end (publishes x subscribers / time from the first publish to the last
# delivery), and publishes per second of server CPU; medians of interleaved runs, and the
# ratios magpie/redis. Run `bench/pubsub.sh --help` for the options.
set -euo pipefail
# magpie-server's HTTP API (port 7379 by default) stays off, so that servers never clash;
# builds from before it have no such flag.
http_off() { "$1" --help 2>/dev/null | grep -q -- --http-port && echo "--http-port 0" || true; }

readonly HOST=127.0.0.1
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
readonly SCRIPT_DIR ROOT

SUBSCRIBERS=100
MESSAGES=200000
CLIENTS=50
PIPELINES=1,16
PAYLOAD=64
REPEAT=3
SERVER_CPU=0
CLIENT_CPU=1
REDIS_BIN=/usr/bin/redis-server
MAGPIE_BIN=
SKIP_BUILD=0
OUT_DIR=$SCRIPT_DIR/out
TIMEOUT=300

usage() {
    cat <<'EOF'
Usage: bench/pubsub.sh [options]

Starts redis-server and magpie-server on free ports of 127.0.0.1 (pinned to --server-cpu),
subscribes --subscribers connections to one channel on each, and publishes to it with
redis-benchmark; the subscribers and redis-benchmark share --client-cpu. Prints medians and
the ratios magpie/redis, and writes a Markdown table to the output directory.

  --subscribers N     subscribers on the channel (default 100)
  --messages N        messages published per run (redis-benchmark -n, default 200000)
  --clients N         publishing connections (redis-benchmark -c, default 50)
  --pipelines LIST    publish pipeline depths (-P), comma separated (default 1,16)
  --payload N         message size in bytes (default 64)
  --repeat N          runs per server and pipeline (default 3)
  --magpie-bin PATH   magpie-server binary (default target/release/magpie-server, built
                      with cargo unless --skip-build or this option is given)
  --redis-bin PATH    redis-server binary (default /usr/bin/redis-server)
  --skip-build        do not run cargo build (the subscribers example must exist)
  --server-cpu N      CPU the servers are pinned to (default 0)
  --client-cpu N      CPU of redis-benchmark and the subscribers (default 1)
  --timeout SECS      a run that has not delivered everything by then fails (default 300)
  --out DIR           where the result table goes (default bench/out)
  -h, --help          this text
EOF
}

die() {
    printf 'pubsub.sh: error: %s\n' "$*" >&2
    exit 1
}
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
need_arg() { [[ $# -ge 2 && -n $2 ]] || die "option $1 needs a value"; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

while [[ $# -gt 0 ]]; do
    case $1 in
    --subscribers) need_arg "$@"; SUBSCRIBERS=$2; shift 2 ;;
    --messages) need_arg "$@"; MESSAGES=$2; shift 2 ;;
    --clients) need_arg "$@"; CLIENTS=$2; shift 2 ;;
    --pipelines) need_arg "$@"; PIPELINES=$2; shift 2 ;;
    --payload) need_arg "$@"; PAYLOAD=$2; shift 2 ;;
    --repeat) need_arg "$@"; REPEAT=$2; shift 2 ;;
    --magpie-bin) need_arg "$@"; MAGPIE_BIN=$2; SKIP_BUILD=1; shift 2 ;;
    --redis-bin) need_arg "$@"; REDIS_BIN=$2; shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --server-cpu) need_arg "$@"; SERVER_CPU=$2; shift 2 ;;
    --client-cpu) need_arg "$@"; CLIENT_CPU=$2; shift 2 ;;
    --timeout) need_arg "$@"; TIMEOUT=$2; shift 2 ;;
    --out) need_arg "$@"; OUT_DIR=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
    esac
done
for v in SUBSCRIBERS MESSAGES CLIENTS PAYLOAD REPEAT SERVER_CPU CLIENT_CPU TIMEOUT; do
    is_uint "${!v}" || die "$v must be a non-negative integer, got '${!v}'"
done
for v in SUBSCRIBERS MESSAGES CLIENTS PAYLOAD REPEAT; do [[ ${!v} -ge 1 ]] || die "$v must be at least 1"; done
[[ $PIPELINES =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--pipelines must be a comma-separated list like 1,16"
[[ $SERVER_CPU != "$CLIENT_CPU" ]] || die "--server-cpu and --client-cpu must differ"
IFS=, read -r -a PIPE_LIST <<<"$PIPELINES"

for c in redis-benchmark redis-cli taskset setsid awk timeout; do
    command -v "$c" >/dev/null 2>&1 || die "missing command: $c (apt-get install redis-tools util-linux coreutils mawk)"
done
[[ -x $REDIS_BIN ]] || die "redis-server not found at $REDIS_BIN (apt-get install redis-server, or --redis-bin PATH)"
for cpu in "$SERVER_CPU" "$CLIENT_CPU"; do
    taskset -c "$cpu" true 2>/dev/null || die "cannot pin to CPU $cpu; this benchmark needs 2 usable CPUs"
done

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
SUBS_BIN=$TARGET/release/examples/subscribers
if [[ $SKIP_BUILD == 0 ]]; then
    log "building: cargo build --release -p magpie-server --example subscribers -p magpie-client"
    (cd "$ROOT" && cargo build --release -p magpie-server && cargo build --release -p magpie-client --example subscribers) ||
        die "cargo build failed"
fi
: "${MAGPIE_BIN:=$TARGET/release/magpie-server}"
[[ -x $MAGPIE_BIN ]] || die "magpie-server binary not found: $MAGPIE_BIN"
[[ -x $SUBS_BIN ]] || die "subscribers not found: $SUBS_BIN (cargo build --release -p magpie-client --example subscribers)"
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/magpie-pubsub-bench.XXXXXX")
declare -A PID=() PORT=()
CHILDREN=()
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${CHILDREN[@]}" "${PID[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PID[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pick_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 30000))
        (exec 3<>"/dev/tcp/$HOST/$p") 2>/dev/null || { echo "$p"; return 0; }
    done
    die "no free port"
}

declare -A SERVER_CMD=()
start_server() { # NAME BIN
    local name=$1 bin=$2 port
    port=$(pick_port)
    local off=
    [[ $bin == *magpie* ]] && off=$(http_off "$bin")
    # shellcheck disable=SC2206
    local -a cmd=(taskset -c "$SERVER_CPU" "$bin" --port "$port" --bind "$HOST" --save '' --appendonly no $off)
    SERVER_CMD[$name]="(cd \$WORKDIR/$name && setsid taskset -c $SERVER_CPU $bin --port \$PORT --bind $HOST --save '' --appendonly no $off)"
    mkdir -p "$WORK/$name"
    (cd "$WORK/$name" && exec setsid "${cmd[@]}") >"$WORK/$name.log" 2>&1 </dev/null &
    PID[$name]=$!
    PORT[$name]=$port
    for _ in $(seq 100); do
        [[ $(timeout 2 redis-cli -h "$HOST" -p "$port" ping 2>/dev/null) == PONG ]] && { log "$name: pid ${PID[$name]}, port $port"; return 0; }
        kill -0 "${PID[$name]}" 2>/dev/null || { tail "$WORK/$name.log" >&2; die "$name exited at start"; }
        sleep 0.1
    done
    die "$name did not answer PING"
}

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() {
    local stat
    stat=$(<"/proc/${PID[$1]}/stat")
    stat=${stat##*) }
    local -a f
    read -r -a f <<<"$stat"
    echo $((f[11] + f[12]))
}
spread() { sort -g | awk '{ v[NR] = $1 } END { if (NR < 2) { print "-"; exit } m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.0f%%", (m > 0 ? 100 * (v[NR] - v[1]) / m : 0) }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

start_server redis "$REDIS_BIN"
start_server magpie "$MAGPIE_BIN"
SERVERS=(redis magpie)
PAYLOAD_TEXT=$(head -c "$PAYLOAD" </dev/zero | tr '\0' 'x')
CHANNEL=bench-channel

declare -A PUB=() DELIV=() EFF=()
BENCH_CMD=""
SUBS_CMD=""
one_run() { # NAME PIPELINE -> appends to PUB DELIV EFF
    local name=$1 p=$2 port=${PORT[$1]} out=$WORK/subs.out
    local -a subs=(taskset -c "$CLIENT_CPU" "$SUBS_BIN" "$HOST" "$port" "$CHANNEL" "$SUBSCRIBERS" "$MESSAGES" "$PAYLOAD" "$TIMEOUT")
    SUBS_CMD="taskset -c $CLIENT_CPU target/release/examples/subscribers $HOST \$PORT $CHANNEL $SUBSCRIBERS $MESSAGES $PAYLOAD $TIMEOUT"
    "${subs[@]}" >"$out" 2>&1 &
    local spid=$!
    CHILDREN=("$spid")
    for _ in $(seq 300); do
        grep -q '^ready$' "$out" 2>/dev/null && break
        kill -0 "$spid" 2>/dev/null || { cat "$out" >&2; die "the subscribers failed against $name"; }
        sleep 0.05
    done
    grep -q '^ready$' "$out" || die "the subscribers did not get ready against $name"
    local -a bench=(taskset -c "$CLIENT_CPU" redis-benchmark -h "$HOST" -p "$port" -c "$CLIENTS" -P "$p" -n "$MESSAGES" -q --csv
        PUBLISH "$CHANNEL" "$PAYLOAD_TEXT")
    BENCH_CMD+="taskset -c $CLIENT_CPU redis-benchmark -h $HOST -p \$PORT -c $CLIENTS -P $p -n $MESSAGES -q --csv PUBLISH $CHANNEL <$PAYLOAD x's>"$'\n'
    local t0 t1 c0 c1 rc=0
    c0=$(cpu_ticks "$name")
    t0=$(date +%s.%N)
    "${bench[@]}" >"$WORK/bench.out" 2>&1 || rc=$?
    wait "$spid" || rc=$?
    t1=$(date +%s.%N)
    c1=$(cpu_ticks "$name")
    CHILDREN=()
    if [[ $rc != 0 ]]; then
        cat "$WORK/bench.out" "$out" >&2
        die "run against $name failed (pipeline $p): a subscriber missed messages or was disconnected"
    fi
    local line rps
    line=$(awk -F, 'NR > 1 && NF >= 2 { last = $0 } END { print last }' "$WORK/bench.out" | tr -d '"')
    rps=$(cut -d, -f2 <<<"$line")
    local deliv eff
    deliv=$(awk -v n="$MESSAGES" -v s="$SUBSCRIBERS" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n * s / (b - a) }')
    eff=$(awk -v n="$MESSAGES" -v t=$((c1 - c0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", (t > 0 ? n * hz / t : 0) }')
    PUB[$name,$p]+="$rps "
    DELIV[$name,$p]+="$deliv "
    EFF[$name,$p]+="$eff "
    log "$(printf '%-6s -P %-3s: %10.0f publishes/s, %11s deliveries/s end to end, %9s publishes/CPU-s (%s)' "$name" "$p" "$rps" "$deliv" "$eff" "$(tail -n 1 "$out")")"
}

for p in "${PIPE_LIST[@]}"; do
    for rep in $(seq "$REPEAT"); do
        order=("${SERVERS[@]}")
        if [[ $((rep % 2)) == 0 ]]; then order=(magpie redis); fi
        for name in "${order[@]}"; do one_run "$name" "$p"; done
    done
done

mkdir -p "$OUT_DIR"
TS=$(date +%Y%m%d-%H%M%S)
table=$OUT_DIR/$TS-pubsub.md
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
{
    echo "## PUBLISH fan-out to $SUBSCRIBERS subscribers: magpie vs redis ($TS)"
    echo
    echo "- host: $(nproc) CPUs, $(uname -r); load average at start $LOADAVG"
    echo "- servers pinned to CPU $SERVER_CPU; redis-benchmark and the subscribers (one process) to CPU $CLIENT_CPU"
    echo "- $MESSAGES messages of $PAYLOAD bytes per run from $CLIENTS connections, $SUBSCRIBERS subscribers each receiving all of them; median of $REPEAT interleaved runs"
    echo
    echo "| pipeline | redis publishes/s | magpie publishes/s | magpie/redis | redis deliveries/s | magpie deliveries/s | magpie/redis | redis publishes/CPU-s | magpie publishes/CPU-s | magpie/redis per CPU | redis spread | magpie spread |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for p in "${PIPE_LIST[@]}"; do
        rp=$(tr ' ' '\n' <<<"${PUB[redis,$p]}" | grep . | median)
        mp=$(tr ' ' '\n' <<<"${PUB[magpie,$p]}" | grep . | median)
        rd=$(tr ' ' '\n' <<<"${DELIV[redis,$p]}" | grep . | median)
        md=$(tr ' ' '\n' <<<"${DELIV[magpie,$p]}" | grep . | median)
        re=$(tr ' ' '\n' <<<"${EFF[redis,$p]}" | grep . | median)
        me=$(tr ' ' '\n' <<<"${EFF[magpie,$p]}" | grep . | median)
        rs=$(tr ' ' '\n' <<<"${PUB[redis,$p]}" | grep . | spread)
        ms=$(tr ' ' '\n' <<<"${PUB[magpie,$p]}" | grep . | spread)
        printf '| %s | %.0f | %.0f | %s | %.0f | %.0f | %s | %.0f | %.0f | %s | %s | %s |\n' "$p" "$rp" "$mp" "$(ratio "$mp" "$rp")" \
            "$rd" "$md" "$(ratio "$md" "$rd")" "$re" "$me" "$(ratio "$me" "$re")" "$rs" "$ms"
    done
    echo
    echo "spread = (max - min) / median of publishes/s over the runs."
    echo
    echo "deliveries/s = messages x subscribers / (time from the start of redis-benchmark to the last message received); publishes/CPU-s = messages / server CPU time (user + system, /proc/PID/stat) over the same span."
    echo
    echo "Commands (\$PORT = each server's port, \$WORKDIR = a fresh temporary directory):"
    echo
    echo '```'
    for name in "${SERVERS[@]}"; do echo "${SERVER_CMD[$name]}"; done
    echo "$SUBS_CMD"
    printf '%s' "$BENCH_CMD" | sort -u
    echo '```'
} >"$table"
echo
cat "$table"
log "written: $table"
