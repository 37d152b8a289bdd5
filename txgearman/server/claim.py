# -*- test-case-name: tests.test_claim -*-
"""
The address a server listens on, as proof of who it is.

Only one live process on a host can listen on a given TCP address or Unix
socket.  A store that finds its lock held by this host under the same
address, while the address is free, is looking at the lock of this
server's own previous run, dead (a C{kill -9}, a crash): it may take the
lock over at once instead of waiting for it to expire (see
C{docs/redis.md}).
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from twisted.internet import endpoints
from zope.interface import implementer

from txgearman.store.interfaces import IServerClaim

__all__ = ["ListeningClaim", "listeningClaim"]


@implementer(IServerClaim)
class ListeningClaim:
    """
    A TCP address (C{family}, C{host}, C{port}) or a Unix socket path
    (C{family} C{AF_UNIX}, C{host} the path, C{port} 0) this server listens
    on.

    @ivar held: set once this process listens on it: then it is free as
        far as this process is concerned.
    """

    def __init__(self, family: int, host: str, port: int) -> None:
        self.family = family
        self.host = host
        self.port = port
        self.held = False
        if family == socket.AF_UNIX:
            self.name = f"unix {host}"
        elif family == socket.AF_INET6:
            self.name = f"tcp [{host or '::'}]:{port}"
        else:
            self.name = f"tcp {host or '*'}:{port}"

    def __repr__(self) -> str:
        return f"<ListeningClaim {self.name}>"

    def isFree(self) -> bool:
        """
        Whether no other live process listens on the address: this process
        does, or binding it (TCP) or connecting to it (Unix) shows nobody
        does.  A TCP probe binds with C{SO_REUSEADDR}, as Twisted's listen
        does, so connections of the dead process in C{TIME_WAIT} do not
        count.
        """
        if self.held:
            return True
        if self.family == socket.AF_UNIX:
            return _unixFree(self.host)
        probe = socket.socket(self.family, socket.SOCK_STREAM)
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((self.host, self.port))
        except OSError:
            return False
        finally:
            probe.close()
        return True


def _unixFree(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError as e:
        return e.errno in (errno.ECONNREFUSED, errno.ENOENT)
    finally:
        probe.close()
    return False


def listeningClaim(description: str) -> ListeningClaim | None:
    """
    The claim of a server listening on the strports C{description}: a TCP
    port of a fixed number, or a Unix socket.  C{None} for port 0 (a new
    port each run proves nothing) and for other kinds of endpoint.
    """
    endpoint: Any = endpoints.serverFromString(None, description)
    if isinstance(endpoint, endpoints.UNIXServerEndpoint):
        return ListeningClaim(socket.AF_UNIX, endpoint._address, 0)
    if isinstance(endpoint, endpoints.TCP6ServerEndpoint):
        family = socket.AF_INET6
    elif isinstance(endpoint, endpoints.TCP4ServerEndpoint):
        family = socket.AF_INET
    else:
        return None
    port = endpoint._port
    if not port:
        return None
    return ListeningClaim(family, endpoint._interface, port)
