# -*- test-case-name: txgearman.test.test_web_health -*-
"""
C{/livez} and C{/readyz}, as Kubernetes' own endpoints answer them: the
status code is for machines (200, or 503 with the reason as plain text),
C{?verbose} lists every check for people.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.web.resource import Resource
from twisted.web.server import Request

from txgearman.store.interfaces import HealthCheck, IStoreHealth

if TYPE_CHECKING:
    from txgearman.server.service import GearmanServerService

__all__ = ["ServerHealth", "HealthResource"]


class ServerHealth:
    """
    The checks of one L{GearmanServerService}, computed when asked: each is
    a few attribute reads, so a probe every second costs nothing.
    """

    def __init__(self, service: GearmanServerService) -> None:
        self.service = service

    def live(self) -> list[HealthCheck]:
        """
        Liveness: whoever reads this answer got it from the reactor, so the
        reactor turns.  (A server that cannot start exits instead.)
        """
        return [HealthCheck("reactor", True, "the event loop turns")]

    def ready(self) -> list[HealthCheck]:
        """
        Readiness: the store's jobs replayed, the Gearman port bound, not
        draining, and whatever the store itself needs (Redis connected,
        the queue's lock held).
        """
        service = self.service
        checks = [
            HealthCheck("replay", True, "the stored jobs are queued")
            if service.factory.ready
            else HealthCheck("replay", False, "replaying the stored jobs"),
        ]
        if service.core.draining:
            checks.append(
                HealthCheck("draining", False, "draining: new jobs are refused")
            )
        if service.port is not None:
            checks.append(
                HealthCheck(
                    "listening", True, f"listening on {service.endpointDescription}"
                )
            )
        else:
            checks.append(
                HealthCheck(
                    "listening",
                    False,
                    f"not listening on {service.endpointDescription}",
                )
            )
        checks.extend(self.store())
        return checks

    def store(self) -> list[HealthCheck]:
        """
        The store's own checks; none for a store that needs nothing
        outside the process.
        """
        store = self.service.store
        return store.health() if IStoreHealth.providedBy(store) else []


def _asked(request: Request, flag: bytes) -> bool:
    """
    Whether the query has C{flag}, bare (C{?verbose}, which Twisted's
    C{request.args} drops) or with a value.
    """
    query = request.uri.partition(b"?")[2]
    return any(part.partition(b"=")[0] == flag for part in query.split(b"&"))


class HealthResource(Resource):
    """
    One health endpoint: C{ok} with 200 when every check passes, else 503
    and the failed checks' reasons; with C{?verbose}, every check.
    """

    isLeaf = True

    def __init__(self, name: str, checks: Callable[[], list[HealthCheck]]) -> None:
        """
        @param name: C{livez} or C{readyz}, for the verbose summary line.
        @param checks: a callable returning the current L{HealthCheck}s.
        """
        super().__init__()
        self.name = name
        self.checks = checks

    def render_GET(self, request: Request) -> bytes:
        checks = self.checks()
        failed = [check for check in checks if not check.ok]
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        if failed:
            request.setResponseCode(503)
        if _asked(request, b"verbose"):
            lines = [
                f"[{'+' if check.ok else '-'}]{check.name} "
                f"{'ok' if check.ok else 'failed'}: {check.detail}"
                for check in checks
            ]
            lines.append(f"{self.name} check {'failed' if failed else 'passed'}")
            return ("\n".join(lines) + "\n").encode("utf-8")
        if failed:
            return (
                "".join(f"{check.name}: {check.detail}\n" for check in failed)
            ).encode("utf-8")
        return b"ok\n"
