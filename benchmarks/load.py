#!/usr/bin/env python3
"""
A load generator for Gearman job servers in pure Python (standard library
only), with gearbench's modes, options and JSON output.

It exists so that the benchmarks run where gearbench (the C load generator
built on libgearman) has not been built, and so that benchmarks can drive
loads gearbench cannot express, such as jobs spread over many functions
(C{-f a,b,c} or C{--functions K}).  It is much slower than gearbench: one
Python thread drives every client and worker connection, and on a fast
server the load generator, not the server, sets the pace.  Its figures
compare servers with each other under the same load; they are not the
servers' throughput, and they are not comparable with gearbench's.

    python benchmarks/load.py bg|bg-split|fg|submit [--host H] [--port P]
        [-n N] [-c C] [-w W] [-s SIZE] [-b BATCH] [-f FUNC[,FUNC...]]
        [--functions K] [--timeout SEC] [--label STR]

Modes, as in gearbench:

  - C{bg}: W workers register first, then C clients submit N
    SUBMIT_JOB_BG in batches of B (each batch is one write; the next batch
    goes once every job of the last one has its JOB_CREATED).  C{jobs_s} is
    N over the time from the first submission to the N-th execution;
    C{submit_jobs_s} is N over the time until the last JOB_CREATED.
  - C{bg-split}: the clients submit N jobs with no worker registered
    (C{submit_jobs_s}); the admin C{status} must then show N queued; then W
    workers drain them (C{drain_jobs_s}, from their first GRAB_JOB_UNIQ to
    the N-th execution).
  - C{fg}: C clients each loop SUBMIT_JOB and wait for WORK_COMPLETE; W
    workers.  C{jobs_s} and C{lat_ms} (mean, p50, p90, p99, p999, max).
  - C{submit}: submit N background jobs and leave them queued.

Job I{i} goes to the I{i}-th function of the list, round robin.  Workers
use GRAB_JOB_UNIQ and PRE_SLEEP, and register for every function.  Every
payload starts with its job index (ten decimal digits when C{-s} >= 10):
workers mark each index, and the run is C{"ok": true} only if every job ran
exactly once (C{missing}, C{dups}, C{bad} all 0), every submission was
accepted, and the server's C{status} shows the functions empty afterwards.
Connection set-up (connect, then one ECHO round trip) is never timed.

With C{--tls-ca FILE} every connection (admin ones too) speaks TLS 1.2 or
later, verifying the server against that authority (its certificate must
name C{localhost} or the host given), and presents C{--tls-cert} and
C{--tls-key} if given: the same load, for a server's C{--tls-cert}.

Prints one JSON line on stdout; exit status 0 if every check passed, 1 if
one failed, 2 on a usage error or a server that already holds jobs for the
functions, 3 on a timeout.  Only use loopback addresses.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import selectors
import socket
import ssl
import struct
import sys
import time
from collections.abc import Callable

REQ = b"\0REQ"
RES = b"\0RES"
HEADER = struct.Struct(">4sII")

CAN_DO = 1
PRE_SLEEP = 4
NOOP = 6
SUBMIT_JOB = 7
JOB_CREATED = 8
NO_JOB = 10
JOB_ASSIGN = 11
WORK_COMPLETE = 13
WORK_FAIL = 14
ECHO_REQ = 16
ECHO_RES = 17
SUBMIT_JOB_BG = 18
ERROR = 19
WORK_EXCEPTION = 25
GRAB_JOB_UNIQ = 30
JOB_ASSIGN_UNIQ = 31


def packet(kind: int, *args: bytes) -> bytes:
    """
    Encode one request packet.

    @param kind: the packet type.
    @param args: its arguments, joined with NUL bytes.
    @return: the packet's bytes.
    """
    body = b"\0".join(args)
    return HEADER.pack(REQ, kind, len(body)) + body


GRAB = packet(GRAB_JOB_UNIQ)
SLEEP = packet(PRE_SLEEP)
ECHO = packet(ECHO_REQ, b"load.py")


class ProtocolError(Exception):
    """
    The server sent something that is not a Gearman response, or closed.
    """


class TimedOut(Exception):
    """
    The run did not finish within C{--timeout}.
    """


def splitPackets(data: bytes, onPacket: Callable[[int, bytes], None]) -> bytes:
    """
    Hand every whole packet in C{data} to C{onPacket}.

    @return: the bytes of an incomplete last packet, to prepend to the next
        read.
    @raise ProtocolError: on a packet without the response magic.
    """
    offset = 0
    end = len(data)
    unpack = HEADER.unpack_from
    while end - offset >= 12:
        magic, kind, size = unpack(data, offset)
        if magic != RES:
            raise ProtocolError(f"bad magic {magic!r}")
        stop = offset + 12 + size
        if stop > end:
            break
        onPacket(kind, data[offset + 12 : stop])
        offset = stop
    return data[offset:]


#: Set by C{--tls-ca}: every connection speaks TLS with it.
TLS: ssl.SSLContext | None = None


def tlsContext(
    caFile: str, certFile: str | None, keyFile: str | None
) -> ssl.SSLContext:
    """A client context that verifies the server, with a client certificate."""
    context = ssl.create_default_context(cafile=caFile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if certFile is not None:
        context.load_cert_chain(certFile, keyFile)
    return context


def openSocket(host: str, port: int, timeout: float = 30) -> socket.socket:
    """A blocking connection with TCP_NODELAY; through TLS with L{TLS}."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if TLS is not None:
        name = "localhost" if host in ("127.0.0.1", "::1") else host
        sock = TLS.wrap_socket(sock, server_hostname=name)
    return sock


