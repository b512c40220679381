"""Service hours, pure (rpm.organisations.service_hours): Norwegian public holidays, in_service,
next_start and service_time_between across weekends, holidays and both daylight-saving changes.

Proves: Easter by the computus against published dates; every holiday of a year by name; the
default weekdays 08:00-15:30 Europe/Oslo with holidays off; the 29 March and 25 October 2026
changes (a service day stays 7 h 30 min, the night loses or gains its hour outside service);
the JSONB form round-trips and its mistakes name the field; and, for any instants, service time
is additive, never exceeds the wall time, and next_start lands in service hours.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpm.organisations.service_hours import (
    DEFAULT,
    InvalidServiceHours,
    ServiceHours,
    any_in_service,
    easter_sunday,
    is_norwegian_holiday,
    norwegian_holidays,
    service_time_between_any,
    service_time_reached_any,
)

OSLO = ZoneInfo("Europe/Oslo")
MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)
DAY_OF_SERVICE = 7 * HOUR + 30 * MINUTE


def oslo(*args: int) -> datetime:
    return datetime(*args, tzinfo=OSLO)  # type: ignore[misc]


# -- holidays -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("year", "easter"),
    [(2000, date(2000, 4, 23)), (2008, date(2008, 3, 23)), (2011, date(2011, 4, 24)), (2019, date(2019, 4, 21)),
     (2024, date(2024, 3, 31)), (2025, date(2025, 4, 20)), (2026, date(2026, 4, 5)), (2038, date(2038, 4, 25)),
     (2285, date(2285, 3, 22))],
)  # fmt: skip
def test_easter_sunday_as_published(year: int, easter: date) -> None:
    assert easter_sunday(year) == easter


def test_the_holidays_of_2026_by_name() -> None:
    assert norwegian_holidays(2026) == {
        date(2026, 1, 1): "1. nyttårsdag",
        date(2026, 4, 2): "Skjærtorsdag",
        date(2026, 4, 3): "Langfredag",
        date(2026, 4, 5): "1. påskedag",
        date(2026, 4, 6): "2. påskedag",
        date(2026, 5, 1): "Arbeidernes dag",
        date(2026, 5, 14): "Kristi himmelfartsdag",
        date(2026, 5, 17): "Grunnlovsdag",
        date(2026, 5, 24): "1. pinsedag",
        date(2026, 5, 25): "2. pinsedag",
        date(2026, 12, 25): "1. juledag",
        date(2026, 12, 26): "2. juledag",
    }


@given(st.integers(min_value=1900, max_value=2400))
def test_every_year_has_twelve_holidays_around_a_sunday_easter(year: int) -> None:
    holidays = norwegian_holidays(year)
    easter = easter_sunday(year)
    assert easter.isoweekday() == 7 and date(year, 3, 22) <= easter <= date(year, 4, 25)
    moving = {easter + timedelta(days=d) for d in (-3, -2, 0, 1, 39, 49, 50)}
    fixed = {date(year, m, d) for m, d in ((1, 1), (5, 1), (5, 17), (12, 25), (12, 26))}
    assert set(holidays) == moving | fixed  # twelve, less any coinciding (Ascension on 17 May 2012)
    assert (easter + timedelta(days=39)).isoweekday() == 4 and (easter + timedelta(days=49)).isoweekday() == 7
    assert all(is_norwegian_holiday(day) for day in moving | fixed)
    assert not is_norwegian_holiday(easter + timedelta(days=2)) or easter + timedelta(days=2) in fixed


# -- the default service ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "staffed"),
    [
        (oslo(2026, 11, 30, 7, 59, 59), False),  # Monday before opening
        (oslo(2026, 11, 30, 8, 0), True),  # opening is in
        (oslo(2026, 11, 30, 15, 29, 59), True),
        (oslo(2026, 11, 30, 15, 30), False),  # closing is out
        (oslo(2026, 12, 5, 10, 0), False),  # Saturday
        (oslo(2026, 12, 6, 10, 0), False),  # Sunday
        (oslo(2026, 5, 18, 10, 0), True),  # Monday after 17 May
        (oslo(2027, 5, 17, 10, 0), False),  # 17 May on a Monday
        (oslo(2026, 4, 6, 10, 0), False),  # Easter Monday
        (oslo(2026, 4, 2, 10, 0), False),  # Maundy Thursday
        (oslo(2026, 4, 7, 10, 0), True),  # the Tuesday after Easter
        (oslo(2026, 12, 24, 10, 0), True),  # Christmas Eve is no public holiday
    ],
)
def test_in_service_by_default(at: datetime, staffed: bool) -> None:
    assert DEFAULT.in_service(at) is staffed
    assert DEFAULT.in_service(at.astimezone(UTC)) is staffed, "the instant, not its zone, decides"


def test_a_weekend_has_no_service_time() -> None:
    friday = oslo(2026, 12, 4, 15, 20)
    assert DEFAULT.service_time_between(friday, oslo(2026, 12, 7, 8, 0)) == 10 * MINUTE
    assert DEFAULT.service_time_between(friday, oslo(2026, 12, 7, 8, 5)) == 15 * MINUTE
    assert DEFAULT.next_start(friday + HOUR) == oslo(2026, 12, 7, 8, 0)
    assert DEFAULT.next_start(friday) == friday


def test_17_may_and_easter_monday_are_skipped() -> None:
    # Sunday 17 May 2026 falls on the weekend anyway; in 2027 it is a Monday.
    assert DEFAULT.next_start(oslo(2027, 5, 14, 16, 0)) == oslo(2027, 5, 18, 8, 0)
    assert DEFAULT.service_time_between(oslo(2027, 5, 14, 15, 0), oslo(2027, 5, 18, 8, 30)) == HOUR
    # Maundy Thursday to Easter Monday 2026: from Wednesday's close to Tuesday's opening, none.
    assert DEFAULT.service_time_between(oslo(2026, 4, 1, 15, 30), oslo(2026, 4, 7, 8, 0)) == timedelta()
    assert DEFAULT.next_start(oslo(2026, 4, 1, 15, 30)) == oslo(2026, 4, 7, 8, 0)


def test_a_service_open_on_holidays_counts_them() -> None:
    always = ServiceHours(days=frozenset(range(1, 8)), holidays=True)
    assert always.in_service(oslo(2026, 4, 6, 10, 0))
    assert always.service_time_between(oslo(2026, 4, 1, 15, 30), oslo(2026, 4, 7, 8, 0)) == 5 * DAY_OF_SERVICE


def test_spring_forward_last_sunday_of_march() -> None:
    """29 March 2026, 02:00 CET -> 03:00 CEST: Friday to Monday is 65 h of wall time, one hour
    short, but the service days on each side stay 7 h 30 min and opening is 08:00 local."""
    friday, monday = oslo(2026, 3, 27, 8, 0), oslo(2026, 3, 30, 8, 0)
    assert monday.astimezone(UTC) - friday.astimezone(UTC) == 71 * HOUR
    assert DEFAULT.service_time_between(friday, oslo(2026, 3, 30, 15, 30)) == 2 * DAY_OF_SERVICE
    assert DEFAULT.next_start(oslo(2026, 3, 28, 12, 0)) == monday
    assert DEFAULT.next_start(oslo(2026, 3, 28, 12, 0)).astimezone(UTC) == datetime(2026, 3, 30, 6, 0, tzinfo=UTC)
    assert DEFAULT.in_service(datetime(2026, 3, 30, 6, 0, tzinfo=UTC))
    assert not DEFAULT.in_service(datetime(2026, 3, 30, 5, 59, tzinfo=UTC))
    # The escalation example: red Friday 15:20, 15 minutes of service are Monday 08:05 CEST.
    reached = service_time_reached_any([DEFAULT], oslo(2026, 3, 27, 15, 20), 15 * MINUTE, oslo(2026, 4, 1, 0, 0))
    assert reached == oslo(2026, 3, 30, 8, 5)


def test_fall_back_last_sunday_of_october() -> None:
    """25 October 2026, 03:00 CEST -> 02:00 CET: the weekend is an hour longer, service is not."""
    friday = oslo(2026, 10, 23, 15, 0)
    monday = oslo(2026, 10, 26, 8, 30)
    assert DEFAULT.service_time_between(friday, monday) == HOUR
    assert DEFAULT.next_start(friday + HOUR).astimezone(UTC) == datetime(2026, 10, 26, 7, 0, tzinfo=UTC)
    assert DEFAULT.in_service(datetime(2026, 10, 23, 13, 29, tzinfo=UTC))  # 15:29 CEST
    assert not DEFAULT.in_service(datetime(2026, 10, 26, 14, 30, tzinfo=UTC))  # 15:30 CET


def test_a_service_spanning_the_change_of_clock_loses_or_gains_the_hour() -> None:
    """A Sunday service 00:00-23:59: its day is 22 h 59 min in March and 24 h 59 min in October."""
    sunday = ServiceHours(days=frozenset({7}), start=time(0, 0), end=time(23, 59))
    assert sunday.service_time_between(oslo(2026, 3, 28), oslo(2026, 3, 31)) == 22 * HOUR + 59 * MINUTE
    assert sunday.service_time_between(oslo(2026, 10, 24), oslo(2026, 10, 27)) == 24 * HOUR + 59 * MINUTE


def test_a_start_inside_the_skipped_hour_is_read_after_the_gap() -> None:
    early = ServiceHours(days=frozenset({7}), start=time(2, 30), end=time(4, 0))
    assert early.next_start(oslo(2026, 3, 28, 12, 0)).astimezone(UTC) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert early.service_time_between(oslo(2026, 3, 29, 0, 0), oslo(2026, 3, 29, 5, 0)) == 30 * MINUTE


def test_several_services_count_each_moment_once() -> None:
    late = ServiceHours(start=time(12, 0), end=time(20, 0))
    a, b = oslo(2026, 12, 7, 0, 0), oslo(2026, 12, 8, 0, 0)
    assert service_time_between_any([DEFAULT, late], a, b) == 12 * HOUR  # 08:00-20:00
    assert service_time_between_any([], a, b) == DAY_OF_SERVICE
    assert any_in_service([DEFAULT, late], oslo(2026, 12, 7, 19, 0))
    assert not any_in_service([DEFAULT], oslo(2026, 12, 7, 19, 0))
    assert service_time_reached_any([DEFAULT, late], a, 11 * HOUR, b) == oslo(2026, 12, 7, 19, 0)
    assert service_time_reached_any([DEFAULT], a, 8 * HOUR, b) is None


# -- the stored form ------------------------------------------------------------------------


def test_the_json_round_trips_and_defaults_fill_in() -> None:
    assert ServiceHours.from_json(None) == DEFAULT
    assert ServiceHours.from_json({}) == DEFAULT
    assert DEFAULT.to_json() == {
        "days": [1, 2, 3, 4, 5],
        "start": "08:00",
        "end": "15:30",
        "timezone": "Europe/Oslo",
        "holidays": False,
    }
    weekend = {"days": [6, 7], "start": "09:00", "end": "13:00", "timezone": "Europe/Oslo", "holidays": True}
    assert ServiceHours.from_json(weekend).to_json() == weekend


@pytest.mark.parametrize(
    ("stored", "field"),
    [
        ({"days": []}, "days"),
        ({"days": [0]}, "days"),
        ({"days": [8]}, "days"),
        ({"days": "1-5"}, "days"),
        ({"days": [True]}, "days"),
        ({"start": "8:00"}, "start"),
        ({"start": "08:00:30"}, "start"),
        ({"end": "25:00"}, "end"),
        ({"start": "16:00"}, "end"),  # after the default end
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": 1}, "timezone"),
        ({"holidays": "no"}, "holidays"),
        ({"weekends": True}, "weekends"),
    ],
)
def test_mistakes_name_the_field(stored: dict, field: str) -> None:
    with pytest.raises(InvalidServiceHours, match=f"^{field}:"):
        ServiceHours.from_json(stored)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        DEFAULT.in_service(datetime(2026, 12, 7, 10, 0))


# -- properties -----------------------------------------------------------------------------

instants = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)  # fmt: skip
services = st.builds(
    lambda days, start, length, holidays: ServiceHours(
        days=frozenset(days), start=time(start // 60, start % 60),
        end=time(min(start + length, 23 * 60 + 59) // 60, min(start + length, 23 * 60 + 59) % 60), holidays=holidays,
    ),
    st.sets(st.integers(1, 7), min_size=1),
    st.integers(0, 22 * 60),
    st.integers(1, 24 * 60),
    st.booleans(),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    services, instants, st.timedeltas(timedelta(), timedelta(days=20)), st.timedeltas(timedelta(), timedelta(days=20))
)
def test_service_time_is_additive_and_never_exceeds_the_wall_time(
    service: ServiceHours, a: datetime, first: timedelta, second: timedelta
) -> None:
    b, c = a + first, a + first + second
    ab, bc, ac = (service.service_time_between(x, y) for x, y in ((a, b), (b, c), (a, c)))
    assert ab + bc == ac
    assert timedelta() <= ab <= b - a
    assert service.service_time_between(c, a) == timedelta()


@settings(max_examples=300, deadline=None)
@given(services, instants)
def test_next_start_is_in_service_and_nothing_before_it_is(service: ServiceHours, at: datetime) -> None:
    start = service.next_start(at)
    assert start >= at and service.in_service(start)
    assert service.service_time_between(at, start) == timedelta()


@settings(max_examples=200, deadline=None)
@given(services, instants, st.timedeltas(MINUTE, 10 * HOUR))
def test_the_budget_is_reached_exactly_where_service_time_says(
    service: ServiceHours, start: datetime, budget: timedelta
) -> None:
    until = start + timedelta(days=30)
    reached = service_time_reached_any([service], start, budget, until)
    if reached is None:  # a short service: not within the 30 days
        assert service.service_time_between(start, until) < budget
    else:
        assert service.service_time_between(start, reached) == budget
        assert service.in_service(reached - timedelta(microseconds=1))
