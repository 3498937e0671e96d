#!/usr/bin/env python3
"""bench/garbage.py: peak memory under garbage input, redis-server against magpie-server in
one run.

For each server (redis first, then magpie; each fresh, alone, in its own temporary directory,
pinned to CPU 0; this script runs on CPU 1), CONNS connection slots each run sessions one after
the other. A session connects and sends random RESP-ish input from a generator seeded by (seed,
slot, session) until the server closes the connection (a protocol error closes it, as it
should) or, with --pieces, after that many pieces. So both servers get exactly the same
sessions, whenever each of them closes one. A piece is one of:
  - a well-formed command (SET/GET/DEL/RPUSH+LTRIM/HSET on the slot's 10 keys, values up to
    4 KB; lists keep 8 elements and hashes 8 fields: the subject is garbage, not data);
  - a well-formed command with one big argument (up to 32 MB, log-uniform): a SET on the
    slot's one big key, or an unknown command, after which the connection goes on;
  - a multibulk header with a random count (`*n`, n from 0 to 2^31, log-uniform);
  - a bulk header with a random length (`$n`, n from 0 to 2^28, log-uniform): a declared
    length that the rest of the session then feeds makes the server hold that much;
  - random bytes (1 byte to 1 MB, log-uniform), an inline line of random words, a lone CRLF.
The input is paced (at most RATE MB/s over all connections, each slot its share), so both
servers read it at the same pace. The server's VmRSS is sampled every 50 ms; VmHWM (the
kernel's record of the peak RSS) is read at the end of the run, and VmRSS again after IDLE
seconds without input (what the server gives back).

Usage: bench/garbage.py [--seconds 60] [--conns 40] [--pieces 0] [--sessions N] [--rate 100]
                        [--seed 1] [--idle 5] [--magpie-bin PATH] [--redis-bin PATH]
                        [--only redis|magpie]

By default a session lasts until the server closes it (--pieces 0) and the run SECONDS; with
--pieces P each session sends P pieces and closes, and the run ends after SESSIONS sessions
per slot (or SECONDS).

Needs python3 (3.8+), redis-server, taskset.
"""

import argparse
import errno
import os
import random
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"
POOL = os.urandom(4 << 20)  # random bytes are slices of this


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def log_uniform(rng, hi):
    return int(2 ** rng.uniform(0, hi))


def bulk(b):
    return b"$%d\r\n%s\r\n" % (len(b), b)


def command(*args):
    return b"*%d\r\n" % len(args) + b"".join(bulk(a) for a in args)


def random_bytes(rng, n):
    out = bytearray()
    while len(out) < n:
        start = rng.randrange(len(POOL))
        out += POOL[start : start + (n - len(out))]
    return bytes(out)


def piece(rng, slot):
    """One piece of RESP-ish input. Keys are the slot's own, so what is stored in the end
    does not depend on how the slots' commands interleave, and what a slot stores is bounded
    (the subject is garbage, not data)."""
    r = rng.random()
    key = b"%d:k%d" % (slot, rng.randrange(10))
    if r < 0.25:
        value = random_bytes(rng, log_uniform(rng, 12))
        kind = rng.randrange(5)
        if kind == 0:
            return command(b"SET", key, value)
        if kind == 1:
            return command(b"GET", key)
        if kind == 2:
            return command(b"DEL", key)
        if kind == 3:
            return command(b"RPUSH", b"l" + key, value) + command(b"LTRIM", b"l" + key, b"-8", b"-1")
        return command(b"HSET", b"h" + key, b"f%d" % rng.randrange(8), value)
    if r < 0.28:
        # A big argument, whole: stored (SET on the slot's one big key), or refused (an
        # unknown command), after which the connection goes on.
        value = random_bytes(rng, log_uniform(rng, 25))
        if rng.random() < 0.25:
            return command(b"SET", b"%d:big" % slot, value)
        return command(b"GARBAGE", value)
    if r < 0.36:
        return b"*%d\r\n" % log_uniform(rng, 31)
    if r < 0.43:
        return b"$%d\r\n" % log_uniform(rng, 28)
    if r < 0.80:
        return random_bytes(rng, log_uniform(rng, 20))
    if r < 0.95:
        words = [b"%x" % rng.getrandbits(32) for _ in range(rng.randrange(1, 20))]
        return b" ".join(words) + b"\r\n"
    return b"\r\n"


class Conn:
    """One client connection slot: it runs its sessions one after the other. A session is a
    connection that sends PIECES pieces from its own seeded generator and closes, or ends
    when the server closes it (a protocol error). What a server sees therefore does not depend
    on when it closed an earlier session: both servers get the same sessions."""

    def __init__(self, port, seed, index, sessions, pieces):
        self.port = port
        self.seed = seed
        self.index = index
        self.sessions = sessions
        self.pieces = pieces
        self.session = -1
        self.sock = None
        self.sent = 0
        self.done = False
        self.mask = 0

    def next_session(self, sel):
        if self.sock is not None:
            try:
                sel.unregister(self.sock)
            except (KeyError, ValueError):
                pass
            self.sock.close()
            self.sock = None
        self.session += 1
        if self.session >= self.sessions:
            self.done = True
            return
        self.rng = random.Random(self.seed * 1_000_000_007 + self.index * 100_003 + self.session)
        self.left = self.pieces
        self.out = b""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((HOST, self.port))
        self.sock = s
        self.mask = selectors.EVENT_READ | selectors.EVENT_WRITE
        sel.register(s, self.mask, self)

    def pace(self, sel, allowed):
        """Waits for the socket to be writable only while under its share of the rate."""
        if self.done:
            return
        mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.sent < allowed else 0)
        if mask != self.mask:
            self.mask = mask
            sel.modify(self.sock, mask, self)

    def writable(self, sel):
        if not self.out:
            if self.left == 0 and self.pieces > 0:
                self.next_session(sel)  # sent it all: the next session
                return
            n = min(8, self.left) if self.pieces > 0 else 8
            self.left -= n
            self.out = b"".join(piece(self.rng, self.index) for _ in range(n))
        try:
            n = self.sock.send(self.out[: 1 << 20])
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ECONNREFUSED):
                self.next_session(sel)
                return
            raise
        self.sent += n
        self.out = self.out[n:]

    def readable(self, sel):
        try:
            data = self.sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            self.next_session(sel)
            return
        if not data:
            self.next_session(sel)  # the server closed it


