"""
Test doubles shared by txgearman's unit tests: a peer that records what the
server core sends it, and a queue store whose calls the test answers by
hand.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from txgearman.codec import PacketType
from txgearman.interfaces import IPeer, IQueueStore, StoredJob, StoreError

__all__ = ["FakePeer", "FakeStore"]

Sent = tuple[PacketType, tuple[bytes, ...]]


@implementer(IPeer)
class FakePeer:
    """
    An L{IPeer} that records every packet as a C{(PacketType, args)} tuple.

    @ivar sent: the packets sent so far, oldest first.
    """

    def __init__(self) -> None:
        self.sent: list[Sent] = []

    def sendPacket(self, ptype: int, *args: bytes) -> None:
        self.sent.append((PacketType(ptype), args))

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


@implementer(IQueueStore)
class FakeStore:
    """
    An L{IQueueStore} that records its calls.

    With C{manual} set, L{add} returns a L{Deferred} that the test fires
    through L{succeedAdd} or L{failAdd}; otherwise it succeeds at once.
    With C{raiseOnAdd} set, L{add} raises instead of returning.

    @ivar added: C{(key, job)} for every call to L{add}, in call order
        (the key is assigned whether or not the add later succeeds).
    @ivar pending: the unfired Deferreds of manual adds, by key.
    @ivar removed: keys passed to L{remove}, in call order.
    @ivar records: jobs stored and not removed, by key: what a replay
        would restore.
    @ivar removeFails: whether L{remove} returns a failed Deferred.
    """

    description = "fake store for tests"

    def __init__(self, manual: bool = False) -> None:
        self.manual = manual
        self.raiseOnAdd: Exception | None = None
        self.removeFails = False
        self.added: list[tuple[int, StoredJob]] = []
        self.pending: dict[int, Deferred[object]] = {}
        self.removed: list[object] = []
        self.records: dict[object, StoredJob] = {}
        self._next = 0

    def start(self) -> Deferred[None]:
        return succeed(None)

    def stop(self) -> Deferred[None]:
        return succeed(None)

    def add(self, job: StoredJob) -> Deferred[object]:
        if self.raiseOnAdd is not None:
            raise self.raiseOnAdd
        self._next += 1
        key = self._next
        self.added.append((key, job))
        if not self.manual:
            self.records[key] = job
            return succeed(key)
        d: Deferred[object] = Deferred()
        self.pending[key] = d
        return d

    def lastKey(self) -> int:
        """The key of the latest call to L{add}."""
        return self.added[-1][0]

    def succeedAdd(self, key: int | None = None) -> None:
        """Acknowledge a manual add (the latest one by default)."""
        key = self.lastKey() if key is None else key
        self.records[key] = dict(self.added)[key]
        self.pending.pop(key).callback(key)

    def failAdd(self, reason: str = "disk on fire", key: int | None = None) -> None:
        """Fail a manual add (the latest one by default) with L{StoreError}."""
        key = self.lastKey() if key is None else key
        self.pending.pop(key).errback(StoreError(reason))

    def remove(self, key: object) -> Deferred[None]:
        self.removed.append(key)
        self.records.pop(key, None)
        if self.removeFails:
            return fail(StoreError("cannot remove"))
        return succeed(None)

    def replay(self, restore: Callable[[object, StoredJob], None]) -> Deferred[int]:
        count = 0
        for key, job in list(self.records.items()):
            restore(key, job)
            count += 1
        return succeed(count)
