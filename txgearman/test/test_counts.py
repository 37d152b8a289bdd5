"""
Tests for L{txgearman.server.counts} and the core's books of it.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txgearman.codec import PacketType as P
from txgearman.server.core import JobServer
from txgearman.server.counts import JobCounts
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
