"""
Tests for L{txgearman.server.tap} (C{twistd gearman} options and service) and the
twistd plugin that names it.
"""

from __future__ import annotations

import io
import os
import signal
import sys
from pathlib import Path
from typing import cast

from twisted.application.service import IServiceMaker, MultiService
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from txgearman.codec import DEFAULT_MAX_PACKET_SIZE
from txgearman.server import tap
from txgearman.server.core import DEFAULT_MAX_FUNCTIONS, defaultHandlePrefix
from txgearman.server.service import GearmanServerService
from txgearman.store.redispassword import PASSWORD_ENVIRONMENT
from txgearman.store.redistls import RedisTLS
from txgearman.test.certs import CertificateSet, makeCertificates


def parse(*argv: str, environ: dict[str, str] | None = None) -> tap.Options:
    options = tap.Options()
    # Not the environment the tests run in: it may name a Redis password.
    options.environ = {} if environ is None else environ
    options.parseOptions(list(argv))
    return options


_certificates: CertificateSet | None = None


def _redisCerts(testCase: SynchronousTestCase) -> CertificateSet:
    """Certificates for the C{--redis-tls-*} tests, made once."""
    global _certificates
    if _certificates is None:
        _certificates = makeCertificates(Path(testCase.mktemp()))
    return _certificates