def connect(host: str, port: int) -> socket.socket:
    """
    Connect with TCP_NODELAY (as libgearman does) and check the server
    answers one ECHO_REQ, so that later timings exclude connection set-up.
    """
    sock = openSocket(host, port)
    sock.sendall(ECHO)
    kind, _ = readPacket(sock)
    if kind != ECHO_RES:
        raise ProtocolError(f"expected ECHO_RES, got packet type {kind}")
    return sock


def readPacket(sock: socket.socket) -> tuple[int, bytes]:
    """
    Read exactly one packet from a blocking socket.
    """

    def readExactly(count: int) -> bytes:
        chunks = []
        while count:
            chunk = sock.recv(count)
            if not chunk:
                raise ProtocolError("connection closed")
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)

    magic, kind, size = HEADER.unpack(readExactly(12))
    if magic != RES:
        raise ProtocolError(f"bad magic {magic!r}")
    return kind, readExactly(size) if size else b""


class Connection:
    """
    One non-blocking connection in the L{Loop}: buffers what the socket
    will not take at once, and splits what it reads into packets.
    """

    def __init__(
        self, loop: Loop, sock: socket.socket, onPacket: Callable[[int, bytes], None]
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.onPacket = onPacket
        self.pending = b""
        self.outgoing = bytearray()
        sock.setblocking(False)
        loop.selector.register(sock, selectors.EVENT_READ, self)

    def send(self, data: bytes) -> None:
        """
        Write C{data} now if the socket takes it, else when it is writable.
        """
        if self.outgoing:
            self.outgoing += data
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            sent = 0
        if sent < len(data):
            self.outgoing += data[sent:]
            self.loop.selector.modify(
                self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, self
            )

    def writable(self) -> None:
        try:
            sent = self.sock.send(self.outgoing)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return
        del self.outgoing[:sent]
        if not self.outgoing:
            self.loop.selector.modify(self.sock, selectors.EVENT_READ, self)

    def readable(self) -> None:
        try:
            data = self.sock.recv(262144)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        if not data:
            raise ProtocolError("the server closed a connection")
        if TLS is not None:
            # Records already decrypted wait in the TLS layer, where the
            # selector does not see them.
            while True:
                try:
                    more = self.sock.recv(262144)
                except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    break
                if not more:
                    break
                data += more
        if self.pending:
            data = self.pending + data
        self.pending = splitPackets(data, self.onPacket)

    def close(self) -> None:
        self.loop.selector.unregister(self.sock)
        self.sock.close()


class Loop:
    """
    A select loop over every connection of the run, in one thread: no
    lock, no thread switch, so that Python spends its time on packets.
    """

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()

    def runOnce(self, timeout: float) -> None:
        for key, events in self.selector.select(timeout):
            connection: Connection = key.data
            if events & selectors.EVENT_WRITE:
                connection.writable()
            if events & selectors.EVENT_READ:
                connection.readable()

    def runFor(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.runOnce(left)

    def runUntil(self, done: Callable[[], bool], deadline: float) -> None:
        """
        Run until C{done()} is true.

        @raise TimedOut: if C{deadline} (a C{time.monotonic()} value) passes
            first.
        """
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimedOut()
            self.runOnce(min(left, 0.1))


StatusRow = tuple[int, int, int]


def adminStatus(host: str, port: int) -> dict[bytes, StatusRow]:
    """
    The admin C{status} table: function name to (total, running, workers).
    """
    with openSocket(host, port) as sock:
        sock.sendall(b"status\n")
        buffer = b""
        while not (buffer == b".\n" or buffer.endswith(b"\n.\n")):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buffer += chunk
    rows = {}
    for line in buffer.split(b"\n"):
        fields = line.split(b"\t")
        if len(fields) >= 4:
            rows[fields[0]] = (int(fields[1]), int(fields[2]), int(fields[3]))
    return rows


def adminQueued(host: str, port: int, function: bytes) -> int:
    """
    How many jobs of C{function} the server holds, by the admin C{status}.
    """
    return adminStatus(host, port).get(function, (0, 0, 0))[0]


class Bench:
    """
    One run: its parameters, its counters, and the checks of every job.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.host: str = args.host
        self.port: int = args.port
        self.n: int = args.n
        self.size: int = args.s
        self.functions: list[bytes] = functionNames(args.f, args.functions)
        self.runId = b"%08x" % ((int(time.time()) ^ (os.getpid() << 16)) & 0xFFFFFFFF)
        self.filler = b"x" * max(self.size - 10, 0)
        self.seen = bytearray(self.n)
        self.done = 0
        self.dups = 0
        self.bad = 0
        self.submitOk = 0
        self.submitErr = 0
        self.lastDone = 0.0
        self.errors: list[str] = []
        self.loop = Loop()
        self.started = time.monotonic()
        self.deadline = self.started + args.timeout

    def payload(self, index: int) -> bytes:
        if self.size >= 10:
            return b"%010d" % index + self.filler
        return b"x" * self.size

    def unique(self, index: int) -> bytes:
        return b"%s-%d" % (self.runId, index)

    def function(self, index: int) -> bytes:
        return self.functions[index % len(self.functions)]

    def executed(self, data: bytes) -> None:
        """
        A worker ran the job carrying C{data}: mark its index.
        """
        if self.size >= 10:
            digits = data[:10]
            if len(data) != self.size or not digits.isdigit() or int(digits) >= self.n:
                self.bad += 1
            else:
                index = int(digits)
                if self.seen[index]:
                    self.dups += 1
                else:
                    self.seen[index] = 1
        self.done += 1
        if self.done == self.n:
            self.lastDone = time.monotonic()

    def missing(self) -> int:
        if self.size < 10:
            return self.n - self.done
        return self.n - sum(self.seen)

    def status(self) -> dict[bytes, StatusRow]:
        rows = adminStatus(self.host, self.port)
        return {name: rows.get(name, (0, 0, 0)) for name in self.functions}

    def waitStatus(
        self, check: Callable[[dict[bytes, StatusRow]], bool], seconds: float
    ) -> bool:
        """
        Poll the admin C{status} (keeping the connections served) until
        C{check} holds of it, for at most C{seconds}.
        """
        end = time.monotonic() + seconds
        while True:
            if check(self.status()):
                return True
            if time.monotonic() > end:
                return False
            self.loop.runFor(0.005)

    def startWorkers(self, grab: bool) -> list[Worker]:
        workers = [Worker(self) for _ in range(self.args.w)]
        if grab:
            for worker in workers:
                worker.connection.send(GRAB)
        return workers

    def runClients(
        self, factory: Callable[[Bench, int, int], Client]
    ) -> tuple[float, float]:
        """
        Connect C clients, then start them all at once and run until the
        last has had its last answer.

        @return: the start time and the time the last client finished.
        """
        count = min(self.args.c, self.n)
        per, extra = divmod(self.n, count)
        clients = []
        first = 0
        for i in range(count):
            share = per + (1 if i < extra else 0)
            clients.append(factory(self, first, share))
            first += share
        start = time.monotonic()
        for client in clients:
            client.start()
        self.loop.runUntil(lambda: all(c.finished for c in clients), self.deadline)
        return start, max(c.finished for c in clients)

    def checked(self, drained: bool) -> bool:
        ok = (
            drained
            and not self.missing()
            and not self.dups
            and not self.bad
            and not self.submitErr
            and self.submitOk == self.n
        )
        if not drained:
            self.errors.append("the server's status does not show the functions empty")
        return ok

    def common(self) -> dict[str, object]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "tool": "load.py",
            "mode": self.args.mode,
            "label": self.args.label,
            "host": self.host,
            "port": self.port,
            "n": self.n,
            "c": self.args.c,
            "w": self.args.w,
            "s": self.size,
            "b": self.args.b,
            "functions": len(self.functions),
            "client_cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        }

    def counts(self) -> dict[str, object]:
        return {
            "done": self.done,
            "missing": self.missing(),
            "dups": self.dups,
            "bad": self.bad,
            "submit_ok": self.submitOk,
            "submit_err": self.submitErr,
        }


class Worker:
    """
    A worker connection: registers for every function, then grabs, runs
    (marks) and completes jobs, sleeping with PRE_SLEEP when there are none.
    """

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        sock = openSocket(bench.host, bench.port)
        # Registration and one ECHO round trip, so the server has seen
        # every CAN_DO before anything is timed.
        sock.sendall(b"".join(packet(CAN_DO, name) for name in bench.functions) + ECHO)
        kind, _ = readPacket(sock)
        if kind != ECHO_RES:
            raise ProtocolError(f"expected ECHO_RES, got packet type {kind}")
        self.connection = Connection(bench.loop, sock, self.onPacket)

    def onPacket(self, kind: int, body: bytes) -> None:
        if kind == JOB_ASSIGN_UNIQ:
            handle, _, rest = body.partition(b"\0")
            data = rest.split(b"\0", 2)[2]
        elif kind == JOB_ASSIGN:
            handle, _, rest = body.partition(b"\0")
            data = rest.partition(b"\0")[2]
        elif kind == NOOP:
            self.connection.send(GRAB)
            return
        elif kind == NO_JOB:
            self.connection.send(SLEEP)
            return
        else:
            self.bench.errors.append(f"worker got packet type {kind}: {body[:100]!r}")
            return
        self.bench.executed(data)
        self.connection.send(
            HEADER.pack(REQ, WORK_COMPLETE, len(handle) + 1) + handle + b"\0" + GRAB
        )


class Client:
    """
    A client connection submitting the jobs C{first} to C{first + count - 1}.
    """

    def __init__(self, bench: Bench, first: int, count: int) -> None:
        self.bench = bench
        self.next = first
        self.end = first + count
        self.finished = 0.0
        self.connection = Connection(
            bench.loop, connect(bench.host, bench.port), self.onPacket
        )

    def start(self) -> None:
        raise NotImplementedError()

    def onPacket(self, kind: int, body: bytes) -> None:
        raise NotImplementedError()


class BackgroundClient(Client):
    """
    Submits SUBMIT_JOB_BG in batches: one write per batch, the next batch
    once every job of this one has its answer.
    """

    outstanding = 0

    def start(self) -> None:
        if self.next >= self.end:
            self.finished = time.monotonic()
            return
        bench = self.bench
        stop = min(self.next + bench.args.b, self.end)
        self.connection.send(
            b"".join(
                packet(
                    SUBMIT_JOB_BG, bench.function(i), bench.unique(i), bench.payload(i)
                )
                for i in range(self.next, stop)
            )
        )
        self.outstanding = stop - self.next
        self.next = stop

    def onPacket(self, kind: int, body: bytes) -> None:
        if kind == JOB_CREATED and body:
            self.bench.submitOk += 1
        else:
            self.bench.submitErr += 1
            self.bench.errors.append(
                f"submission answered with type {kind}: {body[:100]!r}"
            )
        self.outstanding -= 1
        if not self.outstanding:
            self.start()


class ForegroundClient(Client):
    """
    Submits one SUBMIT_JOB at a time and waits for its WORK_COMPLETE,
    recording the latency of each.
    """

    sentAt = 0.0

    def __init__(self, bench: Bench, first: int, count: int) -> None:
        super().__init__(bench, first, count)
        self.latencies: list[float] = []

    def start(self) -> None:
        if self.next >= self.end:
            self.finished = time.monotonic()
            return
        bench = self.bench
        i = self.next
        self.next += 1
        self.sentAt = time.monotonic()
        self.connection.send(
            packet(SUBMIT_JOB, bench.function(i), bench.unique(i), bench.payload(i))
        )

    def onPacket(self, kind: int, body: bytes) -> None:
        if kind == JOB_CREATED:
            return
        if kind == WORK_COMPLETE:
            self.latencies.append(time.monotonic() - self.sentAt)
            self.bench.submitOk += 1
        elif kind in (WORK_FAIL, WORK_EXCEPTION, ERROR):
            self.latencies.append(time.monotonic() - self.sentAt)
            self.bench.submitErr += 1
            self.bench.errors.append(f"job answered with type {kind}: {body[:100]!r}")
        else:
            return
        self.start()


def functionNames(names: str, count: int) -> list[bytes]:
    """
    The function names of a run: the comma-separated C{names}, or, when
    C{count} > 1, C{count} names made from the first (C{NAME.0} ...).
    """
    listed = [name.encode() for name in names.split(",") if name]
    if count > 1:
        return [b"%s.%d" % (listed[0], i) for i in range(count)]
    return listed


def percentile(ordered: list[float], q: float) -> float:
    """
    The C{q}-quantile of sorted values, rounding to the nearest rank as
    gearbench does.
    """
    if not ordered:
        return 0.0
    return ordered[min(int(q * (len(ordered) - 1) + 0.5), len(ordered) - 1)]


def empty(rows: dict[bytes, StatusRow]) -> bool:
    return all(total == 0 and running == 0 for total, running, _ in rows.values())


def runBackground(bench: Bench) -> dict[str, object]:
    workers = bench.startWorkers(grab=True)
    wanted = len(workers)
    if not bench.waitStatus(
        lambda rows: all(r[2] >= wanted for r in rows.values()), 10
    ):
        raise ProtocolError("workers did not register (admin status)")
    start, submitted = bench.runClients(BackgroundClient)
    bench.loop.runUntil(lambda: bench.done >= bench.n, bench.deadline)
    total = bench.lastDone - start
    drained = bench.waitStatus(empty, 5)
    queueAfter = sum(r[0] for r in bench.status().values())
    ok = bench.checked(drained)
    return {
        "ok": ok,
        "jobs_s": round(bench.n / total, 1) if ok else 0.0,
        "total_s": round(total, 4),
        "submit_s": round(submitted - start, 4),
        "submit_jobs_s": round(bench.n / (submitted - start), 1),
        **bench.counts(),
        "server_queue_after": queueAfter,
    }


def waitQueued(bench: Bench) -> tuple[bool, int]:
    """
    Wait (up to 5 s) until the server's C{status} shows every submitted
    job queued.

    @return: whether it did, and how many it showed last.
    """
    queued: dict[bytes, StatusRow] = {}

    def full(rows: dict[bytes, StatusRow]) -> bool:
        queued.update(rows)
        return sum(r[0] for r in rows.values()) >= bench.n

    held = bench.waitStatus(full, 5)
    return held, sum(r[0] for r in queued.values())


def runSplit(bench: Bench) -> dict[str, object]:
    if any(r[2] for r in bench.status().values()):
        raise ProtocolError(
            "workers already registered for the functions; bg-split needs none"
        )
    start, submitted = bench.runClients(BackgroundClient)
    ok, queuedSeen = waitQueued(bench)
    if not ok:
        bench.errors.append(f"server reports {queuedSeen} queued, expected {bench.n}")
    workers = bench.startWorkers(grab=False)
    drainStart = time.monotonic()
    for worker in workers:
        worker.connection.send(GRAB)
    bench.loop.runUntil(lambda: bench.done >= bench.n, bench.deadline)
    drain = bench.lastDone - drainStart
    drained = bench.waitStatus(empty, 5)
    queueAfter = sum(r[0] for r in bench.status().values())
    ok = bench.checked(drained) and ok
    return {
        "ok": ok,
        "submit_jobs_s": round(bench.n / (submitted - start), 1),
        "submit_s": round(submitted - start, 4),
        "drain_jobs_s": round(bench.n / drain, 1) if ok else 0.0,
        "drain_s": round(drain, 4),
        "queued_seen": queuedSeen,
        **bench.counts(),
        "server_queue_after": queueAfter,
    }


def runSubmit(bench: Bench) -> dict[str, object]:
    start, submitted = bench.runClients(BackgroundClient)
    held, queuedSeen = waitQueued(bench)
    ok = held and not bench.submitErr and bench.submitOk == bench.n
    if not ok:
        bench.errors.append(f"server reports {queuedSeen} queued, expected {bench.n}")
    return {
        "ok": ok,
        "submit_jobs_s": round(bench.n / (submitted - start), 1),
        "submit_s": round(submitted - start, 4),
        "queued_seen": queuedSeen,
        "submit_ok": bench.submitOk,
        "submit_err": bench.submitErr,
    }


def runForeground(bench: Bench) -> dict[str, object]:
    workers = bench.startWorkers(grab=True)
    wanted = len(workers)
    if not bench.waitStatus(
        lambda rows: all(r[2] >= wanted for r in rows.values()), 10
    ):
        raise ProtocolError("workers did not register (admin status)")
    clients: list[ForegroundClient] = []

    def factory(bench: Bench, first: int, count: int) -> ForegroundClient:
        client = ForegroundClient(bench, first, count)
        clients.append(client)
        return client

    start, finished = bench.runClients(factory)
    total = finished - start
    drained = bench.waitStatus(empty, 5)
    queueAfter = sum(r[0] for r in bench.status().values())
    ok = bench.checked(drained)
    ordered = sorted(latency for client in clients for latency in client.latencies)
    mean = sum(ordered) / len(ordered) if ordered else 0.0
    return {
        "ok": ok,
        "jobs_s": round(bench.n / total, 1) if ok else 0.0,
        "total_s": round(total, 4),
        "lat_ms": {
            "mean": round(1e3 * mean, 3),
            "p50": round(1e3 * percentile(ordered, 0.50), 3),
            "p90": round(1e3 * percentile(ordered, 0.90), 3),
            "p99": round(1e3 * percentile(ordered, 0.99), 3),
            "p999": round(1e3 * percentile(ordered, 0.999), 3),
            "max": round(1e3 * (ordered[-1] if ordered else 0.0), 3),
        },
        **bench.counts(),
        "server_queue_after": queueAfter,
    }


MODES: dict[str, Callable[[Bench], dict[str, object]]] = {
    "bg": runBackground,
    "bg-split": runSplit,
    "fg": runForeground,
    "submit": runSubmit,
}


def parseArguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Pure-Python Gearman load generator with gearbench's modes and output."
    )
    parser.add_argument("mode", choices=sorted(MODES))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", "-p", type=int, default=4730)
    parser.add_argument("-n", type=int, default=10000, help="jobs (default 10000)")
    parser.add_argument(
        "-c", type=int, default=2, help="client connections (default 2)"
    )
    parser.add_argument(
        "-w", type=int, default=2, help="worker connections (default 2)"
    )
    parser.add_argument("-s", type=int, default=100, help="payload bytes (default 100)")
    parser.add_argument("-b", type=int, default=100, help="bg submissions per batch")
    parser.add_argument(
        "-f", default="gearbench", help="function name, or several separated by commas"
    )
    parser.add_argument(
        "--functions",
        type=int,
        default=1,
        metavar="K",
        help="spread the jobs over K functions named FUNC.0 ... FUNC.K-1",
    )
    parser.add_argument(
        "--timeout", type=float, default=55.0, help="seconds (default 55)"
    )
    parser.add_argument("--label", default="")
    parser.add_argument("--tls-ca", help="speak TLS, trusting this PEM authority")
    parser.add_argument("--tls-cert", help="present this client certificate (PEM)")
    parser.add_argument("--tls-key", help="the key of --tls-cert")
    args = parser.parse_args(argv)
    if (args.tls_cert or args.tls_key) and not args.tls_ca:
        parser.error("--tls-cert and --tls-key need --tls-ca")
    if args.n <= 0 or args.c <= 0 or args.w <= 0 or args.b <= 0 or args.s < 0:
        parser.error("-n, -c, -w and -b must be positive, -s not negative")
    if args.functions < 1 or not functionNames(args.f, 1):
        parser.error("need at least one function")
    return args


def main(argv: list[str] | None = None) -> int:
    global TLS
    args = parseArguments(sys.argv[1:] if argv is None else argv)
    if args.tls_ca:
        TLS = tlsContext(args.tls_ca, args.tls_cert, args.tls_key)
    bench = Bench(args)
    try:
        before = bench.status()
    except OSError as e:
        print(
            f"load.py: cannot query admin status (is the server up?): {e}",
            file=sys.stderr,
        )
        return 2
    if not empty(before):
        print(
            "load.py: the server already holds jobs for the functions; "
            "use a fresh server or other function names",
            file=sys.stderr,
        )
        return 2
    try:
        outcome = MODES[args.mode](bench)
        result = {**bench.common(), **outcome}
    except TimedOut:
        result = {
            **bench.common(),
            "ok": False,
            "error": f"timeout after {args.timeout:.1f}s",
            "done": bench.done,
            "submit_ok": bench.submitOk,
        }
        print(json.dumps(result), flush=True)
        return 3
    except (OSError, ProtocolError) as e:
        result = {**bench.common(), "ok": False, "error": str(e), **bench.counts()}
        print(json.dumps(result), flush=True)
        return 1
    result["error"] = "; ".join(dict.fromkeys(bench.errors))[:500]
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
