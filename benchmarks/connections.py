#!/usr/bin/env python3
"""
Can the server hold many idle connections, and what does each cost?

Starts a fresh txgearman (and, with --gearmand, a fresh gearmand -t 1),
opens N TCP connections to it (default 10,000) with at most --window
connects in flight (so the listen backlog never overflows), and checks that
each answers an ECHO_REQ carrying its own number.  The connections then sit
idle for --idle seconds, none may be closed, and every one of them is sent
an ECHO_REQ again and must answer it.  Prints a markdown table: the time to
open (and echo) all of them, the time for the second round of echoes, how
many answered, the server's resident memory before and after, and KiB per
connection.

    python benchmarks/connections.py -n 10000 --gearmand

The soft limit on open files is raised to the hard limit first (the servers
inherit it); with fewer files than N allows, N is reduced and the table
says so.  Only loopback addresses are used.  Nothing here is a test: it
measures.
"""

from __future__ import annotations

import argparse
import errno
import resource
import selectors
import socket
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass

from load import ECHO_REQ, ECHO_RES, HEADER, RES, packet
from support import SERVERS, Server, cpuSeconds, freePort, rssMiB, stopProcess


@dataclass
class Connection:
    """
    One client connection and the echo it waits for.
    """

    sock: socket.socket
    index: int
    received: bytes = b""

    def request(self) -> bytes:
        return packet(ECHO_REQ, b"connection-%d" % self.index)

    def expected(self) -> bytes:
        body = b"connection-%d" % self.index
        return HEADER.pack(RES, ECHO_RES, len(body)) + body


class Failed(Exception):
    """
    A connection was refused, closed, or answered wrongly.
    """


def receive(connection: Connection) -> bool:
    """
    Read what has arrived for C{connection}.

    @return: whether its whole echo has arrived.
    @raise Failed: if it was closed or the answer is not its echo.
    """
    try:
        data = connection.sock.recv(4096)
    except BlockingIOError:
        return False
    except OSError as e:
        raise Failed(f"connection {connection.index}: {e}") from e
    if not data:
        raise Failed(f"connection {connection.index} closed by the server")
    connection.received += data
    expected = connection.expected()
    if not expected.startswith(connection.received):
        raise Failed(
            f"connection {connection.index}: wrong answer {connection.received[:60]!r}"
        )
    if len(connection.received) == len(expected):
        connection.received = b""
        return True
    return False


def openAll(port: int, count: int, window: int, timeout: float) -> list[Connection]:
    """
    Open C{count} connections, at most C{window} of them connecting or
    waiting for their first echo at any time.

    @raise Failed: if one fails, or if it all takes longer than C{timeout}.
    """
    selector = selectors.DefaultSelector()
    waiting = deque(range(count))
    held: list[Connection] = []
    inFlight = 0
    deadline = time.monotonic() + timeout
    while len(held) < count:
        while waiting and inFlight < window:
            sock = socket.socket()
            sock.setblocking(False)
            error = sock.connect_ex(("127.0.0.1", port))
            if error not in (0, errno.EINPROGRESS):
                raise Failed(
                    f"connect: {errno.errorcode.get(error, error)} after {len(held)}"
                )
            selector.register(
                sock, selectors.EVENT_WRITE, Connection(sock, waiting.popleft())
            )
            inFlight += 1
        if time.monotonic() > deadline:
            raise Failed(
                f"only {len(held)} of {count} connections open after {timeout} s"
            )
        for key, events in selector.select(1.0):
            connection: Connection = key.data
            if events & selectors.EVENT_WRITE:
                error = connection.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error:
                    raise Failed(
                        f"connect: {errno.errorcode.get(error, error)} after {len(held)}"
                    )
                connection.sock.send(connection.request())
                selector.modify(connection.sock, selectors.EVENT_READ, connection)
            elif receive(connection):
                selector.unregister(connection.sock)
                held.append(connection)
                inFlight -= 1
    selector.close()
    return held


def idle(connections: list[Connection], seconds: float) -> None:
    """
    Leave the connections alone for C{seconds}, watching that the server
    neither closes one nor sends anything unasked.
    """
    selector = selectors.DefaultSelector()
    for connection in connections:
        selector.register(connection.sock, selectors.EVENT_READ, connection)
    end = time.monotonic() + seconds
    try:
        while (left := end - time.monotonic()) > 0:
            for key, _ in selector.select(left):
                connection = key.data
                data = connection.sock.recv(4096)
                what = "closed" if not data else f"sent {data[:40]!r} unasked"
                raise Failed(f"connection {connection.index} {what} while idle")
    finally:
        selector.close()


