"""
Helpers for the system tests (not a test module): a real C{twistd gearman}
in a subprocess, the Gearman command-line tools that drive it, and a small
raw-protocol client written independently of L{txgearman.codec}.

Everything here blocks; the system tests call it straight from their test
methods, with a timeout on every wait.  Every process started is stopped
by the test's cleanups, also when the test fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from twisted.trial.unittest import FailTest, SkipTest, SynchronousTestCase

import txgearman

__all__ = [
    "LOOPBACK",
    "PROJECT_ROOT",
    "GearmanTools",
    "PacketTap",
    "RawConnection",
    "SpawnedTool",
    "TwistdServer",
    "adminCommand",
    "connectRaw",
    "freePort",
    "inCI",
    "peerBinary",
    "processGone",
    "runTool",
    "spawnTool",
    "startServer",
    "startTap",
    "twistdExecutable",
    "waitFor",
]

LOOPBACK = "127.0.0.1"

#: The directory holding the C{txgearman} package the tests import; the
#: server subprocess is given it on its C{PYTHONPATH}, so it runs the same
#: code (and finds the C{twisted/plugins} entry beside it).
PROJECT_ROOT = Path(txgearman.__file__).resolve().parent.parent

#: Where Debian installs the Gearman tools, searched after C{PATH}.
_EXTRA_PATH = ("/usr/bin", "/usr/sbin", "/usr/local/bin")


def inCI() -> bool:
    """
    Whether this run is CI's (C{CI=true}), where a missing peer binary is
    a failure rather than a skip.
    """
    return os.environ.get("CI", "").strip().lower() == "true"


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


def peerBinary(name: str, package: str = "gearman-tools") -> str:
    """
    The path of a Gearman peer program (C{gearman}, C{gearadmin}), or of
    an interpreter a peer library runs in (C{php}, C{perl}).

    @raise SkipTest: if it is missing, outside CI.
    @raise FailTest: if it is missing and C{CI=true}: CI installs it, so a
        missing binary is a broken environment, not a reason to skip.
    """
    search = os.pathsep.join([os.environ.get("PATH", ""), *_EXTRA_PATH])
    found = shutil.which(name, path=search)
    if found is not None:
        return found
    missingPeer(f"{name} is not installed (Debian package {package})")
    raise AssertionError("unreachable")


def missingPeer(reason: str) -> None:
    """
    A peer the tests need is missing: fail under CI, where C{.ci/run}
    installs every peer, and skip elsewhere.
    """
    if inCI():
        raise FailTest(f"{reason}, and CI=true requires it")
    raise SkipTest(reason)


def freePort() -> int:
    """
    A TCP port on the loopback interface that nothing listens on right now.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def waitFor(
    predicate: Callable[[], Any],
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "",
) -> Any:
    """
    Call C{predicate} until it returns something true, and return that.

    @raise FailTest: if C{timeout} seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise FailTest(
                f"timed out after {timeout}s waiting for {what or predicate!r}"
            )
        time.sleep(interval)


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
            if not self.daemon or self.pid is not None:
                try:
                    reply = adminCommand(self.port, b"version", timeout=2.0)
                except (OSError, FailTest):
                    reply = b""
                if reply.startswith(b"OK "):
                    return
            if time.monotonic() >= deadline:
                raise FailTest(
                    f"twistd did not serve within {timeout}s\n{self.describe()}"
                )
            time.sleep(0.05)

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

    # -- talking to it ------------------------------------------------------

    def admin(self, line: bytes, timeout: float = 5.0) -> bytes:
        """
        Send one admin line and return the complete reply.
        """
        return adminCommand(self.port, line, timeout)

    def waitForWorkers(self, function: bytes, count: int) -> None:
        """
        Wait until the admin C{status} shows C{count} workers for
        C{function}.
        """

        def registered() -> bool:
            for line in self.admin(b"status").splitlines():
                fields = line.split(b"\t")
                if fields[0] == function and len(fields) == 4:
                    return int(fields[3]) == count
            return False

        waitFor(registered, what=f"{count} workers for {function!r}")

    def connect(self) -> RawConnection:
        return RawConnection(self.port)


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


# -- the admin protocol -----------------------------------------------------

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


# -- the binary protocol, independently of txgearman.codec -------------------

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


# -- peer binaries -------------------------------------------------------------


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
