#!/usr/bin/env bash
# Stand-in for magpie-server when validating bench/run.sh: runs a second
# redis-server with the same flags run.sh gives redis, so every ratio printed
# should come out near 1.00. Usage:
#   bench/run.sh --magpie-bin bench/redis-as-magpie.sh --skip-build
# It accepts magpie's `--port N --bind ADDR` (redis-server takes the same
# spelling) and execs, so the PID run.sh sees is the server itself.
set -euo pipefail
exec "${REDIS_SERVER:-/usr/bin/redis-server}" "$@" --save '' --appendonly no
