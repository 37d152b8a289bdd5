"""
System tests: the server-wide budget for large packets still arriving
(C{--max-buffered-bodies}), against a real C{twistd gearman} over loopback
TCP.  Many connections sending large packets at once leave the server's
memory bounded by the budget, an honest client's ECHO is answered at once
throughout, every packet is let in in turn, and the memory goes back when
the connections go; a packet that waits too long is refused with
C{ERROR SERVER_BUSY}.  The unit tests are C{txgearman/test/test_bodies.py}.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Callable

from twisted.trial.unittest import SynchronousTestCase

from tests.fixtures import (
    LOOPBACK,
    PACKETS,
    RES,
    RawConnection,
    connectRaw,
    packet,
    startServer,
    waitFor,
)
from tests.test_backpressure_tcp import residentBytes

MB = 1024 * 1024


class Sender:
    """
    A raw connection sending one large packet without ever blocking the
    test: L{pump} sends what the server takes, up to a mark.
    """

    def __init__(self, port: int, data: memoryview) -> None:
        self.socket = socket.create_connection((LOOPBACK, port), timeout=5.0)
        self.socket.setblocking(False)
        self.data = data
        self.sent = 0
        self.answer = b""

    def pump(self, upTo: int) -> int:
        """Send what the socket takes now, up to byte C{upTo}."""
        if self.sent >= upTo:
            return 0
        try:
            n = self.socket.send(self.data[self.sent : min(upTo, self.sent + MB)])
        except BlockingIOError:
            return 0
        self.sent += n
        return n

    def read(self) -> None:
        """Take what the server answered."""
        try:
            self.answer += self.socket.recv(65536)
        except BlockingIOError:
            pass

    def close(self) -> None:
        self.socket.close()


class BodyBudgetTests(SynchronousTestCase):
    """
    Large packets from many connections at once.
    """

    def echoTime(self, honest: RawConnection) -> float:
        """How long an ECHO round trip takes, in seconds."""
        started = time.monotonic()
        honest.send("ECHO_REQ", b"still here")
        self.assertEqual(honest.expect("ECHO_RES", timeout=2.0), [b"still here"])
        return time.monotonic() - started

    def test_manyLargePackets(self) -> None:
        """
        32 connections each send a 24 MiB packet against a 48 MiB budget.
        While each has sent all but the last kilobyte, the server holds
        about the budget, not the 768 MiB sent, and an honest client's ECHO
        is answered at once; then all of them finish, one budget's worth at
        a time, and each is answered.  Once they have gone, the server's
        memory is back near where it started (within one payload).
        """
        size = 24 * MB
        server = startServer(
            self,
            "--max-packet-size",
            str(size),
            "--max-buffered-bodies",
            str(2 * size),
            "--body-wait-timeout",
            "25",
        )
        pid = server.pid
        assert pid is not None
        honest = connectRaw(self, server.port)
        self.echoTime(honest)
        start = residentBytes(pid)
        # WORK_DATA for a job nobody holds: answered with ERROR
        # JOB_NOT_FOUND, so that a complete packet leaves nothing behind.
        body = b"H:nobody\0" + b"d" * (size - 9)
        data = memoryview(
            struct.pack(">4sII", b"\0REQ", PACKETS["WORK_DATA"], size) + body
        )
        senders = [Sender(server.port, data) for _ in range(32)]
        for sender in senders:
            self.addCleanup(sender.close)
        sockets = {sender.socket: sender for sender in senders}
        slowest = peak = 0.0

        def pumpUntil(
            mark: int, done: Callable[[], bool], seconds: float, quiet: float = 0.0
        ) -> None:
            """
            Send up to C{mark} on every connection until C{done()}, or
            with C{quiet}, until nothing went for that long; an ECHO every
            0.2 s meanwhile.
            """
            nonlocal slowest, peak
            now = time.monotonic()
            deadline = now + seconds
            lastEcho = lastSent = 0.0
            while not done():
                now = time.monotonic()
                if quiet and lastSent and now - lastSent > quiet:
                    return
                self.assertLess(now, deadline, "the senders are stuck")
                _, writable, _ = select.select([], list(sockets), [], 0.05)
                for sock in writable:
                    if sockets[sock].pump(mark):
                        lastSent = now
                readable, _, _ = select.select(list(sockets), [], [], 0)
                for sock in readable:
                    sockets[sock].read()
                if time.monotonic() - lastEcho > 0.2:
                    slowest = max(slowest, self.echoTime(honest))
                    peak = max(peak, residentBytes(pid) - start)
                    lastEcho = time.monotonic()

        # Everyone sends all but the last kilobyte: two are let in and
        # reach it, the others are not read once their socket buffers are
        # full.  Nothing more is taken for a second.
        most = len(data) - 1024
        pumpUntil(most, lambda: False, 20.0, quiet=1.0)
        self.assertEqual(sum(sender.sent == most for sender in senders), 2)
        self.assertLess(peak, 2 * size + 64 * MB, f"RSS grew by {peak / MB:.0f} MiB")
        self.assertLess(slowest, 0.5, f"an ECHO took {slowest:.2f}s")

        # Now all finish, in turn, and each is answered.
        notFound = packet(
            "ERROR", b"JOB_NOT_FOUND", b"Job does not exist on server", magic=RES
        )
        pumpUntil(len(data), lambda: all(s.answer == notFound for s in senders), 25.0)
        self.assertLess(peak, 3 * size + 64 * MB, f"RSS grew by {peak / MB:.0f} MiB")
        self.assertLess(slowest, 0.5, f"an ECHO took {slowest:.2f}s")
        self.assertNotIn("SERVER_BUSY", server.log())

        for sender in senders:
            sender.close()
        # The packets' bodies are unmapped, but each packet's payload was
        # copied into bytes from malloc, which keeps one such block (below
        # 32 MiB) in its heap for the next: one payload, never more.
        waitFor(
            lambda: residentBytes(pid) - start < size + 16 * MB,
            timeout=5.0,
            what=f"RSS back near its start (grew by {peak / MB:.0f} MiB at most)",
        )

    def test_partialPacketsLeft(self) -> None:
        """
        Connections that leave with most of a large packet sent give its
        memory back, whether they were there together or one after the
        other: the server keeps it neither for the garbage collector nor in
        its allocator's heap.
        """
        size = 24 * MB
        server = startServer(self, "--max-buffered-bodies", str(16 * size))
        pid = server.pid
        assert pid is not None
        honest = connectRaw(self, server.port)
        self.echoTime(honest)
        start = residentBytes(pid)
        data = packet("ECHO_REQ", b"e" * size)[:-1024]

        def backNearStart() -> None:
            self.echoTime(honest)
            waitFor(
                lambda: residentBytes(pid) - start < 16 * MB,
                timeout=5.0,
                what="RSS back near its start",
            )

        together = []
        for _ in range(16):
            sock = socket.create_connection((LOOPBACK, server.port))
            self.addCleanup(sock.close)
            sock.sendall(data)
            together.append(sock)
        waitFor(
            lambda: residentBytes(pid) - start > 12 * size, what="the packets to arrive"
        )
        for sock in together:
            sock.close()
        backNearStart()
        for _ in range(8):
            with socket.create_connection((LOOPBACK, server.port)) as sock:
                sock.sendall(data)
        backNearStart()

    def test_waitedTooLong(self) -> None:
        """
        A packet that finds the budget taken by one that never completes is
        refused with ERROR SERVER_BUSY once it has waited
        C{--body-wait-timeout}, naming the option, and closed; the reason is
        logged.  An honest client is answered meanwhile.
        """
        server = startServer(
            self,
            "--max-packet-size",
            str(MB),
            "--max-buffered-bodies",
            str(MB),
            "--body-wait-timeout",
            "1",
        )
        honest = connectRaw(self, server.port)
        data = packet("ECHO_REQ", b"e" * MB)
        holder = connectRaw(self, server.port)
        holder.socket.sendall(data[:1000])
        # Read by the server before the waiter's header, as a rule.
        time.sleep(0.3)
        self.echoTime(honest)
        waiter = connectRaw(self, server.port)
        started = time.monotonic()
        waiter.socket.sendall(data[:1000])
        self.echoTime(honest)
        [code, text] = waiter.expect("ERROR", timeout=5.0)
        waited = time.monotonic() - started
        self.assertEqual(code, b"SERVER_BUSY")
        self.assertIn(b"--max-buffered-bodies (1048576 bytes)", text)
        self.assertGreater(waited, 0.9)
        self.assertLess(waited, 3.0)
        waiter.socket.settimeout(5.0)
        self.assertEqual(waiter.socket.recv(100), b"")
        waitFor(lambda: "--body-wait-timeout (1s)" in server.log(), what="the warning")
        # The holder was not harmed: it completes and is answered.
        holder.socket.sendall(data[1000:])
        self.assertEqual(holder.expect("ECHO_RES"), [b"e" * MB])
