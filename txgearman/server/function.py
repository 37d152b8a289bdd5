# -*- test-case-name: txgearman.test.test_function -*-
"""
A function: its three priority queues, its workers, its unique index, and
the books of every job it holds.

A job's life is a handful of calls on its function, each one call that
moves the job to its next state (the moves are listed in
L{txgearman.server.job.TRANSITIONS}) and updates the counters, queues and
index that move concerns, so that they cannot drift apart:
L{Function.admit}, L{Function.push}, L{Function.schedule},
L{Function.release}, L{Function.start}, L{Function.requeue},
L{Function.finish} and L{Function.forget}.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from heapq import heapify
from typing import TYPE_CHECKING, Any, NamedTuple

from txgearman.server.job import Job, JobState

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall

    from txgearman.server.session import Session

__all__ = ["Function", "FunctionStatus", "PriorityStatus"]

# Rebuild a queue once this many cancelled entries sit in it and they
# outnumber the live ones: removal stays O(1) and memory stays bounded.
_COMPACT_AT = 1024
_SCHEDULED = JobState.SCHEDULED
_QUEUED = JobState.QUEUED
_RUNNING = JobState.RUNNING
_CANCELLED = JobState.CANCELLED
_DONE = JobState.DONE


class _Nothing(dict):
    """
    The empty dict every idle function shares instead of its own (64 bytes
    each, 224 once written to): writing to it is a bug, so it raises.
    """

    __slots__ = ()

    def __setitem__(self, key: object, value: object) -> None:
        raise TypeError("a function's shared empty dict was written to")


class _NoClaims(OrderedDict):
    """The same, for L{Function.woken}."""

    __slots__ = ()

    def __setitem__(self, key: object, value: object) -> None:
        raise TypeError("a function's shared empty claims were written to")


# What an idle function holds instead of its own containers: a function
# with nothing costs its slots and its name.  Counters that are written in
# place are shared as tuples, so that a write fails at once.
_NOTHING: dict[Any, Any] = _Nothing()
NO_CLAIMS: OrderedDict[Any, float] = _NoClaims()
_ZEROS: list[int] = (0, 0, 0)  # type: ignore[assignment]
_NO_QUEUES: list[deque[Job] | None] = (None, None, None)  # type: ignore[assignment]
# Replaced, never written in place, by setMaxQueue.
_NO_LIMITS = [0, 0, 0]


class FunctionStatus(NamedTuple):
    """
    One line of the admin C{status} listing.

    @ivar name: the function name.
    @ivar total: jobs held: pending, scheduled, queued and running.
    @ivar running: jobs a worker is running.
    @ivar workers: registered workers.
    """

    name: bytes
    total: int
    running: int
    workers: int


class PriorityStatus(NamedTuple):
    """
    One line of the admin C{prioritystatus} listing: jobs waiting (queued
    or scheduled) per priority.
    """

    name: bytes
    high: int
    normal: int
    low: int
    workers: int


class Function:
    """
    Everything the server knows about one function name.

    Queues are FIFO deques per priority.  Removing a queued job from the
    middle (cancel, abandon) only marks it; L{start} skips marked
    entries, so no operation walks the queue.

    A function with nothing in it is cheap: its queues, counters, worker
    and claim dicts are made when first needed, and until then it shares
    empty ones with every other idle function.  Once it has no worker, no
    job and was not named by an administrator (L{idle}), the server forgets
    it.

    Only this class's methods change the counters, queues and index; the
    wake-up fields (the values of C{workers}, C{sleepHeap}, C{woken},
    C{wakeTimer}) are kept by L{txgearman.server.wakeup.Waker}.

    @ivar queued: live runnable jobs per priority.
    @ivar scheduled: jobs waiting for their time, per priority.
    @ivar total: every job of the function the server holds: pending,
        scheduled, queued and running.
    @ivar running: jobs of the function a worker is running.
    @ivar workers: registered worker sessions, in registration order, each
        with the key of its place in L{sleepHeap}, or 0 while it has none
        (it is then in its L{Session.outOfLine}, and takes a place when it
        next sleeps).
    @ivar watchers: the workers that can do other functions too; each
        keeps its own per-priority set of runnable functions
        (L{Session.ready}), which L{push} updates when this function
        becomes runnable at a priority.
    @ivar sleepHeap: the line of workers a new job wakes, oldest sleeper
        first: a heap of C{(key, session)}.  A worker's sleep does not
        touch it (that would cost as many steps as the worker has
        functions); L{txgearman.server.wakeup.Waker} checks each entry as
        it comes to the top instead.  C{None} while empty.
    @ivar woken: workers woken for a job of this function that have not
        grabbed since, with when they were woken, oldest first: each stands
        for one waiting job, so that a new job wakes a sleeper only if
        there are more jobs than such workers.
    @ivar wakeTimer: takes the claims of workers woken too long ago.
    @ivar maxQueue: admission limits per submitted priority (0: none).
    @ivar kept: an administrator named the function (C{create function},
        C{maxqueue}): it stays until C{drop function}.
    @ivar payloads: payload to job, for the unique C{-} (coalesce by data).
    @ivar allUniques: the index of unique ids (other than C{-}) for
        coalescing, shared by all the server's functions and kept by each:
        unique id to its live job, or, in the rare case that several
        functions have a job of that unique id, to the list of them, oldest
        first.  One index for all functions, so that GET_STATUS_UNIQUE
        (which names no function) is one lookup, and one dict entry per job
        with a unique id, no more.
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
        "sleepHeap",
        "woken",
        "wakeTimer",
        "maxQueue",
        "kept",
        "payloads",
        "allUniques",
    )

    def __init__(
        self, name: bytes, allUniques: dict[bytes, Job | list[Job]] | None = None
    ) -> None:
        self.name = name
        self.allUniques: dict[bytes, Job | list[Job]] = (
            {} if allUniques is None else allUniques
        )
        self.queues = _NO_QUEUES
        self.queued = _ZEROS
        self.dead = _ZEROS
        self.scheduled = _ZEROS
        self.total = 0
        self.running = 0
        self.workers: dict[Session, int] = _NOTHING
        self.watchers: dict[Session, None] = _NOTHING
        self.sleepHeap: list[tuple[int, Session]] | None = None
        self.woken: OrderedDict[Session, float] = NO_CLAIMS
        self.wakeTimer: IDelayedCall | None = None
        self.maxQueue = _NO_LIMITS
        self.kept = False
        self.payloads: dict[bytes, Job] = _NOTHING

    def _newQueue(self, priority: int) -> deque[Job]:
        """The first job of C{priority}: make its queue (and the counters)."""
        if self.queues is _NO_QUEUES:
            self.queues = [None, None, None]
            self.queued = [0, 0, 0]
            self.dead = [0, 0, 0]
        queue = self.queues[priority] = deque()
        return queue

    # -- a job's life ------------------------------------------------------

    def admit(self, job: Job) -> None:
        """
        A new job (C{PENDING}) joins the function: counted in L{total},
        findable by its unique id.
        """
        self.total += 1
        unique = job.unique
        if unique:
            if unique == b"-":
                if self.payloads is _NOTHING:
                    self.payloads = {}
                self.payloads[job.data] = job
            else:
                found = self.allUniques.setdefault(unique, job)
                if found is not job:
                    if isinstance(found, list):
                        found.append(job)
                    else:
                        self.allUniques[unique] = [found, job]

    def push(self, job: Job) -> None:
        """
        A pending job becomes runnable: C{QUEUED}, at the tail of its
        priority's queue.  If the function had no runnable job of that
        priority, its L{watchers} learn it has one now.
        """
        job.state = _QUEUED
        p = job.priority
        queue = self.queues[p]
        if queue is None:
            queue = self._newQueue(p)
        queue.append(job)
        queued = self.queued
        queued[p] += 1
        if queued[p] == 1 and self.watchers:
            for session in self.watchers:
                session.ready[p][self] = None  # type: ignore[index]

    def schedule(self, job: Job) -> None:
        """A pending job waits for its time: C{SCHEDULED}."""
        job.state = _SCHEDULED
        if self.scheduled is _ZEROS:
            self.scheduled = [0, 0, 0]
        self.scheduled[job.priority] += 1

    def release(self, job: Job) -> None:
        """A scheduled job's time came: it is queued like a new one."""
        self.scheduled[job.priority] -= 1
        self.push(job)

    def start(self, priority: int, worker: Session) -> Job | None:
        """
        Hand the oldest runnable job of one priority to C{worker}:
        C{RUNNING}, counted in L{running}, held in the worker's
        C{Session.jobs}.

        @return: the job, or C{None} if none of that priority is runnable.
        """
        queued = self.queued
        if not queued[priority]:
            return None
        queue = self.queues[priority]
        while True:
            job = queue.popleft()  # type: ignore[union-attr]
            if job.state is _QUEUED:
                queued[priority] -= 1
                job.state = _RUNNING
                job.worker = worker
                self.running += 1
                worker.jobs[job.handle] = job
                return job
            self.dead[priority] -= 1

    def requeue(self, job: Job) -> None:
        """
        A running job's worker failed it: it leaves the worker and goes
        to the tail of its queue again.
        """
        self.running -= 1
        self._unlink(job)
        self.push(job)

    def finish(self, job: Job) -> bool:
        """
        A running (or cancelled) job ended: it leaves its worker and, if a
        cancel did not count it out already, the function's books.

        @return: whether the job was still in the books (not cancelled),
            so that the server lets go of it too.
        """
        worker = job.worker
        if worker is not None:
            # self._unlink(job), inlined: this runs for every job.
            worker.jobs.pop(job.handle, None)
            job.worker = None
        if job.state is _CANCELLED:
            job.state = _DONE
            return False
        if job.state is _RUNNING:
            self.running -= 1
        job.state = _DONE
        self.total -= 1
        if job.unique:
            self._unindex(job)
        return True

    def forget(self, job: Job) -> None:
        """
        Take a job out of the books before its end: out of its queue or
        the schedule, the running count, L{total} and the unique index.
        A running job becomes C{CANCELLED}: its worker still holds it and
        may report, for nothing; any other becomes C{DONE}.
        """
        state = job.state
        p = job.priority
        if state is _QUEUED:
            queued = self.queued
            dead = self.dead
            queued[p] -= 1
            dead[p] += 1
            job.state = _DONE
            if dead[p] > _COMPACT_AT and dead[p] > queued[p]:
                queue = self.queues[p]
                assert queue is not None
                self.queues[p] = deque(j for j in queue if j.state is _QUEUED)
                dead[p] = 0
        elif state is _RUNNING:
            self.running -= 1
            job.state = _CANCELLED
        else:
            if state is _SCHEDULED:
                self.scheduled[p] -= 1
            job.state = _DONE
        self.total -= 1
        if job.unique:
            self._unindex(job)
        if job.state is _DONE:
            # It will never run, but may wait as a dead entry in its queue
            # (or the schedule's heap) for a long time: not with its payload,
            # which can be as large as a packet.
            job.data = b""

    def _unlink(self, job: Job) -> None:
        """The job leaves the worker that held it."""
        worker = job.worker
        if worker is not None:
            worker.jobs.pop(job.handle, None)
            job.worker = None

    def _unindex(self, job: Job) -> None:
        """Forget C{job}'s unique id, if it still names C{job}."""
        unique = job.unique
        if unique == b"-":
            if self.payloads.get(job.data) is job:
                del self.payloads[job.data]
            return
        found = self.allUniques.get(unique)
        if found is job:
            del self.allUniques[unique]
        elif isinstance(found, list) and job in found:
            found.remove(job)
            if len(found) == 1:
                self.allUniques[unique] = found[0]

    # -- workers -----------------------------------------------------------

    def addWorker(self, session: Session) -> None:
        """
        A worker registered for this function.  It has no place in the
        line of sleepers yet (its L{Session.addFunction} notes that it
        takes one when it next sleeps).
        """
        if self.workers is _NOTHING:
            self.workers = {}
        self.workers[session] = 0

    def removeWorker(self, session: Session) -> None:
        """
        A worker gave up this function or left.  Its place in
        L{sleepHeap}, if any, is left to be skipped; when such entries
        outnumber the workers, the heap is rebuilt, so that it stays within
        twice the number of workers.
        """
        workers = self.workers
        workers.pop(session, None)
        watchers = self.watchers
        if session in watchers:
            del watchers[session]
            if not watchers:
                self.watchers = _NOTHING
        if not workers:
            self.workers = _NOTHING
            self.sleepHeap = None
            return
        heap = self.sleepHeap
        if heap is not None and len(heap) > 2 * len(workers) + 8:
            heap[:] = [(key, s) for s, key in workers.items() if key]
            heapify(heap)

    def watch(self, session: Session) -> None:
        """
        A worker of several functions keeps L{Session.ready}: tell it when
        this function becomes runnable.
        """
        if self.watchers is _NOTHING:
            self.watchers = {}
        self.watchers[session] = None

    def unwatch(self, session: Session) -> None:
        """That worker is down to one function and keeps no ready sets."""
        del self.watchers[session]
        if not self.watchers:
            self.watchers = _NOTHING

    def setMaxQueue(self, high: int, normal: int, low: int) -> None:
        """Admission limits per submitted priority; 0 or less: none."""
        self.maxQueue = [max(high, 0), max(normal, 0), max(low, 0)]

    def keep(self) -> None:
        """An administrator named the function: keep it until dropped."""
        self.kept = True

    # -- queries -----------------------------------------------------------

    def findUnique(self, unique: bytes, data: bytes) -> Job | None:
        """
        The job a submit with this unique id coalesces onto, if any.
        """
        if not unique:
            return None
        if unique == b"-":
            return self.payloads.get(data)
        found = self.allUniques.get(unique)
        if found is None:
            return None
        if isinstance(found, list):
            for job in found:
                if job.function is self:
                    return job
            return None
        return found if found.function is self else None

    def uniqueJobs(self) -> dict[bytes, Job]:
        """
        This function's jobs by unique id (other than C{-}), for admin and
        tests: a walk of the shared index, not for the per-job path.
        """
        mine = {}
        for unique, found in self.allUniques.items():
            for job in found if isinstance(found, list) else [found]:
                if job.function is self:
                    mine[unique] = job
        return mine

    @property
    def idle(self) -> bool:
        """
        Whether nothing needs the function: no worker, no job, and no
        administrator named it.  The server then forgets it.
        """
        return not (self.workers or self.total or self.kept)

    @property
    def sleepers(self) -> list[Session]:
        """
        The workers a new job would wake, in the order it would wake them:
        asleep, not yet sent a NOOP, oldest first.  For admin and tests: it
        walks the workers, so the per-job path reads L{sleepHeap} instead.
        """
        line = [
            (max(key, s.sleepSeq), s)
            for s, key in self.workers.items()
            if key and s.sleeping and not s.noopSent
        ]
        line.sort(key=lambda entry: entry[0])
        return [s for _, s in line]

    @property
    def runnable(self) -> bool:
        """Whether any job of this function can be handed out now."""
        q = self.queued
        return bool(q[0] or q[1] or q[2])

    def oldestQueuedAt(self) -> float | None:
        """
        When the longest-waiting runnable job joined its queue, or C{None}
        if none waits.  Each queue is in the order jobs joined it, so its
        first live job is its oldest; a scrape costs a look at the head of
        three queues (past any cancelled jobs still marked there).
        """
        oldest: float | None = None
        if not self.runnable:
            return oldest
        for queue in self.queues:
            if queue is None:
                continue
            for job in queue:
                if job.state is _QUEUED:
                    queued = job.queuedAt
                    if queued is not None and (oldest is None or queued < oldest):
                        oldest = queued
                    break
        return oldest

    def status(self) -> FunctionStatus:
        """The function's line in the admin C{status} listing."""
        return FunctionStatus(self.name, self.total, self.running, len(self.workers))

    def priorityStatus(self) -> PriorityStatus:
        """The function's line in the admin C{prioritystatus} listing."""
        queued, scheduled = self.queued, self.scheduled
        return PriorityStatus(
            self.name,
            queued[0] + scheduled[0],
            queued[1] + scheduled[1],
            queued[2] + scheduled[2],
            len(self.workers),
        )

    def __repr__(self) -> str:
        return f"<Function {self.name!r} total={self.total} running={self.running}>"
