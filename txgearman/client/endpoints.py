# -*- test-case-name: txgearman.test.test_endpoints -*-
"""
How the client, worker and admin APIs name job servers.

The usual form is a Twisted endpoint description, such as
C{tcp:gearman.example:4730} or C{unix:/run/gearman.sock}; as gearman's own
tools take them, C{host:port} and a bare host (port 4730) work too.  For
TLS, L{tlsEndpoint} (or a C{tls:} description) verifies the server's
certificate and can present a client certificate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.endpoints import HostnameEndpoint, clientFromString, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.ssl import (
    PrivateCertificate,
    optionsForClientTLS,
    trustRootFromCertificates,
)

from txgearman._pem import loadCertificates

__all__ = ["endpointFor", "tlsEndpoint", "DEFAULT_PORT"]

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
        host, port = _hostPort(server)
        return HostnameEndpoint(reactor, host, port)


def _hostPort(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    if not host or not port.isdigit():
        host, port = server, str(DEFAULT_PORT)
    return host.strip("[]"), int(port)


def tlsEndpoint(
    reactor: Any,
    server: str,
    caFile: str | None = None,
    certFile: str | None = None,
    keyFile: str | None = None,
    hostname: str | None = None,
) -> IStreamClientEndpoint:
    """
    A TLS connection to C{server} (C{host:port} or a host), that verifies
    the server's certificate and name, as a browser does, and presents a
    client certificate if given one: what a server with C{--tls-ca} asks.

    @param caFile: PEM certificates of the authorities to trust; the
        system's, by default.
    @param certFile: a client certificate (PEM), with C{keyFile}.
    @param keyFile: its private key, if not in C{certFile}.
    @param hostname: the name the server's certificate must carry; the
        host of C{server} by default.
    @raise OSError: a file cannot be read.
    @raise ValueError: C{caFile} holds no certificate.
    """
    host, port = _hostPort(server)
    extra: dict[str, Any] = {}
    if caFile is not None:
        try:
            authorities = loadCertificates(Path(caFile).read_bytes())
        except ValueError as e:
            raise ValueError(f"the authority file {caFile} {e}") from None
        extra["trustRoot"] = trustRootFromCertificates(authorities)
    if certFile is not None:
        pem = Path(certFile).read_bytes()
        if keyFile is not None:
            pem = Path(keyFile).read_bytes() + b"\n" + pem
        extra["clientCertificate"] = PrivateCertificate.loadPEM(pem)
    elif keyFile is not None:
        raise ValueError("keyFile needs certFile")
    options = optionsForClientTLS(hostname or host, **extra)
    return wrapClientTLS(options, HostnameEndpoint(reactor, host, port))
