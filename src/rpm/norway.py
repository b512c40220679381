"""Time in Norway: the zone that days, weeks and care-team periods are counted in."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

OSLO = ZoneInfo("Europe/Oslo")
# Times outside these years are nobody's readings, and near the ends of the calendar a day or a
# time zone offset added to them no longer fits in a datetime.
EARLIEST_YEAR, LATEST_YEAR = 1900, 9000


def today() -> date:
    return datetime.now(OSLO).date()


def plausible_time(moment: datetime) -> datetime:
    """Validator: a time within the years this service handles."""
    if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise ValueError(f"a time between the years {EARLIEST_YEAR} and {LATEST_YEAR}")
    return moment