class OptionsTests(SynchronousTestCase):
    """
    Parsing and validating the command line.
    """

    def test_defaults(self) -> None:
        """
        Without arguments: port 4730, unlimited retries, just enough wake-ups,
        the host-name handle prefix, 64 MiB packets, no exceptions, a
        five-minute drain.
        """
        options = parse()
        self.assertEqual(options["port"], "4730")
        self.assertEqual(options["job-retries"], -1)
        self.assertIsNone(options["worker-wakeup"])
        self.assertIsNone(options["job-handle-prefix"])
        self.assertEqual(options["max-packet-size"], DEFAULT_MAX_PACKET_SIZE)
        self.assertEqual(options["drain-timeout"], 300.0)
        self.assertFalse(options["exceptions"])
        self.assertEqual(options["client-output-limit"], 64 * 1024 * 1024)
        self.assertEqual(options["max-functions"], DEFAULT_MAX_FUNCTIONS)
        self.assertEqual(options["max-buffered-bodies"], 4 * DEFAULT_MAX_PACKET_SIZE)
        self.assertEqual(options["body-wait-timeout"], 30.0)
        # Four of the largest packets, whatever that size.
        self.assertEqual(
            parse("--max-packet-size", "2048")["max-buffered-bodies"], 4 * 2048
        )

    def test_values(self) -> None:
        """
        Every option, long and short, is read with its type.
        """
        options = parse(
            "-p",
            "tcp:4731:interface=127.0.0.1",
            "-j",
            "3",
            "-w",
            "2",
            "--job-handle-prefix",
            "H:me",
            "--max-packet-size",
            "2048",
            "--exceptions",
            "--drain-timeout",
            "1.5",
            "--client-output-limit",
            "2000000",
            "--max-buffered-bodies",
            "3000",
            "--body-wait-timeout",
            "2.5",
        )
        self.assertEqual(options["port"], "tcp:4731:interface=127.0.0.1")
        self.assertEqual(options["job-retries"], 3)
        self.assertEqual(options["worker-wakeup"], 2)
        self.assertEqual(options["job-handle-prefix"], "H:me")
        self.assertEqual(options["max-packet-size"], 2048)
        self.assertTrue(options["exceptions"])
        self.assertEqual(options["drain-timeout"], 1.5)
        self.assertEqual(options["client-output-limit"], 2000000)
        self.assertEqual(options["max-buffered-bodies"], 3000)
        self.assertEqual(options["body-wait-timeout"], 2.5)
        self.assertEqual(parse("--port=4999", "--job-retries=0")["job-retries"], 0)

    def test_limitsAccepted(self) -> None:
        """
        The edge values of each validated option are accepted.
        """
        parse("-j", "-1")
        parse("-w", "0")
        self.assertIsNone(parse("-w", "auto")["worker-wakeup"])
        parse("--max-packet-size", "1024")
        parse("--client-output-limit", "1048576")
        parse("--max-functions", "1")
        parse("--max-buffered-bodies", str(DEFAULT_MAX_PACKET_SIZE))
        parse("--max-packet-size", "1024", "--max-buffered-bodies", "1024")
        parse("--body-wait-timeout", "0.001")
        parse("--drain-timeout", "0")
        parse("--job-handle-prefix", "p" * 52)
        parse("-p", "0")
        parse("-p", "65535")
        parse("-p", "unix:/tmp/gearman.sock")

    def test_badValues(self) -> None:
        """
        Out-of-range or malformed values are usage errors.
        """
        for argv in [
            ("-j", "-2"),
            ("-j", "many"),
            ("-w", "-1"),
            ("-w", "1.5"),
            ("-w", "all"),
            ("--job-handle-prefix", ""),
            ("--job-handle-prefix", "p" * 53),
            # Counted in bytes: 26 two-byte characters and one more byte.
            ("--job-handle-prefix", "\u00e9" * 26 + "x"),
            ("--max-packet-size", "1023"),
            ("--max-packet-size", "big"),
            ("--client-output-limit", "1048575"),
            ("--client-output-limit", "0"),
            ("--client-output-limit", "64M"),
            ("--max-functions", "0"),
            ("--max-functions", "lots"),
            ("--max-buffered-bodies", str(DEFAULT_MAX_PACKET_SIZE - 1)),
            ("--max-buffered-bodies", "0"),
            ("--max-buffered-bodies", "256M"),
            ("--max-packet-size", "2048", "--max-buffered-bodies", "2047"),
            ("--body-wait-timeout", "0"),
            ("--body-wait-timeout", "nan"),
            ("--body-wait-timeout", "-1"),
            ("--drain-timeout", "-1"),
            ("--drain-timeout", "nan"),
            ("--drain-timeout", "soon"),
            ("-p", "65536"),
            ("-p", "tcp:abc"),
            ("-p", "bogus:1"),
            ("-p", "tcp:4730:colour=blue"),
            ("--http", "65536"),
            ("--http", "bogus:1"),
            ("--no-such-option",),
            ("extra-argument",),
            ("--redis", ""),
            ("--redis", "sentinels://h/m"),
            ("--redis", "h:port"),
            ("--redis", "sentinel://h"),
            ("--redis", "localhost", "--redis-prefix", ""),
            ("--redis", "localhost", "--redis-timeout", "0"),
            ("--redis", "localhost", "--redis-lock-ttl", "-1"),
            ("--redis", "localhost", "--redis-start-timeout", "-1"),
            ("--redis", "localhost", "--redis-timeout", "nan"),
            ("--sqlite", ""),
            ("--sqlite", "q.db", "--sqlite-durability", "off"),
            ("--sqlite", "q.db", "--sqlite-timeout", "0"),
            ("--sqlite", "q.db", "--sqlite-timeout", "soon"),
        ]:
            self.assertRaises(usage.UsageError, parse, *argv)

    def test_wrongValueNamesOption(self) -> None:
        """
        A value of the wrong kind is refused naming the option and what it
        takes, not with Twisted's "Parameter type enforcement failed".
        """
        for argv, message in [
            (("--job-retries", "x"), "--job-retries takes a whole number, not 'x'"),
            (
                ("--max-packet-size", "big"),
                "--max-packet-size takes a whole number, not 'big'",
            ),
            (("--drain-timeout", "soon"), "--drain-timeout takes a number, not 'soon'"),
            (
                ("--client-output-limit", "64M"),
                "--client-output-limit takes a whole number, not '64M'",
            ),
            (
                ("--client-output-limit", "1000"),
                "--client-output-limit must be at least 1048576 (the high-water mark, "
                "past which the workers feeding a client wait)",
            ),
            (
                ("--max-functions", "1e6"),
                "--max-functions takes a whole number, not '1e6'",
            ),
            (("--max-functions", "0"), "--max-functions must be at least 1"),
            (("--redis-timeout", "1s"), "--redis-timeout takes a number, not '1s'"),
            (
                ("--max-buffered-bodies", "256M"),
                "--max-buffered-bodies takes a whole number, not '256M'",
            ),
            (
                ("--max-buffered-bodies", "1000"),
                "--max-buffered-bodies must be at least --max-packet-size (67108864), "
                "or the largest packets could never be received",
            ),
            (
                ("--body-wait-timeout", "0"),
                "--body-wait-timeout must be more than 0",
            ),
            (
                ("--body-wait-timeout", "soon"),
                "--body-wait-timeout takes a number, not 'soon'",
            ),
            (("-w", "all"), "--worker-wakeup takes auto, or 0 or more, not 'all'"),
            (("-w", "-1"), "--worker-wakeup takes auto, or 0 or more, not '-1'"),
            (
                ("--http", "70000"),
                "--http must be a port number (0-65535) or a strports description",
            ),
        ]:
            with self.assertRaises(usage.UsageError) as caught:
                parse(*argv)
            self.assertEqual(str(caught.exception), message)

    def test_underTwistdOneLine(self) -> None:
        """
        Under twistd (the options have a parent), a wrong option is answered
        with one line on standard error and exit status 1, instead of
        twistd's whole help followed by the error.
        """
        options = tap.Options()
        options.parent = usage.Options()
        err = io.StringIO()
        self.patch(sys, "stderr", err)
        with self.assertRaises(SystemExit) as caught:
            options.parseOptions(["--job-retries", "x"])
        self.assertEqual(caught.exception.code, 1)
        self.assertEqual(
            err.getvalue(),
            "twistd gearman: --job-retries takes a whole number, not 'x'\n"
            "See twistd gearman --help.\n",
        )

    def test_helpNamesPidfile(self) -> None:
        """
        The help says that twistd writes ./twistd.pid and how to run a
        second server beside the first.
        """
        self.assertIn("twistd.pid", " ".join(str(tap.Options()).split()))
        self.assertIn("--pidfile=", str(tap.Options()))

    def test_redisDefaults(self) -> None:
        """
        Without C{--redis}, jobs stay in memory; the Redis options have
        their documented defaults.
        """
        options = parse()
        self.assertIsNone(options["redis"])
        self.assertEqual(options["redis-prefix"], "txgearman")
        self.assertEqual(options["redis-timeout"], 5.0)
        self.assertEqual(options["redis-start-timeout"], 60.0)
        self.assertEqual(options["redis-lock-ttl"], 15.0)

    def test_redisAddress(self) -> None:
        """
        C{--redis} is parsed when the options are, so a bad address is a
        usage error before anything starts.
        """
        address = parse("--redis", "redis://:pw@db.example:6380/2")["redis"]
        self.assertEqual(
            (address.kind, address.host, address.port, address.db, address.password),
            ("tcp", "db.example", 6380, 2, "pw"),
        )
        with self.assertRaises(usage.UsageError) as caught:
            parse("--redis", "redis://:secret@h/x")
        self.assertNotIn("secret", str(caught.exception))


