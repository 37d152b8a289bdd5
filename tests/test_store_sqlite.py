"""
Tests for L{txgearman.store.sqlite.SQLiteQueueStore} on real files, with
the real reactor and real threads.
"""

from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.trial import unittest

from txgearman.store.interfaces import IQueueStore
from txgearman.store.sqlite import SQLiteQueueStore
from txgearman.test.test_store import QueueStoreTestsMixin


def makeStore(path: str, durability: str = "full") -> SQLiteQueueStore:
    return SQLiteQueueStore(path, reactor, durability=durability)


class SQLiteQueueStoreContractTests(QueueStoreTestsMixin, unittest.TestCase):
    """
    L{SQLiteQueueStore} meets the store contract, on a real file.
    """

    durability = "full"

    def setUp(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        self.path = os.path.join(directory, "queue.db")

    def createStore(self) -> IQueueStore:
        return makeStore(self.path, self.durability)

    def reopenStore(self, store: IQueueStore) -> IQueueStore:
        return makeStore(self.path, self.durability)


class SQLiteNormalDurabilityContractTests(SQLiteQueueStoreContractTests):
    """
    The contract holds with C{synchronous=NORMAL} too.
    """

    durability = "normal"
