"""
System tests: C{twistd gearman --redis rediss://...} against a real
redis-server that speaks only TLS, with certificates the tests make, and
the Redis password given by a file or the environment rather than on the
command line.

What is checked is what an operator sees: jobs stored and replayed over
TLS, a server that cannot verify Redis (or that Redis does not accept)
exiting with status 1 within C{--redis-start-timeout} and one clear log
line, and the password in neither C{ps} nor the log.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from twisted.trial.unittest import TestCase

from tests.fixtures import (
    LOOPBACK,
    TLSRedisServer,
    TwistdServer,
    connectRaw,
    startTLSRedis,
    waitFor,
)
from tests.test_redis import Worker, jobKeys
from txgearman.store.redispassword import PASSWORD_ENVIRONMENT
from txgearman.test.certs import CertificateSet, IssuedCertificate, makeCertificates

#: The Redis password: long and odd enough never to show up by chance.
PASSWORD = "tls-test-password-7f3a9c"
#: Room for a loaded machine in the timing assertions.
SLACK = 10.0


class _Certs:
    """One set of certificates for every test: making them takes a while."""

    made: CertificateSet | None = None
    elsewhere: IssuedCertificate | None = None

    @classmethod
    def get(cls, testCase: TestCase) -> CertificateSet:
        if cls.made is None:
            cls.made = makeCertificates(Path(testCase.mktemp()).resolve())
            # A server certificate of the right authority for another host.
            cls.elsewhere = cls.made.ca.issue(
                "elsewhere.example",
                server=True,
                hosts=("elsewhere.example",),
                fileName="elsewhere",
            )
        return cls.made


class _Twistd(TwistdServer):
    """
    A L{TwistdServer} whose environment holds the Redis password only if
    the test puts it there.
    """

    def __init__(
        self, *args: object, environ: dict[str, str] | None = None, **kw: object
    ):
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.extraEnvironment = environ or {}

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env.pop(PASSWORD_ENVIRONMENT, None)
        env.update(self.extraEnvironment)
        return env


class RedisTLSSystemTests(TestCase):
    """
    C{twistd gearman} and a redis-server with C{--tls-port} and
    C{--requirepass}.
    """

    def setUp(self) -> None:
        self.certs = _Certs.get(self)
        self.directory = Path(self.mktemp()).resolve()
        self.directory.mkdir(parents=True)
        self.passwordFile = self.directory / "redis-password"
        self.passwordFile.write_text(PASSWORD + "\n")
        self.passwordFile.chmod(0o600)

    def startRedis(
        self,
        authClients: str = "yes",
        server: IssuedCertificate | None = None,
        password: str | None = PASSWORD,
    ) -> TLSRedisServer:
        certs = self.certs
        server = server or certs.server
        strange = server is certs.strangeServer
        return startTLSRedis(
            self,
            ca=certs.ca.cert,
            serverCert=server.cert,
            serverKey=server.key,
            clientCert=(certs.operator.cert, certs.operator.key),
            authClients=authClients,
            password=password,
            serverCA=certs.otherCA.cert if strange else None,
        )

    def tlsArgs(self, redis: TLSRedisServer, host: str = "localhost") -> list[str]:
        """The options of a server that reaches C{redis} with the web certificate."""
        certs = self.certs
        return [
            "--redis",
            f"rediss://{host}:{redis.port}",
            "--redis-tls-ca",
            str(certs.ca.cert),
            "--redis-tls-cert",
            str(certs.web.cert),
            "--redis-tls-key",
            str(certs.web.key),
        ]

    def twistd(
        self,
        args: list[str],
        environ: dict[str, str] | None = None,
        directory: Path | None = None,
        port: int | None = None,
    ) -> _Twistd:
        server = _Twistd(
            directory or Path(self.mktemp()), args, port=port, environ=environ
        )
        self.addCleanup(server.stop)
        return server

    def assertExitsWithin(self, server: _Twistd, timeout: float) -> str:
        """
        Launch C{server}, which must exit with status 1 after its start
        timeout and before C{timeout} more seconds; return its log.
        """
        started = time.monotonic()
        server.launch()
        status = server.wait(timeout + SLACK)
        elapsed = time.monotonic() - started
        log = server.log()
        self.assertEqual(status, 1, log)
        self.assertGreaterEqual(elapsed, timeout, log)
        self.assertLess(elapsed, timeout + SLACK, log)
        self.assertNotIn(PASSWORD, log)
        return log

    def cannotConnect(self, server: _Twistd, timeout: float) -> tuple[str, str]:
        """
        L{assertExitsWithin}, and the one line of the log saying why Redis
        could not be reached (said once, not once per attempt).
        """
        log = self.assertExitsWithin(server, timeout)
        lines = [line for line in log.splitlines() if "Cannot connect to Redis" in line]
        self.assertEqual(len(lines), 1, log)
        return lines[0], log

    def assertNoPasswordInArgv(self, server: TwistdServer) -> None:
        assert server.pid is not None
        argv = Path(f"/proc/{server.pid}/cmdline").read_bytes().split(b"\0")
        self.assertIn(b"--redis-password-file", argv)
        self.assertNotIn(PASSWORD.encode(), b"\0".join(argv))

    # -- working -----------------------------------------------------------

    def test_storeAndReplay(self) -> None:
        """
        Over TLS, with a client certificate Redis requires and the password
        from a file: a background job is in Redis before the client hears
        JOB_CREATED, survives a restart of the server, and runs.  The log
        says TLS; neither the command line (C{ps}), the log nor the admin
        C{settings} show the password.
        """
        redis = self.startRedis(authClients="yes")
        args = [*self.tlsArgs(redis), "--redis-password-file", str(self.passwordFile)]
        server = self.twistd(args).start()
        self.assertNoPasswordInArgv(server)
        connectRaw(self, server.port).submit(
            "SUBMIT_JOB_BG", b"tls", b"u1", b"over TLS"
        )
        [key] = jobKeys(redis)
        self.assertTrue(redis.command("GET", key).endswith(b"over TLS"))
        settings = server.admin(b"settings")
        self.assertIn(f"rediss://localhost:{redis.port}".encode(), settings)
        self.assertIn(b"TLS trusting", settings)
        self.assertNotIn(PASSWORD.encode(), settings)

        server.stop()
        again = self.twistd(args, directory=server.directory, port=server.port).start()
        self.assertIn(b"tls\t1\t0\t0\n", again.admin(b"status"))
        worker = Worker(self, again.port, b"tls")
        [job] = worker.drain(lambda jobs: len(jobs) == 1)
        self.assertEqual((job.unique, job.data), (b"u1", b"over TLS"))
        waitFor(lambda: not jobKeys(redis), 10, what="the finished job to leave Redis")
        again.stop()
        log = again.log()
        self.assertIn(f"Redis at rediss://localhost:{redis.port}", log)
        self.assertNotIn(PASSWORD, log)
        self.assertNotIn("Cannot connect", log)

    def test_passwordFromEnvironment(self) -> None:
        """
        C{$TXGEARMAN_REDIS_PASSWORD} gives the password, verifying Redis'
        certificate by its IP address; Redis asks for no client
        certificate, and none is given.
        """
        redis = self.startRedis(authClients="no")
        args = [
            "--redis",
            f"rediss://{LOOPBACK}:{redis.port}",
            "--redis-tls-ca",
            str(self.certs.ca.cert),
        ]
        server = self.twistd(args, environ={PASSWORD_ENVIRONMENT: PASSWORD}).start()
        assert server.pid is not None
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes()
        self.assertNotIn(PASSWORD.encode(), cmdline)
        connectRaw(self, server.port).submit("SUBMIT_JOB_BG", b"env", b"", b"x")
        self.assertEqual(len(jobKeys(redis)), 1)
        server.stop()
        self.assertNotIn(PASSWORD, server.log())

    def test_urlPasswordWarned(self) -> None:
        """
        A password in the URL still works, and the log warns once that
        every user sees it in C{ps}, naming the two ways to hide it, without
        repeating it.
        """
        redis = self.startRedis(authClients="optional")
        args = [
            "--redis",
            f"rediss://:{PASSWORD}@localhost:{redis.port}",
            "--redis-tls-ca",
            str(self.certs.ca.cert),
        ]
        server = self.twistd(args).start()
        connectRaw(self, server.port).submit("SUBMIT_JOB_BG", b"url", b"", b"x")
        server.stop()
        log = server.logPath.read_text()
        warnings = [line for line in log.splitlines() if "where every user" in line]
        self.assertEqual(len(warnings), 1, log)
        self.assertIn("--redis-password-file", warnings[0])
        self.assertIn(PASSWORD_ENVIRONMENT, warnings[0])
        self.assertNotIn(PASSWORD, log)

    # -- refused -----------------------------------------------------------

    def test_otherAuthority(self) -> None:
        """
        A Redis whose certificate another authority signed is not trusted:
        the server logs why once, and exits with status 1 within its start
        timeout.
        """
        redis = self.startRedis(server=self.certs.strangeServer)
        server = self.twistd(
            [
                *self.tlsArgs(redis),
                "--redis-password-file",
                str(self.passwordFile),
                "--redis-start-timeout",
                "2",
            ]
        )
        line, log = self.cannotConnect(server, 2)
        self.assertIn(
            f"Cannot connect to Redis at rediss://localhost:{redis.port}: TLS handshake "
            "failed: the certificate of Redis was rejected",
            line,
        )
        self.assertIn("--redis-tls-ca", line)
        self.assertIn("gave up after 2 s", log)

    def test_wrongHostname(self) -> None:
        """
        A certificate of the trusted authority, but for another host, is
        refused naming the host that was asked for.
        """
        assert _Certs.elsewhere is not None
        redis = self.startRedis(
            authClients="no", server=_Certs.elsewhere, password=None
        )
        server = self.twistd(
            [*self.tlsArgs(redis, LOOPBACK), "--redis-start-timeout", "2"]
        )
        line, _log = self.cannotConnect(server, 2)
        self.assertIn(
            f"TLS handshake failed: the certificate of Redis does not name {LOOPBACK}",
            line,
        )

    def test_clientCertificateRequired(self) -> None:
        """
        A Redis with C{tls-auth-clients yes} refuses a server that shows no
        client certificate: said once, status 1 within the start timeout.
        """
        redis = self.startRedis(authClients="yes")
        server = self.twistd(
            [
                "--redis",
                f"rediss://localhost:{redis.port}",
                "--redis-tls-ca",
                str(self.certs.ca.cert),
                "--redis-password-file",
                str(self.passwordFile),
                "--redis-start-timeout",
                "2",
            ]
        )
        line, log = self.cannotConnect(server, 2)
        self.assertIn("Redis requires a client certificate", line)
        self.assertNotIn("could not auth", log)

    def test_wrongPassword(self) -> None:
        """
        A wrong password from the file is reported as Redis refusing this
        server, at once (no retry helps), without the password.
        """
        redis = self.startRedis()
        wrong = self.directory / "wrong-password"
        wrong.write_text("not-the-password-4411\n")
        wrong.chmod(0o600)
        server = self.twistd(
            [
                *self.tlsArgs(redis),
                "--redis-password-file",
                str(wrong),
                "--redis-start-timeout",
                "30",
            ]
        )
        log = self.assertExitsWithin(server, 0)
        self.assertIn(
            f"Redis at rediss://localhost:{redis.port} refused this server", log
        )
        self.assertIn("WRONGPASS", log)
        self.assertNotIn("not-the-password-4411", log)

    def test_wrongPasswordFromEnvironment(self) -> None:
        redis = self.startRedis(authClients="no")
        server = self.twistd(
            [
                "--redis",
                f"rediss://localhost:{redis.port}",
                "--redis-tls-ca",
                str(self.certs.ca.cert),
            ],
            environ={PASSWORD_ENVIRONMENT: "env-wrong-password-9"},
        )
        log = self.assertExitsWithin(server, 0)
        self.assertIn("refused this server", log)
        self.assertIn("WRONGPASS", log)
        self.assertNotIn("env-wrong-password-9", log)

    def test_passwordFileReadableByOthers(self) -> None:
        """
        A password file others may read is used, and warned about.
        """
        redis = self.startRedis()
        self.passwordFile.chmod(0o644)
        server = self.twistd(
            [*self.tlsArgs(redis), "--redis-password-file", str(self.passwordFile)]
        ).start()
        server.stop()
        log = server.logPath.read_text()
        self.assertIn(
            f"The Redis password file {self.passwordFile} is readable by its group or "
            "by others (mode 0644)",
            log,
        )
        self.assertNotIn(PASSWORD, log)

    def test_badFileIsUsageError(self) -> None:
        """
        A certificate file that cannot be read stops twistd at once with a
        usage error naming the option and the file, not a traceback.
        """
        redis = self.startRedis()
        missing = self.directory / "missing-ca.crt"
        server = self.twistd(
            [
                "--redis",
                f"rediss://localhost:{redis.port}",
                "--redis-tls-ca",
                str(missing),
            ]
        )
        server.launch()
        self.assertEqual(server.wait(20), 1)
        output = server.outputPath.read_text()
        self.assertIn(f"--redis-tls-ca: cannot read {missing}", output)
        self.assertNotIn("Traceback", output)
        self.assertFalse(os.path.exists(server.logPath) and "Traceback" in server.log())
