"""
Tests for L{txgearman.server.wakeup}: which sleeping workers a job wakes,
driven on sessions and functions directly, with a L{task.Clock}.
"""

from __future__ import annotations

from twisted.internet import task
from twisted.trial import unittest

from txgearman.codec import PacketType as T
from txgearman.codec import Priority
from txgearman.server.function import Function
from txgearman.server.job import Job
from txgearman.server.session import Session
from txgearman.server.wakeup import WAKE_PATIENCE, Waker
from txgearman.test.fakes import FakePeer


class WakerTestCase(unittest.SynchronousTestCase):
    """
    A L{Waker} of some C{limit}, functions, and workers for them.
    """

    limit: int | None = None

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.waker = Waker(self.clock, self.limit)
        self.functions: dict[bytes, Function] = {}
        self.fn = self.function(b"fn")
        self.addCleanup(lambda: self.waker.stop(self.functions.values()))
        self.handles = 0

    def function(self, name: bytes) -> Function:
        """The function called C{name}, created if new."""
        if name not in self.functions:
            self.functions[name] = Function(name)
        return self.functions[name]

    def worker(self, *names: bytes) -> Session:
        session = Session(FakePeer(), 1, "-")
        for name in names or (b"fn",):
            session.addFunction(self.function(name))
        return session

    def sleepers(self, count: int) -> list[Session]:
        """C{count} workers of C{fn} asleep, oldest first."""
        workers = [self.worker() for _ in range(count)]
        for worker in workers:
            self.waker.sleep(worker)
        return workers

    def queue(self, function: Function | None = None) -> Job:
        """Queue a job of C{function} (C{fn}), without waking anyone."""
        function = function or self.fn
        self.handles += 1
        job = Job(b"H:%d" % self.handles, function, b"", b"", Priority.NORMAL, False)
        function.admit(job)
        function.push(job)
        return job

    def submit(self, function: Function | None = None) -> Job:
        """Queue a job and wake workers for it, as the core does."""
        job = self.queue(function)
        self.waker.wake(job.function)
        return job

    def woken(self, workers: list[Session]) -> list[int]:
        """Which of C{workers} got a NOOP since the last look."""
        result = []
        for i, worker in enumerate(workers):
            peer = worker.peer
            assert isinstance(peer, FakePeer)
            if peer.types() == [T.NOOP]:
                result.append(i)
        return result


class SleepTests(WakerTestCase):
    """
    L{Waker.sleep} and L{Waker.learned}: who is in line to be woken.
    """

    def test_nothingRunnable(self) -> None:
        """
        A worker with nothing to do sleeps in the line of each of its
        functions, and gets no NOOP.
        """
        worker = self.worker(b"a", b"b")
        self.waker.sleep(worker)
        self.assertTrue(worker.sleeping)
        self.assertEqual(self.woken([worker]), [])
        self.assertIn(worker, self.function(b"a").sleepers)
        self.assertIn(worker, self.function(b"b").sleepers)

    def test_runnable(self) -> None:
        """
        A worker that could run a job gets its NOOP at once and sleeps in
        no line.
        """
        self.queue(self.function(b"b"))
        worker = self.worker(b"a", b"b")
        self.waker.sleep(worker)
        self.assertEqual(self.woken([worker]), [0])
        self.assertTrue(worker.noopSent)
        self.assertEqual(list(self.function(b"a").sleepers), [])

    def test_learned(self) -> None:
        """
        A sleeper that can do a new function is woken at once if that has
        a runnable job, and otherwise sleeps in its line too.
        """
        worker = self.worker(b"a")
        self.waker.sleep(worker)
        worker.addFunction(self.function(b"b"))
        self.waker.learned(worker, self.function(b"b"))
        self.assertIn(worker, self.function(b"b").sleepers)
        self.queue(self.function(b"c"))
        worker.addFunction(self.function(b"c"))
        self.waker.learned(worker, self.function(b"c"))
        self.assertEqual(self.woken([worker]), [0])
        self.assertEqual(list(self.function(b"a").sleepers), [])

    def test_learnedAwake(self) -> None:
        """
        A worker that is not asleep is in no line, whatever it learns.
        """
        worker = self.worker(b"a")
        self.queue(self.function(b"a"))
        self.waker.learned(worker, self.function(b"a"))
        self.assertEqual(self.woken([worker]), [])
        self.assertEqual(list(self.function(b"a").sleepers), [])


