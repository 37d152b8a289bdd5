# -*- test-case-name: txgearman.test.test_counts -*-
"""
L{JobCounts}: what the server has done since it started, counted as it
happens, for C{/metrics}.  One integer increment per event on the job's
path; ERROR answers, which are rare, by their code.
"""

from __future__ import annotations

__all__ = ["JobCounts"]


class JobCounts:
    """
    @ivar foreground: foreground jobs made (a submit that joined a live
        job by its unique id makes none).
    @ivar background: background jobs made, to run now.
    @ivar epoch: background jobs made to run later (SUBMIT_JOB_EPOCH, SCHED).
    @ivar completed: jobs that ended with WORK_COMPLETE.
    @ivar failed: jobs that ended with WORK_FAIL.
    @ivar exceptions: jobs that ended with WORK_EXCEPTION.
    @ivar retried: jobs queued again after their worker failed them
        (disconnect, CANT_DO, CAN_DO_TIMEOUT).
    @ivar dropped: jobs dropped past C{--job-retries}.
    @ivar errors: ERROR answers the core sent, by code: C{QUEUE_ERROR}
        counts the submits refused for a full queue or a store that
        failed; C{SERVER_DRAINING}, C{TOO_MANY_FUNCTIONS}, C{JOB_NOT_FOUND}
        and the argument errors the rest.
    """

    __slots__ = (
        "foreground",
        "background",
        "epoch",
        "completed",
        "failed",
        "exceptions",
        "retried",
        "dropped",
        "errors",
    )

    def __init__(self) -> None:
        self.foreground = 0
        self.background = 0
        self.epoch = 0
        self.completed = 0
        self.failed = 0
        self.exceptions = 0
        self.retried = 0
        self.dropped = 0
        self.errors: dict[bytes, int] = {}

    def error(self, code: bytes) -> None:
        """The core answered with C{ERROR code}."""
        self.errors[code] = self.errors.get(code, 0) + 1
