"""
Certificates read from PEM bytes, for the server's listeners, the Redis
store and the client library alike.  Imports nothing of txgearman, so that
each of them may.
"""

from __future__ import annotations

import re
from pathlib import Path

from OpenSSL import SSL, crypto
from twisted.internet.ssl import Certificate, KeyPair

__all__ = ["loadCertificates", "readCertificates", "readKey"]

_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL
)


def loadCertificates(data: bytes) -> list[Certificate]:
    """
    Every PEM certificate in C{data}, in order (a chain, or a bundle of
    authorities).

    @raise ValueError: there is none, or one is not a certificate; the
        message completes "the file ...".
    """
    found = _PEM_CERTIFICATE.findall(data)
    if not found:
        raise ValueError("holds no PEM certificate")
    try:
        return [Certificate.loadPEM(pem) for pem in found]
    except (SSL.Error, crypto.Error) as e:
        raise ValueError(f"is not a valid certificate: {e}") from None


def _read(path: str, label: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read {label}: {e.strerror}") from None


def readCertificates(path: str, label: str) -> list[Certificate]:
    """
    Every certificate in the PEM file C{path}.

    @param label: how the file is named in the error (C{"the certificate
        /etc/x.pem"}).
    @raise ValueError: it cannot be read, holds no certificate, or one is
        not valid; the message names it by C{label}.
    """
    data = _read(path, label)
    try:
        return loadCertificates(data)
    except ValueError as e:
        raise ValueError(f"{label} {e}") from None


def readKey(path: str, label: str) -> KeyPair:
    """
    The private key in the PEM file C{path}.

    @raise ValueError: as L{readCertificates}.
    """
    data = _read(path, label)
    try:
        return KeyPair.load(data, SSL.FILETYPE_PEM)
    except (SSL.Error, crypto.Error):
        raise ValueError(f"{label} holds no PEM private key") from None
