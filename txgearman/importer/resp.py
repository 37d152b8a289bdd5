# -*- test-case-name: txgearman.test.test_importer -*-
"""
A small blocking Redis client (RESP2 over a socket), for reading
gearmand's Redis queue.

Why not txredisapi, which the Redis store uses: the importer reads the
source in steps between awaits on the target store, and a blocking
client keeps that loop plain (read a batch, add it, wait, delete it)
with nothing to interleave; it also keeps the source's connection apart
from the store's, whose reconnecting logic is for a long-lived server.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import IO, Any

from txgearman.store.redisaddress import RedisAddress

__all__ = ["RespClient", "RespError"]


class RespError(Exception):
    """
    Redis answered with an error reply; the message is Redis's.
    """


def encodeCommand(args: Sequence[bytes | str | int]) -> bytes:
    """
    One command as a RESP array of bulk strings.
    """
    parts = [b"*%d\r\n" % (len(args),)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode("utf-8")
        elif isinstance(arg, int):
            arg = b"%d" % (arg,)
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


def readReply(reader: IO[bytes]) -> Any:
    """
    Read one reply: bulk and simple strings as C{bytes}, nil as C{None},
    integers as C{int}, arrays as lists, and an error as a L{RespError}
    instance (returned, not raised, so that one key's error in a pipeline
    does not hide the other replies).

    @raise ConnectionError: if Redis closed the connection.
    """
    line = reader.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("Redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest
    if kind == b"-":
        return RespError(rest.decode("utf-8", "replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        body = reader.read(size + 2)
        if len(body) != size + 2:
            raise ConnectionError("Redis closed the connection")
        return body[:-2]
    if kind == b"*":
        count = int(rest)
        if count < 0:
            return None
        return [readReply(reader) for _ in range(count)]
    raise ConnectionError(f"not a Redis reply: {line[:40]!r}")


class RespClient:
    """
    One blocking connection to Redis.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._socket = sock
        self._reader = sock.makefile("rb")

    @classmethod
    def connect(cls, address: RedisAddress, timeout: float = 10.0) -> RespClient:
        """
        Connect to a C{tcp} or C{unix} address (the importer's options
        refuse the others, which gearmand cannot use either), authenticate
        and select its database.

        @raise OSError: if Redis cannot be reached.
        @raise RespError: if it refuses the password or the database.
        """
        if address.kind == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(address.path)
            except OSError:
                sock.close()
                raise
        else:
            sock = socket.create_connection((address.host, address.port), timeout)
        client = cls(sock)
        try:
            if address.password is not None:
                auth: list[bytes | str | int] = ["AUTH"]
                if address.username is not None:
                    auth.append(address.username)
                client.command(*auth, address.password)
            if address.db:
                client.command("SELECT", address.db)
        except BaseException:
            client.close()
            raise
        return client

    def pipeline(self, commands: Sequence[Sequence[bytes | str | int]]) -> list[Any]:
        """
        Send every command at once, then read every reply, in order.
        Error replies are L{RespError} instances in the list.
        """
        if not commands:
            return []
        self._socket.sendall(b"".join(encodeCommand(each) for each in commands))
        return [readReply(self._reader) for _ in commands]

    def command(self, *args: bytes | str | int) -> Any:
        """
        Send one command and return its reply.

        @raise RespError: for an error reply.
        """
        (reply,) = self.pipeline([args])
        if isinstance(reply, RespError):
            raise reply
        return reply

    def close(self) -> None:
        self._reader.close()
        self._socket.close()
