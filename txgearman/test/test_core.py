"""
Tests for L{txgearman.server.core.JobServer}, the server's rules without sockets:
driven with fake peers, a fake store and a L{task.Clock}.
"""

from __future__ import annotations

import tracemalloc
from typing import Any

from twisted.internet import task
from twisted.logger import capturedLogs, formatEvent
from twisted.trial import unittest

from txgearman.codec import PacketType, Priority
from txgearman.server.core import JobServer, TooManyFunctions
from txgearman.server.function import Function, FunctionStatus, PriorityStatus
from txgearman.server.job import JobInfo, JobState
from txgearman.server.schedule import CronSchedule
from txgearman.server.session import Session, WorkerInfo
from txgearman.server.wakeup import WAKE_PATIENCE
from txgearman.store.interfaces import StoredJob, StoreError
from txgearman.test.fakes import CallbackFakeStore, FakePeer, FakeStore

T = PacketType
HIGH, NORMAL, LOW = Priority.HIGH, Priority.NORMAL, Priority.LOW

#: Where the test clock starts: a plausible "now", in epoch seconds.
NOW = 1_700_000_000

NOT_FOUND_RESULT = (b"JOB_NOT_FOUND", b"Job given in work result not found")
NOT_FOUND_DATA = (b"JOB_NOT_FOUND", b"Job does not exist on server")
NOT_FOUND_EXCEPTION = (
    b"JOB_NOT_FOUND",
    b"An exception was received for a job that does not exist",
)


def peerOf(session: Session) -> FakePeer:
    """The fake peer behind a session."""
    peer = session.peer
    assert isinstance(peer, FakePeer)
    return peer


class CoreTestCase(unittest.SynchronousTestCase):
    """
    Builds a L{JobServer} on a clock and a L{FakeStore}, with helpers that
    act as clients and workers.
    """

    jobRetries = -1
    workerWakeup: int | None = 0
    manualStore = False
    storeClass: type[FakeStore] = FakeStore

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(NOW)
        self.store = self.storeClass(manual=self.manualStore)
        self.server = JobServer(
            self.clock,
            store=self.store,
            jobRetries=self.jobRetries,
            workerWakeup=self.workerWakeup,
            handlePrefix=b"H:test",
        )
        self.addCleanup(self.server.stop)

    def connect(self) -> Session:
        """A new connection."""
        return self.server.connect(FakePeer(), "127.0.0.1")

    def worker(self, *names: bytes, timeout: float | None = None) -> Session:
        """A new connection that can do C{names}."""
        session = self.connect()
        for name in names:
            self.server.canDo(session, name, timeout)
        return session

    def sleeper(self, *names: bytes) -> Session:
        """A new worker for C{names} that sent PRE_SLEEP with nothing to do."""
        session = self.worker(*names)
        self.server.preSleep(session)
        self.assertEqual(peerOf(session).take(), [])
        return session

    def submit(
        self,
        name: bytes = b"fn",
        unique: bytes = b"",
        data: bytes = b"data",
        priority: Priority = NORMAL,
        background: bool = False,
        session: Session | None = None,
        when: int = 0,
        reducer: bytes | None = None,
    ) -> bytes:
        """
        Submit a job from C{session} (a new connection by default), check
        the answer is one JOB_CREATED, and return the handle.
        """
        if session is None:
            session = self.connect()
        self.server.submitJob(
            session, name, unique, data, priority, background, when, reducer
        )
        sent = peerOf(session).take()
        self.assertEqual(len(sent), 1, sent)
        self.assertEqual(sent[0][0], T.JOB_CREATED, sent)
        return sent[0][1][0]

    def client(self) -> Session:
        """A new connection, to submit foreground jobs from."""
        return self.connect()

    def grab(
        self, session: Session, kind: PacketType = T.GRAB_JOB
    ) -> tuple[T, tuple[bytes, ...]]:
        """Grab a job for C{session}; return the one packet it got."""
        self.server.grabJob(session, kind)
        sent = peerOf(session).take()
        self.assertEqual(len(sent), 1, sent)
        return sent[0]

    def grabHandle(self, session: Session) -> bytes | None:
        """Grab a job; return its handle, or C{None} for NO_JOB."""
        ptype, args = self.grab(session)
        if ptype is T.NO_JOB:
            return None
        self.assertEqual(ptype, T.JOB_ASSIGN)
        return args[0]

    def grabAll(self, session: Session) -> list[bytes]:
        """Grab until NO_JOB; return the handles in grab order."""
        handles = []
        while (handle := self.grabHandle(session)) is not None:
            handles.append(handle)
        return handles


class SubmitTests(CoreTestCase):
    """
    Submitting jobs, and the handles they get.
    """

    def test_handlesIncrease(self) -> None:
        """
        Handles are C{<prefix>:<n>}, n counting from 1 across functions and
        kinds of submission.
        """
        self.assertEqual(self.submit(), b"H:test:1")
        self.assertEqual(self.submit(name=b"other", background=True), b"H:test:2")
        self.assertEqual(self.submit(priority=LOW), b"H:test:3")

    def test_jobAssigned(self) -> None:
        """
        A submitted job reaches a worker of its function as
        C{JOB_ASSIGN(handle, function, data)}, NULs in the data kept.
        """
        handle = self.submit(data=b"a\0b")
        worker = self.worker(b"fn")
        self.assertEqual(self.grab(worker), (T.JOB_ASSIGN, (handle, b"fn", b"a\0b")))

    def test_otherFunctionNotAssigned(self) -> None:
        """
        A worker gets NO_JOB for jobs of functions it cannot do, and when
        it can do nothing at all.
        """
        self.submit(name=b"fn")
        self.assertEqual(self.grab(self.worker(b"other")), (T.NO_JOB, ()))
        self.assertEqual(self.grab(self.worker()), (T.NO_JOB, ()))

    def test_functionCreated(self) -> None:
        """
        Submitting to an unknown function creates it, in creation order
        after those registered by workers.
        """
        self.worker(b"w")
        self.submit(name=b"s")
        self.assertEqual(list(self.server.functions), [b"w", b"s"])
        self.assertEqual(self.server.functions[b"s"].total, 1)

    def test_foregroundNotStored(self) -> None:
        """
        Foreground jobs never touch the store, however they end.
        """
        worker = self.worker(b"fn")
        handles = [self.submit(unique=b"u%d" % i) for i in range(4)]
        for _ in range(3):
            self.grabHandle(worker)
        self.server.workComplete(worker, handles[0], b"r")
        self.server.workFail(worker, handles[1])
        self.server.workException(worker, handles[2], b"e")
        self.server.cancelJob(handles[3])
        self.assertEqual(self.store.added, [])
        self.assertEqual(self.store.removed, [])

    def test_backgroundStored(self) -> None:
        """
        A background job is stored with everything needed to replay it.
        """
        self.submit(name=b"fn", unique=b"u", data=b"d\0", priority=LOW, background=True)
        self.submit(name=b"fn", unique=b"", data=b"x", background=True, when=NOW + 5)
        self.submit(name=b"fn", unique=b"r", data=b"y", background=True, reducer=b"red")
        self.assertEqual(
            [job for _, job in self.store.added],
            [
                StoredJob(b"fn", b"u", b"d\0", 2, 0, None),
                StoredJob(b"fn", b"", b"x", 1, NOW + 5, None),
                StoredJob(b"fn", b"r", b"y", 1, 0, b"red"),
            ],
        )

    def test_noSubmitter(self) -> None:
        """
        A job may be submitted with no session (from the admin side): it is
        queued and nobody is answered.
        """
        self.server.submitJob(None, b"fn", b"", b"d", NORMAL, True)
        self.assertEqual(self.grab(self.worker(b"fn"))[0], T.JOB_ASSIGN)

    def test_uniqueTooLarge(self) -> None:
        """
        A unique id of 65 bytes is refused with ARGUMENT_TOO_LARGE and
        creates nothing.
        """
        client = self.client()
        self.server.submitJob(client, b"fn", b"u" * 65, b"d", NORMAL, False)
        self.assertEqual(
            peerOf(client).take(),
            [(T.ERROR, (b"ARGUMENT_TOO_LARGE", b"Unique value too large"))],
        )
        self.server.submitJob(client, b"fn", b"u" * 65, b"d", NORMAL, True)
        self.assertEqual(peerOf(client).take()[0][0], T.ERROR)
        self.assertEqual(self.server.jobs, {})
        self.assertEqual(self.store.added, [])

    def test_reducerTooLarge(self) -> None:
        """
        A reducer name of 65 bytes is refused with ARGUMENT_TOO_LARGE.
        """
        client = self.client()
        self.server.submitJob(client, b"fn", b"u", b"d", NORMAL, False, 0, b"r" * 65)
        self.assertEqual(peerOf(client).take()[0][1][0], b"ARGUMENT_TOO_LARGE")
        self.assertEqual(self.server.jobs, {})

    def test_handlePrefixTooLong(self) -> None:
        """
        A handle prefix that would make handles longer than gearmand's
        63 bytes is refused.
        """
        self.assertRaises(ValueError, JobServer, self.clock, handlePrefix=b"H" * 60)


class PriorityTests(CoreTestCase):
    """
    Which job a worker gets: HIGH before NORMAL before LOW, FIFO within a
    priority, globally across the worker's functions, round-robin between
    functions that tie.
    """

    def test_priorityThenFifo(self) -> None:
        """
        Within a function, jobs go out by priority, then in submission order.
        """
        order = [
            (LOW, b"l1"),
            (NORMAL, b"n1"),
            (HIGH, b"h1"),
            (LOW, b"l2"),
            (HIGH, b"h2"),
        ]
        handles = {
            data: self.submit(data=data, priority=p, background=p is LOW)
            for p, data in order
        }
        worker = self.worker(b"fn")
        got = self.grabAll(worker)
        self.assertEqual(got, [handles[d] for d in (b"h1", b"h2", b"n1", b"l1", b"l2")])

    def test_globalPriority(self) -> None:
        """
        A HIGH job of the worker's second function goes out before a LOW
        job of its first.
        """
        low = self.submit(name=b"a", priority=LOW)
        normal = self.submit(name=b"c", priority=NORMAL)
        high = self.submit(name=b"b", priority=HIGH)
        worker = self.worker(b"a", b"b", b"c")
        self.assertEqual(self.grabAll(worker), [high, normal, low])

    def test_roundRobin(self) -> None:
        """
        Between functions with jobs of the same priority, the worker's
        functions take turns, starting in registration order.
        """
        a = [self.submit(name=b"a", data=b"%d" % i) for i in range(3)]
        b = [self.submit(name=b"b", data=b"%d" % i) for i in range(2)]
        worker = self.worker(b"a", b"b")
        self.assertEqual(self.grabAll(worker), [a[0], b[0], a[1], b[1], a[2]])

    def test_roundRobinPerPriority(self) -> None:
        """
        Round-robin never overrides priority.
        """
        a1 = self.submit(name=b"a")
        b1 = self.submit(name=b"b", priority=HIGH)
        b2 = self.submit(name=b"b", priority=HIGH)
        a2 = self.submit(name=b"a")
        worker = self.worker(b"a", b"b")
        self.assertEqual(self.grabAll(worker), [b1, b2, a1, a2])


