# -*- test-case-name: txgearman.test.test_wakeup -*-
"""
Which sleeping workers a job wakes, and when.

A worker with nothing to do sends PRE_SLEEP and waits for a NOOP before it
asks again.  gearmand NOOPs every sleeper of a function for every new job,
so a job's cost grows with the number of idle workers.  By default
L{Waker} wakes just enough: one sleeper per job of the function that no
woken worker has come for yet.  Each woken worker holds a claim on the
function until it grabs (or leaves, gives the function up, sleeps again,
or L{WAKE_PATIENCE} passes); then the claim goes and, if jobs still wait,
another sleeper is woken.  C{--worker-wakeup} chooses gearmand's way (all)
or a fixed number instead.

The waker keeps its state on the sessions (C{sleeping}, C{noopSent},
C{wokenFor}) and functions (C{sleepers}, C{woken}, C{wakeTimer}) it
concerns, so that each step costs the same whatever the number of
workers; nothing else writes those fields.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from heapq import heappop, heappush, heapreplace
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IReactorTime

from txgearman.codec import PacketType
from txgearman.server.function import NO_CLAIMS

if TYPE_CHECKING:
    from txgearman.server.function import Function
    from txgearman.server.session import Session

__all__ = ["Waker", "WAKE_PATIENCE"]

#: How long a worker woken for a job has to grab before another sleeping
#: worker is woken in its place (with the default, "just enough" wake-ups).
WAKE_PATIENCE = 1.0

_NOOP = PacketType.NOOP


class Waker:
    """
    The wake-up policy of one job server.

    @ivar limit: how many sleeping workers one new job wakes: C{None} as
        many as there are jobs of the function that no woken worker has
        come for yet; C{0} all of them; C{N} at most N.
    """

    def __init__(self, clock: IReactorTime, limit: int | None = None) -> None:
        self.clock = clock
        self.limit = limit
        # Sleeps (and abilities learned while asleep) counted: the places
        # in the lines of sleepers.
        self._sleeps = 0

    # -- what workers do ---------------------------------------------------

    def sleep(self, session: Session) -> None:
        """
        PRE_SLEEP: the worker will wait for a NOOP.  If something is
        runnable already, it gets the NOOP at once.

        Otherwise it takes its place at the end of the line of each of its
        functions without visiting them: its new L{Session.sleepSeq} says
        where it stands, and each line puts its entry right when the entry
        comes up (L{_nextSleeper}).  Only the functions whose line lost it
        while it was awake (L{Session.outOfLine}) are visited.
        """
        inLine = session.sleeping and not session.noopSent
        session.sleeping = True
        session.noopSent = False
        if session.hasRunnable():
            # Woken at once; a claim it holds stays until it grabs.
            self.noop(session)
            return
        # Nothing runnable, so nothing its claim could stand for.
        self._unclaim(session)
        if inLine:
            # A second PRE_SLEEP keeps the place of the first.
            return
        self._sleeps += 1
        key = session.sleepSeq = self._sleeps
        outOfLine = session.outOfLine
        if outOfLine:
            for function in outOfLine:
                # self._line(function, session, key), inlined: a worker
                # of one function comes here at every sleep.
                function.workers[session] = key
                heap = function.sleepHeap
                if heap is None:
                    function.sleepHeap = [(key, session)]
                else:
                    heappush(heap, (key, session))
            outOfLine.clear()

    def learned(self, session: Session, function: Function) -> None:
        """
        A worker that can do C{function} now, since CAN_DO: if it sleeps,
        a runnable job of C{function} wakes it at once, a later one too.
        """
        if session.sleeping and not session.noopSent:
            if function.runnable:
                self.noop(session)
            else:
                # At the end of the line: after those asleep already.
                self._sleeps += 1
                self._line(function, session, self._sleeps)
                session.outOfLine.pop(function, None)

    def _line(self, function: Function, session: Session, key: int) -> None:
        """Give C{session} a place in C{function}'s line of sleepers."""
        function.workers[session] = key
        heap = function.sleepHeap
        if heap is None:
            function.sleepHeap = [(key, session)]
        else:
            heappush(heap, (key, session))

    def grabbed(self, session: Session) -> None:
        """
        A sleeping or woken worker came for a job (whether it got one or
        not): it is awake, and its claim goes; if the job it was woken for
        is still waiting (it took another), someone else is woken for it.
        Its places in the lines of its functions stay, to be skipped while
        it is awake.
        """
        if session.sleeping:
            session.sleeping = False
            session.noopSent = False
        claimed = session.wokenFor
        if claimed is not None:
            session.wokenFor = None
            del claimed.woken[session]
            if claimed.runnable:
                self.wake(claimed)

    def forget(self, session: Session, function: Function) -> bool:
        """
        The worker gave up C{function} (CANT_DO, RESET_ABILITIES): it
        leaves that function's line (its entry is skipped from now on).

        @return: whether it was woken for C{function}: once the jobs it
            held are requeued, L{wake} another worker for it.
        """
        workers = function.workers
        if session in workers:
            # Still registered (the core has removed it already).
            workers[session] = 0
        session.outOfLine.pop(function, None)
        if session.wokenFor is function:
            self._unclaim(session)
            return True
        return False

    def leave(self, session: Session) -> Function | None:
        """
        The worker disconnected: it sleeps nowhere and claims nothing (its
        entries in the lines are skipped from now on, and go with its
        abilities in L{Session.close}).

        @return: the function it was woken for, which may need another
            worker once the jobs it held are requeued.
        """
        session.sleeping = False
        session.noopSent = False
        return self._unclaim(session)

    # -- waking ------------------------------------------------------------

    def wake(self, function: Function) -> None:
        """
        C{function} got a runnable job: wake sleeping workers of it, at
        most L{limit}, the ones asleep longest first.
        """
        if not function.sleepHeap:
            return
        limit = self.limit
        claims = limit is None
        if claims:
            # Just enough: one worker per job no woken worker has come for
            # yet.
            queued = function.queued
            budget = queued[0] + queued[1] + queued[2] - len(function.woken)
            now = self.clock.seconds() if budget > 0 else 0.0
        else:
            budget = limit or len(function.workers)
        while budget > 0:
            session = self._nextSleeper(function)
            if session is None:
                break
            self.noop(session)
            if claims:
                session.wokenFor = function
                woken = function.woken
                if woken is NO_CLAIMS:
                    woken = function.woken = OrderedDict()
                woken[session] = now
            budget -= 1
        if function.woken and function.wakeTimer is None:
            function.wakeTimer = self.clock.callLater(
                WAKE_PATIENCE, self._claimsDue, function
            )

    def _nextSleeper(self, function: Function) -> Session | None:
        """
        Take the worker asleep longest out of C{function}'s line.

        Entries are checked as they come to the top: one of a worker that
        left the function is dropped; one of a worker awake now (or sent a
        NOOP for another function) is dropped, and the function goes in
        the worker's L{Session.outOfLine}; one of a worker that went to
        sleep again since it was made moves back to where that sleep puts
        it.  Each entry's key is never later than its worker's true place,
        so the first entry that needs no change is the oldest sleeper.
        Each step is paid for by a sleep, an ability or a wake-up that came
        before it, so a job costs amortised constant time.
        """
        heap = function.sleepHeap
        workers = function.workers
        while heap:
            key, session = heap[0]
            if workers.get(session) != key:
                heappop(heap)
                continue
            if not session.sleeping or session.noopSent:
                heappop(heap)
                workers[session] = 0
                session.outOfLine[function] = None
                continue
            seq = session.sleepSeq
            if key < seq:
                workers[session] = seq
                heapreplace(heap, (seq, session))
                continue
            heappop(heap)
            workers[session] = 0
            session.outOfLine[function] = None
            return session
        return None

    def noop(self, session: Session) -> None:
        """
        Send a sleeping worker its NOOP: it is out of every line now (its
        entries in its other functions' lines are skipped from now on).
        """
        session.noopSent = True
        session.peer.sendPacket(_NOOP)

    def _unclaim(self, session: Session) -> Function | None:
        """
        Drop the claim of a worker woken for a job.

        @return: the function it was woken for, if any.
        """
        function = session.wokenFor
        if function is not None:
            session.wokenFor = None
            del function.woken[session]
        return function

    def _claimsDue(self, function: Function) -> None:
        """
        Workers woken for C{function} that have not come for a job within
        L{WAKE_PATIENCE} lose their claim, so that a slow or stuck worker
        cannot keep its jobs from the workers still asleep.
        """
        function.wakeTimer = None
        woken = function.woken
        expired = self.clock.seconds() - WAKE_PATIENCE
        while woken:
            session, when = next(iter(woken.items()))
            if when > expired:
                delay = when - expired
                function.wakeTimer = self.clock.callLater(
                    delay, self._claimsDue, function
                )
                break
            del woken[session]
            session.wokenFor = None
        self.wake(function)

    def stop(self, functions: Iterable[Function]) -> None:
        """The server is going away: cancel the patience timers."""
        for function in functions:
            timer = function.wakeTimer
            if timer is not None and timer.active():
                timer.cancel()
            function.wakeTimer = None
