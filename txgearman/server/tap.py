# -*- test-case-name: txgearman.test.test_tap -*-
"""
C{twistd gearman}: command-line options and the service they build.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
from collections.abc import Mapping
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService, MultiService
from twisted.internet import endpoints
from twisted.logger import Logger
from twisted.python import usage

from txgearman.codec import DEFAULT_MAX_PACKET_SIZE
from txgearman.server.acl import ADMIN_WRITE, AccessPolicy, ACLError
from txgearman.server.bodies import DEFAULT_BODIES_PER_BUDGET, DEFAULT_BODY_WAIT_TIMEOUT
from txgearman.server.claim import listeningClaim
from txgearman.server.core import DEFAULT_MAX_FUNCTIONS, MAX_HANDLE_SIZE
from txgearman.server.protocol import (
    DEFAULT_CLIENT_OUTPUT_LIMIT,
    HIGH_WATER,
    GearmanServerFactory,
)
from txgearman.server.service import GearmanServerService, endpointDescription
from txgearman.server.storeoptions import (
    STORE_PARAMETERS,
    checkStoreOptions,
    makeStore,
    numberOption,
)
from txgearman.server.tls import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    ServerTLS,
    TLSFilesError,
    TLSServerEndpoint,
)

__all__ = ["Options", "makeService", "DRAIN_SIGNAL"]

#: The signal that starts a graceful drain.  twistd already uses SIGUSR1
#: to rotate its log file, so gearmand's SIGUSR1 is not available.
DRAIN_SIGNAL = signal.SIGUSR2

_log = Logger()


def _workerWakeup(value: str) -> int | None:
    """
    Read C{--worker-wakeup}: C{auto} (C{None}) or a count of 0 or more.
    """
    if value == "auto":
        return None
    try:
        count = int(value)
    except ValueError:
        count = -1
    if count < 0:
        raise usage.UsageError(
            f"--worker-wakeup takes auto, or 0 or more, not {value!r}"
        )
    return count


def _checkListen(option: str, value: str) -> None:
    """
    Refuse a C{--option} that is neither a port number nor a strports
    description, naming the option.
    """
    if value.isdigit() and int(value) > 65535:
        raise usage.UsageError(
            f"--{option} must be a port number (0-65535) or a strports description"
        )
    try:
        # Parsing builds an endpoint object without using the reactor.
        endpoints.serverFromString(None, endpointDescription(value))
    except (ValueError, TypeError) as e:
        raise usage.UsageError(
            f"--{option} {value!r} is not a strports description: {e}"
        ) from None


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Run a Gearman job server.  Jobs are kept in memory; with --redis or "
        "--sqlite, background jobs are also stored in Redis or an SQLite file "
        "and survive restarts.  Send "
        "SIGUSR2 to drain: stop accepting connections, finish the queued jobs, "
        "exit.  twistd writes ./twistd.pid (with -n too), so a second server in "
        "the same directory needs its own: twistd --pidfile=FILE gearman ..., "
        "or --pidfile= for none."
    )
    optParameters = [
        [
            "port",
            "p",
            "4730",
            "Port number, or a strports description such as "
            "tcp:4730:interface=127.0.0.1, to listen on.",
        ],
        [
            "http",
            None,
            None,
            "Serve Prometheus metrics (/metrics), health checks (/livez, /readyz), "
            "the JSON API (/api/) and a dashboard (/) over HTTP on this port number "
            "or strports description [default: off].",
        ],
        [
            "tls-cert",
            None,
            None,
            "Speak TLS (1.2 or later) on --port and --http with this PEM certificate "
            "(intermediates after it); needs --tls-key.  SIGHUP reloads it.",
        ],
        ["tls-key", None, None, "The PEM private key of --tls-cert."],
        [
            "tls-ca",
            None,
            None,
            "Require a client certificate signed by this PEM authority (mutual TLS); "
            "its common name is the connection's identity in --acl.",
        ],
        [
            "tls-handshake-timeout",
            None,
            DEFAULT_HANDSHAKE_TIMEOUT,
            "Longest a TLS handshake may take before the connection is dropped, in seconds.",
            numberOption(float, "tls-handshake-timeout"),
        ],
        [
            "http-tls",
            None,
            "same",
            "TLS on --http: 'same' as --port, 'server' (TLS, but no client "
            "certificate asked for: for health probes) or 'off'.",
        ],
        [
            "acl",
            None,
            None,
            "Judge every connection by this access-control list (INI: one section "
            "per certificate common name, and [anonymous]); what it does not grant "
            "is denied.  SIGHUP reloads it.",
        ],
        [
            "admin-socket",
            None,
            None,
            "Also serve the admin commands on this unix socket (mode 0600), and "
            "there only the ones that change the server (shutdown, cancel job, "
            "drop/create function, maxqueue) unless --acl grants them.",
        ],
        [
            "job-retries",
            "j",
            -1,
            "How often a job may lose its worker (disconnect, timeout) before "
            "it is dropped; -1 retries forever, 0 drops at the first failure.",
            numberOption(int, "job-retries"),
        ],
        [
            "worker-wakeup",
            "w",
            None,
            "How many sleeping workers one new job wakes: 'auto' (one per job "
            "no woken worker has come for yet), 0 (all, as gearmand) or at most "
            "N [default: auto]",
            _workerWakeup,
        ],
        [
            "job-handle-prefix",
            None,
            None,
            "Job handles are PREFIX:N [default: H:<hostname>].",
        ],
        [
            "max-packet-size",
            None,
            DEFAULT_MAX_PACKET_SIZE,
            "Largest packet body accepted, in bytes; larger packets close the connection.",
            numberOption(int, "max-packet-size"),
        ],
        [
            "max-buffered-bodies",
            None,
            None,
            "Most bytes all connections together may hold in packets of 64 KiB or "
            "more still arriving; a packet that finds no room waits, its "
            "connection not read, until others finish [default: "
            f"{DEFAULT_BODIES_PER_BUDGET} x --max-packet-size, "
            f"{DEFAULT_BODIES_PER_BUDGET * DEFAULT_MAX_PACKET_SIZE} with its default].",
            numberOption(int, "max-buffered-bodies"),
        ],
        [
            "body-wait-timeout",
            None,
            DEFAULT_BODY_WAIT_TIMEOUT,
            "Longest a packet of 64 KiB or more waits for room in "
            "--max-buffered-bodies, in seconds, before its connection gets "
            "ERROR SERVER_BUSY and is closed.",
            numberOption(float, "body-wait-timeout"),
        ],
        [
            "client-output-limit",
            None,
            DEFAULT_CLIENT_OUTPUT_LIMIT,
            "Most output, in bytes, the server holds for a connection that does "
            "not read it (a client whose job streams WORK_DATA, say) before it "
            "closes that connection; the workers feeding it wait from "
            f"{HIGH_WATER} bytes on.",
            numberOption(int, "client-output-limit"),
        ],
        [
            "max-functions",
            None,
            DEFAULT_MAX_FUNCTIONS,
            "Most functions the server holds; a CAN_DO, submit or create function "
            "that would make one more is answered with an error.",
            numberOption(int, "max-functions"),
        ],
        [
            "drain-timeout",
            None,
            300.0,
            "Longest a SIGUSR2 drain waits for the queues to empty, in seconds.",
            numberOption(float, "drain-timeout"),
        ],
        *STORE_PARAMETERS,
    ]
    optFlags = [
        ["exceptions", None, "Send WORK_EXCEPTION to clients that did not ask for it."],
        [
            "http-submit",
            None,
            "Take jobs over --http too: POST /<function> (anyone who reaches the port "
            "can then run jobs).",
        ],
    ]

    def parseOptions(self, options: Any = None) -> None:
        """
        Parse, and under twistd answer a wrong option with one line naming
        it (twistd itself would print the whole help first) and status 1.
        """
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            if getattr(self, "parent", None) is None:
                raise
            sys.stderr.write(f"twistd gearman: {e}\nSee twistd gearman --help.\n")
            raise SystemExit(1) from None

    def postOptions(self) -> None:
        _checkListen("port", self["port"])
        if self["http"] is not None:
            _checkListen("http", self["http"])
        elif self["http-submit"]:
            raise usage.UsageError("--http-submit needs --http")
        self._checkTLS()
        self["policy"] = None
        if self["acl"] is not None:
            try:
                self["policy"] = AccessPolicy.fromFile(self["acl"])
            except ACLError as e:
                raise usage.UsageError(f"--acl: {e}") from None
        elif self["admin-socket"] is not None:
            self["policy"] = AccessPolicy.everythingBut(ADMIN_WRITE)
        if self["job-retries"] < -1:
            raise usage.UsageError("--job-retries must be -1 or more")
        if self["max-packet-size"] < 1024:
            raise usage.UsageError("--max-packet-size must be at least 1024")
        bodies = self["max-buffered-bodies"]
        if bodies is None:
            self["max-buffered-bodies"] = (
                DEFAULT_BODIES_PER_BUDGET * self["max-packet-size"]
            )
        elif bodies < self["max-packet-size"]:
            raise usage.UsageError(
                f"--max-buffered-bodies must be at least --max-packet-size "
                f"({self['max-packet-size']}), or the largest packets could never "
                "be received"
            )
        if not self["body-wait-timeout"] > 0:
            raise usage.UsageError("--body-wait-timeout must be more than 0")
        if self["client-output-limit"] < HIGH_WATER:
            raise usage.UsageError(
                f"--client-output-limit must be at least {HIGH_WATER} (the high-water "
                "mark, past which the workers feeding a client wait)"
            )
        if self["max-functions"] < 1:
            raise usage.UsageError("--max-functions must be at least 1")
        prefix = self["job-handle-prefix"]
        if prefix is not None:
            if len(prefix.encode()) + 11 > MAX_HANDLE_SIZE or not prefix:
                raise usage.UsageError(
                    f"--job-handle-prefix must be 1 to {MAX_HANDLE_SIZE - 11} bytes"
                )
        if not self["drain-timeout"] >= 0:
            raise usage.UsageError("--drain-timeout must be 0 or more")
        checkStoreOptions(self, self.environ)

    #: Where C{$TXGEARMAN_REDIS_PASSWORD} is looked up; tests set their own.
    environ: Mapping[str, str] = os.environ

    def _checkTLS(self) -> None:
        """
        Read the TLS files now, so that a wrong one stops the start with
        its name (see L{ServerTLS}).
        """
        cert, key, ca = self["tls-cert"], self["tls-key"], self["tls-ca"]
        self["tls"] = None
        if self["http-tls"] not in ("same", "server", "off"):
            raise usage.UsageError(
                f"--http-tls takes same, server or off, not {self['http-tls']!r}"
            )
        if cert is None and key is None:
            if ca is not None:
                raise usage.UsageError("--tls-ca needs --tls-cert and --tls-key")
            return
        if cert is None or key is None:
            raise usage.UsageError("--tls-cert and --tls-key go together")
        if not self["tls-handshake-timeout"] > 0:
            raise usage.UsageError("--tls-handshake-timeout must be more than 0")
        try:
            self["tls"] = ServerTLS(cert, key, ca, self["tls-handshake-timeout"])
        except TLSFilesError as e:
            raise usage.UsageError(str(e)) from None


def makeService(options: Options, reactor: Any = None) -> IService:
    """
    Build the job server service from parsed options.
    """
    # twistd passes no reactor: then this process is the server's own, and
    # its exit status should say whether the server could start.
    underTwistd = reactor is None
    if reactor is None:
        from twisted.internet import reactor as globalReactor

        reactor = globalReactor
    # What only this server can hold on this host: the store writes it into
    # its lock, so that a restart after a crash recognises its own lock.
    claim = listeningClaim(endpointDescription(options["port"]))
    store = makeStore(options, reactor, claim)
    prefix = options["job-handle-prefix"]
    service = GearmanServerService(
        options["port"],
        reactor=reactor,
        store=store,
        jobRetries=options["job-retries"],
        workerWakeup=options["worker-wakeup"],
        handlePrefix=prefix.encode() if prefix is not None else None,
        maxPacketSize=options["max-packet-size"],
        exceptions=bool(options["exceptions"]),
        maxFunctions=options["max-functions"],
        drainSignal=DRAIN_SIGNAL,
        hangupRotatesLog=True,
        drainTimeout=options["drain-timeout"],
        claim=claim,
        clientOutputLimit=options["client-output-limit"],
        maxBufferedBodies=options["max-buffered-bodies"],
        bodyWaitTimeout=options["body-wait-timeout"],
        tls=options["tls"],
        policy=options["policy"],
    )
    if underTwistd:
        atexit.register(_exitStatus, service)
    if options["http"] is None and options["admin-socket"] is None:
        return service
    top = MultiService()
    service.setServiceParent(top)
    if options["admin-socket"] is not None:
        adminSocket(service, options["admin-socket"], reactor).setServiceParent(top)
    if options["http"] is None:
        return top
    # The composition root: the only server module that knows the web face.
    from txgearman.web.site import WebSite, httpPlaintextRefusal

    endpoint = endpoints.serverFromString(reactor, endpointDescription(options["http"]))
    tls = options["tls"]
    if tls is not None and options["http-tls"] != "off":
        if options["http-tls"] == "server":
            tls = tls.withoutClientCertificates()
            service.reloaders.append(tls.reload)
        endpoint = TLSServerEndpoint(endpoint, tls, reactor, httpPlaintextRefusal)
    web = StreamServerEndpointService(
        endpoint, WebSite(service, reactor, submit=bool(options["http-submit"]))
    )
    web.setServiceParent(top)
    return top


def adminSocket(service: GearmanServerService, path: str, reactor: Any) -> IService:
    """
    A listener on the unix socket C{path}, readable and writable by this
    server's user only, that takes every admin command and nothing else,
    for the same core as C{service}.
    """
    factory = GearmanServerFactory(
        service.core,
        service.factory.admin,
        maxPacketSize=service.factory.maxPacketSize,
        batcher=service.factory.batcher,
    )
    factory.guard(AccessPolicy.adminOnly(), listed=service.policy)
    endpoint = endpoints.UNIXServerEndpoint(reactor, path, mode=0o600, wantPID=True)
    return StreamServerEndpointService(endpoint, factory)


def _exitStatus(service: GearmanServerService) -> None:
    """
    Make twistd exit with status 1 if the server could not start (Redis
    unreachable, the queue locked by another server): twistd itself exits
    0 whenever its reactor stops.  Runs at interpreter exit, after twistd
    has removed its pidfile and closed its log.
    """
    if service.startFailure is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
