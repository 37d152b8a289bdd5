# -*- test-case-name: txgearman.test.test_batching,tests.test_batching_tcp -*-
"""
Write what the server sends to a connection once per reactor turn.

One client packet can make the server write to several connections (a
JOB_CREATED to the client, NOOPs to sleeping workers), and one read can hold
hundreds of packets.  Handing each packet to C{transport.write} costs, per
connection and turn, a writability registration, a poll wake-up and a
C{doWrite}: most of a Python server's time at Gearman's packet rates.  So
the protocol queues its packets here; at the end of the turn each
connection's packets go out joined, with one C{send} straight to the socket
when nothing is waiting in the transport's own buffer, else through
C{transport.write} as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet import tcp
from twisted.internet.interfaces import IDelayedCall, IReactorTime, ITransport

__all__ = ["WriteBatcher", "writerFor"]


class _Flushable(Protocol):
    def flushPending(self) -> None: ...


class WriteBatcher:
    """
    Remembers which connections have output queued in this turn and
    flushes them all at its end (C{callLater(0)} runs before the reactor
    polls again).
    """

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._dirty: list[_Flushable] = []
        self._call: IDelayedCall | None = None

    def add(self, connection: _Flushable) -> None:
        """
        C{connection} queued its first output of this turn.
        """
        self._dirty.append(connection)
        if self._call is None:
            self._call = self._clock.callLater(0, self.flush)

    def flush(self) -> None:
        """
        Write every queued output now.
        """
        if self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None
        dirty, self._dirty = self._dirty, []
        for connection in dirty:
            connection.flushPending()


#: Counts writes that went straight to a socket; the tests read it to make
#: sure the fast path is taken with the installed Twisted.
directWrites = 0


def writerFor(transport: ITransport) -> Callable[[bytes], None]:
    """
    How to write to C{transport} now: for a TCP connection, a function
    that sends straight to the socket when the transport has nothing
    buffered, and hands what the socket did not take (or everything, when
    something older is buffered) to C{transport.write}; for other
    transports, C{transport.write}.

    Order is kept: the direct path is taken only when the transport holds
    nothing older.  Errors are left to the transport, which meets them on
    its next write.  Which path applies is decided once per connection.
    """
    t: Any = transport
    # Twisted's FileDescriptor buffer: dataBuffer[offset:] plus the
    # _tempDataBuffer list (_tempDataLen bytes).  Should these ever change,
    # this falls back to plain transport.write.
    if not (
        isinstance(transport, tcp.Connection)
        and all(
            hasattr(t, name)
            for name in ("_tempDataLen", "offset", "dataBuffer", "socket")
        )
    ):
        return transport.write
    send = t.socket.send
    write = transport.write

    def writeNow(data: bytes) -> None:
        global directWrites
        if (
            t._tempDataLen == 0
            and t.offset == len(t.dataBuffer)
            and t.connected
            and not t.disconnecting
        ):
            try:
                sent = send(data)
            except OSError:
                sent = 0
            directWrites += 1
            if sent == len(data):
                return
            data = data[sent:]
        write(data)

    return writeNow
