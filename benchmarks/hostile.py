#!/usr/bin/env python3
"""
Does the server hold up under hostile load, and does an honest client keep
being served meanwhile?  (Issue 13, "Tests and figures".)

Starts redis-server (with an append-only file, fsync on every write) and a
fresh txgearman with C{--redis} on it, then:

  0. B{quiet}: an honest client (ECHO_REQ and foreground jobs, alternating,
     one every C{--interval} ms) and an honest worker (a trivial function:
     it reverses the payload) run alone; their latencies and the server's
     resident memory are the baseline.
  1. B{hostile}: while the honest pair keeps going, a fuzzer sends at
     least C{--packets} fuzzed packets (default 1,000,000), and goes on
     until the patterns below are done, over C{--connections}
     connections, reconnecting when the server closes one: well-formed
     requests with random contents, unknown and response-only types,
     random magic, random argument counts, oversized and truncated bodies,
     garbage admin lines.  Meanwhile the patterns of the issue's items
     11-14 run one after the other, each bounded in size and time, and
     stopped ("exceeded rss") when the server's resident memory passes
     C{--rss-ceiling-mib}:
       - 11: a worker registers C{--functions} functions (default
         100,000); another connection sends 2,000 GET_STATUS_UNIQUE, then
         the worker sends 2,000 PRE_SLEEP + GRAB_JOB pairs (both in
         batches that grow while the server answers quickly, so that a
         server that takes seconds per request is not handed all of them
         at once);
       - 12: a foreground client that never reads, while its job's worker
         streams 200 MiB of WORK_DATA;
       - 13: 10,000 foreground jobs queued, and 50 KB of pipelined admin
         C{show jobs} lines from a connection that reads 40 KB/s and from
         one that never reads;
       - 14: 100 connections each sending 59 MiB of a 60 MiB packet.
     The server's C{VmRSS} is sampled every 0.2 s; C{VmHWM} gives the peak.
  2. B{after}: once every hostile connection has closed (and a worker has
     drained the background jobs the fuzzer left), the memory after.
  3. B{durability}: a client submits background jobs; once half have their
     JOB_CREATED the server is killed with SIGKILL while the rest are in
     flight, restarted with the same command, and timed from the restart
     to its first ECHO_RES; a worker then drains the queue, and every job
     that had its JOB_CREATED must have run (lost ones fail the run;
     duplicates, allowed by at-least-once delivery, are counted).

Bytes per idle function are measured on a fresh server of their own (no
Redis), so that memory freed by the hostile phase does not hide them: a
worker registers C{--functions} new functions and leaves, then 50,000
admin C{create function} lines.

The honest client and worker, and the fuzzer, run in processes of their
own, so that the fuzzer's CPU does not show in the honest latencies.
The fuzzer's admin lines leave out the listings whose size grows with the
server's contents (C{status}, C{workers}, C{show jobs}): item 13 sends
those on purpose.

    python benchmarks/hostile.py                # the full run, about 3 minutes
    python benchmarks/hostile.py --quick --json # a smoke run, under 30 s
    /other/venv/bin/python benchmarks/hostile.py   # that venv's twistd

The server is the C{twistd} beside the running interpreter (as the other
scripts), with no option newer servers added, so an older tree's venv
measures that tree.  Prints a markdown table, or with C{--json} one JSON
object; exit status 0 if the run completed, the server survived (but for
the kill) and no acknowledged job was lost, else 1.  Only loopback
addresses are used.  Nothing here is a test: it measures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from load import (
    CAN_DO,
    ECHO_REQ,
    ECHO_RES,
    ERROR,
    GRAB_JOB_UNIQ,
    HEADER,
    JOB_ASSIGN,
    JOB_ASSIGN_UNIQ,
    JOB_CREATED,
    NO_JOB,
    NOOP,
    PRE_SLEEP,
    REQ,
    RES,
    SUBMIT_JOB,
    SUBMIT_JOB_BG,
    WORK_COMPLETE,
    WORK_EXCEPTION,
    WORK_FAIL,
    ProtocolError,
    adminStatus,
    packet,
    percentile,
    splitPackets,
)
from support import (
    LOOPBACK,
    Server,
    freePort,
    peakRssMiB,
    rssMiB,
    startRedis,
    stopProcess,
    twistd,
    txgearmanCommand,
    waitUntil,
)

CANT_DO = 2
RESET_ABILITIES = 3
GRAB_JOB = 9
WORK_STATUS = 12
GET_STATUS = 15
SUBMIT_JOB_HIGH = 21
SET_CLIENT_ID = 22
CAN_DO_TIMEOUT = 23
OPTION_REQ = 26
WORK_DATA = 28
WORK_WARNING = 29
SUBMIT_JOB_HIGH_BG = 32
SUBMIT_JOB_LOW = 33
SUBMIT_JOB_LOW_BG = 34
SUBMIT_JOB_SCHED = 35
SUBMIT_JOB_EPOCH = 36
SUBMIT_REDUCE_JOB = 37
GRAB_JOB_ALL = 39
JOB_ASSIGN_ALL = 40
GET_STATUS_UNIQUE = 41
STATUS_RES_UNIQUE = 42

MiB = 1024 * 1024
HONEST_FUNCTION = b"honest.reverse"
DURABLE_FUNCTION = b"hostile.durable"
FUZZ_FUNCTIONS = [b"fuzz.%d" % i for i in range(16)]


@dataclass
class Scale:
    """
    The sizes and time bounds of one run: the full run, or C{--quick}.
    """

    packets: int = 1_000_000
    connections: int = 100
    functions: int = 100_000
    rate: float = 10_000.0
    quiet: float = 5.0
    settle: float = 5.0
    statusUnique: int = 2000
    grabPairs: int = 2000
    patternSeconds: float = 20.0
    streamMiB: int = 200
    queuedJobs: int = 10_000
    showJobsBytes: int = 50_000
    bigConnections: int = 100
    bigPacketMiB: int = 60
    bigSeconds: float = 30.0
    durableJobs: int = 10_000
    createFunctions: int = 50_000
    honestTimeout: float = 30.0


QUICK = Scale(
    packets=20_000,
    connections=20,
    functions=2000,
    rate=0.0,
    quiet=1.0,
    settle=1.0,
    statusUnique=200,
    grabPairs=200,
    patternSeconds=2.0,
    streamMiB=8,
    queuedJobs=500,
    showJobsBytes=5000,
    bigConnections=4,
    bigPacketMiB=5,
    bigSeconds=2.0,
    durableJobs=300,
    createFunctions=2000,
    honestTimeout=10.0,
)


class Closed(Exception):
    """
    The server closed a connection a pattern still needed.
    """


def connect(port: int, receiveBuffer: int = 0, timeout: float = 10.0) -> socket.socket:
    """
    A blocking loopback connection with TCP_NODELAY; with C{receiveBuffer},
    a small receive buffer, set before connecting so that the window stays
    small, for the connections that read slowly or never.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receiveBuffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receiveBuffer)
    sock.settimeout(timeout)
    sock.connect((LOOPBACK, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Reader:
    """
    Whole packets from a blocking socket, keeping a partial packet across
    timeouts (which C{socket.makefile} would lose).
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.packets: deque[tuple[int, bytes]] = deque()

    def poll(self, timeout: float) -> tuple[int, bytes] | None:
        """
        The next packet, or None if none arrived within C{timeout} seconds.

        @raise Closed: if the server closed the connection.
        """
        if not self.packets:
            self.sock.settimeout(max(timeout, 0.001))
            try:
                data = self.sock.recv(262144)
            except TimeoutError:
                return None
            except OSError as e:
                raise Closed(str(e)) from None
            if not data:
                raise Closed("closed by the server")
            self.buffer = splitPackets(
                self.buffer + data, lambda k, b: self.packets.append((k, b))
            )
            if not self.packets:
                return None
        return self.packets.popleft()

    def next(self, deadline: float) -> tuple[int, bytes]:
        """
        The next packet, waiting until C{deadline} (a C{time.monotonic()}).

        @raise TimeoutError: if none came by then.
        """
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer in time")
            got = self.poll(min(left, 1.0))
            if got is not None:
                return got


# --- the honest pair, each in a process of its own ---------------------------


def honestWorker(port: int, stop: Any, results: Any) -> None:
    """
    Serve HONEST_FUNCTION (reverse the payload) until C{stop} is set,
    reconnecting if the server closes the connection.
    """
    done = errors = 0
    messages: list[str] = []
    while not stop.is_set():
        try:
            sock = connect(port)
            reader = Reader(sock)
            sock.sendall(packet(CAN_DO, HONEST_FUNCTION) + packet(GRAB_JOB_UNIQ))
            while not stop.is_set():
                got = reader.poll(0.2)
                if got is None:
                    continue
                kind, body = got
                if kind == NO_JOB:
                    sock.sendall(packet(PRE_SLEEP))
                elif kind == NOOP:
                    sock.sendall(packet(GRAB_JOB_UNIQ))
                elif kind == JOB_ASSIGN_UNIQ:
                    handle, _, _, data = body.split(b"\0", 3)
                    sock.sendall(
                        packet(WORK_COMPLETE, handle, data[::-1])
                        + packet(GRAB_JOB_UNIQ)
                    )
                    done += 1
            sock.close()
        except (OSError, Closed, ProtocolError, ValueError) as e:
            errors += 1
            if len(messages) < 5:
                messages.append(f"worker: {e}")
            time.sleep(0.05)
    results.send({"done": done, "errors": errors, "messages": messages})


def honestOp(
    sock: socket.socket, reader: Reader, kind: int, seq: int, timeout: float
) -> str:
    """
    One honest operation, waited for: an ECHO_REQ (C{kind} 0) or a
    foreground job (1).

    @return: "" if it was answered as it should be, else what was wrong.
    """
    deadline = time.monotonic() + timeout
    data = b"honest-%d" % seq
    if kind == 0:
        sock.sendall(packet(ECHO_REQ, data))
        while True:
            answer, body = reader.next(deadline)
            if answer == ECHO_RES:
                return "" if body == data else f"echo answered {body[:40]!r}"
    sock.sendall(packet(SUBMIT_JOB, HONEST_FUNCTION, b"", data))
    while True:
        answer, body = reader.next(deadline)
        if answer == WORK_COMPLETE:
            result = body.partition(b"\0")[2]
            return "" if result == data[::-1] else f"job answered {result[:40]!r}"
        if answer in (WORK_FAIL, WORK_EXCEPTION, ERROR):
            return f"job answered type {answer}: {body[:60]!r}"


def honestClient(
    port: int, interval: float, timeout: float, stop: Any, results: Any
) -> None:
    """
    Alternate ECHO_REQ and foreground jobs, one every C{interval} seconds
    (no catching up after a slow one), and send back when each started,
    how long it took and whether it was answered right.
    """
    started = array("d")
    latency = array("d")
    kinds = array("b")
    good = array("b")
    errors: list[str] = []
    sock: socket.socket | None = None
    reader: Reader | None = None
    seq = 0
    due = time.monotonic()
    while not stop.is_set():
        now = time.monotonic()
        if now < due:
            time.sleep(due - now)
        seq += 1
        kind = seq % 2
        t0 = time.monotonic()
        try:
            if sock is None or reader is None:
                sock = connect(port)
                reader = Reader(sock)
                t0 = time.monotonic()
            problem = honestOp(sock, reader, kind, seq, timeout)
        except (OSError, Closed, ProtocolError) as e:
            problem = f"{type(e).__name__}: {e}"
            if sock is not None:
                sock.close()
            sock = reader = None
        t1 = time.monotonic()
        started.append(t0)
        latency.append(t1 - t0)
        kinds.append(kind)
        good.append(0 if problem else 1)
        if problem and len(errors) < 10:
            errors.append(problem)
        due = max(due + interval, t1)
    results.send(
        {
            "started": started,
            "latency": latency,
            "kinds": kinds,
            "good": good,
            "errors": errors,
        }
    )


# --- the fuzzer --------------------------------------------------------------

PRINTABLE = bytes(range(33, 127))
NAME_BYTES = bytes(b for b in PRINTABLE if b not in b"\t\n ")
ADMIN_WORDS = [
    b"version",
    b"getpid",
    b"verbose",
    b"maxqueue",
    b"create",
    b"drop",
    b"function",
    b"cancel",
    b"job",
    b"show",
    b"settings",
    b"prioritystatus?",
    b"status?",
    b"\xff\xfe",
    b"-1",
    b"99999999999999999999",
]


def randomBytes(
    rng: random.Random, low: int, high: int, alphabet: bytes = PRINTABLE
) -> bytes:
    return bytes(rng.choices(alphabet, k=rng.randint(low, high)))


def request(kind: int, body: bytes, magic: bytes = REQ) -> bytes:
    return HEADER.pack(magic, kind, len(body)) + body


def survivable(rng: random.Random) -> tuple[str, bytes]:
    """
    One fuzzed request a server should answer, or ignore, and keep the
    connection open for: a known type with enough arguments, random
    contents; or a garbage admin line.
    """
    fn = rng.choice(FUZZ_FUNCTIONS)
    roll = rng.random()
    if roll < 0.12:
        size = rng.randint(0, 64) if rng.random() < 0.95 else rng.randint(64, 4096)
        return "echo", request(ECHO_REQ, rng.randbytes(size))
    if roll < 0.20:
        kind = rng.choice([GET_STATUS, GET_STATUS_UNIQUE])
        return "get_status", request(kind, b"H:nope:%d" % rng.randrange(10**9))
    if roll < 0.26:
        return "set_client_id", request(SET_CLIENT_ID, randomBytes(rng, 0, 200))
    if roll < 0.34:
        name = fn if rng.random() < 0.7 else randomBytes(rng, 1, 32, NAME_BYTES)
        kind = rng.choice([CAN_DO, CANT_DO])
        if rng.random() < 0.2:
            return "can_do", request(
                CAN_DO_TIMEOUT, name + b"\0" + randomBytes(rng, 0, 8)
            )
        return "can_do", request(kind, name)
    if roll < 0.42:
        kind = rng.choice(
            [RESET_ABILITIES, PRE_SLEEP, GRAB_JOB, GRAB_JOB_UNIQ, GRAB_JOB_ALL]
        )
        body = b"" if rng.random() < 0.8 else rng.randbytes(rng.randint(1, 64))
        return "worker_no_args", request(kind, body)
    if roll < 0.52:
        handle = b"H:nope:%d" % rng.randrange(10**6)
        kind = rng.choice(
            [WORK_STATUS, WORK_COMPLETE, WORK_FAIL, WORK_EXCEPTION, WORK_DATA]
        )
        if kind == WORK_STATUS:
            body = (
                handle + b"\0" + randomBytes(rng, 0, 5) + b"\0" + randomBytes(rng, 0, 5)
            )
        elif kind == WORK_FAIL:
            body = handle
        else:
            body = handle + b"\0" + rng.randbytes(rng.randint(0, 200))
        return "work_unknown_handle", request(kind, body)
    if roll < 0.55:
        name = b"exceptions" if rng.random() < 0.3 else randomBytes(rng, 0, 30)
        return "option_req", request(OPTION_REQ, name)
    if roll < 0.68:
        kind = rng.choice([SUBMIT_JOB, SUBMIT_JOB_HIGH, SUBMIT_JOB_LOW])
        unique = randomBytes(rng, 0, 70, NAME_BYTES)
        return "submit_fg", request(
            kind, fn + b"\0" + unique + b"\0" + rng.randbytes(64)
        )
    if roll < 0.74:
        # A few unique ids only: coalescing bounds how many stored jobs
        # the fuzzer can leave behind.
        kind = rng.choice([SUBMIT_JOB_BG, SUBMIT_JOB_HIGH_BG, SUBMIT_JOB_LOW_BG])
        unique = b"u%d" % rng.randrange(32)
        return "submit_bg", request(
            kind, fn + b"\0" + unique + b"\0" + rng.randbytes(32)
        )
    if roll < 0.76:
        unique = b"u%d" % rng.randrange(32)
        epoch = rng.choice([b"0", b"1", b"-5", b"%d" % (time.time() - 3600)])
        return "submit_epoch_past", request(
            SUBMIT_JOB_EPOCH, fn + b"\0" + unique + b"\0" + epoch + b"\0" + b"x"
        )
    if roll < 0.78:
        body = (
            fn + b"\0" + randomBytes(rng, 0, 20, NAME_BYTES) + b"\0" + fn + b"\0\0data"
        )
        return "submit_reduce", request(SUBMIT_REDUCE_JOB, body)
    if roll < 0.82:
        # Arguments with NULs in their data: the last argument runs to the end.
        body = (
            fn + b"\0" + b"\0".join(rng.randbytes(4) for _ in range(rng.randint(2, 6)))
        )
        return "extra_nuls", request(rng.choice([SUBMIT_JOB, ECHO_REQ]), body)
    return "admin_garbage", adminGarbage(rng)


def adminGarbage(rng: random.Random) -> bytes:
    """
    A text line for the admin parser: real commands with junk or missing
    arguments, or random words and bytes.
    """
    fn = rng.choice(FUZZ_FUNCTIONS)
    roll = rng.random()
    if roll < 0.3:
        line = rng.choice(
            [
                b"version",
                b"getpid",
                b"verbose",
                b"maxqueue " + fn + b" %d" % rng.randint(-3, 9),
                b"maxqueue " + fn,
                b"maxqueue",
                b"create function " + fn,
                b"drop function " + fn,
                b"create",
                b"cancel job nope-%d" % rng.randrange(1000),
                b"show",
                b"show nothing",
            ]
        )
    elif roll < 0.7:
        words = rng.choices(ADMIN_WORDS, k=rng.randint(1, 7))
        line = b" ".join(words)
    else:
        line = randomBytes(rng, 1, 200)
    return line + rng.choice([b"\n", b"\r\n"])


def killer(rng: random.Random) -> tuple[str, bytes, bool]:
    """
    One fuzzed request after which the server may close the connection
    (bad framing, unknown types, too few arguments, bodies too large) or
    that leaves a packet unfinished.

    @return: its kind, its bytes, and whether the fuzzer closes the
        connection itself once it is sent (a truncated body).
    """
    roll = rng.random()
    if roll < 0.12:
        magic = b"\0" + rng.randbytes(3)
        if magic in (REQ, RES):
            magic = b"\0BAD"
        return "bad_magic", request(rng.randint(1, 42), rng.randbytes(8), magic), False
    if roll < 0.20:
        return "res_magic", request(rng.randint(0, 60), rng.randbytes(8), RES), False
    if roll < 0.32:
        kind = rng.choice([0, 5, rng.randint(43, 65535), 0xFFFFFFFF])
        return "unknown_type", request(kind, rng.randbytes(rng.randint(0, 32))), False
    if roll < 0.40:
        kind = rng.choice([6, 8, 10, 11, 17, 19, 20, 27, 31, 40, 42])
        return "response_type", request(kind, rng.randbytes(rng.randint(0, 32))), False
    if roll < 0.52:
        kind = rng.choice(
            [SUBMIT_JOB, SUBMIT_JOB_BG, WORK_STATUS, CAN_DO_TIMEOUT, SUBMIT_REDUCE_JOB]
        )
        return "too_few_args", request(kind, randomBytes(rng, 0, 40)), False
    if roll < 0.70:
        # Random argument counts: random printable bytes and NULs.
        body = bytes(rng.choices(NAME_BYTES + b"\0" * 8, k=rng.randint(0, 80)))
        kind = rng.choice([SUBMIT_JOB_SCHED, rng.randint(1, 42)])
        return "random_args", request(kind, body), False
    if roll < 0.78:
        size = rng.choice([64 * MiB + 1, 0x7FFFFFFF, 0xFFFFFFFF])
        return (
            "oversized",
            HEADER.pack(REQ, SUBMIT_JOB, size) + rng.randbytes(16),
            False,
        )
    if roll < 0.90:
        size = rng.randint(200, 1_000_000)
        sent = rng.randbytes(rng.randint(0, min(size - 1, 4096)))
        return "truncated", HEADER.pack(REQ, ECHO_REQ, size) + sent, True
    if roll < 0.95:
        line = randomBytes(rng, 8193, 12000) + b"\n"
        return "long_admin_line", line, False
    # Twelve random bytes that do not start with NUL: read as text.
    return "text_header", bytes([rng.randint(1, 255)]) + rng.randbytes(11 + 64), False


@dataclass(eq=False)
class FuzzConnection:
    sock: socket.socket
    connected: bool = False
    outgoing: memoryview | None = None
    burstPackets: int = 0
    closeWhenSent: bool = False
    doomedSince: float = 0.0


@dataclass
class FuzzStats:
    packets: int = 0
    bursts: int = 0
    bytesSent: int = 0
    bytesReceived: int = 0
    opened: int = 0
    closedByServer: int = 0
    closedByUs: int = 0
    connectErrors: int = 0
    unsentPackets: int = 0
    kinds: Counter[str] = field(default_factory=Counter)


class Fuzzer:
    """
    One selector loop over C{connections} connections, each sent bursts of
    fuzzed packets (a killer, if any, last) and drained of whatever the
    server answers.  A connection whose last burst ended with a killer is
    sent nothing more: it waits up to 2 s for the server to close it, then
    is closed and replaced.
    """

    def __init__(self, port: int, connections: int, rate: float, seed: int) -> None:
        self.port = port
        self.count = connections
        self.rate = rate
        self.rng = random.Random(seed)
        self.selector = selectors.DefaultSelector()
        self.stats = FuzzStats()
        self.idle: set[FuzzConnection] = set()
        self.doomed: set[FuzzConnection] = set()
        self.inFlight = 0
        self.synced = 0
        self.pool = [survivable(self.rng) for _ in range(8192)]
        self.killers = [killer(self.rng) for _ in range(1024)]

    def open(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.connect_ex((LOOPBACK, self.port))
        connection = FuzzConnection(sock)
        self.selector.register(sock, selectors.EVENT_WRITE, connection)

    def close(self, connection: FuzzConnection, byServer: bool) -> None:
        self.selector.unregister(connection.sock)
        connection.sock.close()
        self.idle.discard(connection)
        self.doomed.discard(connection)
        if connection.outgoing is not None:
            self.stats.unsentPackets += connection.burstPackets
            self.inFlight -= connection.burstPackets
        if byServer:
            self.stats.closedByServer += 1
        else:
            self.stats.closedByUs += 1
        self.open()

    def burst(self, connection: FuzzConnection) -> int:
        """
        Queue a burst on an idle connection.

        @return: how many packets it holds.
        """
        rng = self.rng
        chosen = rng.choices(self.pool, k=rng.randint(16, 128))
        kinds = self.stats.kinds
        for kind, _ in chosen:
            kinds[kind] += 1
        data = [p for _, p in chosen]
        count = len(chosen)
        if rng.random() < 0.25:
            kind, data1, closeAfter = rng.choice(self.killers)
            kinds[kind] += 1
            data.append(data1)
            connection.closeWhenSent = closeAfter
            connection.doomedSince = -1.0
            count += 1
        connection.outgoing = memoryview(b"".join(data))
        connection.burstPackets = count
        self.inFlight += count
        self.idle.discard(connection)
        self.selector.modify(
            connection.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, connection
        )
        self.flush(connection)
        return count

    def flush(self, connection: FuzzConnection) -> None:
        assert connection.outgoing is not None
        try:
            sent = connection.sock.send(connection.outgoing)
        except BlockingIOError:
            return
        except OSError:
            self.close(connection, byServer=True)
            return
        self.stats.bytesSent += sent
        connection.outgoing = connection.outgoing[sent:]
        if len(connection.outgoing):
            return
        connection.outgoing = None
        self.stats.packets += connection.burstPackets
        self.inFlight -= connection.burstPackets
        self.stats.bursts += 1
        connection.burstPackets = 0
        if connection.closeWhenSent:
            self.close(connection, byServer=False)
            return
        self.selector.modify(connection.sock, selectors.EVENT_READ, connection)
        if connection.doomedSince < 0:
            connection.doomedSince = time.monotonic()
            self.doomed.add(connection)
        else:
            self.idle.add(connection)

    def writable(self, connection: FuzzConnection) -> None:
        if not connection.connected:
            error = connection.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                self.stats.connectErrors += 1
                self.selector.unregister(connection.sock)
                connection.sock.close()
                time.sleep(0.01)
                self.open()
                return
            connection.connected = True
            self.stats.opened += 1
            self.selector.modify(connection.sock, selectors.EVENT_READ, connection)
            self.idle.add(connection)
            return
        if connection.outgoing is not None:
            self.flush(connection)

    def readable(self, connection: FuzzConnection) -> None:
        try:
            data = connection.sock.recv(262144)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close(connection, byServer=True)
            return
        self.stats.bytesReceived += len(data)

    def run(self, packets: int, deadline: float, stop: Any) -> float:
        """
        Send at least C{packets} packets at C{rate} a second (0: as fast as
        the server takes them), and keep on until C{stop} is set (the
        patterns are done), so that every pattern runs under fuzz; or until
        C{deadline}.

        @return: the time it took.
        """
        for _ in range(self.count):
            self.open()
        start = last = time.monotonic()
        tokens = 0.0
        while self.stats.packets < packets or not stop.is_set():
            now = time.monotonic()
            if now > deadline:
                break
            if self.rate:
                tokens = min(
                    tokens + (now - last) * self.rate, max(self.rate * 0.5, 256)
                )
            last = now
            for connection in list(self.idle):
                if stop.is_set() and self.stats.packets + self.inFlight >= packets:
                    break
                if self.rate and tokens < 128:
                    break
                tokens -= self.burst(connection)
            for key, events in self.selector.select(0.005):
                connection = key.data
                if connection.sock.fileno() < 0:
                    continue
                if events & selectors.EVENT_READ:
                    self.readable(connection)
                if connection.sock.fileno() >= 0 and events & selectors.EVENT_WRITE:
                    self.writable(connection)
            for connection in list(self.doomed):
                if now - connection.doomedSince > 2.0:
                    self.close(connection, byServer=False)
        elapsed = time.monotonic() - start
        self.synced = self.sync(time.monotonic() + 10)
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        return elapsed

    def sync(self, deadline: float) -> int:
        """
        An ECHO_REQ on every open connection with nothing left to send, and
        its answer awaited: the server has read everything sent before it.

        @return: how many connections answered by C{deadline}.
        """
        marker = b"hostile-fuzz-sync"
        synced = 0
        for key in list(self.selector.get_map().values()):
            connection = key.data
            if (
                not connection.connected
                or connection.outgoing is not None
                or connection in self.doomed
            ):
                continue
            sock = connection.sock
            tail = b""
            try:
                sock.setblocking(True)
                sock.settimeout(max(0.01, min(2.0, deadline - time.monotonic())))
                sock.sendall(packet(ECHO_REQ, marker))
                while marker not in tail:
                    data = sock.recv(262144)
                    if not data:
                        break
                    self.stats.bytesReceived += len(data)
                    tail = tail[-len(marker) :] + data
                else:
                    synced += 1
            except OSError:
                pass
        return synced


def fuzzMain(
    port: int, scale: Scale, seed: int, timeout: float, go: Any, stop: Any, results: Any
) -> None:
    go.wait()
    fuzzer = Fuzzer(port, scale.connections, scale.rate, seed)
    elapsed = fuzzer.run(scale.packets, time.monotonic() + timeout, stop)
    s = fuzzer.stats
    results.send(
        {
            "packets": s.packets,
            "bursts": s.bursts,
            "elapsed_s": round(elapsed, 2),
            "packets_s": round(s.packets / elapsed) if elapsed else 0,
            "bytes_sent": s.bytesSent,
            "bytes_received": s.bytesReceived,
            "connections_opened": s.opened,
            "closed_by_server": s.closedByServer,
            "closed_by_fuzzer": s.closedByUs,
            "connect_errors": s.connectErrors,
            "unsent_packets": s.unsentPackets,
            "connections_synced_at_end": fuzzer.synced,
            "kinds": dict(sorted(s.kinds.items())),
        }
    )


# --- the server's memory, watched --------------------------------------------


class Watch:
    """
    Samples the server's resident memory every 0.2 s: the peak, the peak
    since the last L{window}, and whether it passed the ceiling (which
    stops a pattern) or the hard limit (which kills the server, so that a
    server that keeps growing cannot take the machine down).
    """

    def __init__(self, proc: subprocess.Popen[bytes], ceiling: float) -> None:
        self.proc = proc
        self.ceiling = ceiling
        self.hardLimit = ceiling + 2048
        self.rss = rssMiB(proc.pid)
        self.peak = self.windowPeak = self.rss
        self.died = False
        self.aborted = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            if self.proc.poll() is not None:
                self.died = True
                return
            try:
                rss = rssMiB(self.proc.pid)
            except OSError:
                continue
            self.rss = rss
            self.peak = max(self.peak, rss)
            self.windowPeak = max(self.windowPeak, rss)
            if rss > self.hardLimit and not self.aborted:
                self.aborted = True
                self.proc.kill()

    def over(self) -> bool:
        return self.rss >= self.ceiling or self.died

    def sample(self) -> float:
        """
        Read the resident memory now (a pattern's end may fall between two
        samples), and return the window's peak.
        """
        try:
            rss = rssMiB(self.proc.pid)
        except OSError:
            return self.windowPeak
        self.rss = rss
        self.peak = max(self.peak, rss)
        self.windowPeak = max(self.windowPeak, rss)
        return self.windowPeak

    def window(self) -> float:
        """
        Start a new window; return the resident memory now.
        """
        self.windowPeak = self.rss
        return self.rss

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# --- the patterns of items 11-14 -------------------------------------------------


@dataclass
class Context:
    port: int
    watch: Watch
    scale: Scale
    rng: random.Random


def outcome(done: bool, ctx: Context, deadline: float) -> str:
    if done:
        return "done"
    if ctx.watch.died:
        return "server died"
    if ctx.watch.over():
        return "exceeded rss"
    if time.monotonic() >= deadline:
        return "exceeded time"
    return "stopped"


def batched(
    ctx: Context,
    sock: socket.socket,
    reader: Reader,
    make: Callable[[int], bytes],
    answer: int,
    total: int,
    deadline: float,
) -> tuple[int, float, int]:
    """
    Send C{total} requests made by C{make}, in batches that double while a
    batch is answered within 0.25 s, and count the answers of type
    C{answer}; a server that takes long per request gets a few at a time,
    so the pattern stops near its deadline.

    @return: the requests answered, the slowest answer per request in
        seconds, and the largest batch sent.
    """
    done = 0
    batch = 1
    largest = 0
    slowest = 0.0
    while done < total and time.monotonic() < deadline and not ctx.watch.over():
        n = min(batch, total - done)
        largest = max(largest, n)
        t0 = time.monotonic()
        sock.sendall(b"".join(make(done + i) for i in range(n)))
        got = 0
        while got < n:
            kind, _ = reader.next(deadline + 60)
            if kind == answer:
                got += 1
        took = time.monotonic() - t0
        slowest = max(slowest, took / n)
        done += n
        if took < 0.25:
            batch = min(batch * 2, 512)
    return done, slowest, largest


def patternFunctions(ctx: Context) -> list[dict[str, Any]]:
    """
    Item 11: a worker registered for many functions; GET_STATUS_UNIQUE from
    another connection, then the worker's PRE_SLEEP + GRAB_JOB pairs.
    """
    scale = ctx.scale
    worker = connect(ctx.port, timeout=120)
    workerReader = Reader(worker)
    rows: list[dict[str, Any]] = []
    t0 = time.monotonic()
    ctx.watch.window()
    names = b"".join(packet(CAN_DO, b"h11.%d" % i) for i in range(scale.functions))
    worker.sendall(names + packet(ECHO_REQ, b"registered"))
    while workerReader.next(t0 + 300)[0] != ECHO_RES:
        pass
    rows.append(
        {
            "name": f"11 CAN_DO x {scale.functions:,}",
            "window": (t0, time.monotonic()),
            "outcome": "done",
            "elapsed_s": round(time.monotonic() - t0, 2),
            "rss_peak_mib": round(ctx.watch.sample(), 1),
        }
    )

    asker = connect(ctx.port, timeout=120)
    t1 = time.monotonic()
    deadline = t1 + scale.patternSeconds
    ctx.watch.window()
    done, slowest, largest = batched(
        ctx,
        asker,
        Reader(asker),
        lambda i: packet(GET_STATUS_UNIQUE, b"nope-%d" % i),
        STATUS_RES_UNIQUE,
        scale.statusUnique,
        deadline,
    )
    rows.append(
        {
            "name": f"11 GET_STATUS_UNIQUE x {scale.statusUnique:,}",
            "window": (t1, time.monotonic()),
            "outcome": outcome(done >= scale.statusUnique, ctx, deadline),
            "elapsed_s": round(time.monotonic() - t1, 2),
            "answered": done,
            "slowest_ms_per_request": round(1e3 * slowest, 2),
            "largest_batch": largest,
            "rss_peak_mib": round(ctx.watch.sample(), 1),
        }
    )
    asker.close()

    t2 = time.monotonic()
    deadline = t2 + scale.patternSeconds
    ctx.watch.window()
    pair = packet(PRE_SLEEP) + packet(GRAB_JOB)
    done, slowest, largest = batched(
        ctx, worker, workerReader, lambda i: pair, NO_JOB, scale.grabPairs, deadline
    )
    rows.append(
        {
            "name": f"11 PRE_SLEEP+GRAB_JOB x {scale.grabPairs:,}",
            "window": (t2, time.monotonic()),
            "outcome": outcome(done >= scale.grabPairs, ctx, deadline),
            "elapsed_s": round(time.monotonic() - t2, 2),
            "answered": done,
            "slowest_ms_per_request": round(1e3 * slowest, 2),
            "largest_batch": largest,
            "rss_peak_mib": round(ctx.watch.sample(), 1),
        }
    )
    worker.close()
    return rows


def sendSome(
    ctx: Context,
    sock: socket.socket,
    data: memoryview,
    deadline: float,
    wait: float = 0.1,
) -> int:
    """
    Send what of C{data} the socket takes within C{wait} seconds (not
    past C{deadline}), without blocking on a server that stopped reading.

    @raise Closed: if the server closed the connection.
    """
    sent = 0
    end = min(deadline, time.monotonic() + wait)
    sock.setblocking(False)
    while sent < len(data) and time.monotonic() < end and not ctx.watch.over():
        try:
            sent += sock.send(data[sent : sent + MiB])
        except BlockingIOError:
            time.sleep(0.005)
        except OSError as e:
            raise Closed(str(e)) from None
    return sent


def closedByServer(sock: socket.socket, wait: float = 0.5) -> bool:
    """
    Whether the server has closed C{sock}: read (and drop) what is there,
    for up to C{wait} seconds, and look for the end.
    """
    sock.setblocking(False)
    end = time.monotonic() + wait
    while time.monotonic() < end:
        try:
            if not sock.recv(1 << 20):
                return True
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:
            return True
    return False


def patternStream(ctx: Context) -> list[dict[str, Any]]:
    """
    Item 12: a foreground client that never reads, while its job's worker
    streams WORK_DATA.
    """
    scale = ctx.scale
    function = b"hostile.stream"
    client = connect(ctx.port, receiveBuffer=4096)
    client.sendall(packet(SUBMIT_JOB, function, b"", b"stream"))
    worker = connect(ctx.port)
    reader = Reader(worker)
    worker.sendall(packet(CAN_DO, function) + packet(GRAB_JOB_UNIQ))
    start = time.monotonic()
    deadline = start + scale.patternSeconds
    before = ctx.watch.window()
    while True:
        kind, body = reader.next(start + 30)
        if kind == JOB_ASSIGN_UNIQ:
            handle = body.split(b"\0", 1)[0]
            break
    chunk = packet(WORK_DATA, handle, b"d" * (MiB - len(handle) - 1))
    total = scale.streamMiB * MiB
    sent = 0
    workerClosed = False
    view = memoryview(chunk)
    offset = 0
    try:
        while sent < total and time.monotonic() < deadline and not ctx.watch.over():
            n = sendSome(ctx, worker, view[offset:], deadline)
            sent += n
            offset = (offset + n) % len(chunk)
    except Closed:
        workerClosed = True
    elapsed = time.monotonic() - start
    row = {
        "name": f"12 WORK_DATA {scale.streamMiB} MiB to a client that never reads",
        "window": (start, time.monotonic()),
        "outcome": outcome(sent >= total, ctx, deadline),
        "elapsed_s": round(elapsed, 2),
        "accepted_mib": round(sent / MiB, 1),
        "rss_peak_mib": round(ctx.watch.sample(), 1),
        "rss_growth_mib": round(ctx.watch.sample() - before, 1),
        "client_closed_by_server": closedByServer(client),
        "worker_closed_by_server": workerClosed,
    }
    client.close()
    worker.close()
    return [row]


def patternShowJobs(ctx: Context) -> list[dict[str, Any]]:
    """
    Item 13: jobs queued, and pipelined C{show jobs} from a connection
    that reads slowly and from one that never reads.
    """
    scale = ctx.scale
    queuer = connect(ctx.port, timeout=60)
    reader = Reader(queuer)
    created = 0
    start = time.monotonic()
    while created < scale.queuedJobs:
        n = min(1000, scale.queuedJobs - created)
        queuer.sendall(packet(SUBMIT_JOB, b"hostile.queued", b"", b"q") * n)
        got = 0
        while got < n:
            kind, _ = reader.next(start + 120)
            if kind in (JOB_CREATED, ERROR):
                got += 1
        created += n
    slow = connect(ctx.port, receiveBuffer=4096)
    never = connect(ctx.port, receiveBuffer=4096)
    requests = memoryview(b"show jobs\n" * (scale.showJobsBytes // 10))
    offsets = {slow: 0, never: 0}
    closed = {slow: False, never: False}
    readBytes = 0
    t0 = time.monotonic()
    deadline = t0 + scale.patternSeconds
    before = ctx.watch.window()
    while time.monotonic() < deadline and not ctx.watch.over():
        for sock in (slow, never):
            if closed[sock] or offsets[sock] >= len(requests):
                continue
            step = requests[offsets[sock] : offsets[sock] + 5120]
            try:
                offsets[sock] += sendSome(ctx, sock, step, deadline, wait=0.05)
            except Closed:
                closed[sock] = True
        if not closed[slow]:
            try:
                data = slow.recv(4096)
                if not data:
                    closed[slow] = True
                readBytes += len(data)
            except BlockingIOError:
                pass
            except OSError:
                closed[slow] = True
        time.sleep(0.1)
    took = all(offset >= len(requests) for offset in offsets.values())
    row = {
        "name": f"13 show jobs, {scale.showJobsBytes // 1000} KB pipelined, "
        f"{scale.queuedJobs:,} jobs",
        "window": (t0, time.monotonic()),
        "outcome": outcome(took and not ctx.watch.over(), ctx, deadline),
        "elapsed_s": round(time.monotonic() - t0, 2),
        "accepted_kb": [
            round(offsets[slow] / 1000, 1),
            round(offsets[never] / 1000, 1),
        ],
        "slow_reader_read_kb": round(readBytes / 1000, 1),
        "rss_peak_mib": round(ctx.watch.sample(), 1),
        "rss_growth_mib": round(ctx.watch.sample() - before, 1),
        "closed_by_server": [
            closed[slow] or closedByServer(slow),
            closed[never] or closedByServer(never),
        ],
    }
    for sock in (slow, never, queuer):
        sock.close()
    return [row]


def patternBigPackets(ctx: Context) -> list[dict[str, Any]]:
    """
    Item 14: many connections each sending most of a large packet.
    """
    scale = ctx.scale
    declared = scale.bigPacketMiB * MiB
    target = declared - MiB
    zeros = memoryview(bytes(MiB))
    selector = selectors.DefaultSelector()
    remaining: dict[socket.socket, int] = {}
    for _ in range(scale.bigConnections):
        sock = connect(ctx.port)
        sock.sendall(HEADER.pack(REQ, SUBMIT_JOB, declared) + b"hostile.big\0\0")
        sock.setblocking(False)
        remaining[sock] = target
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    start = time.monotonic()
    deadline = start + scale.bigSeconds
    before = ctx.watch.window()
    accepted = 0
    closed = 0
    while remaining and time.monotonic() < deadline and not ctx.watch.over():
        for key, events in selector.select(0.1):
            sock = key.fileobj  # type: ignore[assignment]
            if sock not in remaining:
                continue
            gone = False
            if events & selectors.EVENT_READ:
                try:
                    gone = not sock.recv(65536)
                except BlockingIOError:
                    pass
                except OSError:
                    gone = True
            if not gone and events & selectors.EVENT_WRITE:
                try:
                    n = sock.send(zeros[: min(MiB, remaining[sock])])
                    accepted += n
                    remaining[sock] -= n
                except BlockingIOError:
                    pass
                except OSError:
                    gone = True
            if gone:
                closed += 1
            if gone or not remaining[sock]:
                selector.unregister(sock)
                del remaining[sock]
    # What the kernel took, the server may not have read yet.
    time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    complete = scale.bigConnections - closed - len(remaining)
    row = {
        "name": f"14 {scale.bigConnections} x {scale.bigPacketMiB - 1} MiB "
        f"of a {scale.bigPacketMiB} MiB packet",
        "window": (start, time.monotonic()),
        "outcome": outcome(complete == scale.bigConnections, ctx, deadline),
        "elapsed_s": round(time.monotonic() - start, 2),
        "accepted_mib": round(accepted / MiB, 1),
        "connections_complete": complete,
        "closed_by_server": closed,
        "rss_peak_mib": round(ctx.watch.sample(), 1),
        "rss_growth_mib": round(ctx.watch.sample() - before, 1),
    }
    selector.close()
    return [row]


PATTERNS = [patternFunctions, patternStream, patternShowJobs, patternBigPackets]


def runPatterns(ctx: Context, rows: list[dict[str, Any]]) -> None:
    """
    Each pattern in turn; one that fails is reported and the next runs.
    """
    for pattern in PATTERNS:
        start = time.monotonic()
        try:
            got = pattern(ctx)
        except (OSError, Closed, ProtocolError) as e:
            got = [
                {
                    "name": pattern.__name__,
                    "outcome": f"failed: {type(e).__name__}: {e}",
                    "elapsed_s": round(time.monotonic() - start, 2),
                    "rss_peak_mib": round(ctx.watch.sample(), 1),
                }
            ]
        for row in got:
            row.setdefault("window", (start, time.monotonic()))
        rows.extend(got)
        if ctx.watch.died:
            return


# --- after, durability, idle functions ---------------------------------------------


def drainLeftovers(port: int, seconds: float) -> dict[str, Any]:
    """
    Run every job still queued (what the fuzzer's background submissions
    left) with a worker that does nothing, so that the restart replays
    only the durability jobs.
    """
    rows = adminStatus(LOOPBACK, port)
    names = [n for n, (total, _, _) in rows.items() if total and n != HONEST_FUNCTION]
    ran = 0
    if names:
        sock = connect(port, timeout=30)
        reader = Reader(sock)
        sock.sendall(b"".join(packet(CAN_DO, n) for n in names) + packet(GRAB_JOB_ALL))
        deadline = time.monotonic() + seconds
        try:
            while True:
                kind, body = reader.next(deadline)
                if kind in (JOB_ASSIGN, JOB_ASSIGN_UNIQ, JOB_ASSIGN_ALL):
                    handle = body.split(b"\0", 1)[0]
                    sock.sendall(
                        packet(WORK_COMPLETE, handle, b"") + packet(GRAB_JOB_ALL)
                    )
                    ran += 1
                elif kind == NO_JOB:
                    break
        except (TimeoutError, Closed):
            pass
        sock.close()
    left = sum(t for n, (t, _, _) in adminStatus(LOOPBACK, port).items())
    return {"drained_jobs": ran, "jobs_left": left, "functions": len(rows)}


def firstEcho(port: int, proc: subprocess.Popen[bytes], timeout: float) -> float:
    """
    Seconds until the server on C{port} answers an ECHO_REQ, polling every
    10 ms from now.
    """
    start = time.monotonic()

    def echoes() -> bool:
        with socket.create_connection((LOOPBACK, port), timeout=1) as s:
            s.sendall(packet(ECHO_REQ, b"up?"))
            return Reader(s).next(time.monotonic() + 1)[0] == ECHO_RES

    def attempt() -> bool:
        try:
            return echoes()
        except (TimeoutError, Closed):
            return False

    waitUntil(attempt, timeout, "the restarted server's ECHO_RES", proc, interval=0.01)
    return time.monotonic() - start


def submitAndKill(
    port: int, proc: subprocess.Popen[bytes], count: int
) -> tuple[set[int], int, int]:
    """
    Pipeline C{count} background jobs of DURABLE_FUNCTION (200 in flight);
    once half have their JOB_CREATED, SIGKILL the server, and keep reading
    what it had already sent.

    @return: the jobs acknowledged, how many were sent, and how many were
        refused (ERROR).
    """
    sock = connect(port, timeout=30)
    reader = Reader(sock)
    acked: set[int] = set()
    waiting: deque[int] = deque()
    sent = refused = 0
    killed = False
    deadline = time.monotonic() + 120
    try:
        while True:
            if not killed and sent < count and len(waiting) < 200:
                n = min(50, count - sent)
                sock.sendall(
                    b"".join(
                        packet(SUBMIT_JOB_BG, DURABLE_FUNCTION, b"d-%d" % i, b"%d" % i)
                        for i in range(sent, sent + n)
                    )
                )
                waiting.extend(range(sent, sent + n))
                sent += n
            if not waiting:
                break
            kind, _ = reader.next(deadline)
            if kind == JOB_CREATED:
                acked.add(waiting.popleft())
            elif kind == ERROR:
                waiting.popleft()
                refused += 1
            if not killed and len(acked) >= count // 2:
                proc.send_signal(signal.SIGKILL)
                killed = True
    except (Closed, TimeoutError, OSError):
        pass
    if not killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    sock.close()
    return acked, sent, refused


def drainDurable(port: int, seconds: float) -> Counter[int]:
    """
    Run every queued DURABLE_FUNCTION job, counting the runs of each; done
    when the server has none left twice, 1 s apart.
    """
    runs: Counter[int] = Counter()
    sock = connect(port, timeout=30)
    reader = Reader(sock)
    sock.sendall(packet(CAN_DO, DURABLE_FUNCTION) + packet(GRAB_JOB_UNIQ))
    deadline = time.monotonic() + seconds
    emptySeen = 0
    while time.monotonic() < deadline:
        got = reader.poll(0.5)
        if got is None:
            sock.sendall(packet(GRAB_JOB_UNIQ))
            continue
        kind, body = got
        if kind == JOB_ASSIGN_UNIQ:
            handle, _, unique, _ = body.split(b"\0", 3)
            runs[int(unique[2:])] += 1
            sock.sendall(packet(WORK_COMPLETE, handle, b"") + packet(GRAB_JOB_UNIQ))
            emptySeen = 0
        elif kind == NO_JOB:
            left = adminStatus(LOOPBACK, port).get(DURABLE_FUNCTION, (0, 0, 0))[0]
            emptySeen = emptySeen + 1 if left == 0 else 0
            if emptySeen >= 2:
                break
            time.sleep(1 if left == 0 else 0.05)
            sock.sendall(packet(GRAB_JOB_UNIQ))
    sock.close()
    return runs


def durability(
    server: Server,
    port: int,
    tmp: str,
    redisPort: int,
    proc: subprocess.Popen[bytes],
    count: int,
    run: Run,
) -> dict[str, Any]:
    """
    Acknowledged jobs survive a SIGKILL: submit, kill, restart, time the
    first ECHO, drain, compare.
    """
    acked, sent, refused = submitAndKill(port, proc, count)
    restarted = subprocess.Popen(
        server.argv(port, tmp, redisPort),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    run.processes.append(restarted)
    result: dict[str, Any] = {
        "submitted": sent,
        "acked": len(acked),
        "refused": refused,
    }
    try:
        result["restart_to_echo_s"] = round(firstEcho(port, restarted, 180), 3)
    except RuntimeError as e:
        result["restart_to_echo_s"] = None
        result["error"] = f"restart: {e}"
        return result
    result["rss_after_restart_mib"] = round(rssMiB(restarted.pid), 1)
    runs = drainDurable(port, 120)
    ran = set(runs)
    lost = acked - ran
    result.update(
        {
            "ran": len(ran),
            "lost": len(lost),
            "lost_examples": sorted(lost)[:10],
            "duplicates": sum(n - 1 for n in runs.values()),
            "ran_unacknowledged": len(ran - acked),
        }
    )
    stopProcess(restarted)
    return result


def idleFunctions(tmp: str, scale: Scale) -> dict[str, Any]:
    """
    Bytes per idle function, on a fresh in-memory server: functions made
    by a worker's CAN_DO that then leaves, and by admin C{create function}.
    """
    server = txgearman()
    port = freePort()
    proc = server.start(port, tmp)
    try:
        time.sleep(1)
        rss0 = rssMiB(proc.pid)
        worker = connect(port, timeout=120)
        worker.sendall(
            b"".join(packet(CAN_DO, b"f15.%d" % i) for i in range(scale.functions))
            + packet(ECHO_REQ, b"registered")
        )
        reader = Reader(worker)
        while reader.next(time.monotonic() + 300)[0] != ECHO_RES:
            pass
        rssRegistered = rssMiB(proc.pid)
        worker.close()
        time.sleep(scale.settle)
        rss1 = rssMiB(proc.pid)
        left1 = sum(1 for n in adminStatus(LOOPBACK, port) if n.startswith(b"f15."))

        admin = connect(port, timeout=120)
        lines = b"".join(
            b"create function c15.%d\n" % i for i in range(scale.createFunctions)
        )
        admin.sendall(lines)
        answers = b""
        while answers.count(b"\n") < scale.createFunctions:
            data = admin.recv(1 << 20)
            if not data:
                break
            answers += data
        admin.close()
        ok = answers.count(b"OK\r\n")
        time.sleep(scale.settle)
        rss2 = rssMiB(proc.pid)
        left2 = sum(1 for n in adminStatus(LOOPBACK, port) if n.startswith(b"c15."))
    finally:
        stopProcess(proc)

    def perFunction(delta: float, count: int) -> float:
        return round(delta * MiB / count) if count else 0.0

    return {
        "rss_fresh_mib": round(rss0, 1),
        "can_do_functions": scale.functions,
        "bytes_per_registered_function": perFunction(
            rssRegistered - rss0, scale.functions
        ),
        "bytes_per_function_worker_gone": perFunction(rss1 - rss0, scale.functions),
        "can_do_functions_left": left1,
        "create_lines": scale.createFunctions,
        "create_ok": ok,
        "create_refused": answers.count(b"\n") - ok,
        "bytes_per_created_function": perFunction(rss2 - rss1, scale.createFunctions),
        "created_functions_left": left2,
    }


# --- putting it together ------------------------------------------------------------


def txgearman(*extra: str) -> Server:
    return Server("txgearman", txgearmanCommand(*extra))


def latencies(
    honest: dict[str, Any], start: float, end: float
) -> dict[str, dict[str, float | int]]:
    """
    The honest operations that started between C{start} and C{end}: per
    kind, how many, p50, p99 and max in ms, and how many went wrong.
    """
    out: dict[str, dict[str, float | int]] = {}
    for kind, name in ((0, "echo"), (1, "fg")):
        chosen = sorted(
            lat
            for t, lat, k in zip(
                honest["started"], honest["latency"], honest["kinds"], strict=True
            )
            if k == kind and start <= t < end
        )
        bad = sum(
            1
            for t, k, g in zip(
                honest["started"], honest["kinds"], honest["good"], strict=True
            )
            if k == kind and start <= t < end and not g
        )
        out[name] = {
            "n": len(chosen),
            "p50_ms": round(1e3 * percentile(chosen, 0.50), 2),
            "p99_ms": round(1e3 * percentile(chosen, 0.99), 2),
            "max_ms": round(1e3 * (chosen[-1] if chosen else 0.0), 2),
            "errors": bad,
        }
    return out


def receive(results: Any, child: Any, timeout: float, what: str) -> dict[str, Any]:
    """
    What a child process sends back when it is done.

    @raise RuntimeError: if it exits without, or takes longer than C{timeout}.
    """
    deadline = time.monotonic() + timeout
    while not results.poll(0.5):
        if not child.is_alive() and not results.poll(0):
            raise RuntimeError(f"{what} exited with status {child.exitcode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not report within {timeout:g} s")
    got: dict[str, Any] = results.recv()
    return got


@dataclass
class Run:
    """
    The processes of one run, so that they can all be stopped whatever
    happens.
    """

    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    children: list[Any] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    events: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        for event in self.events:
            event.set()
        for child in self.children:
            child.join(5)
            if child.is_alive():
                child.kill()
        for proc in reversed(self.processes):
            if proc.poll() is None:
                stopProcess(proc)


def hostileRun(
    args: argparse.Namespace, scale: Scale, tmp: str, run: Run
) -> dict[str, Any]:
    began = time.monotonic()
    redis, redisPort = startRedis(tmp, durable=True)
    run.processes.append(redis)
    server = txgearman("--redis", "127.0.0.1:{redis}")
    port = freePort()
    proc = server.start(port, tmp, redisPort)
    run.processes.append(proc)
    result = run.result
    result["rss_mib"]["start"] = round(rssMiB(proc.pid), 1)
    phases: dict[str, float] = {}
    result["phases_s"] = phases
    mark = time.monotonic()

    def phase(name: str) -> None:
        nonlocal mark
        now = time.monotonic()
        phases[name] = round(now - mark, 1)
        mark = now

    phase("start")

    # Every process is forked before any thread starts.
    context = multiprocessing.get_context("fork")
    stopHonest = context.Event()
    stopWorker = context.Event()
    fuzzGo = context.Event()
    stopFuzz = context.Event()
    workerEnd, workerResults = context.Pipe()
    clientEnd, clientResults = context.Pipe()
    fuzzEnd, fuzzResults = context.Pipe()
    run.events.extend([stopHonest, stopWorker, fuzzGo, stopFuzz])
    children = [
        context.Process(target=honestWorker, args=(port, stopWorker, workerEnd)),
        context.Process(
            target=honestClient,
            args=(
                port,
                args.interval / 1e3,
                scale.honestTimeout,
                stopHonest,
                clientEnd,
            ),
        ),
        context.Process(
            target=fuzzMain,
            args=(port, scale, args.seed, args.timeout, fuzzGo, stopFuzz, fuzzEnd),
        ),
    ]
    for child in children:
        child.start()
        run.children.append(child)
    waitUntil(
        lambda: adminStatus(LOOPBACK, port).get(HONEST_FUNCTION, (0, 0, 0))[2] >= 1,
        10,
        "the honest worker",
    )

    phase("honest pair up")
    quietStart = time.monotonic()
    time.sleep(scale.quiet)
    quietEnd = time.monotonic()
    result["rss_mib"]["before"] = round(rssMiB(proc.pid), 1)

    phase("quiet")
    watch = Watch(proc, args.rss_ceiling_mib)
    fuzzGo.set()
    patterns: list[dict[str, Any]] = []
    result["patterns"] = patterns
    ctx = Context(port, watch, scale, random.Random(args.seed + 1))
    patternThread = threading.Thread(
        target=runPatterns, args=(ctx, patterns), daemon=True
    )
    patternThread.start()
    patternThread.join(args.timeout + 120)
    stopFuzz.set()
    fuzz = receive(fuzzResults, children[2], args.timeout + 60, "the fuzzer")
    runEnd = time.monotonic()
    phase("hostile")
    stopHonest.set()
    honest = receive(
        clientResults, children[1], scale.honestTimeout + 30, "the honest client"
    )
    # The worker stops only once the client has had its last answer.
    stopWorker.set()
    worker = receive(workerResults, children[0], 10, "the honest worker")
    phase("honest pair down")
    watch.stop()
    result["rss_mib"]["peak_sampled"] = round(watch.peak, 1)
    result["server_died"] = watch.died and not watch.aborted
    result["aborted_at_hard_limit"] = watch.aborted
    result["fuzz"] = fuzz
    if proc.poll() is None:
        result["rss_mib"]["peak"] = round(peakRssMiB(proc.pid), 1)
    result["honest"] = {
        "quiet": latencies(honest, quietStart, quietEnd),
        "hostile": latencies(honest, quietEnd, runEnd),
        "hostile_s": round(runEnd - quietEnd, 1),
        "client_errors": honest["errors"],
        "worker": worker,
    }
    for row in patterns:
        start, end = row.pop("window")
        during = latencies(honest, start, end)
        row["honest_max_ms"] = max(during["echo"]["max_ms"], during["fg"]["max_ms"])
    if proc.poll() is not None:
        result["error"] = f"the server exited with status {proc.returncode}"
        return result

    time.sleep(scale.settle)
    result["after"] = drainLeftovers(port, 30)
    time.sleep(scale.settle)
    result["rss_mib"]["after"] = round(rssMiB(proc.pid), 1)
    phase("after")

    result["durability"] = durability(
        server, port, tmp, redisPort, proc, scale.durableJobs, run
    )
    phase("durability")
    redis.terminate()
    redis.wait()
    result["idle_functions"] = idleFunctions(tmp, scale)
    phase("idle functions")
    result["elapsed_s"] = round(time.monotonic() - began, 1)
    return result


def passed(result: dict[str, Any]) -> bool:
    durable = result.get("durability", {})
    return (
        "error" not in result
        and not result.get("server_died")
        and durable.get("lost") == 0
        and durable.get("restart_to_echo_s") is not None
    )


def number(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return " / ".join(number(v) for v in value) or "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(result: dict[str, Any]) -> Iterator[str]:
    """
    The figures the issue asks for, as markdown.
    """
    yield f"hostile.py: {result['server']} ({result['python']}), seed {result['seed']}, "
    yield f"{result.get('elapsed_s', '?')} s; a noisy shared machine.\n"
    honest = result.get("honest", {})
    if honest:
        yield "| honest op | phase | n | p50 ms | p99 ms | max ms | errors |"
        yield "|---|---|---|---|---|---|---|"
        for phase in ("quiet", "hostile"):
            for op in ("echo", "fg"):
                r = honest[phase][op]
                yield (
                    f"| {op} | {phase} | {r['n']:,} | {r['p50_ms']} | {r['p99_ms']} "
                    f"| {r['max_ms']:,} | {r['errors']} |"
                )
        yield ""
    rss = result["rss_mib"]
    yield "| server RSS MiB | start | before | peak (VmHWM) | peak sampled | after |"
    yield "|---|---|---|---|---|---|"
    yield (
        f"| | {rss.get('start', '-')} | {rss.get('before', '-')} | {rss.get('peak', '-')} "
        f"| {rss.get('peak_sampled', '-')} | {rss.get('after', '-')} |"
    )
    yield ""
    fuzz = result.get("fuzz", {})
    if fuzz:
        yield (
            f"Fuzz: {fuzz['packets']:,} packets in {fuzz['elapsed_s']} s "
            f"({fuzz['packets_s']:,}/s), {fuzz['connections_opened']:,} connections, "
            f"{fuzz['closed_by_server']:,} closed by the server, "
            f"{fuzz['connect_errors']:,} connects refused; "
            f"{fuzz['bytes_sent'] / MiB:,.1f} MiB sent, "
            f"{fuzz['bytes_received'] / MiB:,.1f} MiB received."
        )
        yield ""
    yield "| pattern | outcome | s | RSS peak MiB | honest max ms | details |"
    yield "|---|---|---|---|---|---|"
    for row in result.get("patterns", []):
        details = ", ".join(
            f"{k}={number(v)}"
            for k, v in row.items()
            if k
            not in ("name", "outcome", "elapsed_s", "rss_peak_mib", "honest_max_ms")
        )
        yield (
            f"| {row['name']} | {row['outcome']} | {row['elapsed_s']} "
            f"| {number(row['rss_peak_mib'])} | {number(row.get('honest_max_ms', '-'))} "
            f"| {details} |"
        )
    yield ""
    for section in ("after", "idle_functions", "durability"):
        if section in result:
            yield f"| {section} | |"
            yield "|---|---|"
            for k, v in result[section].items():
                yield f"| {k} | {number(v)} |"
            yield ""
    yield (
        "ok: "
        + ("yes" if result["ok"] else "NO")
        + (f" ({result['error']})" if "error" in result else "")
    )


def parseArguments(argv: list[str]) -> tuple[argparse.Namespace, Scale]:
    parser = argparse.ArgumentParser(
        description="Hostile load against a fresh txgearman: fuzzing, items 11-14, "
        "an honest client and worker, memory, a kill -9 restart."
    )
    full = Scale()
    parser.add_argument(
        "--packets",
        type=int,
        help=f"fuzzed packets at least; the fuzzing goes on while patterns run "
        f"(default {full.packets:,})",
    )
    parser.add_argument(
        "--connections",
        type=int,
        help=f"fuzzing connections (default {full.connections})",
    )
    parser.add_argument(
        "--functions",
        type=int,
        help=f"functions of item 11 and of the idle-function figure (default {full.functions:,})",
    )
    parser.add_argument(
        "--rate",
        type=float,
        help=f"fuzzed packets per second, 0 for as fast as the server takes them "
        f"(default {full.rate:,.0f})",
    )
    parser.add_argument(
        "--rss-ceiling-mib",
        type=float,
        default=3072.0,
        help="stop a pattern once the server's RSS passes this; the server is killed "
        "2 GiB above it (default 3072)",
    )
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--interval",
        type=float,
        default=5.0,
        help="ms between honest operations (default 5)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=400.0,
        help="longest the fuzzing may take, in seconds (default 400)",
    )
    parser.add_argument("--quick", action="store_true", help="a small run, under 30 s")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    scale = Scale(**vars(QUICK)) if args.quick else Scale()
    for name in ("packets", "connections", "functions", "rate"):
        value = getattr(args, name)
        if value is not None:
            if value < 0 or (value == 0 and name != "rate"):
                parser.error(f"--{name} must be positive")
            setattr(scale, name, value)
    if args.rss_ceiling_mib <= 0 or args.interval <= 0 or args.timeout <= 0:
        parser.error("--rss-ceiling-mib, --interval and --timeout must be positive")
    return args, scale


def main(argv: list[str] | None = None) -> int:
    args, scale = parseArguments(sys.argv[1:] if argv is None else argv)
    run = Run(result={"rss_mib": {}})
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        try:
            result = hostileRun(args, scale, tmp, run)
        except (RuntimeError, OSError, Closed, ProtocolError) as e:
            result = run.result
            result["error"] = f"{type(e).__name__}: {e}"
        finally:
            run.stop()
    result = {
        "tool": "hostile.py",
        "server": twistd(),
        "python": sys.executable,
        "seed": args.seed,
        "quick": args.quick,
        "scale": vars(scale),
        **result,
    }
    result["ok"] = passed(result)
    if args.json:
        print(json.dumps(result), flush=True)
    else:
        print("\n".join(table(result)), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
