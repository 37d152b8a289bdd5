"""
Stateful property tests for L{txgearman.server.core.JobServer}: random sequences of
submits, grabs, results, disconnects, cancels, store answers and clock
steps, after each of which the server's bookkeeping must agree with itself
and no acknowledged background job may have vanished; and no job may make
a move L{txgearman.server.job.TRANSITIONS} does not list.
"""

from __future__ import annotations

from collections import OrderedDict

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from twisted.internet import task
from twisted.trial import unittest

from txgearman.codec import PacketType as T
from txgearman.codec import Priority
from txgearman.server.core import JobServer
from txgearman.server.job import JobState
from txgearman.server.session import Session
from txgearman.test.fakes import FakePeer, FakeStore
from txgearman.test.test_job import TransitionWatcher

NOW = 1_700_000_000
FUNCTIONS = [b"a", b"a", b"c-d", b"e"]
UNIQUES = [b"", b"u1", b"u1", b"u2", b"-"]
PAYLOADS = [b"x", b"y", b"\x00z"]


def peerOf(session: Session) -> FakePeer:
    peer = session.peer
    assert isinstance(peer, FakePeer)
    return peer


def assertConsistent(server: JobServer, store: FakeStore) -> None:
    """
    The server's bookkeeping agrees with itself and with the store:
    counters with the jobs they count, queues with job states, sleeper
    dicts with sleeping workers, a worker's set of runnable functions with
    the queues, unique indexes with live jobs, and store records with the
    live, stored background jobs.
    """
    live = list(server.jobs.values())
    for function in server.functions.values():
        mine = [j for j in live if j.function is function]
        assert function.total == len(mine), (function, mine)
        assert function.running == sum(j.state is JobState.RUNNING for j in mine)
        for p in range(3):
            queued = [j for j in mine if j.state is JobState.QUEUED and j.priority == p]
            assert function.queued[p] == len(queued), (function, p, queued)
            queue = function.queues[p] or ()
            inQueue = [j for j in queue if j.state is JobState.QUEUED]
            assert sorted(id(j) for j in inQueue) == sorted(id(j) for j in queued)
            scheduled = [
                j for j in mine if j.state is JobState.SCHEDULED and j.priority == p
            ]
            assert function.scheduled[p] == len(scheduled)
        for session in function.sleepers:
            assert session.sleeping and not session.noopSent
            assert function in session.functions
            assert not session.closed
        # Nothing is kept that nothing needs.
        assert not function.idle, function
        heap = function.sleepHeap or []
        assert len(heap) <= 2 * len(function.workers) + 8, (function, heap)
        for session, key in function.workers.items():
            assert function in session.functions, (session, function)
            # A worker has its place in the line, or takes one when it
            # next sleeps.
            assert (key == 0) == (function in session.outOfLine), (session, key)
            if key:
                assert (key, session) in heap, (session, key, heap)
        # A set: a worker watches a function from its second ability on,
        # whenever it registered this one.
        assert set(function.watchers) == {
            s for s in function.workers if len(s.functions) > 1
        }
        for session in function.watchers:
            assert session.ready is not None
            for p in range(3):
                if function.queued[p]:
                    assert function in session.ready[p], (session, function, p)
        for unique, job in function.uniqueJobs().items():
            assert job.unique == unique and job.state is not JobState.DONE
            assert server.jobs.get(job.handle) is job
        for data, job in function.payloads.items():
            assert job.data == data and job.unique == b"-"
            assert server.jobs.get(job.handle) is job
        assert function.allUniques is server._uniques
        for session in function.woken:
            assert session.wokenFor is function, (session, function)
            assert session.noopSent and not session.closed
            assert session in function.workers
        if server.workerWakeup is None and function.sleepers:
            # Just enough wake-ups, and never too few: no job waits while a
            # worker of its function sleeps, unless a woken worker is
            # coming for it.
            assert sum(function.queued) <= len(function.woken), (
                function,
                function.woken,
            )
    # The index of unique ids holds exactly the live jobs that have one.
    indexed = {
        (unique, id(job))
        for unique, found in server._uniques.items()
        for job in (found if isinstance(found, list) else [found])
    }
    liveUniques = {
        (job.unique, id(job))
        for job in server.jobs.values()
        if job.unique not in (b"", b"-")
        and job.state not in (JobState.DONE, JobState.CANCELLED)
    }
    assert indexed == liveUniques, (indexed, liveUniques)
    for found in server._uniques.values():
        if isinstance(found, list):
            assert len(found) > 1
            assert len({id(job.function) for job in found}) == len(found)
    for session in server.sessions:
        for function in session.outOfLine:
            assert function in session.functions, (session, function)
        if session.sleeping and not session.noopSent:
            # In line: in every one of its functions' lines.
            assert not session.outOfLine, session
        if session.wokenFor is not None:
            assert session in session.wokenFor.woken, session
        assert (session.ready is None) == (len(session.functions) < 2), session
        if session.ready is not None:
            for ready in session.ready:
                assert set(ready) <= set(session.functions), session
    for job in live:
        assert job.state is not JobState.DONE, job
        assert server.functions.get(job.function.name) is job.function
        if job.state is JobState.RUNNING:
            assert job.worker is not None and not job.worker.closed
            assert job.worker.jobs.get(job.handle) is job
        else:
            assert job.worker is None, job
        if job.storeKey is not None:
            assert job.background, job
    keys = {job.storeKey for job in live if job.storeKey is not None}
    assert keys == set(store.records), (keys, store.records)
    # Flow control: exactly the workers running a job of a full client are
    # held back, and a fake peer's reading says so.
    full = [session for session in server.sessions if session.outputFull]
    assert server._fullOutputs == len(full), (server._fullOutputs, full)
    feeding = [session for session in server.sessions if session.feedsFullClient()]
    assert server.heldBack() == [s for s in server._throttled if s in feeding]
    assert set(server.heldBack()) == set(feeding), (server.heldBack(), feeding)
    for session in server.sessions:
        peer = session.peer
        if isinstance(peer, FakePeer):
            assert peer.reading == (session not in feeding), session