class LineOrderTests(WakerTestCase):
    """
    A sleep does not visit the worker's functions, yet every line keeps
    the order it had when it did: oldest sleep first.
    """

    limit = 0

    def line(self, name: bytes) -> list[Session]:
        return self.function(name).sleepers

    def test_sleepAgainAfterGrab(self) -> None:
        """
        A sleeper that grabs (and gets nothing) and sleeps again goes to
        the end of each of its lines, behind those who slept meanwhile.
        """
        a = self.worker(b"fn", b"x")
        b = self.worker(b"fn", b"x")
        self.waker.sleep(a)
        self.waker.sleep(b)
        self.waker.grabbed(a)
        self.assertEqual((self.line(b"fn"), self.line(b"x")), ([b], [b]))
        self.waker.sleep(a)
        self.assertEqual((self.line(b"fn"), self.line(b"x")), ([b, a], [b, a]))
        self.waker.limit = 1
        self.submit(self.function(b"x"))
        self.assertEqual(self.woken([a, b]), [1])

    def test_wokenElsewhere(self) -> None:
        """
        A worker woken for one function's job leaves the lines of its
        others too, and sleeping again puts it at their ends.
        """
        a = self.worker(b"fn", b"x")
        b = self.worker(b"x")
        self.waker.sleep(a)
        self.waker.sleep(b)
        job = self.submit()
        self.assertEqual(self.woken([a, b]), [0])
        self.assertEqual(self.line(b"x"), [b])
        self.fn.start(job.priority, a)
        self.waker.grabbed(a)
        self.waker.sleep(a)
        self.assertEqual(self.line(b"x"), [b, a])
        self.waker.limit = 1
        self.submit(self.function(b"x"))
        self.assertEqual(self.woken([a, b]), [1])

    def test_secondSleepKeepsPlace(self) -> None:
        """A PRE_SLEEP while asleep already keeps the worker's place."""
        a, b = self.worker(), self.worker()
        self.waker.sleep(a)
        self.waker.sleep(b)
        self.waker.sleep(a)
        self.assertEqual(self.line(b"fn"), [a, b])

    def test_learnedAtTheEnd(self) -> None:
        """
        A function learned while asleep puts the worker at the end of that
        function's line, behind workers that went to sleep after it.
        """
        a = self.worker(b"fn")
        b = self.worker(b"x")
        self.waker.sleep(a)
        self.waker.sleep(b)
        a.addFunction(self.function(b"x"))
        self.waker.learned(a, self.function(b"x"))
        self.assertEqual(self.line(b"x"), [b, a])

    def test_manyFunctionsOneSleep(self) -> None:
        """
        Sleeping again after a grab visits none of the worker's functions
        whose line still holds its place: only those that lost it.
        """
        functions = [self.function(b"f%d" % i) for i in range(50)]
        worker = Session(FakePeer(), 1, "-")
        for function in functions:
            worker.addFunction(function)
        self.waker.sleep(worker)
        self.assertEqual(worker.outOfLine, {})
        self.waker.grabbed(worker)
        self.waker.sleep(worker)
        self.assertEqual(worker.outOfLine, {})
        self.assertEqual([len(f.sleepHeap or ()) for f in functions], [1] * 50)
        job = self.submit(functions[7])
        self.assertEqual(self.woken([worker]), [0])
        self.assertEqual(list(worker.outOfLine), [functions[7]])
        functions[7].start(job.priority, worker)
        self.waker.grabbed(worker)
        self.waker.sleep(worker)
        self.assertEqual(worker.outOfLine, {})
        self.assertTrue(all(worker in f.sleepers for f in functions))


