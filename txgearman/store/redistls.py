# -*- test-case-name: txgearman.test.test_redistls -*-
"""
TLS to Redis (C{rediss://}): whom to trust, which client certificate to
show, and why a handshake failed, in words.

The files are read when the options are parsed, not when the store first
connects: a wrong file then stops the start with its name, and under
C{twistd -u} the files are read before the privileges are dropped.
"""

from __future__ import annotations

import ssl
from typing import Any

from OpenSSL import SSL, crypto
from service_identity import VerificationError
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.ssl import (
    Certificate,
    PrivateCertificate,
    TLSVersion,
    optionsForClientTLS,
    platformTrust,
    trustRootFromCertificates,
)
from twisted.python.failure import Failure

from txgearman._pem import readCertificates, readKey

__all__ = ["RedisTLS", "RedisTLSError", "describeTLSFailure"]

#: OpenSSL's certificate verification results worth telling an operator
#: apart (X509_V_ERR_*); OpenSSL's own handshake error says only
#: "certificate verify failed".
_VERIFY_ERRORS = {
    2: "its issuer's certificate is unknown",
    9: "it is not valid yet",
    10: "it has expired",
    18: "it is self-signed and not trusted",
    19: "its chain ends in a self-signed authority that is not trusted",
    20: "it is not signed by an authority this server trusts",
    21: "it is not signed by an authority this server trusts",
    62: "it does not name the host",
    64: "it does not name the IP address",
}

#: The verification results that mean no trusted authority signed it.
_UNTRUSTED = frozenset({2, 18, 19, 20, 21})


class RedisTLSError(Exception):
    """
    A C{--redis-tls-*} file cannot be used: the message names the option,
    the file and why.
    """


def _certificates(path: str, option: str) -> list[Certificate]:
    try:
        return readCertificates(path, path)
    except ValueError as e:
        raise RedisTLSError(f"--{option}: {e}") from None


class RedisTLS:
    """
    How the store speaks TLS to Redis: the server's certificate is always
    verified, and must name the host of the C{rediss://} address.

    @ivar caFile: the PEM authorities to trust instead of the system's, or
        C{None} for the platform's trust store.
    @ivar certFile: the client certificate shown to a Redis with
        C{tls-auth-clients}, or C{None}.
    @ivar keyFile: its private key.
    """

    def __init__(
        self,
        caFile: str | None = None,
        certFile: str | None = None,
        keyFile: str | None = None,
    ) -> None:
        """
        Read the files now, so that a wrong one is reported by its option
        and name before anything starts.

        @raise RedisTLSError: a file cannot be read or holds no usable
            certificate or key, or only one of C{certFile} and C{keyFile}
            is given.
        """
        if (certFile is None) != (keyFile is None):
            raise RedisTLSError("--redis-tls-cert and --redis-tls-key go together")
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
        self._trustRoot: Any = None
        self._authorities: list[Certificate] | None = None
        if caFile is not None:
            self._authorities = _certificates(caFile, "redis-tls-ca")
            self._trustRoot = trustRootFromCertificates(self._authorities)
        self._clientCertificate: PrivateCertificate | None = None
        self._chain: list[Any] = []
        if certFile is not None and keyFile is not None:
            chain = _certificates(certFile, "redis-tls-cert")
            try:
                key = readKey(keyFile, keyFile)
            except ValueError as e:
                raise RedisTLSError(f"--redis-tls-key: {e}") from None
            if chain[0].getPublicKey().keyHash() != key.keyHash():
                raise RedisTLSError(
                    f"--redis-tls-key: {keyFile} is not the key of the certificate {certFile}"
                )
            self._clientCertificate = PrivateCertificate.fromCertificateAndKeyPair(
                chain[0], key
            )
            self._chain = [each.original for each in chain[1:]]

    def creatorFor(self, hostname: str) -> IOpenSSLClientConnectionCreator:
        """
        The TLS settings of one connection to C{hostname}: TLS 1.2 or
        later, the certificate checked against the trusted authorities and
        the name.
        """
        trustRoot = self._trustRoot if self._trustRoot is not None else platformTrust()
        extra: dict[str, Any] = {"raiseMinimumTo": TLSVersion.TLSv1_2}
        if self._chain:
            extra["extraCertChain"] = self._chain
        return optionsForClientTLS(
            hostname,
            trustRoot=trustRoot,
            clientCertificate=self._clientCertificate,
            extraCertificateOptions=extra,
        )

    def describeFailure(
        self, failure: Failure, transport: Any, hostname: str
    ) -> str | None:
        """
        Why a connection made with these settings to Redis at C{hostname}
        failed, if TLS is why: see L{describeTLSFailure}.
        """
        return describeTLSFailure(failure, transport, hostname, self._authorities)

    def __str__(self) -> str:
        """
        The settings, for the store's description: file names, no secrets.
        """
        trust = (
            f"trusting {self.caFile}"
            if self.caFile is not None
            else "trusting the system's authorities"
        )
        if self.certFile is not None:
            return f"TLS {trust}, client certificate {self.certFile}"
        return f"TLS {trust}"


