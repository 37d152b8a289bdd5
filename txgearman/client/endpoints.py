# -*- test-case-name: txgearman.test.test_endpoints -*-
"""
How the client, worker and admin APIs name job servers.

The usual form is a Twisted endpoint description, such as
C{tcp:gearman.example:4730} or C{unix:/run/gearman.sock}; as gearman's own
tools take them, C{host:port} and a bare host (port 4730) work too.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.endpoints import HostnameEndpoint, clientFromString
from twisted.internet.interfaces import IStreamClientEndpoint

__all__ = ["endpointFor", "DEFAULT_PORT"]

#: The Gearman port.
DEFAULT_PORT = 4730


def endpointFor(
    reactor: Any, server: str | IStreamClientEndpoint
) -> IStreamClientEndpoint:
    """
    An endpoint for a server given as an endpoint description
    (C{tcp:gearman.example:4730}), as C{host:port}, as a bare host (port
    4730), or as an endpoint.
    """
    if not isinstance(server, str):
        return server
    try:
        return clientFromString(reactor, server)
    except (ValueError, TypeError, KeyError):
        host, _, port = server.rpartition(":")
        if not host or not port.isdigit():
            host, port = server, str(DEFAULT_PORT)
        return HostnameEndpoint(reactor, host.strip("[]"), int(port))
