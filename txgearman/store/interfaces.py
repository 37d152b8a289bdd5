# -*- test-case-name: txgearman.test.test_store -*-
"""
The queue store contract: how the server core persists background jobs.

Every store (L{txgearman.store.memory}, L{txgearman.store.redis}) imports
this module and nothing else of txgearman, and the server knows stores only
through it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from zope.interface import Attribute, Interface

__all__ = [
    "StoredJob",
    "storedJob",
    "IQueueStore",
    "IRestorableStore",
    "StoreError",
    "IServerClaim",
    "IStoreHealth",
    "IStoreStatistics",
    "HealthCheck",
]


class StoredJob(NamedTuple):
    """
    Everything a store keeps of a background job: enough to run it again
    after a restart exactly as it was submitted.

    A named tuple rather than a frozen dataclass: a replay makes one per
    stored job, and a tuple is made in a third of the time.

    @ivar function: the function name (any bytes but NUL).
    @ivar unique: the unique id, possibly empty.
    @ivar data: the payload, binary, NULs included.
    @ivar priority: 0 (high), 1 (normal) or 2 (low).
    @ivar when: the epoch second the job becomes runnable, or 0.
    @ivar reducer: the reducer of a map/reduce job, or C{None}.
    """

    function: bytes
    unique: bytes
    data: bytes
    priority: int = 1
    when: int = 0
    reducer: bytes | None = None


_newTuple = tuple.__new__


def storedJob(
    function: bytes,
    unique: bytes,
    data: bytes,
    priority: int,
    when: int,
    reducer: bytes | None,
) -> StoredJob:
    """
    C{StoredJob(function, unique, data, priority, when, reducer)}, built
    without the named tuple's Python-level C{__new__}: every background
    job and every replayed record makes one.
    """
    return _newTuple(StoredJob, (function, unique, data, priority, when, reducer))


class StoreError(Exception):
    """
    A store could not do what it was asked; the message says why, in words
    fit for a client's C{ERROR QUEUE_ERROR}.
    """


class IQueueStore(Interface):
    """
    Durable storage for background jobs.

    The core calls L{add} for every background job before it acknowledges
    the job to its client, and L{remove} once the job has ended.  L{add}
    returns a L{Deferred}, so an implementation may talk to a remote
    service; it may also batch the calls made in one reactor turn.  Nobody
    waits for a L{remove}: it returns nothing, which spares a Deferred per
    job, and L{flush} says when the deletions asked for have landed.  At
    start-up the service calls L{start}, then L{replay}, before it accepts
    connections.
    """

    description = Attribute("A short human-readable description, for logs.")
    durable = Attribute(
        "Whether stored jobs outlive this process (so that a server stopping "
        "with jobs queued leaves them for the next one)."
    )

    def start() -> Deferred[None]:
        """
        Get ready: connect, take ownership of the stored jobs.

        @return: fires when ready, fails with L{StoreError} if the store
            cannot be used.
        """

    def replay(restore: Callable[[object, StoredJob], None]) -> Deferred[int]:
        """
        Call C{restore(key, job)} for every stored job, in the order the
        jobs were added.

        @return: fires with the number of jobs restored.
        """

    def add(job: StoredJob) -> Deferred[object]:
        """
        Store a job durably.

        @return: fires with an opaque key for L{remove} once the job is
            stored, or fails with L{StoreError}; when it fails the job must
            not be replayed later.
        """

    def remove(key: object) -> None:
        """
        Forget a stored job, now or a little later.  An implementation
        that cannot reach its storage retries on its own, and logs what it
        cannot do; a deletion lost to a crash means the job runs once more
        after a restart, which at-least-once delivery allows.
        """

    def flush() -> Deferred[None]:
        """
        Carry out what was asked before this call without delay.

        @return: fires once every L{add} asked for so far is answered and
            every L{remove} has landed; while the storage is out of reach,
            only once it is back.
        """

    def stop() -> Deferred[None]:
        """
        Release connections and ownership.  Stored jobs stay stored.
        """


class IServerClaim(Interface):
    """
    Something that only one live process on this host can hold at a time,
    such as the address a server listens on.  A store that finds its lock
    held by a process of this host with the same claim, while the claim is
    free, knows that process is this server's dead predecessor (killed, or
    crashed) and may take the lock over at once, instead of waiting for it
    to expire.
    """

    name = Attribute(
        "The claim in words, the same for every run of one server (such as "
        "C{tcp 127.0.0.1:4730}); stored in the lock."
    )

    def isFree() -> bool:
        """
        Whether no other live process holds the claim now: true when this
        process holds it itself, or nobody does.
        """


class ICallbackStore(IQueueStore):
    """
    A store that can answer an add by calling back rather than with a
    L{Deferred}: for the core, which stores every background job, a
    Deferred per job is a measurable part of what a job costs (some 3 us
    of 27 with SQLite).
    """

    def addWithCallbacks(
        job: StoredJob,
        stored: Callable[[object, Any], object],
        failed: Callable[[Failure, Any], object],
        context: Any,
    ) -> None:
        """
        Store C{job} as L{IQueueStore.add} does; then call C{stored(key,
        context)} once it is stored, or C{failed(failure, context)} (a
        L{StoreError}) if it cannot be.  Either may be called before this
        returns; an exception either raises is logged, not propagated.
        """


class IRestorableStore(IQueueStore):
    """
    A store that can lose what it stored while the server runs (a Redis
    flushed, or restarted without persistence), and then writes back the
    jobs the server still holds, which only the server knows.
    """

    def setHoldings(holdings: Callable[[], list[tuple[object, StoredJob]]]) -> None:
        """
        Give the store what tells it, when it needs it, every job the
        server still holds under a key of this store: C{(key, StoredJob)}.
        """


class HealthCheck(NamedTuple):
    """
    One thing a server needs to serve, and whether it has it now: what the
    readiness endpoint reports, check by check.
    """

    #: A short name, such as C{redis} (letters, digits and dashes).
    name: str
    ok: bool
    #: Why not, when not; what holds, when it does.
    detail: str


class IStoreHealth(Interface):
    """
    A store that depends on something outside the process (Redis), and
    can say whether it has it: a server whose store cannot store is not
    ready, though it runs.
    """

    def health() -> list[HealthCheck]:
        """
        The store's checks, now; cheap enough for every probe.
        """


class IStoreStatistics(Interface):
    """
    A store that talks to something outside the process, and counts how
    that goes, for the metrics.
    """

    calls = Attribute(
        "A L{txgearman._histogram.Histogram} of the seconds each call to the "
        "backend took, from sending it to its answer or failure (a call "
        "carries a batch of writes and removals)."
    )
    failedCalls = Attribute("How many of those calls failed (C{int}).")
    stateName = Attribute(
        "A short word for where the store is, such as C{running} or "
        "C{unavailable} (C{str})."
    )
