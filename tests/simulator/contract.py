"""An independent reading of the gateway contract (mqtt.md), to judge what the simulator
publishes. Written from the contract's text, not from the worker's parser, so that a mistake
shared by both would still show."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

GATEWAY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
RFC3339_WITH_OFFSET = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")

# type: (accepted units with their factor into the canonical unit, plausible bounds per value key)
IDENTITY = 1.0
TYPES: dict[str, tuple[dict[str, Any], dict[str, tuple[float, float]]]] = {
    "blood-pressure": ({"mm[Hg]": IDENTITY, "kPa": 7.50062}, {"systolic": (40, 300), "diastolic": (20, 200)}),
    "heart-rate": ({"/min": IDENTITY, "bpm": IDENTITY}, {"value": (20, 300)}),
    "spo2": ({"%": IDENTITY, "1": 100.0}, {"value": (50, 100)}),
    "respiratory-rate": ({"/min": IDENTITY}, {"value": (3, 80)}),
    "body-temperature": ({"Cel": IDENTITY, "[degF]": "fahrenheit"}, {"value": (30, 45)}),
    "body-weight": ({"kg": IDENTITY, "g": 0.001, "[lb_av]": 0.45359237}, {"value": (2, 400)}),
    "blood-glucose": ({"mmol/L": IDENTITY, "mg/dL": 1 / 18.016}, {"value": (0.5, 50)}),
    "peak-flow": ({"L/min": IDENTITY}, {"value": (30, 1000)}),
}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _canonical(value: float, factor: Any) -> float:
    if factor == "fahrenheit":
        return (value - 32) * 5 / 9
    return float(value) * float(factor)


def measurement_topic_gateway(topic: str, root: str) -> str | None:
    prefix, suffix = f"{root}/gateways/", "/measurements"
    if not (topic.startswith(prefix) and topic.endswith(suffix)):
        return None
    gateway = topic[len(prefix) : -len(suffix)]
    return gateway if GATEWAY_ID.fullmatch(gateway) else None


def problems(topic: str, payload: bytes, root: str, now: datetime | None = None) -> list[str]:
    """What in one published measurements message breaks the contract (empty: nothing)."""
    now = now or datetime.now(UTC)
    found: list[str] = []
    if measurement_topic_gateway(topic, root) is None:
        found.append(f"topic {topic!r} is not {root}/gateways/<1-64 of A-Za-z0-9._->/measurements")
    if len(payload) > 256 * 1024:
        found.append(f"payload of {len(payload)} bytes is over 256 KiB")
    try:
        document = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        return [*found, f"not UTF-8 JSON: {error}"]
    if not isinstance(document, dict):
        return [*found, "neither a reading object nor a batch"]
    if "readings" in document:
        readings = document["readings"]
        if not isinstance(readings, list) or not 1 <= len(readings) <= 1000:
            return [*found, "readings: a list of 1 to 1,000"]
        if "sent_at" in document and not (
            isinstance(document["sent_at"], str) and RFC3339_WITH_OFFSET.fullmatch(document["sent_at"])
        ):
            found.append("sent_at: RFC 3339 with an offset")
    else:
        readings = [document]
    for position, reading in enumerate(readings):
        found += [f"readings[{position}]: {p}" for p in reading_problems(reading, now)]
    return found


def reading_problems(reading: Any, now: datetime) -> list[str]:
    if not isinstance(reading, dict):
        return ["not an object"]
    found = []
    if not (isinstance(reading.get("id"), str) and 1 <= len(reading["id"]) <= 128):
        found.append("id: 1-128 characters")
    device = reading.get("device")
    if not (isinstance(device, dict) and isinstance(device.get("serial"), str) and device["serial"]):
        found.append("device.serial: required")
    kind = reading.get("type")
    if kind not in TYPES:
        return [*found, f"type {kind!r} is not a contract type"]
    units, bounds = TYPES[kind]
    time_text = reading.get("time")
    if not (isinstance(time_text, str) and RFC3339_WITH_OFFSET.fullmatch(time_text)):
        found.append(f"time {time_text!r}: RFC 3339 with an offset")
    elif datetime.fromisoformat(time_text.replace("Z", "+00:00")) - now > timedelta(minutes=10):
        found.append(f"time {time_text} is more than 10 minutes in the future")
    unit = reading.get("unit")
    if unit not in units:
        return [*found, f"unit {unit!r} is not accepted for {kind}"]
    if kind == "blood-pressure":
        values = reading.get("values")
        if not isinstance(values, dict) or "value" in reading:
            return [*found, "values: required (and no value) for blood pressure"]
        if set(values) - {"systolic", "diastolic", "pulse"}:
            found.append(f"values: unknown keys {sorted(set(values) - {'systolic', 'diastolic', 'pulse'})}")
        if "pulse" in values and not (_number(values["pulse"]) and 20 <= values["pulse"] <= 300):
            found.append("values.pulse: a plausible number")
        sent = {k: values.get(k) for k in ("systolic", "diastolic")}
    else:
        if "values" in reading:
            found.append("values: only for blood pressure")
        sent = {"value": reading.get("value")}
    for key, value in sent.items():
        if not _number(value):
            found.append(f"{key}: required number")
            continue
        low, high = bounds[key]
        canonical = _canonical(value, units[unit])
        if not low <= canonical <= high:
            found.append(f"{key}: {canonical:g} outside {low}-{high}")
    return found
