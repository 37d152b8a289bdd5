# -*- test-case-name: txgearman.test.test_redisaddress -*-
"""
Where the Redis queue lives: C{--redis}'s value, parsed.

One option names every kind of Redis a production site runs: a plain
C{host:port}, a C{redis://} URL with credentials and a database (or
C{rediss://} for TLS), a unix socket, or a Sentinel group that knows which
server is the master.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote

__all__ = ["RedisAddress", "parseRedisAddress", "DEFAULT_PORT", "DEFAULT_SENTINEL_PORT"]

DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True)
class RedisAddress:
    """
    How to reach Redis.

    @ivar kind: C{"tcp"}, C{"unix"} or C{"sentinel"}.
    @ivar host: the TCP host (C{"tcp"} only).
    @ivar port: the TCP port (C{"tcp"} only).
    @ivar path: the socket path (C{"unix"} only).
    @ivar sentinels: C{(host, port)} of each Sentinel (C{"sentinel"} only).
    @ivar master: the Sentinel master group name (C{"sentinel"} only).
    @ivar db: the database number, or C{None} for Redis's default.
    @ivar username: the ACL user name, or C{None}.
    @ivar password: the password, or C{None}.
    @ivar tls: whether to speak TLS to Redis (C{rediss://}; C{"tcp"} only).
    """

    kind: str
    host: str = ""
    port: int = 0
    path: str = ""
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str = ""
    db: int | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False

    def __str__(self) -> str:
        """
        The address for logs and errors: never the password, and
        C{rediss://} in front when TLS is used, so that a log says so.
        """
        if self.kind == "unix":
            where = f"unix:{self.path}"
        elif self.kind == "sentinel":
            hosts = ",".join(_hostPort(host, port) for host, port in self.sentinels)
            where = f"sentinel://{hosts}/{self.master}"
        else:
            where = _hostPort(self.host, self.port)
            if self.tls:
                where = f"rediss://{where}"
        if self.db:
            where += f" db {self.db}"
        return where


def _hostPort(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parseRedisAddress(text: str) -> RedisAddress:
    """
    Parse C{--redis}'s value.

    Accepted forms::

        localhost:6379                 host:port (the port defaults to 6379)
        [::1]:6379                     an IPv6 literal in brackets
        redis://[[user]:password@]host[:port][/db]
        rediss://[[user]:password@]host[:port][/db]    the same over TLS
        /run/redis/redis.sock          a unix socket (also unix:/path[?db=N])
        sentinel://[[user]:password@]host:26379,host2:26379/mastername[/db]

    @raise ValueError: with a message that says what is wrong.
    """
    text = text.strip()
    if not text:
        raise ValueError("the Redis address is empty")
    try:
        return _parse(text)
    except ValueError as e:
        # Say what is wrong without repeating a password into a log.
        raise ValueError(str(e).replace(repr(text), repr(_redacted(text)))) from None


def _redacted(text: str) -> str:
    scheme, sep, rest = text.partition("://")
    if not sep or "@" not in rest:
        return text
    userinfo, _, hostpart = rest.rpartition("@")
    user = userinfo.partition(":")[0] if ":" in userinfo else ""
    return f"{scheme}://{user}:***@{hostpart}"


def _parse(text: str) -> RedisAddress:
    if text.startswith("/"):
        return RedisAddress(kind="unix", path=text)
    if text.startswith("unix:"):
        return _parseUnix(text)
    if text.startswith("sentinel://"):
        return _parseSentinel(text)
    if text.startswith(("sentinels://", "rediss+sentinel://", "sentinel+rediss://")):
        raise ValueError(
            "TLS through Sentinel is not supported (txredisapi connects to the "
            "master a Sentinel names without TLS): name the master with "
            "rediss://host:port, or put a TLS proxy in front of the Sentinels"
        )
    if text.startswith("rediss://"):
        return _parseURL(text, tls=True)
    if text.startswith("redis://"):
        return _parseURL(text)
    if "://" in text:
        raise ValueError(f"unknown Redis address scheme in {text!r}")
    host, port = _splitHostPort(text, DEFAULT_PORT)
    return RedisAddress(kind="tcp", host=host, port=port)


def _splitHostPort(text: str, defaultPort: int) -> tuple[str, int]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"unclosed [ in {text!r}")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"unexpected {rest!r} after the address in {text!r}")
        portText = rest[1:]
    elif text.count(":") > 1:
        raise ValueError(f"write an IPv6 address in brackets, as [{text}]:6379")
    else:
        host, _, portText = text.partition(":")
    if not host:
        raise ValueError(f"no host in {text!r}")
    return host, _port(portText, defaultPort, text)


def _port(text: str, default: int, whole: str) -> int:
    if not text:
        return default
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise ValueError(f"bad port {text!r} in {whole!r}")
    return int(text)


def _db(text: str, whole: str) -> int | None:
    text = text.strip("/")
    if not text:
        return None
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"bad database number {text!r} in {whole!r}")
    return int(text)


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    user, colon, password = userinfo.partition(":")
    if not colon:
        # redis://secret@host: a lone word is the password, as redis-cli -u reads it.
        return None, unquote(user)
    # redis://user:@host names a user whose password comes from elsewhere
    # (--redis-password-file): an empty password is none.
    return (unquote(user) or None), (unquote(password) or None)


def _parseURL(text: str, tls: bool = False) -> RedisAddress:
    rest = text.partition("://")[2]
    userinfo, _, rest = rest.rpartition("@")
    hostport, _, path = rest.partition("/")
    if "?" in rest or "#" in rest:
        raise ValueError(f"query parameters are not supported in {text!r}")
    host, port = _splitHostPort(hostport, DEFAULT_PORT)
    username, password = _credentials(userinfo)
    return RedisAddress(
        kind="tcp",
        host=host,
        port=port,
        db=_db(path, text),
        username=username,
        password=password,
        tls=tls,
    )


def _parseUnix(text: str) -> RedisAddress:
    rest = text[len("unix:") :]
    while rest.startswith("//"):
        rest = rest[1:]
    path, _, query = rest.partition("?")
    if not path.startswith("/"):
        raise ValueError(f"the unix socket path must be absolute in {text!r}")
    db = None
    if query:
        name, _, value = query.partition("=")
        if name != "db":
            raise ValueError(f"only ?db=N is supported in {text!r}")
        db = _db(value, text)
    return RedisAddress(kind="unix", path=path, db=db)


def _parseSentinel(text: str) -> RedisAddress:
    rest = text[len("sentinel://") :]
    userinfo, _, rest = rest.rpartition("@")
    hosts, slash, path = rest.partition("/")
    master, _, dbText = path.partition("/")
    if "?" in path or "#" in path:
        raise ValueError(f"query parameters are not supported in {text!r}")
    if not slash or not master:
        raise ValueError(
            f"name the master group: sentinel://host:26379/mymaster, not {text!r}"
        )
    sentinels = tuple(
        _splitHostPort(each, DEFAULT_SENTINEL_PORT) for each in hosts.split(",") if each
    )
    if not sentinels:
        raise ValueError(f"no Sentinel address in {text!r}")
    username, password = _credentials(userinfo)
    return RedisAddress(
        kind="sentinel",
        sentinels=sentinels,
        master=unquote(master),
        db=_db(dbText, text),
        username=username,
        password=password,
    )
