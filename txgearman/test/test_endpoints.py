"""
Tests for L{txgearman.client.endpoints}: the forms a job server can be named in.
"""

from __future__ import annotations

from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    UNIXClientEndpoint,
)
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from txgearman.client.endpoints import endpointFor


class EndpointForTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()

    def test_description(self) -> None:
        """
        Endpoint descriptions are taken as written.
        """
        endpoint = endpointFor(self.reactor, "tcp:gearman.example:4731")
        self.assertIsInstance(endpoint, TCP4ClientEndpoint)
        self.assertIsInstance(
            endpointFor(self.reactor, "unix:/run/g.sock"), UNIXClientEndpoint
        )

    def test_hostPort(self) -> None:
        """
        C{host:port} and a bare host (port 4730) name TCP servers, as in
        gearman's own tools.
        """
        for text, shown in [
            ("gearman.example:4731", "gearman.example:4731"),
            ("gearman.example", "gearman.example:4730"),
            ("[::1]:4731", "[::1]:4731"),
            ("10.0.0.1:1", "10.0.0.1:1"),
        ]:
            endpoint = endpointFor(self.reactor, text)
            self.assertIsInstance(endpoint, HostnameEndpoint, text)
            self.assertEqual(repr(endpoint), f"<HostnameEndpoint {shown}>")

    def test_endpoint(self) -> None:
        """
        An endpoint is used as it is.
        """
        endpoint = TCP4ClientEndpoint(self.reactor, "h", 1)
        self.assertIs(endpointFor(self.reactor, endpoint), endpoint)
