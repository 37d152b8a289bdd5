"""
Tests for L{txgearman.server.counts} and the core's books of it.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txgearman._histogram import JOB_SECONDS
from txgearman.codec import PacketType as P
from txgearman.codec import Priority
from txgearman.server.core import TIME_EVERY_MAX, TIME_SLOWER, JobServer
from txgearman.server.counts import JobCounts
from txgearman.server.job import Job
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


class SampledTimesTests(SynchronousTestCase):
    """
    At high rates the core times one job in C{N}, each counting for C{N},
    and adapts C{N} to the rate; every job still has its queueing time.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.core = JobServer(self.clock, jobRetries=5)
        self.core.timeJobs = True
        self.client = self.core.connect(FakePeer())
        self.worker = self.newWorker()

    def newWorker(self) -> Session:
        worker = self.core.connect(FakePeer())
        self.core.canDo(worker, b"f")
        return worker

    def submit(self, count: int = 1) -> list[Job]:
        jobs = []
        for _ in range(count):
            self.core.submitJob(self.client, b"f", b"", b"x", background=True)
            jobs.append(list(self.core.jobs.values())[-1])
        return jobs

    def jobsInTurn(self, count: int, every: float = 0.0) -> list[bool]:
        """
        C{count} jobs, one after the other through one worker, C{every}
        seconds apart, each taken at once and done in no time; whether
        each was timed.
        """
        timed = []
        for _ in range(count):
            (job,) = self.submit()
            self.core.grabJob(self.worker, P.GRAB_JOB)
            timed.append(job.startedAt is not None)
            self.core.workComplete(self.worker, job.handle, b"")
            self.clock.advance(every)
        return timed

    def test_everyJobAtLowRates(self) -> None:
        """
        Jobs further apart than C{TIME_SLOWER} are each timed, once.
        """
        self.assertEqual(self.jobsInTurn(20, every=TIME_SLOWER * 2), [True] * 20)
        self.assertEqual(self.core._timeEvery, 1)
        self.assertEqual(
            (self.core.waitTimes.count, self.core.runTimes.count), (20, 20)
        )

    def test_inBetweenRatesKeepN(self) -> None:
        """
        Jobs between C{TIME_FASTER} and C{TIME_SLOWER} apart keep the
        interval it has: at 200 a second, every one is timed.
        """
        self.assertEqual(self.jobsInTurn(50, every=0.005), [True] * 50)
        self.assertEqual(self.core._timeEvery, 1)

    def test_highRateSamples(self) -> None:
        """
        Jobs within one instant make the core time fewer of them, down to
        one in C{TIME_EVERY_MAX}; the counts stay estimates of how many
        jobs there were (short of it by fewer than C{N}), the sums of their
        total wait and run.
        """
        count = 1000
        jobs = self.submit(count)
        self.clock.advance(5)
        workers = []
        for _ in jobs:
            worker = self.newWorker()
            self.core.grabJob(worker, P.GRAB_JOB)
            workers.append(worker)
        timed = [job for job in jobs if job.startedAt is not None]
        self.assertEqual(self.core._timeEvery, TIME_EVERY_MAX)
        self.assertLess(len(timed), count // TIME_EVERY_MAX + 10)
        waits = self.core.waitTimes
        self.assertEqual(waits.count, sum(job.weight for job in timed))
        self.assertLessEqual(waits.count, count)
        self.assertGreater(waits.count, count - TIME_EVERY_MAX)
        self.assertEqual(waits.sum, 5.0 * waits.count)
        self.clock.advance(2)
        for job, worker in zip(jobs, workers, strict=True):
            self.core.workComplete(worker, job.handle, b"")
        runs = self.core.runTimes
        self.assertEqual(runs.count, waits.count)
        self.assertEqual(runs.sum, 2.0 * runs.count)
        # All in the buckets of 5 and of 2 seconds.
        self.assertEqual(waits.counts[JOB_SECONDS.index(5.0)], waits.count)
        self.assertEqual(runs.counts[JOB_SECONDS.index(5.0)], runs.count)

    def test_adaptsToTheRate(self) -> None:
        """
        At 10,000 jobs a second, one in 16 is timed: timed jobs are then
        1.6 ms apart, between C{TIME_FASTER} and C{TIME_SLOWER}.
        """
        timed = self.jobsInTurn(2000, every=0.0001)
        self.assertEqual(self.core._timeEvery, 16)
        self.assertEqual(timed[-160:].count(True), 10)
        self.assertGreater(self.core.waitTimes.count, 2000 - 16)
        self.assertLessEqual(self.core.waitTimes.count, 2000)

    def test_slowsBack(self) -> None:
        """
        When jobs slow down again, N halves at each timed job, back to
        timing every job.
        """
        self.jobsInTurn(500)
        self.assertEqual(self.core._timeEvery, TIME_EVERY_MAX)
        self.clock.advance(1)
        timed = self.jobsInTurn(TIME_EVERY_MAX * 2, every=TIME_SLOWER * 2)
        self.assertEqual(self.core._timeEvery, 1)
        self.assertEqual(timed[-10:], [True] * 10)
        # Counted for as many jobs as there were, but for the ones since
        # the last timed one before the rate fell.
        before = self.core.waitTimes.count
        self.jobsInTurn(10, every=TIME_SLOWER * 2)
        self.assertEqual(self.core.waitTimes.count, before + 10)

    def test_oldestQueuedOfUntimedJobs(self) -> None:
        """
        Every job's queueing time is stamped, timed or not: the oldest
        queued job's age is exact whatever the rate.
        """
        self.jobsInTurn(500)
        self.assertNotEqual(self.core._timeCountdown, 1)
        self.clock.advance(10)
        (first,) = self.submit()
        self.clock.advance(1)
        (second,) = self.submit()
        self.assertEqual(self.core.oldestQueued(), [10.0])
        self.core.grabJob(self.worker, P.GRAB_JOB)
        self.assertIsNone(first.startedAt)
        self.assertEqual(self.core.oldestQueued(), [11.0])
        self.assertEqual(second.queuedAt, 11.0)

    def test_requeueUntimed(self) -> None:
        """
        An untimed job its worker fails is queued again with a new time,
        and no run observed.
        """
        self.jobsInTurn(500)
        (job,) = self.submit()
        worker = self.newWorker()
        self.core.grabJob(worker, P.GRAB_JOB)
        self.assertIsNone(job.startedAt)
        runs = self.core.runTimes.count
        self.clock.advance(3)
        self.core.disconnect(worker)
        self.assertEqual(job.queuedAt, 3.0)
        self.assertEqual(self.core.oldestQueued(), [3.0])
        self.assertEqual(self.core.runTimes.count, runs)

    def test_requeueTimed(self) -> None:
        """
        A timed job its worker fails counts its run, with its weight, and
        is queued again with a new time, its next run timed or not afresh.
        """
        self.jobsInTurn(500)
        while self.core._timeCountdown != 1:
            self.jobsInTurn(1)
        (job,) = self.submit()
        worker = self.newWorker()
        self.core.grabJob(worker, P.GRAB_JOB)
        self.assertIsNotNone(job.startedAt)
        runs = (self.core.runTimes.count, self.core.runTimes.sum)
        self.clock.advance(3)
        self.core.disconnect(worker)
        self.assertIsNone(job.startedAt)
        self.assertEqual(job.queuedAt, 3.0)
        self.assertEqual(
            (self.core.runTimes.count, self.core.runTimes.sum),
            (runs[0] + TIME_EVERY_MAX, runs[1] + 3.0 * TIME_EVERY_MAX),
        )
        # Gone 3 s: the next timed job halves N.
        self.core.grabJob(self.worker, P.GRAB_JOB)
        self.assertIsNone(job.startedAt)

    def test_failedWhileTimed(self) -> None:
        """
        A timed job that fails, or ends in an exception, counts its run
        with its weight.
        """
        for end in (self.core.workFail, self.core.workException):
            self.jobsInTurn(500)
            while self.core._timeCountdown != 1:
                self.jobsInTurn(1)
            (job,) = self.submit()
            self.core.grabJob(self.worker, P.GRAB_JOB)
            weight = job.weight
            runs = self.core.runTimes.count
            if end is self.core.workFail:
                self.core.workFail(self.worker, job.handle)
            else:
                self.core.workException(self.worker, job.handle, b"oops")
            self.assertEqual(self.core.runTimes.count, runs + weight)
            self.assertIsNone(job.startedAt)

    def test_cancelledWhileTimed(self) -> None:
        """
        A timed job cancelled while it runs counted its wait; its run
        counts, with its weight, when its worker reports; sampling goes on.
        """
        self.jobsInTurn(500)
        while self.core._timeCountdown != 1:
            self.jobsInTurn(1)
        (job,) = self.submit()
        self.core.grabJob(self.worker, P.GRAB_JOB)
        self.assertIsNotNone(job.startedAt)
        waits, runs = self.core.waitTimes.count, self.core.runTimes.count
        self.assertEqual(waits, runs + TIME_EVERY_MAX)
        self.assertTrue(self.core.cancelJob(job.handle))
        self.clock.advance(1)
        self.core.workComplete(self.worker, job.handle, b"")
        self.assertEqual(
            (self.core.waitTimes.count, self.core.runTimes.count), (waits, waits)
        )
        self.assertEqual(self.core.runTimes.sum, 1.0 * TIME_EVERY_MAX)
        self.assertIsNone(job.startedAt)
        # The next timed job is the last of the next N, a second later: it
        # counts for them all and halves N.
        self.assertEqual(self.jobsInTurn(TIME_EVERY_MAX).count(True), 1)
        self.assertEqual(self.core._timeEvery, TIME_EVERY_MAX // 2)
        self.assertEqual(self.core.waitTimes.count, waits + TIME_EVERY_MAX)
