"""
Tests for the life cycle of L{txgearman.store.redis.RedisQueueStore}: the
table of its states' legal moves.  Its behaviour against a real Redis is
tested in C{tests/}.
"""

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txgearman.store.interfaces import (
    IQueueStore,
    IRestorableStore,
    IStoreStatistics,
    StoredJob,
    StoreError,
)
from txgearman.store.redis import TRANSITIONS, RedisQueueStore, StoreState


class TransitionTableTests(SynchronousTestCase):
    """
    L{TRANSITIONS} lists a move out of every state but the last, and every
    state can be reached and left for C{STOPPED}.
    """

    def test_everyStateListed(self) -> None:
        self.assertEqual(set(TRANSITIONS), set(StoreState))

    def test_everyStateReachable(self) -> None:
        seen = {StoreState.IDLE}
        frontier = [StoreState.IDLE]
        while frontier:
            for state in TRANSITIONS[frontier.pop()]:
                if state not in seen:
                    seen.add(state)
                    frontier.append(state)
        self.assertEqual(seen, set(StoreState))

    def test_everyStartedStateStops(self) -> None:
        """
        From every state after C{IDLE}, C{STOPPED} can be reached: nothing
        keeps a store from stopping.
        """
        for start in set(StoreState) - {StoreState.IDLE}:
            seen = {start}
            frontier = [start]
            while frontier:
                for state in TRANSITIONS[frontier.pop()]:
                    if state not in seen:
                        seen.add(state)
                        frontier.append(state)
            self.assertIn(StoreState.STOPPED, seen, start)

    def test_stoppedIsFinal(self) -> None:
        self.assertEqual(TRANSITIONS[StoreState.STOPPED], frozenset())

    def test_lostIsForGood(self) -> None:
        """
        A store that lost its queue to another server only stops.
        """
        self.assertEqual(TRANSITIONS[StoreState.LOST], frozenset({StoreState.STOPPING}))


class MoveTests(SynchronousTestCase):
    """
    L{RedisQueueStore._moveTo} makes the listed moves and refuses others.
    """

    def setUp(self) -> None:
        self.store = RedisQueueStore("localhost:1", MemoryReactorClock())

    def test_new(self) -> None:
        self.assertIs(self.store.state, StoreState.IDLE)

    def test_listedMove(self) -> None:
        self.store._moveTo(StoreState.STARTING)
        self.assertIs(self.store.state, StoreState.STARTING)

    def test_unlistedMove(self) -> None:
        error = self.assertRaises(RuntimeError, self.store._moveTo, StoreState.RUNNING)
        self.assertEqual(str(error), "Redis store: no move from IDLE to RUNNING")
        self.assertIs(self.store.state, StoreState.IDLE)

    def test_stopUnstarted(self) -> None:
        """
        Stopping a store never started does nothing, at once.
        """
        self.successResultOf(self.store.stop())
        self.assertIs(self.store.state, StoreState.IDLE)

    def test_refusedUnstarted(self) -> None:
        """
        A store not started refuses jobs, saying so.
        """
        failure = self.failureResultOf(
            self.store.add(StoredJob(b"f", b"u", b"data")), StoreError
        )
        self.assertEqual(str(failure.value), "the Redis store is not running")


class InterfaceTests(SynchronousTestCase):
    def test_provides(self) -> None:
        """
        The Redis store is a queue store that can write back what Redis
        lost, and durable.
        """
        store = RedisQueueStore("localhost:1", MemoryReactorClock())
        self.assertTrue(verifyObject(IQueueStore, store))
        self.assertTrue(verifyObject(IRestorableStore, store))
        self.assertTrue(verifyObject(IStoreStatistics, store))
        self.assertEqual(store.stateName, "idle")
        self.assertTrue(store.durable)
