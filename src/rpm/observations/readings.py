"""Checking gateway messages against the contract (mqtt.md). Pure: no database, no broker.

A message becomes a list of per-reading outcomes: a `ValidReading` ready to be linked to
its patient, or a `Rejection` with the contract's reason code. The database-dependent
checks (`unknown_device`, `device_not_assigned`) happen later, in the ingest service.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import orjson

from rpm.fhir.codes import BLOOD_PRESSURE_PULSE_KEY, HEART_RATE, READING_TYPES, ReadingType
from rpm.units import UnknownUnit, to_canonical

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_BATCH_READINGS = 1000
# A reading is three levels deep, a batch four; extra fields may nest, but not without end:
# kept rejections are written back as JSON, which a deeper document would take past Python's
# recursion limit. orjson's own limit on writing JSON, so the common check is one call in C.
MAX_NESTING = 254
MAX_FUTURE = timedelta(minutes=10)
MAX_OFFSET = timedelta(hours=14)
GATEWAY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?P<offset>[Zz]|[+-]\d{2}:\d{2})?$")


class Reason(StrEnum):
    bad_json = "bad_json"
    bad_topic = "bad_topic"
    too_large = "too_large"
    schema = "schema"
    unknown_type = "unknown_type"
    bad_unit = "bad_unit"
    time_without_offset = "time_without_offset"
    time_in_future = "time_in_future"
    implausible_value = "implausible_value"
    unknown_device = "unknown_device"
    device_not_assigned = "device_not_assigned"


@dataclass(frozen=True)
class Rejection:
    reason: Reason
    detail: str | None
    payload: bytes
    reading_id: str | None = None
    device_serial: str | None = None


@dataclass(slots=True)  # built for every reading: no frozen-init cost
class ObservationDraft:
    """One Observation-to-be: its LOINC code and values in the canonical unit."""

    reading_type: ReadingType
    code: str
    values: dict[str, float]  # by LOINC code; one entry unless a panel
    unit: str
    identifier: str  # value under urn:rpm:reading
    derived_from_panel: bool = False

    @property
    def value(self) -> float | None:
        return None if self.reading_type.is_panel else self.values[self.code]


@dataclass(slots=True)  # built for every reading: no frozen-init cost
class ValidReading:
    gateway_id: str
    reading_id: str
    device_serial: str
    reading_type: ReadingType
    time: datetime
    time_text: str
    original_value: Any
    original_unit: str
    reading: dict[str, Any]  # as sent, for a rejection that only the database can decide
    drafts: tuple[ObservationDraft, ...] = field(default=())

    @property
    def payload(self) -> bytes:
        return reading_bytes(self.reading)


def parse_topic(topic: str, root: str = "rpm/v1") -> tuple[str, str] | None:
    """(gateway id, "measurements" or "status") of a topic gateways publish on, or None if the
    topic breaks the contract."""
    prefix = f"{root}/gateways/"
    if not topic.startswith(prefix):
        return None
    gateway, _, kind = topic[len(prefix) :].rpartition("/")
    if kind not in ("measurements", "status") or not GATEWAY_ID.fullmatch(gateway):
        return None
    return gateway, kind


STATUSES = ("online", "offline")


def parse_status(payload: bytes) -> str | Rejection:
    """A status message is the bare word `online` or `offline`."""
    text = payload.decode("utf-8", errors="replace").strip()
    if text in STATUSES:
        return text
    return Rejection(Reason.schema, "status: the payload must be online or offline", payload)


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


# orjson reads an integer beyond 64 bits as a float and drops digits that a kept rejection
# must keep; a payload with a run of 19 digits or more is read by the standard parser instead.
# Found by mapping every digit to 0 and looking for nineteen 0s: ten times quicker than a regex.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 19


def _has_long_digits(payload: bytes) -> bool:
    return payload.translate(_DIGITS_AS_ZERO).find(_LONG_DIGITS) >= 0


def split_message(payload: bytes) -> list[Any] | Rejection:
    """The reading objects of a message, or the message-level rejection."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return Rejection(Reason.too_large, f"message is {len(payload)} bytes, at most {MAX_PAYLOAD_BYTES}", payload)
    document = _parse(payload)
    if isinstance(document, Rejection):
        return document
    if _too_deep(document):
        return Rejection(Reason.schema, f"payload: nested deeper than {MAX_NESTING} levels", payload)
    if not isinstance(document, dict):
        return Rejection(Reason.schema, "payload: must be a reading object or a batch object", payload)
    if "readings" not in document:
        return [document]
    readings = document["readings"]
    if not isinstance(readings, list) or not readings:
        return Rejection(Reason.schema, "readings: must be a non-empty list", payload)
    if len(readings) > MAX_BATCH_READINGS:
        return Rejection(Reason.schema, f"readings: at most {MAX_BATCH_READINGS} in one batch", payload)
    return readings


