# -*- test-case-name: txgearman.test.test_store -*-
"""
An in-memory L{IQueueStore}: the default, and the reference fake.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from txgearman.store.interfaces import IQueueStore, StoredJob

__all__ = ["MemoryQueueStore"]


@implementer(IQueueStore)
class MemoryQueueStore:
    """
    Keeps stored jobs in a dict, in insertion order.

    Nothing survives the process, but it does survive a restart of the
    server service inside one process, which is what embedding
    applications and tests need from it.
    """

    description = "memory (jobs are lost when the process exits)"
    durable = False

    def __init__(self) -> None:
        self.jobs: dict[object, StoredJob] = {}
        self._next = 0

    def start(self) -> Deferred[None]:
        return succeed(None)

    def stop(self) -> Deferred[None]:
        return succeed(None)

    def add(self, job: StoredJob) -> Deferred[object]:
        self._next += 1
        self.jobs[self._next] = job
        return succeed(self._next)

    def remove(self, key: object) -> None:
        self.jobs.pop(key, None)

    def flush(self) -> Deferred[None]:
        return succeed(None)

    def replay(self, restore: Callable[[object, StoredJob], None]) -> Deferred[int]:
        count = 0
        for key, job in list(self.jobs.items()):
            restore(key, job)
            count += 1
        return succeed(count)
