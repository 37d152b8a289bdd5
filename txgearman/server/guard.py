# -*- test-case-name: txgearman.test.test_guard -*-
"""
The Gearman protocol under an access-control list: every packet and admin
line that needs a right is judged by the connection's L{Rights} before the
ordinary handler runs, and a denial is always answered (C{ERROR
PERMISSION_DENIED <right> <function>}, C{ERR PERMISSION_DENIED <command>})
and logged with the identity.

Only a factory given a policy builds these, so a server without C{--acl}
pays nothing for them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IHandshakeListener, ISSLTransport
from zope.interface import implementer

from txgearman.codec import PacketType
from txgearman.server.acl import (
    ADMIN_READ,
    ADMIN_WRITE,
    ANONYMOUS,
    AccessPolicy,
    Rights,
    adminCommand,
)
from txgearman.server.protocol import GearmanServerProtocol
from txgearman.server.tls import peerIdentity

__all__ = ["GuardedServerProtocol", "DENIALS_LOGGED"]

_P = PacketType
_Base = GearmanServerProtocol

#: How many denials of one connection are logged, one line each, before
#: the rest are only counted: a peer that keeps asking must not flood the log.
DENIALS_LOGGED = 10

#: The admin commands the ACL governs; others (unknown ones) are answered
#: as without an ACL.
_GOVERNED = frozenset(ADMIN_READ + ADMIN_WRITE)


def _submitGuard(
    handler: Callable[[GearmanServerProtocol, tuple[bytes, ...]], None],
) -> Any:
    """
    C{handler}, the plain protocol's submit of one kind, behind the check
    of C{submit} on its function: first one set (the names this identity
    was already found to be allowed), then the rules.
    """

    def guarded(self: GuardedServerProtocol, args: tuple[bytes, ...]) -> None:
        if args[0] in self.rights.allowed["submit"] or self._maySubmit(args[0]):
            handler(self, args)

    guarded.__name__ = handler.__name__
    guarded.__doc__ = f"{handler.__name__}, if the identity may submit to its function."
    return guarded


@implementer(IHandshakeListener)
class GuardedServerProtocol(GearmanServerProtocol):
    """
    A connection judged by the factory's L{AccessPolicy}.

    @ivar rights: what the connection's identity may do; until a TLS
        handshake has said who the peer is, nothing.
    """

    rights: Rights
    _denials = 0

    @property
    def policy(self) -> AccessPolicy:
        # Read from the factory, not kept: every attribute more on these
        # objects slows every attribute read of the per-packet path (past
        # CPython's shared-keys size, instance dictionaries stop sharing).
        policy = self.factory.policy
        assert policy is not None, "a guarded connection needs a factory with a policy"
        return policy

    def connectionMade(self) -> None:
        super().connectionMade()
        if ISSLTransport.providedBy(self.transport):
            # No request arrives before the handshake ends; until then the
            # connection is nobody.
            self.rights = Rights("", None)
        else:
            self.rights = self.policy.rightsFor(ANONYMOUS)

    def handshakeCompleted(self) -> None:
        """The peer's certificate is known: its identity is its common name."""
        self.rights = self.policy.rightsFor(peerIdentity(self.transport))

    @property
    def identity(self) -> str:
        return self.rights.identity or "-"

    def _deny(self, right: str, what: bytes) -> None:
        """Answer and log a denied packet."""
        self.sendPacket(_P.ERROR, b"PERMISSION_DENIED", right.encode() + b" " + what)
        self._logDenial(right, what.decode("utf-8", "replace"))

    def _logDenial(self, right: str, what: str) -> None:
        self._denials += 1
        if self._denials > DENIALS_LOGGED:
            return
        more = "; further denials on this connection are not logged"
        self.log.warn(
            "Denied {identity} at {host}: {right} {what}{more}",
            identity=self.identity,
            host=self.session.host,
            right=right,
            what=what,
            more=more if self._denials == DENIALS_LOGGED else "",
        )

    def _judgeRegister(self, name: bytes) -> bool:
        """
        A worker needs both C{register} and C{grab} to take a function:
        registering one it could never be handed jobs of would leave
        clients waiting on a worker that cannot work.
        """
        rights = self.rights
        if not rights.may("register", name):
            self._deny("register", name)
            return False
        if not rights.may("grab", name):
            self._deny("grab", name)
            return False
        return True

    def rejudge(self) -> None:
        """
        The rules changed: drop the abilities this worker no longer has, so
        that its next GRAB_JOB is judged by the new rules.
        """
        rights = self.rights
        for function in list(self.session.functions):
            name = function.name
            for right in ("register", "grab"):
                if not rights.may(right, name):
                    self.core.cantDo(self.session, name)
                    self._logDenial(
                        right, name.decode("utf-8", "replace") + " (after reload)"
                    )
                    break

    # -- admin ------------------------------------------------------------

    def adminLine(self, line: bytes) -> bytes:
        command = adminCommand(line)
        known = command in _GOVERNED
        if known and not self.rights.mayAdmin(command):
            self._logDenial("admin", command)
            return (
                b"ERR PERMISSION_DENIED " + command.replace(" ", "+").encode() + b"\r\n"
            )
        if command == "acl list":
            listed = self.factory.listedPolicy
            if listed is None:
                return b"ERR ACL_DISABLED The+server+runs+without+--acl\r\n"
            return b"".join(listed.listing()) + b".\n"
        return super().adminLine(line)

    # -- workers ------------------------------------------------------------

    def packet_CAN_DO(self, args: tuple[bytes, ...]) -> None:
        if self._judgeRegister(args[0]):
            _Base.packet_CAN_DO(self, args)

    def packet_CAN_DO_TIMEOUT(self, args: tuple[bytes, ...]) -> None:
        if self._judgeRegister(args[0]):
            _Base.packet_CAN_DO_TIMEOUT(self, args)

    # -- clients ----------------------------------------------------------

    def _maySubmit(self, name: bytes) -> bool:
        if self.rights.may("submit", name):
            return True
        self._deny("submit", name)
        return False

    packet_SUBMIT_JOB = _submitGuard(_Base.packet_SUBMIT_JOB)
    packet_SUBMIT_JOB_BG = _submitGuard(_Base.packet_SUBMIT_JOB_BG)
    packet_SUBMIT_JOB_HIGH = _submitGuard(_Base.packet_SUBMIT_JOB_HIGH)
    packet_SUBMIT_JOB_HIGH_BG = _submitGuard(_Base.packet_SUBMIT_JOB_HIGH_BG)
    packet_SUBMIT_JOB_LOW = _submitGuard(_Base.packet_SUBMIT_JOB_LOW)
    packet_SUBMIT_JOB_LOW_BG = _submitGuard(_Base.packet_SUBMIT_JOB_LOW_BG)
    packet_SUBMIT_JOB_EPOCH = _submitGuard(_Base.packet_SUBMIT_JOB_EPOCH)
    packet_SUBMIT_JOB_SCHED = _submitGuard(_Base.packet_SUBMIT_JOB_SCHED)
    packet_SUBMIT_REDUCE_JOB = _submitGuard(_Base.packet_SUBMIT_REDUCE_JOB)
    packet_SUBMIT_REDUCE_JOB_BACKGROUND = _submitGuard(
        _Base.packet_SUBMIT_REDUCE_JOB_BACKGROUND
    )

    def packet_GET_STATUS(self, args: tuple[bytes, ...]) -> None:
        """
        A job's status goes only to an identity with C{status} on its
        function; one with no C{status} right at all is denied whatever
        the handle, so that it cannot learn which handles exist.
        """
        handle = args[0]
        job = self.core.jobs.get(handle)
        name = job.function.name if job is not None else None
        rights = self.rights
        if not rights.mayStatus(name):
            # Name the function only to one that may see some statuses.
            what = handle
            if name is not None and rights.mayAny("status"):
                what = name
            self._deny("status", what)
            return
        _Base.packet_GET_STATUS(self, args)

    def packet_GET_STATUS_UNIQUE(self, args: tuple[bytes, ...]) -> None:
        unique = args[0]
        if not self.rights.mayAny("status"):
            self._deny("status", unique)
            return
        for name in self.core.functionsOfUnique(unique):
            if not self.rights.may("status", name):
                self._deny("status", name)
                return
        _Base.packet_GET_STATUS_UNIQUE(self, args)
