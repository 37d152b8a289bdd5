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

from collections.abc import Iterable
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IReactorTime

from txgearman.codec import PacketType

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

    # -- what workers do ---------------------------------------------------

    def sleep(self, session: Session) -> None:
        """
        PRE_SLEEP: the worker will wait for a NOOP.  If something is
        runnable already, it gets the NOOP at once.
        """
        session.sleeping = True
        session.noopSent = False
        if session.hasRunnable():
            # Woken at once; a claim it holds stays until it grabs.
            self.noop(session)
            return
        # Nothing runnable, so nothing its claim could stand for.
        self._unclaim(session)
        for function in session.functions:
            function.sleepers[session] = None

    def learned(self, session: Session, function: Function) -> None:
        """
        A worker that can do C{function} now, since CAN_DO: if it sleeps,
        a runnable job of C{function} wakes it at once, a later one too.
        """
        if session.sleeping and not session.noopSent:
            if function.runnable:
                self.noop(session)
            else:
                function.sleepers[session] = None

    def grabbed(self, session: Session) -> None:
        """
        A sleeping or woken worker came for a job (whether it got one or
        not): it is awake, and its claim goes; if the job it was woken for
        is still waiting (it took another), someone else is woken for it.
        """
        if session.sleeping:
            session.sleeping = False
            if not session.noopSent:
                for function in session.functions:
                    function.sleepers.pop(session, None)
            session.noopSent = False
        claimed = session.wokenFor
        if claimed is not None:
            session.wokenFor = None
            del claimed.woken[session]
            if claimed.runnable:
                self.wake(claimed)

    def forget(self, session: Session, function: Function) -> bool:
        """
        The worker gave up C{function} (CANT_DO, RESET_ABILITIES).

        @return: whether it was woken for C{function}: once the jobs it
            held are requeued, L{wake} another worker for it.
        """
        function.sleepers.pop(session, None)
        if session.wokenFor is function:
            self._unclaim(session)
            return True
        return False

    def leave(self, session: Session) -> Function | None:
        """
        The worker disconnected: it sleeps nowhere and claims nothing.

        @return: the function it was woken for, which may need another
            worker once the jobs it held are requeued.
        """
        for function in session.functions:
            function.sleepers.pop(session, None)
        return self._unclaim(session)

    # -- waking ------------------------------------------------------------

    def wake(self, function: Function) -> None:
        """
        C{function} got a runnable job: wake sleeping workers of it, at
        most L{limit}, the ones asleep longest first.
        """
        sleepers = function.sleepers
        if not sleepers:
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
            budget = limit or len(sleepers)
        while sleepers and budget > 0:
            session = next(iter(sleepers))
            self.noop(session)
            if claims:
                session.wokenFor = function
                function.woken[session] = now
            budget -= 1
        if function.woken and function.wakeTimer is None:
            function.wakeTimer = self.clock.callLater(
                WAKE_PATIENCE, self._claimsDue, function
            )

    def noop(self, session: Session) -> None:
        """Send a sleeping worker its NOOP: it sleeps in no line now."""
        session.noopSent = True
        for function in session.functions:
            function.sleepers.pop(session, None)
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