class JustEnoughTests(WakerTestCase):
    """
    With no limit, a job wakes one sleeper, who holds a claim on the
    function until it comes for a job.
    """

    def test_onePerJob(self) -> None:
        """
        Each job wakes one more sleeper, the longest asleep; a wake-up
        with no new job wakes no one.
        """
        workers = self.sleepers(3)
        self.submit()
        self.assertEqual(self.woken(workers), [0])
        self.assertIs(workers[0].wokenFor, self.fn)
        self.waker.wake(self.fn)
        self.assertEqual(self.woken(workers), [])
        self.submit()
        self.assertEqual(self.woken(workers), [1])
        self.assertEqual(list(self.fn.woken), workers[:2])

    def test_grabbedTookTheJob(self) -> None:
        """
        A woken worker that took its job is awake, claims nothing, and no
        one else is woken.
        """
        workers = self.sleepers(2)
        self.submit()
        self.woken(workers)
        self.assertIsNotNone(workers[0].nextJob())
        self.waker.grabbed(workers[0])
        self.assertFalse(workers[0].sleeping)
        self.assertIsNone(workers[0].wokenFor)
        self.assertEqual(list(self.fn.woken), [])
        self.assertEqual(self.woken(workers), [])

    def test_grabbedOtherJob(self) -> None:
        """
        A woken worker that came and left its job waiting (it took
        another, or none) hands the wake-up on to the next sleeper.
        """
        workers = self.sleepers(2)
        self.submit()
        self.woken(workers)
        self.waker.grabbed(workers[0])
        self.assertEqual(self.woken(workers), [1])
        self.assertIs(workers[1].wokenFor, self.fn)

    def test_grabbedWithoutNoop(self) -> None:
        """
        A sleeper that grabs without having been woken leaves every line.
        """
        workers = self.sleepers(2)
        self.waker.grabbed(workers[0])
        self.assertFalse(workers[0].sleeping)
        self.assertEqual(list(self.fn.sleepers), [workers[1]])

    def test_patience(self) -> None:
        """
        A woken worker that does not come within L{WAKE_PATIENCE} loses its
        claim, and the next sleeper is woken; the timer then waits for
        the next claim to expire, and stops once none is left.
        """
        workers = self.sleepers(3)
        self.submit()
        self.clock.advance(WAKE_PATIENCE / 2)
        self.submit()
        self.assertEqual(self.woken(workers), [0, 1])
        self.clock.advance(WAKE_PATIENCE / 2)
        self.assertIsNone(workers[0].wokenFor)
        self.assertEqual(self.woken(workers), [2])
        self.assertEqual(list(self.fn.woken), workers[1:])
        self.waker.grabbed(workers[1])
        self.waker.grabbed(workers[2])
        self.clock.advance(WAKE_PATIENCE)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertIsNone(self.fn.wakeTimer)

    def test_forget(self) -> None:
        """
        A worker giving up the function it was woken for leaves its line
        and drops its claim; the caller wakes another once it has requeued
        what the worker held.
        """
        workers = self.sleepers(2)
        self.submit()
        self.woken(workers)
        self.assertTrue(self.waker.forget(workers[0], self.fn))
        self.assertEqual(list(self.fn.woken), [])
        self.assertFalse(self.waker.forget(workers[1], self.fn))
        self.assertEqual(list(self.fn.sleepers), [])

    def test_leave(self) -> None:
        """
        A worker that disconnects leaves every line and names the function
        it was woken for.
        """
        workers = self.sleepers(2)
        self.submit()
        self.assertIs(self.waker.leave(workers[0]), self.fn)
        self.assertIsNone(self.waker.leave(workers[1]))
        self.assertEqual(list(self.fn.sleepers), [])
        self.assertEqual(list(self.fn.woken), [])

    def test_sleepAgain(self) -> None:
        """
        A woken worker that sleeps again with nothing to do gives up its
        claim; one with something runnable keeps it.
        """
        workers = self.sleepers(1)
        self.submit()
        self.woken(workers)
        self.waker.sleep(workers[0])
        self.assertIs(workers[0].wokenFor, self.fn)
        self.assertEqual(self.woken(workers), [0])
        workers[0].nextJob()
        self.waker.sleep(workers[0])
        self.assertIsNone(workers[0].wokenFor)

    def test_stop(self) -> None:
        """
        L{Waker.stop} cancels the patience timers.
        """
        self.sleepers(1)
        self.submit()
        self.waker.stop([self.fn])
        self.assertEqual(self.clock.getDelayedCalls(), [])


class AllTests(WakerTestCase):
    """
    With a limit of 0, as gearmand does, a job wakes every sleeper.
    """

    limit = 0

    def test_all(self) -> None:
        """Every sleeper is woken; nobody holds a claim."""
        workers = self.sleepers(3)
        self.submit()
        self.assertEqual(self.woken(workers), [0, 1, 2])
        self.assertEqual(list(self.fn.woken), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])


class LimitTests(WakerTestCase):
    """
    With a limit of N, a job wakes the N sleepers asleep longest.
    """

    limit = 2

    def test_limit(self) -> None:
        """Two at a time, oldest first, whatever the queue holds."""
        workers = self.sleepers(5)
        self.queue()
        self.queue()
        self.submit()
        self.assertEqual(self.woken(workers), [0, 1])
        self.submit()
        self.assertEqual(self.woken(workers), [2, 3])
