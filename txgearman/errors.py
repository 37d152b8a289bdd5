# -*- test-case-name: txgearman.test.test_clientprotocol -*-
"""
What can go wrong for a Gearman client or worker, as exceptions.

A Deferred from L{txgearman.client} fails with one of these, so that
callers can tell a job that failed from a server that refused it from a
connection that went away.
"""

from __future__ import annotations

__all__ = [
    "GearmanError",
    "ServerError",
    "JobFailed",
    "JobException",
    "ConnectionLost",
    "NoServerAvailable",
]


class GearmanError(Exception):
    """
    The base of every error in this package's client and worker API.
    """


class ServerError(GearmanError):
    """
    The server answered a request with an ERROR packet.

    @ivar code: the error code, such as C{b"QUEUE_ERROR"}.
    @ivar text: the server's explanation.
    """

    def __init__(self, code: bytes, text: bytes) -> None:
        super().__init__(f"{code.decode('ascii', 'replace')}: {text.decode('utf-8', 'replace')}")
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


class ConnectionLost(GearmanError):
    """
    The connection to the server was lost before the answer came: the job
    may or may not have run.
    """


class NoServerAvailable(GearmanError):
    """
    None of the configured job servers could be reached in time.
    """
