"""
The HTTP face under C{--acl}: who sent a request, and a denial answered
and logged as the Gearman port's are.
"""

from __future__ import annotations

from twisted.web import http
from twisted.web.server import Request

from txgearman.server.acl import AccessPolicy, Rights
from txgearman.server.tls import peerIdentity

__all__ = ["requestRights", "refuse"]


def requestRights(request: Request, policy: AccessPolicy) -> Rights:
    """
    The rights of whoever sent C{request}: its TLS client certificate's
    common name, or C{anonymous}.
    """
    return policy.rightsFor(peerIdentity(request.channel.transport))


def refuse(request: Request, policy: AccessPolicy, rights: Rights, what: str) -> None:
    """
    Answer C{request} with 403 and log the denial of C{what} (a right
    and its object) with the identity; the caller writes the body.
    """
    policy.log.warn(
        "Denied {identity} over HTTP: {what} ({method} {path})",
        identity=rights.identity or "-",
        what=what,
        method=request.method.decode("ascii", "replace"),
        path=request.path.decode("utf-8", "replace"),
    )
    request.setResponseCode(http.FORBIDDEN)
