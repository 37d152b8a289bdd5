# -*- test-case-name: txgearman.test.test_job -*-
"""
A job as the server core holds it, the states it moves through, and the
one table of the moves it may make.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType
from typing import TYPE_CHECKING, NamedTuple

from txgearman.codec import Priority
from txgearman.store.interfaces import StoredJob, storedJob

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall

    from txgearman.server.function import Function
    from txgearman.server.session import Session

__all__ = ["JobState", "Job", "JobInfo", "TRANSITIONS"]


class JobState(Enum):
    """
    Where a job is in its life.
    """

    #: A background job waiting for the store to acknowledge it.
    PENDING = "pending"
    #: Waiting for its time (epoch or SCHED jobs).
    SCHEDULED = "scheduled"
    #: In its function's queue, runnable.
    QUEUED = "queued"
    #: Assigned to a worker.
    RUNNING = "running"
    #: Cancelled by an admin while a worker held it: the worker's results
    #: are accepted and discarded.
    CANCELLED = "cancelled"
    #: Finished, failed, dropped or abandoned; forgotten by the server.
    DONE = "done"


_PENDING = JobState.PENDING
_SCHEDULED = JobState.SCHEDULED
_QUEUED = JobState.QUEUED
_RUNNING = JobState.RUNNING
_CANCELLED = JobState.CANCELLED
_DONE = JobState.DONE

#: Every change of state a job may make, C{(from, to)}, with the
#: L{Function} method that makes it; no other code changes a job's state.
#: A new job starts C{PENDING}; C{DONE} is the end.
#:
#: The methods do not look the table up: one lookup per change would
#: cost on the per-job path.  The tests (C{test_job}) watch every change
#: the core makes and check it against this table instead.
TRANSITIONS: Mapping[tuple[JobState, JobState], str] = MappingProxyType(
    {
        # Foreground, stored or replayed, due now.
        (_PENDING, _QUEUED): "Function.push",
        # Stored or replayed, due later.
        (_PENDING, _SCHEDULED): "Function.schedule",
        # The store refused it, or an admin cancelled it while it was
        # being stored.
        (_PENDING, _DONE): "Function.forget",
        # Its time came.
        (_SCHEDULED, _QUEUED): "Function.release",
        # Cancelled, or abandoned by its last client.
        (_SCHEDULED, _DONE): "Function.forget",
        # A worker grabbed it.
        (_QUEUED, _RUNNING): "Function.start",
        # Cancelled, or abandoned by its last client.
        (_QUEUED, _DONE): "Function.forget",
        # Its worker failed it (left, CANT_DO, timeout): it runs again.
        (_RUNNING, _QUEUED): "Function.requeue",
        # Completed, failed, or dropped after its worker failed it.
        (_RUNNING, _DONE): "Function.finish",
        # Cancelled while running: its worker may still report.
        (_RUNNING, _CANCELLED): "Function.forget",
        # The worker of a cancelled job reported its end.
        (_CANCELLED, _DONE): "Function.finish",
    }
)


class JobInfo(NamedTuple):
    """
    One job as the admin C{show jobs} and C{show unique jobs} list it.

    @ivar handle: the job handle.
    @ivar retries: how many times a worker failed it.
    @ivar stored: whether the store holds it.
    @ivar unique: its unique id, possibly empty.
    """

    handle: bytes
    retries: int
    stored: bool
    unique: bytes


class Job:
    """
    One job.

    Plain slots rather than a dataclass: the server creates and touches
    one of these per submitted job, so attribute access must be cheap.

    Its state, and its C{worker}, change only in the L{Function} methods
    that L{TRANSITIONS} names, since each move changes the function's
    counters too; the rest of its books (clients, store handshake, retries,
    progress, timer) change only through its own methods.

    @ivar clients: foreground sessions attached to the job, in attach
        order; each receives the job's WORK_* packets.
    @ivar waiters: sessions waiting for C{JOB_CREATED} while the store
        writes the job, each with the place of that answer in its output,
        or C{None} when nobody waits.
    @ivar background: whether some submitter asked for the job in the
        background: such a job is stored and survives its foreground
        clients' disconnects.
    @ivar worker: the worker session running it (see L{Function.start}).
    @ivar storeKey: the store's key for the job's record, once stored.
    @ivar timer: the worker's CAN_DO_TIMEOUT for this run, if any.
    @ivar queuedAt: when it last joined its queue, by the server's clock
        (its time in the queue is measured from there); C{None} if jobs
        were not timed then.
    @ivar startedAt: when a worker took it, for its run time; C{None} when
        no worker holds it (or this run is not timed: only sampled runs
        are, see L{txgearman.server.core.JobServer._timeGrab}).
    @ivar weight: for a timed run (C{startedAt} set), how many jobs it
        stands for in the histograms.
    """

    __slots__ = (
        "handle",
        "function",
        "unique",
        "data",
        "priority",
        "background",
        "when",
        "reducer",
        "state",
        "clients",
        "waiters",
        "worker",
        "retries",
        "numerator",
        "denominator",
        "storeKey",
        "timer",
        "queuedAt",
        "startedAt",
        "weight",
    )

    # Set with startedAt, only for a timed job, and read only while that
    # is set: left unset otherwise, so that it costs no job a store.
    weight: int

    def __init__(
        self,
        handle: bytes,
        function: Function,
        unique: bytes,
        data: bytes,
        priority: Priority,
        background: bool,
        when: int = 0,
        reducer: bytes | None = None,
        storeKey: object | None = None,
        client: Session | None = None,
    ) -> None:
        """
        @param storeKey: the key of the record the job was replayed from.
        @param client: the foreground client that submitted it, attached
            at once (as L{attach} would, without another call per job).
        """
        self.handle = handle
        self.function = function
        self.unique = unique
        self.data = data
        self.priority = priority
        self.background = background
        self.when = when
        self.reducer = reducer
        self.state = _PENDING
        self.clients: list[Session] = []
        if client is not None:
            self.clients.append(client)
            client.attached[self] = None
        self.waiters: list[tuple[Session, object]] | None = None
        self.worker: Session | None = None
        self.retries = 0
        self.numerator = 0
        self.denominator = 0
        self.storeKey = storeKey
        self.timer: IDelayedCall | None = None
        self.queuedAt: float | None = None
        self.startedAt: float | None = None

    # -- clients -----------------------------------------------------------

    def attach(self, session: Session) -> None:
        """
        A foreground client waits for this job (once, however often it
        submits it); the session remembers it, to detach on disconnect.
        """
        clients = self.clients
        if session not in clients:
            clients.append(session)
            session.attached[self] = None

    def detach(self, session: Session) -> None:
        """A client stops waiting for this job, for its result or its store."""
        try:
            self.clients.remove(session)
        except ValueError:
            pass
        session.attached.pop(self, None)
        if self.waiters:
            self.waiters = [w for w in self.waiters if w[0] is not session]

    def releaseClients(self) -> None:
        """The job's foreground clients stop waiting for it: it has ended."""
        for client in self.clients:
            client.attached.pop(self, None)
        self.clients = []

    # -- the store handshake -----------------------------------------------

    def storing(self, submitter: Session | None) -> None:
        """
        The job is being written to the store as a background job; its
        submitter, if any, waits for the answer (its place is kept later,
        by L{keepPlace}, only if the store does not answer at once).
        """
        self.background = True
        self.waiters = [(submitter, None)] if submitter is not None else []

    def keepPlace(self, submitter: Session, place: object) -> None:
        """
        The store answers later: the submitter's answer goes at C{place}
        in its output (see L{txgearman.server.interfaces.IPeer.reservePacket}).
        """
        self.waiters = [(submitter, place)]

    def addWaiter(self, session: Session, place: object) -> None:
        """A later submitter also waits for the store's answer."""
        assert self.waiters is not None
        self.waiters.append((session, place))

    def stored(self, key: object) -> list[tuple[Session, object]]:
        """
        The store holds the job under C{key}.

        @return: who waited for that, to be answered now.
        """
        self.storeKey = key
        waiters = self.waiters or []
        self.waiters = None
        return waiters

    def notStored(self) -> list[tuple[Session, object]]:
        """
        The store refused the job: it is no background job after all.

        @return: who waited for the store, to be told.
        """
        self.background = False
        waiters = self.waiters or []
        self.waiters = None
        return waiters

    def unstore(self) -> object:
        """
        The job's record is to go from the store.

        @return: its key.
        """
        key, self.storeKey = self.storeKey, None
        return key

    # -- running -----------------------------------------------------------

    def armTimer(self, call: IDelayedCall) -> None:
        """The worker's CAN_DO_TIMEOUT for this run: C{call} requeues it."""
        self.timer = call

    def stopTimer(self) -> None:
        """Cancel the run's timeout, if it has one and it has not fired."""
        timer = self.timer
        if timer is not None:
            self.timer = None
            if timer.active():
                timer.cancel()

    def setProgress(self, numerator: int, denominator: int) -> None:
        """WORK_STATUS: how far the worker got, for GET_STATUS."""
        self.numerator = numerator
        self.denominator = denominator

    def attemptFailed(self) -> int:
        """
        Its worker failed it: one more failed attempt, and its progress
        starts again.

        @return: how many attempts failed so far.
        """
        self.retries += 1
        self.numerator = self.denominator = 0
        return self.retries

    # -- queries -----------------------------------------------------------

    def record(self) -> StoredJob:
        """
        What the store keeps of this job.
        """
        return storedJob(
            self.function.name,
            self.unique,
            self.data,
            int(self.priority),
            self.when,
            self.reducer,
        )

    def info(self) -> JobInfo:
        """What the admin job listings show of it."""
        return JobInfo(
            self.handle, self.retries, self.storeKey is not None, self.unique
        )

    def __repr__(self) -> str:
        return (
            f"<Job {self.handle!r} {self.function.name!r} unique={self.unique!r} "
            f"{self.priority.name} {self.state.value}>"
        )
