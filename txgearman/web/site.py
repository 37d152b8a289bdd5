# -*- test-case-name: txgearman.test.test_web_site -*-
"""
The HTTP listener's site: every path the server answers, on one
L{twisted.web.server.Site}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.web import http
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from txgearman.server.acl import AccessPolicy, Rights
from txgearman.web.access import refuse, requestRights
from txgearman.web.api import apiResource
from txgearman.web.dashboard import DashboardAssets, dashboardPage
from txgearman.web.health import HealthResource, ServerHealth
from txgearman.web.metrics import MetricsResource
from txgearman.web.submit import DEFAULT_TIMEOUT, SubmitResource

if TYPE_CHECKING:
    from txgearman.server.service import GearmanServerService

__all__ = ["webResource", "WebSite", "IDLE_TIMEOUT", "httpPlaintextRefusal"]

#: Seconds an HTTP connection may stay idle before it is closed.
IDLE_TIMEOUT = 60.0

_INDEX = b"""txgearman

/          the dashboard, in a browser (this list otherwise, and at /index.txt)
/metrics   Prometheus metrics
/livez     liveness (?verbose lists the checks)
/readyz    readiness: 503 with the reason when not ready (?verbose)
/api/status, /api/workers, /api/jobs/<handle>, /api/server   JSON
POST /<function>   submit a job (with --http-submit)
"""


def httpPlaintextRefusal(data: bytes) -> bytes:
    """
    What a plain HTTP request to the port when it speaks TLS is answered,
    so that C{curl http://} says why rather than "empty reply".
    """
    body = b"This port speaks HTTPS: use https://\n"
    return (
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    )


#: The admin command whose right a GET of each top-level path needs under
#: an ACL: what it shows is what that command shows.  Paths not named
#: (the health checks, /index.txt) need none.
_GET_RIGHTS = {
    b"": "status",
    b"dashboard": "status",
    b"metrics": "status",
    b"api/status": "status",
    b"api/workers": "workers",
    b"api/server": "settings",
}


class _Forbidden(Resource):
    """A 403 naming the right that is missing, logged."""

    isLeaf = True

    def __init__(self, policy: AccessPolicy, rights: Rights, what: str) -> None:
        super().__init__()
        self.policy = policy
        self.rights = rights
        self.what = what

    def render(self, request: Request) -> bytes:
        refuse(request, self.policy, self.rights, self.what)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return f"PERMISSION_DENIED {self.what}\n".encode("utf-8", "replace")


class _NotAllowed(Resource):
    """
    A method nothing here takes: 405, naming those that are.
    """

    isLeaf = True

    def __init__(self, allowed: bytes) -> None:
        super().__init__()
        self.allowed = allowed

    def render(self, request: Request) -> bytes:
        request.setResponseCode(405)
        request.setHeader(b"allow", self.allowed)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"Method not allowed; this server takes " + self.allowed + b".\n"


def _index(request: Request) -> bytes:
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return _INDEX


class _Index(Resource):
    """C{/index.txt}: the paths this server answers, as plain text."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return _index(request)


class _Root(Resource):
    """
    The site's root: C{/} itself, the children below, and every C{POST}
    or C{PUT} (whatever its path, which names the function) to job
    submission, when it is on.
    """

    def __init__(
        self, submit: Resource | None, policy: AccessPolicy | None = None
    ) -> None:
        super().__init__()
        self.submit = submit
        self.policy = policy
        self.page = dashboardPage()
        methods = [b"GET", b"HEAD"] + ([b"POST", b"PUT"] if submit is not None else [])
        self.notAllowed = _NotAllowed(b", ".join(methods))
        self.methods = frozenset(methods)

    def getChildWithDefault(self, path: bytes, request: Request) -> Resource:
        method = request.method
        if method not in self.methods:
            return self.notAllowed
        if method in (b"POST", b"PUT"):
            assert self.submit is not None
            return self.submit
        if self.policy is not None:
            key = path if path != b"api" else b"api/" + (request.postpath or [b""])[0]
            command = _GET_RIGHTS.get(key)
            if command is not None:
                rights = requestRights(request, self.policy)
                if not rights.mayAdmin(command):
                    return _Forbidden(self.policy, rights, f"admin {command}")
        if path == b"" and not request.postpath:
            # "/" itself.
            return self
        return super().getChildWithDefault(path, request)

    def render_GET(self, request: Request) -> bytes:
        # A browser gets the dashboard; curl (Accept: */*) and scripts the
        # list of paths, as /index.txt always.
        accept = request.getHeader(b"accept") or b""
        if b"text/html" in accept:
            return self.page.render_GET(request)
        return _index(request)


def webResource(
    service: GearmanServerService,
    submit: bool = False,
    submitTimeout: float = DEFAULT_TIMEOUT,
) -> Resource:
    """
    The root of the server's HTTP face, for C{service} (and its reactor).
    It turns on the core's timing of jobs, which only it reports.

    @param submit: take jobs by C{POST} and C{PUT} (see
        L{txgearman.web.submit}).
    @param submitTimeout: how long such a foreground job may take, unless
        its request says otherwise.
    """
    # The metrics and the API report how long jobs wait and run.
    service.core.timeJobs = True
    health = ServerHealth(service)
    policy = service.policy
    root = _Root(
        SubmitResource(service.core, service.reactor, submitTimeout, policy)
        if submit
        else None,
        policy,
    )
    root.putChild(b"metrics", MetricsResource(service, service.reactor))
    root.putChild(b"livez", HealthResource("livez", health.live))
    root.putChild(b"readyz", HealthResource("readyz", health.ready))
    root.putChild(b"api", apiResource(service))
    root.putChild(b"dashboard", DashboardAssets())
    root.putChild(b"index.txt", _Index())
    return root


_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 38\r\n"
    b"Connection: close\r\n\r\n"
    b"A header line is longer than 16384 B.\n"
)


