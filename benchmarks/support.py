"""
What the benchmark scripts share: free ports, waiting with a deadline,
starting and stopping the servers they measure (and redis-server), reading
a process's CPU time and memory, and finding the load generator.

Not a script; compare.py, connections.py, hostile.py, replay.py,
scale.py and scrape.py import it
(load.py is the load generator, and holds the Gearman client side they
share: packets and the admin C{status}).  Only loopback addresses are used.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"


def freePort() -> int:
    """
    A loopback TCP port nothing listens on right now.
    """
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


class ProcessExited(RuntimeError):
    """
    The process a wait watched exited first.

    @ivar returncode: its exit status.
    """

    def __init__(self, returncode: int) -> None:
        super().__init__(f"exited with {returncode}")
        self.returncode = returncode


def waitUntil(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    process: subprocess.Popen[bytes] | None = None,
    interval: float = 0.05,
) -> Any:
    """
    Call C{condition} every C{interval} seconds until it returns something
    true, and return that.  A connection error (C{OSError}) means "not
    yet": a server that is starting refuses connections for a while.

    @param process: a process that must keep running meanwhile.
    @raise ProcessExited: if C{process} exits first.
    @raise RuntimeError: if C{timeout} seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise ProcessExited(process.returncode)
        try:
            result = condition()
        except OSError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def answers(
    port: int, request: bytes, reply: bytes, tls: ssl.SSLContext | None = None
) -> bool:
    """
    Whether the server on C{port} answers C{request}, sent on a new
    connection (through C{tls} if given), with something starting with
    C{reply}.
    """
    with socket.create_connection((LOOPBACK, port), timeout=0.5) as raw:
        s = (
            tls.wrap_socket(raw, server_hostname="localhost")
            if tls is not None
            else raw
        )
        s.sendall(request)
        return s.recv(100).startswith(reply)


#: The rules of the servers run with C{--acl}: the load generators connect
#: as C{anonymous} (plain TCP) or as C{web} (TLS), and may do what they do.
BENCH_ACL = """
[anonymous]
submit = *
register = *
grab = *
status = *
admin = read

[web]
submit = *
register = *
grab = *
status = *
admin = read
"""


def cpuSeconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _statusMiB(pid: int, field: str) -> float:
    """
    A size in kB from C{/proc/<pid>/status}, in MiB.
    """
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return 0.0


def rssMiB(pid: int) -> float:
    """
    The current resident set size of process C{pid}, in MiB.
    """
    return _statusMiB(pid, "VmRSS:")


def peakRssMiB(pid: int) -> float:
    """
    The largest resident set size process C{pid} has had, in MiB.
    """
    return _statusMiB(pid, "VmHWM:")


@dataclass
class Server:
    """
    @ivar redis: the server needs a redis-server of its own.
    @ivar http: the server has an HTTP listener (its port fills the C{http} placeholder),
        which a benchmark scrapes while it runs.
    """

    name: str
    command: list[str]
    redis: bool = False
    http: bool = False
    #: Speaks TLS and asks for a client certificate: made in C{{tmp}}/certs
    #: by L{prepare}, and given to the driver by L{driverArguments}.
    tls: bool = False
    #: Runs with C{--acl {tmp}/acl.ini}, holding L{BENCH_ACL}.
    acl: bool = False
    #: Jobs per run instead of the mode's own, for a server so slow that
    #: the mode's count would take minutes (jobs/s compare all the same).
    jobs: int | None = None

    def prepare(self, tmp: str) -> None:
        """Write the files the command names: certificates, the ACL."""
        if self.tls:
            from txgearman.test.certs import makeCertificates

            makeCertificates(Path(tmp) / "certs")
        if self.acl:
            (Path(tmp) / "acl.ini").write_text(BENCH_ACL)

    def driverArguments(self, tmp: str) -> list[str]:
        """What a driver (load.py) needs to talk to this server."""
        if not self.tls:
            return []
        certs = Path(tmp) / "certs"
        return [
            "--tls-ca",
            str(certs / "txgearman-test-ca.crt"),
            "--tls-cert",
            str(certs / "web.crt"),
            "--tls-key",
            str(certs / "web.key"),
        ]

    def clientContext(self, tmp: str) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        certs = Path(tmp) / "certs"
        context = ssl.create_default_context(
            cafile=str(certs / "txgearman-test-ca.crt")
        )
        context.load_cert_chain(str(certs / "web.crt"), str(certs / "web.key"))
        return context

    def argv(
        self, port: int, tmp: str, redisPort: int = 0, httpPort: int = 0
    ) -> list[str]:
        """
        The command line, for a server on C{port} with its files in C{tmp}
        (and, for a Redis queue, redis-server on C{redisPort}; for HTTP, its
        listener on C{httpPort}).
        """
        return [
            a.format(port=port, tmp=tmp, redis=redisPort, http=httpPort)
            for a in self.command
        ]

    def start(
        self, port: int, tmp: str, redisPort: int = 0, httpPort: int = 0
    ) -> subprocess.Popen[bytes]:
        """
        Start the server and wait until it answers the admin C{version}.
        """
        self.prepare(tmp)
        argv = self.argv(port, tmp, redisPort, httpPort)
        proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        context = self.clientContext(tmp)
        try:
            waitUntil(
                lambda: answers(port, b"version\n", b"OK", context),
                15,
                f"{self.name} to answer",
                proc,
            )
        except RuntimeError as e:
            stopProcess(proc)
            raise RuntimeError(f"{self.name}: {e}") from None
        return proc


