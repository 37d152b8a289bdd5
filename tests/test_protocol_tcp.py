"""
System tests: the job server's protocol on a real loopback port, with the
global reactor: jobs over TCP, a peer that vanishes mid-packet, an ERROR
after an answer that overfills the send buffer, and flow control against a
client that stops reading.

The server runs in this process (a L{GearmanServerService} listening on
port 0); the peers are raw protocol connections, so these tests need no
peer binary.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import cast

from twisted.internet import reactor, task
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import ITCPTransport
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from txgearman.codec import PacketType as P
from txgearman.server.service import GearmanServerService
from txgearman.test.fakes import request, splitResponses

_HEADER = struct.Struct(">4sII")


class RecordingClient(Protocol):
    """
    A raw Gearman peer over real TCP: keeps (or only counts) what arrives.
    """

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.buffer = b""
        self.received = 0
        self.lost: Deferred[None] = Deferred()
        self._waiters: list[tuple[Callable[[], bool], Deferred[None]]] = []

    def dataReceived(self, data: bytes) -> None:
        self.received += len(data)
        if self.keep:
            self.buffer += data
        self._check()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.lost.callback(None)

    def _check(self) -> None:
        for entry in list(self._waiters):
            if entry[0]():
                self._waiters.remove(entry)
                entry[1].callback(None)

    def send(self, ptype: int, *args: bytes) -> None:
        assert self.transport is not None
        self.transport.write(request(ptype, *args))

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        if predicate():
            return
        d: Deferred[None] = Deferred()
        self._waiters.append((predicate, d))
        d.addTimeout(timeout, reactor)
        await d

    def _complete(self) -> list[tuple[P, bytes]]:
        return splitResponses(self.buffer[: self._completeLength()])

    def _completeLength(self) -> int:
        end = 0
        while len(self.buffer) - end >= 12:
            _, _, size = _HEADER.unpack_from(self.buffer, end)
            if len(self.buffer) - end - 12 < size:
                break
            end += 12 + size
        return end

    async def packets(self, count: int) -> list[tuple[P, bytes]]:
        """Wait for C{count} complete packets and take them."""
        await self.until(lambda: len(self._complete()) >= count)
        packets = self._complete()[:count]
        taken = sum(12 + len(body) for _, body in packets)
        self.buffer = self.buffer[taken:]
        return packets


async def _eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """
    Poll C{predicate} on the real reactor until it holds.
    """
    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError("condition not reached in time")
        await task.deferLater(reactor, 0.005, lambda: None)


class TCPTests(TestCase):
    """
    The server on a real loopback port.
    """

    timeout = 20

    async def setUp(self) -> None:  # type: ignore[override]
        self.service = GearmanServerService(
            "tcp:0:interface=127.0.0.1", handlePrefix=b"H:tcp"
        )
        self.service.privilegedStartService()
        self.service.startService()
        await self.service.ready
        assert self.service.port is not None
        self.portNumber = cast(IPv4Address, self.service.port.getHost()).port
        self.clients: list[RecordingClient] = []
        self.addCleanup(self._closeAll)

    async def _closeAll(self) -> None:
        for client in self.clients:
            if client.transport is not None:
                cast(ITCPTransport, client.transport).abortConnection()
        for client in self.clients:
            await client.lost
        await self.service.stopService()

    async def connect(self, keep: bool = True) -> RecordingClient:
        before = set(self.service.factory.connections)
        client = RecordingClient(keep)
        await connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", self.portNumber), client
        )
        self.clients.append(client)
        await _eventually(lambda: len(self.service.factory.connections - before) == 1)
        [client.server] = self.service.factory.connections - before  # type: ignore[attr-defined]
        return client

    async def test_jobsOverTCP(self) -> None:
        """
        A client submits a background and a foreground job; a worker grabs
        and completes both; the foreground client gets its result.
        """
        client = await self.connect()
        worker = await self.connect()
        worker.send(P.CAN_DO, b"reverse")
        client.send(P.SUBMIT_JOB_BG, b"reverse", b"", b"bg")
        client.send(P.SUBMIT_JOB, b"reverse", b"", b"f\0g")
        self.assertEqual(
            await client.packets(2),
            [(P.JOB_CREATED, b"H:tcp:1"), (P.JOB_CREATED, b"H:tcp:2")],
        )
        worker.send(P.GRAB_JOB)
        worker.send(P.GRAB_JOB)
        self.assertEqual(
            await worker.packets(2),
            [
                (P.JOB_ASSIGN, b"H:tcp:1\0reverse\0bg"),
                (P.JOB_ASSIGN, b"H:tcp:2\0reverse\0f\0g"),
            ],
        )
        worker.send(P.WORK_COMPLETE, b"H:tcp:1", b"gb")
        worker.send(P.WORK_COMPLETE, b"H:tcp:2", b"g\0f")
        worker.send(P.GRAB_JOB)
        self.assertEqual(await worker.packets(1), [(P.NO_JOB, b"")])
        self.assertEqual(await client.packets(1), [(P.WORK_COMPLETE, b"H:tcp:2\0g\0f")])
        assert client.transport is not None
        client.transport.write(b"status\n")
        await client.until(lambda: client.buffer.endswith(b".\n"))
        self.assertEqual(client.buffer, b"reverse\t0\t0\t1\n.\n")
        # The server numbers connections by file descriptor.
        self.assertEqual(
            client.server.session.connectionId,  # type: ignore[attr-defined]
            client.server.transport.fileno(),  # type: ignore[attr-defined]
        )

    async def test_peerVanishesMidPacket(self) -> None:
        """
        A worker that disconnects in the middle of a packet while holding a
        job does not disturb the other connections; its job goes to
        another worker.
        """
        client = await self.connect()
        first = await self.connect()
        first.send(P.CAN_DO, b"f")
        client.send(P.SUBMIT_JOB, b"f", b"", b"work")
        await client.packets(1)
        first.send(P.GRAB_JOB)
        [(_, assign)] = await first.packets(1)
        handle = assign.split(b"\0")[0]
        assert first.transport is not None
        first.transport.write(request(P.WORK_COMPLETE, handle, b"half-written")[:20])
        server = first.server  # type: ignore[attr-defined]
        await _eventually(lambda: server.decoder.buffered == 20)
        cast(ITCPTransport, first.transport).abortConnection()
        await server.whenLost()
        second = await self.connect()
        second.send(P.CAN_DO, b"f")
        second.send(P.GRAB_JOB)
        self.assertEqual(await second.packets(1), [(P.JOB_ASSIGN, assign)])
        second.send(P.WORK_COMPLETE, handle, b"done")
        client.send(P.ECHO_REQ, b"alive")
        self.assertEqual(
            await client.packets(2),
            [(P.WORK_COMPLETE, handle + b"\0done"), (P.ECHO_RES, b"alive")],
        )

    async def test_errorAfterLargeAnswer(self) -> None:
        """
        A fatal packet right after a request whose answer overfills the
        send buffer: the answer and the ERROR are delivered, then the
        connection really closes.
        """
        client = await self.connect()
        body = b"\0big" * 25_000
        assert client.transport is not None
        client.transport.write(request(P.ECHO_REQ, body) + request(0))
        packets = await client.packets(2)
        self.assertEqual(packets[0], (P.ECHO_RES, body))
        self.assertEqual(packets[1][0], P.ERROR)
        await client.lost.addTimeout(5, reactor)

    async def test_slowReader(self) -> None:
        """
        A client that floods ECHO_REQs and never reads makes the server
        stop reading it, with a bounded amount of output buffered; other
        clients are served meanwhile; once the flooder reads, it gets every
        answer.
        """
        flooder = await self.connect(keep=False)
        server = flooder.server  # type: ignore[attr-defined]
        # Small socket buffers, so the server's side fills up quickly.
        server.transport.getHandle().setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 65536
        )
        flooder.transport.getHandle().setsockopt(  # type: ignore[union-attr]
            socket.SOL_SOCKET, socket.SO_RCVBUF, 65536
        )
        flooder.transport.pauseProducing()  # type: ignore[union-attr]
        # Several packets per 64 KiB read: the transport then pauses its
        # producer several times for one resume.
        packet = request(P.ECHO_REQ, b"\0x" * 5000)
        count = 800
        for _ in range(count):
            flooder.transport.write(packet)  # type: ignore[union-attr]
        transport = server.transport

        def notReading() -> bool:
            return transport not in reactor.getReaders()

        await _eventually(notReading)
        buffered = len(transport.dataBuffer) - transport.offset + transport._tempDataLen
        # At most the transport's buffer size plus the answers to one read.
        self.assertLess(buffered, transport.bufferSize + 65536 + 2 * len(packet))

        other = await self.connect()
        worker = await self.connect()
        worker.send(P.CAN_DO, b"f")
        other.send(P.ECHO_REQ, b"ping")
        other.send(P.SUBMIT_JOB, b"f", b"", b"job")
        self.assertEqual(
            await other.packets(2), [(P.ECHO_RES, b"ping"), (P.JOB_CREATED, b"H:tcp:1")]
        )
        worker.send(P.GRAB_JOB)
        await worker.packets(1)
        worker.send(P.WORK_COMPLETE, b"H:tcp:1", b"ok")
        self.assertEqual(await other.packets(1), [(P.WORK_COMPLETE, b"H:tcp:1\0ok")])
        self.assertTrue(notReading())

        flooder.transport.resumeProducing()  # type: ignore[union-attr]
        await flooder.until(lambda: flooder.received >= count * len(packet), timeout=10)
        self.assertEqual(flooder.received, count * len(packet))
        self.assertFalse(notReading())
