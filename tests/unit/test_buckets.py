"""rpm.trends.buckets: where a trend bucket ends, in Norwegian time, and how many a period has.

Proves that a day bucket ends at the next local midnight (23 hours on the last Sunday of
March, 25 on the last Sunday of October, 24 otherwise), a week bucket at the next Monday
00:00 local, an hour bucket exactly 3,600 s later whatever the clock does (the skipped and
the repeated hour), and that buckets laid end to end tile a year without gaps; and that
bucket_count is the number of buckets a period touches (one more when it ends on an edge) and
refuses nothing sane.
Hand-computed cases for 2026 and properties (hypothesis) over 2000-2040, with the DST dates
computed independently (last Sunday of March and October).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpm.trends.buckets import OSLO, TRUNCATE, bucket_count, bucket_end

HOUR = timedelta(hours=1)
OSLO_ZONE = ZoneInfo("Europe/Oslo")


def oslo(text: str) -> datetime:
    """An ISO time with its offset, as an instant."""
    return datetime.fromisoformat(text)


def hours(start: datetime, end: datetime) -> float:
    """Elapsed hours between two instants (in UTC, so the zone's wall clock cannot fool it)."""
    return (end.astimezone(UTC) - start.astimezone(UTC)) / HOUR


def last_sunday(year: int, month: int) -> date:
    last = date(year, month, 31)
    return last - timedelta(days=(last.weekday() + 1) % 7)


def local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), OSLO_ZONE)


def test_the_zone_is_europe_oslo() -> None:
    assert OSLO.key == "Europe/Oslo"
    assert TRUNCATE == {"1h": "hour", "1d": "day", "1w": "week"}


# -- days --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "length"),
    [
        # Clocks forward on Sunday 2026-03-29 at 02:00: the day has 23 hours.
        ("2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00", 23),
        ("2026-03-28T00:00:00+01:00", "2026-03-29T00:00:00+01:00", 24),
        ("2026-03-30T00:00:00+02:00", "2026-03-31T00:00:00+02:00", 24),
        # Clocks back on Sunday 2026-10-25 at 03:00: the day has 25 hours.
        ("2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00", 25),
        ("2026-10-24T00:00:00+02:00", "2026-10-25T00:00:00+02:00", 24),
        ("2026-10-26T00:00:00+01:00", "2026-10-27T00:00:00+01:00", 24),
        ("2026-12-31T00:00:00+01:00", "2027-01-01T00:00:00+01:00", 24),
        ("2028-02-28T00:00:00+01:00", "2028-02-29T00:00:00+01:00", 24),  # leap day next
    ],
)
def test_day_ends_at_the_next_local_midnight(start: str, end: str, length: int) -> None:
    got = bucket_end(oslo(start), "1d")
    assert got == oslo(end)
    assert got.utcoffset() == oslo(end).utcoffset()
    assert got.isoformat() == end
    assert hours(oslo(start), got) == length


def test_day_start_given_in_utc_as_the_database_returns_it() -> None:
    # 2026-03-29 00:00 in Oslo is 2026-03-28 23:00 UTC; the day ends 22:00 UTC the next day.
    got = bucket_end(datetime(2026, 3, 28, 23, tzinfo=UTC), "1d")
    assert got.isoformat() == "2026-03-30T00:00:00+02:00"
    assert got == datetime(2026, 3, 29, 22, tzinfo=UTC)
    # 2026-10-25 00:00 in Oslo is 2026-10-24 22:00 UTC; the day ends 23:00 UTC the next day.
    got = bucket_end(datetime(2026, 10, 24, 22, tzinfo=UTC), "1d")
    assert got.isoformat() == "2026-10-26T00:00:00+01:00"
    assert got == datetime(2026, 10, 25, 23, tzinfo=UTC)


