"""Buckets of a trend, aligned to the clock in Norway. Pure.

Days and weeks start at midnight Europe/Oslo (weeks on Monday), so a day is 23 hours on
the last Sunday of March and 25 hours on the last Sunday of October. The database cuts the
buckets (`date_trunc` with the time zone); this module says where each one ends.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Literal

from rpm.norway import OSLO

Bucket = Literal["raw", "1h", "1d", "1w"]
# PostgreSQL's date_trunc field for each bucket.
TRUNCATE: dict[str, str] = {"1h": "hour", "1d": "day", "1w": "week"}
NOMINAL: dict[str, timedelta] = {"1h": timedelta(hours=1), "1d": timedelta(days=1), "1w": timedelta(weeks=1)}


def bucket_end(start: datetime, bucket: Bucket) -> datetime:
    """The end of the bucket that starts at `start` (exclusive), in Oslo time."""
    local = start.astimezone(OSLO)
    if bucket == "1h":
        return (start + timedelta(hours=1)).astimezone(OSLO)
    if bucket == "raw":
        return local
    days = 1 if bucket == "1d" else 7
    return datetime.combine(local.date() + timedelta(days=days), time(), OSLO)


def bucket_count(start: datetime, end: datetime, bucket: Bucket) -> int:
    """How many buckets the instants of [start, end] fall in, counted on the clock in Norway as
    the database cuts them: a day of 23 or 25 hours is one day. (Counting `end` itself makes it
    one more than [start, end) touches when `end` is a bucket's edge: a limit errs on the safe
    side.) A count of the period's length in nominal days was off by two across a change to
    summer time."""
    if bucket == "raw":
        return 0
    if bucket == "1h":  # Norway's offsets are whole hours: its hours are UTC's
        first = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        last = end.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        return (last - first) // NOMINAL["1h"] + 1
    first_day, last_day = start.astimezone(OSLO).date(), end.astimezone(OSLO).date()
    if bucket == "1d":
        return (last_day - first_day).days + 1
    first_monday = first_day - timedelta(days=first_day.weekday())
    last_monday = last_day - timedelta(days=last_day.weekday())
    return (last_monday - first_monday).days // 7 + 1
