"""
TLS, client certificates and the ACL against a real C{twistd gearman}, with
certificates the tests make: the library's client, worker and admin client,
Perl's Gearman::Client and Gearman::Worker with C{use_ssl}, the Python
C{gear} client, C{openssl s_client} for the handshakes, C{curl} for HTTPS.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import gear
from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.fixtures import (
    LOOPBACK,
    TwistdServer,
    freePort,
    missingPeer,
    peerBinary,
    runTool,
    waitFor,
)
from txgearman.client import (
    AdminError,
    GearmanAdminClient,
    GearmanClient,
    GearmanWorker,
    ServerError,
    tlsEndpoint,
)
from txgearman.test.certs import CertificateSet, IssuedCertificate, makeCertificates

ACL = """
[web]
submit = resize, thumb-*
status = resize

[worker]
register = resize, thumb-*
grab = resize, thumb-*

[operator]
admin = read, cancel job

[anonymous]
admin = version
"""

_TIMEOUT = 10.0
_LISTINGS = (b"status", b"workers", b"acl", b"show", b"prioritystatus", b"settings")


class TLSServer(TwistdServer):
    """A C{twistd gearman} that speaks TLS and asks for client certificates."""

    def __init__(
        self, directory: Path, certs: CertificateSet, extraArgs: list[str]
    ) -> None:
        self.certs = certs
        args = [
            "--tls-cert",
            str(certs.server.cert),
            "--tls-key",
            str(certs.server.key),
            "--tls-ca",
            str(certs.ca.cert),
            *extraArgs,
        ]
        super().__init__(directory, args)

    def context(self, client: IssuedCertificate | None) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(str(self.certs.ca.cert))
        if client is not None:
            context.load_cert_chain(str(client.cert), str(client.key))
        return context

    def connectTLS(self, client: IssuedCertificate | None) -> ssl.SSLSocket:
        raw = socket.create_connection((LOOPBACK, self.port), timeout=_TIMEOUT)
        return self.context(client).wrap_socket(raw, server_hostname="localhost")

    def answers(self) -> bool:
        try:
            with self.connectTLS(self.certs.operator) as s:
                s.sendall(b"version\n")
                return s.recv(100).startswith(b"OK ")
        except (OSError, ssl.SSLError):
            return False

    def admin(self, line: bytes, client: IssuedCertificate | None = None) -> bytes:  # type: ignore[override]
        """One admin line over TLS, as C{client} (the operator by default)."""
        listing = line.split(b" ", 1)[0] in _LISTINGS
        with self.connectTLS(client or self.certs.operator) as s:
            s.sendall(line + b"\n")
            reply = b""
            while True:
                if reply.startswith(b"ERR") and reply.endswith(b"\n"):
                    return reply
                if listing and (reply == b".\n" or reply.endswith(b"\n.\n")):
                    return reply
                if not listing and reply.endswith(b"\n"):
                    return reply
                chunk = s.recv(65536)
                if not chunk:
                    return reply
                reply += chunk


def packet(ptype: int, *args: bytes) -> bytes:
    body = b"\0".join(args)
    return b"\0REQ" + ptype.to_bytes(4, "big") + len(body).to_bytes(4, "big") + body


def readPacket(s: ssl.SSLSocket) -> tuple[int, bytes]:
    header = b""
    while len(header) < 12:
        chunk = s.recv(12 - len(header))
        if not chunk:
            raise ConnectionError(f"closed after {header!r}")
        header += chunk
    size = int.from_bytes(header[8:12], "big")
    body = b""
    while len(body) < size:
        body += s.recv(size - len(body))
    return int.from_bytes(header[4:8], "big"), body


class _TLSCase:
    """One server per test, with the ACL above, HTTP and an admin socket."""

    server: TLSServer
    certs: CertificateSet
    aclPath: Path
    socketPath: Path
    httpPort: int

    def startTLS(
        self, testCase: SynchronousTestCase, *extra: str, acl: bool = True
    ) -> None:
        directory = Path(testCase.mktemp()).resolve()
        directory.mkdir(parents=True)
        self.certs = makeCertificates(directory / "certs")
        self.aclPath = directory / "acl.ini"
        self.aclPath.write_text(ACL)
        self.socketPath = directory / "admin.sock"
        self.httpPort = freePort()
        self.server = TLSServer(
            directory / "server",
            self.certs,
            [
                *(["--acl", str(self.aclPath)] if acl else []),
                "--admin-socket",
                str(self.socketPath),
                "--http",
                f"tcp:{self.httpPort}:interface={LOOPBACK}",
                "--http-submit",
                "--tls-handshake-timeout",
                "2",
                *extra,
            ],
        )
        testCase.addCleanup(self.server.stop)
        self.server.start()


class HandshakeTests(_TLSCase, SynchronousTestCase):
    """
    The handshake cases with C{openssl s_client}: who gets in, who is
    refused, and that refusals disturb nobody else.
    """

    def setUp(self) -> None:
        self.openssl = peerBinary("openssl", "openssl")
        self.startTLS(self)

    def sClient(self, *args: str, data: bytes = b"version\n") -> tuple[bytes, bytes]:
        """
        Send C{data} through C{openssl s_client} and return the first line
        of the answer (empty when refused) and what s_client said.
        """
        process = subprocess.Popen(
            [
                self.openssl,
                "s_client",
                "-quiet",
                "-connect",
                f"{LOOPBACK}:{self.server.port}",
                "-servername",
                "localhost",
                "-verify_return_error",
                "-CAfile",
                str(self.certs.ca.cert),
                *args,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(data)
            process.stdin.flush()
        except BrokenPipeError:
            pass
        # A refused handshake ends the process; an accepted one answers a
        # line and stays connected until it is told to go.
        line = process.stdout.readline()
        process.kill()
        _, stderr = process.communicate(timeout=_TIMEOUT)
        return line, stderr

    def clientArgs(self, client: IssuedCertificate) -> list[str]:
        return ["-cert", str(client.cert), "-key", str(client.key)]

    def test_clientCertificate(self) -> None:
        """A certificate the authority signed gets in; its identity is judged."""
        line, said = self.sClient(*self.clientArgs(self.certs.operator))
        self.assertEqual(line, b"OK 0.1.0\n", said)
        line, said = self.sClient(*self.clientArgs(self.certs.web))
        self.assertEqual(line, b"ERR PERMISSION_DENIED version\r\n", said)

    def test_refused(self) -> None:
        """
        No certificate, an expired one, one from another authority, a
        server's certificate, or TLS 1.1: each is refused, and the log says
        why; a worker connected meanwhile is served throughout.
        """
        worker = self.server.connectTLS(self.certs.worker)
        self.addCleanup(worker.close)
        worker.sendall(packet(16, b"before"))
        self.assertEqual(readPacket(worker), (17, b"before"))
        cases = [
            ([], "TLS handshake with 127.0.0.1 failed"),
            (
                self.clientArgs(self.certs.expired),
                "client certificate 'late' refused: it has expired",
            ),
            (
                self.clientArgs(self.certs.stranger),
                "client certificate 'web' refused: its issuer is not the authority",
            ),
            (
                self.clientArgs(self.certs.server),
                "client certificate 'localhost' refused: it is not meant for clients",
            ),
            (["-tls1_1", *self.clientArgs(self.certs.operator)], "TLS handshake with"),
        ]
        for args, logged in cases:
            line, said = self.sClient(*args)
            self.assertEqual(line, b"", (args, said))
            waitFor(
                lambda logged=logged: logged in self.server.log(),  # type: ignore[misc]
                _TIMEOUT,
                what=logged,
            )
            worker.sendall(packet(16, b"still"))
            self.assertEqual(readPacket(worker), (17, b"still"))

    def test_wrongServer(self) -> None:
        """A client that trusts another authority refuses this server."""
        result = runTool(
            [
                self.openssl,
                "s_client",
                "-connect",
                f"{LOOPBACK}:{self.server.port}",
                "-verify_return_error",
                "-CAfile",
                str(self.certs.otherCA.cert),
            ],
            timeout=_TIMEOUT,
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(b"certificate verify failed", result.stderr)

    def test_plaintext(self) -> None:
        """A plaintext Gearman client or admin line is told, and closed."""
        with socket.create_connection(
            (LOOPBACK, self.server.port), timeout=_TIMEOUT
        ) as s:
            s.sendall(packet(16, b"x"))
            self.assertEqual(
                s.recv(100), b"\0RES\0\0\0\x13\0\0\0!TLS_REQUIRED\0This port speaks TLS"
            )
            self.assertEqual(s.recv(100), b"")
        with socket.create_connection(
            (LOOPBACK, self.server.port), timeout=_TIMEOUT
        ) as s:
            s.sendall(b"status\n")
            self.assertEqual(s.recv(100), b"ERR TLS_REQUIRED This+port+speaks+TLS\r\n")

    def test_handshakeTimeout(self) -> None:
        """A connection that never starts its handshake is dropped."""
        with socket.create_connection(
            (LOOPBACK, self.server.port), timeout=_TIMEOUT
        ) as s:
            began = time.monotonic()
            try:
                self.assertEqual(s.recv(100), b"")
            except ConnectionResetError:
                pass
            self.assertLess(time.monotonic() - began, 5)
        waitFor(lambda: "no TLS handshake within 2 s" in self.server.log(), _TIMEOUT)

    def test_reloadCertificate(self) -> None:
        """
        SIGHUP reloads the certificate for new connections, and open ones
        stay up.
        """
        worker = self.server.connectTLS(self.certs.worker)
        self.addCleanup(worker.close)
        certs = self.certs
        # The server reads the files named on its command line again.
        certs.server.cert.write_bytes(certs.server2.cert.read_bytes())
        certs.server.key.write_bytes(certs.server2.key.read_bytes())
        self.server.signal(signal.SIGHUP)
        waitFor(lambda: "TLS certificates reloaded" in self.server.log(), _TIMEOUT)
        with self.server.connectTLS(certs.operator) as s:
            seen = s.getpeercert(binary_form=True)
        expected = ssl.PEM_cert_to_DER_cert(certs.server2.cert.read_text())
        self.assertEqual(seen, expected)
        worker.sendall(packet(16, b"kept"))
        self.assertEqual(readPacket(worker), (17, b"kept"))


class ACLTests(_TLSCase, SynchronousTestCase):
    """The ACL over real TLS connections, the admin socket, HTTPS, reloads."""

    def setUp(self) -> None:
        self.startTLS(self)

    def test_submitAndWork(self) -> None:
        """
        The web tier submits, a worker that may grab gets the job; a denied
        submit is answered with ERROR PERMISSION_DENIED.
        """
        web = self.server.connectTLS(self.certs.web)
        self.addCleanup(web.close)
        web.sendall(packet(18, b"resize", b"", b"img"))
        ptype, handle = readPacket(web)
        self.assertEqual(ptype, 8)
        web.sendall(packet(18, b"crop", b"", b"img"))
        self.assertEqual(readPacket(web), (19, b"PERMISSION_DENIED\0submit crop"))
        worker = self.server.connectTLS(self.certs.worker)
        self.addCleanup(worker.close)
        worker.sendall(packet(1, b"resize") + packet(9))
        ptype, body = readPacket(worker)
        self.assertEqual((ptype, body), (11, handle + b"\0resize\0img"))
        web.sendall(packet(15, handle))
        self.assertEqual(readPacket(web)[0], 20)
        self.assertIn("Denied web at 127.0.0.1: submit crop", self.server.log())

    def test_adminSocket(self) -> None:
        """
        The admin socket takes every admin command, mode 0600; it shows the
        network ports' rules.
        """
        mode = os.stat(self.socketPath).st_mode & 0o777
        self.assertEqual(mode, 0o600)
        web = self.server.connectTLS(self.certs.web)
        self.addCleanup(web.close)
        web.sendall(packet(18, b"resize", b"u", b"img"))
        _, handle = readPacket(web)
        self.assertEqual(
            self.server.admin(b"cancel job " + handle, self.certs.web),
            b"ERR PERMISSION_DENIED cancel+job\r\n",
        )
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(_TIMEOUT)
            s.connect(str(self.socketPath))
            s.sendall(b"maxqueue resize 5\ncancel job " + handle + b"\nacl list\n")
            reply = b""
            while not reply.endswith(b"\n.\n"):
                reply += s.recv(65536)
        self.assertTrue(
            reply.startswith(b"OK\r\nOK\r\nanonymous\tadmin=version\n"), reply
        )
        self.assertEqual(self.server.admin(b"status"), b"resize\t0\t0\t0\n.\n")

    def test_reloadNarrows(self) -> None:
        """
        SIGHUP reloads the ACL: an open worker connection loses the
        function it may no longer grab, and an open client's next submit is
        judged by the new rules.
        """
        worker = self.server.connectTLS(self.certs.worker)
        self.addCleanup(worker.close)
        worker.sendall(packet(1, b"resize") + packet(16, b"ok"))
        self.assertEqual(readPacket(worker), (17, b"ok"))
        web = self.server.connectTLS(self.certs.web)
        self.addCleanup(web.close)
        narrowed = ACL.replace("submit = resize, thumb-*", "submit = thumb-*")
        self.aclPath.write_text(
            narrowed.replace("grab = resize, thumb-*", "grab = thumb-*")
        )
        self.server.signal(signal.SIGHUP)
        waitFor(lambda: "ACL reloaded" in self.server.log(), _TIMEOUT)
        web.sendall(packet(18, b"resize", b"", b"img"))
        self.assertEqual(readPacket(web), (19, b"PERMISSION_DENIED\0submit resize"))
        web.sendall(packet(18, b"thumb-a", b"", b"img"))
        self.assertEqual(readPacket(web)[0], 8)
        worker.sendall(packet(9))
        self.assertEqual(readPacket(worker), (10, b""))
        self.assertEqual(self.server.admin(b"status"), b"thumb-a\t1\t0\t0\n.\n")

    def test_https(self) -> None:
        """
        HTTP uses the same TLS: submission needs C{submit} (403 otherwise),
        the metrics need C{status}; a plain http:// request is told why.
        """
        curl = peerBinary("curl", "curl")
        base = f"https://localhost:{self.httpPort}"

        def request(client: IssuedCertificate, *args: str) -> tuple[str, str]:
            result = runTool(
                [
                    curl,
                    "-s",
                    "--resolve",
                    f"localhost:{self.httpPort}:{LOOPBACK}",
                    "--cacert",
                    str(self.certs.ca.cert),
                    "--cert",
                    str(client.cert),
                    "--key",
                    str(client.key),
                    "-w",
                    "\n%{http_code}",
                    *args,
                ]
            )
            body, _, code = result.stdout.decode().rpartition("\n")
            return code, body

        submit = [
            "-X",
            "POST",
            "--data-binary",
            "x",
            "-H",
            "X-Gearman-Background: true",
        ]
        self.assertEqual(request(self.certs.web, *submit, f"{base}/resize")[0], "202")
        self.assertEqual(
            request(self.certs.worker, *submit, f"{base}/resize"),
            ("403", "PERMISSION_DENIED submit resize\n"),
        )
        self.assertEqual(
            request(self.certs.web, f"{base}/metrics"),
            ("403", "PERMISSION_DENIED admin status\n"),
        )
        code, body = request(self.certs.operator, f"{base}/metrics")
        self.assertEqual(code, "200")
        self.assertIn('gearman_jobs{function="resize"} 1.0', body)
        self.assertEqual(request(self.certs.web, f"{base}/livez")[0], "200")
        # As GET_STATUS: status on the job's function.
        self.assertEqual(
            request(self.certs.web, f"{base}/api/jobs/H:nothing:1")[0], "404"
        )
        self.assertEqual(
            request(self.certs.operator, f"{base}/api/jobs/H:nothing:1"),
            ("403", '{"error":"PERMISSION_DENIED status"}\n'),
        )
        self.assertEqual(request(self.certs.operator, f"{base}/api/status")[0], "200")
        self.assertEqual(request(self.certs.web, f"{base}/api/workers")[0], "403")
        plain = runTool([curl, "-s", f"http://{LOOPBACK}:{self.httpPort}/livez"])
        self.assertEqual(plain.stdout, b"This port speaks HTTPS: use https://\n")


class PeerTests(_TLSCase, SynchronousTestCase):
    """Third-party clients with their TLS options."""

    def setUp(self) -> None:
        self.startTLS(self)

    def test_perl(self) -> None:
        """Perl's Gearman::Client and Gearman::Worker with use_ssl."""
        perl = peerBinary("perl", "perl")
        probe = runTool(
            [perl, "-MGearman::Client", "-MGearman::Worker", "-MIO::Socket::SSL", "-e1"]
        )
        if probe.returncode != 0:
            missingPeer(
                "Perl has no Gearman::Client or IO::Socket::SSL "
                "(Debian packages libgearman-client-perl, libio-socket-ssl-perl)"
            )

        def server(who: IssuedCertificate) -> str:
            return (
                f"{{host => '{LOOPBACK}', port => {self.server.port}, use_ssl => 1, "
                f"ca_file => '{self.certs.ca.cert}', cert_file => '{who.cert}', "
                f"key_file => '{who.key}'}}"
            )

        client = (
            "use Gearman::Client; "
            f"my $c = Gearman::Client->new(job_servers => [{server(self.certs.web)}]); "
            "my $h = $c->dispatch_background('resize', 'perl-data', {uniq => 'p1'}); "
            'print defined $h ? "ok\\n" : "failed\\n"; '
            # Gearman::Client dies on any ERROR packet, as it does for
            # gearmand's: the denial arrives as its message.
            "eval { $c->dispatch_background('crop', 'x') }; "
            'print $@ =~ /PERMISSION_DENIED\\x00submit crop/ ? "crop refused\\n" : "crop: $@\\n";'
        )
        result = runTool([perl, "-e", client], timeout=30)
        self.assertEqual(result.stdout, b"ok\ncrop refused\n", result.stderr)
        self.assertEqual(self.server.admin(b"status"), b"resize\t1\t0\t0\n.\n")
        worker = (
            "use Gearman::Worker; "
            f"my $w = Gearman::Worker->new(job_servers => [{server(self.certs.worker)}]); "
            "$w->register_function(resize => sub { print 'got ', $_[0]->arg, \"\\n\"; 'r' }); "
            "$w->work(stop_if => sub { $_[1] > 0 });"
        )
        result = runTool([perl, "-e", worker], timeout=30)
        self.assertEqual(result.stdout, b"got perl-data\n", result.stderr)

    def test_gear(self) -> None:
        """The Python gear client with its TLS options."""
        certs = self.certs
        client = gear.Client("gear-tls")
        self.addCleanup(client.shutdown)
        client.addServer(
            LOOPBACK,
            self.server.port,
            ssl_key=str(certs.web.key),
            ssl_cert=str(certs.web.cert),
            ssl_ca=str(certs.ca.cert),
        )
        client.waitForServer(timeout=_TIMEOUT)
        job = gear.TextJob("resize", "gear-data", unique="g1")
        client.submitJob(job, background=True, timeout=_TIMEOUT)
        waitFor(lambda: job.handle is not None, _TIMEOUT, what="JOB_CREATED")
        self.assertEqual(self.server.admin(b"status"), b"resize\t1\t0\t0\n.\n")


