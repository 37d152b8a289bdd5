"""
Tests for L{txgearman.store.redistls}: the C{--redis-tls-*} files, and real
TLS handshakes in memory (with certificates the tests make) that fail for
each reason an operator must be told apart.

The store against a real Redis over TLS is tested in
C{tests/test_redis_tls.py}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from OpenSSL import SSL
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.ssl import Certificate, CertificateOptions, KeyPair
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from txgearman.store.redis import RedisQueueStore
from txgearman.store.redistls import RedisTLS, RedisTLSError, describeTLSFailure
from txgearman.test.certs import CertificateSet, IssuedCertificate, makeCertificates


class _Certs:
    """One set of certificates for all the tests: making them takes a while."""

    _made: CertificateSet | None = None
    _expiredServer: IssuedCertificate | None = None

    @classmethod
    def get(cls, testCase: SynchronousTestCase) -> CertificateSet:
        if cls._made is None:
            cls._made = makeCertificates(Path(testCase.mktemp()))
        return cls._made

    @classmethod
    def expiredServer(cls, testCase: SynchronousTestCase) -> IssuedCertificate:
        if cls._expiredServer is None:
            cls._expiredServer = cls.get(testCase).ca.issue(
                "localhost", server=True, expired=True, fileName="expired-server"
            )
        return cls._expiredServer


class _Client(Protocol):
    """
    Keeps what arrives, and why the connection ended in the words of
    L{describeTLSFailure}, asked while the TLS transport still knows.
    """

    def __init__(self, tls: RedisTLS, hostname: str) -> None:
        self.tls = tls
        self.hostname = hostname
        self.received = b""
        self.reason: Failure | None = None
        self.described: str | None = None

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.reason = reason
        self.described = self.tls.describeFailure(reason, self.transport, self.hostname)


class _Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)


def _serverOptions(
    server: IssuedCertificate, requireClientFrom: Path | None = None
) -> CertificateOptions:
    """A Redis's TLS settings, as its tls-* directives would make them."""
    extra: dict[str, Any] = {}
    if requireClientFrom is not None:
        extra = {
            "verify": True,
            "requireCertificate": True,
            "caCerts": [Certificate.loadPEM(requireClientFrom.read_bytes()).original],
        }
    return CertificateOptions(
        privateKey=KeyPair.load(server.key.read_bytes(), 1).original,
        certificate=Certificate.loadPEM(server.cert.read_bytes()).original,
        **extra,
    )


def _connect(
    serverSide: Any, tls: RedisTLS, hostname: str = "localhost", plaintext: bool = False
) -> _Client:
    """
    Connect a client with C{tls} to a server in memory, pump until
    nothing moves, and return the client's protocol.
    """
    clock = Clock()
    client = _Client(tls, hostname)
    clientFactory = TLSMemoryBIOFactory(
        tls.creatorFor(hostname), True, Factory.forProtocol(lambda: client), clock
    )
    if plaintext:
        serverProtocol: Any = _Echo()
    else:
        serverFactory = TLSMemoryBIOFactory(
            serverSide, False, Factory.forProtocol(_Echo), clock
        )
        serverProtocol = serverFactory.buildProtocol(None)
    clientProtocol = clientFactory.buildProtocol(None)
    pump = iosim.connect(
        serverProtocol,
        iosim.makeFakeServer(serverProtocol),
        clientProtocol,
        iosim.makeFakeClient(clientProtocol),
        greet=False,
        clock=clock,
    )
    clientProtocol.write(b"PING\r\n")
    for _ in range(20):
        pump.pump()
    return client


