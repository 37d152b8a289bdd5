# -*- test-case-name: txgearman.test.test_core -*-
"""
The job server's state and rules, with no sockets.

L{JobServer} holds functions, queues, jobs and workers, decides which job
goes to which worker, and tells connections what to send through their
L{IPeer}.  Time comes from an injected L{IReactorTime}, persistence from an
injected L{IQueueStore}; the Twisted protocols in L{txgearman.server.protocol}
only translate packets into calls on this class.

The server's parts keep their own books, and this class calls them: a
L{Function} its queues, counters and unique index (one call per move of a
job, the moves listed in L{txgearman.server.job.TRANSITIONS}), a
L{Session} its worker's abilities, a L{Job} its clients and store
handshake; L{txgearman.server.wakeup.Waker} decides which sleeping workers
to wake, and L{txgearman.server.schedule.TimedJobs} holds the jobs
waiting for their time.  What is left here is the rules that tie them
together: admission and coalescing, storing, results, retries and
timeouts, and what each connection is told.

Semantics follow gearmand master (global priority, round-robin between a
worker's functions, epoch jobs woken on time, C{--job-retries} as in
master); the deliberate differences are listed in C{docs/protocol.md}.
"""

from __future__ import annotations

import socket
from bisect import bisect_left as _bisect
from collections.abc import Iterator

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from txgearman._histogram import JOB_SECONDS, Histogram
from txgearman.codec import PacketType, Priority, printable
from txgearman.server.counts import JobCounts
from txgearman.server.function import Function, FunctionStatus, PriorityStatus
from txgearman.server.interfaces import IPeer
from txgearman.server.job import Job, JobInfo, JobState
from txgearman.server.schedule import CronSchedule, InvalidSchedule, TimedJobs
from txgearman.server.session import Session, WorkerInfo
from txgearman.server.wakeup import Waker
from txgearman.store.interfaces import ICallbackStore, IQueueStore, StoredJob
from txgearman.store.memory import MemoryQueueStore

__all__ = [
    "JobServer",
    "MAX_UNIQUE_SIZE",
    "MAX_HANDLE_SIZE",
    "DEFAULT_MAX_FUNCTIONS",
    "TooManyFunctions",
    "defaultHandlePrefix",
]

#: Longest unique id accepted (gearmand's limit; 64 bytes work fully here).
MAX_UNIQUE_SIZE = 64
#: Longest job handle (gearmand's buffer size less its NUL).
MAX_HANDLE_SIZE = 63
#: Longest client id kept (gearmand's limit).
MAX_CLIENT_ID_SIZE = 127
#: Shortest CAN_DO_TIMEOUT, in seconds (gearmand raises smaller ones).
MIN_WORKER_TIMEOUT = 1.0
#: How many functions the server holds at most, by default: far more than
#: any deployment names, and still only tens of megabytes of them.
DEFAULT_MAX_FUNCTIONS = 100_000

#: Sampling of the wait and run histograms (see L{JobServer._timeGrab}):
#: when timed jobs come closer than C{TIME_FASTER} seconds apart, one in
#: twice as many jobs is timed, up to one in C{TIME_EVERY_MAX}; further than
#: C{TIME_SLOWER} apart, one in half as many, down to every job.  So up to
#: about 100 jobs a second all are timed (exact histograms), and above,
#: between about 100 and 1,000 a second are (up to 64,000 jobs a second).
#: A timed job costs a few thousand instructions (two clock reads, two
#: bisects); the others only a countdown.
TIME_FASTER = 0.001
TIME_SLOWER = 0.01
TIME_EVERY_MAX = 64

_P = PacketType
_NO_JOB = _P.NO_JOB
_JOB_CREATED = _P.JOB_CREATED
_ERROR = _P.ERROR
# Module constants: an enum member's attribute lookup costs eight times
# as much, on the per-packet path.
_GRAB_JOB = _P.GRAB_JOB
_GRAB_JOB_ALL = _P.GRAB_JOB_ALL
_JOB_ASSIGN = _P.JOB_ASSIGN
_JOB_ASSIGN_ALL = _P.JOB_ASSIGN_ALL
_JOB_ASSIGN_UNIQ = _P.JOB_ASSIGN_UNIQ
_WORK_COMPLETE = _P.WORK_COMPLETE
_WORK_STATUS = _P.WORK_STATUS
_WORK_FAIL = _P.WORK_FAIL
_WORK_EXCEPTION = _P.WORK_EXCEPTION
_QUEUED = JobState.QUEUED
_RUNNING = JobState.RUNNING
_PENDING = JobState.PENDING
_DONE = JobState.DONE
_CANCELLED = JobState.CANCELLED
_SCHEDULED = JobState.SCHEDULED
_PRIORITIES = {int(p): p for p in Priority}
_NORMAL = Priority.NORMAL

_NOT_FOUND_RESULT = b"Job given in work result not found"
_DRAINING = b"Server is draining and takes no new jobs; submit to another server"
_NOT_FOUND_DATA = b"Job does not exist on server"
_NOT_FOUND_EXCEPTION = b"An exception was received for a job that does not exist"