class LibraryTests(_TLSCase, TestCase):
    """The library's client, worker and admin client over TLS."""

    def setUp(self) -> None:
        self.startTLS(self)

    def endpoint(self, who: IssuedCertificate, ca: Path | None = None) -> Any:
        return tlsEndpoint(
            reactor,
            f"{LOOPBACK}:{self.server.port}",
            caFile=str(ca or self.certs.ca.cert),
            certFile=str(who.cert),
            keyFile=str(who.key),
            hostname="localhost",
        )

    async def test_clientAndWorker(self) -> None:
        """A job submitted and run over TLS; a denied submit fails clearly."""
        worker = GearmanWorker(
            [self.endpoint(self.certs.worker)], reactor, stopTimeout=5.0
        )
        worker.register("resize", lambda job: job.data[::-1])
        worker.startService()
        self.addCleanup(worker.stopService)
        client = GearmanClient(
            [self.endpoint(self.certs.web)], reactor=reactor, timeout=_TIMEOUT
        )
        client.startService()
        self.addCleanup(client.stopService)
        self.assertEqual(await client.submit("resize", b"abc"), b"cba")
        with self.assertRaises(ServerError) as caught:
            await client.submit("crop", b"abc")
        self.assertIn("PERMISSION_DENIED", str(caught.exception))

    async def test_admin(self) -> None:
        admin = GearmanAdminClient(self.endpoint(self.certs.operator), reactor=reactor)
        self.addCleanup(admin.close)
        self.assertEqual(await admin.version(), "0.1.0")
        denied = GearmanAdminClient(self.endpoint(self.certs.web), reactor=reactor)
        self.addCleanup(denied.close)
        with self.assertRaises(AdminError) as caught:
            await denied.dropFunction("resize")
        self.assertIn("PERMISSION_DENIED", str(caught.exception))

    async def test_verifiesServer(self) -> None:
        """The library refuses a server its authority did not sign."""
        admin = GearmanAdminClient(
            self.endpoint(self.certs.operator, ca=self.certs.otherCA.cert),
            reactor=reactor,
        )
        self.addCleanup(admin.close)
        with self.assertRaises(Exception) as caught:
            await admin.version()
        self.assertIn(
            "the connection was lost (certificate verify failed)", str(caught.exception)
        )


