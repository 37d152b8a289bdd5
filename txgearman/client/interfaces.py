# -*- test-case-name: txgearman.test.test_workerprotocol -*-
"""
The library's own contract: what a worker connection tells the object
that decides for it.

L{txgearman.client.worker.GearmanWorker} is the real owner; a test or an
application may drive a L{GearmanWorkerProtocol} with its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from twisted.python.failure import Failure
from zope.interface import Interface

if TYPE_CHECKING:
    from txgearman.client.workerprotocol import GearmanWorkerProtocol

__all__ = ["IWorkerOwner"]


class IWorkerOwner(Interface):
    """
    What a L{GearmanWorkerProtocol} tells the object that decides for it.

    Every method is called from the reactor thread, from inside the
    protocol's C{connectionMade}, C{dataReceived} or C{connectionLost}.
    """

    def abilities() -> Iterable[tuple[bytes, float | None]]:
        """
        The functions to announce on a new connection, with their time
        limits in seconds (C{None}: no limit).
        """

    def workerConnected(protocol: GearmanWorkerProtocol) -> None:
        """
        C{protocol} is connected and has announced its abilities; it is
        awake and will grab when told to.
        """

    def workerDisconnected(protocol: GearmanWorkerProtocol, reason: Failure) -> None:
        """
        C{protocol}'s connection is gone; an unanswered grab never will be,
        and the server takes back the jobs it had handed out on it.
        """

    def workerWoken(protocol: GearmanWorkerProtocol) -> None:
        """
        The server sent NOOP: C{protocol} is awake, or will grab once more
        after its grab in flight is answered.
        """

    def noJob(protocol: GearmanWorkerProtocol) -> None:
        """
        C{protocol}'s grab was answered NO_JOB.
        """

    def jobAssigned(
        protocol: GearmanWorkerProtocol,
        handle: bytes,
        function: bytes,
        unique: bytes,
        data: bytes,
    ) -> None:
        """
        C{protocol}'s grab was answered with a job, which this connection
        now holds until it sends the job's result.
        """
