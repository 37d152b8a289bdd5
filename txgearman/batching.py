# -*- test-case-name: txgearman.test.test_batching -*-
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

from typing import Any, Protocol

from twisted.internet import tcp
from twisted.internet.interfaces import IDelayedCall, IReactorTime, ITransport

__all__ = ["WriteBatcher", "writeNow"]


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


def writeNow(transport: ITransport, data: bytes) -> None:
    """
    Write C{data}: straight to the socket if the transport is a TCP
    connection with nothing buffered, with what the socket did not take (or
    everything, for other transports) handed to C{transport.write}.

    Order is kept: the direct path is taken only when the transport holds
    nothing older.  Errors are left to the transport, which meets them on
    its next write.
    """
    global directWrites
    if isinstance(transport, tcp.Connection):
        t: Any = transport
        # Twisted's FileDescriptor buffer: dataBuffer[offset:] plus the
        # _tempDataBuffer list (_tempDataLen bytes).  Should these ever
        # change, getattr's defaults make this a plain transport.write.
        if (
            getattr(t, "_tempDataLen", 1) == 0
            and getattr(t, "offset", -1) == len(getattr(t, "dataBuffer", b"x"))
            and t.connected
            and not t.disconnecting
        ):
            try:
                sent = t.socket.send(data)
            except OSError:
                sent = 0
            directWrites += 1
            if sent == len(data):
                return
            data = data[sent:]
    transport.write(data)
