# -*- test-case-name: txgearman.test.test_core -*-
"""
A job as the server core holds it, and the priorities and states it moves
through.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from txgearman.codec import Priority
from txgearman.store.interfaces import StoredJob, storedJob

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall

    from txgearman.server.function import Function
    from txgearman.server.session import Session

__all__ = ["JobState", "Job"]


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


class Job:
    """
    One job.

    Plain slots rather than a dataclass: the server creates and touches
    one of these per submitted job, so attribute access must be cheap.

    @ivar clients: foreground sessions attached to the job, in attach
        order; each receives the job's WORK_* packets.
    @ivar waiters: sessions waiting for C{JOB_CREATED} while the store
        writes the job, or C{None} when nobody waits.
    @ivar background: whether some submitter asked for the job in the
        background: such a job is stored and survives its foreground
        clients' disconnects.
    @ivar storeKey: the store's key for the job's record, once stored.
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
    )

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
    ) -> None:
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
        self.waiters: list[tuple[Session, object]] | None = None
        self.worker: Session | None = None
        self.retries = 0
        self.numerator = 0
        self.denominator = 0
        self.storeKey: object | None = None
        self.timer: IDelayedCall | None = None

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

    def __repr__(self) -> str:
        return (
            f"<Job {self.handle!r} {self.function.name!r} unique={self.unique!r} "
            f"{self.priority.name} {self.state.value}>"
        )
