# -*- test-case-name: txgearman.test.test_schedule -*-
"""
Jobs that run at a time: when they run, and waiting for it.

L{CronSchedule} reads SUBMIT_JOB_SCHED's cron fields.  gearmand refuses
SUBMIT_JOB_SCHED; txgearman runs such a job once, at the first minute
(UTC) after submission that matches its five cron fields, the way one line
of a crontab would fire.

L{TimedJobs} holds the jobs whose time (SUBMIT_JOB_EPOCH's, or the one a
L{CronSchedule} gave) has not come yet, and hands each back to the server
when it does.
"""

from __future__ import annotations

import calendar
import heapq
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from txgearman.server.job import JobState

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall, IReactorTime

    from txgearman.server.job import Job

__all__ = ["CronSchedule", "InvalidSchedule", "TimedJobs"]

_SCHEDULED = JobState.SCHEDULED

# (name, lowest, highest) for minute, hour, day of month, month, day of week.
_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)

# How far ahead to look before deciding a schedule can never fire
# (e.g. 31 February): long enough to cover every leap-year combination.
_HORIZON_DAYS = 366 * 8


class InvalidSchedule(ValueError):
    """A cron field that cannot be parsed or never matches."""


def _number(text: str) -> int:
    """
    A cron number: ASCII digits only (no sign, space or underscore, which
    C{int} would accept).
    """
    if not (text.isascii() and text.isdigit()):
        raise ValueError(text)
    return int(text)


def _parseField(raw: bytes, name: str, low: int, high: int) -> frozenset[int] | None:
    """
    Parse one cron field: C{*} or empty (any), C{N}, C{A-B}, C{*/S},
    C{A-B/S}, and comma-separated lists of these.

    @return: the matching values, or C{None} for "any".
    """
    text = raw.decode("ascii", "replace").strip()
    if text in ("", "*"):
        return None
    values: set[int] = set()
    for part in text.split(","):
        rangePart, slash, stepPart = part.partition("/")
        try:
            step = _number(stepPart) if slash else 1
            if rangePart == "*":
                start, end = low, high
            elif "-" in rangePart:
                a, b = rangePart.split("-", 1)
                start, end = _number(a), _number(b)
            else:
                start = end = _number(rangePart)
                if slash:
                    end = high
        except ValueError:
            raise InvalidSchedule(
                f"{name} field {text!r} is not a cron expression"
            ) from None
        if step < 1 or not (low <= start <= end <= high):
            raise InvalidSchedule(f"{name} field {text!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """
    Five parsed cron fields; C{None} means "any".

    @ivar dayOrWeekday: a day matches if its day of month I{or} its day of
        week does (crontab(5), when both fields are restricted and neither
        starts with C{*}); otherwise both must.
    """

    minutes: frozenset[int] | None
    hours: frozenset[int] | None
    days: frozenset[int] | None
    months: frozenset[int] | None
    weekdays: frozenset[int] | None
    dayOrWeekday: bool = False

    @classmethod
    def parse(
        cls, minute: bytes, hour: bytes, day: bytes, month: bytes, weekday: bytes
    ) -> CronSchedule:
        """
        Parse the fields of a SUBMIT_JOB_SCHED packet.

        @raise InvalidSchedule: a field is malformed or out of range.
        """
        parsed = [
            _parseField(raw, *spec)
            for raw, spec in zip(
                (minute, hour, day, month, weekday), _FIELDS, strict=True
            )
        ]
        weekdays = parsed[4]
        if weekdays is not None and 7 in weekdays:
            # Both 0 and 7 mean Sunday, as in crontab(5).
            weekdays = (weekdays - {7}) | {0}
        # As in cron: "*/2" in either field is not a restriction for the
        # day-of-month-or-day-of-week rule.
        dayOrWeekday = (
            parsed[2] is not None
            and weekdays is not None
            and not day.strip().startswith(b"*")
            and not weekday.strip().startswith(b"*")
        )
        return cls(parsed[0], parsed[1], parsed[2], parsed[3], weekdays, dayOrWeekday)

    def _dayMatches(self, day: datetime) -> bool:
        if self.months is not None and day.month not in self.months:
            return False
        cronWeekday = (day.weekday() + 1) % 7  # Monday=1 ... Sunday=0
        dayOk = self.days is None or day.day in self.days
        weekdayOk = self.weekdays is None or cronWeekday in self.weekdays
        if self.dayOrWeekday:
            # crontab(5): when both are restricted, either may match.
            return dayOk or weekdayOk
        return dayOk and weekdayOk

    def nextAfter(self, now: float) -> int:
        """
        The first whole minute strictly after C{now} (epoch seconds, UTC)
        that matches, as epoch seconds.

        @raise InvalidSchedule: nothing matches within eight years.
        """
        start = datetime.fromtimestamp(int(now) // 60 * 60, tz=UTC) + timedelta(
            minutes=1
        )
        hours = sorted(self.hours) if self.hours is not None else list(range(24))
        minutes = sorted(self.minutes) if self.minutes is not None else list(range(60))
        day = start.replace(hour=0, minute=0)
        for offset in range(_HORIZON_DAYS):
            if offset:
                day = day + timedelta(days=1)
            if not self._dayMatches(day):
                continue
            for h in hours:
                for m in minutes:
                    candidate = day.replace(hour=h, minute=m)
                    if candidate >= start:
                        return calendar.timegm(candidate.timetuple())
        raise InvalidSchedule("the schedule never matches")


class TimedJobs:
    """
    Jobs waiting for their time, in a heap by time (then by arrival), with
    one delayed call for the earliest.

    A job that leaves the schedule early (cancelled, or abandoned by its
    last client) is not searched for: its entry stays in the heap and is
    skipped once it comes up, since the job is no longer C{SCHEDULED}.
    """

    def __init__(self, clock: IReactorTime, due: Callable[[Job], None]) -> None:
        """
        @param clock: where time comes from, and the delayed call.
        @param due: called with each job, still C{SCHEDULED}, whose time
            came, earliest first.
        """
        self.clock = clock
        self.due = due
        self._heap: list[tuple[int, int, Job]] = []
        self._timer: IDelayedCall | None = None
        self._seq = 0

    def __len__(self) -> int:
        """Entries in the heap, including those of jobs gone early."""
        return len(self._heap)

    def add(self, job: Job) -> None:
        """Wait for C{job.when}, an epoch second in the future."""
        self._seq += 1
        heapq.heappush(self._heap, (job.when, self._seq, job))
        if self._heap[0][2] is job:
            self._arm()

    def _arm(self) -> None:
        """Have the delayed call wait for the earliest job still waiting."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        heap = self._heap
        while heap and heap[0][2].state is not _SCHEDULED:
            heapq.heappop(heap)
        if heap:
            delay = max(0.0, heap[0][0] - self.clock.seconds())
            self._timer = self.clock.callLater(delay, self._run)

    def _run(self) -> None:
        self._timer = None
        now = self.clock.seconds()
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, job = heapq.heappop(heap)
            if job.state is _SCHEDULED:
                self.due(job)
        self._arm()

    def stop(self) -> None:
        """The server is going away: cancel the delayed call."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