def defaultHandlePrefix() -> bytes:
    """
    gearmand's default handle prefix, C{H:<host name>}, cut so that handles
    stay within L{MAX_HANDLE_SIZE}.
    """
    return b"H:" + socket.gethostname().encode("ascii", "replace")[:40]


class TooManyFunctions(Exception):
    """
    A new function was asked for while the server holds as many as it may
    (C{maxFunctions}).
    """

    def __init__(self, limit: int) -> None:
        super().__init__(f"the server holds its limit of {limit} functions")
        self.limit = limit


def _number(raw: bytes) -> int:
    """
    A WORK_STATUS number, read like C{atoi} but never negative or huge.
    """
    digits = raw.strip()
    end = 0
    while end < len(digits) and 48 <= digits[end] <= 57:
        end += 1
    return min(int(digits[:end]), 0xFFFFFFFF) if end else 0


class JobServer:
    """
    The Gearman job server core.

    @ivar functions: every known function, by name, in creation order.
    @ivar jobs: every live job, by handle.
    @ivar sessions: every connection, in connection order.
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        store: IQueueStore | None = None,
        jobRetries: int = -1,
        workerWakeup: int | None = None,
        handlePrefix: bytes | None = None,
        exceptions: bool = False,
        maxFunctions: int = DEFAULT_MAX_FUNCTIONS,
    ) -> None:
        """
        @param clock: where time comes from.
        @param store: where background jobs are persisted.
        @param jobRetries: as gearmand master's C{--job-retries}: C{-1} retries a
            job whose worker failed it forever; C{0} or C{1} drop it at the
            first failure; C{N} after N failed attempts.
        @param workerWakeup: how many sleeping workers one new job wakes:
            C{None} (the default) as many as there are jobs of the function
            that no woken worker has come for yet, so that a job costs the
            same with one idle worker or a thousand; C{0} all of them
            (gearmand's default); C{N} at most N (gearmand's C{-w N}).
        @param handlePrefix: job handles are C{<prefix>:<n>}.
        @param exceptions: whether clients get WORK_EXCEPTION without asking
            for it (gearmand's C{--exceptions}).
        @param maxFunctions: the most functions the server holds: a CAN_DO,
            submit or admin command that would make one more is refused
            (functions replayed from the store are always taken).
        """
        self.clock = clock
        # Bound once: read for every job queued, and when a timed one is
        # taken and ends.
        self._now = clock.seconds
        self.store: IQueueStore = store if store is not None else MemoryQueueStore()
        # A store that answers an add by calling back spares every
        # background job a Deferred (see ICallbackStore).
        self._addWithCallbacks = (
            self.store.addWithCallbacks
            if ICallbackStore.providedBy(self.store)
            else None
        )
        self.jobRetries = jobRetries
        self._waker = Waker(clock, workerWakeup)
        # Bound once: called for every job that becomes runnable.
        self._wake = self._waker.wake
        self.handlePrefix = (
            handlePrefix if handlePrefix is not None else defaultHandlePrefix()
        ) + b":"
        if len(self.handlePrefix) + 10 > MAX_HANDLE_SIZE:
            raise ValueError("job handle prefix is too long")
        self.exceptions = exceptions
        if maxFunctions < 1:
            raise ValueError("maxFunctions must be at least 1")
        self.maxFunctions = maxFunctions
        self.functions: dict[bytes, Function] = {}
        self.jobs: dict[bytes, Job] = {}
        # Unique id to its live jobs across functions, kept by the functions.
        self._uniques: dict[bytes, Job | list[Job]] = {}
        #: Set by L{drain}: no new job is taken.
        self.draining = False
        #: What the server has done since it started (see L{JobCounts}).
        self.counts = JobCounts()
        #: Whether to time jobs (L{waitTimes}, L{runTimes}, L{oldestQueued}):
        #: a clock read per job, and a few more for the jobs sampled (see
        #: L{_timeGrab}), that only a reader of the metrics needs, so whoever
        #: exposes them turns this on.
        self.timeJobs = False
        #: How long jobs waited in their queue before a worker took them.
        self.waitTimes = Histogram(JOB_SECONDS)
        #: How long jobs ran, from a worker taking them to their end (or
        #: to the worker failing them).
        self.runTimes = Histogram(JOB_SECONDS)
        # Sampling of the two (see _timeGrab): one job in _timeEvery is
        # timed, the next when _timeCountdown gets to 0; _timedAt is when
        # the last one was.
        self._timeEvery = 1
        self._timeCountdown = 1
        self._timedAt = float("-inf")
        self.sessions: dict[Session, None] = {}
        self._handleCounter = 0
        self._sessionCounter = 0
        self._timed = TimedJobs(clock, self._due)
        #: Set by L{stop}: connections closing now are the server going
        #: away, not workers failing their jobs.
        self.stopping = False
        # Flow control (see outputFull): how many sessions' output is over
        # the high-water mark, and the workers held back for them.  Both are
        # tested on the per-job path, and are zero and empty but for a
        # client that does not read.
        self._fullOutputs = 0
        self._throttled: dict[Session, None] = {}

    @property
    def workerWakeup(self) -> int | None:
        """How many sleeping workers one new job wakes (see L{Waker.limit})."""
        return self._waker.limit

    # -- connections -------------------------------------------------------

    def connect(
        self, peer: IPeer, host: str = "-", connectionId: int | None = None
    ) -> Session:
        """
        A connection arrived; return the session the protocol passes back
        with every later call.
        """
        if connectionId is None:
            self._sessionCounter += 1
            connectionId = self._sessionCounter
        session = Session(peer, connectionId, host, self.exceptions)
        self.sessions[session] = None
        return session

    def disconnect(self, session: Session) -> None:
        """
        A connection went away: detach its foreground jobs, requeue the
        jobs it was running, forget its abilities.
        """
        if session.closed:
            return
        self.sessions.pop(session, None)
        claimed = self._waker.leave(session)
        fed: list[Session] = []
        if session.outputFull:
            fed = session.feeding()
            session.setOutputFull(False)
            self._fullOutputs -= 1
        self._throttled.pop(session, None)
        functions = session.functions
        attached, held = session.close()
        for job in attached:
            self._detach(job, session)
        for worker in fed:
            # Their results went to this client, which is gone.
            self._reconsider(worker)
        if self.stopping:
            # Running jobs were not failed by their workers: they must not
            # count as a failed attempt, nor be dropped, nor leave the store.
            return
        for job in held:
            if job.state is _RUNNING:
                self._requeue(job)
        if claimed is not None:
            self._wake(claimed)
        for function in functions:
            if function.idle:
                self._forgetFunction(function)

    def _detach(self, job: Job, session: Session) -> None:
        """
        A foreground client stops waiting for C{job}.  A job nobody waits
        for and nobody asked for in the background is dropped; a
        background job is kept (gearmand drops it: see docs/protocol.md).
        """
        job.detach(session)
        self._dropIfOrphan(job)

    def _dropIfOrphan(self, job: Job) -> None:
        if job.clients or job.background:
            return
        state = job.state
        if state is _QUEUED or state is _SCHEDULED:
            job.function.forget(job)
            self._drop(job)
        # A running job keeps running; its results go nowhere.

    # -- flow control ------------------------------------------------------

    def outputFull(self, session: Session) -> None:
        """
        More output waits for C{session}'s peer than the high-water mark:
        it does not read as fast as its jobs' workers send.  Read nothing
        more from the workers running its jobs, nor from a worker that
        starts one of them later, until L{outputDrained}: what they would
        send would only pile up in the server.  A worker whose jobs go to
        other clients too is held back as well; the others wait with it.
        """
        if session.closed or session.outputFull:
            return
        session.setOutputFull(True)
        self._fullOutputs += 1
        for worker in session.feeding():
            self._throttle(worker)

    def outputDrained(self, session: Session) -> None:
        """
        C{session}'s waiting output fell below the low-water mark: the
        workers held back for it read again, unless another client they
        feed is still full.
        """
        if not session.outputFull:
            return
        session.setOutputFull(False)
        self._fullOutputs -= 1
        for worker in session.feeding():
            self._reconsider(worker)

    def heldBack(self) -> list[Session]:
        """The workers whose reading is paused for a full client."""
        return list(self._throttled)

    def _throttle(self, worker: Session) -> None:
        if worker.closed or worker in self._throttled:
            return
        self._throttled[worker] = None
        worker.peer.pauseReading()

    def _throttleIfFull(self, worker: Session, job: Job) -> None:
        """C{worker} took C{job}: hold it back if a client of it is full."""
        for client in job.clients:
            if client.outputFull:
                self._throttle(worker)
                return

    def _reconsider(self, worker: Session) -> None:
        """
        A job of C{worker} ended, or lost a client, or a client's output
        drained: let it read again if it feeds no full client now.
        """
        throttled = self._throttled
        if worker not in throttled:
            return
        if worker.closed:
            del throttled[worker]
        elif not worker.feedsFullClient():
            del throttled[worker]
            worker.peer.resumeReading()

    # -- worker abilities --------------------------------------------------

    def function(self, name: bytes, capped: bool = True) -> Function:
        """
        The function called C{name}, created if new.

        @param capped: whether to refuse to create one past
            L{maxFunctions} (replay is not refused: its jobs were
            acknowledged).
        @raise TooManyFunctions: the server holds as many as it may.
        """
        function = self.functions.get(name)
        if function is None:
            if capped and len(self.functions) >= self.maxFunctions:
                raise TooManyFunctions(self.maxFunctions)
            function = self.functions[name] = Function(name, self._uniques)
        return function

    def _forgetFunction(self, function: Function) -> None:
        """
        Nothing needs C{function} any more (L{Function.idle}): let it go,
        so that functions cost memory only while in use.  A later CAN_DO or
        submit makes it anew.
        """
        if self.functions.get(function.name) is function:
            del self.functions[function.name]
            self._waker.stop((function,))

    def canDo(
        self, session: Session, name: bytes, timeout: float | None = None
    ) -> None:
        """
        CAN_DO / CAN_DO_TIMEOUT: the worker can run C{name}.  Registering a
        function twice changes only its timeout.  A new function past
        L{maxFunctions} is refused with C{ERROR TOO_MANY_FUNCTIONS}, and
        the worker stays as it was.
        """
        try:
            function = self.function(name)
        except TooManyFunctions:
            self._tooManyFunctions(session)
            return
        if timeout is not None:
            timeout = max(timeout, MIN_WORKER_TIMEOUT)
        session.setTimeout(function, timeout)
        if session in function.workers:
            return
        session.addFunction(function)
        self._waker.learned(session, function)

    def cantDo(self, session: Session, name: bytes) -> None:
        """
        CANT_DO: forget one ability; jobs of that function the worker holds
        go back to the queue.
        """
        function = self.functions.get(name)
        if function is None or session not in function.workers:
            return
        self._forgetAbility(session, function)

    def resetAbilities(self, session: Session) -> None:
        """RESET_ABILITIES: forget every ability, requeueing held jobs."""
        for function in list(session.functions):
            self._forgetAbility(session, function)

    def _forgetAbility(self, session: Session, function: Function) -> None:
        held = session.removeFunction(function)
        claimed = self._waker.forget(session, function)
        for job in held:
            if job.state is _RUNNING:
                self._requeue(job)
        if claimed:
            self._wake(function)
        if function.idle:
            self._forgetFunction(function)

    # -- sleeping ----------------------------------------------------------

    def preSleep(self, session: Session) -> None:
        """
        PRE_SLEEP: the worker will wait for a NOOP (see L{Waker.sleep}).
        """
        self._waker.sleep(session)

    # -- grabbing ----------------------------------------------------------

    def grabJob(self, session: Session, kind: PacketType = _GRAB_JOB) -> None:
        """
        GRAB_JOB, GRAB_JOB_UNIQ or GRAB_JOB_ALL: hand the worker the next
        job, highest priority first across all its functions, rotating
        between functions that tie; or NO_JOB.
        """
        job = session.nextJob()
        if session.sleeping or session.wokenFor is not None:
            # Awake now, and its claim goes (after taking the job, so that
            # the job is not counted as still waiting for it).
            self._waker.grabbed(session)
        if job is None:
            session.peer.sendPacket(_NO_JOB)
            return
        if self.timeJobs:
            # One job in every _timeEvery is timed (see _timeGrab); the
            # countdown is all that the others cost.
            countdown = self._timeCountdown - 1
            if countdown:
                self._timeCountdown = countdown
            else:
                self._timeGrab(job)
        if self._fullOutputs:
            self._throttleIfFull(session, job)
        function = job.function
        timeout = session.timeouts.get(function) if session.timeouts else None
        if timeout is not None:
            job.armTimer(self.clock.callLater(timeout, self._timedOut, session, job))
        if kind is _GRAB_JOB:
            session.peer.sendPacket(_JOB_ASSIGN, job.handle, function.name, job.data)
        elif kind is _GRAB_JOB_ALL and job.reducer is not None:
            session.peer.sendPacket(
                _JOB_ASSIGN_ALL,
                job.handle,
                function.name,
                job.unique,
                job.reducer,
                job.data,
            )
        else:
            session.peer.sendPacket(
                _JOB_ASSIGN_UNIQ, job.handle, function.name, job.unique, job.data
            )

    def _timeGrab(self, job: Job) -> None:
        """
        Time C{job}, which a worker takes now: observe its wait, and mark
        it for its run to be observed when it ends (L{_finish}, L{_requeue}).

        It stands for the jobs taken since the last timed one, itself
        included, which is C{_timeEvery}: its wait and run count that many
        times, so that the histograms' counts estimate how many jobs there
        were, and their sums the total time.  Then C{_timeEvery} adapts to
        the rate: doubled (up to L{TIME_EVERY_MAX}) when these jobs came
        within L{TIME_FASTER} seconds, halved (down to 1) when they took
        more than L{TIME_SLOWER}; so every job is timed up to about 100 a
        second, and between about 100 and 1,000 a second are above.
        """
        now = job.startedAt = self._now()
        weight = job.weight = self._timeEvery
        queued = job.queuedAt
        if queued is not None:
            # self.waitTimes.observe(now - queued, weight), inlined.
            wait = now - queued
            times = self.waitTimes
            times.counts[_bisect(times.bounds, wait)] += weight
            times.sum += wait * weight
        gap = now - self._timedAt
        self._timedAt = now
        if gap < TIME_FASTER:
            if weight < TIME_EVERY_MAX:
                weight *= 2
        elif gap > TIME_SLOWER and weight > 1:
            weight //= 2
        self._timeEvery = self._timeCountdown = weight

    def _timedOut(self, session: Session, job: Job) -> None:
        job.stopTimer()
        if session.jobs.get(job.handle) is not job or job.state is not _RUNNING:
            return
        self.log.warn(
            "Worker timeout reached on job {handle}, requeueing",
            handle=job.handle.decode("ascii", "replace"),
        )
        self._requeue(job)

    def _requeue(self, job: Job) -> None:
        """
        The worker running C{job} failed it (disconnect, CANT_DO, timeout):
        queue it again at the tail, or drop it past the retry limit.
        """
        if job.timer is not None:
            job.stopTimer()
        if not job.clients and not job.background:
            # Its clients left while it ran: nobody waits for another try.
            self._finish(job)
            return
        worker = job.worker
        retries = job.attemptFailed()
        if self.jobRetries >= 0 and retries >= max(self.jobRetries, 1):
            self.log.info(
                "Dropped job due to max retry count: {handle} {unique}",
                handle=job.handle.decode("ascii", "replace"),
                unique=printable(job.unique),
            )
            for client in job.clients:
                client.peer.sendPacket(_WORK_FAIL, job.handle)
            self.counts.dropped += 1
            self._finish(job)
            return
        self.counts.retried += 1
        started = job.startedAt
        if started is not None or self.timeJobs:
            # Every job queued again has its time stamped (for
            # oldestQueued); only a timed one's run is observed.
            now = self._now()
            if started is not None:
                self.runTimes.observe(now - started, job.weight)
                job.startedAt = None
            job.queuedAt = now
        function = job.function
        function.requeue(job)
        if worker is not None and self._throttled:
            self._reconsider(worker)
        self._wake(function)

    # -- submitting --------------------------------------------------------

    def submitJob(
        self,
        session: Session | None,
        name: bytes,
        unique: bytes,
        data: bytes,
        priority: Priority = Priority.NORMAL,
        background: bool = False,
        when: int = 0,
        reducer: bytes | None = None,
    ) -> None:
        """
        Any SUBMIT_JOB*: queue a new job, or attach to the job with the
        same unique id, and answer JOB_CREATED or ERROR.

        A background job is stored first; JOB_CREATED follows the store's
        acknowledgement, and a store failure is answered with
        C{ERROR QUEUE_ERROR} and queues nothing.
        """
        if self.draining:
            self._error(session, b"SERVER_DRAINING", _DRAINING)
            return
        if len(unique) > MAX_UNIQUE_SIZE:
            self._error(session, b"ARGUMENT_TOO_LARGE", b"Unique value too large")
            return
        if reducer is not None and len(reducer) > MAX_UNIQUE_SIZE:
            self._error(session, b"ARGUMENT_TOO_LARGE", b"Reducer value too large")
            return
        function = self.functions.get(name)
        if function is None:
            if len(self.functions) >= self.maxFunctions:
                self._tooManyFunctions(session)
                return
            function = self.functions[name] = Function(name, self._uniques)
        elif unique:
            existing = function.findUnique(unique, data)
            if existing is not None:
                self._coalesce(session, existing, background)
                return
        limit = function.maxQueue[priority]
        if limit > 0 and function.total >= limit:
            self._error(session, b"QUEUE_ERROR", b"Job queue is full")
            return
        # No store key yet; a foreground submitter is attached at once.
        client = None if background else session
        job = self._newJob(
            function, unique, data, priority, background, when, reducer, None, client
        )
        handle = job.handle
        counts = self.counts
        if background:
            if when:
                counts.epoch += 1
            else:
                counts.background += 1
            self._persist(job, session)
        else:
            counts.foreground += 1
            self._admit(job)
            if session is not None:
                session.peer.sendPacket(_JOB_CREATED, handle)

    def submitScheduled(
        self,
        session: Session | None,
        name: bytes,
        unique: bytes,
        data: bytes,
        schedule: CronSchedule,
    ) -> None:
        """
        SUBMIT_JOB_SCHED: a background job that runs once, at the first
        minute after now that C{schedule} matches, and is otherwise
        submitted as L{submitJob} does.  A schedule that never matches is
        answered with C{ERROR INVALID_ARGUMENT}, as a malformed one is.
        """
        try:
            when = schedule.nextAfter(self.clock.seconds())
        except InvalidSchedule as e:
            self._error(session, b"INVALID_ARGUMENT", str(e).encode())
            return
        self.submitJob(session, name, unique, data, _NORMAL, True, when)

    def _coalesce(self, session: Session | None, job: Job, background: bool) -> None:
        """
        A submit matched a live job by unique id: the submitter shares it.
        """
        if session is not None and not background:
            job.attach(session)
            if session.outputFull and job.worker is not None:
                self._throttle(job.worker)
        if background and not job.background:
            # A foreground job gains a background owner: store it, so that
            # it survives its foreground clients and a restart.
            self._persist(job, session)
            return
        if job.waiters is not None and (background or job.state is _PENDING):
            # The job exists only once stored: answer when it is.
            self._wait(job, session)
            return
        if session is not None:
            session.peer.sendPacket(_JOB_CREATED, job.handle)

    def _wait(self, job: Job, session: Session | None) -> None:
        """
        C{session} waits for C{job} to be stored: keep the place of its
        answer in its output, so that it comes in the order of its requests.
        """
        if session is not None and job.waiters is not None:
            job.addWaiter(session, session.peer.reservePacket())

    def _answerWaiter(
        self, session: Session, place: object, ptype: int, *args: bytes
    ) -> None:
        if session.closed:
            return
        if place is None:
            session.peer.sendPacket(ptype, *args)
        else:
            session.peer.sendReserved(place, ptype, *args)

    def _persist(self, job: Job, submitter: Session | None) -> None:
        """
        Store a background job; C{submitter} gets its answer once the store
        has answered.
        """
        job.storing(submitter)
        addWithCallbacks = self._addWithCallbacks
        try:
            if addWithCallbacks is not None:
                addWithCallbacks(
                    job.record(), self._persisted, self._persistFailed, job
                )
            else:
                self.store.add(job.record()).addCallbacks(
                    self._persisted,
                    self._persistFailed,
                    callbackArgs=(job,),
                    errbackArgs=(job,),
                )
        except Exception:
            self._persistFailed(Failure(), job)
            return
        if submitter is not None and job.waiters is not None:
            # The store answers later (a memory store has answered already,
            # and the waiters are gone): keep the submitter's place for it.
            job.keepPlace(submitter, submitter.peer.reservePacket())

    def _persisted(self, key: object, job: Job) -> None:
        waiters = job.stored(key)
        if job.state is _DONE or job.state is _CANCELLED:
            # Cancelled or finished while the store was writing: the job
            # is forgotten already, so nothing else would remove the record.
            self.store.remove(job.unstore())
        elif job.state is _PENDING:
            self._admit(job)
        for session, place in waiters:
            self._answerWaiter(session, place, _JOB_CREATED, job.handle)

    def _persistFailed(self, failure: Failure, job: Job) -> None:
        reason = failure.getErrorMessage() or type(failure.value).__name__
        self.log.error(
            "Could not store job {handle} for {function}: {reason}",
            handle=job.handle.decode("ascii", "replace"),
            function=printable(job.function.name),
            reason=reason,
        )
        waiters = job.notStored()
        text = reason.encode("utf-8", "replace")
        self.counts.error(b"QUEUE_ERROR")
        for session, place in waiters:
            self._answerWaiter(session, place, _ERROR, b"QUEUE_ERROR", text)
        if job.state is _PENDING:
            job.function.forget(job)
            self._drop(job)
        elif job.state is not _DONE:
            # A foreground job a background submit tried to adopt: it stays
            # the foreground job it was.
            self._dropIfOrphan(job)

    def _admit(self, job: Job) -> None:
        """
        Make a new or stored job runnable now, at the tail of its queue,
        waking workers for it; or at its time.
        """
        if job.when and job.when > self.clock.seconds():
            job.function.schedule(job)
            self._timed.add(job)
        else:
            if self.timeJobs:
                job.queuedAt = self._now()
            function = job.function
            function.push(job)
            self._wake(function)

    # -- scheduled jobs ----------------------------------------------------

    def _due(self, job: Job) -> None:
        """A scheduled job's time came: it is queued, and wakes workers."""
        if self.timeJobs:
            job.queuedAt = self._now()
        function = job.function
        function.release(job)
        self._wake(function)

    # -- results -----------------------------------------------------------

    def _held(self, session: Session, handle: bytes, text: bytes) -> Job | None:
        job = session.jobs.get(handle)
        if job is None:
            self._error(session, b"JOB_NOT_FOUND", text)
        return job

    def workStatus(
        self, session: Session, handle: bytes, numerator: bytes, denominator: bytes
    ) -> None:
        """WORK_STATUS: remember progress and tell the waiting clients."""
        job = self._held(session, handle, _NOT_FOUND_RESULT)
        if job is None or job.state is _CANCELLED:
            return
        job.setProgress(_number(numerator), _number(denominator))
        for client in job.clients:
            client.peer.sendPacket(_WORK_STATUS, handle, numerator, denominator)

    def workData(
        self, session: Session, ptype: PacketType, handle: bytes, data: bytes
    ) -> None:
        """WORK_DATA / WORK_WARNING: pass to the waiting clients."""
        job = self._held(session, handle, _NOT_FOUND_DATA)
        if job is None or job.state is _CANCELLED:
            return
        for client in job.clients:
            client.peer.sendPacket(ptype, handle, data)

    def workComplete(self, session: Session, handle: bytes, data: bytes) -> None:
        """WORK_COMPLETE: deliver the result and forget the job."""
        job = self._held(session, handle, _NOT_FOUND_RESULT)
        if job is None:
            return
        for client in job.clients:
            client.peer.sendPacket(_WORK_COMPLETE, handle, data)
        self.counts.completed += 1
        self._finish(job)

    def workFail(self, session: Session, handle: bytes) -> None:
        """WORK_FAIL: tell the clients and forget the job."""
        job = self._held(session, handle, _NOT_FOUND_RESULT)
        if job is None:
            return
        for client in job.clients:
            client.peer.sendPacket(_WORK_FAIL, handle)
        self.counts.failed += 1
        self._finish(job)

    def workException(self, session: Session, handle: bytes, data: bytes) -> None:
        """
        WORK_EXCEPTION: clients that asked for exceptions get it, the others
        get WORK_FAIL; the job ends.
        """
        job = self._held(session, handle, _NOT_FOUND_EXCEPTION)
        if job is None:
            return
        for client in job.clients:
            if client.exceptions:
                client.peer.sendPacket(_WORK_EXCEPTION, handle, data)
            else:
                client.peer.sendPacket(_WORK_FAIL, handle)
        self.counts.exceptions += 1
        self._finish(job)

    def _finish(self, job: Job) -> None:
        """
        The job has ended: unlink it everywhere and drop its stored record.
        """
        if job.timer is not None:
            job.stopTimer()
        # Read before the job leaves its worker, only while a worker is
        # held back (see outputFull).
        worker = job.worker if self._throttled else None
        started = job.startedAt
        if started is not None:
            # self.runTimes.observe(ran, job.weight), inlined: every timed job.
            ran = self._now() - started
            weight = job.weight
            times = self.runTimes
            times.counts[_bisect(times.bounds, ran)] += weight
            times.sum += ran * weight
            job.startedAt = None
        function = job.function
        if function.finish(job):
            # self._drop(job), inlined: this runs for every job.
            if job.clients:
                job.releaseClients()
            if self.jobs.get(job.handle) is job:
                del self.jobs[job.handle]
            if job.storeKey is not None:
                self.store.remove(job.unstore())
            if not function.total and not function.workers and not function.kept:
                self._forgetFunction(function)
        if worker is not None:
            self._reconsider(worker)

    def _drop(self, job: Job) -> None:
        """
        Let go of a job its function has forgotten: its clients stop
        waiting, its handle and its stored record go.
        """
        if job.clients:
            job.releaseClients()
        if self.jobs.get(job.handle) is job:
            del self.jobs[job.handle]
        if job.storeKey is not None:
            self.store.remove(job.unstore())
        if job.function.idle:
            self._forgetFunction(job.function)

    # -- status and options ------------------------------------------------

    def getStatus(self, handle: bytes) -> tuple[bytes, bool, bool, int, int]:
        """
        GET_STATUS: C{(handle, known, running, numerator, denominator)}.
        """
        job = self.jobs.get(handle)
        if job is None:
            return (handle, False, False, 0, 0)
        return (handle, True, job.state is _RUNNING, job.numerator, job.denominator)

    def functionsOfUnique(self, unique: bytes) -> list[bytes]:
        """The functions of the live jobs with this unique id."""
        found = self._uniques.get(unique) if unique != b"-" else None
        if found is None:
            return []
        jobs = found if isinstance(found, list) else [found]
        return [job.function.name for job in jobs]

    def getStatusUnique(self, unique: bytes) -> tuple[bytes, bool, bool, int, int, int]:
        """
        GET_STATUS_UNIQUE: C{(unique, known, running, numerator,
        denominator, clients)} of the oldest live job with that unique id,
        whatever its function: one lookup in the index the functions keep,
        however many functions there are.
        """
        found = self._uniques.get(unique) if unique != b"-" else None
        if found is not None:
            job = found[0] if isinstance(found, list) else found
            return (
                unique,
                True,
                job.state is _RUNNING,
                job.numerator,
                job.denominator,
                len(job.clients),
            )
        return (unique, False, False, 0, 0, 0)

    def setClientId(self, session: Session, clientId: bytes) -> None:
        """
        SET_CLIENT_ID.  Whitespace becomes C{_} so the admin C{workers}
        listing stays parseable.
        """
        cleaned = b"_".join(clientId[:MAX_CLIENT_ID_SIZE].split())
        session.setClientId(cleaned or b"-")

    def setOption(self, session: Session, name: bytes) -> bool:
        """
        OPTION_REQ: only C{exceptions} is known.
        """
        if name.lower() == b"exceptions":
            session.wantExceptions()
            return True
        return False

    # -- administration ----------------------------------------------------

    def functionStatus(self) -> list[FunctionStatus]:
        """Admin C{status}: every known function's figures, in creation order."""
        return [function.status() for function in self.functions.values()]

    def priorityStatus(self) -> list[PriorityStatus]:
        """
        Admin C{prioritystatus}: every known function's waiting jobs per
        priority, in creation order.
        """
        return [function.priorityStatus() for function in self.functions.values()]

    def oldestQueued(self) -> list[float | None]:
        """
        Per known function, in creation order (as L{functionStatus}): when
        its longest-waiting runnable job was queued, or C{None} (always,
        unless L{timeJobs}).
        """
        if not self.timeJobs:
            return [None] * len(self.functions)
        return [function.oldestQueuedAt() for function in self.functions.values()]

    def listWorkers(self) -> list[WorkerInfo]:
        """Admin C{workers}: every connection, in connection order."""
        return [session.info() for session in self.sessions]

    def workerCount(self) -> int:
        """The connections that registered a function, for the metrics."""
        return sum(1 for session in self.sessions if session.functions)

    def listJobs(self) -> list[JobInfo]:
        """Admin C{show jobs}: every live job, in submission order."""
        return [job.info() for job in self.jobs.values()]

    def createFunction(self, name: bytes) -> Function:
        """
        Admin C{create function}: the function is kept, with or without
        workers and jobs, until C{drop function}.

        @raise TooManyFunctions: it is new, and the server holds as many
            as it may.
        """
        function = self.function(name)
        function.keep()
        return function

    def dropFunction(self, name: bytes) -> str | None:
        """
        Admin C{drop function}: forget an idle function.

        @return: C{None} on success, else why not.
        """
        function = self.functions.get(name)
        if function is None:
            return "function not found"
        if function.workers or function.running:
            return "there are still connected workers or executing clients"
        if function.total:
            return "there are still queued jobs"
        del self.functions[name]
        return None

    def setMaxQueue(self, name: bytes, high: int, normal: int, low: int) -> None:
        """
        Admin C{maxqueue}: admission limits for new jobs of C{name}, per
        submitted priority, against the function's total (0: none).  The
        function is kept, as by C{create function}, so that its limits are
        not lost.

        @raise TooManyFunctions: it is new, and the server holds as many
            as it may.
        """
        function = self.function(name)
        function.setMaxQueue(high, normal, low)
        function.keep()

    def maxQueues(self) -> list[tuple[bytes, int, int, int]]:
        """
        Every function with an admission limit set by C{maxqueue}: C{(name,
        high, normal, low)}, in creation order.
        """
        limits = []
        for name, function in self.functions.items():
            high, normal, low = function.maxQueue
            if high or normal or low:
                limits.append((name, high, normal, low))
        return limits

    def cancelJob(self, handle: bytes) -> bool:
        """
        Admin C{cancel job}: clients get WORK_FAIL, the stored record goes,
        and the job is forgotten at once.  A worker already running it may
        still report; its results are discarded.

        @return: whether the job existed.
        """
        job = self.jobs.get(handle)
        if job is None or job.state is _DONE:
            return False
        for client in job.clients:
            client.peer.sendPacket(_WORK_FAIL, handle)
        if job.timer is not None:
            # Only a running job has one.
            job.stopTimer()
        worker = job.worker
        job.function.forget(job)
        self._drop(job)
        if worker is not None:
            # It may still report, but to nobody.
            self._reconsider(worker)
        return True

    # -- start-up ----------------------------------------------------------

    def restore(self, key: object, record: StoredJob) -> None:
        """
        Queue a job replayed from the store at start-up, under a new handle.
        A second record for the same function and unique id is a duplicate
        of the first: it is dropped from the store.
        """
        # A replay calls this a million times in a row: fields unpacked
        # once, no enum attribute lookups.
        name, unique, data, priority, when, reducer = record
        function = self.function(name, capped=False)
        if unique and function.findUnique(unique, data) is not None:
            self.log.warn(
                "Dropping duplicate stored job for {function} unique {unique}",
                function=printable(name),
                unique=printable(unique),
            )
            self.store.remove(key)
            return
        job = self._newJob(
            function,
            unique,
            data,
            _PRIORITIES.get(priority, _NORMAL),
            True,
            when,
            reducer,
            key,
        )
        self._admit(job)

    def _newJob(
        self,
        function: Function,
        unique: bytes,
        data: bytes,
        priority: Priority,
        background: bool,
        when: int,
        reducer: bytes | None,
        storeKey: object | None = None,
        client: Session | None = None,
    ) -> Job:
        """
        A new job under the next handle, counted and findable by handle and
        unique id, not yet in any queue.

        @param storeKey: the key of the record it was replayed from.
        @param client: the foreground client that submitted it.
        """
        self._handleCounter += 1
        handle = self.handlePrefix + b"%d" % (self._handleCounter,)
        job = Job(
            handle,
            function,
            unique,
            data,
            priority,
            background,
            when,
            reducer,
            storeKey,
            client,
        )
        function.admit(job)
        self.jobs[handle] = job
        return job

    # -- helpers -----------------------------------------------------------

    def _tooManyFunctions(self, session: Session | None) -> None:
        text = str(TooManyFunctions(self.maxFunctions)).encode()
        self._error(session, b"TOO_MANY_FUNCTIONS", b"Too many functions: " + text)

    def _error(self, session: Session | None, code: bytes, text: bytes) -> None:
        self.counts.error(code)
        if session is not None:
            session.peer.sendPacket(_ERROR, code, text)

    def drain(self) -> None:
        """
        Take no new job from now on: submits are answered with C{ERROR
        SERVER_DRAINING}, so that clients take them to another server,
        while the jobs held run to their end.
        """
        self.draining = True

    @property
    def idle(self) -> bool:
        """Whether the server holds no job at all."""
        return not self.jobs

    def iterJobs(self) -> Iterator[Job]:
        """Every live job, in submission order."""
        return iter(list(self.jobs.values()))

    def stop(self) -> None:
        """
        The server is going away: cancel timers, and treat the connections
        that close from now on as the server's doing, not their peers'.
        """
        self.stopping = True
        self._timed.stop()
        self._waker.stop(self.functions.values())
        for job in self.jobs.values():
            job.stopTimer()
