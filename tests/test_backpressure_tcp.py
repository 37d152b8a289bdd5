"""
System tests: flow control on forwarded output, against a real C{twistd
gearman} over loopback TCP.  A foreground client that never reads while
its job's worker streams WORK_DATA holds that worker back (the server's
memory stays bounded, other clients are answered at once), and one that is
sent more than C{--client-output-limit} regardless is closed, with the
reason logged.  The unit tests are C{txgearman/test/test_backpressure.py}.
"""

from __future__ import annotations

import re
import select
import socket
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.fixtures import (
    LOOPBACK,
    RawConnection,
    TwistdServer,
    connectRaw,
    packet,
    startServer,
    waitFor,
)

MB = 1024 * 1024


def residentBytes(pid: int) -> int:
    """The process's resident set size (VmRSS), in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def closedByPeer(sock: socket.socket, timeout: float = 10.0) -> bool:
    """
    Read what is left on C{sock}: whether the peer closed it (end of
    stream or reset) within C{timeout} seconds.
    """
    sock.settimeout(timeout)
    try:
        while sock.recv(MB):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


class StreamingWorker:
    """
    A raw worker that runs one job and streams WORK_DATA for it without
    ever blocking the test: L{push} sends what the server will take within
    a time, and the test sees how far the stream got.
    """

    def __init__(self, port: int, function: bytes, chunk: int, total: int) -> None:
        self.connection = RawConnection(port)
        self.function = function
        self.chunk = chunk
        self.packets = total // chunk
        self.pending = memoryview(b"")
        self.sent = 0
        self.handle = b""

    def grab(self) -> bytes:
        """Take the job; return its handle."""
        self.connection.send("CAN_DO", self.function)
        self.connection.send("GRAB_JOB")
        self.handle = self.connection.expect("JOB_ASSIGN")[0]
        self.data = packet("WORK_DATA", self.handle, b"d" * self.chunk)
        self.connection.socket.setblocking(False)
        return self.handle

    def push(self, seconds: float) -> int:
        """
        Send stream for up to C{seconds}; return how many bytes went.
        """
        sock = self.connection.socket
        deadline = time.monotonic() + seconds
        before = self.sent
        while time.monotonic() < deadline:
            if not self.pending:
                if not self.packets:
                    break
                self.pending = memoryview(self.data)
                self.packets -= 1
            _, writable, _ = select.select([], [sock], [], 0.05)
            if writable:
                try:
                    n = sock.send(self.pending)
                except BlockingIOError:
                    continue
                self.pending = self.pending[n:]
                self.sent += n
        return self.sent - before

    def pushUntilHeldBack(self, timeout: float = 60.0) -> None:
        """Stream until the server takes nothing for a whole second."""
        deadline = time.monotonic() + timeout
        while self.push(1.0):
            if time.monotonic() > deadline:
                raise AssertionError(f"never held back; sent {self.sent} bytes")

    def finish(self, timeout: float = 60.0) -> None:
        """Send the rest of the stream and WORK_COMPLETE."""
        deadline = time.monotonic() + timeout
        while self.pending or self.packets:
            self.push(1.0)
            if time.monotonic() > deadline:
                raise AssertionError(f"stream stuck at {self.sent} bytes")
        self.connection.socket.setblocking(True)
        self.connection.send("WORK_COMPLETE", self.handle, b"end")


class BackpressureTests(SynchronousTestCase):
    """
    A client that does not read its job's streamed output.
    """

    def startClient(self, server: TwistdServer) -> socket.socket:
        """
        A foreground client socket that submits a job of C{f}, reads its
        JOB_CREATED and then nothing more.  Its receive buffer is small,
        so that the kernel does not hide much of what the server sends.
        """
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(5.0)
        sock.connect((LOOPBACK, server.port))
        self.addCleanup(sock.close)
        sock.sendall(packet("SUBMIT_JOB", b"f", b"", b"job"))
        answer = b""
        while len(answer) < 12:
            answer += sock.recv(12 - len(answer))
        return sock

    def assertEchoQuick(self, honest: RawConnection) -> None:
        started = time.monotonic()
        honest.send("ECHO_REQ", b"still here")
        self.assertEqual(honest.expect("ECHO_RES", timeout=2.0), [b"still here"])
        self.assertLess(time.monotonic() - started, 1.0)

    def jobsOf(self, server: TwistdServer) -> bytes:
        return server.admin(b"show jobs")

    def test_workerHeldBack(self) -> None:
        """
        A worker streaming 200 MB to a client that never reads is held
        back once about a megabyte waits for the client: the server's
        memory grows by far less than 100 MB, and another client's ECHO is
        answered at once meanwhile.  When the client goes, the worker is
        read again and its job ends.
        """
        server = startServer(self)
        assert server.pid is not None
        honest = connectRaw(self, server.port)
        client = self.startClient(server)
        worker = StreamingWorker(server.port, b"f", 64 * 1024, 200 * MB)
        self.addCleanup(worker.connection.close)
        worker.grab()
        start = residentBytes(server.pid)
        worker.pushUntilHeldBack()
        grown = residentBytes(server.pid) - start
        self.assertLess(worker.sent, 50 * MB)
        self.assertLess(grown, 100 * MB, f"RSS grew by {grown} bytes")
        self.assertEchoQuick(honest)
        # Still held back, a while later.
        self.assertEqual(worker.push(1.0), 0)
        client.close()
        worker.finish()
        waitFor(lambda: self.jobsOf(server) == b".\n", what="the job to end")
        self.assertLess(residentBytes(server.pid) - start, 100 * MB)
        self.assertEchoQuick(honest)

    def test_detachedPastTheLimit(self) -> None:
        """
        A client sent more than C{--client-output-limit} while it does not
        read (here in packets larger than the limit, which the worker's
        pausing cannot split) is closed, with a log line naming its
        address and what it held.  The job carries on to its end, the
        server's memory stays bounded, and another client is answered at
        once throughout.
        """
        limit = 4 * MB
        server = startServer(self, "--client-output-limit", str(limit))
        assert server.pid is not None
        honest = connectRaw(self, server.port)
        client = self.startClient(server)
        worker = StreamingWorker(server.port, b"f", 6 * MB, 200 * MB)
        self.addCleanup(worker.connection.close)
        worker.grab()
        start = residentBytes(server.pid)
        peak = 0
        while worker.packets or worker.pending:
            worker.push(0.5)
            peak = max(peak, residentBytes(server.pid) - start)
        self.assertLess(peak, 100 * MB, f"RSS grew by {peak} bytes")
        waitFor(
            lambda: "client-output-limit" in server.log(),
            what="the client to be closed",
        )
        [line] = [
            line for line in server.log().splitlines() if "client-output-limit" in line
        ]
        found = re.search(
            r"Closing connection from 127\.0\.0\.1: (\d+) bytes of output wait for "
            r"it, more than --client-output-limit \(4194304 bytes\)",
            line,
        )
        assert found is not None, line
        self.assertGreater(int(found.group(1)), limit)
        self.assertEchoQuick(honest)
        self.assertTrue(closedByPeer(client))
        worker.finish()
        waitFor(lambda: self.jobsOf(server) == b".\n", what="the job to end")
        self.assertEchoQuick(honest)