class CoalescingTests(CoreTestCase):
    """
    Submits with the same function and unique id share one job.
    """

    def complete(self, handle: bytes, result: bytes = b"result") -> Session:
        """Have a new worker grab C{handle} and complete it."""
        worker = self.worker(b"fn")
        self.assertEqual(self.grabHandle(worker), handle)
        self.server.workComplete(worker, handle, result)
        return worker

    def test_backgroundBackground(self) -> None:
        """
        Two background submits with one unique id get one handle, one job
        and one stored record.
        """
        h1 = self.submit(unique=b"u", background=True)
        h2 = self.submit(unique=b"u", data=b"other", background=True)
        self.assertEqual(h1, h2)
        self.assertEqual(len(self.store.added), 1)
        self.assertEqual(self.server.functions[b"fn"].total, 1)

    def test_backgroundForeground(self) -> None:
        """
        A foreground submit that matches a background job attaches to it
        and gets its result.
        """
        handle = self.submit(unique=b"u", background=True)
        client = self.client()
        self.assertEqual(self.submit(unique=b"u", session=client), handle)
        self.complete(handle)
        self.assertEqual(
            peerOf(client).take(), [(T.WORK_COMPLETE, (handle, b"result"))]
        )

    def test_foregroundForeground(self) -> None:
        """
        Two foreground clients with one unique id both get the result of
        the one job, which runs once.
        """
        c1, c2 = self.client(), self.client()
        handle = self.submit(unique=b"u", session=c1)
        self.assertEqual(self.submit(unique=b"u", session=c2, data=b"ignored"), handle)
        worker = self.complete(handle)
        self.assertEqual(self.grabHandle(worker), None)
        for client in (c1, c2):
            self.assertEqual(
                peerOf(client).take(), [(T.WORK_COMPLETE, (handle, b"result"))]
            )

    def test_sameClientTwice(self) -> None:
        """
        A client submitting the same unique id twice gets one result.
        """
        client = self.client()
        handle = self.submit(unique=b"u", session=client)
        self.assertEqual(self.submit(unique=b"u", session=client), handle)
        self.complete(handle)
        self.assertEqual(len(peerOf(client).take()), 1)

    def test_joinRunningJob(self) -> None:
        """
        A foreground submit matching a running job attaches to it and gets
        the packets sent from then on only.
        """
        c1, c2 = self.client(), self.client()
        handle = self.submit(unique=b"u", session=c1)
        worker = self.worker(b"fn")
        self.grabHandle(worker)
        self.server.workStatus(worker, handle, b"1", b"4")
        self.assertEqual(self.submit(unique=b"u", session=c2), handle)
        self.server.workStatus(worker, handle, b"2", b"4")
        self.server.workComplete(worker, handle, b"r")
        self.assertEqual(
            peerOf(c1).take(),
            [
                (T.WORK_STATUS, (handle, b"1", b"4")),
                (T.WORK_STATUS, (handle, b"2", b"4")),
                (T.WORK_COMPLETE, (handle, b"r")),
            ],
        )
        self.assertEqual(
            peerOf(c2).take(),
            [(T.WORK_STATUS, (handle, b"2", b"4")), (T.WORK_COMPLETE, (handle, b"r"))],
        )

    def test_differentFunction(self) -> None:
        """
        The same unique id under another function is another job.
        """
        self.assertNotEqual(
            self.submit(name=b"a", unique=b"u"), self.submit(name=b"b", unique=b"u")
        )

    def test_emptyUniqueNeverCoalesces(self) -> None:
        """
        Submits without a unique id are always new jobs, even with the same
        payload.
        """
        handles = {self.submit(unique=b"", background=bg) for bg in (False, True, True)}
        self.assertEqual(len(handles), 3)

    def test_dashCoalescesByPayload(self) -> None:
        """
        The unique id C{-} coalesces submits with equal payloads only.
        """
        h1 = self.submit(unique=b"-", data=b"same")
        self.assertEqual(self.submit(unique=b"-", data=b"same"), h1)
        self.assertNotEqual(self.submit(unique=b"-", data=b"other"), h1)
        self.assertNotEqual(self.submit(unique=b"same", data=b"same"), h1)

    def test_dashUniqueAssignedAsIs(self) -> None:
        """
        A C{-} unique reaches the worker as C{-}, and after the job ends the
        payload no longer coalesces.
        """
        handle = self.submit(unique=b"-", data=b"p")
        worker = self.worker(b"fn")
        self.assertEqual(
            self.grab(worker, T.GRAB_JOB_UNIQ),
            (T.JOB_ASSIGN_UNIQ, (handle, b"fn", b"-", b"p")),
        )
        self.server.workComplete(worker, handle, b"")
        self.assertNotEqual(self.submit(unique=b"-", data=b"p"), handle)

    def test_uniqueOf64Bytes(self) -> None:
        """
        A 64-byte unique id works fully: it coalesces and reaches the worker
        intact, followed by the intact payload.
        """
        unique = bytes(range(65, 65 + 64))
        handle = self.submit(unique=unique, data=b"d")
        self.assertEqual(self.submit(unique=unique), handle)
        self.assertNotEqual(self.submit(unique=unique[:63]), handle)
        worker = self.worker(b"fn")
        self.assertEqual(
            self.grab(worker, T.GRAB_JOB_UNIQ),
            (T.JOB_ASSIGN_UNIQ, (handle, b"fn", unique, b"d")),
        )

    def test_uniqueFreedAfterEnd(self) -> None:
        """
        Once a job ends its unique id names nothing: the next submit with it
        is a new job.
        """
        handle = self.submit(unique=b"u")
        self.complete(handle)
        self.assertNotEqual(self.submit(unique=b"u"), handle)

    def test_coalescedSubmitIgnoresPriority(self) -> None:
        """
        A coalesced submit neither adds a job nor changes the existing
        job's priority or payload.
        """
        handle = self.submit(unique=b"u", data=b"first", priority=LOW)
        self.submit(unique=b"u", data=b"second", priority=HIGH)
        other = self.submit(data=b"normal")
        worker = self.worker(b"fn")
        self.assertEqual(self.grab(worker), (T.JOB_ASSIGN, (other, b"fn", b"normal")))
        self.assertEqual(self.grab(worker), (T.JOB_ASSIGN, (handle, b"fn", b"first")))

    def test_backgroundSurvivesForegroundDisconnect(self) -> None:
        """
        A background job survives the disconnect of a foreground client
        that coalesced onto it, and its record is removed only when it
        ends.
        """
        handle = self.submit(unique=b"u", background=True)
        client = self.client()
        self.submit(unique=b"u", session=client)
        self.server.disconnect(client)
        self.assertEqual(self.server.getStatus(handle)[1], True)
        self.assertEqual(self.store.removed, [])
        self.complete(handle)
        self.assertEqual(self.store.removed, [self.store.added[0][0]])

    def test_backgroundSubmitAdoptsForegroundJob(self) -> None:
        """
        A background submit coalescing onto a foreground job stores it;
        the job then survives its foreground client's disconnect, and its
        record goes when it ends.
        """
        client = self.client()
        handle = self.submit(unique=b"u", data=b"d", session=client)
        self.assertEqual(self.store.added, [])
        self.assertEqual(self.submit(unique=b"u", background=True), handle)
        self.assertEqual(
            self.store.added, [(1, StoredJob(b"fn", b"u", b"d", 1, 0, None))]
        )
        self.server.disconnect(client)
        worker = self.worker(b"fn")
        self.assertEqual(self.grabHandle(worker), handle)
        self.server.workComplete(worker, handle, b"r")
        self.assertEqual(peerOf(client).take(), [])
        self.assertEqual(self.store.removed, [1])

    def test_backgroundSubmitAdoptsRunningJob(self) -> None:
        """
        A running foreground job adopted by a background submit survives
        its client's disconnect and its worker's: it is requeued.
        """
        client = self.client()
        handle = self.submit(unique=b"u", session=client)
        worker = self.worker(b"fn")
        self.grabHandle(worker)
        self.submit(unique=b"u", background=True)
        self.server.disconnect(client)
        self.server.disconnect(worker)
        self.assertEqual(self.grabHandle(self.worker(b"fn")), handle)


class StoreTests(CoreTestCase):
    """
    Background jobs are acknowledged only once stored; store failures
    are reported and leave nothing behind.
    """

    manualStore = True

    def test_createdAfterStore(self) -> None:
        """
        JOB_CREATED for a background job comes only once the store's add
        fires; until then the job cannot be grabbed.
        """
        client = self.client()
        worker = self.worker(b"fn")
        self.server.submitJob(client, b"fn", b"u", b"d", NORMAL, True)
        self.assertEqual(peerOf(client).take(), [])
        self.assertEqual(self.grab(worker), (T.NO_JOB, ()))
        self.store.succeedAdd()
        self.assertEqual(peerOf(client).take(), [(T.JOB_CREATED, (b"H:test:1",))])
        self.assertEqual(self.grabHandle(worker), b"H:test:1")

    def test_answersInRequestOrder(self) -> None:
        """
        A client's answers come in the order of its requests: a foreground
        submit made while a background one is being stored is answered
        after it, and its job's results follow its JOB_CREATED.
        """
        client = self.client()
        worker = self.worker(b"fg")
        self.server.submitJob(client, b"bg", b"u", b"d", NORMAL, True)
        self.server.submitJob(client, b"fg", b"", b"d", NORMAL, False)
        self.assertEqual(self.grabHandle(worker), b"H:test:2")
        self.server.workComplete(worker, b"H:test:2", b"done")
        self.assertEqual(peerOf(client).take(), [])
        self.store.succeedAdd()
        self.assertEqual(
            peerOf(client).take(),
            [
                (T.JOB_CREATED, (b"H:test:1",)),
                (T.JOB_CREATED, (b"H:test:2",)),
                (T.WORK_COMPLETE, (b"H:test:2", b"done")),
            ],
        )

    def test_failureAnsweredInOrder(self) -> None:
        """
        A store failure's ERROR takes the place of the JOB_CREATED it
        replaces, ahead of answers to later requests.
        """
        client = self.client()
        self.server.submitJob(client, b"bg", b"u", b"d", NORMAL, True)
        self.server.submitJob(client, b"fg", b"", b"d", NORMAL, False)
        self.store.failAdd("disk on fire")
        self.assertEqual(
            peerOf(client).take(),
            [
                (T.ERROR, (b"QUEUE_ERROR", b"disk on fire")),
                (T.JOB_CREATED, (b"H:test:2",)),
            ],
        )

    def test_peerTextEscapedInLog(self) -> None:
        """
        A function name a client chose is logged escaped: a newline cannot
        forge a log line, nor an ANSI escape drive the operator's terminal.
        """
        client = self.client()
        with capturedLogs() as events:
            self.server.submitJob(
                client, b"evil\nFAKE LINE\x1b[31m", b"", b"d", NORMAL, True
            )
            self.store.failAdd("disk on fire")
        [text] = [formatEvent(e) for e in events if "disk on fire" in formatEvent(e)]
        self.assertNotIn("\n", text)
        self.assertNotIn("\x1b", text)
        self.assertIn("evil\\x0aFAKE LINE\\x1b[31m", text)

    def test_coalescedPlaceKept(self) -> None:
        """
        A submit that joins a job still being stored keeps its place too:
        a later, already stored job's JOB_CREATED does not overtake it.
        """
        client = self.client()
        other = self.client()
        self.server.submitJob(other, b"bg", b"shared", b"d", NORMAL, True)
        first = self.store.lastKey()
        self.server.submitJob(client, b"bg", b"shared", b"d", NORMAL, True)
        self.server.submitJob(client, b"bg", b"own", b"d", NORMAL, True)
        self.store.succeedAdd()
        self.assertEqual(peerOf(client).take(), [])
        self.store.succeedAdd(first)
        self.assertEqual(
            peerOf(client).take(),
            [(T.JOB_CREATED, (b"H:test:1",)), (T.JOB_CREATED, (b"H:test:2",))],
        )

    def test_sleepersWokenAfterStore(self) -> None:
        """
        Sleeping workers are woken when the stored job becomes runnable,
        not before.
        """
        sleeper = self.sleeper(b"fn")
        self.server.submitJob(self.client(), b"fn", b"", b"d", NORMAL, True)
        self.assertEqual(peerOf(sleeper).take(), [])
        self.store.succeedAdd()
        self.assertEqual(peerOf(sleeper).types(), [T.NOOP])

    def test_coalescedWaitForStore(self) -> None:
        """
        Submits coalescing onto a job the store is still writing get their
        JOB_CREATED when it is written, in order.
        """
        c1, c2, c3 = self.client(), self.client(), self.client()
        self.server.submitJob(c1, b"fn", b"u", b"d", NORMAL, True)
        self.server.submitJob(c2, b"fn", b"u", b"d", NORMAL, True)
        self.server.submitJob(c3, b"fn", b"u", b"d", NORMAL, False)
        self.assertEqual(len(self.store.added), 1)
        for c in (c1, c2, c3):
            self.assertEqual(peerOf(c).take(), [])
        self.store.succeedAdd()
        for c in (c1, c2, c3):
            self.assertEqual(peerOf(c).take(), [(T.JOB_CREATED, (b"H:test:1",))])

    def test_storeFailure(self) -> None:
        """
        When the store's add fails, the submitter (and anyone coalesced onto
        the job meanwhile) gets C{ERROR QUEUE_ERROR} with the reason, and
        no trace of the job remains.
        """
        c1, c2 = self.client(), self.client()
        self.server.submitJob(c1, b"fn", b"u", b"d", NORMAL, True)
        self.server.submitJob(c2, b"fn", b"u", b"d", NORMAL, False)
        self.store.failAdd("disk on fire")
        expected = [(T.ERROR, (b"QUEUE_ERROR", b"disk on fire"))]
        self.assertEqual(peerOf(c1).take(), expected)
        self.assertEqual(peerOf(c2).take(), expected)
        self.assertEqual(self.server.jobs, {})
        # Nothing needs the function now: it is forgotten.
        self.assertNotIn(b"fn", self.server.functions)
        self.assertEqual(c2.attached, {})
        self.assertEqual(
            self.server.getStatus(b"H:test:1"), (b"H:test:1", False, False, 0, 0)
        )
        self.assertEqual(self.grab(self.worker(b"fn")), (T.NO_JOB, ()))
        self.assertEqual(self.store.removed, [])
        self.flushLoggedErrors()
        # The unique id is free again.
        self.server.submitJob(c1, b"fn", b"u", b"d", NORMAL, True)
        self.assertEqual(len(self.store.added), 2)

    def test_storeRaises(self) -> None:
        """
        A store whose add raises is treated as a failed add.
        """
        self.store.raiseOnAdd = StoreError("no store")
        client = self.client()
        self.server.submitJob(client, b"fn", b"", b"d", NORMAL, True)
        self.assertEqual(
            peerOf(client).take(), [(T.ERROR, (b"QUEUE_ERROR", b"no store"))]
        )
        self.assertEqual(self.server.jobs, {})

    def test_submitterGoneBeforeStore(self) -> None:
        """
        A submitter that disconnects while the store writes its background
        job is not written to, and the job is still queued.
        """
        client = self.client()
        self.server.submitJob(client, b"fn", b"", b"d", NORMAL, True)
        self.server.disconnect(client)
        self.store.succeedAdd()
        self.assertEqual(peerOf(client).take(), [])
        self.assertEqual(self.grabHandle(self.worker(b"fn")), b"H:test:1")

    def test_adoptionWaitsForStore(self) -> None:
        """
        A background submit onto a foreground job gets JOB_CREATED once the
        store wrote it; a foreground submit meanwhile is answered at once,
        as its job does not depend on the store.
        """
        c1, bg, c2 = self.client(), self.client(), self.client()
        handle = self.submit(unique=b"u", session=c1)
        self.server.submitJob(bg, b"fn", b"u", b"d", NORMAL, True)
        self.assertEqual(peerOf(bg).take(), [])
        self.assertEqual(self.submit(unique=b"u", session=c2), handle)
        self.store.succeedAdd()
        self.assertEqual(peerOf(bg).take(), [(T.JOB_CREATED, (handle,))])

    def test_adoptionFailure(self) -> None:
        """
        If storing an adopted foreground job fails, the background
        submitter gets QUEUE_ERROR and the job stays a foreground job: it
        is dropped when its clients leave.
        """
        c1, bg, c2 = self.client(), self.client(), self.client()
        handle = self.submit(unique=b"u", session=c1)
        self.server.submitJob(bg, b"fn", b"u", b"d", NORMAL, True)
        self.submit(unique=b"u", session=c2)
        self.store.failAdd("nope")
        self.flushLoggedErrors()
        self.assertEqual(peerOf(bg).take(), [(T.ERROR, (b"QUEUE_ERROR", b"nope"))])
        self.assertEqual(peerOf(c1).take(), [])
        self.assertEqual(peerOf(c2).take(), [])
        self.assertTrue(self.server.getStatus(handle)[1])
        self.server.disconnect(c1)
        self.server.disconnect(c2)
        self.assertFalse(self.server.getStatus(handle)[1])
        self.assertEqual(self.grab(self.worker(b"fn")), (T.NO_JOB, ()))

    def test_adoptionFailureAfterClientLeft(self) -> None:
        """
        If the foreground client left while the adopted job was being
        stored, a failed store drops the job.
        """
        c1 = self.client()
        handle = self.submit(unique=b"u", session=c1)
        self.server.submitJob(self.client(), b"fn", b"u", b"d", NORMAL, True)
        self.server.disconnect(c1)
        self.assertTrue(self.server.getStatus(handle)[1])
        self.store.failAdd()
        self.flushLoggedErrors()
        self.assertFalse(self.server.getStatus(handle)[1])
        self.assertNotIn(b"fn", self.server.functions)

    def test_adoptedJobEndsBeforeStore(self) -> None:
        """
        An adopted job that ends while the store writes it has its record
        removed as soon as the write completes.
        """
        handle = self.submit(unique=b"u")
        self.server.submitJob(self.client(), b"fn", b"u", b"d", NORMAL, True)
        worker = self.worker(b"fn")
        self.grabHandle(worker)
        self.server.workComplete(worker, handle, b"")
        self.assertEqual(self.store.removed, [])
        self.store.succeedAdd()
        self.assertEqual(self.store.removed, [1])

    def test_adoptedRunningJobCancelledBeforeStore(self) -> None:
        """
        An adopted job that is cancelled while its worker runs it and the
        store writes it has its record removed once written: it must not
        come back after a restart.
        """
        handle = self.submit(unique=b"u")
        worker = self.worker(b"fn")
        self.assertEqual(self.grabHandle(worker), handle)
        self.server.submitJob(self.client(), b"fn", b"u", b"d", NORMAL, True)
        self.assertTrue(self.server.cancelJob(handle))
        self.store.succeedAdd()
        self.assertEqual(self.store.removed, [1])
        self.assertEqual(self.store.records, {})
        self.server.workComplete(worker, handle, b"")
        self.assertEqual(self.store.removed, [1])

    def test_cancelledBeforeStore(self) -> None:
        """
        A background job cancelled while the store writes it is never
        queued, and its record is removed once written.
        """
        self.server.submitJob(self.client(), b"fn", b"", b"d", NORMAL, True)
        self.assertTrue(self.server.cancelJob(b"H:test:1"))
        self.store.succeedAdd()
        self.assertEqual(self.store.removed, [1])
        self.assertEqual(self.grab(self.worker(b"fn")), (T.NO_JOB, ()))
        self.assertEqual(self.server.functions[b"fn"].total, 0)


