"""Buckets of a trend, aligned to the clock in Norway. Pure.

Days and weeks start at midnight Europe/Oslo (weeks on Monday), so a day is 23 hours on
the last Sunday of March and 25 hours on the last Sunday of October. The database cuts the
buckets (`date_trunc` with the time zone); this module says where each one ends.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
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
    """About how many buckets the period spans (a DST change adds or removes an hour)."""
    if bucket == "raw":
        return 0
    return int((end - start) / NOMINAL[bucket]) + 1
