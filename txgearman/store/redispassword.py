# -*- test-case-name: txgearman.test.test_redispassword -*-
"""
Where the Redis password comes from: a C{--redis} URL (which every user of
the host reads in C{ps}), a file, or the environment.

The rule is that the password comes from one place: a URL with a password
and C{--redis-password-file}, or either of them and
C{$TXGEARMAN_REDIS_PASSWORD}, are refused, since nobody could tell which
one was meant to win.  The user name may still come from the URL
(C{redis://gearman:@host} names a user and no password).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, replace

from txgearman.store.redisaddress import RedisAddress

__all__ = [
    "PASSWORD_ENVIRONMENT",
    "PasswordChoice",
    "RedisPasswordError",
    "choosePassword",
    "readPasswordFile",
]

#: The environment variable that may hold the Redis password.
PASSWORD_ENVIRONMENT = "TXGEARMAN_REDIS_PASSWORD"


class RedisPasswordError(ValueError):
    """
    The password cannot be had, or is given more than one way: the message
    says which and why, never the password.
    """


@dataclass(frozen=True)
class PasswordChoice:
    """
    The address with the password it is to use, and what to warn about.

    @ivar address: the C{--redis} address, its C{password} the one chosen.
    @ivar source: C{"url"}, C{"file"}, C{"environment"}, or C{None} for no
        password.
    @ivar warnings: lines for the log at start, without the password.
    """

    address: RedisAddress
    source: str | None
    warnings: tuple[str, ...] = ()


def readPasswordFile(path: str) -> tuple[str, str | None]:
    """
    Read a password file: its content, less one trailing newline (as
    C{echo} writes it).

    @return: the password, and a warning if others than the owner may read
        the file (or C{None}).
    @raise RedisPasswordError: the file cannot be read, is not UTF-8, or
        holds no password.
    """
    what = f"--redis-password-file {path}"
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if not stat.S_ISREG(mode):
                raise RedisPasswordError(f"{what} is not a regular file")
            data = f.read()
    except OSError as e:
        raise RedisPasswordError(f"cannot read {what}: {e.strerror}") from None
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if not data:
        raise RedisPasswordError(f"{what} is empty: it must hold the password")
    try:
        password = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RedisPasswordError(f"{what} is not UTF-8 text") from None
    warning = None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        warning = (
            f"The Redis password file {path} is readable by its group or by "
            f"others (mode {stat.S_IMODE(mode):04o}): chmod 600 it"
        )
    return password, warning


def choosePassword(
    address: RedisAddress,
    passwordFile: str | None,
    environ: Mapping[str, str],
) -> PasswordChoice:
    """
    Take the password from the one place that gives it: the URL, the file
    or the environment.

    @raise RedisPasswordError: more than one place gives one, or the file
        or the environment variable is no good.
    """
    fromEnvironment = environ.get(PASSWORD_ENVIRONMENT)
    given = [
        name
        for name, present in (
            ("a password in the --redis URL", address.password is not None),
            ("--redis-password-file", passwordFile is not None),
            (f"${PASSWORD_ENVIRONMENT}", fromEnvironment is not None),
        )
        if present
    ]
    if len(given) > 1:
        raise RedisPasswordError(
            f"the Redis password is given by {' and by '.join(given)}: which one "
            "should win is ambiguous, so give it one way only "
            "(--redis-password-file or the environment keep it out of ps)"
        )
    if address.password is not None:
        return PasswordChoice(
            address,
            "url",
            (
                "The Redis password is in the --redis URL, where every user of "
                "this host can read it (ps, /proc/<pid>/cmdline): give it with "
                f"--redis-password-file FILE or ${PASSWORD_ENVIRONMENT} instead",
            ),
        )
    if passwordFile is not None:
        password, warning = readPasswordFile(passwordFile)
        return PasswordChoice(
            replace(address, password=password),
            "file",
            (warning,) if warning is not None else (),
        )
    if fromEnvironment is not None:
        if not fromEnvironment:
            raise RedisPasswordError(
                f"${PASSWORD_ENVIRONMENT} is empty: set it to the password, or unset it"
            )
        return PasswordChoice(replace(address, password=fromEnvironment), "environment")
    return PasswordChoice(address, None)
