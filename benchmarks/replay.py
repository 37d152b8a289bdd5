#!/usr/bin/env python3
"""
How long txgearman takes to replay a large queue from Redis at start-up,
and how much memory the replayed queue takes.

Starts a private redis-server, writes N background jobs into it in
txgearman's layout (straight over RESP, in pipelined chunks), then starts
C{twistd -n gearman --redis ...} and times it from launch until it answers
the admin C{status} command with every job queued.  Optionally does the
same for gearmand's Redis queue (C{--gearmand}), writing its key format.

    python benchmarks/replay.py --jobs 1000000 --size 100 [--gearmand]

Only loopback addresses are used.  Nothing here is a test: it measures.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

from load import adminQueued
from support import (
    LOOPBACK,
    SERVERS,
    ProcessExited,
    freePort,
    rssMiB,
    startRedis,
    stopProcess,
    waitUntil,
)

from txgearman.store.interfaces import StoredJob
from txgearman.store.redislayout import LAYOUT_VERSION, Layout, encodeRecord

CHUNK = 10000


def resp(*args: bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


class Redis:
    """
    A private redis-server (L{startRedis}) and one connection to it, to
    write the queue and read its memory use.
    """

    def __init__(self, tmp: str) -> None:
        self.proc, self.port = startRedis(tmp)
        self.sock = socket.create_connection((LOOPBACK, self.port))
        self.reader = self.sock.makefile("rb")

    def pipeline(self, commands: list[bytes]) -> None:
        """
        Send commands and read (and check) as many simple replies.
        """
        self.sock.sendall(b"".join(commands))
        for _ in commands:
            line = self.reader.readline()
            if line.startswith(b"-"):
                raise RuntimeError(line.decode())
            if line.startswith(b"$") and line != b"$-1\r\n":
                self.reader.read(int(line[1:]) + 2)

    def stop(self) -> None:
        self.sock.close()
        stopProcess(self.proc)

    def usedMemoryMiB(self) -> float:
        self.sock.sendall(resp(b"INFO", b"memory"))
        size = int(self.reader.readline()[1:])
        text = self.reader.read(size + 2).decode()
        for line in text.splitlines():
            if line.startswith("used_memory:"):
                return int(line.split(":")[1]) / 2**20
        return 0.0


def fillTxgearman(redis: Redis, jobs: int, size: int) -> None:
    layout = Layout(b"txgearman")
    data = b"x" * size
    redis.pipeline([resp(b"SET", layout.version, LAYOUT_VERSION)])
    for start in range(1, jobs + 1, CHUNK):
        commands = []
        for n in range(start, min(start + CHUNK, jobs + 1)):
            record = encodeRecord(StoredJob(b"bench", b"u%d" % n, data, priority=n % 3))
            commands.append(resp(b"SET", layout.jobKey(n), record))
        redis.pipeline(commands)
    redis.pipeline([resp(b"SET", layout.seq, b"%d" % jobs)])


def fillGearmand(redis: Redis, jobs: int, size: int) -> None:
    data = b"x" * size
    for start in range(1, jobs + 1, CHUNK):
        commands = []
        for n in range(start, min(start + CHUNK, jobs + 1)):
            unique = b"u%d" % n
            # As gearmand 1.1.20 writes them (master adds function and
            # unique fields, which 1.1.20 refuses to replay).
            commands.append(
                resp(
                    b"HMSET",
                    b"_gear_-bench-" + unique,
                    b"data",
                    data,
                    b"priority",
                    b"%d" % (n % 3),
                )
            )
        redis.pipeline(commands)


def timeStart(
    argv: list[str], port: int, jobs: int, timeout: float, logPath: str
) -> tuple[float, float]:
    """
    Start a server and time it until its admin C{status} shows C{jobs}
    jobs queued.

    @return: the seconds that took, and the server's memory then.
    """
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        try:
            waitUntil(
                lambda: adminQueued(LOOPBACK, port, b"bench") >= jobs,
                timeout,
                f"{jobs} queued jobs",
                proc,
            )
        except ProcessExited as e:
            error = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            if os.path.exists(logPath):
                with open(logPath, errors="replace") as log:
                    error += "".join(log.readlines()[-5:])
            raise RuntimeError(
                f"{' '.join(argv)} exited with {e.returncode}: {error}"
            ) from None
        return time.monotonic() - started, rssMiB(proc.pid)
    finally:
        stopProcess(proc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument(
        "--gearmand", action="store_true", help="also time gearmand -q redis"
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="replay-") as tmp:
        redis = Redis(tmp)
        try:
            t0 = time.monotonic()
            fillTxgearman(redis, args.jobs, args.size)
            print(
                f"wrote {args.jobs} jobs in {time.monotonic() - t0:.1f} s; Redis uses "
                f"{redis.usedMemoryMiB():.0f} MiB",
                file=sys.stderr,
            )
            port = freePort()
            argv = SERVERS["txgearman-redis"].argv(port, tmp, redis.port)
            seconds, rss = timeStart(
                argv, port, args.jobs, args.timeout, f"{tmp}/t.log"
            )
            rows.append(("txgearman --redis", seconds, rss))
            with open(f"{tmp}/t.log") as log:
                progress = [line.rstrip() for line in log if "Replay" in line]
            print("\n".join(progress), file=sys.stderr)
        finally:
            redis.stop()
        if args.gearmand:
            redis = Redis(tmp)
            try:
                fillGearmand(redis, args.jobs, args.size)
                port = freePort()
                argv = SERVERS["gearmand-t1-redis"].argv(port, tmp, redis.port)
                try:
                    seconds, rss = timeStart(
                        argv, port, args.jobs, args.timeout, f"{tmp}/g.log"
                    )
                except RuntimeError as e:
                    print(f"gearmand failed: {e}", file=sys.stderr)
                    seconds, rss = float("nan"), float("nan")
                rows.append(("gearmand -t 1 -q redis", seconds, rss))
            finally:
                redis.stop()
    print(f"\n{args.jobs:,} queued jobs of {args.size} bytes\n")
    print("| server | start-up until all queued (s) | RSS after replay (MiB) |")
    print("|---|---|---|")
    for name, seconds, rss in rows:
        print(f"| {name} | {seconds:.1f} | {rss:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
