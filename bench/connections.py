#!/usr/bin/env python3
"""bench/connections.py: opening and holding many idle connections, redis-server against
magpie-server in one run.

For each server (redis first, then magpie; each fresh, alone, in its own temporary directory,
pinned to CPU 0, with room for the connections; this script runs on CPU 1):
  1. reads the server's VmRSS;
  2. opens N connections at once (non-blocking connects, all issued before any is waited
     for, as a burst of clients does) and sends each a PING: the time from the first connect
     to the last +PONG is the opening time. A listen backlog smaller than the burst makes the
     kernel drop SYNs, which the client resends after 1 s, 3 s, 7 s...: that shows here;
  3. with all N connections idle (each has sent one command), waits IDLE seconds (5) and
     reads VmRSS again: (after - before) / N is the memory one idle connection costs;
  4. closes them and stops the server.

Usage: bench/connections.py [--conns N] [--idle S] [--magpie-bin PATH] [--redis-bin PATH]
                            [--only redis|magpie] [--server-cpu C] [--client-cpu C]

Needs: python3 (3.8+), redis-server, taskset; a file descriptor limit above N (the script
raises its soft limit to the hard one; `ulimit -Hn` must allow N plus a few).
"""

import argparse
import os
import resource
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def wait_ready(port, proc, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("server not ready")


def start(name, binary, port, conns, workdir, cpu):
    room = str(conns + 64)
    if name == "redis":
        cmd = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no",
               "--maxclients", room, "--dir", workdir]
    else:
        cmd = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--maxclients", room,
               "--dir", workdir]
    cmd = ["taskset", "-c", str(cpu)] + cmd
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, proc)
    return proc, cmd


def open_all(port, n):
    """Opens n connections at once, PINGs each; returns (sockets, seconds, retries seen)."""
    sel = selectors.DefaultSelector()
    socks = []
    started = time.time()
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((HOST, port))
        socks.append(s)
        sel.register(s, selectors.EVENT_WRITE, "connecting")
    pending = n
    got = {}
    deadline = started + 300
    while pending:
        if time.time() > deadline:
            raise RuntimeError(f"{pending} connections still not answered after 300 s")
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            if key.data == "connecting":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise RuntimeError(f"connect failed: {os.strerror(err)}")
                s.send(b"*1\r\n$4\r\nPING\r\n")
                sel.modify(s, selectors.EVENT_READ, "ping")
            else:
                data = s.recv(64)
                if not data:
                    raise RuntimeError("the server closed a connection")
                buf = got.get(s.fileno(), b"") + data
                got[s.fileno()] = buf
                if buf.endswith(b"\r\n"):
                    if not buf.startswith(b"+PONG"):
                        raise RuntimeError(f"unexpected reply {buf!r}")
                    sel.unregister(s)
                    pending -= 1
    elapsed = time.time() - started
    sel.close()
    return socks, elapsed


def measure(name, binary, conns, args):
    workdir = tempfile.mkdtemp(prefix=f"magpie-conns-{name}-")
    port = free_port()
    proc, cmd = start(name, binary, port, conns, workdir, args.server_cpu)
    try:
        time.sleep(0.5)
        before = rss_kib(proc.pid)
        socks, secs = open_all(port, conns)
        # Idle long enough for redis-server's client cron to trim idle clients' query
        # buffers (it does after 2 s), as it would for clients that stay connected.
        time.sleep(args.idle)
        after = rss_kib(proc.pid)
        for s in socks:
            s.close()
        return {"cmd": " ".join(cmd), "open_s": secs, "before": before, "after": after,
                "per_conn": (after - before) * 1024 / conns}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--conns", type=int, default=10000)
    p.add_argument("--magpie-bin", default=os.path.join(target, "release", "magpie-server"))
    p.add_argument("--redis-bin", default=shutil.which("redis-server") or "/usr/bin/redis-server")
    p.add_argument("--only", choices=["redis", "magpie"])
    p.add_argument("--idle", type=float, default=5, help="seconds the connections stay idle before RSS is read")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    args = p.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.conns + 256
    if hard != resource.RLIM_INFINITY and hard < need:
        sys.exit(f"the file descriptor limit ({hard}) is below {need}: raise it (ulimit -Hn) or use --conns")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need) if hard == resource.RLIM_INFINITY else hard, hard))
    os.sched_setaffinity(0, {args.client_cpu})

    servers = [s for s in ("redis", "magpie") if args.only in (None, s)]
    results = {}
    for name in servers:
        binary = args.redis_bin if name == "redis" else args.magpie_bin
        if not os.access(binary, os.X_OK):
            sys.exit(f"{name}: {binary} is not an executable (build it: cargo build --release -p magpie-server)")
        print(f"--- {name}: opening {args.conns} connections", file=sys.stderr)
        results[name] = measure(name, binary, args.conns, args)

    print(f"connections: {args.conns}, nproc {os.cpu_count()}, "
          f"somaxconn {open('/proc/sys/net/core/somaxconn').read().strip()}, "
          f"load {open('/proc/loadavg').read().split()[0]}")
    print()
    print("| server | open all + PING (s) | RSS before (KiB) | RSS idle (KiB) | bytes per idle connection |")
    print("|--------|--------------------:|-----------------:|---------------:|--------------------------:|")
    for name, r in results.items():
        print(f"| {name} | {r['open_s']:.2f} | {r['before']} | {r['after']} | {r['per_conn']:.0f} |")
    print()
    for name, r in results.items():
        print(f"{name}: {r['cmd']}")


if __name__ == "__main__":
    main()
