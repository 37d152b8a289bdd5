# -*- test-case-name: txgearman.test.test_core -*-
"""
A function: its three priority queues, its workers and its unique index.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import TYPE_CHECKING

from txgearman.server.job import Job, JobState

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall

    from txgearman.server.session import Session

__all__ = ["Function"]

# Rebuild a queue once this many cancelled entries sit in it and they
# outnumber the live ones: removal stays O(1) and memory stays bounded.
_COMPACT_AT = 1024
_QUEUED = JobState.QUEUED
_DONE = JobState.DONE


class Function:
    """
    Everything the server knows about one function name.

    Queues are FIFO deques per priority.  Removing a queued job from the
    middle (cancel, abandon) only marks it; L{popRunnable} skips marked
    entries, so no operation walks the queue.

    @ivar queued: live runnable jobs per priority.
    @ivar scheduled: jobs waiting for their time, per priority.
    @ivar total: every job of the function the server holds: pending,
        scheduled, queued and running.
    @ivar workers: registered worker sessions, in registration order.
    @ivar watchers: the workers that can do other functions too; each
        keeps its own per-priority set of runnable functions
        (L{Session.ready}), which the core updates when this function
        becomes runnable at a priority.
    @ivar sleepers: workers asleep (PRE_SLEEP) that have not yet been sent
        a NOOP, oldest first: the ones a new job wakes.  An OrderedDict,
        because taking the oldest out of a plain dict again and again
        costs time that grows with its size.
    @ivar woken: workers woken for a job of this function that have not
        grabbed since, with when they were woken, oldest first: each stands
        for one waiting job, so that a new job wakes a sleeper only if
        there are more jobs than such workers.
    @ivar wakeTimer: takes the claims of workers woken too long ago.
    @ivar maxQueue: admission limits per submitted priority (0: none).
    @ivar uniques: non-empty unique id to job, for coalescing.
    @ivar payloads: payload to job, for the unique C{-} (coalesce by data).
    """

    __slots__ = (
        "name",
        "queues",
        "queued",
        "dead",
        "scheduled",
        "total",
        "running",
        "workers",
        "watchers",
        "sleepers",
        "woken",
        "wakeTimer",
        "maxQueue",
        "uniques",
        "payloads",
    )

    def __init__(self, name: bytes) -> None:
        self.name = name
        self.queues: tuple[deque[Job], deque[Job], deque[Job]] = (
            deque(),
            deque(),
            deque(),
        )
        self.queued = [0, 0, 0]
        self.dead = [0, 0, 0]
        self.scheduled = [0, 0, 0]
        self.total = 0
        self.running = 0
        self.workers: dict[Session, None] = {}
        self.watchers: dict[Session, None] = {}
        self.sleepers: OrderedDict[Session, None] = OrderedDict()
        self.woken: OrderedDict[Session, float] = OrderedDict()
        self.wakeTimer: IDelayedCall | None = None
        self.maxQueue = [0, 0, 0]
        self.uniques: dict[bytes, Job] = {}
        self.payloads: dict[bytes, Job] = {}

    def findUnique(self, unique: bytes, data: bytes) -> Job | None:
        """
        The job a submit with this unique id coalesces onto, if any.
        """
        if not unique:
            return None
        if unique == b"-":
            return self.payloads.get(data)
        return self.uniques.get(unique)

    def index(self, job: Job) -> None:
        """Make C{job} findable by its unique id."""
        unique = job.unique
        if not unique:
            return
        if unique == b"-":
            self.payloads[job.data] = job
        else:
            self.uniques[unique] = job

    def unindex(self, job: Job) -> None:
        """Forget C{job}'s unique id, if it still names C{job}."""
        unique = job.unique
        if not unique:
            return
        table = self.payloads if unique == b"-" else self.uniques
        key = job.data if unique == b"-" else unique
        if table.get(key) is job:
            del table[key]

    def push(self, job: Job) -> bool:
        """
        Append a runnable job to the tail of its priority's queue.

        @return: whether the function had no runnable job of that priority
            before, so that the core tells the L{watchers}.
        """
        job.state = _QUEUED
        p = job.priority
        self.queues[p].append(job)
        queued = self.queued
        queued[p] += 1
        return queued[p] == 1

    def discard(self, job: Job) -> None:
        """
        Take a queued job out of its queue (lazily).
        """
        p = job.priority
        self.queued[p] -= 1
        self.dead[p] += 1
        job.state = _DONE
        if self.dead[p] > _COMPACT_AT and self.dead[p] > self.queued[p]:
            live = deque(j for j in self.queues[p] if j.state is _QUEUED)
            self.queues = tuple(  # type: ignore[assignment]
                live if i == p else q for i, q in enumerate(self.queues)
            )
            self.dead[p] = 0

    def popRunnable(self, priority: int) -> Job | None:
        """
        Take the oldest runnable job of one priority, or C{None}.
        """
        if not self.queued[priority]:
            return None
        queue = self.queues[priority]
        while True:
            job = queue.popleft()
            if job.state is _QUEUED:
                self.queued[priority] -= 1
                return job
            self.dead[priority] -= 1

    @property
    def runnable(self) -> bool:
        """Whether any job of this function can be handed out now."""
        q = self.queued
        return bool(q[0] or q[1] or q[2])

    def __repr__(self) -> str:
        return f"<Function {self.name!r} total={self.total} running={self.running}>"
