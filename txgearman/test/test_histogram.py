"""
Tests for L{txgearman._histogram}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from txgearman._histogram import JOB_SECONDS, STORE_SECONDS, Histogram


class HistogramTests(SynchronousTestCase):
    def test_bucketsAreInclusive(self) -> None:
        """
        A duration equal to a bound counts in that bound's bucket (as
        Prometheus' C{le}, "less than or equal"); past the last bound, in
        C{+Inf}.
        """
        histogram = Histogram((0.1, 1.0))
        for seconds in (0.05, 0.1, 0.5, 1.0, 7.0):
            histogram.observe(seconds)
        self.assertEqual(histogram.cumulative(), [("0.1", 2), ("1.0", 4), ("+Inf", 5)])
        self.assertEqual(histogram.count, 5)
        self.assertAlmostEqual(histogram.sum, 8.65)

    def test_weight(self) -> None:
        """
        A sample standing for several observations counts as many, in its
        bucket and in the sum.
        """
        histogram = Histogram((0.1, 1.0))
        histogram.observe(0.5, 4)
        histogram.observe(0.05)
        self.assertEqual(histogram.cumulative(), [("0.1", 1), ("1.0", 5), ("+Inf", 5)])
        self.assertEqual(histogram.count, 5)
        self.assertAlmostEqual(histogram.sum, 2.05)

    def test_empty(self) -> None:
        """
        With nothing observed every bucket is zero.
        """
        histogram = Histogram(JOB_SECONDS)
        self.assertEqual(histogram.count, 0)
        self.assertEqual(
            [count for _, count in histogram.cumulative()], [0] * (len(JOB_SECONDS) + 1)
        )

    def test_badBounds(self) -> None:
        """
        Bounds must be given, distinct and ascending.
        """
        for bounds in [(), (1.0, 0.5), (1.0, 1.0)]:
            self.assertRaises(ValueError, Histogram, bounds)

    def test_sharedBucketsAscend(self) -> None:
        """
        The buckets the server uses are valid.
        """
        Histogram(JOB_SECONDS)
        Histogram(STORE_SECONDS)