class FilesTests(SynchronousTestCase):
    """
    The files are read when L{RedisTLS} is made, and a wrong one is
    refused naming the option, the file and why.
    """

    def setUp(self) -> None:
        self.certs = _Certs.get(self)
        self.directory = Path(self.mktemp())
        self.directory.mkdir()

    def refused(self, **files: Any) -> str:
        with self.assertRaises(RedisTLSError) as caught:
            RedisTLS(**{name: str(path) for name, path in files.items()})
        return str(caught.exception)

    def test_platformTrust(self) -> None:
        """
        Without files, the system's authorities are trusted and no client
        certificate is shown.
        """
        self.assertEqual(str(RedisTLS()), "TLS trusting the system's authorities")

    def test_described(self) -> None:
        certs = self.certs
        tls = RedisTLS(str(certs.ca.cert), str(certs.web.cert), str(certs.web.key))
        self.assertEqual(
            str(tls),
            f"TLS trusting {certs.ca.cert}, client certificate {certs.web.cert}",
        )

    def test_missingAuthority(self) -> None:
        missing = self.directory / "nowhere.crt"
        message = self.refused(caFile=missing)
        self.assertIn("--redis-tls-ca", message)
        self.assertIn(str(missing), message)
        self.assertIn("No such file or directory", message)

    def test_directory(self) -> None:
        message = self.refused(caFile=self.directory)
        self.assertIn(f"--redis-tls-ca: cannot read {self.directory}", message)

    def test_notPEM(self) -> None:
        garbage = self.directory / "garbage.crt"
        garbage.write_bytes(b"not a certificate\n")
        self.assertEqual(
            self.refused(caFile=garbage),
            f"--redis-tls-ca: {garbage} holds no PEM certificate",
        )

    def test_brokenCertificate(self) -> None:
        broken = self.directory / "broken.crt"
        broken.write_bytes(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        )
        message = self.refused(caFile=broken)
        self.assertIn(f"--redis-tls-ca: {broken} is not a valid certificate", message)

    def test_certificateWithoutKey(self) -> None:
        self.assertEqual(
            self.refused(certFile=self.certs.web.cert),
            "--redis-tls-cert and --redis-tls-key go together",
        )
        self.assertEqual(
            self.refused(keyFile=self.certs.web.key),
            "--redis-tls-cert and --redis-tls-key go together",
        )

    def test_notAKey(self) -> None:
        certs = self.certs
        message = self.refused(certFile=certs.web.cert, keyFile=certs.web.cert)
        self.assertEqual(
            message, f"--redis-tls-key: {certs.web.cert} holds no PEM private key"
        )

    def test_otherCertificatesKey(self) -> None:
        certs = self.certs
        message = self.refused(certFile=certs.web.cert, keyFile=certs.worker.key)
        self.assertEqual(
            message,
            f"--redis-tls-key: {certs.worker.key} is not the key of the certificate "
            f"{certs.web.cert}",
        )

    def test_missingClientCertificate(self) -> None:
        missing = self.directory / "client.crt"
        message = self.refused(certFile=missing, keyFile=self.certs.web.key)
        self.assertIn(f"--redis-tls-cert: cannot read {missing}", message)


