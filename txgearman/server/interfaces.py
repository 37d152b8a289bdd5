# -*- test-case-name: txgearman.test.test_protocol -*-
"""
The contract between the server core and its connections.

L{IPeer} is how the core talks back to a connection without knowing about
sockets or bytes; L{txgearman.server.protocol.GearmanServerProtocol} is the
real one, and the tests' fake peers record what the core sends.
"""

from __future__ import annotations

from zope.interface import Interface

__all__ = ["IPeer"]


class IPeer(Interface):
    """
    One connection, as the server core addresses it.
    """

    def sendPacket(ptype: int, *args: bytes) -> None:
        """
        Send a response packet of type C{ptype} whose body is C{args}
        joined by NUL bytes.
        """

    def reservePacket() -> object:
        """
        Keep the place of an answer the core will only know later (a
        background job's C{JOB_CREATED}, once the store has it): packets
        sent meanwhile wait behind it, so that the connection gets its
        answers in the order of its requests.

        @return: a token for L{sendReserved}.
        """

    def sendReserved(place: object, ptype: int, *args: bytes) -> None:
        """
        Send the packet whose place L{reservePacket} kept, and what waited
        behind it.
        """

    def pauseReading() -> None:
        """
        Read no more requests from this peer until L{resumeReading}: it is
        a worker whose results a client does not read fast enough, and
        reading on would only pile them up in the server.
        """

    def resumeReading() -> None:
        """
        Read this peer's requests again (after L{pauseReading}), unless
        the connection holds them back for reasons of its own.
        """