def _openSSLReasons(error: BaseException | None) -> list[str]:
    reasons = []
    args = error.args if error is not None else ()
    for each in args[0] if args and isinstance(args[0], list) else []:
        if isinstance(each, tuple) and each:
            reasons.append(str(each[-1]))
    return reasons or [str(error) or type(error).__name__]


def describeTLSFailure(
    failure: Failure,
    transport: Any,
    hostname: str,
    authorities: list[Certificate] | None = None,
) -> str | None:
    """
    Why a TLS connection to Redis at C{hostname} failed, in words an
    operator can act on; C{None} if C{failure} is no TLS failure (a
    connection closed or refused, say).

    @param transport: the connection's TLS transport, if at hand: it has
        the certificates Redis showed, to tell why they were rejected.
    @param authorities: the authorities trusted, or C{None} for the
        system's.
    """
    if failure.check(VerificationError):
        return (
            f"TLS handshake failed: the certificate of Redis does not name {hostname}"
        )
    if not failure.check(SSL.Error):
        return None
    reasons = _openSSLReasons(failure.value)
    joined = "; ".join(reasons)
    if any("certificate verify failed" in reason for reason in reasons):
        code = _verifyResult(transport, authorities)
        why = _VERIFY_ERRORS.get(code, f"OpenSSL's verify error {code}")
        if code < 0:
            why = "OpenSSL did not say why"
        if code in _UNTRUSTED or code < 0:
            why += " (--redis-tls-ca names the authority to trust)"
        return f"TLS handshake failed: the certificate of Redis was rejected: {why}"
    if any("certificate required" in reason for reason in reasons):
        return (
            f"TLS handshake failed: Redis requires a client certificate ({joined}; "
            "give --redis-tls-cert and --redis-tls-key)"
        )
    if any("alert" in reason for reason in reasons):
        return f"TLS handshake failed: Redis refused it ({joined})"
    if any(
        word in reason
        for reason in reasons
        for word in ("wrong version number", "packet length too long", "record layer")
    ):
        return f"TLS handshake failed: Redis does not speak TLS on this port ({joined})"
    return f"TLS failed: {joined}"


def _verifyResult(transport: Any, authorities: list[Certificate] | None) -> int:
    """
    Why OpenSSL rejected the certificate chain Redis showed (an
    X509_V_ERR_* number), found by verifying it again against the same
    authorities: pyOpenSSL does not say; -1 if it cannot be had.
    """
    try:
        chain = transport.getHandle().get_peer_cert_chain() or []
    except Exception:
        return -1
    if not chain:
        return -1
    store = crypto.X509Store()
    if authorities is not None:
        for each in authorities:
            store.add_cert(each.original)
    else:
        paths = ssl.get_default_verify_paths()
        try:
            store.load_locations(paths.cafile, paths.capath)
        except crypto.Error:
            return -1
    try:
        crypto.X509StoreContext(store, chain[0], chain=chain[1:]).verify_certificate()
    except crypto.X509StoreContextError as e:
        return int(e.errors[0])
    return -1
