"""
Tests for L{txgearman.server.counts} and the core's books of it.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txgearman.codec import PacketType as P
from txgearman.codec import Priority
from txgearman.server.core import JobServer
from txgearman.server.counts import JobCounts
from txgearman.server.session import Session
from txgearman.test.fakes import FakePeer


class JobCountsTests(SynchronousTestCase):
    def test_errorsByCode(self) -> None:
        """
        ERROR answers are counted by code.
        """
        counts = JobCounts()
        counts.error(b"QUEUE_ERROR")
        counts.error(b"QUEUE_ERROR")
        counts.error(b"SERVER_DRAINING")
        self.assertEqual(counts.errors, {b"QUEUE_ERROR": 2, b"SERVER_DRAINING": 1})

    def test_dropped(self) -> None:
        """
        A job its workers failed more often than C{--job-retries} allows
        is counted dropped; the tries before, retried.
        """
        core = JobServer(Clock(), jobRetries=2)
        client = core.connect(FakePeer())
        core.submitJob(client, b"f", b"u", b"", background=True)
        for _ in range(2):
            worker = core.connect(FakePeer())
            core.canDo(worker, b"f")
            core.grabJob(worker, P.GRAB_JOB)
            core.disconnect(worker)
        self.assertEqual((core.counts.retried, core.counts.dropped), (1, 1))


class JobTimesTests(SynchronousTestCase):
    """
    The core times each job's wait in its queue and its run, by its clock.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.core = JobServer(self.clock, jobRetries=5)
        self.core.timeJobs = True
        self.client = self.core.connect(FakePeer())

    def worker(self) -> Session:
        worker = self.core.connect(FakePeer())
        self.core.canDo(worker, b"f")
        return worker

    def handle(self) -> bytes:
        return next(iter(self.core.jobs))

    def test_waitAndRun(self) -> None:
        """
        The wait is from the submit to a worker taking the job; the run
        from there to WORK_COMPLETE.
        """
        self.core.submitJob(self.client, b"f", b"", b"x", background=True)
        self.clock.advance(2)
        worker = self.worker()
        self.core.grabJob(worker, P.GRAB_JOB)
        self.clock.advance(7)
        self.core.workComplete(worker, self.handle(), b"")
        self.assertEqual((self.core.waitTimes.count, self.core.waitTimes.sum), (1, 2))
        self.assertEqual((self.core.runTimes.count, self.core.runTimes.sum), (1, 7))

    def test_buckets(self) -> None:
        """
        Waits and runs land in the bucket of the first bound at or above
        them (Prometheus' C{le}), a duration equal to a bound in its bucket.
        """
        for seconds, bucket in [
            (0.0, 0),
            (0.001, 0),
            (0.0011, 1),
            (0.005, 1),
            (7.0, 8),
        ]:
            # Each on a clock of its own, from 0 and back: the durations
            # are then exact.
            wait, run = Clock(), Clock()
            core = JobServer(wait)
            core.timeJobs = True
            client = core.connect(FakePeer())
            core.submitJob(client, b"f", b"", b"x", background=True)
            wait.advance(seconds)
            worker = core.connect(FakePeer())
            core.canDo(worker, b"f")
            core.grabJob(worker, P.GRAB_JOB)
            core._now = run.seconds
            run.rightNow = wait.seconds()
            run.advance(seconds)
            core.workComplete(worker, next(iter(core.jobs)), b"")
            for times in (core.waitTimes, core.runTimes):
                self.assertEqual(times.counts[bucket], 1, (seconds, times.counts))
                self.assertEqual(times.count, 1)

    def test_retriedRunsAndWaitsAgain(self) -> None:
        """
        A job whose worker left counts the run it had, and waits afresh
        from being queued again.
        """
        self.core.submitJob(self.client, b"f", b"", b"x", background=True)
        worker = self.worker()
        self.core.grabJob(worker, P.GRAB_JOB)
        self.clock.advance(3)
        self.core.disconnect(worker)
        self.clock.advance(4)
        other = self.worker()
        self.core.grabJob(other, P.GRAB_JOB)
        self.clock.advance(1)
        self.core.workFail(other, self.handle())
        self.assertEqual(self.core.waitTimes.count, 2)
        self.assertEqual(self.core.waitTimes.sum, 4)
        self.assertEqual(self.core.runTimes.count, 2)
        self.assertEqual(self.core.runTimes.sum, 4)

    def test_oldestQueued(self) -> None:
        """
        Per function, when its longest-waiting runnable job was queued,
        whatever its priority; C{None} when nothing waits.
        """
        self.core.submitJob(self.client, b"idle", b"", b"")
        worker = self.core.connect(FakePeer())
        self.core.canDo(worker, b"idle")
        self.core.grabJob(worker, P.GRAB_JOB)
        self.clock.advance(1)
        self.core.submitJob(self.client, b"f", b"", b"a", background=True)
        self.clock.advance(1)
        self.core.submitJob(
            self.client, b"f", b"", b"b", background=True, priority=Priority.HIGH
        )
        self.assertEqual(self.core.oldestQueued(), [None, 1.0])

    def test_scheduledJobWaitsFromItsTime(self) -> None:
        """
        A job made to run later waits from its time, not from its submit.
        """
        self.core.submitJob(self.client, b"f", b"", b"x", background=True, when=100)
        self.clock.advance(100)
        self.assertEqual(self.core.oldestQueued(), [100.0])

    def test_offByDefault(self) -> None:
        """
        Unless asked, the core reads no clock for jobs: nothing is timed
        and no oldest job is known.
        """
        core = JobServer(self.clock)
        client = core.connect(FakePeer())
        core.submitJob(client, b"f", b"", b"x", background=True)
        self.clock.advance(2)
        self.assertEqual(core.oldestQueued(), [None])
        worker = core.connect(FakePeer())
        core.canDo(worker, b"f")
        core.grabJob(worker, P.GRAB_JOB)
        core.workComplete(worker, next(iter(core.jobs)), b"")
        self.assertEqual((core.waitTimes.count, core.runTimes.count), (0, 0))

    def test_turnedOnLater(self) -> None:
        """
        A job queued before timing was turned on has no wait to report
        (rather than one from the clock's epoch), and no known age; its
        run is timed.
        """
        core = JobServer(self.clock)
        self.clock.advance(1000)
        client = core.connect(FakePeer())
        core.submitJob(client, b"f", b"", b"x", background=True)
        core.timeJobs = True
        self.assertEqual(core.oldestQueued(), [None])
        worker = core.connect(FakePeer())
        core.canDo(worker, b"f")
        core.grabJob(worker, P.GRAB_JOB)
        self.clock.advance(2)
        core.workComplete(worker, next(iter(core.jobs)), b"")
        self.assertEqual(core.waitTimes.count, 0)
        self.assertEqual((core.runTimes.count, core.runTimes.sum), (1, 2))