class SQLiteOptionsTests(SynchronousTestCase):
    """
    C{--sqlite PATH}, its durability and timeout.
    """

    def test_defaults(self) -> None:
        options = parse()
        self.assertIsNone(options["sqlite"])
        self.assertEqual(options["sqlite-durability"], "full")
        self.assertEqual(options["sqlite-timeout"], 5.0)

    def test_oneStore(self) -> None:
        """
        C{--redis} and C{--sqlite} together are refused: a job is kept in
        one store.
        """
        with self.assertRaises(usage.UsageError) as caught:
            parse("--redis", "localhost", "--sqlite", "q.db")
        self.assertEqual(
            str(caught.exception),
            "--redis and --sqlite each choose the store: give one of them",
        )

    def test_durabilityNamed(self) -> None:
        with self.assertRaises(usage.UsageError) as caught:
            parse("--sqlite", "q.db", "--sqlite-durability", "off")
        self.assertEqual(
            str(caught.exception), "--sqlite-durability takes full or normal, not 'off'"
        )

    def test_sqliteStore(self) -> None:
        """
        The service gets an L{SQLiteQueueStore} on the file, not yet open:
        it opens when the service starts, after twistd has daemonized.
        """
        from txgearman.store.sqlite import SQLiteQueueStore

        path = self.mktemp()
        options = parse(
            "--sqlite", path, "--sqlite-durability", "normal", "--sqlite-timeout", "2"
        )
        service = tap.makeService(options, reactor=MemoryReactorClock())
        assert isinstance(service, GearmanServerService)
        store = service.store
        assert isinstance(store, SQLiteQueueStore)
        self.assertEqual(
            (store.path, store.durability, store.timeout), (path, "normal", 2.0)
        )
        self.assertFalse(os.path.exists(path))
        self.assertEqual(
            dict(service.settings())["store"], f"sqlite {path} (synchronous=NORMAL)"
        )


