#!/bin/bash
# bench/security.sh: what authentication, ACL checks and TLS cost. redis-benchmark GET and SET
# at pipelines 1 and 16 against redis-server and magpie-server started with the same ACL file,
# as three clients: the default user with a password (-a), an ACL user whose key patterns the
# keys must be matched against (--user bench: ~other:* %R~ro:* ~key:*), and the password over
# TLS (--tls). Prints ops/s, ops per server CPU-second and the ratio magpie/redis (medians of
# the rounds; the two servers alternate who goes first).
#
#   bench/security.sh [MAGPIE_BIN] [ROUNDS]      (env: N=200000 NP=1000000 KEYS=100000)
#
# Servers are pinned to CPU 0, the client to CPU 1, as bench/run.sh does. Needs redis-server
# built with TLS (Debian's is), redis-benchmark, redis-cli, openssl, taskset.
set -euo pipefail
# magpie-server's HTTP API (port 7379 by default) stays off, so that servers never clash;
# builds from before it have no such flag.
http_off() { "$1" --help 2>/dev/null | grep -q -- --http-port && echo "--http-port 0" || true; }
HERE=$(cd "$(dirname "$0")" && pwd)
MAGPIE=${1:-$HERE/../target/release/magpie-server}
ROUNDS=${2:-3}
N=${N:-200000}; NP=${NP:-1000000}; KEYS=${KEYS:-100000}
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

# A CA and a server certificate for 127.0.0.1.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench CA" -keyout "$WORK/ca.key" -out "$WORK/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$WORK/server.key" -out "$WORK/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$WORK/san.ext"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.crt" -CAkey "$WORK/ca.key" -CAcreateserial -days 2 \
    -extfile "$WORK/san.ext" -out "$WORK/server.crt" 2>/dev/null
cat >"$WORK/users.acl" <<'EOF'
user default on >benchpw ~* &* +@all
user bench on >benchpw ~other:* %R~ro:* ~key:* &* +@all
EOF

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
declare -A PORT TLS PID
start() { # start NAME BINARY
    local port tls
    port=$(free_port); tls=$(free_port)
    cp "$WORK/users.acl" "$WORK/$1.acl"
    taskset -c 0 "$2" --port "$port" $(http_off "$2") --bind 127.0.0.1 --save "" --appendonly no --aclfile "$WORK/$1.acl" \
        --tls-port "$tls" --tls-cert-file "$WORK/server.crt" --tls-key-file "$WORK/server.key" \
        --tls-ca-cert-file "$WORK/ca.crt" --tls-auth-clients no >"$WORK/$1.log" 2>&1 &
    PID[$1]=$!; PIDS+=($!); PORT[$1]=$port; TLS[$1]=$tls
    for _ in $(seq 100); do
        [[ $(redis-cli -p "$port" -a benchpw --no-auth-warning ping 2>/dev/null) == PONG ]] && return 0
        sleep 0.1
    done
    cat "$WORK/$1.log" >&2; echo "$1 did not start" >&2; exit 1
}
start redis redis-server
start magpie "$MAGPIE"
for s in redis magpie; do
    taskset -c 1 redis-benchmark -p "${PORT[$s]}" -a benchpw -t set -n "$KEYS" -r "$KEYS" -d 64 -c 50 -P 16 -q >/dev/null
done

cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
median() { tr ' ' '\n' | { grep -v '^$' || true; } | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

printf '%-9s %-4s %3s %12s %12s %7s %14s %14s %7s\n' case test P redis_ops/s magpie_ops/s ratio redis_ops/cpu-s magpie_ops/cpu-s ratio
for case in password acl-user tls; do
    for t in get set; do
        for p in 1 16; do
            n=$N; [[ $p == 1 ]] || n=$NP
            declare -A R=() E=()
            for round in $(seq "$ROUNDS"); do
                order=(redis magpie); (( round % 2 )) || order=(magpie redis)
                for s in "${order[@]}"; do
                    case $case in
                        password) args=(-p "${PORT[$s]}" -a benchpw) ;;
                        acl-user) args=(-p "${PORT[$s]}" --user bench -a benchpw) ;;
                        tls) args=(-p "${TLS[$s]}" --tls --cacert "$WORK/ca.crt" -a benchpw) ;;
                    esac
                    c0=$(cpu "${PID[$s]}")
                    out=$(taskset -c 1 redis-benchmark "${args[@]}" -t "$t" -n "$n" -r "$KEYS" -d 64 -c 50 -P "$p" -q --csv 2>/dev/null | tail -n 1)
                    c1=$(cpu "${PID[$s]}")
                    rps=$(echo "$out" | awk -F, '{gsub(/"/,""); print $2}')
                    [[ -n $rps && $rps != 0 ]] || { echo "redis-benchmark failed against $s ($case $t -P $p): $out" >&2; exit 1; }
                    R[$s]+="$rps "
                    E[$s]+="$(awk -v n="$n" -v t=$((c1 - c0)) -v hz="$HZ" 'BEGIN{printf "%.0f", (t > 0 ? n*hz/t : 0)}') "
                done
            done
            rr=$(echo "${R[redis]}" | median); rm=$(echo "${R[magpie]}" | median)
            er=$(echo "${E[redis]}" | median); em=$(echo "${E[magpie]}" | median)
            printf '%-9s %-4s %3s %12.0f %12.0f %7.2f %14.0f %14.0f %7.2f\n' "$case" "$t" "$p" "$rr" "$rm" \
                "$(awk -v a="$rm" -v b="$rr" 'BEGIN{print a/b}')" "$er" "$em" "$(awk -v a="$em" -v b="$er" 'BEGIN{print (b>0)?a/b:0}')"
        done
    done
done
