"""
Tests for L{txgearman.server.function}: a function's books of its jobs
(counters, queues, unique index) and of its workers, each kept by one
call per move of a job.
"""

from __future__ import annotations

from twisted.trial import unittest

from txgearman.codec import Priority
from txgearman.server.function import Function, FunctionStatus, PriorityStatus
from txgearman.server.job import Job, JobState
from txgearman.server.session import Session
from txgearman.test.fakes import FakePeer

HIGH, NORMAL, LOW = Priority.HIGH, Priority.NORMAL, Priority.LOW


class FunctionTestCase(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.function = Function(b"fn")
        self.count = 0

    def job(
        self, unique: bytes = b"", data: bytes = b"d", priority: Priority = NORMAL
    ) -> Job:
        """A new job of the function, admitted."""
        self.count += 1
        job = Job(b"H:%d" % self.count, self.function, unique, data, priority, False)
        self.function.admit(job)
        return job

    def queued(self, priority: Priority = NORMAL) -> Job:
        job = self.job(priority=priority)
        self.function.push(job)
        return job

    def worker(self) -> Session:
        return Session(FakePeer(), 1, "-")

    def assertCounts(
        self, total: int, running: int, queued: list[int], scheduled: list[int]
    ) -> None:
        """The function's counters are these."""
        f = self.function
        # Lists: an idle function shares a tuple of zeros.
        actual = (f.total, f.running, list(f.queued), list(f.scheduled))
        self.assertEqual(actual, (total, running, queued, scheduled))


class AdmitTests(FunctionTestCase):
    """
    L{Function.admit}: a new job is counted and findable by unique id.
    """

    def test_counted(self) -> None:
        """A new job counts in the total, and is still pending."""
        job = self.job()
        self.assertCounts(1, 0, [0, 0, 0], [0, 0, 0])
        self.assertIs(job.state, JobState.PENDING)

    def test_unique(self) -> None:
        """A job with a unique id is found by it."""
        job = self.job(unique=b"u")
        self.assertIs(self.function.findUnique(b"u", b"other"), job)
        self.assertIsNone(self.function.findUnique(b"v", b"d"))

    def test_dash(self) -> None:
        """The unique id C{-} finds jobs by payload."""
        job = self.job(unique=b"-", data=b"payload")
        self.assertIs(self.function.findUnique(b"-", b"payload"), job)
        self.assertIsNone(self.function.findUnique(b"-", b"other"))

    def test_empty(self) -> None:
        """An empty unique id finds nothing."""
        self.job()
        self.assertIsNone(self.function.findUnique(b"", b"d"))


class QueueTests(FunctionTestCase):
    """
    L{Function.push}, L{Function.start}, L{Function.requeue}: the queues.
    """

    def test_fifoPerPriority(self) -> None:
        """
        Each priority is its own first-in first-out queue.
        """
        a, b = self.queued(LOW), self.queued(LOW)
        c = self.queued(HIGH)
        self.assertCounts(3, 0, [1, 0, 2], [0, 0, 0])
        worker = self.worker()
        self.assertIsNone(self.function.start(1, worker))
        self.assertEqual(
            [self.function.start(p, worker) for p in (0, 2, 2, 2)], [c, a, b, None]
        )

    def test_start(self) -> None:
        """
        A started job runs on its worker, which holds it, and counts as
        running instead of queued.
        """
        job = self.queued()
        worker = self.worker()
        self.assertIs(self.function.start(1, worker), job)
        self.assertIs(job.state, JobState.RUNNING)
        self.assertIs(job.worker, worker)
        self.assertEqual(worker.jobs, {job.handle: job})
        self.assertCounts(1, 1, [0, 0, 0], [0, 0, 0])

    def test_requeue(self) -> None:
        """
        A requeued job leaves its worker and goes to the tail of its queue.
        """
        first, second = self.queued(), self.queued()
        worker = self.worker()
        self.function.start(1, worker)
        self.function.requeue(first)
        self.assertIs(first.state, JobState.QUEUED)
        self.assertIsNone(first.worker)
        self.assertEqual(worker.jobs, {})
        self.assertCounts(2, 0, [0, 2, 0], [0, 0, 0])
        self.assertIs(self.function.start(1, worker), second)
        self.assertIs(self.function.start(1, worker), first)

    def test_runnable(self) -> None:
        """A function is runnable while it has a queued job."""
        self.assertFalse(self.function.runnable)
        self.queued(LOW)
        self.assertTrue(self.function.runnable)
        self.function.start(2, self.worker())
        self.assertFalse(self.function.runnable)

    def test_watchersTold(self) -> None:
        """
        A watcher learns that the function became runnable at a priority
        when its first job of that priority is queued.
        """
        watcher = self.worker()
        other = Function(b"other")
        watcher.addFunction(self.function)
        watcher.addFunction(other)
        assert watcher.ready is not None
        self.assertEqual(list(self.function.watchers), [watcher])
        self.queued(LOW)
        self.assertEqual([list(r) for r in watcher.ready], [[], [], [self.function]])
        watcher.ready[2].clear()
        self.queued(LOW)
        self.assertEqual([list(r) for r in watcher.ready], [[], [], []])


class ScheduleTests(FunctionTestCase):
    """
    L{Function.schedule} and L{Function.release}: jobs waiting for their
    time.
    """

    def test_scheduleAndRelease(self) -> None:
        """
        A scheduled job counts as scheduled until released, then is queued.
        """
        job = self.job(priority=HIGH)
        self.function.schedule(job)
        self.assertIs(job.state, JobState.SCHEDULED)
        self.assertCounts(1, 0, [0, 0, 0], [1, 0, 0])
        self.assertFalse(self.function.runnable)
        self.function.release(job)
        self.assertIs(job.state, JobState.QUEUED)
        self.assertCounts(1, 0, [1, 0, 0], [0, 0, 0])


class EndTests(FunctionTestCase):
    """
    L{Function.finish} and L{Function.forget}: a job leaves the books.
    """

    def test_finish(self) -> None:
        """
        A finished job leaves its worker, the counts and the index.
        """
        job = self.job(unique=b"u")
        self.function.push(job)
        worker = self.worker()
        self.function.start(1, worker)
        self.assertTrue(self.function.finish(job))
        self.assertIs(job.state, JobState.DONE)
        self.assertIsNone(job.worker)
        self.assertEqual(worker.jobs, {})
        self.assertCounts(0, 0, [0, 0, 0], [0, 0, 0])
        self.assertIsNone(self.function.findUnique(b"u", b"d"))

    def test_forgetPending(self) -> None:
        """A pending job can be forgotten."""
        job = self.job(unique=b"-")
        self.function.forget(job)
        self.assertIs(job.state, JobState.DONE)
        self.assertCounts(0, 0, [0, 0, 0], [0, 0, 0])
        self.assertIsNone(self.function.findUnique(b"-", b"d"))

    def test_forgetScheduled(self) -> None:
        """A scheduled job forgotten counts as scheduled no more."""
        job = self.job()
        self.function.schedule(job)
        self.function.forget(job)
        self.assertIs(job.state, JobState.DONE)
        self.assertCounts(0, 0, [0, 0, 0], [0, 0, 0])

    def test_forgetQueued(self) -> None:
        """
        A queued job forgotten is skipped by the next start, without the
        queue being searched.
        """
        first, second = self.queued(), self.queued()
        self.function.forget(first)
        self.assertIs(first.state, JobState.DONE)
        self.assertCounts(1, 0, [0, 1, 0], [0, 0, 0])
        self.assertEqual(len(self.function.queues[1] or ()), 2)
        self.assertIs(self.function.start(1, self.worker()), second)
        self.assertEqual(self.function.dead, [0, 0, 0])

    def test_forgottenLetsGoOfPayload(self) -> None:
        """
        A job forgotten before it ran (its dead entry may stay in its queue
        or the schedule's heap for long) holds its payload no more; a
        cancelled running job, still its worker's, keeps it.
        """
        running = self.queued()
        self.assertIs(self.function.start(1, self.worker()), running)
        queued, scheduled, pending = self.queued(), self.job(), self.job()
        self.function.schedule(scheduled)
        for job in (queued, scheduled, pending, running):
            self.function.forget(job)
        self.assertEqual(
            [job.data for job in (queued, scheduled, pending, running)],
            [b"", b"", b"", b"d"],
        )

    def test_forgetManyQueued(self) -> None:
        """
        Once forgotten entries are many and outnumber the live ones, the
        queue is rebuilt without them.
        """
        jobs = [self.queued() for _ in range(3000)]
        for job in jobs[:2000]:
            self.function.forget(job)
        self.assertLess(len(self.function.queues[1] or ()), 2000)
        self.assertCounts(1000, 0, [0, 1000, 0], [0, 0, 0])
        worker = self.worker()
        self.assertIs(self.function.start(1, worker), jobs[2000])

    def test_forgetRunning(self) -> None:
        """
        A running job forgotten is cancelled: counted out at once, but
        still held by its worker; finishing it later changes no count.
        """
        job = self.job(unique=b"u")
        self.function.push(job)
        worker = self.worker()
        self.function.start(1, worker)
        self.function.forget(job)
        self.assertIs(job.state, JobState.CANCELLED)
        self.assertCounts(0, 0, [0, 0, 0], [0, 0, 0])
        self.assertIsNone(self.function.findUnique(b"u", b"d"))
        self.assertEqual(worker.jobs, {job.handle: job})
        self.assertFalse(self.function.finish(job))
        self.assertIs(job.state, JobState.DONE)
        self.assertEqual(worker.jobs, {})
        self.assertCounts(0, 0, [0, 0, 0], [0, 0, 0])

    def test_indexKeepsNewerJob(self) -> None:
        """
        Forgetting a job leaves the index alone if the unique id names
        another job by now.
        """
        old = self.job(unique=b"u")
        new = self.job(unique=b"u")
        self.function.forget(old)
        self.assertIs(self.function.findUnique(b"u", b""), new)


class WorkerTests(FunctionTestCase):
    """
    The function's books of its workers, its limits and its figures.
    """

    def test_workers(self) -> None:
        """
        Workers are registered in order; a watcher is one too; removing a
        worker removes both.
        """
        f = self.function
        a, b = self.worker(), self.worker()
        f.addWorker(a)
        f.addWorker(b)
        f.watch(b)
        self.assertEqual([list(f.workers), list(f.watchers)], [[a, b], [b]])
        f.unwatch(b)
        self.assertEqual(list(f.watchers), [])
        f.watch(b)
        f.removeWorker(b)
        f.removeWorker(b)
        self.assertEqual([list(f.workers), list(f.watchers)], [[a], []])

    def test_setMaxQueue(self) -> None:
        """Limits below zero mean none, as zero does."""
        self.function.setMaxQueue(5, -1, 0)
        self.assertEqual(self.function.maxQueue, [5, 0, 0])

    def test_status(self) -> None:
        """
        The figures of C{status} and C{prioritystatus}: scheduled jobs wait
        too, running ones do not.
        """
        self.function.addWorker(self.worker())
        self.queued(HIGH)
        self.queued(LOW)
        scheduled = self.job(priority=LOW)
        self.function.schedule(scheduled)
        self.function.start(0, self.worker())
        self.assertEqual(self.function.status(), FunctionStatus(b"fn", 3, 1, 1))
        self.assertEqual(
            self.function.priorityStatus(), PriorityStatus(b"fn", 0, 0, 2, 1)
        )


class IdleTests(FunctionTestCase):
    """
    A function with nothing in it allocates nothing of its own, and says
    when nothing needs it.
    """

    def test_sharesEmpties(self) -> None:
        """
        A new function shares its queues, counters and dicts with every
        other idle function; they are its own once something is in them.
        """
        other = Function(b"other")
        f = self.function
        for name in ("queues", "queued", "dead", "scheduled", "maxQueue"):
            self.assertIs(getattr(f, name), getattr(other, name), name)
        for name in ("workers", "watchers", "payloads", "woken"):
            self.assertIs(getattr(f, name), getattr(other, name), name)
            self.assertEqual(len(getattr(f, name)), 0, name)
        self.assertIsNone(f.sleepHeap)
        self.queued(LOW)
        self.assertEqual(
            [q is not None for q in f.queues], [False, False, True], "one queue made"
        )
        self.assertIsNot(f.queued, other.queued)
        self.job(unique=b"-")
        self.assertIsNot(f.payloads, other.payloads)
        f.addWorker(self.worker())
        self.assertIsNot(f.workers, other.workers)
        self.assertEqual(len(other.workers), 0)

    def test_sharedEmptiesRefuseWrites(self) -> None:
        """
        Writing to a shared empty container is a bug, and fails at once
        rather than changing every idle function.
        """
        f = self.function
        worker = self.worker()
        self.assertRaises(TypeError, f.workers.__setitem__, worker, 0)
        self.assertRaises(TypeError, f.woken.__setitem__, worker, 0.0)
        with self.assertRaises(TypeError):
            f.queued[0] += 1
        self.assertEqual((len(f.workers), len(f.woken)), (0, 0))

    def test_scheduledCountersMadeOnce(self) -> None:
        """A scheduled job gives the function its own scheduled counters."""
        job = self.job()
        self.function.schedule(job)
        self.assertCounts(1, 0, [0, 0, 0], [0, 1, 0])
        self.assertEqual(Function(b"other").scheduled, (0, 0, 0))

    def test_emptyAgainWhenWorkersGo(self) -> None:
        """
        The last worker leaving gives back the worker, watcher and sleeper
        containers.
        """
        f = self.function
        a = self.worker()
        f.addWorker(a)
        f.watch(a)
        f.sleepHeap = [(1, a)]
        f.removeWorker(a)
        other = Function(b"other")
        self.assertIs(f.workers, other.workers)
        self.assertIs(f.watchers, other.watchers)
        self.assertIsNone(f.sleepHeap)

    def test_idle(self) -> None:
        """
        Idle: no worker, no job of any state, not named by an administrator.
        """
        f = self.function
        self.assertTrue(f.idle)
        worker = self.worker()
        f.addWorker(worker)
        self.assertFalse(f.idle)
        f.removeWorker(worker)
        self.assertTrue(f.idle)
        for move in ("pending", "scheduled", "queued", "running"):
            job = self.job()
            if move == "scheduled":
                f.schedule(job)
            elif move != "pending":
                f.push(job)
                if move == "running":
                    f.start(NORMAL, worker)
            self.assertFalse(f.idle, move)
            f.forget(job)
            self.assertTrue(f.idle, move)
        f.keep()
        self.assertFalse(f.idle)

    def test_sleepHeapBounded(self) -> None:
        """
        Places of workers that left are skipped, not searched for; once
        they outnumber the workers, the heap is rebuilt without them.
        """
        f = self.function
        stay = self.worker()
        f.addWorker(stay)
        f.workers[stay] = 1
        f.sleepHeap = [(1, stay)]
        for key in range(2, 100):
            gone = self.worker()
            f.addWorker(gone)
            f.workers[gone] = key
            f.sleepHeap.append((key, gone))
            f.removeWorker(gone)
            self.assertLessEqual(len(f.sleepHeap), 2 * len(f.workers) + 8)
        self.assertEqual(f.sleepHeap[0], (1, stay))
        self.assertLess(len(f.sleepHeap), 11)