class RedisSecurityOptionsTests(SynchronousTestCase):
    """
    C{--redis-tls-*} and C{--redis-password-file} (and
    C{$TXGEARMAN_REDIS_PASSWORD}) are checked and their files read when
    the options are parsed: a wrong one is a usage error naming it.
    """

    def setUp(self) -> None:
        self.certs = _redisCerts(self)
        self.directory = Path(self.mktemp())
        self.directory.mkdir()
        self.passwordFile = self.directory / "password"
        self.passwordFile.write_bytes(b"file-secret\n")
        self.passwordFile.chmod(0o600)

    def refused(self, *argv: str, environ: dict[str, str] | None = None) -> str:
        with self.assertRaises(usage.UsageError) as caught:
            parse(*argv, environ=environ)
        return str(caught.exception)

    def test_tls(self) -> None:
        certs = self.certs
        options = parse(
            "--redis",
            "rediss://localhost:6380",
            "--redis-tls-ca",
            str(certs.ca.cert),
            "--redis-tls-cert",
            str(certs.web.cert),
            "--redis-tls-key",
            str(certs.web.key),
        )
        self.assertTrue(options["redis"].tls)
        tls = options["redis-tls"]
        self.assertIsInstance(tls, RedisTLS)
        self.assertEqual(
            (tls.caFile, tls.certFile, tls.keyFile),
            (str(certs.ca.cert), str(certs.web.cert), str(certs.web.key)),
        )

    def test_tlsPlatformTrust(self) -> None:
        """
        C{rediss://} alone trusts the system's authorities.
        """
        options = parse("--redis", "rediss://localhost")
        self.assertEqual(
            str(options["redis-tls"]), "TLS trusting the system's authorities"
        )
        self.assertIsNone(parse("--redis", "redis://localhost")["redis-tls"])

    def test_tlsOptionsNeedRediss(self) -> None:
        ca = str(self.certs.ca.cert)
        for address in ["localhost", "redis://h", "/run/redis.sock", "sentinel://s/m"]:
            for option in ["--redis-tls-ca", "--redis-tls-cert", "--redis-tls-key"]:
                message = self.refused("--redis", address, option, ca)
                self.assertTrue(
                    message.startswith(f"{option} needs a rediss:// --redis address"),
                    message,
                )

    def test_optionsNeedRedis(self) -> None:
        for option in [
            "--redis-tls-ca",
            "--redis-tls-cert",
            "--redis-tls-key",
            "--redis-password-file",
        ]:
            self.assertEqual(self.refused(option, "x"), f"{option} needs --redis")

    def test_tlsFileErrors(self) -> None:
        certs = self.certs
        missing = str(self.directory / "missing.crt")
        self.assertEqual(
            self.refused("--redis", "rediss://h", "--redis-tls-ca", missing),
            f"--redis-tls-ca: cannot read {missing}: No such file or directory",
        )
        self.assertEqual(
            self.refused(
                "--redis", "rediss://h", "--redis-tls-ca", str(self.passwordFile)
            ),
            f"--redis-tls-ca: {self.passwordFile} holds no PEM certificate",
        )
        self.assertEqual(
            self.refused(
                "--redis", "rediss://h", "--redis-tls-cert", str(certs.web.cert)
            ),
            "--redis-tls-cert and --redis-tls-key go together",
        )
        self.assertIn(
            "is not the key of the certificate",
            self.refused(
                "--redis",
                "rediss://h",
                "--redis-tls-cert",
                str(certs.web.cert),
                "--redis-tls-key",
                str(certs.worker.key),
            ),
        )

    def test_sentinelTLSRefused(self) -> None:
        self.assertIn(
            "TLS through Sentinel is not supported",
            self.refused("--redis", "sentinels://s/m"),
        )

    def test_passwordFile(self) -> None:
        options = parse(
            "--redis",
            "redis://gearman:@h",
            "--redis-password-file",
            str(self.passwordFile),
        )
        address = options["redis"]
        self.assertEqual(
            (address.username, address.password), ("gearman", "file-secret")
        )
        self.assertEqual(options["redis-warnings"], ())

    def test_passwordFileErrors(self) -> None:
        missing = str(self.directory / "nothing")
        self.assertEqual(
            self.refused("--redis", "h", "--redis-password-file", missing),
            f"--redis: cannot read --redis-password-file {missing}: "
            "No such file or directory",
        )
        self.passwordFile.write_bytes(b"\n")
        self.assertIn(
            "is empty",
            self.refused(
                "--redis", "h", "--redis-password-file", str(self.passwordFile)
            ),
        )

    def test_passwordFromEnvironment(self) -> None:
        options = parse(
            "--redis", "rediss://h", environ={PASSWORD_ENVIRONMENT: "env-secret"}
        )
        self.assertEqual(options["redis"].password, "env-secret")
        self.assertIsNone(parse(environ={PASSWORD_ENVIRONMENT: "x"})["redis"])

    def test_passwordTwoWays(self) -> None:
        for argv, environ in [
            (("--redis", "redis://:url-secret@h", "--redis-password-file", "f"), {}),
            (
                ("--redis", "h", "--redis-password-file", str(self.passwordFile)),
                {PASSWORD_ENVIRONMENT: "env-secret"},
            ),
            (
                ("--redis", "redis://:url-secret@h"),
                {PASSWORD_ENVIRONMENT: "env-secret"},
            ),
        ]:
            message = self.refused(*argv, environ=environ)
            self.assertIn("ambiguous", message)
            for secret in ("url-secret", "env-secret", "file-secret"):
                self.assertNotIn(secret, message)

    def test_urlPasswordWarned(self) -> None:
        options = parse("--redis", "redis://:url-secret@h")
        [warning] = options["redis-warnings"]
        self.assertIn("visible", warning.replace("can read it", "visible"))
        self.assertNotIn("url-secret", warning)

    def test_help(self) -> None:
        """
        The help names the options and the environment variable.
        """
        text = " ".join(str(tap.Options()).split())
        for name in [
            "--redis-password-file",
            "--redis-tls-ca",
            "--redis-tls-cert",
            "--redis-tls-key",
            "rediss://",
            PASSWORD_ENVIRONMENT,
        ]:
            self.assertIn(name, text)