class HandshakeTests(SynchronousTestCase):
    """
    L{RedisTLS.creatorFor} verifies the server's certificate and name, and
    shows the client certificate; L{describeTLSFailure} says why a
    handshake failed.
    """

    def setUp(self) -> None:
        self.certs = _Certs.get(self)
        self.trusting = RedisTLS(str(self.certs.ca.cert))

    def test_verified(self) -> None:
        client = _connect(_serverOptions(self.certs.server), self.trusting)
        self.assertEqual(client.received, b"PING\r\n")
        self.assertIsNone(client.reason)

    def test_byIPAddress(self) -> None:
        """
        An address given as an IP literal is checked against the
        certificate's IP addresses.
        """
        client = _connect(_serverOptions(self.certs.server), self.trusting, "127.0.0.1")
        self.assertEqual(client.received, b"PING\r\n")

    def test_unknownAuthority(self) -> None:
        client = _connect(_serverOptions(self.certs.strangeServer), self.trusting)
        self.assertEqual(client.received, b"")
        self.assertEqual(
            client.described,
            "TLS handshake failed: the certificate of Redis was rejected: it is not "
            "signed by an authority this server trusts (--redis-tls-ca names the "
            "authority to trust)",
        )

    def test_platformTrustRefusesTestAuthority(self) -> None:
        """
        Without C{--redis-tls-ca}, the system's authorities do not include
        the tests' own.
        """
        client = _connect(_serverOptions(self.certs.server), RedisTLS())
        self.assertEqual(client.received, b"")
        assert client.described is not None
        self.assertIn("the certificate of Redis was rejected", client.described)

    def test_expired(self) -> None:
        client = _connect(_serverOptions(_Certs.expiredServer(self)), self.trusting)
        assert client.described is not None
        self.assertIn("rejected: it has expired", client.described)

    def test_wrongName(self) -> None:
        client = _connect(
            _serverOptions(self.certs.server), self.trusting, "redis.example.com"
        )
        self.assertEqual(client.received, b"")
        self.assertEqual(
            client.described,
            "TLS handshake failed: the certificate of Redis does not name "
            "redis.example.com",
        )

    def test_clientCertificateRequired(self) -> None:
        client = _connect(
            _serverOptions(self.certs.server, requireClientFrom=self.certs.ca.cert),
            self.trusting,
        )
        self.assertEqual(client.received, b"")
        assert client.described is not None
        self.assertIn("Redis requires a client certificate", client.described)
        self.assertIn("--redis-tls-cert", client.described)

    def test_clientCertificateShown(self) -> None:
        certs = self.certs
        client = _connect(
            _serverOptions(certs.server, requireClientFrom=certs.ca.cert),
            RedisTLS(str(certs.ca.cert), str(certs.web.cert), str(certs.web.key)),
        )
        self.assertEqual(client.received, b"PING\r\n")
        self.assertIsNone(client.reason)

    def test_clientCertificateRefused(self) -> None:
        """
        A client certificate from an authority the server does not trust
        is refused by the server, which says so with an alert.
        """
        certs = self.certs
        client = _connect(
            _serverOptions(certs.server, requireClientFrom=certs.ca.cert),
            RedisTLS(
                str(certs.ca.cert), str(certs.stranger.cert), str(certs.stranger.key)
            ),
        )
        self.assertEqual(client.received, b"")
        assert client.described is not None
        self.assertIn("TLS handshake failed: Redis refused it", client.described)

    def test_plaintextServer(self) -> None:
        """
        A Redis that does not speak TLS echoes nothing TLS can read.
        """
        client = _connect(None, self.trusting, plaintext=True)
        assert client.described is not None
        self.assertIn("TLS", client.described)

    def test_notTLSFailure(self) -> None:
        self.assertIsNone(describeTLSFailure(Failure(ConnectionDone()), None, "h"))


class StoreTLSTests(SynchronousTestCase):
    """
    L{RedisQueueStore} with a C{rediss://} address: TLS settings by
    default, and a failed handshake logged once per cause (its behaviour
    against a real Redis is in C{tests/test_redis_tls.py}).
    """

    def test_platformTrustByDefault(self) -> None:
        store = RedisQueueStore("rediss://:pw@localhost:6380", MemoryReactorClock())
        self.assertIsInstance(store.tls, RedisTLS)
        self.assertEqual(
            store.description,
            "redis rediss://localhost:6380 (TLS trusting the system's authorities; "
            "prefix txgearman)",
        )
        self.assertIsNone(RedisQueueStore("localhost", MemoryReactorClock()).tls)

    def test_tlsWithoutRediss(self) -> None:
        self.assertRaises(
            ValueError,
            RedisQueueStore,
            "redis://h",
            MemoryReactorClock(),
            tls=RedisTLS(),
        )

    def test_handshakeFailureLoggedOnce(self) -> None:
        events: list[LogEvent] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        store = RedisQueueStore("rediss://localhost:6380", MemoryReactorClock())
        failure = Failure(
            SSL.Error([("SSL routines", "", "tlsv13 alert certificate required")])
        )
        for _ in range(3):
            store._connectionLost(failure, None)
        lines = [formatEvent(e) for e in events if "Cannot connect" in formatEvent(e)]
        self.assertEqual(
            lines,
            [
                "Cannot connect to Redis at rediss://localhost:6380: TLS handshake failed: "
                "Redis requires a client certificate (tlsv13 alert certificate required; "
                "give --redis-tls-cert and --redis-tls-key); trying again every second"
            ],
        )
        assert store.connectError is not None
        self.assertIn("requires a client certificate", store.connectError)
        # A connection closed for any other reason is no TLS failure.
        store._connectionLost(Failure(ConnectionDone()), None)
        self.assertEqual(
            len([e for e in events if "Cannot connect" in formatEvent(e)]), 1
        )
