"""
Tests for L{txgearman.server.ordering}: a connection's output stays in request
order while a late answer's place is kept.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from txgearman.server.ordering import OrderedOutput


class OrderedOutputTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.delivered: list[str] = []
        self.output: OrderedOutput[str] = OrderedOutput(self.delivered.append)

    def test_noPlaceKept(self) -> None:
        """
        With no place kept, items are delivered at once.
        """
        self.output.send("a")
        self.output.send("b")
        self.assertEqual(self.delivered, ["a", "b"])
        self.assertFalse(self.output.holding)

    def test_heldBehindPlace(self) -> None:
        """
        Items sent after a kept place wait for it, and follow it once it is
        filled.
        """
        self.output.send("before")
        place = self.output.reserve()
        self.output.send("after")
        self.assertEqual(self.delivered, ["before"])
        self.assertTrue(self.output.holding)
        self.output.fill(place, "late")
        self.assertEqual(self.delivered, ["before", "late", "after"])
        self.assertFalse(self.output.holding)
        self.output.send("next")
        self.assertEqual(self.delivered[-1], "next")

    def test_filledOutOfOrder(self) -> None:
        """
        A place filled before an earlier one waits for it; each goes out in
        the order its place was kept.
        """
        first = self.output.reserve()
        self.output.send("x")
        second = self.output.reserve()
        self.output.send("y")
        self.output.fill(second, "2")
        self.assertEqual(self.delivered, [])
        self.output.fill(first, "1")
        self.assertEqual(self.delivered, ["1", "x", "2", "y"])
        self.assertFalse(self.output.holding)

    def test_fillNotHeadKeepsHolding(self) -> None:
        """
        Filling a later place while an earlier one is open delivers nothing.
        """
        first = self.output.reserve()
        second = self.output.reserve()
        self.output.fill(second, "2")
        self.assertTrue(self.output.holding)
        self.output.fill(first, "1")
        self.assertEqual(self.delivered, ["1", "2"])
