"""
Tests for L{txgearman.server.job}: the table of a job's legal moves,
checked against every move the server core makes.

The core does not look the table up (that would cost on the per-job
path), so these tests watch C{Job.state} instead: L{TransitionWatcher}
replaces the slot with a descriptor that sees every write, checks it is a
move of L{TRANSITIONS}, made by the L{Function} method the table names.
"""

from __future__ import annotations

import sys
from types import FrameType

from twisted.internet import task
from twisted.trial import unittest

from txgearman.codec import PacketType as T
from txgearman.codec import Priority
from txgearman.server.core import JobServer
from txgearman.server.function import Function
from txgearman.server.job import TRANSITIONS, Job, JobState
from txgearman.server.session import Session
from txgearman.test.fakes import FakePeer, FakeStore

P, S, Q, R, C, D = (
    JobState.PENDING,
    JobState.SCHEDULED,
    JobState.QUEUED,
    JobState.RUNNING,
    JobState.CANCELLED,
    JobState.DONE,
)
NOW = 1_700_000_000

Move = tuple[JobState, JobState]


def _entry(frame: FrameType | None) -> str | None:
    """
    The outermost L{Function} method on the stack from C{frame} up: the one
    the core called (C{release} calls C{push}, for instance).
    """
    entry = None
    while frame is not None and frame.f_code.co_qualname.startswith("Function."):
        entry = frame.f_code.co_qualname
        frame = frame.f_back
    return entry


class TransitionWatcher:
    """
    Sees every write of C{Job.state} while installed.

    @ivar moves: every move made, C{(from, to)}, in order.
    @ivar strict: raise L{AssertionError} at once on a move the table does
        not allow, or one made by another method than the table names
        (so that a property test fails at the step that made it).
    """

    def __init__(self, strict: bool = True) -> None:
        self.moves: list[Move] = []
        self.strict = strict
        self.wrong: list[tuple[Move, str | None]] = []

    def install(self, case: unittest.SynchronousTestCase) -> TransitionWatcher:
        """Watch C{Job.state} until C{case} ends."""
        slot = Job.__dict__["state"]
        watcher = self

        class Watched:
            def __get__(self, obj: Job | None, owner: type | None = None) -> object:
                if obj is None:
                    return self
                return slot.__get__(obj, owner)

            def __set__(self, obj: Job, value: JobState) -> None:
                try:
                    old = slot.__get__(obj, Job)
                except AttributeError:
                    # Job.__init__: every job starts pending.
                    assert value is P, value
                else:
                    watcher.saw((old, value), _entry(sys._getframe(1)))
                slot.__set__(obj, value)

        case.patch(Job, "state", Watched())
        return self

    def saw(self, move: Move, entry: str | None) -> None:
        self.moves.append(move)
        if TRANSITIONS.get(move) != entry:
            self.wrong.append((move, entry))
            if self.strict:
                raise AssertionError(f"{move} made by {entry}, not in TRANSITIONS")

    def take(self) -> list[Move]:
        """The moves made since the last call."""
        moves, self.moves = self.moves, []
        return moves


class TransitionTableTests(unittest.SynchronousTestCase):
    """
    L{TRANSITIONS} itself.
    """

    def test_startAndEnd(self) -> None:
        """
        Nothing moves back to C{PENDING}, nothing leaves C{DONE}, and every
        state but C{PENDING} can be reached.
        """
        self.assertNotIn(P, {to for _, to in TRANSITIONS})
        self.assertNotIn(D, {old for old, _ in TRANSITIONS})
        self.assertEqual({to for _, to in TRANSITIONS}, set(JobState) - {P})

    def test_namesFunctionMethods(self) -> None:
        """
        Each move is made by a method of L{Function} that exists.
        """
        for move, method in TRANSITIONS.items():
            owner, _, name = method.partition(".")
            self.assertEqual(owner, "Function", move)
            self.assertTrue(callable(getattr(Function, name, None)), method)

    def test_readOnly(self) -> None:
        """
        The table cannot be changed at run time.
        """
        with self.assertRaises(TypeError):
            TRANSITIONS[(D, P)] = "x"  # type: ignore[index]