def _parse(payload: bytes) -> Any:
    """The JSON document, or the bad_json rejection."""
    if not _has_long_digits(payload):
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError:
            pass
    # orjson is the fast path and stricter than the standard parser; anything it refuses (a
    # number beyond the range of a float, say) is decided by the standard parser, whose
    # verdict and message the contract's tests pin down.
    try:
        document = json.loads(payload.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError) as error:
        return Rejection(Reason.bad_json, str(error)[:500], payload)
    except RecursionError:
        return Rejection(Reason.bad_json, "nested too deeply to parse", payload)
    if _holds_lone_surrogate(document):
        # Escapes such as \ud800 alone parse, but name no character: no UTF-8 text, no
        # PostgreSQL text and no ack can carry them (orjson refuses them for that reason).
        return Rejection(Reason.bad_json, "a string holds a lone surrogate escape (\\ud800-\\udfff)", payload)
    return document


def _too_deep(document: Any) -> bool:
    try:
        orjson.dumps(document)
    except orjson.JSONEncodeError:  # past its depth limit, or an integer beyond 64 bits
        return _deeper_than(document, MAX_NESTING)
    return False


def _children(node: Any) -> Any:
    return node.values() if isinstance(node, dict) else node


def _deeper_than(document: Any, limit: int) -> bool:
    """Whether objects and arrays nest more than `limit` levels; level by level, not recursing."""
    level = [document] if isinstance(document, dict | list) else []
    for _ in range(limit):
        level = [child for node in level for child in _children(node) if isinstance(child, dict | list)]
        if not level:
            return False
    return True


_SURROGATE = re.compile("[\ud800-\udfff]")


def _holds_lone_surrogate(document: Any) -> bool:
    """Whether any key or string of the document holds a surrogate code point; not recursing."""
    pending = [document]
    while pending:
        node = pending.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                return True
        elif isinstance(node, dict):
            pending.extend(node)
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return False


def _is_number(value: Any) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond the range of a float
        return False


def parse_time(text: str) -> datetime | Reason:
    match = RFC3339.match(text)
    if not match:
        return Reason.schema
    if match.group("offset") is None:
        return Reason.time_without_offset
    try:
        parsed = datetime.fromisoformat(text.replace("z", "+00:00").replace("Z", "+00:00").replace("t", "T"))
    except ValueError:
        return Reason.schema
    offset = parsed.utcoffset()
    # RFC 3339 allows offsets to +-23:59; FHIR's dateTime only -14:00 to +14:00, like real time zones.
    if offset is None or abs(offset) > MAX_OFFSET:
        return Reason.schema
    return parsed


def reading_bytes(reading: Any) -> bytes:
    """One reading of a message as JSON bytes: what a rejection of it keeps."""
    return json.dumps(reading, separators=(",", ":"), ensure_ascii=False).encode()


