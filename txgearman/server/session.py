# -*- test-case-name: txgearman.test.test_core -*-
"""
One connection's state as the server core sees it.

A Gearman connection may act as a client (submitting and waiting for
jobs), as a worker (registering functions and running jobs), or both; the
core keeps both roles' state here and talks back through an L{IPeer}.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from txgearman.server.function import Function
    from txgearman.server.interfaces import IPeer
    from txgearman.server.job import Job

__all__ = ["Session"]


class Session:
    """
    @ivar peer: where packets for this connection go.
    @ivar connectionId: a small number naming the connection in the admin
        C{workers} listing (the file descriptor where there is one).
    @ivar host: the peer's address, for the admin C{workers} listing.
    @ivar clientId: set by SET_CLIENT_ID; C{-} until then.
    @ivar functions: the functions this worker can do, in registration
        order.
    @ivar ready: for a worker of two or more functions, per priority, the
        functions that may have a runnable job of that priority, in the
        order the worker takes turns between them (an entry whose queue
        ran empty is dropped when next seen).  A grab looks here instead
        of asking each of the worker's functions, so its cost does not
        grow with the number of functions.  C{None} for a worker of one
        function or none.
    @ivar timeouts: CAN_DO_TIMEOUT limits in seconds, per function.
    @ivar sleeping: the worker sent PRE_SLEEP and has not grabbed since.
    @ivar noopSent: a NOOP went to the sleeping worker already.
    @ivar wokenFor: the function whose job this worker was woken for, until
        it grabs (see L{Function.woken}).
    @ivar jobs: jobs this worker holds, by handle.
    @ivar attached: foreground jobs this client waits for.
    @ivar exceptions: the client asked for WORK_EXCEPTION packets.
    @ivar closed: the connection is gone.
    """

    __slots__ = (
        "peer",
        "connectionId",
        "host",
        "clientId",
        "functions",
        "ready",
        "timeouts",
        "sleeping",
        "noopSent",
        "wokenFor",
        "jobs",
        "attached",
        "exceptions",
        "closed",
    )

    def __init__(
        self, peer: IPeer, connectionId: int, host: str, exceptions: bool = False
    ):
        self.peer = peer
        self.connectionId = connectionId
        self.host = host
        self.clientId = b"-"
        self.functions: list[Function] = []
        self.ready: (
            tuple[
                OrderedDict[Function, None],
                OrderedDict[Function, None],
                OrderedDict[Function, None],
            ]
            | None
        ) = None
        self.timeouts: dict[Function, float] = {}
        self.sleeping = False
        self.noopSent = False
        self.wokenFor: Function | None = None
        self.jobs: dict[bytes, Job] = {}
        self.attached: dict[Job, None] = {}
        self.exceptions = exceptions
        self.closed = False

    def __repr__(self) -> str:
        return f"<Session {self.connectionId} {self.host} {self.clientId!r}>"
