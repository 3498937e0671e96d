#!/usr/bin/env bash
# bench/run.sh: run the same redis-benchmark workload against redis-server and
# magpie-server in one run and print throughput and the ratio magpie/redis.
# With --memory, load the same data into both and compare memory per key.
# See bench/README.md. Run `bench/run.sh --help` for the options.
set -euo pipefail
# magpie-server's HTTP API (port 7379 by default) stays off, so that servers never clash;
# builds from before it have no such flag.
http_off() { "$1" --help 2>/dev/null | grep -q -- --http-port && echo "--http-port 0" || true; }

readonly HOST=127.0.0.1 # never anything else
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
readonly SCRIPT_DIR ROOT

# ---------------------------------------------------------------- options ---
TESTS=get,set
PIPELINES=1,16
REPEAT=
REQUESTS=
REQUESTS_PIPELINED=
CLIENTS=50
DATA_SIZE=64
KEYSPACE=
FILL=1
REDIS_BIN=/usr/bin/redis-server
MAGPIE_BIN=
SKIP_BUILD=0
BUILT=0
ONLY=
QUICK=0
MODE=throughput
MEMORY_TYPE=string
MEMORY_ITEMS=
MEMORY_FIELDS=100
FILL_TYPE=string
FILL_FIELDS=1
TESTS_GIVEN=0
CUSTOM_LABELS=()
SERVER_ARGS=
SAVE=
CUSTOM_CMDS=()
SERVER_CPU=0
CLIENT_CPU=1
OUT_DIR=$SCRIPT_DIR/out