def validate_reading(reading: Any, gateway_id: str, now: datetime) -> ValidReading | Rejection:
    """Apply every check of the contract that needs no database, in the contract's order."""
    reading_id = reading.get("id") if isinstance(reading, dict) else None
    reading_id = reading_id if isinstance(reading_id, str) else None
    device = reading.get("device") if isinstance(reading, dict) else None
    serial = device.get("serial") if isinstance(device, dict) else None
    serial = serial if isinstance(serial, str) else None

    def reject(reason: Reason, detail: str | None = None) -> Rejection:
        return Rejection(reason, detail, reading_bytes(reading), reading_id, serial)

    if not isinstance(reading, dict):
        return reject(Reason.schema, "reading: must be an object")
    if reading_id is None or not 1 <= len(reading_id) <= 128:
        return reject(Reason.schema, "id: required, 1-128 characters")
    if "\x00" in reading_id:  # valid JSON, but PostgreSQL text cannot hold it
        return reject(Reason.schema, "id: must not contain the character U+0000")
    if not isinstance(device, dict):
        return reject(Reason.schema, "device: required object with a serial")
    if serial is None or not 1 <= len(serial) <= 128:
        return reject(Reason.schema, "device.serial: required, 1-128 characters")
    if "\x00" in serial:
        return reject(Reason.schema, "device.serial: must not contain the character U+0000")
    type_name = reading.get("type")
    if not isinstance(type_name, str):
        return reject(Reason.schema, "type: required string")
    reading_type = READING_TYPES.get(type_name)
    if reading_type is None:
        return reject(Reason.unknown_type, f"type {type_name!r} is not one of {sorted(READING_TYPES)}")
    time_text = reading.get("time")
    if not isinstance(time_text, str):
        return reject(Reason.schema, "time: required RFC 3339 string")
    time = parse_time(time_text)
    if time is Reason.schema:
        return reject(Reason.schema, "time: not an RFC 3339 date-time with an offset within +-14:00")
    if time is Reason.time_without_offset:
        return reject(Reason.time_without_offset, "time: needs an offset such as Z or +01:00")
    assert isinstance(time, datetime)
    if time - now > MAX_FUTURE:
        return reject(Reason.time_in_future, f"time: {time_text} is more than 10 minutes ahead of {now.isoformat()}")

    unit = reading.get("unit")
    if not isinstance(unit, str):
        return reject(Reason.schema, "unit: required string")

    if reading_type.is_panel:
        original = reading.get("values")
        if not isinstance(original, dict):
            return reject(Reason.schema, "values: required object for " + type_name)
        keys = [*reading_type.components, BLOOD_PRESSURE_PULSE_KEY]
        for key in reading_type.components:
            if not _is_number(original.get(key)):
                return reject(Reason.schema, f"values.{key}: required number")
        pulse = original.get(BLOOD_PRESSURE_PULSE_KEY)
        if pulse is not None and not _is_number(pulse):
            return reject(Reason.schema, f"values.{BLOOD_PRESSURE_PULSE_KEY}: must be a number")
        unexpected = sorted(set(original) - set(keys))
        if unexpected:
            return reject(Reason.schema, f"values.{unexpected[0]}: not a component of {type_name}")
        sent = {key: original[key] for key in reading_type.components}
    else:
        original = reading.get("value")
        if not _is_number(original):
            return reject(Reason.schema, "value: required number for " + type_name)
        sent, pulse = {"value": original}, None

    canonical: dict[str, float] = {}
    try:
        for key, quantity in reading_type.components.items():
            canonical[quantity.code] = to_canonical(sent[key], unit, quantity.unit)
    except UnknownUnit as error:
        return reject(Reason.bad_unit, f"unit: {error}")
    pulse_value = None if pulse is None else float(pulse)

    for key, quantity in reading_type.components.items():
        low, high = quantity.plausible
        if not low <= canonical[quantity.code] <= high:
            name = key if reading_type.is_panel else "value"
            return reject(
                Reason.implausible_value,
                f"{name}: {canonical[quantity.code]:g} {quantity.unit} is outside {low:g}-{high:g}",
            )
    if pulse_value is not None:
        low, high = HEART_RATE.components["value"].plausible
        if not low <= pulse_value <= high:
            return reject(Reason.implausible_value, f"pulse: {pulse_value:g} /min is outside {low:g}-{high:g}")

    identifier = f"{gateway_id}/{reading_id}"
    drafts = [ObservationDraft(reading_type, reading_type.code, canonical, reading_type.unit, identifier)]
    if pulse_value is not None:
        drafts.append(
            ObservationDraft(
                HEART_RATE,
                HEART_RATE.code,
                {HEART_RATE.code: pulse_value},
                HEART_RATE.unit,
                f"{identifier}/pulse",
                derived_from_panel=True,
            )
        )
    return ValidReading(
        gateway_id=gateway_id,
        reading_id=reading_id,
        device_serial=serial,
        reading_type=reading_type,
        time=time,
        time_text=time_text,
        original_value=original,
        original_unit=unit,
        reading=reading,
        drafts=tuple(drafts),
    )
