"""When a follow-up service is staffed: its service hours, Norwegian public holidays, and how
much of a stretch of time falls in service hours. Pure: no database, no clock.

Times are instants (timezone-aware datetimes); service hours are wall-clock times in the
service's time zone, so an hour lost or gained at a daylight-saving change is lost or gained
outside service hours (the changes happen at night) and every service day is as long as its
start and end say.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

OSLO = "Europe/Oslo"

# ISO weekdays: Monday 1 ... Sunday 7.
WEEKDAYS = frozenset({1, 2, 3, 4, 5})
DEFAULT_START = time(8, 0)
DEFAULT_END = time(15, 30)

# How far next_start looks: a service with at least one day a week starts within 8 days,
# unless holidays fall on every one of its days (a one-day-a-week service on Christmas Day
# and the next week's New Year's Day starts within 15).
_LOOKAHEAD_DAYS = 400


def easter_sunday(year: int) -> date:
    """Easter Sunday of the Gregorian calendar (the anonymous Gregorian computus)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return date(year, month, day + 1)


# The public holidays of Norway (lov om helligdager og helligdagsfred; 1 May and 17 May by
# lov om 1. og 17. mai som høgtidsdager): days from Easter Sunday, and fixed dates.
_EASTER_OFFSETS = {
    -3: "Skjærtorsdag",
    -2: "Langfredag",
    0: "1. påskedag",
    1: "2. påskedag",
    39: "Kristi himmelfartsdag",
    49: "1. pinsedag",
    50: "2. pinsedag",
}
_FIXED = {(1, 1): "1. nyttårsdag", (5, 1): "Arbeidernes dag", (5, 17): "Grunnlovsdag", (12, 25): "1. juledag",
          (12, 26): "2. juledag"}  # fmt: skip


@lru_cache(maxsize=256)
def norwegian_holidays(year: int) -> Mapping[date, str]:
    """The year's public holidays and their names."""
    easter = easter_sunday(year)
    found = {easter + timedelta(days=offset): name for offset, name in _EASTER_OFFSETS.items()}
    found.update({date(year, month, day): name for (month, day), name in _FIXED.items()})
    return dict(sorted(found.items()))


def is_norwegian_holiday(day: date) -> bool:
    return day in norwegian_holidays(day.year)


class InvalidServiceHours(ValueError):
    """Service hours that cannot be: the message names the field."""


def _clock(value: Any, name: str) -> time:
    if not isinstance(value, str):
        raise InvalidServiceHours(f"{name}: a time as HH:MM")
    try:
        parsed = time.fromisoformat(value)
    except ValueError:
        raise InvalidServiceHours(f"{name}: a time as HH:MM") from None
    if parsed.second or parsed.microsecond or parsed.tzinfo is not None or len(value) != 5:
        raise InvalidServiceHours(f"{name}: a time as HH:MM")
    return parsed


