# -*- test-case-name: txgearman.test.test_tls -*-
"""
TLS for the server's listeners: certificates read from files, client
certificates required when an authority is given, reloaded in place, and
handshakes that do not finish in time dropped.

Twisted's C{ssl:} strport can neither require nor verify a client
certificate, so the listeners wrap any stream endpoint (C{--port}'s
description, TCP or otherwise) in L{TLSServerEndpoint}, with a context
built here by L{CertificateOptions}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from OpenSSL import SSL
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IListeningPort,
    IOpenSSLServerConnectionCreator,
    IProtocolFactory,
    IReactorTime,
    ISSLTransport,
    IStreamServerEndpoint,
)
from twisted.internet.protocol import connectionDone
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    TLSVersion,
    trustRootFromCertificates,
)
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from txgearman._pem import readCertificates, readKey

__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "TLSFilesError",
    "ServerTLS",
    "TLSServerEndpoint",
    "peerIdentity",
]

#: How long a connection may take to finish its TLS handshake, in seconds:
#: a peer that opens a connection and says nothing (or plaintext that
#: never completes a record) would otherwise hold it forever.
DEFAULT_HANDSHAKE_TIMEOUT = 10.0

#: The first byte of a TLS record that carries a handshake message.
_HANDSHAKE_RECORD = 0x16


#: What to answer a peer speaking plaintext to a TLS port, given its first
#: bytes.
PlaintextReply = Callable[[bytes], bytes | None]


class TLSFilesError(Exception):
    """
    A certificate, key or authority file cannot be used: the message names
    the file and why.
    """


def _certificates(path: str, what: str) -> list[Certificate]:
    try:
        return readCertificates(path, f"the {what} {path}")
    except ValueError as e:
        raise TLSFilesError(str(e)) from None


def _contextOptions(
    certFile: str, keyFile: str, caFile: str | None
) -> CertificateOptions:
    """
    Read the files and build the options of every new connection: TLS 1.2
    or later; with C{caFile}, a client certificate it signed is required.
    """
    chain = _certificates(certFile, "certificate")
    try:
        key = readKey(keyFile, f"the key {keyFile}")
    except ValueError as e:
        raise TLSFilesError(str(e)) from None
    leaf = chain[0]
    if leaf.getPublicKey().keyHash() != key.keyHash():
        raise TLSFilesError(
            f"the key {keyFile} does not belong to the certificate {certFile}"
        )
    extra: dict[str, Any] = {}
    if caFile is not None:
        extra["trustRoot"] = trustRootFromCertificates(
            _certificates(caFile, "authority")
        )
    return CertificateOptions(
        privateKey=key.original,
        certificate=leaf.original,
        extraCertChain=[c.original for c in chain[1:]],
        raiseMinimumTo=TLSVersion.TLSv1_2,
        **extra,
    )


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLS:
    """
    The TLS settings of a server's listeners, from files that L{reload}
    reads again: new connections get the new certificates, the open ones
    keep theirs and are not dropped.

    @ivar certFile: the certificate (and any intermediates after it).
    @ivar keyFile: its private key.
    @ivar caFile: the authority that signs client certificates, or C{None}
        to ask for none.
    @ivar handshakeTimeout: seconds a handshake may take.
    """

    log = Logger()

    def __init__(
        self,
        certFile: str,
        keyFile: str,
        caFile: str | None = None,
        handshakeTimeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        requireClientCertificate: bool = True,
    ) -> None:
        """
        Read the files now, so that a wrong one stops the start with its
        name rather than failing the first connection.

        @param requireClientCertificate: with C{caFile}, whether to require
            and verify a client certificate; a listener may be told not to
            (see L{withoutClientCertificates}).
        @raise TLSFilesError: a file cannot be used.
        """
        self.certFile = certFile
        self.keyFile = keyFile
        self.caFile = caFile if requireClientCertificate else None
        self.handshakeTimeout = handshakeTimeout
        self._context: SSL.Context = self._load()

    @property
    def verifiesClients(self) -> bool:
        """Whether connections must present a client certificate."""
        return self.caFile is not None

    def _load(self) -> SSL.Context:
        return _contextOptions(self.certFile, self.keyFile, self.caFile).getContext()

    def withoutClientCertificates(self) -> ServerTLS:
        """
        The same certificate for a listener that asks for no client
        certificate (an HTTP port for health probes, say).
        """
        return ServerTLS(
            self.certFile,
            self.keyFile,
            None,
            self.handshakeTimeout,
        )

    def reload(self) -> bool:
        """
        Read the files again for the connections to come.  A file that
        cannot be used now is logged, and the certificates in force stay.

        @return: whether the new files were taken.
        """
        try:
            context = self._load()
        except TLSFilesError as e:
            self.log.error(
                "TLS certificates not reloaded, the old ones stay in force: {error}",
                error=str(e),
            )
            return False
        self._context = context
        self.log.info(
            "TLS certificates reloaded from {cert} and {key}",
            cert=self.certFile,
            key=self.keyFile,
        )
        return True

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        """
        A connection with the context in force now, noting why a client
        certificate was refused on C{tlsProtocol} for the log.
        """
        context = self._context
        connection = SSL.Connection(context, None)
        if self.caFile is not None:

            def verified(conn: Any, cert: Any, errno: int, depth: int, ok: int) -> bool:
                if not ok:
                    tlsProtocol.verifyError = (errno, cert.get_subject().commonName)
                return bool(ok)

            connection.set_verify(context.get_verify_mode(), verified)
        return connection

    def describe(self) -> str:
        """The settings, for C{settings} and the start-up line."""
        if self.caFile is None:
            return f"on ({self.certFile})"
        return f"on ({self.certFile}), client certificates from {self.caFile} required"


class _TimedTLSProtocol(TLSMemoryBIOProtocol):
    """
    A TLS connection dropped if its handshake has not finished within the
    factory's timeout.
    """

    factory: _TimedTLSFactory
    transport: Any
    _handshakeTimer: Any = None
    _heardFrom = False
    #: Why the client's certificate was refused: OpenSSL's error number,
    #: and the subject's common name.
    verifyError: tuple[int, str | None] | None = None

    def makeConnection(self, transport: Any) -> None:
        factory = self.factory
        self._handshakeTimer = factory.clock.callLater(
            factory.handshakeTimeout, self._handshakeTimedOut
        )
        super().makeConnection(transport)
        self._checkHandshakeTimer()

    def dataReceived(self, data: bytes) -> None:
        if not self._heardFrom and data:
            self._heardFrom = True
            # A TLS connection opens with a handshake record (0x16): anything
            # else is a peer speaking plaintext to a TLS port, told so in its
            # own protocol rather than left with a reset it cannot explain.
            if data[0] != _HANDSHAKE_RECORD:
                self._refusePlaintext(data)
                return
        super().dataReceived(data)
        if self._handshakeTimer is not None:
            # Only until the handshake is done: not a call per read after.
            self._checkHandshakeTimer()

    def _refusePlaintext(self, data: bytes) -> None:
        timer, self._handshakeTimer = self._handshakeTimer, None
        if timer is not None:
            timer.cancel()
        factory = self.factory
        factory.log.info(
            "Closing the connection from {host}: plaintext on a TLS port",
            host=getattr(self.transport.getPeer(), "host", "-"),
        )
        reply = factory.plaintextReply(data) if factory.plaintextReply else None
        if reply:
            self.transport.write(reply)
        self.transport.loseConnection()

    def _checkHandshakeTimer(self) -> None:
        timer = self._handshakeTimer
        if timer is not None and self._handshakeDone:
            self._handshakeTimer = None
            timer.cancel()

    def _handshakeTimedOut(self) -> None:
        self._handshakeTimer = None
        peer = self.transport.getPeer() if self.transport is not None else None
        self.factory.log.info(
            "Dropping the connection from {host}: no TLS handshake within {timeout:g} s",
            host=getattr(peer, "host", "-"),
            timeout=self.factory.handshakeTimeout,
        )
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        timer, self._handshakeTimer = self._handshakeTimer, None
        if timer is not None:
            timer.cancel()
            # Ended before its handshake did: say why, once, as a plaintext
            # client or a refused certificate is an operator's question.
            why = _handshakeError(self._reason or reason)
            if self.verifyError is not None:
                errno, subject = self.verifyError
                why = (
                    f"client certificate {subject!r} refused: "
                    f"{_VERIFY_ERRORS.get(errno, f'verification error {errno}')}"
                )
            self.factory.log.info(
                "TLS handshake with {host} failed: {why}",
                host=getattr(self.transport.getPeer(), "host", "-"),
                why=why,
            )
        super().connectionLost(reason)


#: OpenSSL's X509_V_ERR_* numbers a client certificate meets most, in words.
_VERIFY_ERRORS = {
    2: "its issuer is not the authority given with --tls-ca",
    9: "it is not valid yet",
    10: "it has expired",
    18: "it is self-signed",
    19: "its chain ends in an authority other than --tls-ca's",
    20: "its issuer is not the authority given with --tls-ca",
    21: "it cannot be verified",
    26: "it is not meant for clients",
}


def _handshakeError(reason: Failure) -> str:
    """A readable cause of a failed handshake."""
    value = reason.value
    if isinstance(value, SSL.Error) and value.args and isinstance(value.args[0], list):
        reasons = [entry[-1] for entry in value.args[0] if entry]
        if reasons:
            return ", ".join(str(r) for r in reasons)
    return reason.getErrorMessage() or getattr(reason.type, "__name__", "error")


class _TimedTLSFactory(TLSMemoryBIOFactory):
    protocol = _TimedTLSProtocol
    log = Logger()

    def __init__(
        self,
        tls: ServerTLS,
        wrappedFactory: IProtocolFactory,
        clock: IReactorTime,
        plaintextReply: PlaintextReply | None,
    ) -> None:
        super().__init__(tls, False, wrappedFactory, clock)
        self.clock = clock
        self.handshakeTimeout = tls.handshakeTimeout
        self.plaintextReply = plaintextReply


@implementer(IStreamServerEndpoint)
class TLSServerEndpoint:
    """
    Any stream endpoint, its connections wrapped in TLS by L{ServerTLS}.
    """

    def __init__(
        self,
        wrapped: IStreamServerEndpoint,
        tls: ServerTLS,
        clock: IReactorTime,
        plaintextReply: PlaintextReply | None = None,
    ) -> None:
        """
        @param plaintextReply: given the first bytes of a peer that speaks
            plaintext, what to answer it (in its protocol) before closing.
        """
        self.wrapped = wrapped
        self.tls = tls
        self.clock = clock
        self.plaintextReply = plaintextReply

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        return self.wrapped.listen(
            _TimedTLSFactory(self.tls, protocolFactory, self.clock, self.plaintextReply)
        )

    def __repr__(self) -> str:
        return f"<TLS over {self.wrapped!r}>"


def peerIdentity(transport: Any) -> str | None:
    """
    The common name of the certificate the peer presented on C{transport},
    or C{None} on a plain connection or one without a certificate.
    """
    if transport is None or not ISSLTransport.providedBy(transport):
        return None
    certificate: Any = transport.getPeerCertificate()
    if certificate is None:
        return None
    commonName: str | None = certificate.get_subject().commonName
    return commonName
