# -*- test-case-name: txgearman.test.test_histogram -*-
"""
Durations counted into fixed buckets as they happen, for the metrics:
one bisect and two additions per observation (a sample may stand for
several), so that timing jobs costs them next to nothing.  Imports
nothing of txgearman, so that the core and the stores may both keep one.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

__all__ = ["Histogram", "JOB_SECONDS", "STORE_SECONDS"]

#: Buckets for how long a job waits in its queue and how long it runs:
#: from a millisecond to an hour.
JOB_SECONDS = (
    0.001,
    0.005,
    0.01,
    0.05,
    0.1,
    0.5,
    1.0,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)

#: Buckets for one call to the store: from a tenth of a millisecond to
#: ten seconds.
STORE_SECONDS = (
    0.0001,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    10.0,
)


class Histogram:
    """
    How many observations fell at or below each bound (Prometheus' C{le}),
    and their sum.

    @ivar bounds: the upper bounds, ascending; one more bucket, past the
        last, takes the rest (C{+Inf}).
    @ivar counts: per bucket, not cumulative.
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError("histogram bounds must be distinct and ascending")
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, seconds: float, weight: int = 1) -> None:
        """
        One more duration; or, of a sample standing for C{weight} of them,
        that many.
        """
        self.counts[bisect_left(self.bounds, seconds)] += weight
        self.sum += seconds * weight

    @property
    def count(self) -> int:
        """How many observations there were."""
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """
        The buckets as Prometheus writes them: each bound, as text, with
        the observations at or below it, ending with C{+Inf}.
        """
        buckets = []
        total = 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            total += count
            buckets.append((repr(float(bound)), total))
        buckets.append(("+Inf", total + self.counts[-1]))
        return buckets