usage() {
    cat <<'EOF'
Usage: bench/run.sh [options]

Throughput mode (default): start redis-server and magpie-server on free ports
of 127.0.0.1 (pinned to CPU 0), fill the keyspace, and run redis-benchmark
(pinned to CPU 1) against both, interleaved, several times; print the medians.

  --tests LIST            redis-benchmark -t tests, comma separated (default get,set;
                          none when --command is given, unless --tests is given too)
  --command 'LABEL=CMD'   a custom command line for redis-benchmark, e.g.
                          'HGET=HGET hash:__rand_int__ field:000000000007'
                          (repeatable; words split on spaces; LABEL names the row;
                          __rand_int__ ranges over the keys filled, see --fill-type)
  --pipelines LIST        pipeline depths (-P), comma separated (default 1,16)
  --repeat N              runs per server, test and pipeline; median reported (default 3)
  --requests N            requests per run (-n), for every run
                          (default 500000 at -P 1 and 2000000 at -P >1)
  --requests-pipelined N  requests per run when -P > 1 (overrides --requests there)
  --clients N             parallel connections (-c, default 50)
  --data-size N           value size in bytes (-d, default 64)
  --keyspace N            random key space (-r) and keys filled (default 1000000)
  --no-fill               do not fill the keyspace first (GET then measures misses)
  --fill-type T           what the fill writes: string (default) | list | hash | set | zset
                          | geo (GEOADD geo:%012d: points spread over 13..14 E, 38..39 N)
                          | stream (a stream fill also creates group g at 0-0 on every stream)
                          (resp-gen.awk's keys: hash:%012d with fields field:%012d, ...)
  --fill-fields F         items per key for a list/hash/set/zset fill (default 1); the
                          keyspace (-r) is then keyspace / F keys
  --quick                 smoke check: --repeat 1, 50000/200000 requests,
                          keyspace 100000 (explicit options still win)

Memory mode:
  --memory                load the same data into each server and report RSS per key
  --memory-type T         string (default) | list | hash | set | zset | hll (PFADD: one
                          HyperLogLog per key of --memory-fields elements; 100 keeps it
                          sparse, 3000 and more turn it dense)
                          | stream
  --memory-items N        items to load (default: the keyspace, 1000000)
  --memory-fields F       items per key for list/hash/set/zset (default 100)

Common:
  --save 'SCHEDULE'       both servers' snapshot schedule (default '': off), e.g. Redis's
                          and Magpie's default '3600 1 300 100 60 10000'
  --server-args 'ARGS'    extra flags for both servers, after the defaults, e.g.
                          '--appendonly yes --appendfsync always' (each server runs in its
                          own fresh temporary directory, where such files go)
  --magpie-bin PATH       magpie-server binary (default target/release/magpie-server,
                          built with cargo unless --skip-build or this option is given)
  --redis-bin PATH        redis-server binary (default /usr/bin/redis-server)
  --skip-build            do not run cargo build
  --only redis|magpie     run against one server only
  --server-cpu N          CPU the servers are pinned to (default 0)
  --client-cpu N          CPU redis-benchmark / redis-cli is pinned to (default 1)
  --out DIR               where result files go (default bench/out)
  -h, --help              this text
EOF
}

die() {
    printf 'run.sh: error: %s\n' "$*" >&2
    exit 1
}
log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

need_arg() { [[ $# -ge 2 && -n $2 ]] || die "option $1 needs a value"; }
quote() { # shell-quoted command line, no trailing space
    local s
    s=$(printf '%q ' "$@")
    printf '%s\n' "${s% }"
}
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

while [[ $# -gt 0 ]]; do
    case $1 in
    --tests) need_arg "$@"; TESTS=$2; TESTS_GIVEN=1; shift 2 ;;
    --command)
        need_arg "$@"
        [[ $2 == *=* && -n ${2%%=*} && -n ${2#*=} ]] || die "--command takes LABEL=COMMAND ARGS, got '$2'"
        CUSTOM_LABELS+=("${2%%=*}")
        CUSTOM_CMDS+=("${2#*=}")
        shift 2
        ;;
    --fill-type) need_arg "$@"; FILL_TYPE=$2; shift 2 ;;
    --server-args) need_arg "$@"; SERVER_ARGS=$2; shift 2 ;;
    --save) need_arg "$@"; SAVE=$2; shift 2 ;;
    --fill-fields) need_arg "$@"; FILL_FIELDS=$2; shift 2 ;;
    --pipelines) need_arg "$@"; PIPELINES=$2; shift 2 ;;
    --repeat) need_arg "$@"; REPEAT=$2; shift 2 ;;
    --requests) need_arg "$@"; REQUESTS=$2; shift 2 ;;
    --requests-pipelined) need_arg "$@"; REQUESTS_PIPELINED=$2; shift 2 ;;
    --clients) need_arg "$@"; CLIENTS=$2; shift 2 ;;
    --data-size) need_arg "$@"; DATA_SIZE=$2; shift 2 ;;
    --keyspace) need_arg "$@"; KEYSPACE=$2; shift 2 ;;
    --no-fill) FILL=0; shift ;;
    --quick) QUICK=1; shift ;;
    --memory) MODE=memory; shift ;;
    --memory-type) need_arg "$@"; MEMORY_TYPE=$2; shift 2 ;;
    --memory-items) need_arg "$@"; MEMORY_ITEMS=$2; shift 2 ;;
    --memory-fields) need_arg "$@"; MEMORY_FIELDS=$2; shift 2 ;;
    --magpie-bin) need_arg "$@"; MAGPIE_BIN=$2; SKIP_BUILD=1; shift 2 ;;
    --redis-bin) need_arg "$@"; REDIS_BIN=$2; shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --only) need_arg "$@"; ONLY=$2; shift 2 ;;
    --server-cpu) need_arg "$@"; SERVER_CPU=$2; shift 2 ;;
    --client-cpu) need_arg "$@"; CLIENT_CPU=$2; shift 2 ;;
    --out) need_arg "$@"; OUT_DIR=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
    esac
done

# Defaults that --quick changes; explicit options win.
if [[ $QUICK == 1 ]]; then
    : "${REPEAT:=1}" "${REQUESTS_PIPELINED:=${REQUESTS:-200000}}" "${REQUESTS:=50000}" "${KEYSPACE:=100000}"
fi
: "${REPEAT:=3}" "${REQUESTS_PIPELINED:=${REQUESTS:-2000000}}" "${REQUESTS:=500000}" "${KEYSPACE:=1000000}"
: "${MEMORY_ITEMS:=$KEYSPACE}"

for v in REPEAT REQUESTS REQUESTS_PIPELINED CLIENTS DATA_SIZE KEYSPACE MEMORY_ITEMS MEMORY_FIELDS FILL_FIELDS SERVER_CPU CLIENT_CPU; do
    is_uint "${!v}" || die "$v must be a non-negative integer, got '${!v}'"
done
for v in REPEAT REQUESTS REQUESTS_PIPELINED CLIENTS KEYSPACE MEMORY_ITEMS MEMORY_FIELDS FILL_FIELDS; do
    [[ ${!v} -ge 1 ]] || die "$v must be at least 1"
