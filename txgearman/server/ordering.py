# -*- test-case-name: txgearman.test.test_ordering -*-
"""
Answers in the order of the requests, even when one of them has to wait.

Gearman clients match C{JOB_CREATED} to their submits by order: libgearman
pipelines submits on a connection and takes each C{JOB_CREATED} for the
oldest submit not yet answered.  A background submit is answered only once
the store has the job, which with Redis is a round trip later; a
foreground submit or an C{ECHO_REQ} sent after it must not be answered
first.  L{OrderedOutput} keeps the place of such a delayed answer, and holds
everything sent after it until the place is filled.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["OrderedOutput", "Place"]

T = TypeVar("T")


class Place(Generic[T]):
    """
    Where an answer not yet known goes in a connection's output.
    """

    __slots__ = ("item", "filled")

    def __init__(self) -> None:
        self.item: T | None = None
        self.filled = False


class OrderedOutput(Generic[T]):
    """
    A connection's output, in order, with places kept for late answers.

    While no place is open, L{send} delivers at once: the common case costs
    one check.
    """

    def __init__(self, deliver: Callable[[T], None]) -> None:
        """
        @param deliver: writes one item to the connection.
        """
        self._deliver = deliver
        self._held: deque[Place[T]] | None = None

    @property
    def holding(self) -> bool:
        """Whether output waits behind an open place."""
        return self._held is not None

    def send(self, item: T) -> None:
        """
        Deliver C{item} now, or after the open places before it are filled.
        """
        held = self._held
        if held is None:
            self._deliver(item)
            return
        place: Place[T] = Place()
        place.item = item
        place.filled = True
        held.append(place)

    def reserve(self) -> Place[T]:
        """
        Keep a place for an item that L{fill} will give later: everything
        sent from now on waits behind it.
        """
        place: Place[T] = Place()
        if self._held is None:
            self._held = deque()
        self._held.append(place)
        return place

    def fill(self, place: Place[T], item: T) -> None:
        """
        Give the item of a kept place, and deliver what no longer waits.
        """
        place.item = item
        place.filled = True
        held = self._held
        if held is None:
            return
        deliver = self._deliver
        while held and held[0].filled:
            first = held.popleft()
            deliver(first.item)  # type: ignore[arg-type]
        if not held:
            self._held = None