@dataclass(frozen=True)
class ServiceHours:
    """The days of the week (ISO: Monday 1 ... Sunday 7) and the wall-clock start and end in
    `timezone` when the service is staffed; `holidays`: whether it is staffed on Norwegian
    public holidays too. Default: weekdays 08:00-15:30 Europe/Oslo, holidays off."""

    days: frozenset[int] = WEEKDAYS
    start: time = DEFAULT_START
    end: time = DEFAULT_END
    timezone: str = OSLO
    holidays: bool = False
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.days or not self.days <= set(range(1, 8)):
            raise InvalidServiceHours("days: one or more of 1 (Monday) to 7 (Sunday)")
        if self.start >= self.end:
            raise InvalidServiceHours("end: after start, on the same day")
        try:
            zone = ZoneInfo(self.timezone)
        except (ValueError, KeyError, OSError):
            raise InvalidServiceHours("timezone: an IANA time zone such as Europe/Oslo") from None
        object.__setattr__(self, "_zone", zone)

    # -- the stored form ------------------------------------------------------------------

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None) -> ServiceHours:
        """From the organisation's JSONB (None: the defaults). Fields left out take their
        defaults; unknown fields are refused."""
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise InvalidServiceHours("service_hours: an object")
        unknown = set(value) - {"days", "start", "end", "timezone", "holidays"}
        if unknown:
            raise InvalidServiceHours(f"{sorted(unknown)[0]}: not a field of service hours")
        days = value.get("days", sorted(WEEKDAYS))
        if not isinstance(days, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in days):
            raise InvalidServiceHours("days: a list of 1 (Monday) to 7 (Sunday)")
        timezone = value.get("timezone", OSLO)
        if not isinstance(timezone, str):
            raise InvalidServiceHours("timezone: an IANA time zone such as Europe/Oslo")
        holidays = value.get("holidays", False)
        if not isinstance(holidays, bool):
            raise InvalidServiceHours("holidays: true or false")
        return cls(
            days=frozenset(days),
            start=_clock(value.get("start", DEFAULT_START.strftime("%H:%M")), "start"),
            end=_clock(value.get("end", DEFAULT_END.strftime("%H:%M")), "end"),
            timezone=timezone,
            holidays=holidays,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "days": sorted(self.days),
            "start": self.start.strftime("%H:%M"),
            "end": self.end.strftime("%H:%M"),
            "timezone": self.timezone,
            "holidays": self.holidays,
        }

    # -- the calendar ---------------------------------------------------------------------

    def is_service_day(self, day: date) -> bool:
        return day.isoweekday() in self.days and (self.holidays or not is_norwegian_holiday(day))

    def _window(self, day: date) -> tuple[datetime, datetime]:
        """The day's service as instants. A wall-clock time that a change skips is read as the
        time after the gap, one that repeats as the first (zoneinfo's fold 0)."""
        start = datetime.combine(day, self.start, self._zone)
        end = datetime.combine(day, self.end, self._zone)
        return _instant(start), _instant(end)

    def windows(self, a: datetime, b: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The parts of [a, b) in service hours, in order, as (start, end) instants."""
        _aware(a, b)
        a, b = a.astimezone(UTC), b.astimezone(UTC)
        if b <= a:
            return
        day = a.astimezone(self._zone).date() - timedelta(days=1)
        last = b.astimezone(self._zone).date()
        while day <= last:
            if self.is_service_day(day):
                start, end = self._window(day)
                start, end = max(start, a), min(end, b)
                if start < end:
                    yield start, end
            day += timedelta(days=1)

    def in_service(self, at: datetime) -> bool:
        """Whether the service is staffed at the instant (start inclusive, end exclusive)."""
        _aware(at)
        day = at.astimezone(self._zone).date()
        if not self.is_service_day(day):
            return False
        start, end = self._window(day)
        return start <= at < end

    def next_start(self, at: datetime) -> datetime:
        """The first instant at or after `at` in service hours: `at` itself when staffed."""
        if self.in_service(at):
            return at
        day = at.astimezone(self._zone).date()
        for offset in range(_LOOKAHEAD_DAYS):
            candidate = day + timedelta(days=offset)
            if self.is_service_day(candidate):
                start, _ = self._window(candidate)
                if start >= at:
                    return start
        raise InvalidServiceHours("days: the service is never staffed")  # holidays on every day

    def service_time_between(self, a: datetime, b: datetime) -> timedelta:
        """How much of [a, b) falls in service hours (nothing when b <= a)."""
        return sum((end - start for start, end in self.windows(a, b)), timedelta())


DEFAULT = ServiceHours()


def _instant(wall: datetime) -> datetime:
    """The wall-clock time as a UTC instant. One that a change skipped (spring forward) lands
    after the gap, one that repeats (fall back) is the first; and in UTC, comparing and
    subtracting never reads wall clocks (Python compares datetimes of one tzinfo by them)."""
    return wall.astimezone(UTC)


def _aware(*instants: datetime) -> None:
    for instant in instants:
        if instant.tzinfo is None or instant.utcoffset() is None:
            raise ValueError("service hours compare instants: a timezone-aware datetime is needed")


def any_in_service(hours: Iterable[ServiceHours], at: datetime) -> bool:
    """Whether any of the services is staffed at `at` (no services: the default one)."""
    listed = list(hours) or [DEFAULT]
    return any(h.in_service(at) for h in listed)


def service_time_between_any(hours: Iterable[ServiceHours], a: datetime, b: datetime) -> timedelta:
    """How much of [a, b) falls in the service hours of at least one of the services (no
    services: the default one): the union of their windows, each moment counted once."""
    listed = list(hours) or [DEFAULT]
    if len(listed) == 1:
        return listed[0].service_time_between(a, b)
    windows = sorted(w for h in listed for w in h.windows(a, b))
    total, reached = timedelta(), a
    for start, end in windows:
        start = max(start, reached)
        if start < end:
            total += end - start
            reached = end
    return total


def service_time_reached_any(
    hours: Iterable[ServiceHours], start: datetime, budget: timedelta, until: datetime
) -> datetime | None:
    """The instant at which `budget` of service time (of at least one of the services; none:
    the default one) has passed since `start`, if that is at or before `until`; else None.
    Walks a day at a time from `start`, so an old start costs no more than a recent one once
    the budget is reached."""
    listed = list(hours) or [DEFAULT]
    _aware(start, until)
    if budget <= timedelta():
        return start if start <= until else None
    left, chunk = budget, start
    while chunk < until:
        chunk_end = min(chunk + timedelta(days=1), until)
        windows = sorted(w for h in listed for w in h.windows(chunk, chunk_end))
        reached = chunk
        for window_start, window_end in windows:
            window_start = max(window_start, reached)
            if window_start >= window_end:
                continue
            if window_end - window_start >= left:
                return window_start + left
            left -= window_end - window_start
            reached = window_end
        chunk = chunk_end
    return None