def _hostile() -> Any:
    """
    benchmarks/hostile.py, whose packet generators the plain-port fuzz run
    uses (it imports its siblings by their bare names).
    """
    import importlib
    import sys

    folder = str(Path(__file__).resolve().parent.parent / "benchmarks")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module("hostile")


class FuzzTests(_TLSCase, SynchronousTestCase):
    """
    The fuzz run of benchmarks/hostile.py (its packets: random contents,
    unknown and response-only types, wrong argument counts, oversized and
    truncated bodies, long admin lines), sent through TLS connections with
    a client certificate, while an honest connection keeps being answered.
    """

    def setUp(self) -> None:
        self.startTLS(self, acl=False)

    def test_fuzz(self) -> None:
        import random

        hostile = _hostile()
        rng = random.Random(15)
        pool = [hostile.survivable(rng) for _ in range(2048)]
        killers = [hostile.killer(rng) for _ in range(256)]
        honest = self.server.connectTLS(self.certs.operator)
        self.addCleanup(honest.close)
        packets = closed = 0
        for burst in range(300):
            with self.server.connectTLS(self.certs.worker) as s:
                chosen = rng.choices(pool, k=rng.randint(16, 128))
                data = b"".join(p for _, p in chosen)
                packets += len(chosen)
                if rng.random() < 0.25:
                    _, extra, _ = rng.choice(killers)
                    data += extra
                    packets += 1
                try:
                    s.sendall(data)
                    s.settimeout(0.05)
                    while s.recv(262144):
                        pass
                except (TimeoutError, ssl.SSLError, OSError):
                    pass
                else:
                    closed += 1
            honest.sendall(packet(16, b"%d" % burst))
            self.assertEqual(readPacket(honest), (17, b"%d" % burst))
        self.assertGreater(packets, 10_000)
        self.assertGreater(closed, 10)
        self.assertTrue(self.server.running())
        self.assertEqual(self.server.admin(b"version"), b"OK 0.1.0\n")
        log = self.server.log()
        self.assertNotIn("Traceback", log)
        self.assertNotIn("Unhandled", log)
