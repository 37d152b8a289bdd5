"""
Tests for L{txgearman.server.batching}: output is written once per reactor turn
and per connection.  That it goes straight to the socket when nothing is
buffered, always in order, is tested over real TCP in
C{tests/test_batching_tcp.py}.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from txgearman.server.batching import WriteBatcher, writerFor


class Recorder:
    """A connection that records its flushes."""

    def __init__(self) -> None:
        self.flushes = 0

    def flushPending(self) -> None:
        self.flushes += 1


class WriteBatcherTests(SynchronousTestCase):
    def test_flushAtEndOfTurn(self) -> None:
        """
        Connections added during a turn are flushed once, by one call
        scheduled for the end of the turn.
        """
        clock = Clock()
        batcher = WriteBatcher(clock)
        first, second = Recorder(), Recorder()
        batcher.add(first)
        batcher.add(second)
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        self.assertEqual((first.flushes, second.flushes), (0, 0))
        clock.advance(0)
        self.assertEqual((first.flushes, second.flushes), (1, 1))
        self.assertEqual(clock.getDelayedCalls(), [])
        batcher.add(first)
        self.assertEqual(len(clock.getDelayedCalls()), 1)

    def test_flushNow(self) -> None:
        """
        An explicit flush writes everything and cancels the scheduled one.
        """
        clock = Clock()
        batcher = WriteBatcher(clock)
        conn = Recorder()
        batcher.add(conn)
        batcher.flush()
        self.assertEqual(conn.flushes, 1)
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_otherTransports(self) -> None:
        """
        Transports other than TCP connections get a plain write.
        """
        transport = StringTransport()
        writerFor(transport)(b"hello")
        self.assertEqual(transport.value(), b"hello")
