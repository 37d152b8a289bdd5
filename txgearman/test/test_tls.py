"""
Tests for L{txgearman.server.tls}: real TLS handshakes, in memory, with
certificates the tests make, on a clock the tests turn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from twisted.internet.interfaces import (
    IOpenSSLServerConnectionCreator,
    IStreamServerEndpoint,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import Certificate, PrivateCertificate, optionsForClientTLS
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from txgearman.server.protocol import plaintextRefusal
from txgearman.server.tls import (
    ServerTLS,
    TLSFilesError,
    TLSServerEndpoint,
    _TimedTLSFactory,
    peerIdentity,
)
from txgearman.test.certs import CertificateSet, IssuedCertificate, makeCertificates


class _Recorder(Protocol):
    """Keeps what arrives, and who sent it."""

    def __init__(self) -> None:
        self.received = b""
        self.identities: list[str | None] = []
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        self.identities.append(peerIdentity(self.transport))

    def connectionLost(self, reason: Any = None) -> None:
        self.lost = True


class _Certs:
    """One set of certificates for every test of a case: making them is cheap."""

    _made: CertificateSet | None = None

    @classmethod
    def get(cls, testCase: SynchronousTestCase) -> CertificateSet:
        if cls._made is None:
            cls._made = makeCertificates(Path(testCase.mktemp()))
        return cls._made


def _clientOptions(certs: CertificateSet, client: IssuedCertificate | None) -> Any:
    trust = Certificate.loadPEM(certs.ca.cert.read_bytes())
    extra: dict[str, Any] = {}
    if client is not None:
        extra["clientCertificate"] = PrivateCertificate.loadPEM(client.pem.read_bytes())
    return optionsForClientTLS("localhost", trustRoot=trust, **extra)


class _Session:
    """A server and a client speaking TLS through an in-memory pump."""

    def __init__(self, tls: ServerTLS, clientOptions: Any, clock: Clock) -> None:
        self.server = _Recorder()
        self.client = _Recorder()
        serverFactory = _TimedTLSFactory(
            tls, Factory.forProtocol(lambda: self.server), clock, plaintextRefusal
        )
        clientFactory = TLSMemoryBIOFactory(
            clientOptions, True, Factory.forProtocol(lambda: self.client), clock
        )
        self.serverTLS = serverFactory.buildProtocol(None)
        self.clientTLS = clientFactory.buildProtocol(None)
        self.pump = iosim.connect(
            self.serverTLS,
            iosim.makeFakeServer(self.serverTLS),
            self.clientTLS,
            iosim.makeFakeClient(self.clientTLS),
            greet=False,
            clock=clock,
        )

    def say(self, data: bytes) -> None:
        self.clientTLS.write(data)
        for _ in range(10):
            self.pump.pump()


class ServerTLSTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.certs = _Certs.get(self)
        self.clock = Clock()
        self.events: list[LogEvent] = []
        observer = cast(ILogObserver, self.events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def serverTLS(self, ca: bool = True) -> ServerTLS:
        certs = self.certs
        return ServerTLS(
            str(certs.server.cert),
            str(certs.server.key),
            str(certs.ca.cert) if ca else None,
            handshakeTimeout=3.0,
        )

    def logged(self) -> str:
        return "\n".join(formatEvent(event) for event in self.events)

    def test_interfaces(self) -> None:
        tls = self.serverTLS()
        self.assertTrue(verifyObject(IOpenSSLServerConnectionCreator, tls))
        endpoint = TLSServerEndpoint(MemoryReactorClock(), tls, self.clock)  # type: ignore[arg-type]
        self.assertTrue(verifyObject(IStreamServerEndpoint, endpoint))

    def test_clientCertificate(self) -> None:
        """
        A client presenting a certificate the authority signed gets through,
        and its common name is the connection's identity.
        """
        session = _Session(
            self.serverTLS(), _clientOptions(self.certs, self.certs.web), self.clock
        )
        session.say(b"hello")
        self.assertEqual(session.server.received, b"hello")
        self.assertEqual(session.server.identities, ["web"])

    def test_serverOnly(self) -> None:
        """
        Without an authority, no client certificate is asked for, and the
        connection has no identity.
        """
        session = _Session(
            self.serverTLS(ca=False), _clientOptions(self.certs, None), self.clock
        )
        session.say(b"hello")
        self.assertEqual(session.server.received, b"hello")
        self.assertEqual(session.server.identities, [None])

    def assertRefused(self, client: IssuedCertificate | None, why: str) -> None:
        session = _Session(
            self.serverTLS(), _clientOptions(self.certs, client), self.clock
        )
        session.say(b"hello")
        self.assertEqual(session.server.received, b"")
        self.assertTrue(session.server.lost)
        self.assertIn(why, self.logged())

    def test_noClientCertificate(self) -> None:
        """With an authority, a client without a certificate is refused."""
        self.assertRefused(None, "TLS handshake with")

    def test_expired(self) -> None:
        """An expired client certificate is refused, and the log says so."""
        self.assertRefused(
            self.certs.expired, "client certificate 'late' refused: it has expired"
        )

    def test_otherAuthority(self) -> None:
        """A certificate another authority signed is refused."""
        self.assertRefused(
            self.certs.stranger,
            "client certificate 'web' refused: its issuer is not the authority",
        )

    def test_plaintext(self) -> None:
        """
        A peer speaking plain Gearman to the TLS port is told so in Gearman
        and closed; an admin line gets C{ERR}.
        """
        for data, answer in [
            (b"\0REQ\0\0\0\x10\0\0\0\0", b"\0RES\0\0\0\x13"),
            (b"status\r\n", b"ERR TLS_REQUIRED This+port+speaks+TLS\r\n"),
        ]:
            factory = _TimedTLSFactory(
                self.serverTLS(),
                Factory.forProtocol(_Recorder),
                self.clock,
                plaintextRefusal,
            )
            protocol = factory.buildProtocol(None)
            transport = iosim.FakeTransport(protocol, isServer=True)
            protocol.makeConnection(transport)
            transport.stream.clear()
            protocol.dataReceived(data)
            self.assertTrue(b"".join(transport.stream).startswith(answer))
            self.assertTrue(transport.disconnecting)
            self.assertEqual(cast(_Recorder, protocol.wrappedProtocol).received, b"")
        self.assertIn("plaintext on a TLS port", self.logged())

    def test_handshakeTimeout(self) -> None:
        """
        A connection that does not finish its handshake in time is dropped;
        one that did is left alone.
        """
        factory = _TimedTLSFactory(
            self.serverTLS(),
            Factory.forProtocol(_Recorder),
            self.clock,
            plaintextRefusal,
        )
        silent = factory.buildProtocol(None)
        transport = iosim.FakeTransport(silent, isServer=True)
        silent.makeConnection(transport)
        self.clock.advance(2.9)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.2)
        self.assertTrue(transport.disconnecting)
        self.assertIn("no TLS handshake within 3 s", self.logged())

        session = _Session(
            self.serverTLS(), _clientOptions(self.certs, self.certs.web), self.clock
        )
        session.say(b"hello")
        self.clock.advance(10)
        session.say(b" again")
        self.assertEqual(session.server.received, b"hello again")

    def test_reload(self) -> None:
        """
        A reload serves the new certificate to new connections and leaves
        the open ones be; files that cannot be used leave the old in force.
        """
        certs = self.certs
        server = Path(self.mktemp())
        server.mkdir()
        cert, key = server / "s.crt", server / "s.key"
        cert.write_bytes(certs.server.cert.read_bytes())
        key.write_bytes(certs.server.key.read_bytes())
        tls = ServerTLS(str(cert), str(key), str(certs.ca.cert))
        first = _Session(tls, _clientOptions(certs, certs.web), self.clock)
        first.say(b"one")

        cert.write_bytes(certs.server2.cert.read_bytes())
        key.write_bytes(certs.server2.key.read_bytes())
        self.assertTrue(tls.reload())
        second = _Session(tls, _clientOptions(certs, certs.web), self.clock)
        second.say(b"two")
        first.say(b" more")
        self.assertEqual(first.server.received, b"one more")
        seen = second.clientTLS.getPeerCertificate().digest("sha256")
        expected = Certificate.loadPEM(certs.server2.cert.read_bytes()).original.digest(
            "sha256"
        )
        self.assertEqual(seen, expected)

        key.write_bytes(certs.web.key.read_bytes())
        self.assertFalse(tls.reload())
        self.assertIn("TLS certificates not reloaded", self.logged())
        third = _Session(tls, _clientOptions(certs, certs.web), self.clock)
        third.say(b"three")
        self.assertEqual(third.server.received, b"three")


class TLSFilesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.certs = _Certs.get(self)

    def assertFiles(
        self, message: str, cert: Path, key: Path, ca: Path | None = None
    ) -> None:
        e = self.assertRaises(
            TLSFilesError, ServerTLS, str(cert), str(key), str(ca) if ca else None
        )
        self.assertIn(message, str(e))

    def test_missing(self) -> None:
        missing = Path(self.mktemp())
        self.assertFiles(
            f"cannot read the certificate {missing}: No such file or directory",
            missing,
            self.certs.server.key,
        )
        self.assertFiles(
            f"cannot read the key {missing}", self.certs.server.cert, missing
        )
        self.assertFiles(
            f"cannot read the authority {missing}",
            self.certs.server.cert,
            self.certs.server.key,
            missing,
        )

    def test_notPEM(self) -> None:
        junk = Path(self.mktemp())
        junk.write_bytes(b"not a certificate\n")
        self.assertFiles(f"the certificate {junk} holds no PEM certificate", junk, junk)
        self.assertFiles(
            f"the key {junk} holds no PEM private key", self.certs.server.cert, junk
        )

    def test_wrongKey(self) -> None:
        self.assertFiles(
            f"the key {self.certs.web.key} does not belong to the certificate",
            self.certs.server.cert,
            self.certs.web.key,
        )

    def test_describe(self) -> None:
        certs = self.certs
        tls = ServerTLS(
            str(certs.server.cert), str(certs.server.key), str(certs.ca.cert)
        )
        self.assertTrue(tls.verifiesClients)
        self.assertIn("client certificates from", tls.describe())
        plain = tls.withoutClientCertificates()
        self.assertFalse(plain.verifiesClients)
        self.assertEqual(plain.describe(), f"on ({certs.server.cert})")
