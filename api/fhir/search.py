"""Parsing FHIR search parameters for Observation (`patient`, `code`, `date`, `_count`, `_sort`)."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, time, timedelta

from rpm.errors import DomainError
from rpm.fhir.codes import LOINC, OBSERVATION_CATEGORY, READING_TYPES
from rpm.norway import EARLIEST_YEAR, LATEST_YEAR, OSLO
from rpm.observations.repository import DateBound

PARTIAL_DATE = re.compile(r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2}))?)?$")
PREFIXES = ("ge", "le", "gt", "lt", "eq")


# What the facade implements: interactions and search parameters (name: FHIR type) of each
# resource. The CapabilityStatement is made from this table, and a search is refused any
# parameter not in it.
RESOURCES: dict[str, tuple[list[str], dict[str, str]]] = {
    "Observation": (
        ["read", "search-type"],
        {
            "patient": "reference",
            "subject": "reference",
            "code": "token",
            "category": "token",
            "date": "date",
            "_count": "number",
            "_sort": "string",
        },
    ),
    "Patient": (["read", "search-type"], {"identifier": "token"}),
    "Device": (["read", "search-type"], {"patient": "reference"}),
}
# Taken by every search besides its own: the format (JSON only) and the paging cursor that
# `next` links carry.
CONTROL_PARAMETERS = {"_format", "_cursor"}
JSON_FORMATS = {"json", "application/json", "application/fhir+json"}
# The categories of observation-category; only vital-signs has members here.
CATEGORIES = {
    "social-history", "vital-signs", "imaging", "laboratory", "procedure", "survey", "exam", "therapy", "activity",
}  # fmt: skip
VITAL_SIGNS_CODES = frozenset(t.code for t in READING_TYPES.values() if t.vital_signs)


class BadSearch(DomainError):
    status = 400


def check_parameters(resource: str, names: set[str], values: dict[str, str]) -> None:
    """Refuse parameters the facade does not implement for `resource`, and formats but JSON."""
    unknown = sorted(names - set(RESOURCES[resource][1]) - CONTROL_PARAMETERS)
    if unknown:
        raise BadSearch("invalid_search", f"unsupported search parameter {unknown[0]!r} for {resource}")
    if "_format" in values and values["_format"] not in JSON_FORMATS:
        raise BadSearch("invalid_search", "_format: only JSON (application/fhir+json)")


def categories(values: list[str]) -> set[str] | None:
    """The stored codes the `category` parameters allow (comma OR, repetition AND), or None
    without one."""
    if not values:
        return None
    allowed: set[str] | None = None
    for value in values:
        either: set[str] = set()
        for token in value.split(","):
            system, bar, code = token.rpartition("|")
            if bar and system and system != OBSERVATION_CATEGORY:
                raise BadSearch("invalid_search", f"category: only the system {OBSERVATION_CATEGORY}")
            if code not in CATEGORIES:
                raise BadSearch("invalid_search", f"category: {code!r} is not an observation category")
            if code == "vital-signs":
                either |= VITAL_SIGNS_CODES
        allowed = either if allowed is None else allowed & either
    return allowed


def patient_reference(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value.removeprefix("Patient/"))
    except ValueError:
        raise BadSearch("invalid_search", f"patient: {value!r} is not a Patient id") from None


# A stored Observation is searchable by each code it carries (SpO2 is also coded 2708-6).
STORED_CODE = {
    **{t.code: t.code for t in READING_TYPES.values()},
    **{extra: t.code for t in READING_TYPES.values() for extra, _ in t.extra_codings},
}


def codes(values: list[str]) -> set[str] | None:
    """The stored codes the `code` parameters match, or None without one. Within a parameter a
    comma means OR; repeating the parameter means AND (FHIR). Only LOINC codes are stored."""
    if not values:
        return None
    found: set[str] | None = None
    for value in values:
        either = set()
        for token in value.split(","):
            system, bar, code = token.rpartition("|")
            if bar and system and system != LOINC:
                raise BadSearch("invalid_search", f"code: only the LOINC system {LOINC} is searchable")
            if not code:
                raise BadSearch("invalid_search", f"code: {token!r} names no code")
            if code in STORED_CODE:
                either.add(STORED_CODE[code])
        found = either if found is None else found & either
    return found


def _period(text: str) -> tuple[datetime, datetime] | None:
    """A FHIR date of year, month or day precision: the period it covers, in Norway."""
    match = PARTIAL_DATE.match(text)
    if not match:
        return None
    year, month, day = int(match["year"]), int(match["month"] or 1), int(match["day"] or 1)
    if not EARLIEST_YEAR <= year <= LATEST_YEAR:
        raise BadSearch("invalid_search", f"date: a year from {EARLIEST_YEAR} to {LATEST_YEAR}")
    try:
        start = datetime.combine(date(year, month, day), time(), OSLO)
    except ValueError:
        raise BadSearch("invalid_search", f"date: {text!r} is not a date") from None
    if match["day"]:
        end = start + timedelta(days=1)
    elif match["month"]:
        end = datetime.combine(date(year + month // 12, month % 12 + 1, 1), time(), OSLO)
    else:
        end = datetime.combine(date(year + 1, 1, 1), time(), OSLO)
    return start, end


def _instant(value: str, text: str) -> tuple[datetime, datetime] | datetime:
    """A dateTime: the second or minute it names (its precision), or the exact instant when it
    has fractions of a second."""
    day, separator, clock_and_zone = text.partition("T")
    try:
        if not separator or not PARTIAL_DATE.match(day):
            raise ValueError(text)
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadSearch("invalid_search", f"date: {value!r} is not a FHIR dateTime") from None
    if at.tzinfo is None:
        raise BadSearch("invalid_search", f"date: {value!r} needs a time zone")
    if not EARLIEST_YEAR <= at.year <= LATEST_YEAR:
        raise BadSearch("invalid_search", f"date: a year from {EARLIEST_YEAR} to {LATEST_YEAR}")
    clock = re.split(r"[Z+-]", clock_and_zone, maxsplit=1)[0]
    if "." in clock:
        return at
    if clock.count(":") == 0:
        raise BadSearch("invalid_search", f"date: {value!r} gives a time without minutes")
    return at, at + (timedelta(seconds=1) if clock.count(":") == 2 else timedelta(minutes=1))


def date_bounds(values: list[str]) -> list[DateBound]:
    """`date=ge2026-11-01&date=le2026-11-30T12:00:00+01:00`. Each value is the period its
    precision names (FHIR): a date without a time the year, month or day in Norway, a time the
    second or minute; `eq` is within it, `ge` from its start, `gt` from its end, `lt` before
    its start, `le` before its end."""
    bounds = []
    for value in values:
        prefix = value[:2] if value[:2] in PREFIXES else "eq"
        text = value[2:] if value[:2] in PREFIXES else value
        period = _period(text) or _instant(value, text)
        if isinstance(period, datetime):
            bounds.append(DateBound(prefix, period))
            continue
        start, end = period
        bounds += {
            "eq": [DateBound("ge", start), DateBound("lt", end)],
            "ge": [DateBound("ge", start)],
            "lt": [DateBound("lt", start)],
            "gt": [DateBound("ge", end)],
            "le": [DateBound("lt", end)],
        }[prefix]
    return bounds