class CallbackStoreTests(StoreTests):
    """
    The same with a store that answers adds by calling back
    (L{ICallbackStore}): the core takes that way, with the same results.
    """

    storeClass = CallbackFakeStore

    def tearDown(self) -> None:
        assert isinstance(self.store, CallbackFakeStore)
        if self.store.added:
            self.assertGreater(self.store.viaCallbacks, 0)


class StoreRemoveTests(CoreTestCase):
    """
    A background job's record is removed exactly once, when it ends.
    """

    jobRetries = 1

    def running(self) -> tuple[bytes, Session]:
        handle = self.submit(background=True)
        worker = self.worker(b"fn")
        self.assertEqual(self.grabHandle(worker), handle)
        return handle, worker

    def test_complete(self) -> None:
        """WORK_COMPLETE removes the record."""
        handle, worker = self.running()
        self.assertEqual(self.store.removed, [])
        self.server.workComplete(worker, handle, b"")
        self.assertEqual(self.store.removed, [1])

    def test_fail(self) -> None:
        """WORK_FAIL removes the record."""
        handle, worker = self.running()
        self.server.workFail(worker, handle)
        self.assertEqual(self.store.removed, [1])

    def test_exception(self) -> None:
        """WORK_EXCEPTION removes the record."""
        handle, worker = self.running()
        self.server.workException(worker, handle, b"boom")
        self.assertEqual(self.store.removed, [1])

    def test_retryDrop(self) -> None:
        """Dropping a job past the retry limit removes the record."""
        handle, worker = self.running()
        self.server.disconnect(worker)
        self.assertEqual(self.store.removed, [1])
        self.assertFalse(self.server.getStatus(handle)[1])

    def test_cancelQueued(self) -> None:
        """Cancelling a queued job removes the record."""
        handle = self.submit(background=True)
        self.server.cancelJob(handle)
        self.assertEqual(self.store.removed, [1])

    def test_cancelRunning(self) -> None:
        """
        Cancelling a running job removes the record once; the worker's later
        result does not remove it again.
        """
        handle, worker = self.running()
        self.server.cancelJob(handle)
        self.server.workComplete(worker, handle, b"")
        self.assertEqual(self.store.removed, [1])


class CallbackStoreRemoveTests(StoreRemoveTests):
    """
    Removal, with a store that answers adds by calling back.
    """

    storeClass = CallbackFakeStore


class WakeupTests(CoreTestCase):
    """
    PRE_SLEEP and NOOP: sleeping workers are woken once per sleep.
    """

    def test_oneNoopPerSleeper(self) -> None:
        """
        A new job sends one NOOP to every sleeping worker of its function;
        more jobs send no more NOOPs until the worker grabs and sleeps
        again.
        """
        sleepers = [self.sleeper(b"fn") for _ in range(3)]
        other = self.sleeper(b"other")
        self.submit()
        for s in sleepers:
            self.assertEqual(peerOf(s).types(), [T.NOOP])
        self.submit()
        for s in sleepers:
            self.assertEqual(peerOf(s).types(), [])
        self.assertEqual(peerOf(other).types(), [])
        first = sleepers[0]
        self.assertIsNotNone(self.grabHandle(first))
        self.assertIsNotNone(self.grabHandle(first))
        self.server.preSleep(first)
        self.assertEqual(peerOf(first).types(), [])
        self.submit()
        self.assertEqual(peerOf(first).types(), [T.NOOP])
        for s in sleepers[1:]:
            self.assertEqual(peerOf(s).types(), [])

    def test_awakeWorkersNotWoken(self) -> None:
        """
        Workers that did not send PRE_SLEEP, or grabbed since, get no NOOP.
        """
        awake = self.worker(b"fn")
        grabbed = self.sleeper(b"fn")
        self.grab(grabbed)
        self.submit()
        self.assertEqual(peerOf(awake).types(), [])
        self.assertEqual(peerOf(grabbed).types(), [])

    def test_oneNoopAcrossFunctions(self) -> None:
        """
        A worker sleeping on several functions gets one NOOP for jobs of
        any of them.
        """
        sleeper = self.sleeper(b"a", b"b")
        self.submit(name=b"a")
        self.submit(name=b"b")
        self.assertEqual(peerOf(sleeper).types(), [T.NOOP])

    def test_preSleepWithRunnableJob(self) -> None:
        """
        PRE_SLEEP while a job of the worker's functions is runnable is
        answered with a NOOP at once.
        """
        self.submit(name=b"b")
        worker = self.worker(b"a", b"b")
        self.server.preSleep(worker)
        self.assertEqual(peerOf(worker).types(), [T.NOOP])
        self.submit(name=b"a")
        self.assertEqual(peerOf(worker).types(), [])

    def test_canDoWhileSleeping(self) -> None:
        """
        A sleeping worker registering a function with a runnable job is
        woken; registering one with no jobs makes it sleep on it too.
        """
        self.submit(name=b"busy")
        sleeper = self.sleeper(b"fn")
        self.server.canDo(sleeper, b"busy")
        self.assertEqual(peerOf(sleeper).types(), [T.NOOP])
        other = self.sleeper(b"fn")
        self.server.canDo(other, b"idle")
        self.submit(name=b"idle")
        self.assertEqual(peerOf(other).types(), [T.NOOP])

    def test_requeueWakes(self) -> None:
        """
        A job requeued because its worker left wakes sleepers.
        """
        handle = self.submit()
        worker = self.worker(b"fn")
        self.grabHandle(worker)
        sleeper = self.sleeper(b"fn")
        self.server.disconnect(worker)
        self.assertEqual(peerOf(sleeper).types(), [T.NOOP])
        self.assertEqual(self.grabHandle(sleeper), handle)

    def test_cantDoStopsNoops(self) -> None:
        """
        A sleeping worker that gave up the function, or left, is not woken.
        """
        gaveUp = self.sleeper(b"fn")
        self.server.cantDo(gaveUp, b"fn")
        left = self.sleeper(b"fn")
        self.server.disconnect(left)
        reset = self.sleeper(b"fn")
        self.server.resetAbilities(reset)
        self.submit()
        for s in (gaveUp, left, reset):
            self.assertEqual(peerOf(s).types(), [])


class WakeOneTests(CoreTestCase):
    """
    With C{--worker-wakeup 1}, each job wakes one sleeping worker, taking
    turns.
    """

    workerWakeup = 1

    def test_rotates(self) -> None:
        """
        Job after job wakes the next sleeping worker; a worker that grabbed
        and slept again goes to the back of the line.
        """
        w1, w2, w3 = (self.sleeper(b"fn") for _ in range(3))
        self.submit()
        self.assertEqual([peerOf(w).types() for w in (w1, w2, w3)], [[T.NOOP], [], []])
        self.grabHandle(w1)
        self.server.preSleep(w1)
        self.assertEqual(peerOf(w1).types(), [])
        self.submit()
        self.assertEqual([peerOf(w).types() for w in (w1, w2, w3)], [[], [T.NOOP], []])
        self.submit()
        self.assertEqual([peerOf(w).types() for w in (w1, w2, w3)], [[], [], [T.NOOP]])
        self.submit()
        self.assertEqual([peerOf(w).types() for w in (w1, w2, w3)], [[T.NOOP], [], []])
        self.submit()
        self.assertEqual([peerOf(w).types() for w in (w1, w2, w3)], [[], [], []])


