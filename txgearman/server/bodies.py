# -*- test-case-name: txgearman.test.test_bodies -*-
"""
The server-wide budget for partly received large packet bodies
(C{--max-buffered-bodies}).

C{--max-packet-size} bounds one packet, not how many arrive at once: a
hundred connections each sending a 60 MiB packet would make the server
hold 6 GB before any of them is complete.  So a connection whose decoder
starts a large body (L{txgearman.codec.LARGE_BODY} or more, announced by
its header) reserves the announced size here first.  What does not fit
waits, its reading paused, and is let in, in the order it came, as room
is made; what waits longer than the timeout is told so and closed.
Reserving the whole announced size at the header means that a body let in
can always be completed, so bodies never wait on each other in a circle.

Smaller packets are not counted: a connection holds at most one of them
partly, less than one read, and they are what honest clients send, so
they are read on every connection while large bodies wait.

No sockets and no global reactor: time comes from the clock given.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

from twisted.internet.interfaces import IDelayedCall, IReactorTime

__all__ = ["BodyBudget", "DEFAULT_BODY_WAIT_TIMEOUT", "DEFAULT_BODIES_PER_BUDGET"]

#: How many packets of the largest size the default budget takes at once:
#: the default C{--max-buffered-bodies} is this many C{--max-packet-size}s.
DEFAULT_BODIES_PER_BUDGET = 4

#: How long a large body may wait for room, in seconds, by default.
DEFAULT_BODY_WAIT_TIMEOUT = 30.0


class _Waiter(NamedTuple):
    size: int
    granted: Callable[[], None]
    expired: Callable[[], None]
    timer: IDelayedCall


class BodyBudget:
    """
    The bytes all connections may hold in partly received large bodies,
    and who holds or waits for how many.

    Owners are whatever the caller uses to tell connections apart (the
    server's protocols); each holds or waits for at most one reservation.

    @ivar limit: the budget, in bytes.
    @ivar timeout: how long a reservation may wait, in seconds.
    @ivar reserved: the bytes reserved now.
    """

    def __init__(self, clock: IReactorTime, limit: int, timeout: float) -> None:
        if limit < 1:
            raise ValueError(f"a body budget must be at least 1 byte, not {limit}")
        self.clock = clock
        self.limit = limit
        self.timeout = timeout
        self.reserved = 0
        self._holders: dict[object, int] = {}
        # Oldest first: room goes to them in the order they came.
        self._waiting: OrderedDict[object, _Waiter] = OrderedDict()

    def reserve(
        self,
        owner: object,
        size: int,
        granted: Callable[[], None],
        expired: Callable[[], None],
    ) -> bool:
        """
        Reserve C{size} bytes for C{owner}'s body.

        @param granted: called once the reservation is made, if it could
            not be at once.
        @param expired: called if it could not be made within L{timeout};
            the owner no longer waits then.
        @return: whether the bytes are reserved now.  If not, C{owner}
            waits behind whoever waited before it (even if its body would
            fit: a stream of small bodies must not starve a large one).
        @raise ValueError: if C{size} could never fit, or C{owner} already
            holds or waits for a reservation.
        """
        if size > self.limit:
            raise ValueError(
                f"a body of {size} bytes can never fit a budget of {self.limit}"
            )
        if owner in self._holders or owner in self._waiting:
            raise ValueError(f"{owner!r} already has a reservation")
        if not self._waiting and self.reserved + size <= self.limit:
            self._hold(owner, size)
            return True
        timer = self.clock.callLater(self.timeout, self._expire, owner)
        self._waiting[owner] = _Waiter(size, granted, expired, timer)
        return False

    def release(self, owner: object) -> None:
        """
        C{owner}'s body is complete, or it is gone: its reservation is
        returned (or it stops waiting), and those waiting that now fit are
        let in.  Nothing happens for an owner with no reservation.
        """
        size = self._holders.pop(owner, None)
        if size is not None:
            self.reserved -= size
        else:
            waiter = self._waiting.pop(owner, None)
            if waiter is None:
                return
            waiter.timer.cancel()
        self._grant()

    def holding(self, owner: object) -> int:
        """The bytes C{owner} holds reserved (0 if it waits, or has none)."""
        return self._holders.get(owner, 0)

    def waiting(self) -> list[object]:
        """The owners waiting for room, oldest first."""
        return list(self._waiting)

    def holders(self) -> int:
        """How many owners hold a reservation."""
        return len(self._holders)

    def _hold(self, owner: object, size: int) -> None:
        self._holders[owner] = size
        self.reserved += size

    def _grant(self) -> None:
        """
        Let in the oldest waiters while they fit.  The books are updated
        before each is told, so a C{granted} that reserves or releases
        again finds them right.
        """
        waiting = self._waiting
        while waiting:
            owner, waiter = next(iter(waiting.items()))
            if self.reserved + waiter.size > self.limit:
                return
            del waiting[owner]
            waiter.timer.cancel()
            self._hold(owner, waiter.size)
            waiter.granted()

    def _expire(self, owner: object) -> None:
        waiter = self._waiting.pop(owner)
        # Those it kept waiting behind it may fit.
        self._grant()
        waiter.expired()
