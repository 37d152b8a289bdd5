"""
Test doubles shared by txgearman's tests: a peer that records what the
server core sends it, a queue store whose calls the test answers by hand, a
server connection on an in-memory transport, a raw packet peer, and a work
function whose jobs end when the test says.  None opens a socket; the
system tests in C{tests/} use them too.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from zope.interface import implementer

from txgearman.client.worker import WorkerJob
from txgearman.codec import AdminLine, Decoder, Packet, PacketType, encodeRequest
from txgearman.server.interfaces import IPeer
from txgearman.server.ordering import OrderedOutput, Place
from txgearman.server.protocol import GearmanServerFactory, GearmanServerProtocol
from txgearman.store.interfaces import ICallbackStore, StoredJob, StoreError
from txgearman.store.memory import MemoryQueueStore

__all__ = [
    "FakePeer",
    "FakeStore",
    "Gate",
    "PacketPeer",
    "MemoryConnection",
    "RecordingTransport",
    "ThrottledTransport",
    "request",
    "response",
    "splitResponses",
]

_HEADER = struct.Struct(">4sII")
REQ = b"\0REQ"
RES = b"\0RES"


def request(ptype: int, *args: bytes, magic: bytes = REQ) -> bytes:
    """
    Encode a packet by hand (independently of L{txgearman.codec}).
    """
    body = b"\0".join(args)
    return _HEADER.pack(magic, ptype, len(body)) + body


def response(ptype: int, *args: bytes) -> bytes:
    """Encode a server packet by hand."""
    return request(ptype, *args, magic=RES)


def splitResponses(data: bytes) -> list[tuple[PacketType, bytes]]:
    """
    Split what the server wrote into C{(type, raw body)} pairs.
    """
    packets = []
    while data:
        magic, ptype, size = _HEADER.unpack_from(data)
        assert magic == RES, data
        body = data[12 : 12 + size]
        assert len(body) == size, "truncated response"
        packets.append((PacketType(ptype), body))
        data = data[12 + size :]
    return packets


class RecordingTransport(StringTransport):
    """
    A L{StringTransport} that records C{setTcpNoDelay} and
    C{setTcpKeepAlive} calls.
    """

    def __init__(self, peerPort: int = 40000) -> None:
        super().__init__(peerAddress=IPv4Address("TCP", "127.0.0.1", peerPort))
        self.noDelay: list[bool] = []
        self.keepAlive: list[bool] = []

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.noDelay.append(enabled)

    def setTcpKeepAlive(self, enabled: bool) -> None:
        self.keepAlive.append(enabled)


class ThrottledTransport(RecordingTransport):
    """
    A L{RecordingTransport} whose buffer drains only as the peer reads
    (L{read}), and which treats its producer as Twisted's TCP transport
    does: paused by every write that leaves more than C{bufferSize} bytes
    buffered, resumed once the peer has read them all.

    @ivar taken: every byte ever written, read or not.
    """

    def __init__(self, peerPort: int = 40000, bufferSize: int = 64 * 1024) -> None:
        super().__init__(peerPort)
        self.bufferSize = bufferSize
        self.taken = 0
        self._paused = False

    def write(self, data: bytes) -> None:
        super().write(data)
        self.taken += len(data)
        self._maybePause()

    def writeSequence(self, data: Iterable[bytes]) -> None:
        for chunk in data:
            self.write(chunk)

    def _maybePause(self) -> None:
        if self.producer is not None and len(self.io.getvalue()) > self.bufferSize:
            self._paused = True
            self.producer.pauseProducing()

    def buffered(self) -> int:
        """Bytes written and not read yet."""
        return len(self.io.getvalue())

    def read(self, size: int | None = None) -> bytes:
        """
        The peer reads C{size} bytes (all by default); if that empties the
        buffer, a paused producer is resumed.
        """
        data = self.value()
        size = len(data) if size is None else size
        taken, rest = data[:size], data[size:]
        self.clear()
        self.io.write(rest)
        if not rest and self._paused and self.producer is not None:
            self._paused = False
            self.producer.resumeProducing()
        return taken


class MemoryConnection:
    """
    A L{GearmanServerProtocol} from C{factory} on a L{RecordingTransport}
    (or the one given), with helpers to talk to it.
    """

    def __init__(
        self,
        factory: GearmanServerFactory,
        peerPort: int = 40000,
        transport: RecordingTransport | None = None,
    ) -> None:
        self.transport = (
            transport if transport is not None else RecordingTransport(peerPort)
        )
        proto = factory.buildProtocol(self.transport.getPeer())
        assert isinstance(proto, GearmanServerProtocol)
        self.proto = proto
        proto.makeConnection(self.transport)

    def send(self, ptype: int, *args: bytes) -> None:
        self.proto.dataReceived(request(ptype, *args))

    def raw(self, data: bytes) -> None:
        self.proto.dataReceived(data)

    def output(self) -> bytes:
        """
        Everything written since the last call, once the current reactor
        turn has ended (the factory's batcher, if any, has flushed).
        """
        if self.proto.factory.batcher is not None:
            self.proto.factory.batcher.flush()
        data = self.transport.value()
        self.transport.clear()
        return data

    def replies(self) -> list[tuple[PacketType, bytes]]:
        """The packets written since the last call."""
        return splitResponses(self.output())

    def admin(self, line: bytes) -> bytes:
        """Send an admin line; return the reply."""
        self.output()
        self.raw(line + b"\n")
        return self.output()

    def lose(self) -> None:
        self.proto.connectionLost(Failure(ConnectionError("gone")))


Sent = tuple[PacketType, tuple[bytes, ...]]


@implementer(IPeer)
class FakePeer:
    """
    An L{IPeer} that records every packet as a C{(PacketType, args)} tuple.

    @ivar sent: the packets sent so far, oldest first.
    @ivar reading: whether the core lets this peer's requests be read.
    """

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.output: OrderedOutput[Sent] = OrderedOutput(self._record)
        self.reading = True

    def pauseReading(self) -> None:
        self.reading = False

    def resumeReading(self) -> None:
        self.reading = True

    def _record(self, packet: Sent) -> None:
        self.sent.append(packet)

    def sendPacket(self, ptype: int, *args: bytes) -> None:
        self.output.send((PacketType(ptype), args))

    def reservePacket(self) -> object:
        return self.output.reserve()

    def sendReserved(self, place: object, ptype: int, *args: bytes) -> None:
        assert isinstance(place, Place)
        self.output.fill(place, (PacketType(ptype), args))

    def take(self) -> list[Sent]:
        """
        Return the packets sent since the last call, and forget them.
        """
        sent, self.sent = self.sent, []
        return sent

    def types(self) -> list[PacketType]:
        """
        Return the types of the packets sent since the last L{take}, and
        forget them.
        """
        return [ptype for ptype, _ in self.take()]


class FakeStore(MemoryQueueStore):
    """
    A L{MemoryQueueStore} that records its calls.

    With C{manual} set, L{add} returns a L{Deferred} that the test fires
    through L{succeedAdd} or L{failAdd}; otherwise it succeeds at once.
    With C{raiseOnAdd} set, L{add} raises instead of returning.

    @ivar added: C{(key, job)} for every call to L{add}, in call order
        (the key is assigned whether or not the add later succeeds).
    @ivar pending: the unfired Deferreds of manual adds, by key.
    @ivar removed: keys passed to L{remove}, in call order.
    @ivar records: jobs stored and not removed, by key: what a replay
        would restore.
    """

    description = "fake store for tests"

    def __init__(self, manual: bool = False) -> None:
        super().__init__()
        self.manual = manual
        self.raiseOnAdd: Exception | None = None
        self.added: list[tuple[int, StoredJob]] = []
        self.pending: dict[int, Deferred[object]] = {}
        self.removed: list[object] = []

    @property
    def records(self) -> dict[object, StoredJob]:
        return self.jobs

    def add(self, job: StoredJob) -> Deferred[object]:
        if self.raiseOnAdd is not None:
            raise self.raiseOnAdd
        if not self.manual:
            d = super().add(job)
            self.added.append((self._next, job))
            return d
        self._next += 1
        key = self._next
        self.added.append((key, job))
        pending: Deferred[object] = Deferred()
        self.pending[key] = pending
        return pending

    def lastKey(self) -> int:
        """The key of the latest call to L{add}."""
        return self.added[-1][0]

    def succeedAdd(self, key: int | None = None) -> None:
        """Acknowledge a manual add (the latest one by default)."""
        key = self.lastKey() if key is None else key
        self.jobs[key] = dict(self.added)[key]
        self.pending.pop(key).callback(key)

    def failAdd(self, reason: str = "disk on fire", key: int | None = None) -> None:
        """Fail a manual add (the latest one by default) with L{StoreError}."""
        key = self.lastKey() if key is None else key
        self.pending.pop(key).errback(StoreError(reason))

    def remove(self, key: object) -> None:
        self.removed.append(key)
        super().remove(key)


@implementer(ICallbackStore)
class CallbackFakeStore(FakeStore):
    """
    A L{FakeStore} that also answers adds by calling back
    (L{ICallbackStore}), as the SQLite store does; the core then uses that
    rather than L{add}'s Deferred.

    @ivar viaCallbacks: how many adds came through L{addWithCallbacks}.
    """

    viaCallbacks = 0

    def addWithCallbacks(
        self,
        job: StoredJob,
        stored: Callable[[object, Any], object],
        failed: Callable[[Failure, Any], object],
        context: Any,
    ) -> None:
        self.viaCallbacks += 1
        self.add(job).addCallbacks(
            stored, failed, callbackArgs=(context,), errbackArgs=(context,)
        )


class PacketPeer(Protocol):
    """
    A Gearman client or worker speaking raw packets: it sends what it is
    told and keeps every packet and admin line it receives.  Tests add how
    they wait for them (a pump's flush, or the real reactor).
    """

    def __init__(self) -> None:
        self.decoder = Decoder()
        self.packets: list[Packet] = []
        self.lines: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.decoder.feed(data)
        while (item := self.decoder.next()) is not None:
            if isinstance(item, AdminLine):
                self.lines.append(item.line)
            else:
                self.packets.append(item)

    def send(self, ptype: PacketType, *args: bytes) -> None:
        assert self.transport is not None
        self.transport.write(encodeRequest(ptype, *args))


class Gate:
    """
    A work function whose jobs end when the test says so, counting how
    many run at once.

    @ivar waiting: the Deferreds of the jobs running now, oldest first.
    @ivar jobs: every job started, in order.
    @ivar most: the largest number of jobs that ran at once.
    @ivar cancelled: the handles of the jobs whose Deferred was cancelled.
    """

    def __init__(self) -> None:
        self.waiting: list[Deferred[bytes]] = []
        self.jobs: list[WorkerJob] = []
        self.running = 0
        self.most = 0
        self.cancelled: list[bytes] = []

    def __call__(self, job: WorkerJob) -> Deferred[bytes]:
        self.jobs.append(job)
        self.running += 1
        self.most = max(self.most, self.running)
        d: Deferred[bytes] = Deferred(lambda d: self.cancelled.append(job.handle))

        def ended(result: object) -> object:
            self.running -= 1
            return result

        self.waiting.append(d)
        return d.addBoth(ended)

    def release(self, result: bytes = b"done") -> None:
        """End the oldest running job."""
        self.waiting.pop(0).callback(result)