class MakeServiceTests(SynchronousTestCase):
    """
    L{tap.makeService} builds a L{GearmanServerService} as configured,
    binding nothing until it is started.
    """

    def test_configured(self) -> None:
        """
        The options reach the core, the factory and the service.
        """
        reactor = MemoryReactorClock()
        options = parse(
            "-p",
            "4731",
            "-j",
            "2",
            "-w",
            "1",
            "--job-handle-prefix",
            "H:me",
            "--max-packet-size",
            "2048",
            "--exceptions",
            "--drain-timeout",
            "7",
            "--client-output-limit",
            "5000000",
            "--max-functions",
            "12",
            "--max-buffered-bodies",
            "4096",
            "--body-wait-timeout",
            "3",
        )
        service = tap.makeService(options, reactor=reactor)
        assert isinstance(service, GearmanServerService)
        self.assertEqual(reactor.tcpServers, [])
        self.assertEqual(service.core.jobRetries, 2)
        self.assertEqual(service.core.workerWakeup, 1)
        self.assertEqual(service.core.handlePrefix, b"H:me:")
        self.assertTrue(service.core.exceptions)
        self.assertEqual(service.factory.maxPacketSize, 2048)
        self.assertEqual(service.factory.clientOutputLimit, 5000000)
        self.assertEqual(service.core.maxFunctions, 12)
        self.assertEqual(service.factory.bodies.limit, 4096)
        self.assertEqual(service.factory.bodies.timeout, 3.0)
        self.assertIs(service.factory.bodies.clock, reactor)
        self.assertEqual(service.drainSignal, signal.SIGUSR2)
        self.assertEqual(service.drainTimeout, 7.0)
        self.assertIs(service.core.clock, reactor)
        service.privilegedStartService()
        # An unprivileged port is bound once the store is ready.
        self.assertEqual(reactor.tcpServers, [])
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(reactor.tcpServers, [(4731, service.factory, 50, "")])
        # The port is the claim of this server, held once it listens.
        assert service.claim is not None
        self.assertEqual(service.claim.name, "tcp *:4731")
        self.assertTrue(service.claim.held)
        # The packet size limit is the one the connections use.
        transport = StringTransport()
        proto = service.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        assert proto is not None
        proto.makeConnection(transport)
        proto.dataReceived(b"\0REQ\0\0\0\x10\0\0\x08\x01")
        self.assertTrue(transport.disconnecting)
        self.assertIn(b"ARGUMENT_TOO_LARGE", transport.value())

    def test_defaults(self) -> None:
        """
        With default options: every interface on port 4730 and the host
        name handle prefix.
        """
        reactor = MemoryReactorClock()
        service = tap.makeService(parse(), reactor=reactor)
        assert isinstance(service, GearmanServerService)
        self.assertEqual(service.core.handlePrefix, defaultHandlePrefix() + b":")
        self.assertEqual(service.core.jobRetries, -1)
        self.assertFalse(service.core.exceptions)
        self.assertEqual(service.factory.maxPacketSize, DEFAULT_MAX_PACKET_SIZE)
        self.assertEqual(service.core.maxFunctions, DEFAULT_MAX_FUNCTIONS)
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(reactor.tcpServers, [(4730, service.factory, 50, "")])

    def test_strports(self) -> None:
        """
        A strports description is listened on as written.
        """
        reactor = MemoryReactorClock()
        service = tap.makeService(
            parse("-p", "tcp:4733:interface=127.0.0.1"), reactor=reactor
        )
        assert isinstance(service, GearmanServerService)
        service.privilegedStartService()
        service.startService()
        self.addCleanup(service.stopService)
        self.assertEqual(reactor.tcpServers, [(4733, service.factory, 50, "127.0.0.1")])


