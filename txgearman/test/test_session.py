"""
Tests for L{txgearman.server.session}: a connection's books of what its
worker can do, and which job it runs next.
"""

from __future__ import annotations

from twisted.trial import unittest

from txgearman.codec import Priority
from txgearman.server.function import Function
from txgearman.server.job import Job
from txgearman.server.session import Session, WorkerInfo
from txgearman.test.fakes import FakePeer

HIGH, NORMAL, LOW = Priority.HIGH, Priority.NORMAL, Priority.LOW


class SessionTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.session = Session(FakePeer(), 7, "10.0.0.1")
        self.a, self.b, self.c = Function(b"a"), Function(b"b"), Function(b"c")
        self.count = 0

    def queue(self, function: Function, priority: Priority = NORMAL) -> Job:
        self.count += 1
        job = Job(b"H:%d" % self.count, function, b"", b"", priority, False)
        function.admit(job)
        function.push(job)
        return job

    def test_oneFunction(self) -> None:
        """
        A worker of one function keeps no ready sets and watches nothing.
        """
        self.session.addFunction(self.a)
        self.assertEqual(self.session.functions, [self.a])
        self.assertEqual(list(self.a.workers), [self.session])
        self.assertIsNone(self.session.ready)
        self.assertEqual(list(self.a.watchers), [])

    def test_severalFunctions(self) -> None:
        """
        From its second function on, a worker watches each of them, and
        its ready sets start with what is runnable already.
        """
        self.queue(self.a, LOW)
        self.session.addFunction(self.a)
        self.session.addFunction(self.b)
        self.queue(self.c, HIGH)
        self.session.addFunction(self.c)
        ready = self.session.ready
        assert ready is not None
        self.assertEqual([list(r) for r in ready], [[self.c], [], [self.a]])
        for f in (self.a, self.b, self.c):
            self.assertEqual(list(f.watchers), [self.session])

    def test_removeFunction(self) -> None:
        """
        A removed function forgets the worker, its timeout goes, and the
        jobs of it the worker held are handed back; down to one function,
        the worker keeps no ready sets.
        """
        self.session.addFunction(self.a)
        self.session.addFunction(self.b)
        self.session.setTimeout(self.b, 5.0)
        job = self.queue(self.b)
        other = self.queue(self.a)
        self.assertIs(self.session.nextJob(), job)
        self.assertIs(self.session.nextJob(), other)
        self.assertEqual(self.session.removeFunction(self.b), [job])
        self.assertEqual(list(self.session.jobs), [other.handle])
        self.assertEqual(self.session.timeouts, {})
        self.assertEqual((list(self.b.workers), list(self.b.watchers)), ([], []))
        self.assertIsNone(self.session.ready)
        self.assertEqual(list(self.a.watchers), [])

    def test_close(self) -> None:
        """
        A closed session is unregistered everywhere and hands back what it
        waited for and what it held.
        """
        self.session.addFunction(self.a)
        self.session.addFunction(self.b)
        held = self.queue(self.a)
        self.session.nextJob()
        waited = Job(b"H:x", self.b, b"", b"", NORMAL, False, client=self.session)
        self.assertEqual(self.session.close(), ([waited], [held]))
        self.assertTrue(self.session.closed)
        self.assertEqual(self.session.functions, [])
        self.assertEqual((self.session.jobs, self.session.attached), ({}, {}))
        self.assertEqual(list(self.a.workers), [])
        self.assertEqual(list(self.b.watchers), [])

    def test_nextJobPriorityThenTurns(self) -> None:
        """
        The next job is the highest priority one across the worker's
        functions; functions that tie take turns.
        """
        for f in (self.a, self.b, self.c):
            self.session.addFunction(f)
        a1, a2 = self.queue(self.a), self.queue(self.a)
        b1 = self.queue(self.b)
        c1 = self.queue(self.c, HIGH)
        order = [self.session.nextJob() for _ in range(5)]
        self.assertEqual(order, [c1, a1, b1, a2, None])

    def test_hasRunnable(self) -> None:
        """
        Whether any of the worker's functions has a runnable job, with one
        function or several.
        """
        self.session.addFunction(self.a)
        self.assertFalse(self.session.hasRunnable())
        self.queue(self.a)
        self.assertTrue(self.session.hasRunnable())
        self.session.addFunction(self.b)
        self.session.nextJob()
        self.assertFalse(self.session.hasRunnable())
        self.queue(self.b, LOW)
        self.assertTrue(self.session.hasRunnable())

    def test_options(self) -> None:
        """The client id and the exceptions option, and the admin line."""
        self.session.addFunction(self.a)
        self.session.setClientId(b"me")
        self.session.wantExceptions()
        self.assertTrue(self.session.exceptions)
        self.assertEqual(self.session.info(), WorkerInfo(7, "10.0.0.1", b"me", [b"a"]))
