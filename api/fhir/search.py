"""Parsing FHIR search parameters for Observation (`patient`, `code`, `date`, `_count`, `_sort`)."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from rpm.errors import DomainError
from rpm.fhir.codes import LOINC
from rpm.observations.repository import DateBound

NORWAY = ZoneInfo("Europe/Oslo")
PARTIAL_DATE = re.compile(r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2}))?)?$")
PREFIXES = ("ge", "le", "gt", "lt", "eq")


class BadSearch(DomainError):
    status = 400


def patient_reference(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value.removeprefix("Patient/"))
    except ValueError:
        raise BadSearch("invalid_search", f"patient: {value!r} is not a Patient id") from None


def codes(values: list[str]) -> list[str]:
    """`system|code` tokens (comma means OR). Only LOINC codes are stored."""
    found = []
    for value in values:
        for token in value.split(","):
            system, bar, code = token.rpartition("|")
            if bar and system and system != LOINC:
                raise BadSearch("invalid_search", f"code: only the LOINC system {LOINC} is searchable")
            if not code:
                raise BadSearch("invalid_search", f"code: {token!r} names no code")
            found.append(code)
    return found


def _period(text: str) -> tuple[datetime, datetime] | None:
    """A FHIR date of year, month or day precision: the period it covers, in Norway."""
    match = PARTIAL_DATE.match(text)
    if not match:
        return None
    year, month, day = int(match["year"]), int(match["month"] or 1), int(match["day"] or 1)
    try:
        start = datetime.combine(date(year, month, day), time(), NORWAY)
    except ValueError:
        raise BadSearch("invalid_search", f"date: {text!r} is not a date") from None
    if match["day"]:
        end = start + timedelta(days=1)
    elif match["month"]:
        end = datetime.combine(date(year + month // 12, month % 12 + 1, 1), time(), NORWAY)
    else:
        end = datetime.combine(date(year + 1, 1, 1), time(), NORWAY)
    return start, end


def date_bounds(values: list[str]) -> list[DateBound]:
    """`date=ge2026-11-01&date=le2026-11-30T12:00:00+01:00`. A date without a time is the
    year, month or day it names, in Norway."""
    bounds = []
    for value in values:
        prefix = value[:2] if value[:2] in PREFIXES else "eq"
        text = value[2:] if value[:2] in PREFIXES else value
        period = _period(text)
        if period is not None:
            start, end = period
            bounds += {
                "eq": [DateBound("ge", start), DateBound("lt", end)],
                "ge": [DateBound("ge", start)],
                "lt": [DateBound("lt", start)],
                "gt": [DateBound("ge", end)],
                "le": [DateBound("lt", end)],
            }[prefix]
            continue
        try:
            at = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise BadSearch("invalid_search", f"date: {value!r} is not a FHIR dateTime") from None
        if at.tzinfo is None:
            raise BadSearch("invalid_search", f"date: {value!r} needs a time zone")
        bounds.append(DateBound(prefix, at))
    return bounds