def start(name, binary, port, workdir, cpu):
    if name == "redis":
        cmd = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no", "--dir", workdir]
    else:
        cmd = [binary, "--port", str(port), "--bind", HOST, "--save", "", "--dir", workdir]
    cmd = ["taskset", "-c", str(cpu)] + cmd
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, cmd
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{name} not ready")


def run(name, binary, args):
    workdir = tempfile.mkdtemp(prefix=f"magpie-garbage-{name}-")
    port = free_port()
    proc, cmd = start(name, binary, port, workdir, args.server_cpu)
    try:
        time.sleep(0.3)
        start_rss = status(proc.pid, "VmRSS")
        sel = selectors.DefaultSelector()
        conns = [Conn(port, args.seed, i, args.sessions, args.pieces) for i in range(args.conns)]
        for c in conns:
            c.next_session(sel)
        peak_sampled = 0
        next_sample = 0.0
        began = time.time()
        share = args.rate * 1e6 / args.conns  # bytes per second per connection
        while not all(c.done for c in conns):
            if time.time() - began > args.seconds:
                break
            allowed = (time.time() - began) * share
            for c in conns:
                c.pace(sel, allowed)
            for key, events in sel.select(timeout=0.01):
                c = key.data
                if c.sock is not key.fileobj:
                    continue
                if events & selectors.EVENT_READ:
                    c.readable(sel)
                if events & selectors.EVENT_WRITE and c.sock is key.fileobj:
                    c.writable(sel)
            now = time.time()
            if now >= next_sample:
                next_sample = now + 0.05
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} died during the run (exit {proc.returncode})")
                peak_sampled = max(peak_sampled, status(proc.pid, "VmRSS"))
        seconds = time.time() - began
        hwm = status(proc.pid, "VmHWM")
        sel.close()
        time.sleep(args.idle)
        after = status(proc.pid, "VmRSS")
        if proc.poll() is not None:
            raise RuntimeError(f"{name} died after the run (exit {proc.returncode})")
        return {
            "cmd": " ".join(cmd),
            "start": start_rss,
            "peak_sampled": peak_sampled,
            "hwm": hwm,
            "after": after,
            "sent_mb": sum(c.sent for c in conns) / 1e6,
            "seconds": seconds,
        }
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
    p.add_argument("--sessions", type=int, default=1_000_000, help="sessions per connection")
    p.add_argument("--pieces", type=int, default=0, help="pieces of input per session (0: until the server closes it)")
    p.add_argument("--seconds", type=float, default=60, help="stop then, if the sessions are not done")
    p.add_argument("--conns", type=int, default=40)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--idle", type=float, default=5)
    p.add_argument("--rate", type=float, default=100, help="MB/s sent, over all connections")
    p.add_argument("--magpie-bin", default=os.path.join(target, "release", "magpie-server"))
    p.add_argument("--redis-bin", default=shutil.which("redis-server") or "/usr/bin/redis-server")
    p.add_argument("--only", choices=["redis", "magpie"])
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--client-cpu", type=int, default=1)
    args = p.parse_args()
    os.sched_setaffinity(0, {args.client_cpu})

    results = {}
    for name in ("redis", "magpie"):
        if args.only not in (None, name):
            continue
        binary = args.redis_bin if name == "redis" else args.magpie_bin
        if not os.access(binary, os.X_OK):
            sys.exit(f"{name}: {binary} is not an executable (build it: cargo build --release -p magpie-server)")
        print(f"--- {name}: {args.conns} connections x {args.sessions} sessions of garbage", file=sys.stderr)
        results[name] = run(name, binary, args)

    mib = lambda kib: f"{kib / 1024:.0f}"
    print(f"{args.conns} connections x {args.sessions} sessions x {args.pieces} pieces, at most {args.rate:g} MB/s, seed {args.seed}, nproc {os.cpu_count()}, "
          f"load {open('/proc/loadavg').read().split()[0]}")
    print()
    print("| server | RSS at start (MiB) | peak RSS, VmHWM (MiB) | peak sampled (MiB) "
          f"| RSS {args.idle:g} s after (MiB) | sent (MB) | seconds |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {mib(r['start'])} | {mib(r['hwm'])} | {mib(r['peak_sampled'])} | {mib(r['after'])} "
              f"| {r['sent_mb']:.0f} | {r['seconds']:.0f} |")
    if "redis" in results and "magpie" in results:
        ratio = results["magpie"]["hwm"] / max(1, results["redis"]["hwm"])
        print()
        print(f"peak RSS magpie/redis: {ratio:.2f}")
    print()
    for name, r in results.items():
        print(f"{name}: {r['cmd']}")


if __name__ == "__main__":
    main()
