"""
Certificates read from PEM bytes, for the server's listeners, the Redis
store and the client library alike.  Imports nothing of txgearman, so that
each of them may.
"""

from __future__ import annotations

import re

from OpenSSL import SSL, crypto
from twisted.internet.ssl import Certificate

__all__ = ["loadCertificates"]

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
