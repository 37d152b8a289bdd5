#!/usr/bin/env python3
"""
How long txgearman takes to replay a large queue from Redis or SQLite at
start-up, and how much memory the replayed queue takes.

With C{--store redis} (the default), starts a private redis-server, writes
N background jobs into it in txgearman's layout (straight over RESP, in
pipelined chunks), then starts C{twistd -n gearman --redis ...} and times
it from launch until it answers the admin C{status} command with every job
queued.  With C{--store sqlite}, writes them into a queue file of
txgearman's schema and times C{--sqlite FILE} the same way, and reports
the file's size per job.  C{--gearmand} does the same for gearmand's queue
of that kind (its Redis keys, or its C{gearman_queue} table).

    python benchmarks/replay.py --jobs 1000000 --size 100 [--store sqlite] [--gearmand]

Only loopback addresses are used.  Nothing here is a test: it measures.
"""

from __future__ import annotations

import argparse
import os
import socket
import sqlite3
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

from txgearman.importer.resp import encodeCommand
from txgearman.store.interfaces import StoredJob
from txgearman.store.redislayout import LAYOUT_VERSION, Layout, encodeRecord
from txgearman.store.sqlite import insertJobs, openDatabase

CHUNK = 10000


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
        self.sock.sendall(encodeCommand([b"INFO", b"memory"]))
        size = int(self.reader.readline()[1:])
        text = self.reader.read(size + 2).decode()
        for line in text.splitlines():
            if line.startswith("used_memory:"):
                return int(line.split(":")[1]) / 2**20
        return 0.0


def fillTxgearman(redis: Redis, jobs: int, size: int) -> None:
    layout = Layout(b"txgearman")
    data = b"x" * size
    redis.pipeline([encodeCommand([b"SET", layout.version, LAYOUT_VERSION])])
    for start in range(1, jobs + 1, CHUNK):
        commands = []
        for n in range(start, min(start + CHUNK, jobs + 1)):
            record = encodeRecord(StoredJob(b"bench", b"u%d" % n, data, priority=n % 3))
            commands.append(encodeCommand([b"SET", layout.jobKey(n), record]))
        redis.pipeline(commands)
    redis.pipeline([encodeCommand([b"SET", layout.seq, b"%d" % jobs])])


def fillGearmand(redis: Redis, jobs: int, size: int) -> None:
    data = b"x" * size
    for start in range(1, jobs + 1, CHUNK):
        commands = []
        for n in range(start, min(start + CHUNK, jobs + 1)):
            unique = b"u%d" % n
            # As gearmand 1.1.20 writes them (master adds function and
            # unique fields, which 1.1.20 refuses to replay).
            commands.append(
                encodeCommand(
                    [
                        b"HMSET",
                        b"_gear_-bench-" + unique,
                        b"data",
                        data,
                        b"priority",
                        b"%d" % (n % 3),
                    ]
                )
            )
        redis.pipeline(commands)


def fileMiB(path: str) -> float:
    """The size of an SQLite file and its WAL, in MiB."""
    total = 0
    for name in (path, path + "-wal"):
        if os.path.exists(name):
            total += os.path.getsize(name)
    return total / 2**20


def fillTxgearmanSQLite(path: str, jobs: int, size: int) -> None:
    """Write C{jobs} jobs into a txgearman queue file, as its store would."""
    db = openDatabase(path)
    data = b"x" * size
    for start in range(1, jobs + 1, CHUNK):
        db.execute("BEGIN")
        insertJobs(
            db,
            start,
            [
                StoredJob(b"bench", b"u%d" % n, data, priority=n % 3)
                for n in range(start, min(start + CHUNK, jobs + 1))
            ],
        )
        db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def fillGearmandSQLite(path: str, jobs: int, size: int) -> None:
    """Write C{jobs} jobs into gearmand 1.1.20's C{gearman_queue} table."""
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE gearman_queue (unique_key TEXT, function_name TEXT, "
        "priority INTEGER, data BLOB, when_to_run INTEGER, "
        "PRIMARY KEY (unique_key, function_name))"
    )
    data = b"x" * size
    for start in range(1, jobs + 1, CHUNK):
        db.executemany(
            "INSERT INTO gearman_queue VALUES (?, ?, ?, ?, 0)",
            (
                (f"u{n}", "bench", n % 3, data)
                for n in range(start, min(start + CHUNK, jobs + 1))
            ),
        )
        db.commit()
    db.close()


def replaySQLite(args: argparse.Namespace, tmp: str) -> list[tuple[str, float, float]]:
    """Time the replay of an SQLite queue: txgearman's, and gearmand's."""
    rows = []
    path = f"{tmp}/queue.db"
    t0 = time.monotonic()
    fillTxgearmanSQLite(path, args.jobs, args.size)
    print(
        f"wrote {args.jobs} jobs in {time.monotonic() - t0:.1f} s; the file is "
        f"{fileMiB(path):.0f} MiB, {fileMiB(path) * 2**20 / args.jobs:.0f} bytes a job "
        f"of {args.size} data bytes",
        file=sys.stderr,
    )
    port = freePort()
    argv = SERVERS["txgearman-sqlite"].argv(port, tmp)
    seconds, rss = timeStart(argv, port, args.jobs, args.timeout, f"{tmp}/t.log")
    rows.append(("txgearman --sqlite", seconds, rss))
    with open(f"{tmp}/t.log") as log:
        progress = [line.rstrip() for line in log if "Restored" in line]
    print("\n".join(progress), file=sys.stderr)
    if args.gearmand:
        path = f"{tmp}/gearmand.db"
        fillGearmandSQLite(path, args.jobs, args.size)
        print(
            f"gearmand's file: {fileMiB(path):.0f} MiB, "
            f"{fileMiB(path) * 2**20 / args.jobs:.0f} bytes a job",
            file=sys.stderr,
        )
        rows.append(timeGearmand("gearmand-t1-sqlite", args, tmp))
    return rows


def timeGearmand(
    name: str, args: argparse.Namespace, tmp: str, redisPort: int = 0
) -> tuple[str, float, float]:
    """Time gearmand's start with its queue filled; NaN if it fails."""
    port = freePort()
    server = SERVERS[name]
    argv = server.argv(port, tmp, redisPort)
    try:
        seconds, rss = timeStart(argv, port, args.jobs, args.timeout, f"{tmp}/g.log")
    except RuntimeError as e:
        print(f"gearmand failed: {e}", file=sys.stderr)
        seconds, rss = float("nan"), float("nan")
    return server.name, seconds, rss


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
    parser.add_argument("--store", choices=["redis", "sqlite"], default="redis")
    parser.add_argument(
        "--gearmand",
        action="store_true",
        help="also time gearmand -q redis (or -q libsqlite3)",
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="replay-") as tmp:
        if args.store == "sqlite":
            rows = replaySQLite(args, tmp)
            printRows(args, rows)
            return 0
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
                rows.append(timeGearmand("gearmand-t1-redis", args, tmp, redis.port))
            finally:
                redis.stop()
    printRows(args, rows)
    return 0


def printRows(args: argparse.Namespace, rows: list[tuple[str, float, float]]) -> None:
    print(f"\n{args.jobs:,} queued jobs of {args.size} bytes\n")
    print("| server | start-up until all queued (s) | RSS after replay (MiB) |")
    print("|---|---|---|")
    for name, seconds, rss in rows:
        print(f"| {name} | {seconds:.1f} | {rss:.0f} |")


if __name__ == "__main__":
    sys.exit(main())