class _Channel(HTTPChannel):
    """
    Twisted's HTTP channel, answering a header line too long to read with
    431 rather than closing the connection without a word.
    """

    def lineLengthExceeded(self, line: bytes) -> None:
        transport = self.transport
        assert transport is not None
        transport.write(_TOO_LARGE)
        transport.loseConnection()


class _BoundedRequest(Request):
    """
    A request whose body may be no larger than its site's C{maxBody}: a
    larger one is answered 413 and its connection closed, before the body
    is read.
    """

    _refused = False
    _received = 0

    def _limit(self) -> int:
        return int(getattr(getattr(self.channel, "site", None), "maxBody", 0) or 0)

    def gotLength(self, length: int | None) -> None:
        limit = self._limit()
        if length is not None and limit and length > limit:
            self._refuse(limit)
        super().gotLength(length if not self._refused else 0)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        limit = self._limit()
        if limit and self._received > limit:
            # Chunked, without a length: refused once it passes the limit.
            self._refuse(limit)
            return
        super().handleContentChunk(data)

    def _refuse(self, limit: int) -> None:
        self._refused = True
        body = f"The body is larger than {limit} bytes (--max-packet-size).\n".encode()
        transport = self.channel.transport if self.channel is not None else None
        if transport is not None:
            transport.write(
                b"HTTP/1.1 413 Content Too Large\r\n"
                b"Content-Type: text/plain; charset=utf-8\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
            )
            transport.loseConnection()

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._refused:
            return
        super().requestReceived(command, path, version)


class WebSite(Site):
    """
    The site, without an access log line per request: a scrape or a
    probe every second would fill the server's log (put a proxy in front
    for access logs).
    """

    displayTracebacks = False
    noisy = False
    # The plain HTTP/1.1 channel (Site's default wraps it to negotiate
    # HTTP/2 over TLS, which this listener does not offer).
    protocol = _Channel  # type: ignore[assignment]

    def __init__(
        self,
        service: GearmanServerService,
        reactor: object = None,
        submit: bool = False,
        submitTimeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(
            webResource(service, submit, submitTimeout),
            timeout=IDLE_TIMEOUT,
            reactor=reactor,
        )
        #: The largest request body taken: a job's workload is bounded as
        #: a binary SUBMIT_JOB's is.
        self.maxBody = service.factory.maxPacketSize
        self.requestFactory = _BoundedRequest

    def log(self, request: http.Request) -> None:
        pass