# -- weeks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "length"),
    [
        ("2026-03-23T00:00:00+01:00", "2026-03-30T00:00:00+02:00", 167),  # holds the short Sunday
        ("2026-03-30T00:00:00+02:00", "2026-04-06T00:00:00+02:00", 168),
        ("2026-10-19T00:00:00+02:00", "2026-10-26T00:00:00+01:00", 169),  # holds the long Sunday
        ("2026-11-30T00:00:00+01:00", "2026-12-07T00:00:00+01:00", 168),
        ("2026-12-28T00:00:00+01:00", "2027-01-04T00:00:00+01:00", 168),  # across the new year
    ],
)
def test_week_ends_on_the_next_monday_midnight(start: str, end: str, length: int) -> None:
    assert oslo(start).weekday() == 0
    got = bucket_end(oslo(start).astimezone(UTC), "1w")
    assert got.isoformat() == end
    assert got.weekday() == 0
    assert hours(oslo(start), got) == length


# -- hours and raw -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00"),  # 02:00 never happens
        ("2026-03-29T03:00:00+02:00", "2026-03-29T04:00:00+02:00"),
        ("2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00"),
        ("2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"),  # 02:00 happens twice
        ("2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"),
        ("2026-12-01T23:00:00+01:00", "2026-12-02T00:00:00+01:00"),
    ],
)
def test_hour_is_always_3600_seconds(start: str, end: str) -> None:
    got = bucket_end(oslo(start).astimezone(UTC), "1h")
    assert got.isoformat() == end
    assert got.utcoffset() == oslo(end).utcoffset()
    assert hours(oslo(start), got) == 1


def test_raw_ends_where_it_starts_in_oslo_time() -> None:
    at = datetime(2026, 7, 1, 6, 30, 15, tzinfo=UTC)
    got = bucket_end(at, "raw")
    assert got == at
    assert got.isoformat() == "2026-07-01T08:30:15+02:00"


# -- properties over decades -------------------------------------------------------------

instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 12, 31), timezones=st.just(UTC))


@settings(max_examples=500, deadline=None)
@given(instants)
def test_every_day_is_23_24_or_25_hours_by_the_dst_calendar(instant: datetime) -> None:
    day = instant.astimezone(OSLO_ZONE).date()
    start = local_midnight(day)
    end = bucket_end(start.astimezone(UTC), "1d")
    assert end == local_midnight(day + timedelta(days=1))
    assert (end.hour, end.minute, end.second, end.microsecond) == (0, 0, 0, 0)
    assert start <= instant < end
    expected = 23 if day == last_sunday(day.year, 3) else 25 if day == last_sunday(day.year, 10) else 24
    assert hours(start, end) == expected


@settings(max_examples=300, deadline=None)
@given(instants)
def test_every_week_runs_monday_to_monday(instant: datetime) -> None:
    day = instant.astimezone(OSLO_ZONE).date()
    monday = day - timedelta(days=day.weekday())
    start = local_midnight(monday)
    end = bucket_end(start, "1w")
    assert end == local_midnight(monday + timedelta(days=7))
    assert end.weekday() == 0 and end.astimezone(OSLO_ZONE).hour == 0
    assert start <= instant < end
    week = {monday + timedelta(days=n) for n in range(7)}
    expected = 168 - (last_sunday(monday.year, 3) in week) + (last_sunday(monday.year, 10) in week)
    assert hours(start, end) == expected


@settings(max_examples=300, deadline=None)
@given(instants)
def test_every_hour_bucket_is_one_hour_on_a_whole_local_hour(instant: datetime) -> None:
    start = instant.replace(minute=0, second=0, microsecond=0)  # Oslo's offsets are whole hours
    end = bucket_end(start, "1h")
    assert hours(start, end) == 1
    assert end.astimezone(OSLO_ZONE).minute == 0
    assert end.utcoffset() == end.astimezone(OSLO_ZONE).utcoffset()