class JustEnoughWakeTests(CoreTestCase):
    """
    By default a new job wakes one sleeping worker for each job of the
    function that no woken worker has come for yet: the cost of a job does
    not grow with the number of idle workers, and no job waits while a
    worker that could run it sleeps.
    """

    workerWakeup = None

    def sleepers(self, count: int, *names: bytes) -> list[Session]:
        return [self.sleeper(*(names or (b"fn",))) for _ in range(count)]

    def woken(self, workers: list[Session]) -> list[int]:
        """Which of C{workers} got a NOOP since the last look."""
        return [i for i, w in enumerate(workers) if peerOf(w).types() == [T.NOOP]]

    def test_oneJobOneNoop(self) -> None:
        """
        Among a thousand sleepers, one job wakes one, the longest asleep;
        a second job wakes a second.
        """
        workers = self.sleepers(1000)
        self.submit()
        self.assertEqual(self.woken(workers), [0])
        self.submit()
        self.assertEqual(self.woken(workers), [1])

    def test_grabEndsTheClaim(self) -> None:
        """
        Once the woken worker has taken the job, the next job wakes the
        next sleeper, and the worker that grabbed sleeps at the back of the
        line.
        """
        workers = self.sleepers(3)
        handle = self.submit()
        self.assertEqual(self.woken(workers), [0])
        self.assertEqual(self.grabHandle(workers[0]), handle)
        self.server.preSleep(workers[0])
        self.submit()
        self.assertEqual(self.woken(workers), [1])

    def test_jobTakenByAnother(self) -> None:
        """
        When a busy worker takes the job first, the woken worker gets
        NO_JOB and no one else is woken.
        """
        workers = self.sleepers(2)
        busy = self.worker(b"fn")
        handle = self.submit()
        self.assertEqual(self.woken(workers), [0])
        self.assertEqual(self.grabHandle(busy), handle)
        self.assertEqual(self.grab(workers[0])[0], T.NO_JOB)
        self.assertEqual(self.woken(workers), [])

    def test_wokenWorkerLeaves(self) -> None:
        """
        A woken worker that disconnects before grabbing hands its job's
        wake-up to the next sleeper.
        """
        workers = self.sleepers(3)
        self.submit()
        self.assertEqual(self.woken(workers), [0])
        self.server.disconnect(workers[0])
        self.assertEqual(self.woken(workers), [1])

    def test_wokenWorkerGivesUp(self) -> None:
        """
        CANT_DO or RESET_ABILITIES from a woken worker wakes the next one.
        """
        workers = self.sleepers(3)
        self.submit()
        self.assertEqual(self.woken(workers), [0])
        self.server.cantDo(workers[0], b"fn")
        self.assertEqual(self.woken(workers), [1])
        self.server.resetAbilities(workers[1])
        self.assertEqual(self.woken(workers), [2])

    def test_wokenWorkerTakesAnotherFunction(self) -> None:
        """
        A worker woken for a job of C{a} that takes a job of C{b} instead
        (a higher priority one) leaves the C{a} job to the next sleeper of
        C{a}.
        """
        both = self.sleeper(b"a", b"b")
        onlyA = self.sleeper(b"a")
        self.submit(name=b"a")
        self.assertEqual(self.woken([both, onlyA]), [0])
        b = self.submit(name=b"b", priority=HIGH)
        self.assertEqual(self.woken([both, onlyA]), [])
        self.assertEqual(self.grabHandle(both), b)
        self.assertEqual(self.woken([both, onlyA]), [1])

    def test_slowWorkerReplaced(self) -> None:
        """
        A woken worker that has not grabbed within WAKE_PATIENCE loses its
        claim: the next sleeper is woken, and the slow one may still grab.
        """
        workers = self.sleepers(3)
        handle = self.submit()
        self.assertEqual(self.woken(workers), [0])
        self.clock.advance(WAKE_PATIENCE - 0.01)
        self.assertEqual(self.woken(workers), [])
        self.clock.advance(0.01)
        self.assertEqual(self.woken(workers), [1])
        self.assertEqual(self.grabHandle(workers[0]), handle)
        self.assertEqual(self.grab(workers[1])[0], T.NO_JOB)
        self.clock.advance(WAKE_PATIENCE * 3)
        self.assertEqual(self.woken(workers), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_requeuedJobWakes(self) -> None:
        """
        A job that loses its worker wakes a sleeper.
        """
        runner = self.worker(b"fn")
        handle = self.submit()
        self.assertEqual(self.grabHandle(runner), handle)
        workers = self.sleepers(2)
        self.server.disconnect(runner)
        self.assertEqual(self.woken(workers), [0])
        self.assertEqual(self.grabHandle(workers[0]), handle)

    def test_stopCancelsTimers(self) -> None:
        """
        Stopping the server cancels its patience timers.
        """
        self.sleepers(2)
        self.submit()
        self.server.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class GrabTests(CoreTestCase):
    """
    GRAB_JOB, GRAB_JOB_UNIQ and GRAB_JOB_ALL answer with the matching
    assignment packet.
    """

    def test_grabJob(self) -> None:
        """GRAB_JOB gets C{JOB_ASSIGN(handle, function, data)}."""
        handle = self.submit(unique=b"u", data=b"d")
        self.assertEqual(
            self.grab(self.worker(b"fn"), T.GRAB_JOB),
            (T.JOB_ASSIGN, (handle, b"fn", b"d")),
        )

    def test_grabJobUniq(self) -> None:
        """
        GRAB_JOB_UNIQ gets C{JOB_ASSIGN_UNIQ(handle, function, unique,
        data)}, empty unique included.
        """
        h1 = self.submit(unique=b"u", data=b"d")
        h2 = self.submit(unique=b"", data=b"e")
        worker = self.worker(b"fn")
        self.assertEqual(
            self.grab(worker, T.GRAB_JOB_UNIQ),
            (T.JOB_ASSIGN_UNIQ, (h1, b"fn", b"u", b"d")),
        )
        self.assertEqual(
            self.grab(worker, T.GRAB_JOB_UNIQ),
            (T.JOB_ASSIGN_UNIQ, (h2, b"fn", b"", b"e")),
        )

    def test_grabJobAll(self) -> None:
        """
        GRAB_JOB_ALL gets JOB_ASSIGN_ALL for a job with a reducer and
        JOB_ASSIGN_UNIQ for one without.
        """
        h1 = self.submit(unique=b"u", data=b"d", reducer=b"red")
        h2 = self.submit(unique=b"v", data=b"e")
        worker = self.worker(b"fn")
        self.assertEqual(
            self.grab(worker, T.GRAB_JOB_ALL),
            (T.JOB_ASSIGN_ALL, (h1, b"fn", b"u", b"red", b"d")),
        )
        self.assertEqual(
            self.grab(worker, T.GRAB_JOB_ALL),
            (T.JOB_ASSIGN_UNIQ, (h2, b"fn", b"v", b"e")),
        )

    def test_reducerNotSentToOtherGrabs(self) -> None:
        """
        A reduce job grabbed with GRAB_JOB is a plain JOB_ASSIGN.
        """
        handle = self.submit(reducer=b"red", data=b"d")
        self.assertEqual(
            self.grab(self.worker(b"fn")), (T.JOB_ASSIGN, (handle, b"fn", b"d"))
        )

    def test_noJob(self) -> None:
        """Nothing runnable: NO_JOB, for every kind of grab."""
        worker = self.worker(b"fn")
        for kind in (T.GRAB_JOB, T.GRAB_JOB_UNIQ, T.GRAB_JOB_ALL):
            self.assertEqual(self.grab(worker, kind), (T.NO_JOB, ()))

    def test_workerHoldsSeveralJobs(self) -> None:
        """
        A worker may hold several jobs at once and report on each.
        """
        c1, c2 = self.client(), self.client()
        h1 = self.submit(session=c1)
        h2 = self.submit(session=c2)
        worker = self.worker(b"fn")
        self.grabAll(worker)
        self.server.workComplete(worker, h2, b"2")
        self.server.workComplete(worker, h1, b"1")
        self.assertEqual(peerOf(c1).take(), [(T.WORK_COMPLETE, (h1, b"1"))])
        self.assertEqual(peerOf(c2).take(), [(T.WORK_COMPLETE, (h2, b"2"))])
        self.assertEqual(self.server.functions[b"fn"].running, 0)

    def test_duplicateCanDo(self) -> None:
        """
        Registering a function twice registers it once.
        """
        worker = self.worker(b"fn", b"fn")
        self.assertEqual(len(self.server.functions[b"fn"].workers), 1)
        self.assertEqual(len(worker.functions), 1)


class RequeueTests(CoreTestCase):
    """
    A job whose worker leaves, gives up the function or times out goes back
    to the tail of its queue, its retry count one higher, silently.
    """

    def assertRequeued(self, handle: bytes, other: bytes, client: Session) -> None:
        """
        C{handle} is queued again behind C{other}, once more tried, with its
        progress reset and its client told nothing.
        """
        job = self.server.jobs[handle]
        self.assertEqual(job.retries, 1)
        self.assertEqual(job.state, JobState.QUEUED)
        self.assertEqual(self.server.getStatus(handle), (handle, True, False, 0, 0))
        self.assertEqual(peerOf(client).take(), [])
        self.assertEqual(self.server.functions[b"fn"].running, 0)
        self.assertEqual(self.grabAll(self.worker(b"fn")), [other, handle])

    def running(self) -> tuple[bytes, bytes, Session, Session]:
        client = self.client()
        handle = self.submit(session=client)
        other = self.submit()
        worker = self.worker(b"fn", b"spare")
        self.assertEqual(self.grabHandle(worker), handle)
        self.server.workStatus(worker, handle, b"1", b"2")
        peerOf(client).take()
        return handle, other, client, worker

    def test_disconnect(self) -> None:
        """A worker disconnecting requeues its jobs."""
        handle, other, client, worker = self.running()
        self.server.disconnect(worker)
        self.assertRequeued(handle, other, client)

    def test_cantDo(self) -> None:
        """
        CANT_DO requeues the worker's jobs of that function; the worker's
        late result is answered with JOB_NOT_FOUND.
        """
        handle, other, client, worker = self.running()
        self.server.cantDo(worker, b"spare")
        self.assertEqual(self.server.jobs[handle].state, JobState.RUNNING)
        self.server.cantDo(worker, b"unknown")
        self.server.cantDo(worker, b"fn")
        self.server.workComplete(worker, handle, b"late")
        self.assertEqual(peerOf(worker).take(), [(T.ERROR, NOT_FOUND_RESULT)])
        self.assertRequeued(handle, other, client)

    def test_resetAbilities(self) -> None:
        """RESET_ABILITIES requeues the worker's jobs."""
        handle, other, client, worker = self.running()
        self.server.resetAbilities(worker)
        self.assertEqual(worker.functions, [])
        self.assertRequeued(handle, other, client)

    def test_unlimitedRetries(self) -> None:
        """
        By default (C{-1}) a job is requeued however often its workers
        fail.
        """
        handle = self.submit()
        for attempt in range(1, 11):
            worker = self.worker(b"fn")
            self.assertEqual(self.grabHandle(worker), handle)
            self.server.disconnect(worker)
            self.assertEqual(self.server.jobs[handle].retries, attempt)

    def test_disconnectTwice(self) -> None:
        """
        A second disconnect of the same session changes nothing.
        """
        handle, other, client, worker = self.running()
        self.server.disconnect(worker)
        self.server.disconnect(worker)
        self.assertRequeued(handle, other, client)


class RetryLimitTests(CoreTestCase):
    """
    C{--job-retries} as in gearmand master: C{0} and C{1} drop a job at its
    first failure, C{N} after N failures; dropping sends WORK_FAIL to
    attached clients.
    """

    def failures(self, retries: int, count: int) -> tuple[bytes, Session]:
        """
        With C{retries}, let C{count} workers grab a job and vanish.
        """
        self.server.jobRetries = retries
        client = self.client()
        handle = self.submit(session=client)
        for _ in range(count):
            worker = self.worker(b"fn")
            self.assertEqual(self.grabHandle(worker), handle)
            self.server.disconnect(worker)
        return handle, client

    def assertDropped(self, handle: bytes, client: Session) -> None:
        self.assertEqual(peerOf(client).take(), [(T.WORK_FAIL, (handle,))])
        self.assertFalse(self.server.getStatus(handle)[1])
        # Its worker left and its job went: the function is forgotten.
        self.assertNotIn(b"fn", self.server.functions)
        self.assertEqual(client.attached, {})

    def assertAlive(self, handle: bytes, client: Session, retries: int) -> None:
        self.assertEqual(peerOf(client).take(), [])
        self.assertEqual(self.server.jobs[handle].retries, retries)

    def test_stoppingKeepsRunningJobs(self) -> None:
        """
        Connections closed because the server stops do not fail the jobs
        their workers run: even with C{0} retries, a running background job
        stays in the store for the next start.
        """
        self.server.jobRetries = 0
        self.submit(background=True, unique=b"keep")
        worker = self.worker(b"fn")
        self.assertIsNotNone(self.grabHandle(worker))
        self.server.stop()
        self.server.disconnect(worker)
        self.assertEqual(self.store.removed, [])
        self.assertEqual([job.unique for job in self.store.records.values()], [b"keep"])

    def test_zero(self) -> None:
        """C{0}: dropped at the first failure."""
        self.assertDropped(*self.failures(0, 1))

    def test_one(self) -> None:
        """C{1}: dropped at the first failure."""
        self.assertDropped(*self.failures(1, 1))

    def test_two(self) -> None:
        """C{2}: requeued after the first failure, dropped at the second."""
        handle, client = self.failures(2, 1)
        self.assertAlive(handle, client, 1)
        worker = self.worker(b"fn")
        self.grabHandle(worker)
        self.server.disconnect(worker)
        self.assertDropped(handle, client)

    def test_minusOne(self) -> None:
        """C{-1}: never dropped."""
        self.assertAlive(*self.failures(-1, 5), 5)

    def test_everyClientTold(self) -> None:
        """
        Every attached client gets the WORK_FAIL; background jobs are
        dropped too.
        """
        self.server.jobRetries = 1
        c1, c2 = self.client(), self.client()
        handle = self.submit(unique=b"u", session=c1)
        self.submit(unique=b"u", session=c2)
        bg = self.submit(background=True)
        worker = self.worker(b"fn")
        self.grabAll(worker)
        self.server.disconnect(worker)
        for c in (c1, c2):
            self.assertEqual(peerOf(c).take(), [(T.WORK_FAIL, (handle,))])
        self.assertFalse(self.server.getStatus(bg)[1])
        self.assertEqual(self.server.jobs, {})


class TimeoutTests(CoreTestCase):
    """
    CAN_DO_TIMEOUT: a job held longer than the function's timeout is
    requeued.
    """

    def test_requeuedAfterTimeout(self) -> None:
        """
        At the timeout the job is requeued; the worker's late result gets
        JOB_NOT_FOUND, and the client hears only the next worker's result.
        """
        client = self.client()
        handle = self.submit(session=client)
        slow = self.worker(b"fn", timeout=2.0)
        self.assertEqual(self.grabHandle(slow), handle)
        self.clock.advance(1.9)
        self.assertEqual(self.server.jobs[handle].state, JobState.RUNNING)
        self.clock.advance(0.1)
        self.assertEqual(self.server.getStatus(handle), (handle, True, False, 0, 0))
        self.assertEqual(self.server.jobs[handle].retries, 1)
        self.server.workComplete(slow, handle, b"late")
        self.assertEqual(peerOf(slow).take(), [(T.ERROR, NOT_FOUND_RESULT)])
        self.assertEqual(peerOf(client).take(), [])
        fast = self.worker(b"fn")
        self.assertEqual(self.grabHandle(fast), handle)
        self.server.workComplete(fast, handle, b"ok")
        self.assertEqual(peerOf(client).take(), [(T.WORK_COMPLETE, (handle, b"ok"))])

    def test_minimumOneSecond(self) -> None:
        """
        Timeouts under one second are raised to one second.
        """
        handle = self.submit()
        worker = self.worker(b"fn", timeout=0.1)
        self.grabHandle(worker)
        self.clock.advance(0.9)
        self.assertEqual(self.server.jobs[handle].state, JobState.RUNNING)
        self.clock.advance(0.1)
        self.assertEqual(self.server.jobs[handle].state, JobState.QUEUED)

    def test_perJobTimers(self) -> None:
        """
        Each assigned job has its own timer.
        """
        h1 = self.submit()
        h2 = self.submit()
        worker = self.worker(b"fn", timeout=5.0)
        self.grabHandle(worker)
        self.clock.advance(3)
        self.grabHandle(worker)
        self.clock.advance(2)
        self.assertEqual(self.server.jobs[h1].state, JobState.QUEUED)
        self.assertEqual(self.server.jobs[h2].state, JobState.RUNNING)
        self.clock.advance(3)
        self.assertEqual(self.server.jobs[h2].state, JobState.QUEUED)

    def test_completionCancelsTimer(self) -> None:
        """
        A job completed in time leaves no timer behind.
        """
        handle = self.submit()
        worker = self.worker(b"fn", timeout=5.0)
        self.grabHandle(worker)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.server.workComplete(worker, handle, b"")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_otherEndingsCancelTimer(self) -> None:
        """
        Failures, exceptions, requeues, drops and cancels leave no timer
        behind.
        """
        worker = self.worker(b"fn", timeout=5.0)
        ends = [
            lambda h: self.server.workFail(worker, h),
            lambda h: self.server.workException(worker, h, b""),
            lambda h: self.server.cancelJob(h),
        ]
        for end in ends:
            handle = self.submit()
            self.grabHandle(worker)
            end(handle)
            self.assertEqual(self.clock.getDelayedCalls(), [])
        handle = self.submit()
        self.grabHandle(worker)
        self.server.cantDo(worker, b"fn")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_plainCanDoClearsTimeout(self) -> None:
        """
        A plain CAN_DO after CAN_DO_TIMEOUT removes the timeout.
        """
        handle = self.submit()
        worker = self.worker(b"fn", timeout=1.0)
        self.server.canDo(worker, b"fn")
        self.grabHandle(worker)
        self.clock.advance(100)
        self.assertEqual(self.server.jobs[handle].state, JobState.RUNNING)

    def test_timeoutWithRetryLimit(self) -> None:
        """
        A timeout counts as a failure: with C{--job-retries 1} the client
        gets WORK_FAIL.
        """
        self.server.jobRetries = 1
        client = self.client()
        handle = self.submit(session=client)
        self.grabHandle(self.worker(b"fn", timeout=1.0))
        self.clock.advance(1)
        self.assertEqual(peerOf(client).take(), [(T.WORK_FAIL, (handle,))])
        self.assertEqual(self.server.jobs, {})


class ResultTests(CoreTestCase):
    """
    WORK_* packets reach every attached client.
    """

    def setUp(self) -> None:
        super().setUp()
        self.c1, self.c2 = self.client(), self.client()
        self.handle = self.submit(unique=b"u", session=self.c1)
        self.submit(unique=b"u", session=self.c2)
        self.worker_ = self.worker(b"fn")
        self.grabHandle(self.worker_)

    def assertBoth(self, expected: list[tuple[T, tuple[bytes, ...]]]) -> None:
        self.assertEqual(peerOf(self.c1).take(), expected)
        self.assertEqual(peerOf(self.c2).take(), expected)

    def test_fanOut(self) -> None:
        """
        WORK_STATUS, WORK_DATA, WORK_WARNING and WORK_COMPLETE reach every
        attached client, verbatim and in order; the worker hears nothing.
        """
        h, w = self.handle, self.worker_
        self.server.workStatus(w, h, b"1", b"10")
        self.server.workData(w, T.WORK_DATA, h, b"da\0ta")
        self.server.workData(w, T.WORK_WARNING, h, b"warn")
        self.server.workComplete(w, h, b"res\0ult")
        self.assertBoth(
            [
                (T.WORK_STATUS, (h, b"1", b"10")),
                (T.WORK_DATA, (h, b"da\0ta")),
                (T.WORK_WARNING, (h, b"warn")),
                (T.WORK_COMPLETE, (h, b"res\0ult")),
            ]
        )
        self.assertEqual(peerOf(w).take(), [])
        self.assertFalse(self.server.getStatus(h)[1])
        self.assertEqual(self.c1.attached, {})

    def test_fail(self) -> None:
        """WORK_FAIL reaches every client and ends the job."""
        self.server.workFail(self.worker_, self.handle)
        self.assertBoth([(T.WORK_FAIL, (self.handle,))])
        self.assertFalse(self.server.getStatus(self.handle)[1])

    def test_exception(self) -> None:
        """
        WORK_EXCEPTION reaches clients that asked for exceptions; the others
        get WORK_FAIL with the bare handle.  The job ends.
        """
        self.assertTrue(self.server.setOption(self.c1, b"exceptions"))
        self.server.workException(self.worker_, self.handle, b"boom")
        self.assertEqual(
            peerOf(self.c1).take(), [(T.WORK_EXCEPTION, (self.handle, b"boom"))]
        )
        self.assertEqual(peerOf(self.c2).take(), [(T.WORK_FAIL, (self.handle,))])
        self.assertFalse(self.server.getStatus(self.handle)[1])

    def test_options(self) -> None:
        """
        C{exceptions} is the only option, in any case.
        """
        self.assertTrue(self.server.setOption(self.c1, b"EXCEPTIONS"))
        self.assertTrue(self.c1.exceptions)
        self.assertFalse(self.server.setOption(self.c2, b"exceptionsx"))
        self.assertFalse(self.c2.exceptions)

    def test_exceptionsByDefault(self) -> None:
        """
        A server made with C{exceptions=True} sends WORK_EXCEPTION to every
        client.
        """
        server = JobServer(
            self.clock, store=self.store, exceptions=True, handlePrefix=b"H:x"
        )
        client = server.connect(FakePeer())
        server.submitJob(client, b"fn", b"", b"", NORMAL, False)
        handle = peerOf(client).take()[0][1][0]
        worker = server.connect(FakePeer())
        server.canDo(worker, b"fn")
        server.grabJob(worker)
        server.workException(worker, handle, b"e")
        self.assertEqual(peerOf(client).take(), [(T.WORK_EXCEPTION, (handle, b"e"))])

    def test_statusNumbers(self) -> None:
        """
        WORK_STATUS numbers are read like C{atoi} for GET_STATUS, while the
        clients get them verbatim.
        """
        h, w = self.handle, self.worker_
        for raw, expected in [
            ((b"3", b"7"), (3, 7)),
            ((b" 42abc", b"x"), (42, 0)),
            ((b"99999999999", b""), (0xFFFFFFFF, 0)),
            ((b"-5", b"+5"), (0, 0)),
        ]:
            self.server.workStatus(w, h, *raw)
            self.assertEqual(self.server.getStatus(h), (h, True, True, *expected))
            self.assertEqual(peerOf(self.c1).take(), [(T.WORK_STATUS, (h, *raw))])

    def test_resultsForBackgroundJobDiscarded(self) -> None:
        """
        Results of a background job go nowhere and raise no error.
        """
        handle = self.submit(background=True)
        worker = self.worker(b"fn")
        self.grabHandle(worker)
        self.server.workData(worker, T.WORK_DATA, handle, b"d")
        self.server.workComplete(worker, handle, b"r")
        self.assertEqual(peerOf(worker).take(), [])
        self.assertFalse(self.server.getStatus(handle)[1])


class JobNotFoundTests(CoreTestCase):
    """
    WORK_* packets for handles the worker does not hold are answered with
    C{ERROR JOB_NOT_FOUND} and gearmand's texts.
    """

    def sendAll(self, worker: Session, handle: bytes) -> None:
        self.server.workStatus(worker, handle, b"1", b"2")
        self.server.workData(worker, T.WORK_DATA, handle, b"d")
        self.server.workData(worker, T.WORK_WARNING, handle, b"w")
        self.server.workComplete(worker, handle, b"r")
        self.server.workFail(worker, handle)
        self.server.workException(worker, handle, b"e")

    expected = [
        (T.ERROR, NOT_FOUND_RESULT),
        (T.ERROR, NOT_FOUND_DATA),
        (T.ERROR, NOT_FOUND_DATA),
        (T.ERROR, NOT_FOUND_RESULT),
        (T.ERROR, NOT_FOUND_RESULT),
        (T.ERROR, NOT_FOUND_EXCEPTION),
    ]

    def test_unknownHandle(self) -> None:
        """A handle that names no job."""
        worker = self.worker(b"fn")
        self.sendAll(worker, b"H:test:999")
        self.assertEqual(peerOf(worker).take(), self.expected)

    def test_notOwned(self) -> None:
        """
        A handle of a job another worker runs, or of a queued job: the job
        is untouched.
        """
        client = self.client()
        handle = self.submit(session=client)
        queued = self.submit()
        owner = self.worker(b"fn")
        self.assertEqual(self.grabHandle(owner), handle)
        thief = self.worker(b"fn")
        self.sendAll(thief, handle)
        self.sendAll(thief, queued)
        self.assertEqual(peerOf(thief).take(), self.expected * 2)
        self.assertEqual(peerOf(client).take(), [])
        self.assertEqual(self.server.getStatus(handle), (handle, True, True, 0, 0))
        self.assertEqual(self.server.getStatus(queued), (queued, True, False, 0, 0))

    def test_finishedHandle(self) -> None:
        """A second WORK_COMPLETE for a finished job."""
        handle = self.submit()
        worker = self.worker(b"fn")
        self.grabHandle(worker)
        self.server.workComplete(worker, handle, b"")
        self.server.workComplete(worker, handle, b"")
        self.assertEqual(peerOf(worker).take(), [(T.ERROR, NOT_FOUND_RESULT)])


class ClientDisconnectTests(CoreTestCase):
    """
    A foreground client going away.
    """

    def test_whileQueued(self) -> None:
        """
        The job of a client that left before it ran is dropped at once.
        """
        client = self.client()
        handle = self.submit(session=client)
        later = self.submit()
        self.server.disconnect(client)
        self.assertFalse(self.server.getStatus(handle)[1])
        self.assertEqual(self.server.functions[b"fn"].total, 1)
        self.assertEqual(self.grabAll(self.worker(b"fn")), [later])

    def test_whileRunning(self) -> None:
        """
        The job of a client that left while it ran keeps running; its
        results are discarded without an error to the worker.
        """
        client = self.client()
        handle = self.submit(session=client)
        worker = self.worker(b"fn")
        self.grabHandle(worker)
        self.server.disconnect(client)
        self.assertEqual(self.server.getStatus(handle), (handle, True, True, 0, 0))
        self.server.workStatus(worker, handle, b"1", b"2")
        self.server.workData(worker, T.WORK_DATA, handle, b"d")
        self.server.workComplete(worker, handle, b"r")
        self.assertEqual(peerOf(worker).take(), [])
        self.assertEqual(peerOf(client).take(), [])
        self.assertFalse(self.server.getStatus(handle)[1])
        self.assertEqual(self.server.functions[b"fn"].running, 0)

    def test_abandonedJobNotRetried(self) -> None:
        """
        A job whose clients all left while it ran is dropped, not requeued,
        when its worker fails it.
        """
        client = self.client()
        handle = self.submit(session=client)
        kept = self.submit(unique=b"k")
        worker = self.worker(b"fn")
        self.grabHandle(worker)
        self.server.disconnect(client)
        self.server.disconnect(worker)
        self.assertFalse(self.server.getStatus(handle)[1])
        self.assertEqual(self.server.functions[b"fn"].total, 1)
        self.assertEqual(self.server.functions[b"fn"].running, 0)
        self.assertEqual(self.grabAll(self.worker(b"fn")), [kept])

    def test_otherClientKeepsJob(self) -> None:
        """
        The job stays while another attached client waits for it.
        """
        c1, c2 = self.client(), self.client()
        handle = self.submit(unique=b"u", session=c1)
        self.submit(unique=b"u", session=c2)
        self.server.disconnect(c1)
        worker = self.worker(b"fn")
        self.assertEqual(self.grabHandle(worker), handle)
        self.server.workComplete(worker, handle, b"r")
        self.assertEqual(peerOf(c2).take(), [(T.WORK_COMPLETE, (handle, b"r"))])
        self.assertEqual(peerOf(c1).take(), [])

    def test_clientAndWorker(self) -> None:
        """
        A connection that is both the client and the worker of a job drops
        it when it leaves.
        """
        both = self.worker(b"fn")
        handle = self.submit(session=both)
        self.assertEqual(self.grabHandle(both), handle)
        self.server.disconnect(both)
        self.assertFalse(self.server.getStatus(handle)[1])
        self.assertNotIn(b"fn", self.server.functions)
        self.assertEqual(self.grab(self.worker(b"fn")), (T.NO_JOB, ()))


class StatusTests(CoreTestCase):
    """
    GET_STATUS and GET_STATUS_UNIQUE.
    """

    def test_getStatus(self) -> None:
        """
        Unknown, queued, running with progress, and finished.
        """
        self.assertEqual(
            self.server.getStatus(b"H:test:1"), (b"H:test:1", False, False, 0, 0)
        )
        handle = self.submit(background=True)
        self.assertEqual(self.server.getStatus(handle), (handle, True, False, 0, 0))
        worker = self.worker(b"fn")
        self.grabHandle(worker)
        self.assertEqual(self.server.getStatus(handle), (handle, True, True, 0, 0))
        self.server.workStatus(worker, handle, b"3", b"10")
        self.assertEqual(self.server.getStatus(handle), (handle, True, True, 3, 10))
        self.server.workComplete(worker, handle, b"")
        self.assertEqual(self.server.getStatus(handle), (handle, False, False, 0, 0))

    def test_getStatusUnique(self) -> None:
        """
        Found by unique id in any function, with the number of attached
        foreground clients.
        """
        self.assertEqual(
            self.server.getStatusUnique(b"u"), (b"u", False, False, 0, 0, 0)
        )
        self.submit(name=b"other", unique=b"x")
        handle = self.submit(name=b"fn", unique=b"u")
        self.submit(name=b"fn", unique=b"u")
        self.submit(name=b"fn", unique=b"u", background=True)
        self.assertEqual(
            self.server.getStatusUnique(b"u"), (b"u", True, False, 0, 0, 2)
        )
        worker = self.worker(b"fn")
        self.grabHandle(worker)
        self.server.workStatus(worker, handle, b"5", b"6")
        self.assertEqual(self.server.getStatusUnique(b"u"), (b"u", True, True, 5, 6, 2))
        self.assertEqual(self.server.getStatusUnique(b"x")[:2], (b"x", True))
        self.server.workComplete(worker, handle, b"")
        self.assertEqual(
            self.server.getStatusUnique(b"u"), (b"u", False, False, 0, 0, 0)
        )

    def test_getStatusUniqueWalksNoFunction(self) -> None:
        """
        GET_STATUS_UNIQUE is one lookup in the index the functions keep: it
        never walks the functions (with 100,000 of them, walking took 8 ms
        per request, and 2,000 requests froze the server for 16 s).
        """
        self.submit(name=b"fn", unique=b"u")

        class Unwalkable(dict[bytes, object]):
            def values(self) -> Any:
                raise AssertionError("walked the functions")

            def __iter__(self) -> Any:
                raise AssertionError("walked the functions")

        functions = self.server.functions
        self.server.functions = Unwalkable(functions)  # type: ignore[assignment]
        self.assertEqual(self.server.getStatusUnique(b"u")[:2], (b"u", True))
        self.assertEqual(self.server.getStatusUnique(b"nope")[:2], (b"nope", False))
        self.server.functions = functions

    def test_getStatusUniqueDashOrEmpty(self) -> None:
        """
        C{-} and empty uniques are never found.
        """
        self.submit(unique=b"-", data=b"-")
        self.submit(unique=b"", data=b"")
        self.assertFalse(self.server.getStatusUnique(b"-")[1])
        self.assertFalse(self.server.getStatusUnique(b"")[1])

    def test_setClientId(self) -> None:
        """
        Client ids have whitespace replaced, are cut to 127 bytes, and an
        empty one means C{-}.
        """
        session = self.connect()
        self.assertEqual(session.clientId, b"-")
        self.server.setClientId(session, b"wk A\tB")
        self.assertEqual(session.clientId, b"wk_A_B")
        self.server.setClientId(session, b"x" * 200)
        self.assertEqual(session.clientId, b"x" * 127)
        self.server.setClientId(session, b"")
        self.assertEqual(session.clientId, b"-")

    def test_connectionIds(self) -> None:
        """
        Sessions are numbered in connection order unless given an id.
        """
        self.assertEqual(self.connect().connectionId, 1)
        self.assertEqual(
            self.server.connect(FakePeer(), connectionId=40).connectionId, 40
        )
        self.assertEqual(self.connect().connectionId, 2)


class QueryTests(CoreTestCase):
    """
    The figures and listings the admin protocol reads, as plain tuples.
    """

    def test_functionStatus(self) -> None:
        """
        Per function, in creation order: jobs held, jobs running, workers.
        """
        self.server.createFunction(b"idle")
        self.submit(background=True)
        self.submit(background=True, when=NOW + 60)
        self.grabHandle(self.worker(b"fn"))
        self.worker(b"fn")
        self.assertEqual(
            self.server.functionStatus(),
            [
                FunctionStatus(b"idle", 0, 0, 0),
                FunctionStatus(b"fn", 2, 1, 2),
            ],
        )

    def test_priorityStatus(self) -> None:
        """
        Per function and priority, the jobs waiting: queued or scheduled,
        not running.
        """
        self.submit(priority=HIGH)
        self.submit(priority=LOW, background=True, when=NOW + 60)
        self.submit()
        self.submit()
        self.grabHandle(self.worker(b"fn"))
        self.assertEqual(
            self.server.priorityStatus(), [PriorityStatus(b"fn", 0, 2, 1, 1)]
        )

    def test_listWorkers(self) -> None:
        """
        Every connection, in connection order, with what it can do.
        """
        client = self.client()
        worker = self.worker(b"a", b"b")
        self.server.setClientId(worker, b"w 1")
        self.assertEqual(
            self.server.listWorkers(),
            [
                WorkerInfo(client.connectionId, "127.0.0.1", b"-", []),
                WorkerInfo(worker.connectionId, "127.0.0.1", b"w_1", [b"a", b"b"]),
            ],
        )

    def test_workerCount(self) -> None:
        """
        The connections with a registered function: those L{listWorkers}
        shows with functions, counted without listing them.
        """
        self.client()
        self.worker(b"a", b"b")
        self.assertEqual(self.server.workerCount(), 1)
        self.worker(b"c")
        self.assertEqual(self.server.workerCount(), 2)
        self.assertEqual(
            self.server.workerCount(),
            sum(1 for info in self.server.listWorkers() if info.functions),
        )

    def test_listJobs(self) -> None:
        """
        Every live job, in submission order, with its failed attempts and
        whether the store holds it.
        """
        fg = self.submit(unique=b"u")
        bg = self.submit(background=True)
        worker = self.worker(b"fn")
        self.assertEqual(self.grabHandle(worker), fg)
        self.server.disconnect(worker)
        self.assertEqual(
            self.server.listJobs(),
            [JobInfo(fg, 1, False, b"u"), JobInfo(bg, 0, True, b"")],
        )


class EpochTests(CoreTestCase):
    """
    Jobs with a time to run at (SUBMIT_JOB_EPOCH and SUBMIT_JOB_SCHED).
    """

    def test_pastRunsAtOnce(self) -> None:
        """
        A job whose time has come, or is now, is runnable at once.
        """
        h1 = self.submit(background=True, when=NOW - 100)
        h2 = self.submit(background=True, when=NOW)
        self.assertEqual(self.grabAll(self.worker(b"fn")), [h1, h2])

    def test_futureWaits(self) -> None:
        """
        A future job cannot be grabbed and wakes nobody until its time;
        then sleeping workers get a NOOP and it can be grabbed.
        """
        sleeper = self.sleeper(b"fn")
        handle = self.submit(background=True, when=NOW + 10)
        self.assertEqual(peerOf(sleeper).take(), [])
        self.assertEqual(self.server.getStatus(handle), (handle, True, False, 0, 0))
        self.assertEqual(self.server.functions[b"fn"].scheduled, [0, 1, 0])
        self.assertEqual(self.grab(sleeper), (T.NO_JOB, ()))
        self.server.preSleep(sleeper)
        self.assertEqual(peerOf(sleeper).take(), [])
        self.clock.advance(9)
        self.assertEqual(peerOf(sleeper).take(), [])
        self.clock.advance(1)
        self.assertEqual(peerOf(sleeper).types(), [T.NOOP])
        self.assertEqual(self.server.functions[b"fn"].scheduled, [0, 0, 0])
        self.assertEqual(self.grabHandle(sleeper), handle)

    def test_futureDoesNotBlockOthers(self) -> None:
        """
        A future job does not hold back runnable jobs of its function, of
        any priority.
        """
        self.submit(background=True, when=NOW + 60)
        low = self.submit(priority=LOW)
        self.assertEqual(self.grabAll(self.worker(b"fn")), [low])

    def test_severalTimes(self) -> None:
        """
        Jobs due at different times become runnable in time order, whatever
        the order they were submitted in, each at its own time.
        """
        late = self.submit(background=True, when=NOW + 30)
        early = self.submit(background=True, when=NOW + 10)
        same = self.submit(background=True, when=NOW + 10)
        worker = self.worker(b"fn")
        self.clock.advance(10)
        self.assertEqual(self.grabAll(worker), [early, same])
        self.clock.advance(19)
        self.assertEqual(self.grabAll(worker), [])
        self.clock.advance(1)
        self.assertEqual(self.grabAll(worker), [late])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_laterSubmitEarlierTime(self) -> None:
        """
        A job due before the one the timer waits for gets its own wake-up.
        """
        self.submit(background=True, when=NOW + 100)
        sleeper = self.sleeper(b"fn")
        early = self.submit(background=True, when=NOW + 5)
        self.clock.advance(5)
        self.assertEqual(peerOf(sleeper).types(), [T.NOOP])
        self.assertEqual(self.grabHandle(sleeper), early)

    def test_scheduledCoalesces(self) -> None:
        """
        A scheduled job coalesces like any other.
        """
        handle = self.submit(unique=b"u", background=True, when=NOW + 10)
        self.assertEqual(self.submit(unique=b"u", background=True), handle)
        self.assertEqual(self.submit(unique=b"u"), handle)

    def test_submitScheduled(self) -> None:
        """
        L{JobServer.submitScheduled} reads the clock for the schedule: the
        job is a background job that runs at the next matching minute.
        """
        # NOW is 2023-11-14 22:13:20 UTC: the next 22:30 is 1000 s away.
        client = self.client()
        schedule = CronSchedule.parse(b"30", b"22", b"", b"*", b"")
        self.server.submitScheduled(client, b"fn", b"", b"d", schedule)
        [(ptype, (handle,))] = peerOf(client).take()
        self.assertEqual(ptype, T.JOB_CREATED)
        self.assertEqual(self.store.added[-1][1].when, NOW + 1000)
        worker = self.worker(b"fn")
        self.clock.advance(999)
        self.assertEqual(self.grab(worker), (T.NO_JOB, ()))
        self.clock.advance(1)
        self.assertEqual(self.grabHandle(worker), handle)

    def test_submitScheduledNever(self) -> None:
        """
        A schedule that never matches is answered with ERROR
        INVALID_ARGUMENT, and makes no job.
        """
        client = self.client()
        schedule = CronSchedule.parse(b"0", b"0", b"31", b"2", b"")
        self.server.submitScheduled(client, b"fn", b"", b"d", schedule)
        [(ptype, (code, text))] = peerOf(client).take()
        self.assertEqual((ptype, code), (T.ERROR, b"INVALID_ARGUMENT"))
        self.assertEqual(text, b"the schedule never matches")
        self.assertEqual(self.server.jobs, {})

    def test_stopCancelsTimers(self) -> None:
        """
        L{JobServer.stop} cancels the schedule timer and job timeouts.
        """
        self.submit(background=True, when=NOW + 10)
        self.submit()
        self.grabHandle(self.worker(b"fn", timeout=5.0))
        self.assertEqual(len(self.clock.getDelayedCalls()), 2)
        self.server.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class MaxQueueTests(CoreTestCase):
    """
    C{maxqueue} admission limits.
    """

    def refused(self, priority: Priority = NORMAL, background: bool = False) -> None:
        client = self.client()
        self.server.submitJob(client, b"fn", b"", b"", priority, background)
        self.assertEqual(
            peerOf(client).take(), [(T.ERROR, (b"QUEUE_ERROR", b"Job queue is full"))]
        )

    def test_oneValue(self) -> None:
        """
        One limit applies to every priority, foreground and background,
        counting running jobs; coalesced submits always succeed.
        """
        self.server.setMaxQueue(b"fn", 2, 2, 2)
        handle = self.submit(unique=b"u")
        self.submit(background=True)
        self.refused()
        self.refused(HIGH, True)
        self.refused(LOW)
        self.assertEqual(self.submit(unique=b"u"), handle)
        self.assertEqual(self.submit(unique=b"u", background=True), handle)
        self.grabHandle(self.worker(b"fn"))
        self.refused()
        self.assertEqual(self.server.functions[b"fn"].total, 2)
        self.assertEqual(len(self.store.added), 2)

    def test_threeValues(self) -> None:
        """
        Three limits apply per submitted priority against the function's
        total (gearmand's C{maxqueue mq2 5 3 1}).
        """
        self.server.setMaxQueue(b"fn", 5, 3, 1)
        self.submit(priority=LOW)
        self.refused(LOW)
        self.submit(priority=NORMAL)
        self.submit(priority=NORMAL)
        self.refused(NORMAL)
        self.submit(priority=HIGH)
        self.submit(priority=HIGH)
        self.refused(HIGH)
        self.assertEqual(self.server.functions[b"fn"].total, 5)

    def test_unlimited(self) -> None:
        """
        Zero or negative limits mean no limit; the limits create the
        function.
        """
        self.server.setMaxQueue(b"fn", 0, -1, 0)
        self.assertEqual(self.server.functions[b"fn"].maxQueue, [0, 0, 0])
        for _ in range(20):
            self.submit()

    def test_freedByCompletion(self) -> None:
        """
        Ending a job makes room again.
        """
        self.server.setMaxQueue(b"fn", 1, 1, 1)
        handle = self.submit()
        self.refused()
        worker = self.worker(b"fn")
        self.grabHandle(worker)
        self.server.workComplete(worker, handle, b"")
        self.submit()


class CancelTests(CoreTestCase):
    """
    Admin C{cancel job}.
    """

    def test_queued(self) -> None:
        """
        A queued job is gone at once; its clients get WORK_FAIL.
        """
        client = self.client()
        handle = self.submit(session=client)
        later = self.submit()
        self.assertTrue(self.server.cancelJob(handle))
        self.assertEqual(peerOf(client).take(), [(T.WORK_FAIL, (handle,))])
        self.assertEqual(client.attached, {})
        self.assertFalse(self.server.getStatus(handle)[1])
        self.assertEqual(self.server.functions[b"fn"].total, 1)
        self.assertEqual(self.server.functions[b"fn"].queued, [0, 1, 0])
        self.assertFalse(self.server.cancelJob(handle))
        self.assertEqual(self.grabAll(self.worker(b"fn")), [later])

    def test_scheduled(self) -> None:
        """
        A scheduled job is gone at once, and its time passes silently.
        """
        handle = self.submit(background=True, when=NOW + 10)
        sleeper = self.sleeper(b"fn")
        self.assertTrue(self.server.cancelJob(handle))
        self.assertEqual(self.server.functions[b"fn"].scheduled, [0, 0, 0])
        self.assertEqual(self.store.removed, [1])
        self.clock.advance(10)
        self.assertEqual(peerOf(sleeper).take(), [])
        self.assertEqual(self.grab(sleeper), (T.NO_JOB, ()))

    def test_running(self) -> None:
        """
        A running job is forgotten at once; the worker's later packets for
        it are accepted and discarded, and it can then take other jobs.
        """
        client = self.client()
        handle = self.submit(session=client)
        worker = self.worker(b"fn")
        self.grabHandle(worker)
        self.assertTrue(self.server.cancelJob(handle))
        self.assertEqual(peerOf(client).take(), [(T.WORK_FAIL, (handle,))])
        self.assertFalse(self.server.getStatus(handle)[1])
        self.assertEqual(self.server.functions[b"fn"].running, 0)
        self.assertEqual(self.server.functions[b"fn"].total, 0)
        self.assertFalse(self.server.cancelJob(handle))
        self.server.workStatus(worker, handle, b"1", b"2")
        self.server.workData(worker, T.WORK_DATA, handle, b"d")
        self.server.workComplete(worker, handle, b"r")
        self.assertEqual(peerOf(worker).take(), [])
        self.assertEqual(peerOf(client).take(), [])
        self.assertEqual(worker.jobs, {})
        other = self.submit()
        self.assertEqual(self.grabHandle(worker), other)

    def test_runningThenWorkerLeaves(self) -> None:
        """
        A cancelled running job is not requeued when its worker leaves.
        """
        handle = self.submit()
        worker = self.worker(b"fn")
        self.grabHandle(worker)
        self.server.cancelJob(handle)
        self.server.disconnect(worker)
        self.assertEqual(self.grab(self.worker(b"fn")), (T.NO_JOB, ()))
        self.assertEqual(self.server.functions[b"fn"].total, 0)

    def test_unknown(self) -> None:
        """An unknown handle cannot be cancelled."""
        self.assertFalse(self.server.cancelJob(b"H:test:1"))

    def test_uniqueFreed(self) -> None:
        """
        A cancelled job's unique id names nothing afterwards.
        """
        handle = self.submit(unique=b"u")
        self.server.cancelJob(handle)
        self.assertNotEqual(self.submit(unique=b"u"), handle)


class ManyCancelledTests(CoreTestCase):
    """
    Queues stay correct and bounded when many queued jobs are removed from
    their middle.
    """

    def test_manyCancelled(self) -> None:
        """
        Cancelling most of thousands of queued jobs (enough to compact the
        queue), then submitting more, hands out exactly the live jobs in
        order.
        """
        handles = [self.submit(background=True) for _ in range(3000)]
        lows = [self.submit(priority=LOW) for _ in range(50)]
        survivors = []
        for i, handle in enumerate(handles):
            if i % 5 == 3:
                survivors.append(handle)
            else:
                self.assertTrue(self.server.cancelJob(handle))
        function = self.server.functions[b"fn"]
        self.assertEqual(function.queued, [0, 600, 50])
        self.assertLess(len(function.queues[1] or ()), 3000)
        more = [self.submit() for _ in range(10)]
        self.server.cancelJob(more[0])
        worker = self.worker(b"fn")
        self.assertEqual(self.grabAll(worker), survivors + more[1:] + lows)
        self.assertEqual(function.queued, [0, 0, 0])
        self.assertEqual(function.dead, [0, 0, 0])
        self.assertEqual([len(q) if q else 0 for q in function.queues], [0, 0, 0])
        self.assertEqual(len(self.store.removed), 2400)

    def test_manyAbandoned(self) -> None:
        """
        The same holds when the jobs go because their clients left,
        interleaved with grabs.
        """
        clients = [self.client() for _ in range(2500)]
        handles = [self.submit(session=c) for c in clients]
        worker = self.worker(b"fn")
        self.assertEqual(self.grabHandle(worker), handles[0])
        for c in clients[1:2400]:
            self.server.disconnect(c)
        self.assertEqual(self.grabAll(worker), handles[2400:])
        self.assertEqual(self.server.functions[b"fn"].total, 101)


class DropFunctionTests(CoreTestCase):
    """
    Admin C{drop function} and C{create function}.
    """

    def test_notFound(self) -> None:
        """Unknown names, compared exactly, are not found."""
        self.server.createFunction(b"foo")
        self.assertEqual(self.server.dropFunction(b"nope"), "function not found")
        self.assertEqual(self.server.dropFunction(b"FOO"), "function not found")
        self.assertEqual(self.server.dropFunction(b"fo"), "function not found")

    def test_idle(self) -> None:
        """An idle function is dropped."""
        self.assertEqual(self.server.createFunction(b"foo").name, b"foo")
        self.assertIsNone(self.server.dropFunction(b"foo"))
        self.assertNotIn(b"foo", self.server.functions)

    def test_workersOrRunning(self) -> None:
        """
        A function with workers (running jobs or not) is kept.
        """
        worker = self.worker(b"fn")
        self.assertEqual(
            self.server.dropFunction(b"fn"),
            "there are still connected workers or executing clients",
        )
        self.submit()
        self.grabHandle(worker)
        self.assertEqual(
            self.server.dropFunction(b"fn"),
            "there are still connected workers or executing clients",
        )

    def test_queuedJobs(self) -> None:
        """
        A function with queued or scheduled jobs is kept; once they are
        gone it can be dropped.
        """
        self.server.createFunction(b"fn")
        handle = self.submit(background=True)
        self.assertEqual(self.server.dropFunction(b"fn"), "there are still queued jobs")
        self.server.cancelJob(handle)
        scheduled = self.submit(background=True, when=NOW + 10)
        self.assertEqual(self.server.dropFunction(b"fn"), "there are still queued jobs")
        self.server.cancelJob(scheduled)
        self.assertIsNone(self.server.dropFunction(b"fn"))

    def test_workerLeft(self) -> None:
        """
        After its last worker leaves, a function without jobs can go; one
        an administrator did not create is gone already.
        """
        worker = self.worker(b"fn", b"other")
        self.server.createFunction(b"fn")
        self.server.disconnect(worker)
        self.assertIsNone(self.server.dropFunction(b"fn"))
        self.assertEqual(self.server.dropFunction(b"other"), "function not found")

    def test_recreated(self) -> None:
        """
        A dropped function comes back fresh, without its old limits.
        """
        self.server.setMaxQueue(b"fn", 1, 1, 1)
        self.assertIsNone(self.server.dropFunction(b"fn"))
        self.submit()
        self.submit()
        self.assertEqual(self.server.functions[b"fn"].maxQueue, [0, 0, 0])


class RestoreTests(CoreTestCase):
    """
    L{JobServer.restore} queues jobs replayed from the store.
    """

    def test_replay(self) -> None:
        """
        Replayed jobs get new handles and keep their priority, time,
        reducer and unique id; ending one removes its record.
        """
        records = {
            "k1": StoredJob(b"fn", b"low", b"1", priority=2),
            "k2": StoredJob(b"fn", b"", b"2", priority=0),
            "k3": StoredJob(b"fn", b"later", b"3", when=NOW + 60),
            "k4": StoredJob(b"fn", b"red", b"4", reducer=b"r"),
            "k5": StoredJob(b"fn", b"bad", b"5", priority=7),
        }
        self.store.records.update(records)
        self.assertEqual(
            self.successResultOf(self.store.replay(self.server.restore)), 5
        )
        self.assertEqual(
            [job.handle for job in self.server.iterJobs()],
            [b"H:test:%d" % i for i in range(1, 6)],
        )
        worker = self.worker(b"fn")
        got = [self.grab(worker, T.GRAB_JOB_ALL) for _ in range(5)]
        self.assertEqual(
            got,
            [
                (T.JOB_ASSIGN_UNIQ, (b"H:test:2", b"fn", b"", b"2")),
                (T.JOB_ASSIGN_ALL, (b"H:test:4", b"fn", b"red", b"r", b"4")),
                (T.JOB_ASSIGN_UNIQ, (b"H:test:5", b"fn", b"bad", b"5")),
                (T.JOB_ASSIGN_UNIQ, (b"H:test:1", b"fn", b"low", b"1")),
                (T.NO_JOB, ()),
            ],
        )
        self.clock.advance(60)
        self.assertEqual(self.grabHandle(worker), b"H:test:3")
        self.server.workComplete(worker, b"H:test:3", b"")
        self.assertEqual(self.store.removed, ["k3"])
        self.assertEqual(self.submit(unique=b"red"), b"H:test:4")

    def test_duplicates(self) -> None:
        """
        A second record with the function and unique id of an earlier one
        is removed from the store and not queued; empty uniques are never
        duplicates.
        """
        self.server.restore("a", StoredJob(b"fn", b"u", b"1"))
        self.server.restore("b", StoredJob(b"fn", b"u", b"2"))
        self.server.restore("c", StoredJob(b"other", b"u", b"3"))
        self.server.restore("d", StoredJob(b"fn", b"", b"4"))
        self.server.restore("e", StoredJob(b"fn", b"", b"4"))
        self.server.restore("f", StoredJob(b"fn", b"-", b"4"))
        self.server.restore("g", StoredJob(b"fn", b"-", b"4"))
        self.assertEqual(self.store.removed, ["b", "g"])
        self.assertEqual(self.server.functions[b"fn"].total, 4)
        self.assertEqual(len(self.grabAll(self.worker(b"fn"))), 4)

    def test_wakes(self) -> None:
        """
        Restored runnable jobs wake sleeping workers.
        """
        sleeper = self.sleeper(b"fn")
        self.server.restore("a", StoredJob(b"fn", b"", b""))
        self.assertEqual(peerOf(sleeper).types(), [T.NOOP])

    def test_pastTimeRunnable(self) -> None:
        """
        A restored job whose time passed while the server was down runs at
        once.
        """
        self.server.restore("a", StoredJob(b"fn", b"", b"", when=NOW - 3600))
        self.assertEqual(self.grabHandle(self.worker(b"fn")), b"H:test:1")


class _CountedFunction(Function):
    """
    A function that counts every look at its attributes while L{counting},
    and fails once there were more than L{budget}: a deterministic measure
    of how many of a worker's functions a request visits.
    """

    __slots__ = ()
    counting = False
    looks = 0
    budget = 0

    def __getattribute__(self, name: str) -> Any:
        cls = _CountedFunction
        if cls.counting:
            cls.looks += 1
            if cls.looks > cls.budget:
                cls.counting = False
                raise AssertionError(f"more than {cls.budget} looks at functions")
        return object.__getattribute__(self, name)


class ManyFunctionsTests(CoreTestCase):
    """
    A worker's sleep, its grabs and the wake-up on a new job cost the same
    with one function or 100,000: a worker registered for 100,000 functions
    sending 2,000 PRE_SLEEP and GRAB_JOB pairs once froze the server for
    48 seconds, each of them walking all its functions.
    """

    workerWakeup = None
    functionCount = 100_000

    def setUp(self) -> None:
        super().setUp()
        self.names = [b"f%d" % i for i in range(self.functionCount)]
        for name in self.names:
            self.server.functions[name] = _CountedFunction(name, self.server._uniques)
        self.many = self.connect()
        for name in self.names:
            self.server.canDo(self.many, name)
        # The first sleep gives it its place in each line: once.
        self.server.preSleep(self.many)
        self.addCleanup(setattr, _CountedFunction, "counting", False)

    def countLooks(self, budget: int) -> None:
        _CountedFunction.looks = 0
        _CountedFunction.budget = budget
        _CountedFunction.counting = True

    def looks(self) -> int:
        _CountedFunction.counting = False
        return _CountedFunction.looks

    def test_sleepAndGrab(self) -> None:
        """
        2,000 PRE_SLEEP + GRAB_JOB pairs with nothing to do look at none of
        the worker's functions.
        """
        self.countLooks(0)
        for _ in range(2000):
            self.server.preSleep(self.many)
            self.server.grabJob(self.many)
        self.assertEqual(self.looks(), 0)
        sent = peerOf(self.many).take()
        self.assertEqual(sent, [(T.NO_JOB, ())] * 2000)

    def test_wakeAndRun(self) -> None:
        """
        A job for one of the 100,000 wakes the worker, which takes it,
        finishes it and sleeps again, with a handful of looks at functions
        for each step, whichever function the job is for.
        """
        client = self.client()
        for name in [self.names[0], self.names[-1], self.names[50_000]] * 3:
            self.countLooks(200)
            self.server.submitJob(client, name, b"", b"d")
            self.assertEqual(peerOf(self.many).take(), [(T.NOOP, ())])
            [(_, (handle,))] = peerOf(client).take()
            self.assertEqual(self.grabHandle(self.many), handle)
            self.server.workComplete(self.many, handle, b"")
            self.assertEqual(peerOf(client).take(), [(T.WORK_COMPLETE, (handle, b""))])
            self.server.preSleep(self.many)
            self.assertEqual(self.grab(self.many), (T.NO_JOB, ()))
            self.server.preSleep(self.many)
            self.assertLess(self.looks(), 200)
            self.assertEqual(peerOf(self.many).take(), [])

    def test_sameWorkerWoken(self) -> None:
        """
        With a second worker asleep on one of the functions, the one asleep
        longest is still the one woken.
        """
        other = self.sleeper(self.names[3])
        # The many-function worker grabs and sleeps again: now it is the
        # younger sleeper.
        self.server.grabJob(self.many)
        self.server.preSleep(self.many)
        peerOf(self.many).take()
        self.countLooks(100)
        self.submit(name=self.names[3])
        self.assertLess(self.looks(), 100)
        self.assertEqual(peerOf(other).take(), [(T.NOOP, ())])
        self.assertEqual(peerOf(self.many).take(), [])


class ReclaimTests(CoreTestCase):
    """
    A function nothing needs any more (no worker, no job, not named by an
    administrator) is forgotten at once; each of those keeps it.
    """

    def assertKept(self, name: bytes = b"fn") -> None:
        self.assertIn(name, self.server.functions)

    def assertGone(self, name: bytes = b"fn") -> None:
        self.assertNotIn(name, self.server.functions)

    def test_lastWorkerLeaves(self) -> None:
        """
        A worker keeps its functions; when the last one disconnects, gives
        the function up (CANT_DO) or resets its abilities, it goes.
        """
        for leave in ("disconnect", "cantDo", "resetAbilities"):
            first, second = self.worker(b"fn", b"x"), self.worker(b"fn")
            self.server.disconnect(second)
            self.assertKept()
            if leave == "disconnect":
                self.server.disconnect(first)
            elif leave == "cantDo":
                self.server.cantDo(first, b"fn")
                self.server.cantDo(first, b"x")
            else:
                self.server.resetAbilities(first)
            self.assertGone()
            self.assertGone(b"x")

    def test_lastJobEnds(self) -> None:
        """
        Queued, running and scheduled jobs keep their function; it goes
        when the last one ends, whichever way.
        """
        client = self.client()
        queued = self.submit(background=True)
        scheduled = self.submit(background=True, when=NOW + 60)
        foreground = self.submit(session=client)
        worker = self.worker(b"fn")
        running = self.grabHandle(worker)
        self.assertEqual(running, queued)
        self.server.cantDo(worker, b"fn")
        # Its job went back to the queue: still needed.
        self.assertKept()
        self.server.cancelJob(queued)
        self.assertKept()
        self.server.disconnect(client)
        self.assertKept()
        self.clock.advance(61)
        self.assertKept()
        worker = self.worker(b"fn")
        self.assertEqual(self.grabHandle(worker), scheduled)
        self.server.workComplete(worker, scheduled, b"")
        self.assertKept()
        self.server.disconnect(worker)
        self.assertGone()
        self.assertFalse(self.server.getStatus(foreground)[1])

    def test_runningJobKeepsIt(self) -> None:
        """
        A job held by a worker keeps its function, and the worker's
        result ends it normally.
        """
        client = self.client()
        handle = self.submit(session=client)
        worker = self.worker(b"fn", b"other")
        self.assertEqual(self.grabHandle(worker), handle)
        self.server.cantDo(worker, b"other")
        self.assertKept()
        self.server.workComplete(worker, handle, b"r")
        self.assertEqual(peerOf(client).take(), [(T.WORK_COMPLETE, (handle, b"r"))])
        self.assertKept()
        self.server.disconnect(worker)
        self.assertGone()

    def test_storeFailureForgetsNew(self) -> None:
        """A function made by a submit the store refused goes with it."""
        self.store.manual = True
        client = self.client()
        self.server.submitJob(client, b"fn", b"", b"d", NORMAL, True)
        self.assertKept()
        self.store.failAdd("no")
        self.assertGone()

    def test_administratorKeeps(self) -> None:
        """
        C{create function} and C{maxqueue} keep a function without workers
        or jobs until C{drop function}.
        """
        self.server.createFunction(b"fn")
        self.server.setMaxQueue(b"limited", 0, 0, 0)
        worker = self.worker(b"fn", b"limited")
        handle = self.submit()
        self.assertEqual(self.grabHandle(worker), handle)
        self.server.workComplete(worker, handle, b"")
        self.server.disconnect(worker)
        self.assertKept()
        self.assertKept(b"limited")
        self.assertIsNone(self.server.dropFunction(b"fn"))
        self.assertGone()

    def test_comesBackFresh(self) -> None:
        """
        A forgotten function is made anew by the next CAN_DO or submit,
        and works as before.
        """
        worker = self.worker(b"fn")
        self.server.disconnect(worker)
        self.assertGone()
        worker = self.sleeper(b"fn")
        handle = self.submit()
        self.assertEqual(peerOf(worker).take(), [(T.NOOP, ())])
        self.assertEqual(self.grabHandle(worker), handle)
        self.assertEqual(self.server.functionStatus(), [FunctionStatus(b"fn", 1, 1, 1)])

    def test_patienceTimerCancelled(self) -> None:
        """
        A function forgotten while its wake-up patience timer runs takes
        the timer with it.
        """
        self.server._waker.limit = None
        worker = self.sleeper(b"fn")
        client = self.client()
        self.server.submitJob(client, b"fn", b"", b"d")
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.server.disconnect(client)
        self.server.disconnect(worker)
        self.assertGone()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_statusHonest(self) -> None:
        """The admin listings name only the functions still needed."""
        worker = self.worker(b"a", b"b")
        self.server.createFunction(b"c")
        self.server.cantDo(worker, b"a")
        self.assertEqual([f.name for f in self.server.functionStatus()], [b"b", b"c"])
        self.assertEqual([f.name for f in self.server.priorityStatus()], [b"b", b"c"])


class FunctionCapTests(CoreTestCase):
    """
    C{maxFunctions}: whatever would make one function too many is refused
    with C{ERROR TOO_MANY_FUNCTIONS} and changes nothing else.
    """

    error = (
        T.ERROR,
        (
            b"TOO_MANY_FUNCTIONS",
            b"Too many functions: the server holds its limit of 3 functions",
        ),
    )

    def setUp(self) -> None:
        super().setUp()
        self.server.maxFunctions = 3
        self.worker(b"a", b"b", b"c")

    def assertUnchanged(self) -> None:
        self.assertEqual(list(self.server.functions), [b"a", b"b", b"c"])

    def test_default(self) -> None:
        """By default the server holds 100,000 functions."""
        server = JobServer(self.clock, handlePrefix=b"H:x")
        self.assertEqual(server.maxFunctions, 100_000)
        self.assertRaises(ValueError, JobServer, self.clock, maxFunctions=0)

    def test_canDo(self) -> None:
        """
        CAN_DO and CAN_DO_TIMEOUT of a new function: refused, the worker
        keeps what it had, and may still register known ones.
        """
        worker = self.worker(b"a")
        self.server.canDo(worker, b"d")
        self.server.canDo(worker, b"e", 5.0)
        self.assertEqual(peerOf(worker).take(), [self.error, self.error])
        self.assertUnchanged()
        self.assertEqual([f.name for f in worker.functions], [b"a"])
        self.assertEqual(worker.timeouts, {})
        self.server.canDo(worker, b"b")
        self.assertEqual(peerOf(worker).take(), [])
        self.assertEqual([f.name for f in worker.functions], [b"a", b"b"])

    def test_submits(self) -> None:
        """
        Every kind of submit for a new function is refused, no job made;
        a submit for a known one goes through.
        """
        client = self.client()
        self.server.submitJob(client, b"d", b"", b"x")
        self.server.submitJob(client, b"d", b"u", b"x", HIGH, True)
        self.server.submitJob(client, b"d", b"", b"x", LOW, True, NOW + 60)
        self.server.submitJob(client, b"d", b"", b"x", reducer=b"r")
        everyMinute = CronSchedule.parse(b"*", b"*", b"*", b"*", b"*")
        self.server.submitScheduled(client, b"d", b"", b"x", everyMinute)
        self.assertEqual(peerOf(client).take(), [self.error] * 5)
        self.assertEqual(self.server.jobs, {})
        self.assertEqual(self.store.records, {})
        self.assertUnchanged()
        self.submit(name=b"a", session=client)

    def test_admin(self) -> None:
        """
        Admin C{create function} and C{maxqueue} of a new function raise
        L{TooManyFunctions}; of a known one, they work.
        """
        self.assertRaises(TooManyFunctions, self.server.createFunction, b"d")
        error = self.assertRaises(
            TooManyFunctions, self.server.setMaxQueue, b"d", 1, 1, 1
        )
        self.assertEqual(error.limit, 3)
        self.assertUnchanged()
        self.server.createFunction(b"a")
        self.server.setMaxQueue(b"b", 1, 1, 1)

    def test_roomAgain(self) -> None:
        """Once a function is forgotten, a new one may be made."""
        worker = self.worker(b"d")
        self.assertEqual(peerOf(worker).take(), [self.error])
        for session in list(self.server.sessions):
            self.server.disconnect(session)
        self.assertEqual(self.server.functions, {})
        self.server.canDo(worker, b"d")
        self.assertEqual(peerOf(worker).take(), [])

    def test_replayNotRefused(self) -> None:
        """
        Jobs replayed from the store were acknowledged: their functions
        are made past the limit, and new ones are refused until there is
        room again.
        """
        self.server.restore("k1", StoredJob(b"d", b"", b"x", 1, 0, None))
        self.assertEqual(len(self.server.functions), 4)
        self.assertEqual(len(self.server.jobs), 1)
        client = self.client()
        self.server.submitJob(client, b"e", b"", b"x")
        self.assertEqual(peerOf(client).take(), [self.error])


class FunctionMemoryTests(CoreTestCase):
    """
    What a function costs, measured with tracemalloc: an idle one shares
    its empty containers (it took 3.3 KB, a worker's 3.7 KB, before).
    """

    def perFunction(self, make: Any, count: int = 5000) -> float:
        tracemalloc.start()
        self.addCleanup(tracemalloc.stop)
        before = tracemalloc.get_traced_memory()[0]
        make([b"function-%06d" % i for i in range(count)])
        return (tracemalloc.get_traced_memory()[0] - before) / count

    def test_idle(self) -> None:
        """A function created by an administrator takes under 300 bytes."""

        def make(names: list[bytes]) -> None:
            for name in names:
                self.server.createFunction(name)

        self.assertLess(self.perFunction(make), 300)

    def test_ofAWorker(self) -> None:
        """
        A function registered by a sleeping worker takes under 1 KB, and
        nothing much once that worker has left.
        """
        worker = self.connect()

        def make(names: list[bytes]) -> None:
            for name in names:
                self.server.canDo(worker, name)
            self.server.preSleep(worker)

        self.assertLess(self.perFunction(make), 1000)
        self.server.disconnect(worker)
        self.assertEqual(self.server.functions, {})
