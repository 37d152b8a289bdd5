"""
Tests for L{txgearman.server.schedule}: parsing SUBMIT_JOB_SCHED's cron fields,
finding the minute they next match, and the jobs waiting for their time.
"""

from __future__ import annotations

import calendar

from twisted.internet import task
from twisted.trial import unittest

from txgearman.codec import Priority
from txgearman.server.function import Function
from txgearman.server.job import Job, JobState
from txgearman.server.schedule import CronSchedule, InvalidSchedule, TimedJobs


def at(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> int:
    """Epoch seconds of a UTC time."""
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))


def cron(
    minute: bytes = b"*",
    hour: bytes = b"*",
    day: bytes = b"*",
    month: bytes = b"*",
    weekday: bytes = b"*",
) -> CronSchedule:
    return CronSchedule.parse(minute, hour, day, month, weekday)


#: Monday 15 January 2024, 10:30 UTC.
MONDAY = at(2024, 1, 15, 10, 30)


class ParseTests(unittest.SynchronousTestCase):
    """
    L{CronSchedule.parse} reads the five fields.
    """

    def test_any(self) -> None:
        """
        C{*} and an empty field both mean any value.
        """
        self.assertEqual(cron(), CronSchedule(None, None, None, None, None))
        self.assertEqual(
            cron(b"", b"", b"", b"", b""), CronSchedule(None, None, None, None, None)
        )
        self.assertEqual(cron(b" * "), cron())

    def test_forms(self) -> None:
        """
        Single values, ranges, steps over C{*}, over a range and from a
        start value, and comma-separated lists of these.
        """
        self.assertEqual(cron(minute=b"7").minutes, {7})
        self.assertEqual(cron(minute=b"10-13").minutes, {10, 11, 12, 13})
        self.assertEqual(cron(minute=b"*/15").minutes, {0, 15, 30, 45})
        self.assertEqual(cron(minute=b"1-10/3").minutes, {1, 4, 7, 10})
        self.assertEqual(cron(minute=b"5/20").minutes, {5, 25, 45})
        self.assertEqual(cron(hour=b"1,2,5-6,*/12").hours, {0, 1, 2, 5, 6, 12})
        self.assertEqual(cron(day=b"*/10").days, {1, 11, 21, 31})
        self.assertEqual(cron(month=b"*/4").months, {1, 5, 9})

    def test_fieldBounds(self) -> None:
        """
        Each field accepts exactly its range.
        """
        self.assertEqual(cron(minute=b"0,59").minutes, {0, 59})
        self.assertEqual(cron(hour=b"0,23").hours, {0, 23})
        self.assertEqual(cron(day=b"1,31").days, {1, 31})
        self.assertEqual(cron(month=b"1,12").months, {1, 12})
        self.assertEqual(cron(weekday=b"0-6").weekdays, set(range(7)))

    def test_sundayAsSeven(self) -> None:
        """
        Day of week 7 is Sunday, stored as 0.
        """
        self.assertEqual(cron(weekday=b"7").weekdays, {0})
        self.assertEqual(cron(weekday=b"5-7").weekdays, {0, 5, 6})
        self.assertEqual(cron(weekday=b"0,7").weekdays, {0})

    def test_outOfRange(self) -> None:
        """
        Values outside a field's range are refused.
        """
        for fields in [
            {"minute": b"60"},
            {"minute": b"58-61"},
            {"hour": b"24"},
            {"day": b"0"},
            {"day": b"32"},
            {"month": b"0"},
            {"month": b"13"},
            {"weekday": b"8"},
            {"minute": b"5-3"},
            {"minute": b"*/0"},
            {"minute": b"1-5/0"},
        ]:
            self.assertRaises(InvalidSchedule, cron, **fields)

    def test_malformed(self) -> None:
        """
        Anything but digits, C{*}, C{-}, C{/} and C{,} in their places is
        refused.
        """
        for raw in [
            b"a",
            b"1-",
            b"-1",
            b"1,,2",
            b",",
            b"1/",
            b"*/",
            b"/5",
            b"*-5",
            b"1-2-3",
            b"+5",
            b"1_0",
            b"1 2",
            b"1, 2",
            b"**",
            b"\xff",
            b"\xd9\xa3",
            b"MON",
        ]:
            for field in ("minute", "hour", "day", "month", "weekday"):
                self.assertRaises(InvalidSchedule, cron, **{field: raw})

    def test_invalidIsValueError(self) -> None:
        """
        L{InvalidSchedule} is a L{ValueError}.
        """
        self.assertTrue(issubclass(InvalidSchedule, ValueError))