class JobServerMachine(RuleBasedStateMachine):
    """
    Drives one L{JobServer} on a L{FakeStore} whose adds the machine
    acknowledges or fails when it likes.
    """

    def __init__(self) -> None:
        super().__init__()
        self.clock = task.Clock()
        self.clock.advance(NOW)
        self.store = FakeStore(manual=True)
        self.server = JobServer(self.clock, store=self.store, handlePrefix=b"H:m")
        self.clients: list[Session] = []
        self.workers: list[Session] = []
        # Background submits acknowledged with JOB_CREATED whose job has
        # not ended by a result or a cancel: they must still be held.
        self.promised: set[bytes] = set()
        # Submit sessions whose answer has not been read yet, with whether
        # the submit was a background one.
        self.unanswered: dict[Session, bool] = {}
        # Handles of jobs ended by a result or a cancel: an acknowledgement
        # that arrives after a cancel (the store was still writing) promises
        # nothing.
        self.finished: set[bytes] = set()
        # The lines of sleepers as the server kept them before a sleep
        # stopped visiting each of the worker's functions: per function
        # name, the sleepers oldest first, kept the old way.  The server's
        # lines must stay the same.
        self.lines: dict[bytes, OrderedDict[Session, None]] = {}
        self.noops: dict[Session, int] = {}

    # -- helpers -------------------------------------------------------------

    def readAnswers(self) -> None:
        """
        Read JOB_CREATED / ERROR answers; remember background promises.
        """
        for session, background in list(self.unanswered.items()):
            for ptype, args in peerOf(session).sent:
                if ptype is T.JOB_CREATED:
                    if background and args[0] not in self.finished:
                        self.promised.add(args[0])
                    del self.unanswered[session]
                    break
                if ptype is T.ERROR:
                    del self.unanswered[session]
                    break

    def ended(self, handle: bytes) -> None:
        self.promised.discard(handle)
        self.finished.add(handle)

    def leaveLines(self, session: Session, names: list[bytes] | None = None) -> None:
        """The reference lines: C{session} leaves those of C{names} (all)."""
        for name in names if names is not None else list(self.lines):
            self.lines.get(name, OrderedDict()).pop(session, None)

    def noopsSent(self, exempt: Session | None = None) -> set[Session]:
        """
        The workers sent a NOOP since the last look: they leave every
        reference line, as a NOOP took a worker out of every line.

        @param exempt: a worker that may have been woken at once, by its
            own PRE_SLEEP or CAN_DO, rather than from a line.
        """
        woken = set()
        for worker in self.workers:
            count = sum(ptype is T.NOOP for ptype, _ in peerOf(worker).sent)
            if count > self.noops.get(worker, 0):
                woken.add(worker)
            self.noops[worker] = count
        for worker in woken - {exempt}:
            # Woken from a line, it was the oldest there but for others
            # woken with it: nobody asleep longer was passed over.
            lines = [list(line) for line in self.lines.values() if worker in line]
            assert not lines or any(
                set(line[: line.index(worker)]) <= woken for line in lines
            ), (worker, lines, woken)
        for worker in woken:
            self.leaveLines(worker)
        return woken

    def inLine(self, session: Session) -> bool:
        return session.sleeping and not session.noopSent

    # -- rules -----------------------------------------------------------------

    @rule(
        name=st.sampled_from(FUNCTIONS),
        unique=st.sampled_from(UNIQUES),
        data=st.sampled_from(PAYLOADS),
        priority=st.sampled_from(list(Priority)),
        background=st.booleans(),
        delay=st.sampled_from([0, 0, 0, 30]),
        store=st.sampled_from(["ok", "ok", "ok", "later", "fail"]),
    )
    def submit(
        self,
        name: bytes,
        unique: bytes,
        data: bytes,
        priority: Priority,
        background: bool,
        delay: int,
        store: str,
    ) -> None:
        session = self.server.connect(FakePeer(), "127.0.0.1")
        self.clients.append(session)
        self.unanswered[session] = background
        when = int(self.clock.seconds()) + delay if delay and background else 0
        pending = set(self.store.pending)
        self.server.submitJob(session, name, unique, data, priority, background, when)
        for key in set(self.store.pending) - pending:
            if store == "ok":
                self.store.succeedAdd(key)
            elif store == "fail":
                self.store.failAdd("refused", key)
        self.readAnswers()

    @precondition(lambda self: self.store.pending)
    @rule(index=st.integers(0, 100), ok=st.booleans())
    def answerStore(self, index: int, ok: bool) -> None:
        keys = sorted(self.store.pending)
        key = keys[index % len(keys)]
        if ok:
            self.store.succeedAdd(key)
        else:
            self.store.failAdd("refused", key)
        self.readAnswers()

    @rule(names=st.lists(st.sampled_from(FUNCTIONS), min_size=1, max_size=3))
    def connectWorker(self, names: list[bytes]) -> None:
        session = self.server.connect(FakePeer(), "127.0.0.1")
        for name in names:
            self.server.canDo(session, name)
        self.workers.append(session)

    @precondition(lambda self: self.workers)
    @rule(index=st.integers(0, 100), name=st.sampled_from(FUNCTIONS))
    def canDo(self, index: int, name: bytes) -> None:
        worker = self.workers[index % len(self.workers)]
        learns = name not in [f.name for f in worker.functions]
        asleep = self.inLine(worker)
        self.server.canDo(worker, name)
        if worker not in self.noopsSent(worker) and learns and asleep:
            # Learned while asleep: at the end of that function's line.
            self.lines.setdefault(name, OrderedDict())[worker] = None

    @precondition(lambda self: self.workers)
    @rule(
        index=st.integers(0, 100), kind=st.sampled_from([T.GRAB_JOB, T.GRAB_JOB_UNIQ])
    )
    def grab(self, index: int, kind: T) -> None:
        worker = self.workers[index % len(self.workers)]
        runnable = [f for f in worker.functions if f.runnable]
        best = min((p for f in runnable for p in range(3) if f.queued[p]), default=None)
        peer = peerOf(worker)
        before = len(peer.sent)
        if self.inLine(worker):
            self.leaveLines(worker)
        self.server.grabJob(worker, kind)
        self.noopsSent()
        ptype, args = peer.sent[before]
        if best is None:
            assert ptype is T.NO_JOB, (ptype, args)
        else:
            # The job comes from one of the worker's functions, at the
            # highest priority any of them has queued.
            assert ptype is not T.NO_JOB
            job = self.server.jobs[args[0]]
            assert job.function in runnable and job.priority == best, (job, best)

    @precondition(lambda self: self.workers)
    @rule(index=st.integers(0, 100))
    def resetAbilities(self, index: int) -> None:
        worker = self.workers[index % len(self.workers)]
        self.leaveLines(worker)
        self.server.resetAbilities(worker)
        self.noopsSent()

    @precondition(lambda self: self.workers)
    @rule(index=st.integers(0, 100))
    def sleep(self, index: int) -> None:
        worker = self.workers[index % len(self.workers)]
        self.server.preSleep(worker)
        if worker not in self.noopsSent(worker):
            # At the end of each line it was not in already.
            for function in worker.functions:
                line = self.lines.setdefault(function.name, OrderedDict())
                line.setdefault(worker, None)

    @precondition(lambda self: any(w.jobs for w in self.workers))
    @rule(
        index=st.integers(0, 100),
        outcome=st.sampled_from(["complete", "fail", "exception"]),
    )
    def finish(self, index: int, outcome: str) -> None:
        busy = [w for w in self.workers if w.jobs]
        worker = busy[index % len(busy)]
        handle = next(iter(worker.jobs))
        if outcome == "complete":
            self.server.workComplete(worker, handle, b"done")
        elif outcome == "fail":
            self.server.workFail(worker, handle)
        else:
            self.server.workException(worker, handle, b"oops")
        self.ended(handle)

    @precondition(lambda self: self.workers)
    @rule(index=st.integers(0, 100))
    def workerLeaves(self, index: int) -> None:
        worker = self.workers.pop(index % len(self.workers))
        self.leaveLines(worker)
        self.server.disconnect(worker)
        self.noopsSent()

    @precondition(lambda self: self.workers)
    @rule(index=st.integers(0, 100), name=st.sampled_from(FUNCTIONS))
    def cantDo(self, index: int, name: bytes) -> None:
        worker = self.workers[index % len(self.workers)]
        self.leaveLines(worker, [name])
        self.server.cantDo(worker, name)
        self.noopsSent()

    @precondition(lambda self: self.clients)
    @rule(index=st.integers(0, 100))
    def clientLeaves(self, index: int) -> None:
        client = self.clients.pop(index % len(self.clients))
        self.readAnswers()
        self.unanswered.pop(client, None)
        self.server.disconnect(client)

    @precondition(lambda self: self.server.jobs)
    @rule(index=st.integers(0, 100))
    def cancel(self, index: int) -> None:
        handles = list(self.server.jobs)
        handle = handles[index % len(handles)]
        self.server.cancelJob(handle)
        self.ended(handle)

    @precondition(lambda self: self.clients)
    @rule(index=st.integers(0, 100), full=st.booleans())
    def clientOutput(self, index: int, full: bool) -> None:
        client = self.clients[index % len(self.clients)]
        if full:
            self.server.outputFull(client)
        else:
            self.server.outputDrained(client)

    @rule(seconds=st.sampled_from([1, 31]))
    def tick(self, seconds: int) -> None:
        self.clock.advance(seconds)

    # -- invariants --------------------------------------------------------------

    @invariant()
    def consistent(self) -> None:
        assertConsistent(self.server, self.store)

    @invariant()
    def sameLines(self) -> None:
        """
        Every function's line of sleepers is the one the old way of keeping
        them (a sleep visiting each of the worker's functions) gives: the
        same workers are woken, in the same order.
        """
        self.noopsSent()
        for name, line in self.lines.items():
            function = self.server.functions.get(name)
            if function is None:
                assert not line, (name, line)
            else:
                assert function.sleepers == list(line), (function.sleepers, line)

    @invariant()
    def promisesKept(self) -> None:
        """
        A background job acknowledged with JOB_CREATED stays held, and
        stored, until it ends.
        """
        for handle in self.promised:
            job = self.server.jobs.get(handle)
            assert job is not None, handle
            assert job.storeKey is not None, job


class JobServerModelTests(unittest.SynchronousTestCase):
    """
    Runs L{JobServerMachine} under trial.
    """

    def test_bookkeeping(self) -> None:
        """
        No sequence of operations breaks the invariants, or makes a move
        of a job's state the table does not list.
        """
        watcher = TransitionWatcher().install(self)
        run_state_machine_as_test(
            JobServerMachine,
            settings=settings(
                max_examples=150,
                stateful_step_count=60,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
        self.assertNotEqual(watcher.moves, [])