class CoreMovesTests(unittest.SynchronousTestCase):
    """
    Each way through a job's life, driven through L{JobServer}, makes
    exactly the moves listed, each by the method L{TRANSITIONS} names.
    """

    #: The moves each test expects, for L{test_everyMoveMade}.
    expected: dict[str, list[Move]] = {
        "test_foreground": [(P, Q), (Q, R), (R, D)],
        "test_background": [(P, Q), (Q, R), (R, D)],
        "test_scheduled": [(P, S), (S, Q), (Q, R), (R, D)],
        "test_storeRefused": [(P, D)],
        "test_cancelledWhileStored": [(P, D)],
        "test_cancelledScheduled": [(P, S), (S, D)],
        "test_abandonedQueued": [(P, Q), (Q, D)],
        "test_requeued": [(P, Q), (Q, R), (R, Q), (Q, R), (R, D)],
        "test_cancelledRunning": [(P, Q), (Q, R), (R, C), (C, D)],
        "test_retriesExhausted": [(P, Q), (Q, R), (R, D)],
    }

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(NOW)
        self.store = FakeStore(manual=True)
        self.server = JobServer(self.clock, store=self.store, handlePrefix=b"H:t")
        self.addCleanup(self.server.stop)
        self.watcher = TransitionWatcher().install(self)

    def tearDown(self) -> None:
        self.assertEqual(self.watcher.wrong, [])
        expected = self.expected.get(self._testMethodName)
        if expected is not None:
            self.assertEqual(self.watcher.take(), expected)

    def connect(self) -> Session:
        return self.server.connect(FakePeer(), "127.0.0.1")

    def submit(self, background: bool = False, when: int = 0) -> tuple[Session, bytes]:
        client = self.connect()
        self.server.submitJob(
            client, b"fn", b"u", b"d", Priority.NORMAL, background, when
        )
        if background:
            self.store.succeedAdd()
        peer = client.peer
        assert isinstance(peer, FakePeer)
        [(ptype, args)] = peer.take()
        self.assertEqual(ptype, T.JOB_CREATED)
        return client, args[0]

    def worker(self) -> Session:
        session = self.connect()
        self.server.canDo(session, b"fn")
        return session

    def grab(self, worker: Session) -> bytes:
        self.server.grabJob(worker)
        peer = worker.peer
        assert isinstance(peer, FakePeer)
        [(ptype, args)] = peer.take()
        self.assertEqual(ptype, T.JOB_ASSIGN)
        return args[0]

    def test_foreground(self) -> None:
        """A foreground job is queued, runs and completes."""
        _, handle = self.submit()
        worker = self.worker()
        self.grab(worker)
        self.server.workComplete(worker, handle, b"")

    def test_background(self) -> None:
        """A background job is queued once stored, runs and fails."""
        _, handle = self.submit(background=True)
        worker = self.worker()
        self.grab(worker)
        self.server.workFail(worker, handle)

    def test_scheduled(self) -> None:
        """A job with a future time waits for it, then runs."""
        _, handle = self.submit(background=True, when=NOW + 10)
        self.clock.advance(10)
        worker = self.worker()
        self.grab(worker)
        self.server.workException(worker, handle, b"")

    def test_storeRefused(self) -> None:
        """A background job the store refuses ends before it starts."""
        client = self.connect()
        self.server.submitJob(client, b"fn", b"", b"d", Priority.NORMAL, True)
        self.store.failAdd()

    def test_cancelledWhileStored(self) -> None:
        """A job cancelled while the store writes it ends at once."""
        self.server.submitJob(None, b"fn", b"", b"d", Priority.NORMAL, True)
        [handle] = self.server.jobs
        self.assertTrue(self.server.cancelJob(handle))
        self.store.succeedAdd()

    def test_cancelledScheduled(self) -> None:
        """A scheduled job can be cancelled; its time passes unnoticed."""
        _, handle = self.submit(background=True, when=NOW + 10)
        self.assertTrue(self.server.cancelJob(handle))
        self.clock.advance(10)

    def test_abandonedQueued(self) -> None:
        """A queued foreground job whose client leaves is dropped."""
        client, _ = self.submit()
        self.server.disconnect(client)

    def test_requeued(self) -> None:
        """A job whose worker leaves is queued again, and runs again."""
        _, handle = self.submit()
        first = self.worker()
        self.grab(first)
        self.server.disconnect(first)
        second = self.worker()
        self.grab(second)
        self.server.workComplete(second, handle, b"")

    def test_cancelledRunning(self) -> None:
        """A running job cancelled ends once its worker reports."""
        _, handle = self.submit()
        worker = self.worker()
        self.grab(worker)
        self.assertTrue(self.server.cancelJob(handle))
        self.server.workComplete(worker, handle, b"")

    def test_retriesExhausted(self) -> None:
        """A job its worker fails once too often is dropped."""
        self.server.jobRetries = 1
        self.submit()
        worker = self.worker()
        self.grab(worker)
        self.server.cantDo(worker, b"fn")

    def test_everyMoveMade(self) -> None:
        """
        The tests above make every move of the table between them: the
        table lists no move the core never makes.
        """
        self.assertEqual(
            {move for moves in self.expected.values() for move in moves},
            set(TRANSITIONS),
        )


