"""
Tests for the server-wide budget for partly received large bodies: the
record (L{txgearman.server.bodies.BodyBudget}) on a clock, then the
protocol that reserves, waits and releases through it.  The real-TCP test
is C{tests/test_bodies_tcp.py}.
"""

from __future__ import annotations

from twisted.internet import task
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from txgearman.codec import LARGE_BODY
from txgearman.codec import PacketType as P
from txgearman.server.bodies import BodyBudget
from txgearman.server.core import JobServer
from txgearman.server.protocol import GearmanServerFactory
from txgearman.test.fakes import MemoryConnection, request

MB = 1024 * 1024


class Owner:
    """A connection, as far as the budget is concerned: what it was told."""

    def __init__(self, name: str, told: list[str]) -> None:
        self.name = name
        self.told = told

    def granted(self) -> None:
        self.told.append(f"{self.name} granted")

    def expired(self) -> None:
        self.told.append(f"{self.name} expired")

    def __repr__(self) -> str:
        return self.name


class BudgetTests(SynchronousTestCase):
    """
    L{BodyBudget} keeps the books of who holds and who waits, lets waiters
    in in the order they came, and gives up on them after its timeout.
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.budget = BodyBudget(self.clock, limit=100, timeout=5.0)
        self.told: list[str] = []

    def owner(self, name: str) -> Owner:
        return Owner(name, self.told)

    def reserve(self, owner: Owner, size: int) -> bool:
        return self.budget.reserve(owner, size, owner.granted, owner.expired)

    def test_fits(self) -> None:
        """
        Reservations that fit are made at once and counted, per owner;
        releasing returns them.
        """
        a, b = self.owner("a"), self.owner("b")
        self.assertTrue(self.reserve(a, 60))
        self.assertTrue(self.reserve(b, 40))
        self.assertEqual(self.budget.reserved, 100)
        self.assertEqual((self.budget.holding(a), self.budget.holding(b)), (60, 40))
        self.assertEqual(self.budget.holders(), 2)
        self.budget.release(a)
        self.assertEqual(self.budget.reserved, 40)
        self.assertEqual(self.budget.holding(a), 0)
        self.assertEqual(self.told, [])

    def test_waitsUntilRoom(self) -> None:
        """
        A reservation that does not fit waits; once enough is released, it
        is made and its owner told.
        """
        a, b = self.owner("a"), self.owner("b")
        self.reserve(a, 60)
        self.assertFalse(self.reserve(b, 50))
        self.assertEqual(self.budget.waiting(), [b])
        self.assertEqual(self.budget.holding(b), 0)
        self.budget.release(a)
        self.assertEqual(self.told, ["b granted"])
        self.assertEqual(self.budget.holding(b), 50)
        self.assertEqual(self.budget.waiting(), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_inArrivalOrder(self) -> None:
        """
        Waiters are let in oldest first, and a newcomer that would fit
        waits behind them, so that small bodies cannot starve a large one;
        room goes to nobody while the oldest waiter does not fit.
        """
        a, d = self.owner("a"), self.owner("d")
        b, c, e = self.owner("b"), self.owner("c"), self.owner("e")
        self.reserve(a, 60)
        self.reserve(d, 30)
        self.assertFalse(self.reserve(b, 50))
        self.assertFalse(self.reserve(c, 10))
        self.budget.release(d)
        self.assertEqual(self.told, [])
        self.assertFalse(self.reserve(e, 5))
        self.budget.release(a)
        self.assertEqual(self.told, ["b granted", "c granted", "e granted"])
        self.assertEqual(self.budget.reserved, 65)

    def test_timeout(self) -> None:
        """
        A waiter not let in within the timeout is told and waits no more;
        one behind it that fits is let in then.
        """
        a, b, c = self.owner("a"), self.owner("b"), self.owner("c")
        self.reserve(a, 60)
        self.reserve(b, 50)
        self.clock.advance(1)
        self.reserve(c, 40)
        self.clock.advance(3.9)
        self.assertEqual(self.told, [])
        self.clock.advance(0.1)
        self.assertEqual(self.told, ["c granted", "b expired"])
        self.assertEqual(self.budget.waiting(), [])
        self.assertEqual(self.budget.reserved, 100)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_waiterLeaves(self) -> None:
        """
        A waiter released (its connection gone) waits no more: its timer is
        cancelled and those behind it move up.
        """
        a, b, c = self.owner("a"), self.owner("b"), self.owner("c")
        self.reserve(a, 60)
        self.reserve(b, 50)
        self.reserve(c, 40)
        self.budget.release(b)
        self.assertEqual(self.told, ["c granted"])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.budget.release(b)
        self.budget.release(self.owner("stranger"))
        self.assertEqual(self.budget.reserved, 100)

    def test_grantedReleasesAtOnce(self) -> None:
        """
        An owner told it is let in may release (its body was complete)
        and reserve again from inside the call: the books are right, and
        the next waiter is let in too.
        """
        a, c = self.owner("a"), self.owner("c")
        self.reserve(a, 100)

        class Quick(Owner):
            def granted(inner) -> None:
                super().granted()
                self.budget.release(inner)
                self.assertFalse(self.reserve(inner, 100))

        b = Quick("b", self.told)
        self.reserve(b, 100)
        self.reserve(c, 100)
        self.budget.release(a)
        self.assertEqual(self.told, ["b granted", "c granted"])
        self.assertEqual(self.budget.holding(c), 100)
        self.assertEqual(self.budget.waiting(), [b])

    def test_refused(self) -> None:
        """
        A size that could never fit, a second reservation for one owner
        and an empty budget are programming errors.
        """
        a = self.owner("a")
        self.assertRaises(ValueError, self.reserve, a, 101)
        self.reserve(a, 10)
        self.assertRaises(ValueError, self.reserve, a, 10)
        self.assertRaises(ValueError, BodyBudget, self.clock, 0, 1.0)


class Connection(MemoryConnection):
    def paused(self) -> bool:
        return self.transport.producerState == "paused"


class ProtocolBodyTests(SynchronousTestCase):
    """
    A connection reserves a large body's announced size when its header
    arrives; one that does not fit stops being read until it does, or is
    closed after the timeout.  Small packets are never held up.
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.core = JobServer(self.clock, handlePrefix=b"H:test")
        self.factory = GearmanServerFactory(
            self.core, maxPacketSize=MB, maxBufferedBodies=2 * MB, bodyWaitTimeout=5.0
        )
        self.bodies = self.factory.bodies
        self._ports = iter(range(40000, 50000))

    def connect(self) -> Connection:
        return Connection(self.factory, next(self._ports))

    def echo(self, size: int = MB, fill: bytes = b"e") -> bytes:
        return request(P.ECHO_REQ, fill * size)

    def test_reservesAnnouncedSize(self) -> None:
        """
        From its header to its last byte, a large body holds its announced
        size in the budget, however little of it has come; a packet that
        arrives in one read reserves nothing.
        """
        conn = self.connect()
        packet = self.echo()
        conn.raw(packet[:100])
        self.assertEqual(self.bodies.holding(conn.proto), MB)
        conn.raw(packet[100:-1])
        self.assertEqual(self.bodies.holding(conn.proto), MB)
        conn.raw(packet[-1:])
        self.assertEqual(self.bodies.reserved, 0)
        self.assertEqual(conn.replies(), [(P.ECHO_RES, b"e" * MB)])
        conn.raw(packet)
        self.assertEqual(self.bodies.reserved, 0)
        self.assertEqual(len(conn.replies()), 1)

    def test_waitsWithReadingPaused(self) -> None:
        """
        A connection whose body does not fit stops being read; once another
        body is complete it is read again, and its packet is answered.
        """
        first, second, third = self.connect(), self.connect(), self.connect()
        packet = self.echo()
        first.raw(packet[:1000])
        second.raw(packet[:1000])
        third.raw(packet[:1000])
        self.assertFalse(first.paused() or second.paused())
        self.assertTrue(third.paused())
        self.assertEqual(self.bodies.waiting(), [third.proto])
        first.raw(packet[1000:])
        self.assertFalse(third.paused())
        self.assertEqual(self.bodies.holding(third.proto), MB)
        third.raw(packet[1000:])
        self.assertEqual(third.replies(), [(P.ECHO_RES, b"e" * MB)])
        self.assertEqual(self.bodies.reserved, MB)

    def test_smallPacketsFlow(self) -> None:
        """
        While large bodies wait, other connections' packets below
        L{LARGE_BODY}, even split across reads, are read and answered.
        """
        holders = [self.connect() for _ in range(2)]
        waiter = self.connect()
        for conn in [*holders, waiter]:
            conn.raw(self.echo()[:1000])
        self.assertTrue(waiter.paused())
        honest = self.connect()
        honest.send(P.ECHO_REQ, b"ping")
        self.assertEqual(honest.replies(), [(P.ECHO_RES, b"ping")])
        almost = self.echo(LARGE_BODY - 1, b"a")
        honest.raw(almost[:30000])
        honest.raw(almost[30000:])
        self.assertEqual(honest.replies(), [(P.ECHO_RES, b"a" * (LARGE_BODY - 1))])
        self.assertFalse(honest.paused())
        self.assertEqual(self.bodies.holding(honest.proto), 0)

    def test_fairOrder(self) -> None:
        """
        Waiting connections are read again in the order they began to wait.
        """
        holders = [self.connect() for _ in range(2)]
        waiters = [self.connect() for _ in range(3)]
        packet = self.echo()
        for conn in holders + waiters:
            conn.raw(packet[:1000])
        self.assertEqual(self.bodies.waiting(), [w.proto for w in waiters])
        holders[1].raw(packet[1000:])
        self.assertEqual([w.paused() for w in waiters], [False, True, True])
        waiters[0].raw(packet[1000:])
        self.assertEqual([w.paused() for w in waiters], [False, False, True])
        holders[0].lose()
        self.assertEqual([w.paused() for w in waiters], [False, False, False])

    def test_timeout(self) -> None:
        """
        A body that waits longer than C{bodyWaitTimeout} gets its
        connection C{ERROR SERVER_BUSY}, naming the option, and a close;
        the reason is logged.
        """
        holders = [self.connect() for _ in range(2)]
        waiter = self.connect()
        waiter.send(P.ECHO_REQ, b"before")
        for conn in [*holders, waiter]:
            conn.raw(self.echo()[:1000])
        with capturedLogs() as events:
            self.clock.advance(5)
        [(kind, body)] = waiter.replies()[1:]
        self.assertEqual(kind, P.ERROR)
        code, text = body.split(b"\0")
        self.assertEqual(code, b"SERVER_BUSY")
        self.assertIn(b"Packet body of 1048576 bytes waited 5s", text)
        self.assertIn(b"--max-buffered-bodies (2097152 bytes)", text)
        self.assertTrue(waiter.transport.disconnecting)
        self.assertEqual(self.bodies.waiting(), [])
        [message] = [formatEvent(e) for e in events if "--body-wait" in formatEvent(e)]
        self.assertIn(
            "1048576 bytes waited more than --body-wait-timeout (5s)", message
        )
        self.assertIn("2097152 bytes held by 2 connections", message)
        self.assertFalse(holders[0].transport.disconnecting)

    def test_lostConnectionReleases(self) -> None:
        """
        A connection that goes returns its reservation, or stops waiting,
        and lets go of its partial body at once.
        """
        holders = [self.connect() for _ in range(2)]
        waiters = [self.connect() for _ in range(2)]
        for conn in holders + waiters:
            conn.raw(self.echo()[:100000])
        waiters[0].lose()
        self.assertEqual(self.bodies.waiting(), [waiters[1].proto])
        self.assertEqual(waiters[0].proto.decoder.buffered, 0)
        holders[0].lose()
        self.assertEqual(holders[0].proto.decoder.buffered, 0)
        self.assertFalse(waiters[1].paused())
        self.assertEqual(self.bodies.holding(waiters[1].proto), MB)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_closedConnectionReleases(self) -> None:
        """
        A connection the server closes (it may take a while to go, if its
        peer does not read) returns its reservation at once.
        """
        holder = self.connect()
        holder.raw(self.echo()[:1000])
        holder.proto.close()
        self.assertEqual(self.bodies.reserved, 0)
        self.assertEqual(holder.proto.decoder.buffered, 0)

    def test_nextBodyInSameRead(self) -> None:
        """
        A read that completes one large body and begins another returns the
        first's reservation and makes the second's.
        """
        conn = self.connect()
        one, two = self.echo(), self.echo(MB // 2)
        conn.raw(one[:1000])
        conn.raw(one[1000:] + two[:1000])
        self.assertEqual(self.bodies.holding(conn.proto), len(two) - 12)
        conn.raw(two[1000:])
        self.assertEqual(self.bodies.reserved, 0)
        self.assertEqual(len(conn.replies()), 2)

    def test_otherPauseReasonsKept(self) -> None:
        """
        A full send buffer that clears while the body still waits does not
        make the connection read; room for the body while the send buffer
        is full does not either.
        """
        holders = [self.connect() for _ in range(2)]
        waiter = self.connect()
        for conn in [*holders, waiter]:
            conn.raw(self.echo()[:1000])
        waiter.proto.pauseProducing()
        waiter.proto.resumeProducing()
        self.assertTrue(waiter.paused())
        waiter.proto.pauseProducing()
        holders[0].lose()
        self.assertTrue(waiter.paused())
        waiter.proto.resumeProducing()
        self.assertFalse(waiter.paused())

    def test_largerThanBudget(self) -> None:
        """
        A packet larger than the whole budget (below C{maxPacketSize}) is
        refused at its header as too large, naming the budget's size.
        """
        self.factory = GearmanServerFactory(
            self.core, maxPacketSize=4 * MB, maxBufferedBodies=2 * MB
        )
        conn = self.connect()
        conn.raw(self.echo(3 * MB)[:1000])
        [(kind, body)] = conn.replies()
        self.assertEqual(kind, P.ERROR)
        self.assertEqual(
            body,
            b"ARGUMENT_TOO_LARGE\0packet of 3145728 bytes exceeds the limit of "
            b"2097152 bytes",
        )
        self.assertTrue(conn.transport.disconnecting)
        self.assertEqual(self.factory.bodies.reserved, 0)

    def test_defaultBudget(self) -> None:
        """
        By default the budget takes four packets of the largest size.
        """
        factory = GearmanServerFactory(self.core, maxPacketSize=MB)
        self.assertEqual(factory.bodies.limit, 4 * MB)
        self.assertEqual(factory.bodies.timeout, 30.0)
