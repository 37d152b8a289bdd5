# -*- test-case-name: txgearman.test.test_web_submit -*-
"""
Job submission over HTTP (C{--http-submit}), compatible with gearmand's
HTTP protocol plugin: C{POST /<function>} (or C{PUT}) with the workload
as the body, and the headers C{X-Gearman-Unique},
C{X-Gearman-Background: true} and C{X-Gearman-Priority: high|low}; the
answer carries C{X-Gearman-Job-Handle} and C{X-Gearman-Command}.

Unlike gearmand's plugin it speaks HTTP/1.1 with keep-alive, streams
WORK_DATA as chunked encoding instead of corrupting it, answers a failed
job with an error status and its whole handle, percent-decodes the
function name, and bounds the body.  Each request is one session of the
core, as a binary client connection is, so it goes through the same path:
coalescing, priorities, C{maxqueue}, the store (a background job is
answered only once stored).

Statuses: 200 (foreground job done: the result as the body), 202
(background job stored), 400 (a header or argument the server refused),
404 (no function name), 413 (body over C{--max-packet-size}), 502 (the job
failed: WORK_FAIL, or WORK_EXCEPTION with its data as the body), 503 (not
taken now: the store failed, the queue is full, the server drains), 504
(no result within the timeout).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from twisted.internet.interfaces import (
    IDelayedCall,
    IPushProducer,
    IReactorTime,
    ITCPTransport,
)
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from txgearman.codec import PacketType, Priority
from txgearman.server.acl import AccessPolicy
from txgearman.server.interfaces import IPeer
from txgearman.web.access import refuse, requestRights

if TYPE_CHECKING:
    from txgearman.server.core import JobServer
    from txgearman.server.session import Session

__all__ = ["SubmitResource", "DEFAULT_TIMEOUT"]

#: Seconds a foreground request waits for its result, unless its
#: C{X-Gearman-Timeout} header says otherwise.
DEFAULT_TIMEOUT = 300.0

_P = PacketType
_PRIORITIES = {b"high": Priority.HIGH, b"normal": Priority.NORMAL, b"low": Priority.LOW}
_TEXT = b"text/plain; charset=utf-8"
_BINARY = b"application/octet-stream"
#: ERROR codes that mean "not now": the client may try again, elsewhere.
_UNAVAILABLE = {b"QUEUE_ERROR", b"SERVER_DRAINING", b"TOO_MANY_FUNCTIONS"}


class _BadRequest(Exception):
    pass


def _plain(request: Request, code: int, text: str) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", _TEXT)
    return (text + "\n").encode("utf-8")


@implementer(IPeer, IPushProducer)
class _HTTPJob:
    """
    One HTTP submission, as the core sees a client: the packets the core
    sends it become the HTTP answer.
    """

    def __init__(
        self, request: Request, core: JobServer, clock: IReactorTime, timeout: float
    ) -> None:
        self.request = request
        self.core = core
        self.clock = clock
        self.timeout = timeout
        self.handle = b""
        self.background = False
        self.streaming = False
        self.done = False
        self.session: Session | None = None
        self.timer: IDelayedCall | None = None
        request.notifyFinish().addBoth(self._requestGone)

    # -- IPeer -------------------------------------------------------------

    def pauseReading(self) -> None:
        # Asked of workers only; an HTTP request never runs a job.
        pass

    def resumeReading(self) -> None:
        pass

    # -- IPushProducer: a client that does not read a streamed result --------

    def pauseProducing(self) -> None:
        # Its transport is full: hold back the worker streaming to it, as
        # for a binary client that does not read.
        if self.session is not None:
            self.core.outputFull(self.session)

    def resumeProducing(self) -> None:
        if self.session is not None:
            self.core.outputDrained(self.session)

    def stopProducing(self) -> None:
        pass

    def reservePacket(self) -> object:
        # One request, one answer: nothing can overtake it.
        return None

    def sendReserved(self, place: object, ptype: int, *args: bytes) -> None:
        self.sendPacket(ptype, *args)

    def sendPacket(self, ptype: int, *args: bytes) -> None:
        if self.done:
            return
        if ptype == _P.JOB_CREATED:
            self.handle = args[0]
            self.request.setHeader(b"x-gearman-job-handle", self.handle)
            if self.background:
                self.request.setHeader(b"x-gearman-command", b"JOB_CREATED")
                self._finish(202, b"")
        elif ptype == _P.WORK_DATA:
            self._stream(args[1])
        elif ptype == _P.WORK_COMPLETE:
            if self.streaming:
                if args[1]:
                    self.request.write(args[1])
                self._end()
            else:
                self.request.setHeader(b"x-gearman-command", b"WORK_COMPLETE")
                self._finish(200, args[1])
        elif ptype == _P.WORK_FAIL:
            self._failed(b"WORK_FAIL", b"The job failed (WORK_FAIL).\n", _TEXT)
        elif ptype == _P.WORK_EXCEPTION:
            # The worker's exception data, as it sent it.
            self._failed(b"WORK_EXCEPTION", args[1], _BINARY)
        elif ptype == _P.ERROR:
            code, text = args[0], args[1]
            self.request.setHeader(b"x-gearman-command", b"ERROR")
            self.request.setHeader(b"x-gearman-error", code)
            status = (
                503 if code in _UNAVAILABLE or text == b"Job queue is full" else 400
            )
            self._finish(status, code + b": " + text + b"\n", _TEXT)
        # WORK_STATUS and WORK_WARNING have no place in one HTTP answer:
        # /api/jobs/<handle> has the status.

    # -- the answer ----------------------------------------------------------

    def start(
        self,
        name: bytes,
        unique: bytes,
        data: bytes,
        priority: Priority,
        background: bool,
    ) -> None:
        self.background = background
        session = self.session = self.core.connect(self, _host(self.request))
        session.wantExceptions()
        if not background and self.timeout > 0:
            self.timer = self.clock.callLater(self.timeout, self._timedOut)
        self.core.submitJob(session, name, unique, data, priority, background)

    def _stream(self, chunk: bytes) -> None:
        if not self.streaming:
            self.streaming = True
            self.request.registerProducer(self, True)
            self.request.setResponseCode(200)
            self.request.setHeader(b"x-gearman-command", b"WORK_DATA")
            self.request.setHeader(b"content-type", _BINARY)
        if chunk:
            # No content-length: HTTP/1.1 sends it chunked.
            self.request.write(chunk)

    def _failed(self, command: bytes, body: bytes, contentType: bytes) -> None:
        if self.streaming:
            # The status went out with the first data: only a cut
            # connection can still say that the job did not end well.
            self._abort()
            return
        self.request.setHeader(b"x-gearman-command", command)
        self._finish(502, body, contentType)

    def _timedOut(self) -> None:
        self.timer = None
        if self.streaming:
            self._abort()
            return
        self.request.setHeader(b"x-gearman-command", b"TIMEOUT")
        self._finish(
            504,
            f"No result within {self.timeout:g} s.\n".encode(),
            _TEXT,
        )

    def _finish(self, code: int, body: bytes, contentType: bytes = _BINARY) -> None:
        request = self.request
        request.setResponseCode(code)
        request.setHeader(b"content-type", contentType)
        request.setHeader(b"content-length", b"%d" % (len(body),))
        if body:
            request.write(body)
        self._end()

    def _end(self) -> None:
        self.done = True
        if self.streaming:
            self.request.unregisterProducer()
        self.request.finish()
        self._leave()

    def _abort(self) -> None:
        self.done = True
        transport = self.request.channel.transport if self.request.channel else None
        if ITCPTransport.providedBy(transport):
            transport.abortConnection()
        elif transport is not None:
            transport.loseConnection()
        self._leave()

    def _requestGone(self, _: object) -> None:
        # Finished by us, or the client went away: either way this session
        # ends (a foreground job nobody else waits for is then dropped, as
        # when a binary client disconnects).
        self.done = True
        self._leave()

    def _leave(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        session, self.session = self.session, None
        if session is not None:
            self.core.disconnect(session)


def _host(request: Request) -> str:
    peer = request.getClientAddress()
    return str(getattr(peer, "host", "-"))


class SubmitResource(Resource):
    """
    Every C{POST} and C{PUT}, whatever its path: the path names the
    function.
    """

    isLeaf = True

    def __init__(
        self,
        core: JobServer,
        clock: IReactorTime,
        timeout: float = DEFAULT_TIMEOUT,
        policy: AccessPolicy | None = None,
    ) -> None:
        """
        @param policy: the ACL: a request needs C{submit} on its function
            (its identity is its TLS client certificate's common name).
        """
        super().__init__()
        self.core = core
        self.clock = clock
        self.timeout = timeout
        self.policy = policy

    def render_POST(self, request: Request) -> Any:
        try:
            name, unique, priority, background, timeout = self._read(request)
        except _BadRequest as e:
            code, _, text = str(e).partition(" ")
            return _plain(request, int(code), text)
        if self.policy is not None:
            rights = requestRights(request, self.policy)
            if not rights.may("submit", name):
                what = f"submit {name.decode('utf-8', 'replace')}"
                refuse(request, self.policy, rights, what)
                return _plain(request, 403, f"PERMISSION_DENIED {what}")
        assert request.content is not None
        request.content.seek(0)
        data = request.content.read()
        job = _HTTPJob(request, self.core, self.clock, timeout)
        job.start(name, unique, data, priority, background)
        return NOT_DONE_YET

    render_PUT = render_POST

    def _read(self, request: Request) -> tuple[bytes, bytes, Priority, bool, float]:
        path = request.path.split(b"?", 1)[0].lstrip(b"/")
        name = unquote_to_bytes(path)
        if not name:
            raise _BadRequest("404 No function: POST /<function>.")
        headers = request.requestHeaders
        unique = (headers.getRawHeaders(b"x-gearman-unique") or [b"-"])[-1]
        rawPriority = (headers.getRawHeaders(b"x-gearman-priority") or [b"normal"])[-1]
        priority = _PRIORITIES.get(rawPriority.strip().lower())
        if priority is None:
            raise _BadRequest("400 X-Gearman-Priority takes high, normal or low.")
        rawBackground = (headers.getRawHeaders(b"x-gearman-background") or [b"false"])[
            -1
        ]
        background = rawBackground.strip().lower()
        if background not in (b"true", b"false"):
            raise _BadRequest("400 X-Gearman-Background takes true or false.")
        timeout = self.timeout
        rawTimeout = headers.getRawHeaders(b"x-gearman-timeout")
        if rawTimeout:
            try:
                timeout = float(rawTimeout[-1])
            except ValueError:
                timeout = -1.0
            if not timeout > 0:
                raise _BadRequest(
                    "400 X-Gearman-Timeout takes a number of seconds above 0."
                )
        return name, unique, priority, background == b"true", timeout