class HTTPServiceTests(SynchronousTestCase):
    """
    C{--http} adds the web face on a listener of its own.
    """

    def test_offByDefault(self) -> None:
        """
        Without C{--http}, the service is the job server alone.
        """
        self.assertIsNone(parse()["http"])
        service = tap.makeService(parse(), reactor=MemoryReactorClock())
        self.assertIsInstance(service, GearmanServerService)

    def test_listens(self) -> None:
        """
        With C{--http}, the job server and a web site are started together;
        the site's port is bound in C{privilegedStartService}, so that a
        port below 1024 works with C{-u}, and it answers before the Gearman
        port is bound (C{/readyz} says why it is not ready).
        """
        from txgearman.web.site import WebSite

        reactor = MemoryReactorClock()
        top = tap.makeService(
            parse("-p", "tcp:4733", "--http", "tcp:8080:interface=127.0.0.1"),
            reactor=reactor,
        )
        assert isinstance(top, MultiService)
        [gearman] = [s for s in top if isinstance(s, GearmanServerService)]
        top.privilegedStartService()
        [(port, site, _, interface)] = reactor.tcpServers
        self.assertEqual((port, interface), (8080, "127.0.0.1"))
        self.assertIsInstance(site, WebSite)
        top.startService()
        self.addCleanup(top.stopService)
        self.assertEqual(reactor.tcpServers[1][:2], (4733, gearman.factory))

    def test_bareNumber(self) -> None:
        """
        A bare port number is TCP on every interface, as for C{--port}.
        """
        reactor = MemoryReactorClock()
        top = tap.makeService(parse("--http", "8081"), reactor=reactor)
        assert isinstance(top, MultiService)
        top.privilegedStartService()
        self.addCleanup(top.stopService)
        self.assertEqual(reactor.tcpServers[0][0], 8081)
        self.assertEqual(reactor.tcpServers[0][3], "")


