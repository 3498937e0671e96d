#!/usr/bin/env bash
# Checks the HTTP API against its own OpenAPI document: builds magpie-server, starts it on
# free ports with persistence off in a temporary directory, and runs Schemathesis (pinned, in
# a venv of its own) on GET /v1/openapi.json. Schemathesis generates requests from the
# document (valid and invalid ones, and sequences that follow its links) and fails on any
# answer the document does not describe: a 5xx, an undocumented status or Content-Type, a
# body or Server-Sent Event its schema rejects. Its settings, and the reason for each check
# left off, are in .ci/openapi-check.toml; MessagePack bodies go through .ci/openapi_hooks.py.
#
# Runs on a fresh clone, as root or with sudo (it installs Python's venv module if missing).
# About a minute and a half on two cores once built.
# Usage: .ci/openapi-check.sh [extra `st run` flags]
set -euo pipefail
cd "$(dirname "$0")/.."

requirements=.ci/openapi-requirements.txt

# Python 3.11 or later (schemathesis 4 needs it) with venv and ensurepip (Debian ships those
# apart, in python3-venv).
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "--- installing python3 python3-venv"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3 python3-venv >/dev/null
fi
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "error: schemathesis needs Python 3.11 or later, found $(python3 --version)" >&2
    exit 1
fi

target="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"

# The venv is kept in the target directory and made again when the pinned list changes.
venv="$target/openapi-venv"
stamp="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$stamp" ] || [ ! -x "$venv/bin/st" ]; then
    echo "--- installing schemathesis in $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    echo "$stamp" >"$venv/.requirements"
fi
"$venv/bin/st" --version

echo "--- building magpie-server"
cargo build -p magpie-server --bin magpie-server
server_bin="$target/debug/magpie-server"

dir="$(mktemp -d)"
pid=""
stop() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Answers 0 once GET /readyz is 200; 1 if the server exits first or is not ready in 30 s.
wait_ready() {
    python3 - "$1" "$2" <<'EOF'
import os, sys, time, urllib.request
port, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
            if r.status == 200:
                sys.exit(0)
    except Exception:
        pass
    time.sleep(0.1)
sys.exit(1)
EOF
}

# A free port may be taken by someone else before the server binds it: then it exits at once,
# and both ports are picked again.
http_port=""
for _ in 1 2 3 4 5; do
    port="$(free_port)"
    http="$(free_port)"
    rm -rf "$dir/data" && mkdir "$dir/data"
    "$server_bin" --port "$port" --bind 127.0.0.1 --http-port "$http" --save '' --dir "$dir/data" \
        >"$dir/server.log" 2>&1 &
    pid=$!
    if wait_ready "$http" "$pid"; then
        http_port="$http"
        break
    fi
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
done
if [ -z "$http_port" ]; then
    echo "error: magpie-server did not start on any of 5 pairs of free ports; its log:" >&2
    cat "$dir/server.log" >&2
    exit 1
fi

echo "--- schemathesis against http://127.0.0.1:$http_port/v1/openapi.json"
status=0
"$venv/bin/st" --config-file .ci/openapi-check.toml run --no-color "$@" \
    "http://127.0.0.1:$http_port/v1/openapi.json" || status=$?

# The server must have lived through it all.
if ! kill -0 "$pid" 2>/dev/null; then
    echo "error: magpie-server exited during the run; its log:" >&2
    cat "$dir/server.log" >&2
    exit 1
fi
exit "$status"
