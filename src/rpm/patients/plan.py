"""Adherence to the measurement plan. Pure.

The plan asks for a reading of a type every `every_hours`. Over the last 7 days that makes
7 x 24 / every_hours intervals, counted back from now (one interval for a plan asking less
often than weekly), and an interval counts as received when at least one reading was taken
in it: three weighings on Monday do not make up for none on Tuesday to Sunday. Intervals
that began before the patient was enrolled are not expected.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

WEEK = timedelta(days=7)


def interval_count(every_hours: int) -> int:
    """Intervals of the plan in the adherence window (the last week, or one interval)."""
    return max(1, WEEK // timedelta(hours=every_hours))


def window(every_hours: int) -> timedelta:
    """How far back the adherence of a plan item looks."""
    return interval_count(every_hours) * timedelta(hours=every_hours)


def plan_adherence(
    every_hours: int, taken: Iterable[datetime], enrolled_at: datetime, now: datetime
) -> tuple[int, int]:
    """(intervals with a reading, intervals expected) for one plan item; `taken` are the times
    of the type's readings (any may lie outside the window)."""
    interval = timedelta(hours=every_hours)
    since_enrolment = max(0, (now - enrolled_at) // interval)
    expected = min(interval_count(every_hours), since_enrolment)
    # Interval 0 ends now; a reading up to 10 minutes ahead of the clock (allowed by the
    # contract) belongs to it.
    filled = {max(0, (now - at) // interval) for at in taken}
    return sum(1 for k in filled if k < expected), expected


def ratio(received: int, expected: int) -> float | None:
    return round(received / expected, 3) if expected else None