done
[[ $TESTS =~ ^[a-z0-9_]+(,[a-z0-9_]+)*$ ]] || die "--tests must be a comma-separated list like get,set"
case $FILL_TYPE in string | list | hash | set | zset | geo | stream) ;; *) die "--fill-type: string, list, hash, set, zset, geo or stream" ;; esac
[[ $FILL_TYPE != string || $FILL_FIELDS == 1 ]] || die "--fill-fields applies to list/hash/set/zset fills"
# Keys the fill creates: what -r (and so __rand_int__) ranges over.
FILL_KEYS=$(((${KEYSPACE} + FILL_FIELDS - 1) / FILL_FIELDS))
[[ $PIPELINES =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--pipelines must be a comma-separated list like 1,16"
case $ONLY in '' | redis | magpie) ;; *) die "--only takes redis or magpie" ;; esac
case $MEMORY_TYPE in string | list | hash | set | zset | hll | geo | stream) ;; *) die "--memory-type: string, list, hash, set, zset, hll, geo or stream" ;; esac
[[ $SERVER_CPU != "$CLIENT_CPU" ]] || die "--server-cpu and --client-cpu must differ"
TEST_LIST=()
if [[ ${#CUSTOM_CMDS[@]} == 0 || $TESTS_GIVEN == 1 ]]; then IFS=, read -r -a TEST_LIST <<<"$TESTS"; fi
# Custom commands are tests named custom0, custom1, ...
for i in "${!CUSTOM_CMDS[@]}"; do TEST_LIST+=("custom$i"); done
test_label() { # the row name of a test
    if [[ $1 =~ ^custom([0-9]+)$ ]]; then echo "${CUSTOM_LABELS[${BASH_REMATCH[1]}]}"; else echo "${1^^}"; fi
}
IFS=, read -r -a PIPE_LIST <<<"$PIPELINES"
for p in "${PIPE_LIST[@]}"; do [[ $p -ge 1 ]] || die "pipeline depth must be >= 1"; done

SERVERS=()
[[ $ONLY == magpie ]] || SERVERS+=(redis)
[[ $ONLY == redis ]] || SERVERS+=(magpie)

# ----------------------------------------------------------- requirements ---
missing=()
for c in redis-benchmark redis-cli taskset setsid awk timeout; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    die "missing command(s): ${missing[*]}. Install them with: apt-get install redis-tools util-linux coreutils mawk"
fi
if [[ $ONLY != magpie && ! -x $REDIS_BIN ]]; then
    die "redis-server not found at $REDIS_BIN. Install it with: apt-get install redis-server (or pass --redis-bin PATH)"
fi
NCPU=$(nproc)
for cpu in "$SERVER_CPU" "$CLIENT_CPU"; do
    taskset -c "$cpu" true 2>/dev/null || die "cannot pin to CPU $cpu (nproc=$NCPU); this benchmark needs 2 usable CPUs (see --server-cpu/--client-cpu)"
done

# ------------------------------------------------------------------ build ---
if [[ $ONLY != redis ]]; then
    if [[ -z $MAGPIE_BIN ]]; then
        MAGPIE_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/magpie-server
        if [[ $SKIP_BUILD == 0 ]]; then
            command -v cargo >/dev/null 2>&1 || die "cargo not found (use --skip-build or --magpie-bin PATH)"
            log "building: (cd $ROOT && cargo build --release -p magpie-server)"
            (cd "$ROOT" && cargo build --release -p magpie-server) || die "cargo build --release -p magpie-server failed"
            BUILT=1
        fi
    fi
    [[ -x $MAGPIE_BIN ]] || die "magpie-server binary not found or not executable: $MAGPIE_BIN (build it, or pass --magpie-bin PATH)"
    MAGPIE_BIN=$(cd "$(dirname "$MAGPIE_BIN")" && pwd)/$(basename "$MAGPIE_BIN")
fi

# Sampled after the build: a build that just ran still weighs on the 1-minute
# figure (it decays over about a minute), which the header then says.
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)

# ---------------------------------------------------------------- servers ---
WORK=$(mktemp -d "${TMPDIR:-/tmp}/magpie-bench.XXXXXX")
declare -A PID=() PORT=() SERVER_CMD=()
USED_PORTS=" "

CHILDREN=() # client processes running in the background (see run_bg)

cleanup() {
    local rc=$? name pid i
    trap - EXIT INT TERM
    for pid in "${CHILDREN[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for name in "${!PID[@]}"; do
        pid=${PID[$name]}
        kill -TERM "$pid" 2>/dev/null || continue
        for i in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            [[ $i == 50 ]] && kill -KILL "$pid" 2>/dev/null
            sleep 0.1
        done
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# run_bg OUT CMD...: run CMD in the background with stdout and stderr to OUT
# and wait for it; `wait` returns at once on a signal, so Ctrl-C or SIGTERM
# reaches our trap without waiting for a long benchmark run to end.
run_bg() {
    local out=$1 rc=0
    shift
    "$@" >"$out" 2>&1 &
    CHILDREN=("$!")
    wait "$!" || rc=$?
    CHILDREN=()
    return "$rc"
}

port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

pick_port() {
    local p _
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 30000))
        [[ $USED_PORTS == *" $p "* ]] && continue
        port_in_use "$p" && continue
        echo "$p"
        return 0
    done
    die "no free port found on $HOST"
}

cli() { # cli NAME ARGS... : redis-cli against server NAME, 5 s timeout
    local name=$1
    shift
    timeout 5 redis-cli -h "$HOST" -p "${PORT[$name]}" "$@"
}

show_log() {
    printf -- '--- last lines of %s ---\n' "$WORK/$1.log" >&2
    tail -n 20 "$WORK/$1.log" >&2 || true
}

start_server() { # start_server NAME
    local name=$1 port bin i
    port=$(pick_port)
    USED_PORTS+="$port "
    if [[ $name == redis ]]; then
        bin=$REDIS_BIN
        local -a args=(--port "$port" --bind "$HOST" --save "$SAVE" --appendonly no)
    else
        bin=$MAGPIE_BIN
        # shellcheck disable=SC2046
        local -a args=(--port "$port" --bind "$HOST" --save "$SAVE" --appendonly no $(http_off "$bin"))
    fi
    local -a extra=()
    [[ -z $SERVER_ARGS ]] || read -r -a extra <<<"$SERVER_ARGS"
    local -a cmd=(taskset -c "$SERVER_CPU" "$bin" "${args[@]}" "${extra[@]}")
    SERVER_CMD[$name]="(cd \$WORKDIR/$name && setsid $(quote "${cmd[@]}" | sed "s/ --port $port / --port \\\$PORT /"))"
    mkdir -p "$WORK/$name"
    # Subshell execs taskset, which execs the server: $! is the server's PID.
    # setsid: a Ctrl-C in the terminal reaches this script (whose trap stops the
    # servers), not the servers themselves. The subshell is not a process group
    # leader, so setsid does not fork and $! stays the server's PID.
    (cd "$WORK/$name" && exec setsid "${cmd[@]}") >"$WORK/$name.log" 2>&1 </dev/null &
    PID[$name]=$!
    PORT[$name]=$port
    for i in $(seq 100); do
        if ! kill -0 "${PID[$name]}" 2>/dev/null; then
            show_log "$name"
            die "$name ($bin) exited during startup"
        fi
        if [[ $(cli "$name" ping 2>/dev/null) == PONG ]]; then
            log "$name: pid ${PID[$name]}, port $port, answers PING"
            return 0
        fi
        [[ $i == 100 ]] || sleep 0.1
    done
    show_log "$name"
    die "$name (pid ${PID[$name]}, port $port) did not answer PING within 10 s"
}

check_alive() {
    kill -0 "${PID[$1]}" 2>/dev/null || { show_log "$1"; die "$1 (pid ${PID[$1]}) died"; }
}

CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { # CPU time (user + system) server NAME has used, in clock ticks
    local stat
    stat=$(<"/proc/${PID[$1]}/stat") || die "cannot read /proc/${PID[$1]}/stat of $1"
    stat=${stat##*) }             # after "pid (comm) ": field 3 (state) is now the first
    local -a f
    read -r -a f <<<"$stat"
    echo $((f[11] + f[12]))       # fields 14 (utime) and 15 (stime)
}

rss_kib() { # VmRSS of server NAME in KiB
    local v
    v=$(awk '/^VmRSS:/ { print $2 }' "/proc/${PID[$1]}/status" 2>/dev/null) || true
    [[ -n $v ]] || die "cannot read VmRSS of $1 (pid ${PID[$1]})"
    echo "$v"
}

# load NAME TYPE ITEMS FIELDS: deterministic load through redis-cli --pipe.
LOAD_CMD=
load() {
    local name=$1 type=$2 items=$3 fields=$4 out errors replies
    local -a gen=(awk -v "type=$type" -v "items=$items" -v "size=$DATA_SIZE" -v "fields=$fields" -f "$SCRIPT_DIR/resp-gen.awk")
    local -a pipe=(taskset -c "$CLIENT_CPU" redis-cli -h "$HOST" -p "${PORT[$name]}" --pipe --pipe-timeout 60)
    LOAD_CMD="$(quote "${gen[@]}") | $(quote "${pipe[@]}" | sed "s/ -p ${PORT[$name]} / -p \$PORT /")"
    log "$name: loading $items $type items (redis-cli --pipe)"
    # generator -> FIFO -> redis-cli, both in the background so that cleanup
    # can stop them.
    rm -f "$WORK/load.fifo"
    mkfifo "$WORK/load.fifo"
    "${gen[@]}" >"$WORK/load.fifo" &
    local gen_pid=$! rc=0
    "${pipe[@]}" <"$WORK/load.fifo" >"$WORK/load.out" 2>&1 &
    CHILDREN=("$gen_pid" "$!")
    wait "$!" || rc=$?
    wait "$gen_pid" || rc=$((rc ? rc : $?))
    CHILDREN=()
    out=$(tr -d '\r' <"$WORK/load.out")
    errors=$(sed -n 's/^errors: \([0-9]*\), replies: [0-9]*$/\1/p' <<<"$out")
    replies=$(sed -n 's/^errors: [0-9]*, replies: \([0-9]*\)$/\1/p' <<<"$out")
    if [[ $rc != 0 || $errors != 0 || $replies != "$items" ]]; then
        head -n 5 <<<"$out" >&2
        [[ $(wc -l <<<"$out") -le 5 ]] || { echo "..."; tail -n 1 <<<"$out"; } >&2
        check_alive "$name"
        if [[ -n $errors && $errors != 0 ]]; then
            die "loading $name: the server answered $errors error(s) to $items $type commands (first ones above)"
        fi
        die "loading $name failed (redis-cli --pipe exit $rc, errors=${errors:-?} replies=${replies:-?}; --pipe ends with an ECHO, which the server must support)"
    fi
}

# check_keys NAME N: the server holds N keys (DBSIZE; spot-check if unsupported).
check_keys() {
    local name=$1 want=$2 got
    got=$(cli "$name" dbsize 2>/dev/null) || got=
    if [[ $got =~ ^[0-9]+$ ]]; then
        [[ $got == "$want" ]] || die "$name: DBSIZE is $got after loading, expected $want"
    else
        log "$name: DBSIZE unsupported ($got); spot-checking the first and last key instead"
        local k
        local prefix=key
        [[ $MODE == memory || $FILL_TYPE == string ]] || prefix=$FILL_TYPE
        [[ $MODE != memory || $MEMORY_TYPE == string ]] || prefix=$MEMORY_TYPE
        for k in "$prefix:000000000000" "$prefix:$(printf '%012d' $((want - 1)))"; do
            [[ $(cli "$name" exists "$k" 2>/dev/null) == 1 ]] || die "$name: $k missing after loading"
        done
    fi
}

# ----------------------------------------------------------------- header ---
TS=$(date -u +%Y%m%dT%H%M%SZ)
START_DATE=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
mkdir -p "$OUT_DIR"

git_rev() {
    local rev dirty=
    rev=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null) || rev="(no commits yet)"
    [[ -z $(git -C "$ROOT" status --porcelain 2>/dev/null | head -n 1) ]] || dirty=" + uncommitted changes"
    echo "$rev$dirty"
}

header() {
    local redis_v magpie_v cpu
    cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null) || true
    echo "- date: $START_DATE (start) to $(date -u '+%H:%M:%S UTC') (end)"
    echo "- host: nproc=$NCPU, cpu=${cpu:-unknown}, kernel $(uname -r), loadavg at start: $LOADAVG, at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    if [[ $ONLY != magpie ]]; then
        redis_v=$("$REDIS_BIN" --version 2>&1 | head -n 1)
        echo "- redis: $REDIS_BIN: $redis_v"
    fi
    if [[ $ONLY != redis ]]; then
        magpie_v=$(timeout 5 "$MAGPIE_BIN" --version 2>/dev/null | head -n 1) || magpie_v=
        echo "- magpie: $MAGPIE_BIN${magpie_v:+: $magpie_v} (built $(date -u -r "$MAGPIE_BIN" '+%Y-%m-%d %H:%M:%S UTC')), magpie git rev $(git_rev)"
    fi
    echo "- client: $(redis-benchmark --version 2>&1 | head -n 1), pinned to CPU $CLIENT_CPU; servers pinned to CPU $SERVER_CPU"
    if awk -v l="${LOADAVG%% *}" 'BEGIN { exit !(l + 0 >= 0.5) }'; then
        if [[ $BUILT == 1 ]]; then
            echo "- WARNING: 1-minute load average was ${LOADAVG%% *} at start (partly the cargo build that just ran): expect noise"
        else
            echo "- WARNING: 1-minute load average was ${LOADAVG%% *} at start: something else was running, expect noise"
        fi
    fi
}

