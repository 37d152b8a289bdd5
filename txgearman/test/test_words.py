"""
Tests for L{txgearman._words}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from txgearman._words import counted


class CountedTests(SynchronousTestCase):
    def test_one(self) -> None:
        """
        One of a thing takes the singular.
        """
        self.assertEqual(counted(1, "job"), "1 job")

    def test_others(self) -> None:
        """
        None, and more than one, take the plural.
        """
        self.assertEqual(counted(0, "job"), "0 jobs")
        self.assertEqual(counted(2, "stored job"), "2 stored jobs")

    def test_irregular(self) -> None:
        """
        A plural that is not the noun with an C{s} is given.
        """
        self.assertEqual(counted(3, "entry", "entries"), "3 entries")
        self.assertEqual(counted(1, "entry", "entries"), "1 entry")
