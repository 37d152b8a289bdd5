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

from txgearman.web.api import apiResource
from txgearman.web.health import HealthResource, ServerHealth
from txgearman.web.metrics import MetricsResource

if TYPE_CHECKING:
    from txgearman.server.service import GearmanServerService

__all__ = ["webResource", "WebSite", "IDLE_TIMEOUT"]

#: Seconds an HTTP connection may stay idle before it is closed.
IDLE_TIMEOUT = 60.0

_INDEX = b"""txgearman

/metrics   Prometheus metrics
/livez     liveness (?verbose lists the checks)
/readyz    readiness: 503 with the reason when not ready (?verbose)
/api/status, /api/workers, /api/jobs/<handle>, /api/server   JSON
"""


class _Index(Resource):
    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return _INDEX


def webResource(service: GearmanServerService) -> Resource:
    """
    The root of the server's HTTP face, for C{service} (and its reactor).
    """
    health = ServerHealth(service)
    root = _Index()
    root.putChild(b"", root)
    root.putChild(b"metrics", MetricsResource(service, service.reactor))
    root.putChild(b"livez", HealthResource("livez", health.live))
    root.putChild(b"readyz", HealthResource("readyz", health.ready))
    root.putChild(b"api", apiResource(service))
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

    def __init__(self, service: GearmanServerService, reactor: object = None) -> None:
        super().__init__(webResource(service), timeout=IDLE_TIMEOUT, reactor=reactor)

    def log(self, request: http.Request) -> None:
        pass