def stopProcess(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """
    Stop a server as its operator would (SIGTERM), killing it only if it
    has not exited within C{timeout} seconds.
    """
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def twistd() -> str:
    local = os.path.join(os.path.dirname(sys.executable), "twistd")
    return local if os.path.exists(local) else (shutil.which("twistd") or "twistd")


def startRedis(tmp: str, durable: bool = False) -> tuple[subprocess.Popen[bytes], int]:
    """
    A fresh redis-server for one run, with its files in C{tmp}: no
    snapshots, no AOF, as gearmand's figures in ../shared/bench were taken.

    @param durable: keep an append-only file instead, synced on every
        write, for a run that checks what survives a crash.
    @return: the process, and its port once it answers C{PING}.
    """
    port = freePort()
    persistence = ["yes", "--appendfsync", "always"] if durable else ["no"]
    proc = subprocess.Popen(
        [
            os.environ.get("REDIS_SERVER", "redis-server"),
            "--port",
            str(port),
            "--bind",
            LOOPBACK,
            "--save",
            "",
            "--appendonly",
            *persistence,
            "--dir",
            tmp,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        waitUntil(
            lambda: answers(port, b"PING\r\n", b"+PONG"), 10, "redis-server", proc
        )
    except RuntimeError as e:
        stopProcess(proc)
        raise RuntimeError(f"redis-server did not start: {e}") from None
    return proc, port


def txgearmanCommand(*extra: str) -> list[str]:
    """
    The command that runs a txgearman under test in the foreground, with
    the port and the log's folder as placeholders L{Server.start} fills.
    """
    return [
        twistd(),
        "-n",
        "--pidfile=",
        "--logfile={tmp}/t.log",
        "gearman",
        "--port",
        "tcp:{port}:interface=127.0.0.1",
        *extra,
    ]


def _gearmand(threads: str, *extra: str) -> list[str]:
    return [
        "gearmand",
        "-p",
        "{port}",
        "-L",
        "127.0.0.1",
        "-t",
        threads,
        "-l",
        "{tmp}/g.log",
        *extra,
    ]


_GEARMAND_REDIS = (
    "-q",
    "redis",
    "--redis-server",
    "127.0.0.1",
    "--redis-port",
    "{redis}",
)

_TLS = (
    "--tls-cert",
    "{tmp}/certs/server.crt",
    "--tls-key",
    "{tmp}/certs/server.key",
    "--tls-ca",
    "{tmp}/certs/txgearman-test-ca.crt",
)

SERVERS = {
    "gearmand-t1": Server("gearmand -t 1", _gearmand("1")),
    "gearmand-t4": Server("gearmand -t 4", _gearmand("4")),
    # gearmand finds jobs (by unique id, by handle) in hash tables with a
    # fixed number of buckets, 991 by default: with many jobs queued every
    # lookup walks long chains.  This one is sized for a million jobs.
    "gearmand-t1-hash": Server(
        "gearmand -t 1 --hashtable-buckets 1000003",
        _gearmand("1", "--hashtable-buckets", "1000003"),
    ),
    "txgearman": Server("txgearman", txgearmanCommand()),
    # The same with its HTTP face on, and /metrics scraped every second.
    "txgearman-http": Server(
        "txgearman --http (scraped every second)",
        txgearmanCommand("--http", "tcp:{http}:interface=127.0.0.1"),
        http=True,
    ),
    # With TLS and client certificates (driven by load.py only), and with
    # an ACL, plain and through TLS: what security costs per job.
    "txgearman-tls": Server(
        "txgearman --tls-ca (mutual TLS)",
        txgearmanCommand(*_TLS),
        tls=True,
    ),
    "txgearman-acl": Server(
        "txgearman --acl", txgearmanCommand("--acl", "{tmp}/acl.ini"), acl=True
    ),
    "txgearman-tls-acl": Server(
        "txgearman --tls-ca --acl",
        txgearmanCommand(*_TLS, "--acl", "{tmp}/acl.ini"),
        tls=True,
        acl=True,
    ),
    "gearmand-t1-redis": Server(
        "gearmand -t 1 -q redis", _gearmand("1", *_GEARMAND_REDIS), True
    ),
    "gearmand-t4-redis": Server(
        "gearmand -t 4 -q redis", _gearmand("4", *_GEARMAND_REDIS), True
    ),
    "txgearman-redis": Server(
        "txgearman --redis", txgearmanCommand("--redis", "127.0.0.1:{redis}"), True
    ),
    # The SQLite queue: txgearman's (one commit per reactor turn, on a
    # thread) at each durability, and gearmand's (one per job).
    "txgearman-sqlite": Server(
        "txgearman --sqlite", txgearmanCommand("--sqlite", "{tmp}/queue.db")
    ),
    "txgearman-sqlite-normal": Server(
        "txgearman --sqlite --sqlite-durability normal",
        txgearmanCommand("--sqlite", "{tmp}/queue.db", "--sqlite-durability", "normal"),
    ),
    "gearmand-t1-sqlite": Server(
        "gearmand -t 1 -q libsqlite3",
        _gearmand("1", "-q", "libsqlite3", "--libsqlite3-db", "{tmp}/gearmand.db"),
        # One transaction and fsync per job: some 2,000 jobs/s.
        jobs=20000,
    ),
}


class Scraper:
    """
    Read C{/metrics} every C{interval} seconds on a thread, as Prometheus
    would, until stopped.

    @ivar scrapes: the scrapes that answered 200.
    @ivar seconds: how long each took, whole body read.
    """

    def __init__(
        self, port: int, interval: float = 1.0, path: str = "/metrics"
    ) -> None:
        self.url = f"http://127.0.0.1:{port}{path}"
        self.interval = interval
        self.scrapes = 0
        self.seconds: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def scrapeOnce(self) -> bytes:
        started = time.monotonic()
        with urllib.request.urlopen(self.url, timeout=30) as response:
            body: bytes = response.read()
        self.seconds.append(time.monotonic() - started)
        self.scrapes += 1
        return body

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.scrapeOnce()
            except OSError as e:
                self.failures.append(str(e))

    def start(self) -> Scraper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


LOAD_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "load.py")


def addDriverArguments(parser: argparse.ArgumentParser, auto: str) -> None:
    """
    The C{--gearbench} and C{--driver} options L{findDriver} reads;
    C{auto} says what C{--driver auto} does in this script.
    """
    parser.add_argument(
        "--gearbench", help="path of gearbench (default: $GEARBENCH, PATH)"
    )
    parser.add_argument(
        "--driver",
        choices=["auto", "gearbench", "load"],
        default="auto",
        help=f"auto: {auto}",
    )


def findDriver(choice: str, explicit: str | None) -> tuple[list[str], str]:
    """
    The load generator's command and a description of it for the table.

    @param choice: C{auto} (gearbench when found, else load.py),
        C{gearbench} or C{load}.
    @param explicit: the --gearbench argument, if given.
    @raise SystemExit: if gearbench was asked for and is not found.
    """
    if choice != "load":
        candidates = [explicit] if explicit else []
        if not explicit and os.environ.get("GEARBENCH"):
            candidates.append(os.environ["GEARBENCH"])
        candidates.append("gearbench")
        for candidate in candidates:
            found = shutil.which(candidate) or (
                candidate if os.path.isfile(candidate) else None
            )
            if found:
                return [found], f"gearbench ({found})"
            if candidate is explicit or choice == "gearbench":
                raise SystemExit(f"gearbench not found: {candidate}")
    return (
        [sys.executable, LOAD_PY],
        "benchmarks/load.py (pure Python; its figures compare servers with each other only)",
    )
