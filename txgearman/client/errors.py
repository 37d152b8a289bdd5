# -*- test-case-name: txgearman.test.test_clientprotocol -*-
"""
What can go wrong for a Gearman client, worker or admin client, as
exceptions.

A Deferred from L{txgearman.client} fails with one of these, so that
callers can tell a job that failed from a server that refused it from a
connection that went away.  Every one is a L{GearmanError}, and none shares
its name with a Twisted exception (C{twisted.internet.error.ConnectionLost}
is a different class from L{GearmanConnectionLost}).
"""

from __future__ import annotations

import re

from twisted.internet import defer

__all__ = [
    "GearmanError",
    "ServerError",
    "JobFailed",
    "JobException",
    "GearmanConnectionLost",
    "NoServerAvailable",
    "AdminError",
    "AdminConnectionLost",
    "AdminConnectFailed",
    "AdminTimeout",
]

# An admin error code: what gearmand sends before the text of an C{ERR}.
_CODE = re.compile(rb"[A-Z][A-Z0-9_]*\Z")


class GearmanError(Exception):
    """
    The base of every error the client library raises.
    """


class ServerError(GearmanError):
    """
    The server answered a request with an ERROR packet.

    @ivar code: the error code, such as C{b"QUEUE_ERROR"}.
    @ivar text: the server's explanation.
    """

    def __init__(self, code: bytes, text: bytes) -> None:
        super().__init__(
            f"{code.decode('ascii', 'replace')}: {text.decode('utf-8', 'replace')}"
        )
        self.code = code
        self.text = text


class JobFailed(GearmanError):
    """
    The job failed: its worker sent WORK_FAIL.

    A worker function raises it to make its worker send WORK_FAIL (any
    other exception sends WORK_EXCEPTION).

    @ivar handle: the job's handle, when known.
    """

    def __init__(self, handle: bytes = b"", message: str = "the job failed") -> None:
        super().__init__(message)
        self.handle = handle


class JobException(GearmanError):
    """
    The job's worker sent WORK_EXCEPTION.

    @ivar handle: the job's handle.
    @ivar data: what the worker said about the exception.
    """

    def __init__(self, handle: bytes, data: bytes) -> None:
        super().__init__(data.decode("utf-8", "replace"))
        self.handle = handle
        self.data = data


class GearmanConnectionLost(GearmanError):
    """
    The connection to the server was lost before the answer came: the job
    may or may not have run.
    """


class NoServerAvailable(GearmanError):
    """
    None of the configured job servers could be reached in time.
    """


class AdminError(GearmanError):
    """
    The server answered an admin command with C{ERR CODE text}.

    @ivar code: the error code, e.g. C{"UNKNOWN_JOB"}; C{""} when the
        server sent only prose (gearmand's C{ERR function not found}).
    @ivar text: the rest, with gearmand's C{+}-for-space encoding undone.
    """

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code}: {text}" if code and text else code or text)
        self.code = code
        self.text = text

    @classmethod
    def fromReply(cls, line: bytes) -> AdminError:
        """Parse an C{ERR ...} reply line."""
        code, _, text = line[4:].partition(b" ")
        if not _CODE.match(code):
            code, text = b"", line[4:]
        return cls(
            code.decode("ascii"), text.replace(b"+", b" ").decode("utf-8", "replace")
        )


class AdminConnectionLost(GearmanConnectionLost):
    """
    The admin connection closed before the command's reply was complete.
    """


class AdminConnectFailed(NoServerAvailable):
    """
    The admin client could not connect to its server (refused, unknown
    host, ...); the message says why, and C{reason} is the connection's own
    error.
    """

    def __init__(self, message: str, reason: BaseException | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class AdminTimeout(GearmanError, defer.TimeoutError):
    """
    An admin command had no complete reply within the admin client's
    timeout.  Also a L{twisted.internet.defer.TimeoutError}, so code that
    catches that still does.
    """
