#!/usr/bin/env python3
"""fdatasync on this disk: a 2 KB write + fdatasync appended to a file (the file grows: its
size is flushed too) and written over zeros preallocated ahead (data only), median of 200
each; then the cost of preallocating 1, 4 and 16 MiB of zeros (the write, then its flush).
The file goes in the directory given (default: the current one), which should be on the disk
under test. Run it under `flock /work/bench.lock` on a shared machine."""
import os
import sys
import time


def median_us(fn, n=200):
    xs = []
    for i in range(n):
        a = time.perf_counter()
        fn(i)
        xs.append(time.perf_counter() - a)
    xs.sort()
    return xs[len(xs) // 2] * 1e6


path = os.path.join(sys.argv[1] if len(sys.argv) > 1 else ".", "fdatasync-probe.dat")
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
try:
    rec = b"x" * 2000
    off = [0]

    def append(_):
        os.pwrite(fd, rec, off[0])
        off[0] += len(rec)
        os.fdatasync(fd)

    print(f"write + fdatasync, appending: {median_us(append):.0f} us")
    os.pwrite(fd, b"\0" * (8 << 20), off[0])
    os.fdatasync(fd)
    print(f"write + fdatasync, over preallocated zeros: {median_us(append):.0f} us")
    for mb in (1, 4, 16):
        end = os.fstat(fd).st_size
        a = time.perf_counter()
        os.pwrite(fd, b"\0" * (mb << 20), end)
        b = time.perf_counter()
        os.fdatasync(fd)
        c = time.perf_counter()
        print(f"{mb} MiB of zeros: write {1e3 * (b - a):.1f} ms, fdatasync {1e3 * (c - b):.1f} ms")
finally:
    os.close(fd)
    os.unlink(path)