class RedisServiceTests(SynchronousTestCase):
    """
    C{--redis} gives the service a L{RedisQueueStore}, configured but not
    connected: it connects when the service starts, after twistd has
    daemonized and dropped privileges.
    """

    def test_redisStore(self) -> None:
        from txgearman.store.redis import RedisQueueStore

        reactor = MemoryReactorClock()
        options = parse(
            "--redis",
            "/run/redis.sock",
            "--redis-prefix",
            "jobs",
            "--redis-timeout",
            "2.5",
            "--redis-start-timeout",
            "9",
            "--redis-lock-ttl",
            "30",
        )
        service = tap.makeService(options, reactor=reactor)
        assert isinstance(service, GearmanServerService)
        store = service.store
        assert isinstance(store, RedisQueueStore)
        self.assertIs(service.core.store, store)
        self.assertEqual(
            (store.address.kind, store.address.path), ("unix", "/run/redis.sock")
        )
        self.assertEqual(store.layout.prefix, b"jobs")
        self.assertEqual(store.timeout, 2.5)
        self.assertEqual(store.startTimeout, 9.0)
        self.assertEqual(store.lockTTL, 30.0)
        self.assertIs(store.reactor, reactor)
        self.assertEqual(reactor.unixClients, [])
        self.assertEqual(store.description, "redis unix:/run/redis.sock (prefix jobs)")

    def test_tlsStore(self) -> None:
        """
        The store gets the TLS settings; its description (what admin
        C{settings} and C{/api/server} show) says TLS and never the
        password, which is logged nowhere either.
        """
        from txgearman.store.redis import RedisQueueStore

        certs = _redisCerts(self)
        events: list[LogEvent] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        options = parse(
            "--redis",
            "rediss://user:url-secret@localhost:6380/1",
            "--redis-tls-ca",
            str(certs.ca.cert),
        )
        service = tap.makeService(options, reactor=MemoryReactorClock())
        assert isinstance(service, GearmanServerService)
        store = service.store
        assert isinstance(store, RedisQueueStore)
        self.assertIs(store.tls, options["redis-tls"])
        self.assertEqual(
            store.description,
            f"redis rediss://localhost:6380 db 1 (TLS trusting {certs.ca.cert}; "
            "prefix txgearman)",
        )
        settings = dict(service.settings())
        self.assertEqual(settings["store"], store.description)
        logged = [formatEvent(event) for event in events]
        self.assertEqual(
            [
                line
                for line in logged
                if "ps" in line and "--redis-password-file" in line
            ],
            [options["redis-warnings"][0]],
        )
        for text in [*logged, repr(settings)]:
            self.assertNotIn("url-secret", text)

    def test_memoryByDefault(self) -> None:
        from txgearman.store.memory import MemoryQueueStore

        service = tap.makeService(parse(), reactor=MemoryReactorClock())
        assert isinstance(service, GearmanServerService)
        self.assertIsInstance(service.store, MemoryQueueStore)


class PluginTests(SynchronousTestCase):
    def test_discoverable(self) -> None:
        """
        twistd finds the C{gearman} subcommand, whose options and service
        come from L{txgearman.server.tap}.
        """
        makers = [m for m in getPlugins(IServiceMaker) if m.tapname == "gearman"]
        self.assertEqual(len(makers), 1)
        [maker] = makers
        self.assertIs(maker.options, tap.Options)
        self.assertEqual(maker.makeService, tap.makeService)
        self.assertTrue(maker.description)


