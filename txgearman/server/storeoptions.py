# -*- test-case-name: txgearman.test.test_tap,txgearman.test.test_storeoptions -*-
"""
The options that choose where background jobs are kept (C{--redis ...},
C{--sqlite ...}), shared by C{twistd gearman} and C{txgearman-import} so
that both name a store the same way, and the store they build.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from twisted.logger import Logger
from twisted.python import usage

from txgearman.server.claim import ListeningClaim
from txgearman.store.interfaces import IQueueStore
from txgearman.store.redisaddress import parseRedisAddress
from txgearman.store.redislayout import DEFAULT_PREFIX
from txgearman.store.redispassword import (
    PASSWORD_ENVIRONMENT,
    RedisPasswordError,
    choosePassword,
)
from txgearman.store.redistls import RedisTLS, RedisTLSError

__all__ = ["STORE_PARAMETERS", "checkStoreOptions", "makeStore", "numberOption"]

_log = Logger()

#: The C{--sqlite-durability} choices (see L{txgearman.store.sqlite}).
SQLITE_DURABILITY = ("full", "normal")


def numberOption(kind: type[int] | type[float], option: str) -> Any:
    """
    A coercer for C{--option} that, given a value that is no number, says
    which option and what it takes (Twisted's own message names neither).
    """
    what = "a whole number" if kind is int else "a number"

    def coerce(value: str) -> int | float:
        try:
            return kind(value)
        except ValueError:
            raise usage.UsageError(f"--{option} takes {what}, not {value!r}") from None

    coerce.coerceDoc = ""  # type: ignore[attr-defined]
    return coerce


#: C{optParameters} entries of the store options.
STORE_PARAMETERS: list[list[Any]] = [
    [
        "redis",
        None,
        None,
        "Store background jobs in Redis: host:port, "
        "redis://[[user]:password@]host[:port][/db], rediss://... for TLS, "
        "a unix socket path, or sentinel://host:26379[,host2:26379]/mastername.  "
        "A password here shows in ps: prefer --redis-password-file or "
        f"${PASSWORD_ENVIRONMENT}.",
    ],
    [
        "redis-password-file",
        None,
        None,
        "Read the Redis password from this file (one trailing newline is "
        "dropped; keep it mode 0600).  Giving the password a second way, in "
        f"the URL or ${PASSWORD_ENVIRONMENT}, is refused.",
    ],
    [
        "redis-tls-ca",
        None,
        None,
        "With rediss://: trust the PEM authorities in this file to sign "
        "Redis' certificate, instead of the system's.",
    ],
    [
        "redis-tls-cert",
        None,
        None,
        "With rediss://: show Redis this PEM client certificate (for its "
        "tls-auth-clients); needs --redis-tls-key.",
    ],
    ["redis-tls-key", None, None, "The PEM private key of --redis-tls-cert."],
    [
        "redis-prefix",
        None,
        DEFAULT_PREFIX,
        "Namespace of this server's keys in Redis; servers sharing a Redis need one each.",
    ],
    [
        "redis-timeout",
        None,
        5.0,
        "Longest a Redis write may take, in seconds, before the client gets ERROR QUEUE_ERROR.",
        numberOption(float, "redis-timeout"),
    ],
    [
        "redis-start-timeout",
        None,
        60.0,
        "How long start-up waits for Redis to answer and for another "
        "server's lock to expire before it exits with status 1, in seconds.",
        numberOption(float, "redis-start-timeout"),
    ],
    [
        "redis-lock-ttl",
        None,
        15.0,
        "How long the queue lock outlives a server that died, in seconds.",
        numberOption(float, "redis-lock-ttl"),
    ],
    [
        "sqlite",
        None,
        None,
        "Store background jobs in this SQLite file (created if missing; one "
        "server at a time, locked by PATH.lock).  See docs/sqlite.md.",
    ],
    [
        "sqlite-durability",
        None,
        "full",
        "full: an acknowledged job survives kill -9 and a power loss (fsync "
        "per commit); normal: it survives kill -9, but the last commits may be "
        "lost to a power loss.",
    ],
    [
        "sqlite-timeout",
        None,
        5.0,
        "Longest an SQLite commit may take, in seconds, before the jobs waiting "
        "behind it (and new ones, until it ends) get ERROR QUEUE_ERROR.",
        numberOption(float, "sqlite-timeout"),
    ],
]


def checkStoreOptions(
    options: MutableMapping[str, Any], environ: Mapping[str, str]
) -> None:
    """
    Check the store options in C{options} (parsed with L{STORE_PARAMETERS}),
    and read the Redis password and TLS files now, so that a wrong one
    stops the start with its name (and under C{twistd -u}, before the
    privileges are dropped).  Sets C{redis-tls} and C{redis-warnings}.

    @raise usage.UsageError: naming the option at fault.
    """
    if options["redis"] is not None and options["sqlite"] is not None:
        raise usage.UsageError(
            "--redis and --sqlite each choose the store: give one of them"
        )
    if options["sqlite"] is not None and not options["sqlite"]:
        raise usage.UsageError("--sqlite needs a file name")
    if options["sqlite-durability"] not in SQLITE_DURABILITY:
        raise usage.UsageError(
            f"--sqlite-durability takes full or normal, not "
            f"{options['sqlite-durability']!r}"
        )
    _checkRedis(options, environ)
    if not options["redis-prefix"]:
        raise usage.UsageError("--redis-prefix must not be empty")
    for name in ("redis-timeout", "redis-lock-ttl", "sqlite-timeout"):
        if not options[name] > 0:
            raise usage.UsageError(f"--{name} must be more than 0")
    if not options["redis-start-timeout"] >= 0:
        raise usage.UsageError("--redis-start-timeout must be 0 or more")


def _checkRedis(options: MutableMapping[str, Any], environ: Mapping[str, str]) -> None:
    options["redis-tls"] = None
    options["redis-warnings"] = ()
    tlsOptions = ("redis-tls-ca", "redis-tls-cert", "redis-tls-key")
    if options["redis"] is None:
        for name in ("redis-password-file", *tlsOptions):
            if options[name] is not None:
                raise usage.UsageError(f"--{name} needs --redis")
        return
    try:
        address = parseRedisAddress(options["redis"])
        choice = choosePassword(address, options["redis-password-file"], environ)
    except (ValueError, RedisPasswordError) as e:
        raise usage.UsageError(f"--redis: {e}") from None
    options["redis"] = choice.address
    options["redis-warnings"] = choice.warnings
    given = [name for name in tlsOptions if options[name] is not None]
    if not address.tls:
        if given:
            raise usage.UsageError(
                f"--{given[0]} needs a rediss:// --redis address (TLS); "
                "TLS through Sentinel or a unix socket is not supported"
            )
        return
    try:
        options["redis-tls"] = RedisTLS(
            options["redis-tls-ca"], options["redis-tls-cert"], options["redis-tls-key"]
        )
    except RedisTLSError as e:
        raise usage.UsageError(str(e)) from None


def makeStore(
    options: Mapping[str, Any], reactor: Any, claim: ListeningClaim | None = None
) -> IQueueStore | None:
    """
    The store the checked C{options} name, or C{None} for the memory
    store.

    @param claim: what only this server holds on this host, for the Redis
        store's lock (see L{txgearman.server.claim}).
    """
    if options["sqlite"] is not None:
        from txgearman.store.sqlite import SQLiteQueueStore

        return SQLiteQueueStore(
            options["sqlite"],
            reactor,
            durability=options["sqlite-durability"],
            timeout=options["sqlite-timeout"],
        )
    if options["redis"] is None:
        return None
    # Imported here: txredisapi installs the global reactor on import.
    from txgearman.store.redis import RedisQueueStore

    for warning in options["redis-warnings"]:
        # Not "warning=": twisted.python.log takes that for a Python warning.
        _log.warn("{notice}", notice=warning)
    return RedisQueueStore(
        options["redis"],
        reactor,
        prefix=options["redis-prefix"],
        timeout=options["redis-timeout"],
        lockTTL=options["redis-lock-ttl"],
        startTimeout=options["redis-start-timeout"],
        claim=claim,
        tls=options["redis-tls"],
    )