class NextAfterTests(unittest.SynchronousTestCase):
    """
    L{CronSchedule.nextAfter} is the first matching whole minute strictly
    after the given time, in UTC.
    """

    def test_everyMinute(self) -> None:
        """
        With every field open, the next whole minute.
        """
        self.assertEqual(cron().nextAfter(MONDAY), MONDAY + 60)
        self.assertEqual(cron().nextAfter(MONDAY + 59.9), MONDAY + 60)
        self.assertEqual(cron().nextAfter(MONDAY - 0.5), MONDAY)

    def test_sameHourLater(self) -> None:
        """
        A later minute of the current hour.
        """
        self.assertEqual(cron(minute=b"45").nextAfter(MONDAY), at(2024, 1, 15, 10, 45))
        self.assertEqual(
            cron(minute=b"*/15").nextAfter(MONDAY), at(2024, 1, 15, 10, 45)
        )

    def test_fixedHour(self) -> None:
        """
        A time of day already past today is tomorrow; one still ahead is
        today.
        """
        self.assertEqual(cron(b"0", b"9").nextAfter(MONDAY), at(2024, 1, 16, 9, 0))
        self.assertEqual(cron(b"0", b"11").nextAfter(MONDAY), at(2024, 1, 15, 11, 0))
        self.assertEqual(cron(b"30", b"10").nextAfter(MONDAY), at(2024, 1, 16, 10, 30))
        self.assertEqual(cron(hour=b"12").nextAfter(MONDAY), at(2024, 1, 15, 12, 0))

    def test_dayOfWeekOnly(self) -> None:
        """
        A restricted day of week with an open day of month: that weekday.
        """
        self.assertEqual(
            cron(b"0", b"9", weekday=b"1").nextAfter(MONDAY), at(2024, 1, 22, 9, 0)
        )
        self.assertEqual(
            cron(b"0", b"9", weekday=b"5").nextAfter(MONDAY), at(2024, 1, 19, 9)
        )

    def test_dayOfMonthOnly(self) -> None:
        """
        A restricted day of month with an open day of week: that day.
        """
        self.assertEqual(cron(b"0", b"0", b"1").nextAfter(MONDAY), at(2024, 2, 1))

    def test_dayOfMonthOrDayOfWeek(self) -> None:
        """
        When both are restricted, a day matching either one matches.
        """
        schedule = cron(b"0", b"0", b"1", b"*", b"5")
        self.assertEqual(schedule.nextAfter(MONDAY), at(2024, 1, 19))
        self.assertEqual(schedule.nextAfter(at(2024, 1, 27)), at(2024, 2, 1))
        self.assertEqual(schedule.nextAfter(at(2024, 2, 1)), at(2024, 2, 2))

    def test_starStepIsNotARestriction(self) -> None:
        """
        As in cron, a day field starting with C{*} does not trigger the
        either-one rule: C{*/2} days and Fridays means odd days that are
        Fridays.
        """
        schedule = cron(b"0", b"0", b"*/2", b"*", b"5")
        self.assertFalse(schedule.dayOrWeekday)
        # Friday 19 January is odd; Friday 26 is not.
        self.assertEqual(schedule.nextAfter(MONDAY), at(2024, 1, 19))
        self.assertEqual(schedule.nextAfter(at(2024, 1, 19, 1)), at(2024, 2, 9))
        self.assertTrue(cron(day=b"1", weekday=b"5").dayOrWeekday)
        self.assertFalse(cron(day=b"1").dayOrWeekday)

    def test_sundayZeroAndSeven(self) -> None:
        """
        0 and 7 both select Sunday.
        """
        for raw in (b"0", b"7"):
            self.assertEqual(
                cron(b"0", b"12", weekday=raw).nextAfter(MONDAY),
                at(2024, 1, 21, 12),
                raw,
            )

    def test_monthRollover(self) -> None:
        """
        Past the last minute of a month comes the next month's first.
        """
        self.assertEqual(cron().nextAfter(at(2024, 1, 31, 23, 59, 30)), at(2024, 2, 1))
        self.assertEqual(
            cron(b"0", b"0", b"31").nextAfter(at(2024, 1, 31, 0, 0, 1)), at(2024, 3, 31)
        )
        self.assertEqual(
            cron(b"0", b"0", b"30").nextAfter(at(2024, 2, 1)), at(2024, 3, 30)
        )

    def test_yearRollover(self) -> None:
        """
        A date already past this year is next year's.
        """
        self.assertEqual(cron(b"0", b"0", b"1", b"1").nextAfter(MONDAY), at(2025, 1, 1))
        self.assertEqual(
            cron(b"59", b"23", b"31", b"12").nextAfter(at(2024, 12, 31, 23, 58, 30)),
            at(2024, 12, 31, 23, 59),
        )
        self.assertEqual(cron().nextAfter(at(2024, 12, 31, 23, 59)), at(2025, 1, 1))

    def test_leapDay(self) -> None:
        """
        29 February is found in the next leap year, skipping 2100.
        """
        schedule = cron(b"0", b"0", b"29", b"2")
        self.assertEqual(schedule.nextAfter(at(2023, 6, 1)), at(2024, 2, 29))
        self.assertEqual(schedule.nextAfter(at(2024, 3, 1)), at(2028, 2, 29))
        self.assertEqual(schedule.nextAfter(at(2097, 3, 1)), at(2104, 2, 29))

    def test_neverMatches(self) -> None:
        """
        Dates that do not exist never match: L{InvalidSchedule}.
        """
        for day, month in [
            (b"31", b"2"),
            (b"30", b"2"),
            (b"31", b"4"),
            (b"31", b"4,6,9,11"),
        ]:
            schedule = cron(b"0", b"0", day, month)
            self.assertRaises(InvalidSchedule, schedule.nextAfter, MONDAY)

    def test_impossibleDateWithWeekday(self) -> None:
        """
        With the either-one rule, 31 February on Mondays fires on Mondays
        of February.
        """
        schedule = cron(b"0", b"0", b"31", b"2", b"1")
        self.assertEqual(schedule.nextAfter(MONDAY), at(2024, 2, 5))

    def test_wholeMinutes(self) -> None:
        """
        Results are whole minutes whatever the fraction of C{now}.
        """
        schedule = cron(minute=b"*/7")
        now = MONDAY + 12.345
        for _ in range(50):
            nxt = schedule.nextAfter(now)
            self.assertEqual(nxt % 60, 0)
            self.assertGreater(nxt, now)
            self.assertIn((nxt // 60) % 60, schedule.minutes or ())
            now = nxt


class TimedJobsTests(unittest.SynchronousTestCase):
    """
    L{TimedJobs} hands jobs back when their time comes, earliest first,
    with one delayed call at a time.
    """

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.clock.advance(MONDAY)
        self.due: list[bytes] = []
        self.timed = TimedJobs(self.clock, self.ran)
        self.addCleanup(self.timed.stop)
        self.function = Function(b"fn")
        self.count = 0

    def ran(self, job: Job) -> None:
        self.assertIs(job.state, JobState.SCHEDULED)
        self.due.append(job.handle)
        self.function.release(job)

    def add(self, delay: int) -> Job:
        """A job scheduled C{delay} seconds from now."""
        self.count += 1
        when = int(self.clock.seconds()) + delay
        job = Job(
            b"%d" % self.count, self.function, b"", b"", Priority.NORMAL, True, when
        )
        self.function.admit(job)
        self.function.schedule(job)
        self.timed.add(job)
        return job

    def test_inTimeOrder(self) -> None:
        """
        Jobs come back at their own times, in time order, those due at the
        same time in the order they were added; one delayed call waits.
        """
        self.add(30)
        self.add(10)
        self.add(10)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.clock.advance(9)
        self.assertEqual(self.due, [])
        self.clock.advance(1)
        self.assertEqual(self.due, [b"2", b"3"])
        self.clock.advance(20)
        self.assertEqual(self.due, [b"2", b"3", b"1"])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len(self.timed), 0)

    def test_earlierRearms(self) -> None:
        """
        A job due before the one the delayed call waits for moves the call
        earlier.
        """
        self.add(100)
        self.add(5)
        [call] = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime(), MONDAY + 5)
        self.clock.advance(5)
        self.assertEqual(self.due, [b"2"])
        [call] = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime(), MONDAY + 100)

    def test_goneEarly(self) -> None:
        """
        A job that left the schedule (no longer C{SCHEDULED}) is skipped
        when its time comes, and the delayed call waits for the next job
        still waiting.
        """
        first = self.add(10)
        self.add(20)
        self.function.forget(first)
        self.clock.advance(10)
        self.assertEqual(self.due, [])
        [call] = self.clock.getDelayedCalls()
        self.assertEqual(call.getTime(), MONDAY + 20)
        self.clock.advance(10)
        self.assertEqual(self.due, [b"2"])

    def test_allGone(self) -> None:
        """
        When every job left early, no delayed call is left once the first
        time passes.
        """
        self.function.forget(self.add(10))
        self.clock.advance(10)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop(self) -> None:
        """
        L{TimedJobs.stop} cancels the delayed call; nothing comes back.
        """
        self.add(10)
        self.timed.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(10)
        self.assertEqual(self.due, [])