def echoAll(connections: list[Connection], timeout: float) -> int:
    """
    Send an ECHO_REQ on every connection, then collect every answer.

    @return: how many answered correctly.
    """
    selector = selectors.DefaultSelector()
    for connection in connections:
        connection.sock.send(connection.request())
        selector.register(connection.sock, selectors.EVENT_READ, connection)
    answered = 0
    deadline = time.monotonic() + timeout
    try:
        while answered < len(connections):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, _ in selector.select(min(left, 1.0)):
                connection = key.data
                if receive(connection):
                    selector.unregister(connection.sock)
                    answered += 1
    finally:
        selector.close()
    return answered


@dataclass
class Row:
    server: str
    count: int
    openSeconds: float
    echoSeconds: float
    answered: int
    rssFresh: float
    rssHeld: float
    cpuSeconds: float
    error: str = ""


def measure(server: Server, args: argparse.Namespace) -> Row:
    """
    One fresh server: open, idle, echo again, and read its memory.
    """
    port = freePort()
    with tempfile.TemporaryDirectory(prefix="connections-") as tmp:
        proc = server.start(port, tmp)
        connections: list[Connection] = []
        row = Row(server.name, args.connections, 0.0, 0.0, 0, 0.0, 0.0, 0.0)
        try:
            time.sleep(0.5)
            row.rssFresh = rssMiB(proc.pid)
            cpuBefore = cpuSeconds(proc.pid)
            started = time.monotonic()
            connections = openAll(port, args.connections, args.window, args.timeout)
            row.openSeconds = time.monotonic() - started
            idle(connections, args.idle)
            started = time.monotonic()
            row.answered = echoAll(connections, args.timeout)
            row.echoSeconds = time.monotonic() - started
            row.rssHeld = rssMiB(proc.pid)
            row.cpuSeconds = cpuSeconds(proc.pid) - cpuBefore
            if proc.poll() is not None:
                row.error = f"server exited with {proc.returncode}"
        except Failed as e:
            row.error = str(e)
            row.rssHeld = rssMiB(proc.pid) if proc.poll() is None else 0.0
        finally:
            for connection in connections:
                connection.sock.close()
            stopProcess(proc)
    return row


def raiseFileLimit(wanted: int) -> int:
    """
    Raise the soft limit on open files to the hard limit.

    @return: how many connections fit: C{wanted}, or fewer if the hard
        limit (less a margin for everything else) is lower.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, wanted + 1024)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return min(wanted, hard - 256)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--connections", type=int, default=10000)
    parser.add_argument(
        "--gearmand", action="store_true", help="also measure gearmand -t 1"
    )
    parser.add_argument(
        "--idle", type=float, default=5.0, help="seconds idle (default 5)"
    )
    parser.add_argument(
        "--window", type=int, default=32, help="connects in flight at once"
    )
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    wanted = args.connections
    args.connections = raiseFileLimit(wanted)
    if args.connections < wanted:
        print(
            f"the open-files hard limit allows only {args.connections} connections",
            file=sys.stderr,
        )
    servers = [SERVERS["txgearman"]] + (
        [SERVERS["gearmand-t1"]] if args.gearmand else []
    )
    rows = []
    for server in servers:
        print(
            f"{server.name}: {args.connections} connections",
            file=sys.stderr,
            flush=True,
        )
        rows.append(measure(server, args))
    print()
    print(
        f"{args.connections:,} idle connections (asked for {wanted:,}), {args.idle:g} s idle"
    )
    print()
    print(
        "| server | open + first echo, s | echo on all again, s | answered | RSS fresh MiB "
        "| RSS holding them MiB | KiB per connection | server CPU s | error |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        perConnection = (r.rssHeld - r.rssFresh) * 1024 / r.count if r.rssHeld else 0.0
        print(
            f"| {r.server} | {r.openSeconds:.2f} | {r.echoSeconds:.2f} "
            f"| {r.answered:,} of {r.count:,} | {r.rssFresh:.1f} | {r.rssHeld:.1f} "
            f"| {perConnection:.2f} | {r.cpuSeconds:.2f} | {r.error or '-'} |"
        )
    return 0 if all(r.answered == r.count and not r.error for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
