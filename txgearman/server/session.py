# -*- test-case-name: txgearman.test.test_core -*-
"""
One connection's state as the server core sees it.

A Gearman connection may act as a client (submitting and waiting for
jobs), as a worker (registering functions and running jobs), or both; the
core keeps both roles' state here and talks back through an L{IPeer}.
The session keeps its own books of what its worker can do
(L{Session.addFunction}, L{Session.removeFunction}, L{Session.close}) and
picks the job it runs next (L{Session.nextJob}).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from txgearman.server.function import Function
    from txgearman.server.interfaces import IPeer
    from txgearman.server.job import Job

__all__ = ["Session", "WorkerInfo"]


class WorkerInfo(NamedTuple):
    """
    One line of the admin C{workers} listing (every connection, worker or
    not).

    @ivar connectionId: see L{Session.connectionId}.
    @ivar host: the peer's address.
    @ivar clientId: set by SET_CLIENT_ID; C{-} until then.
    @ivar functions: the function names it can do, in registration order.
    """

    connectionId: int
    host: str
    clientId: bytes
    functions: list[bytes]


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
        function or none.  L{Function.push} adds to it.
    @ivar timeouts: CAN_DO_TIMEOUT limits in seconds, per function.
    @ivar sleeping: the worker sent PRE_SLEEP and has not grabbed since.
    @ivar noopSent: a NOOP went to the sleeping worker already.
    @ivar sleepSeq: when the worker last went to sleep, in the waker's
        count of sleeps: its place in the line of each of its functions
        (see L{Function.sleepHeap}).
    @ivar outOfLine: the worker's functions in whose line of sleepers it
        has no place, because it was awake when its turn came (or is new
        to them): it takes one in each when it next sleeps.  Kept so that
        a sleep costs as many steps as the functions that lost it since,
        not as many as it has.
    @ivar wokenFor: the function whose job this worker was woken for, until
        it grabs (see L{Function.woken}).
    @ivar jobs: jobs this worker holds, by handle (kept by
        L{Function.start}, L{Function.requeue} and L{Function.finish}).
    @ivar attached: foreground jobs this client waits for.
    @ivar exceptions: the client asked for WORK_EXCEPTION packets.
    @ivar outputFull: the peer does not read its output fast enough: more
        of it waits in the server than the high-water mark (see
        L{JobServer.outputFull}), so the workers feeding it are held back.
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
        "sleepSeq",
        "outOfLine",
        "wokenFor",
        "jobs",
        "attached",
        "exceptions",
        "outputFull",
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
        self.sleepSeq = 0
        self.outOfLine: dict[Function, None] = {}
        self.wokenFor: Function | None = None
        self.jobs: dict[bytes, Job] = {}
        self.attached: dict[Job, None] = {}
        self.exceptions = exceptions
        self.outputFull = False
        self.closed = False

    # -- options -----------------------------------------------------------

    def setClientId(self, clientId: bytes) -> None:
        """SET_CLIENT_ID, as the core cleaned it."""
        self.clientId = clientId

    def wantExceptions(self) -> None:
        """OPTION_REQ C{exceptions}: send WORK_EXCEPTION to this client."""
        self.exceptions = True

    def setOutputFull(self, full: bool) -> None:
        """
        Whether more output waits for this peer than the high-water mark.
        """
        self.outputFull = full

    # -- abilities ---------------------------------------------------------

    def setTimeout(self, function: Function, seconds: float | None) -> None:
        """Jobs of C{function} it runs are requeued after C{seconds}, or never."""
        if seconds is not None:
            self.timeouts[function] = seconds
        else:
            self.timeouts.pop(function, None)

    def addFunction(self, function: Function) -> None:
        """
        The worker can do C{function} too (it could not before).  With two
        functions or more it keeps L{ready} and watches each of them.
        """
        functions = self.functions
        functions.append(function)
        function.addWorker(self)
        self.outOfLine[function] = None
        if len(functions) == 2:
            self.ready = (OrderedDict(), OrderedDict(), OrderedDict())
            for each in functions:
                self._watch(each)
        elif len(functions) > 2:
            self._watch(function)

    def _watch(self, function: Function) -> None:
        function.watch(self)
        assert self.ready is not None
        queued = function.queued
        for priority, ready in enumerate(self.ready):
            if queued[priority]:
                ready[function] = None

    def removeFunction(self, function: Function) -> list[Job]:
        """
        The worker can no longer do C{function}.

        @return: the jobs of C{function} it held, which it holds no more.
        """
        functions = self.functions
        functions.remove(function)
        self.timeouts.pop(function, None)
        self.outOfLine.pop(function, None)
        function.removeWorker(self)
        if self.ready is not None:
            for ready in self.ready:
                ready.pop(function, None)
            if len(functions) == 1:
                functions[0].unwatch(self)
                self.ready = None
        held = [job for job in self.jobs.values() if job.function is function]
        for job in held:
            del self.jobs[job.handle]
        return held

    def close(self) -> tuple[list[Job], list[Job]]:
        """
        The connection went away: it can do nothing more.

        @return: the jobs its client waited for and the jobs its worker
            held, both of which it now lets go.
        """
        self.closed = True
        for function in self.functions:
            function.removeWorker(self)
        self.functions = []
        self.outOfLine.clear()
        self.ready = None
        self.timeouts.clear()
        attached = list(self.attached)
        self.attached.clear()
        held = list(self.jobs.values())
        self.jobs.clear()
        return attached, held

    # -- picking a job -----------------------------------------------------

    def hasRunnable(self) -> bool:
        """Whether any of the worker's functions has a runnable job."""
        ready = self.ready
        if ready is None:
            for function in self.functions:
                if function.runnable:
                    return True
            return False
        for priority, functions in enumerate(ready):
            while functions:
                if next(iter(functions)).queued[priority]:
                    return True
                functions.popitem(last=False)
        return False

    def nextJob(self) -> Job | None:
        """
        Start the job this worker gets next (L{Function.start}): the oldest
        of the highest priority, rotating between the worker's functions.
        Amortised constant time, whatever the number of functions.
        """
        ready = self.ready
        if ready is None:
            functions = self.functions
            if not functions:
                return None
            function = functions[0]
            queued = function.queued
            for priority in (0, 1, 2):
                if queued[priority]:
                    return function.start(priority, self)
            return None
        for priority, runnable in enumerate(ready):
            while runnable:
                function, _ = runnable.popitem(last=False)
                job = function.start(priority, self)
                if job is not None:
                    if function.queued[priority]:
                        # Round-robin: the function that just supplied a
                        # job goes to the back of this worker's turn.
                        runnable[function] = None
                    return job
        return None

    # -- queries -----------------------------------------------------------

    def feedsFullClient(self) -> bool:
        """
        Whether a job this worker holds goes to a client whose output is
        full (L{outputFull}): then the worker's reading is held back.
        """
        for job in self.jobs.values():
            for client in job.clients:
                if client.outputFull:
                    return True
        return False

    def feeding(self) -> list[Session]:
        """
        The workers running the jobs this client waits for.
        """
        workers = []
        for job in self.attached:
            worker = job.worker
            if worker is not None and worker not in workers:
                workers.append(worker)
        return workers

    def info(self) -> WorkerInfo:
        """The connection's line in the admin C{workers} listing."""
        return WorkerInfo(
            self.connectionId,
            self.host,
            self.clientId,
            [f.name for f in self.functions],
        )

    def __repr__(self) -> str:
        return f"<Session {self.connectionId} {self.host} {self.clientId!r}>"
