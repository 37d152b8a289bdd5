# -*- test-case-name: txgearman.test.test_admin -*-
"""
The text (admin) protocol: C{status}, C{workers}, C{maxqueue} and the rest,
answered in gearmand's formats byte for byte.

Each command yields one complete reply, which the protocol writes in one
piece: C{gearadmin} stops reading after 5 ms of silence.  Replies are built
from the L{JobServer}'s query and admin methods only, never from its
internals.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from txgearman import __version__
from txgearman.server.core import JobServer, TooManyFunctions

__all__ = ["AdminCommands"]

_UNKNOWN = b"ERR UNKNOWN_COMMAND Unknown+server+command"
_INCOMPLETE = (
    b"ERR INVALID_ARGUMENTS An+incomplete+set+of+arguments+was+sent+to+this+command+"
)
_OK = b"OK\r\n"


def _int(token: bytes) -> int:
    try:
        return int(token)
    except ValueError:
        return 0


def _tooMany(e: TooManyFunctions) -> bytes:
    """gearmand's form of an error: a code, then its text with C{+} for spaces."""
    text = str(e).capitalize().replace(" ", "+")
    return b"ERR TOO_MANY_FUNCTIONS " + text.encode() + b"\r\n"


def _listing(lines: list[bytes]) -> bytes:
    """A multi-line reply: the lines, then a line holding only a dot."""
    lines.append(b".\n")
    return b"".join(lines)


class AdminCommands:
    """
    Answers admin lines against a L{JobServer}.

    @ivar verbosity: what C{verbose} reports.
    """

    def __init__(
        self,
        core: JobServer,
        version: str = __version__,
        getpid: Callable[[], int] = os.getpid,
        verbosity: str = "INFO",
        settings: Callable[[], list[tuple[str, str]]] | None = None,
    ) -> None:
        """
        @param settings: what C{settings} lists, as C{(name, value)} pairs;
            without it, C{settings} lists what the core knows.
        """
        self.core = core
        self.version = version
        self.getpid = getpid
        self.verbosity = verbosity
        self.settings = settings

    def handle(self, line: bytes) -> bytes:
        """
        Answer one admin line (without its line ending).
        """
        tokens = [t for t in line.split(b" ") if t]
        if not tokens:
            return _UNKNOWN + b"\r\n"
        command = tokens[0].lower()
        method = getattr(self, "admin_" + command.decode("ascii", "replace"), None)
        result: bytes | None = method(tokens[1:]) if method is not None else None
        if result is None:
            # Unknown, echoed as typed.
            return _UNKNOWN + tokens[0] + b"\r\n"
        return result

    def admin_status(self, args: list[bytes]) -> bytes:
        lines = [
            b"%s\t%d\t%d\t%d\n" % (f.name, f.total, f.running, f.workers)
            for f in self.core.functionStatus()
        ]
        return _listing(lines)

    def admin_prioritystatus(self, args: list[bytes]) -> bytes:
        lines = [
            b"%s\t%d\t%d\t%d\t%d\n" % (f.name, f.high, f.normal, f.low, f.workers)
            for f in self.core.priorityStatus()
        ]
        return _listing(lines)

    def admin_workers(self, args: list[bytes]) -> bytes:
        lines = []
        for w in self.core.listWorkers():
            names = b"".join(b" " + name for name in w.functions)
            lines.append(
                b"%d %s %s :%s\n"
                % (w.connectionId, w.host.encode("ascii", "replace"), w.clientId, names)
            )
        return _listing(lines)

    def admin_show(self, args: list[bytes]) -> bytes | None:
        what = [a.lower() for a in args]
        if not what:
            # gearmand: C{show} alone is an unknown command.
            return None
        if what[:1] == [b"jobs"]:
            lines = [
                b"%s\t%d\t0\t%d\n" % (j.handle, j.retries, j.stored)
                for j in self.core.listJobs()
            ]
        elif what[:2] == [b"unique", b"jobs"]:
            lines = [j.unique + b"\n" for j in self.core.listJobs()]
        else:
            return b"ERR UNKNOWN_SHOW_ARGUMENTS\r\n"
        return _listing(lines)

    def admin_cancel(self, args: list[bytes]) -> bytes:
        if len(args) != 2 or args[0].lower() != b"job":
            return _INCOMPLETE + b"cancel\r\n"
        if self.core.cancelJob(args[1]):
            return _OK
        return b"ERR UNKNOWN_JOB\r\n"

    def admin_create(self, args: list[bytes]) -> bytes:
        if len(args) != 2 or args[0].lower() != b"function":
            return _INCOMPLETE + b"create\r\n"
        try:
            self.core.createFunction(args[1])
        except TooManyFunctions as e:
            return _tooMany(e)
        return _OK

    def admin_drop(self, args: list[bytes]) -> bytes:
        if len(args) != 2 or args[0].lower() != b"function":
            return _INCOMPLETE + b"drop\r\n"
        problem = self.core.dropFunction(args[1])
        if problem is None:
            return _OK
        return b"ERR " + problem.encode() + b"\r\n"

    def admin_maxqueue(self, args: list[bytes]) -> bytes:
        if not args:
            return _INCOMPLETE + b"maxqueue\r\n"
        name, limits = args[0], [_int(a) for a in args[1:4]]
        if not limits:
            high = normal = low = 0
        elif len(limits) == 1:
            high = normal = low = limits[0]
        elif len(limits) == 2:
            high, normal, low = limits[0], limits[1], 0
        else:
            high, normal, low = limits
        try:
            self.core.setMaxQueue(name, high, normal, low)
        except TooManyFunctions as e:
            return _tooMany(e)
        return _OK

    def admin_settings(self, args: list[bytes]) -> bytes:
        """
        The settings in force, one C{name<TAB>value} line each (gearmand
        users asked for a way to read C{maxqueue} and the options back:
        gearmand issue 110); per-function limits are in C{maxqueue} lines.
        """
        if self.settings is not None:
            pairs = self.settings()
        else:
            pairs = [
                ("version", self.version),
                ("job-retries", str(self.core.jobRetries)),
            ]
        lines = [
            b"%s\t%s\n"
            % (name.encode(), value.encode("utf-8", "replace").replace(b"\n", b" "))
            for name, value in pairs
        ]
        for name, high, normal, low in self.core.maxQueues():
            lines.append(b"maxqueue\t%s\t%d\t%d\t%d\n" % (name, high, normal, low))
        return _listing(lines)

    def admin_acl(self, args: list[bytes]) -> bytes:
        """C{acl list} without C{--acl} (a guarded connection answers it)."""
        return b"ERR ACL_DISABLED The+server+runs+without+--acl\r\n"

    def admin_getpid(self, args: list[bytes]) -> bytes:
        return b"OK %d\n" % (self.getpid(),)

    def admin_version(self, args: list[bytes]) -> bytes:
        return b"OK " + self.version.encode() + b"\n"

    def admin_verbose(self, args: list[bytes]) -> bytes:
        return b"OK " + self.verbosity.encode() + b"\n"