class SecurityOptionsTests(SynchronousTestCase):
    """
    C{--tls-cert}, C{--tls-key}, C{--tls-ca}, C{--http-tls}, C{--acl} and
    C{--admin-socket}: wrong values stop the start naming the option or the
    file; right ones build the listeners they say.
    """

    def setUp(self) -> None:
        from pathlib import Path

        from txgearman.test.certs import makeCertificates

        self.certs = makeCertificates(Path(self.mktemp()))
        self.tls = [
            "--tls-cert",
            str(self.certs.server.cert),
            "--tls-key",
            str(self.certs.server.key),
        ]

    def assertUsage(self, message: str, *argv: str) -> None:
        e = self.assertRaises(usage.UsageError, parse, *argv)
        self.assertIn(message, str(e))

    def test_offByDefault(self) -> None:
        options = parse()
        self.assertIsNone(options["tls"])
        self.assertIsNone(options["policy"])

    def test_tlsErrors(self) -> None:
        certs = self.certs
        self.assertUsage("--tls-cert and --tls-key go together", "--tls-cert", "x")
        self.assertUsage("--tls-ca needs --tls-cert and --tls-key", "--tls-ca", "x")
        self.assertUsage(
            "cannot read the certificate /nonexistent",
            "--tls-cert",
            "/nonexistent",
            "--tls-key",
            str(certs.server.key),
        )
        self.assertUsage(
            "does not belong to the certificate",
            "--tls-cert",
            str(certs.server.cert),
            "--tls-key",
            str(certs.web.key),
        )
        self.assertUsage(
            "--tls-handshake-timeout must be more than 0",
            *self.tls,
            "--tls-handshake-timeout",
            "0",
        )
        self.assertUsage("--http-tls takes same, server or off", "--http-tls", "on")

    def test_tls(self) -> None:
        """The Gearman port and the HTTP port are both wrapped in TLS."""
        from txgearman.server.tls import TLSServerEndpoint

        options = parse(
            *self.tls, "--tls-ca", str(self.certs.ca.cert), "--http", "8080"
        )
        self.assertTrue(options["tls"].verifiesClients)
        top = tap.makeService(options, reactor=MemoryReactorClock())
        assert isinstance(top, MultiService)
        gearman, web = list(top)
        assert isinstance(gearman, GearmanServerService)
        self.assertIsInstance(gearman.endpoint, TLSServerEndpoint)
        self.assertIsInstance(web.endpoint, TLSServerEndpoint)
        self.assertIs(web.endpoint.tls, options["tls"])
        self.assertIn(("tls", options["tls"].describe()), gearman.settings())

    def test_httpTLSServerOnly(self) -> None:
        """C{--http-tls server}: TLS on HTTP without client certificates."""
        options = parse(
            *self.tls,
            "--tls-ca",
            str(self.certs.ca.cert),
            "--http",
            "8080",
            "--http-tls",
            "server",
        )
        top = tap.makeService(options, reactor=MemoryReactorClock())
        gearman, web = list(top)  # type: ignore[call-overload]
        self.assertFalse(web.endpoint.tls.verifiesClients)
        self.assertEqual(len(gearman.reloaders), 2)

    def test_httpTLSOff(self) -> None:
        from twisted.internet.endpoints import TCP4ServerEndpoint

        options = parse(*self.tls, "--http", "8080", "--http-tls", "off")
        top = tap.makeService(options, reactor=MemoryReactorClock())
        _, web = list(top)  # type: ignore[call-overload]
        self.assertIsInstance(web.endpoint, TCP4ServerEndpoint)

    def test_aclErrors(self) -> None:
        self.assertUsage(
            "--acl: cannot read the ACL /nonexistent", "--acl", "/nonexistent"
        )
        from pathlib import Path

        bad = Path(self.mktemp())
        bad.write_text("[web]\ninvoke = x\n")
        self.assertUsage(f"--acl: {bad}: [web] has 'invoke'", "--acl", str(bad))

    def test_acl(self) -> None:
        """C{--acl} guards the factory and is reloaded on SIGHUP."""
        from pathlib import Path

        from txgearman.server.guard import GuardedServerProtocol

        path = Path(self.mktemp())
        path.write_text("[anonymous]\nadmin = version\n")
        service = tap.makeService(
            parse("--acl", str(path)), reactor=MemoryReactorClock()
        )
        assert isinstance(service, GearmanServerService)
        self.assertIs(service.factory.protocol, GuardedServerProtocol)
        self.assertEqual(service.reloaders, [service._reloadPolicy])
        self.assertIn(("acl", f"{path} (1 identities)"), service.settings())

    def test_adminSocket(self) -> None:
        """
        C{--admin-socket} listens on a unix socket, mode 0600, that takes
        every admin command; without C{--acl} the network port then refuses
        the state-changing ones.
        """
        from txgearman.server.acl import ADMIN_WRITE

        reactor = MemoryReactorClock()
        path = self.mktemp()
        top = tap.makeService(parse("--admin-socket", path), reactor=reactor)
        assert isinstance(top, MultiService)
        gearman, _ = list(top)
        assert isinstance(gearman, GearmanServerService)
        rights = gearman.policy.rightsFor(None)  # type: ignore[union-attr]
        self.assertTrue(rights.may("submit", b"anything"))
        for command in ADMIN_WRITE:
            self.assertFalse(rights.mayAdmin(command))
        top.privilegedStartService()
        top.startService()
        self.addCleanup(top.stopService)
        [(address, factory, _, mode, _)] = reactor.unixServers
        self.assertEqual((address, mode), (path, 0o600))
        self.assertTrue(factory.policy.rightsFor(None).mayAdmin("shutdown"))
        self.assertIs(factory.core, gearman.core)