class JobBooksTests(unittest.SynchronousTestCase):
    """
    A job's own books: its clients, the store handshake, its timer and its
    failed attempts.
    """

    def setUp(self) -> None:
        self.job = Job(b"H:1", Function(b"fn"), b"", b"d", Priority.NORMAL, False)

    def session(self) -> Session:
        return Session(FakePeer(), 1, "-")

    def test_attach(self) -> None:
        """
        A client attaches once however often it asks; both sides know.
        """
        a, b = self.session(), self.session()
        self.job.attach(a)
        self.job.attach(b)
        self.job.attach(a)
        self.assertEqual(self.job.clients, [a, b])
        self.assertEqual(a.attached, {self.job: None})

    def test_detach(self) -> None:
        """
        A detached client neither waits for the result nor for the store.
        """
        a, b = self.session(), self.session()
        self.job.attach(a)
        self.job.attach(b)
        self.job.storing(a)
        self.job.addWaiter(b, "place")
        self.job.detach(a)
        self.assertEqual(self.job.clients, [b])
        self.assertEqual(a.attached, {})
        self.assertEqual(self.job.waiters, [(b, "place")])

    def test_releaseClients(self) -> None:
        """
        When the job ends no client waits for it any more.
        """
        a = self.session()
        self.job.attach(a)
        self.job.releaseClients()
        self.assertEqual((self.job.clients, a.attached), ([], {}))

    def test_stored(self) -> None:
        """
        A job being stored becomes a background job; once stored it has
        its key, and the waiters are handed over once.
        """
        a, b = self.session(), self.session()
        self.job.storing(a)
        self.assertTrue(self.job.background)
        self.job.keepPlace(a, "first")
        self.job.addWaiter(b, "second")
        self.assertEqual(self.job.stored(7), [(a, "first"), (b, "second")])
        self.assertEqual((self.job.storeKey, self.job.waiters), (7, None))
        self.assertEqual(self.job.stored(7), [])
        self.assertEqual(self.job.unstore(), 7)
        self.assertIsNone(self.job.storeKey)

    def test_storingWithoutSubmitter(self) -> None:
        """
        Nobody waits for a job submitted from no connection, but it is
        still being stored.
        """
        self.job.storing(None)
        self.assertEqual(self.job.waiters, [])

    def test_notStored(self) -> None:
        """
        A job the store refused is no background job, and its waiters are
        handed over.
        """
        a = self.session()
        self.job.storing(a)
        self.assertEqual(self.job.notStored(), [(a, None)])
        self.assertFalse(self.job.background)
        self.assertIsNone(self.job.waiters)

    def test_stopTimer(self) -> None:
        """
        Stopping the timer cancels it if it is pending, and forgets it
        either way.
        """
        clock = task.Clock()
        fired: list[None] = []
        self.job.armTimer(clock.callLater(5, fired.append, None))
        self.job.stopTimer()
        clock.advance(5)
        self.assertEqual((fired, clock.getDelayedCalls()), ([], []))
        self.assertIsNone(self.job.timer)
        self.job.armTimer(clock.callLater(5, fired.append, None))
        clock.advance(5)
        self.job.stopTimer()
        self.assertEqual(fired, [None])
        self.assertIsNone(self.job.timer)
        self.job.stopTimer()

    def test_attemptFailed(self) -> None:
        """
        A failed attempt is counted and the progress starts again.
        """
        self.job.setProgress(3, 4)
        self.assertEqual((self.job.numerator, self.job.denominator), (3, 4))
        self.assertEqual(self.job.attemptFailed(), 1)
        self.assertEqual(self.job.attemptFailed(), 2)
        self.assertEqual((self.job.numerator, self.job.denominator), (0, 0))
        self.assertEqual(self.job.retries, 2)