@pytest.mark.parametrize("year", [2025, 2026, 2027])
def test_days_tile_a_year_without_gaps(year: int) -> None:
    start = local_midnight(date(year, 1, 1))
    at, days, lengths = start, 0, []
    while at < local_midnight(date(year + 1, 1, 1)):
        end = bucket_end(at, "1d")
        lengths.append(hours(at, end))
        at, days = end, days + 1
    assert at == local_midnight(date(year + 1, 1, 1))
    assert days == 365
    assert sorted(set(lengths)) == [23, 24, 25]
    assert lengths.count(23) == lengths.count(25) == 1
    assert hours(start, at) == 365 * 24


def test_weeks_tile_without_gaps() -> None:
    at = local_midnight(date(2025, 12, 29))  # a Monday
    for _ in range(60):
        end = bucket_end(at, "1w")
        assert end.weekday() == 0 and end.astimezone(OSLO_ZONE).time() == time()
        assert (end.astimezone(OSLO_ZONE).date() - at.astimezone(OSLO_ZONE).date()).days == 7
        at = end
    assert at == local_midnight(date(2025, 12, 29) + timedelta(weeks=60))


# -- bucket_count ------------------------------------------------------------------------


def test_bucket_count_hand_computed() -> None:
    start = datetime(2026, 9, 1, tzinfo=UTC)
    assert bucket_count(start, start + timedelta(days=90), "1d") == 91
    assert bucket_count(start, start + timedelta(days=1), "1h") == 25
    assert bucket_count(start, start + timedelta(hours=1, minutes=30), "1h") == 2
    assert bucket_count(start, start + timedelta(weeks=52), "1w") == 53
    assert bucket_count(start, start + timedelta(days=3650), "1w") == 522
    assert bucket_count(start, start + timedelta(minutes=1), "1d") == 1


def test_bucket_count_of_raw_is_zero() -> None:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    assert bucket_count(start, start + timedelta(days=3650), "raw") == 0


def test_hours_over_two_years_are_too_many_for_one_trend() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    two_years = start + timedelta(days=730)
    assert bucket_count(start, two_years, "1h") == 730 * 24 + 1 > 10_000
    assert bucket_count(start, two_years, "1d") == 731 < 10_000


def test_a_month_across_the_change_to_summer_time_counts_its_days() -> None:
    # Found by hypothesis: 24 days 23:59 from 23:01 on 6 March to just past midnight on 1 April
    # (a 23-hour day between) touches 27 days; the nominal count said 25.
    start = datetime(2024, 3, 6, 22, 1, 0, 1, tzinfo=UTC)
    end = datetime(2024, 3, 31, 22, 0, 0, 1, tzinfo=UTC)
    assert bucket_count(start, end, "1d") == touched(start, end, "1d") == 27


def touched(start: datetime, end: datetime, bucket: str) -> int:
    """How many buckets the instants of [start, end) fall in, by counting local dates and hours."""
    last = end - timedelta(microseconds=1)
    if bucket == "1h":
        first_hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        last_hour = last.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        return int((last_hour - first_hour) / HOUR) + 1
    first_day, last_day = start.astimezone(OSLO_ZONE).date(), last.astimezone(OSLO_ZONE).date()
    if bucket == "1d":
        return (last_day - first_day).days + 1
    first_monday = first_day - timedelta(days=first_day.weekday())
    last_monday = last_day - timedelta(days=last_day.weekday())
    return (last_monday - first_monday).days // 7 + 1


@settings(max_examples=400, deadline=None)
@given(
    st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)),
    st.integers(min_value=1, max_value=400 * 24 * 60),
    st.sampled_from(["1h", "1d", "1w"]),
)
def test_bucket_count_is_within_one_of_the_buckets_touched(start: datetime, minutes: int, bucket: str) -> None:
    end = start + timedelta(minutes=minutes)
    assert 0 <= bucket_count(start, end, bucket) - touched(start, end, bucket) <= 1  # type: ignore[arg-type]
    # Longer periods never have fewer buckets.
    assert bucket_count(start, end + timedelta(days=1), bucket) >= bucket_count(start, end, bucket)  # type: ignore[arg-type]
