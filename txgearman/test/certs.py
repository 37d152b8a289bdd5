"""
Certificates made by the tests themselves: a certificate authority, the
server and client certificates it signs, an expired one, and a second
authority that nobody trusts.  Nothing is read from the machine, so the
TLS tests run the same everywhere and cannot pass against a stale file.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CertificateAuthority",
    "IssuedCertificate",
    "CertificateSet",
    "makeCertificates",
]

_DAY = datetime.timedelta(days=1)


def _name(commonName: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, commonName)])


def _keyPEM(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class IssuedCertificate:
    """
    A certificate and its key, written as PEM files.

    @ivar cert: the certificate file.
    @ivar key: the private key file.
    @ivar pem: one file holding both, as some clients want.
    """

    commonName: str
    cert: Path
    key: Path
    pem: Path


class CertificateAuthority:
    """
    A self-signed authority that signs certificates into C{directory}.
    """

    def __init__(self, directory: Path, commonName: str) -> None:
        self.directory = directory
        self.commonName = commonName
        directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(_name(commonName))
            .issuer_name(_name(commonName))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + 30 * _DAY)
            .add_extension(
                x509.BasicConstraints(ca=True, path_length=None), critical=True
            )
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        #: The authority's certificate, as a file to trust.
        self.cert = directory / f"{commonName}.crt"
        self.cert.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        commonName: str,
        server: bool = False,
        expired: bool = False,
        hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
        fileName: str | None = None,
    ) -> IssuedCertificate:
        """
        Sign a certificate for C{commonName}: for a server (naming C{hosts}
        as its subject alternative names) or a client.

        @param expired: make one whose validity ended yesterday.
        @param fileName: the files' stem; C{commonName} by default.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        if expired:
            start, end = now - 10 * _DAY, now - _DAY
        else:
            start, end = now - _DAY, now + 30 * _DAY
        usage = (
            ExtendedKeyUsageOID.SERVER_AUTH
            if server
            else ExtendedKeyUsageOID.CLIENT_AUTH
        )
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(commonName))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(
                x509.BasicConstraints(ca=False, path_length=None), critical=True
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            names: list[x509.GeneralName] = []
            for host in hosts:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    names.append(x509.DNSName(host))
            builder = builder.add_extension(
                x509.SubjectAlternativeName(names), critical=False
            )
        cert = builder.sign(self._key, hashes.SHA256())
        stem = fileName or commonName
        certPath = self.directory / f"{stem}.crt"
        keyPath = self.directory / f"{stem}.key"
        pemPath = self.directory / f"{stem}.pem"
        certBytes = cert.public_bytes(serialization.Encoding.PEM)
        keyBytes = _keyPEM(key)
        certPath.write_bytes(certBytes)
        keyPath.write_bytes(keyBytes)
        keyPath.chmod(0o600)
        pemPath.write_bytes(keyBytes + certBytes)
        pemPath.chmod(0o600)
        return IssuedCertificate(commonName, certPath, keyPath, pemPath)


@dataclass(frozen=True)
class CertificateSet:
    """
    What the TLS tests need, made at once: see L{makeCertificates}.
    """

    ca: CertificateAuthority
    otherCA: CertificateAuthority
    server: IssuedCertificate
    #: Signed by C{ca} for C{localhost}/C{127.0.0.1}, with another key: for
    #: reload tests.
    server2: IssuedCertificate
    web: IssuedCertificate
    worker: IssuedCertificate
    operator: IssuedCertificate
    expired: IssuedCertificate
    #: A client certificate signed by C{otherCA}, named as C{web} is.
    stranger: IssuedCertificate
    #: A server certificate signed by C{otherCA}.
    strangeServer: IssuedCertificate


def makeCertificates(directory: Path) -> CertificateSet:
    """
    Make an authority with a server and the clients C{web}, C{worker} and
    C{operator}, an expired client C{late}, and a second authority with a
    client and a server of its own, under C{directory}.
    """
    ca = CertificateAuthority(directory, "txgearman-test-ca")
    otherCA = CertificateAuthority(directory / "other", "other-ca")
    return CertificateSet(
        ca=ca,
        otherCA=otherCA,
        server=ca.issue("localhost", server=True, fileName="server"),
        server2=ca.issue("localhost", server=True, fileName="server2"),
        web=ca.issue("web"),
        worker=ca.issue("worker"),
        operator=ca.issue("operator"),
        expired=ca.issue("late", expired=True),
        stranger=otherCA.issue("web", fileName="stranger"),
        strangeServer=otherCA.issue(
            "localhost", server=True, fileName="strange-server"
        ),
    )