# ------------------------------------------------------------- throughput ---
median() { # numbers on stdin, one per line
    sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) exit 1; if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
spread() { # (max-min)/median in percent
    sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) exit 1; m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.0f%%", (m > 0 ? 100 * (a[NR] - a[1]) / m : 0) }'
}

run_throughput() {
    # raw runs are collected in $WORK and copied to $OUT_DIR only when the run completes
    local raw=$WORK/$TS-throughput-raw.csv table=$OUT_DIR/$TS-throughput.md
    declare -A RPS=() P50=() P99=() EFF=()
    declare -A BENCH_CMD=()
    local name test p rep n line rps p50 p99 order rc t0 t1 eff

    for name in "${SERVERS[@]}"; do start_server "$name"; done
    if [[ $FILL == 1 ]]; then
        for name in "${SERVERS[@]}"; do
            load "$name" "$FILL_TYPE" "$KEYSPACE" "$FILL_FIELDS"
            check_keys "$name" "$FILL_KEYS"
            # Streams get a consumer group each, for XREADGROUP.
            if [[ $FILL_TYPE == stream ]]; then
                local fill_cmd=$LOAD_CMD
                load "$name" xgroup "$FILL_KEYS" 1
                LOAD_CMD="$fill_cmd"$'\n'"$LOAD_CMD"
            fi
        done
    fi

    echo "server,test,pipeline,rep,requests,rps,avg_ms,min_ms,p50_ms,p95_ms,p99_ms,max_ms" >"$raw"
    for test in "${TEST_LIST[@]}"; do
        for p in "${PIPE_LIST[@]}"; do
            n=$REQUESTS
            [[ $p == 1 ]] || n=$REQUESTS_PIPELINED
            for rep in $(seq "$REPEAT"); do
                # Interleave, and alternate who goes first (A B, B A, ...).
                order=("${SERVERS[@]}")
                if [[ ${#SERVERS[@]} == 2 && $((rep % 2)) == 0 ]]; then order=("${SERVERS[1]}" "${SERVERS[0]}"); fi
                for name in "${order[@]}"; do
                    check_alive "$name"
                    local -a cmd=(taskset -c "$CLIENT_CPU" redis-benchmark -h "$HOST" -p "${PORT[$name]}"
                        -c "$CLIENTS" -P "$p" -d "$DATA_SIZE" -r "$FILL_KEYS" -n "$n" -q --csv)
                    if [[ $test =~ ^custom([0-9]+)$ ]]; then
                        local -a words
                        read -r -a words <<<"${CUSTOM_CMDS[${BASH_REMATCH[1]}]}"
                        cmd+=("${words[@]}")
                    else
                        cmd+=(-t "$test")
                    fi
                    BENCH_CMD[$test,$p]=$(quote "${cmd[@]}" | sed "s/ -p ${PORT[$name]} / -p \$PORT /")
                    rc=0
                    t0=$(cpu_ticks "$name")
                    run_bg "$WORK/bench.out" "${cmd[@]}" || rc=$?
                    t1=$(cpu_ticks "$name")
                    # The last row: LRANGE_* tests print their LPUSH prefill's row first.
                    line=$(awk -F, 'NR > 1 && NF >= 8 { last = $0 } END { if (last != "") print last }' "$WORK/bench.out")
                    if [[ $rc != 0 || -z $line ]]; then
                        cat "$WORK/bench.out" >&2
                        check_alive "$name"
                        die "redis-benchmark against $name failed (exit $rc; test $test, -P $p); an error reply from the server stops it"
                    fi
                    line=${line//\"/}
                    IFS=, read -r _ rps _ _ p50 _ p99 _ <<<"$line"
                    echo "$name,$test,$p,$rep,$n,${line#*,}" >>"$raw"
                    RPS[$name,$test,$p]+="$rps "
                    # Requests per second of server CPU: the per-core cost, which still
                    # compares the servers when the one client process is the bottleneck.
                    eff=$(awk -v n="$n" -v t=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", (t > 0 ? n * hz / t : 0) }')
                    EFF[$name,$test,$p]+="$eff "
                    P50[$name,$test,$p]+="$p50 "
                    P99[$name,$test,$p]+="$p99 "
                    log "$(printf '%-6s %-5s -P %-3s run %d/%d: %12s ops/s  p50 %s ms' "$name" "$(test_label "$test")" "$p" "$rep" "$REPEAT" "$rps" "$p50")"
                done
            done
        done
    done

    local r m rs ms rp mp rq mq ratio
    {
        echo "## Throughput: magpie vs redis ($TS)"
        echo
        header
        echo "- workload: -c $CLIENTS -d $DATA_SIZE -r $FILL_KEYS, -n $REQUESTS at -P 1 and $REQUESTS_PIPELINED at -P >1, median of $REPEAT run(s) per cell, runs interleaved"
        if [[ $FILL == 1 && $FILL_TYPE == string ]]; then
            echo "- keyspace filled first: all $KEYSPACE keys key:000000000000..key:$(printf '%012d' $((KEYSPACE - 1))) set to $DATA_SIZE-byte values (deterministic, redis-cli --pipe)"
        elif [[ $FILL == 1 ]]; then
            echo "- keyspace filled first: $KEYSPACE $FILL_TYPE items of $DATA_SIZE bytes in $FILL_KEYS keys $FILL_TYPE:000000000000..$FILL_TYPE:$(printf '%012d' $((FILL_KEYS - 1))), $FILL_FIELDS per key (bench/resp-gen.awk, redis-cli --pipe)"
        else
            echo "- keyspace NOT filled (--no-fill): GET measures misses"
        fi
        echo
        echo "| test | pipeline | redis ops/s | magpie ops/s | magpie/redis | redis ops/CPU-s | magpie ops/CPU-s | magpie/redis per CPU | redis p50 ms | magpie p50 ms | redis p99 ms | magpie p99 ms | redis spread | magpie spread |"
        echo "|------|---------:|------------:|-------------:|-------------:|----------------:|-----------------:|---------------------:|-------------:|--------------:|-------------:|--------------:|-------------:|--------------:|"
        for test in "${TEST_LIST[@]}"; do
            for p in "${PIPE_LIST[@]}"; do
                r=- m=- rs=- ms=- rp=- mp=- rq=- mq=- ratio=- re=- me=- eratio=-
                if [[ -n ${RPS[redis,$test,$p]:-} ]]; then
                    r=$(tr ' ' '\n' <<<"${RPS[redis,$test,$p]}" | grep . | median)
                    rs=$(tr ' ' '\n' <<<"${RPS[redis,$test,$p]}" | grep . | spread)
                    rp=$(tr ' ' '\n' <<<"${P50[redis,$test,$p]}" | grep . | median)
                    rq=$(tr ' ' '\n' <<<"${P99[redis,$test,$p]}" | grep . | median)
                    re=$(tr ' ' '\n' <<<"${EFF[redis,$test,$p]}" | grep . | median)
                fi
                if [[ -n ${RPS[magpie,$test,$p]:-} ]]; then
                    m=$(tr ' ' '\n' <<<"${RPS[magpie,$test,$p]}" | grep . | median)
                    ms=$(tr ' ' '\n' <<<"${RPS[magpie,$test,$p]}" | grep . | spread)
                    mp=$(tr ' ' '\n' <<<"${P50[magpie,$test,$p]}" | grep . | median)
                    mq=$(tr ' ' '\n' <<<"${P99[magpie,$test,$p]}" | grep . | median)
                    me=$(tr ' ' '\n' <<<"${EFF[magpie,$test,$p]}" | grep . | median)
                fi
                if [[ $r != - && $m != - ]]; then ratio=$(awk -v a="$m" -v b="$r" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'); fi
                if [[ $re != - && $me != - ]]; then eratio=$(awk -v a="$me" -v b="$re" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'); fi
                [[ $re == - ]] || re=$(printf '%.0f' "$re")
                [[ $me == - ]] || me=$(printf '%.0f' "$me")
                [[ $r == - ]] || r=$(printf '%.0f' "$r")
                [[ $m == - ]] || m=$(printf '%.0f' "$m")
                echo "| $(test_label "$test") | $p | $r | $m | $ratio | $re | $me | $eratio | $rp | $mp | $rq | $mq | $rs | $ms |"
            done
        done
        echo
        echo "spread = (max - min) / median over the $REPEAT run(s); p50 and p99 are redis-benchmark's, medians over the runs; raw runs: $(basename "$raw")"
        echo
        echo "ops/CPU-s = requests / CPU time (user + system) the server used during the run, from /proc/PID/stat: what one server core can do. It differs from ops/s when the server is not saturated (at pipeline 1 the single redis-benchmark process is usually the bottleneck)."
        echo
        echo "Commands (\$PORT = each server's port, \$WORKDIR = a fresh temporary directory):"
        echo
        echo '```'
        for name in "${SERVERS[@]}"; do echo "${SERVER_CMD[$name]}"; done
        [[ $FILL == 0 ]] || echo "$LOAD_CMD"
        for test in "${TEST_LIST[@]}"; do
            for p in "${PIPE_LIST[@]}"; do echo "${BENCH_CMD[$test,$p]}"; done
        done
        echo '```'
    } >"$table"
    cp "$raw" "$OUT_DIR/"
    echo
    cat "$table"
    echo
    log "written: $table and $OUT_DIR/$(basename "$raw")"
}

# ----------------------------------------------------------------- memory ---
run_memory() {
    local table=$OUT_DIR/$TS-memory.md
    local name keys fields=$MEMORY_FIELDS enc umem
    declare -A BEFORE=() AFTER=() ENC=() UMEM=()
    if [[ $MEMORY_TYPE == string ]]; then
        keys=$MEMORY_ITEMS
        fields=1
    else
        keys=$(((MEMORY_ITEMS + fields - 1) / fields))
    fi

    # One server at a time, each fresh, so neither disturbs the other.
    for name in "${SERVERS[@]}"; do
        start_server "$name"
        sleep 1
        BEFORE[$name]=$(rss_kib "$name")
        load "$name" "$MEMORY_TYPE" "$MEMORY_ITEMS" "$fields"
        sleep 1
        check_alive "$name"
        AFTER[$name]=$(rss_kib "$name")
        if [[ $MEMORY_TYPE == string ]]; then check_keys "$name" "$keys"; fi
        enc=$(cli "$name" object encoding "$( [[ $MEMORY_TYPE == string ]] && echo key || echo "$MEMORY_TYPE"):000000000000" 2>/dev/null | head -n 1) || enc=
        [[ $enc =~ ^[a-z]+$ ]] || enc=n/a
        ENC[$name]=$enc
        umem=$(cli "$name" info memory 2>/dev/null | tr -d '\r' | sed -n 's/^used_memory:\([0-9]*\)$/\1/p') || umem=
        UMEM[$name]=${umem:-n/a}
        log "$name: VmRSS ${BEFORE[$name]} KiB before, ${AFTER[$name]} KiB after"
        kill -TERM "${PID[$name]}" 2>/dev/null || true
        wait "${PID[$name]}" 2>/dev/null || true
        unset "PID[$name]"
    done

    local per_key per_item ratio_key d
    {
        echo "## Memory: magpie vs redis ($TS)"
        echo
        header
        echo "- load: $MEMORY_ITEMS $MEMORY_TYPE items of $DATA_SIZE-byte values into $keys keys ($fields item(s) per key), one command per item, deterministic, through redis-cli --pipe"
        echo "- bytes/key and bytes/item = (VmRSS after load - VmRSS before load) / keys (items); VmRSS from /proc/PID/status"
        echo
        echo "| server | type | keys | items | VmRSS before KiB | VmRSS after KiB | bytes/key | bytes/item | used_memory (INFO) | encoding |"
        echo "|--------|------|-----:|------:|-----------------:|----------------:|----------:|-----------:|-------------------:|----------|"
        declare -A PER_KEY=()
        for name in "${SERVERS[@]}"; do
            d=$(((AFTER[$name] - BEFORE[$name]) * 1024))
            per_key=$(awk -v d="$d" -v k="$keys" 'BEGIN { printf "%.1f", d / k }')
            per_item=$(awk -v d="$d" -v k="$MEMORY_ITEMS" 'BEGIN { printf "%.1f", d / k }')
            PER_KEY[$name]=$per_key
            echo "| $name | $MEMORY_TYPE | $keys | $MEMORY_ITEMS | ${BEFORE[$name]} | ${AFTER[$name]} | $per_key | $per_item | ${UMEM[$name]} | ${ENC[$name]} |"
        done
        if [[ ${#SERVERS[@]} == 2 ]]; then
            ratio_key=$(awk -v a="${PER_KEY[magpie]}" -v b="${PER_KEY[redis]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
            echo
            echo "magpie/redis memory per key: **$ratio_key** (lower is better for magpie)"
        fi
        echo
        echo "Commands (\$PORT = each server's port, \$WORKDIR = a fresh temporary directory):"
        echo
        echo '```'
        for name in "${SERVERS[@]}"; do echo "${SERVER_CMD[$name]}"; done
        echo "$LOAD_CMD"
        echo '```'
    } >"$table"
    echo
    cat "$table"
    echo
    log "written: $table"
}

if [[ $MODE == memory ]]; then run_memory; else run_throughput; fi
