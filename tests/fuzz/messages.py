"""Gateway messages that break the contract (mqtt.md) in every way we thought of, and what the
worker must answer to each: hypothesis strategies, and the oracle that decides the answer.

A `FuzzMessage` is a payload and where it goes (`route`). The oracle, `expected_answer`, reads
only the payload bytes, with the standard library's strict JSON parser: the worker parses
with orjson first, so a difference between the two parsers shows up as a wrong answer. Where a
message was built to break one rule (a reading without `unit`, a time without offset), the
reason that rule names is `intended`, and the answer must give exactly that reason.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from rpm.fhir.codes import READING_TYPES

MAX_PAYLOAD_BYTES = 256 * 1024
MAX_BATCH_READINGS = 1000
MAX_NESTING = 254
REASONS = {
    "bad_json",
    "bad_topic",
    "too_large",
    "schema",
    "unknown_type",
    "bad_unit",
    "time_without_offset",
    "time_in_future",
    "implausible_value",
    "unknown_device",
    "device_not_assigned",
}
ACCEPTED = "accepted"  # an intended outcome: stored (or `duplicate` when the batch repeats an id)

# Where a message goes (`FuzzMessage.route`). "own": its own valid gateway id, so its ack is
# found by topic. "bad_topic": a gateway level that breaks the contract, delivered to the worker,
# kept, never answered. "outside": a topic outside the worker's subscription, which the broker
# gives no one. "refused": a topic the broker refuses outright (sent over a bare connection,
# since no MQTT client library would send most of them).


@dataclass(frozen=True)
class Oversize:
    """A payload of exactly `size` bytes, built when it is sent (not kept while waiting)."""

    prefix: bytes
    size: int

    def build(self) -> bytes:
        return self.prefix + b" " * (self.size - len(self.prefix))


@dataclass(frozen=True)
class FuzzMessage:
    family: str
    body: bytes | Oversize
    route: str = "own"
    # For the other routes, the topic under the root (or the raw bytes of the whole topic for
    # "refused", since some of them are not UTF-8); {gateway} is the message's own gateway id.
    topic: str | bytes | None = None
    intended: tuple[str, ...] | None = None  # per reading, when the message was built to break one rule

    def payload(self) -> bytes:
        return self.body.build() if isinstance(self.body, Oversize) else self.body


@dataclass
class Expected:
    """What the ack must say: `message_reasons` when the message as a whole is rejected (one
    result, id null), otherwise one result per reading in `reading_ids` order."""

    message_reasons: frozenset[str] | None = None
    reading_ids: list[str | None] = field(default_factory=list)
    # Per reading: the canonical digest of the reading, which its kept rejection must match.
    reading_digests: list[str] = field(default_factory=list)


# -- the oracle -----------------------------------------------------------------------------


class _NotJson(ValueError):
    pass


def _refuse_constant(name: str) -> None:
    raise _NotJson(f"{name} is not JSON")


def _has_surrogate(value: Any) -> bool:
    pending = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, str):
            if any(0xD800 <= ord(c) <= 0xDFFF for c in node):
                return True
        elif isinstance(node, dict):
            pending.extend(node)
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return False


def _depth(value: Any) -> int:
    depth, level = 0, [value]
    while level := [v for v in level if isinstance(v, dict | list)]:
        depth += 1
        level = [c for v in level for c in (v.values() if isinstance(v, dict) else v)]
    return depth


def digest(value: Any) -> str:
    """The same for two JSON values exactly when they are equal (key order aside)."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def raw_digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def expected_answer(payload: bytes) -> Expected:
    if len(payload) > MAX_PAYLOAD_BYTES:
        return Expected(frozenset({"too_large"}))
    try:
        document = json.loads(payload.decode("utf-8"), parse_constant=_refuse_constant)
    except RecursionError:  # near the parsers' limits the worker may still read it, and refuse its depth
        return Expected(frozenset({"bad_json", "schema"}))
    except ValueError:  # not UTF-8, not JSON, or NaN / Infinity
        return Expected(frozenset({"bad_json"}))
    if _has_surrogate(document):
        return Expected(frozenset({"bad_json"}))
    if _depth(document) > MAX_NESTING:  # schema; beyond the parser's own limit (~1,000 levels), bad_json
        return Expected(frozenset({"schema", "bad_json"}))
    if not isinstance(document, dict):
        return Expected(frozenset({"schema"}))
    readings = document["readings"] if "readings" in document else [document]
    if not isinstance(readings, list) or not 1 <= len(readings) <= MAX_BATCH_READINGS:
        return Expected(frozenset({"schema"}))
    ids = [r["id"] if isinstance(r, dict) and isinstance(r.get("id"), str) else None for r in readings]
    return Expected(None, ids, [digest(r) for r in readings])


# -- building JSON text, including what json.dumps would never write -----------------------


@dataclass(frozen=True)
class Obj:
    """A JSON object as its pairs, in order: a key may come twice."""

    pairs: tuple[tuple[str, Any], ...]


def encode(value: Any, ascii_only: bool = True) -> bytes:
    """JSON text of `value`. Floats NaN and infinities come out as NaN / Infinity (not JSON);
    lone surrogates as \\udXXX escapes, or, with `ascii_only` off, as the CESU-8 bytes a
    careless encoder writes (not UTF-8)."""
    if value is None or isinstance(value, bool):
        return json.dumps(value).encode()
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        if math.isnan(value):
            return b"NaN"
        if math.isinf(value):
            return b"Infinity" if value > 0 else b"-Infinity"
        return repr(value).encode()
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    if isinstance(value, list | tuple):
        return b"[" + b",".join(encode(v, ascii_only) for v in value) + b"]"
    if isinstance(value, Obj):
        return b"{" + b",".join(encode(k, ascii_only) + b":" + encode(v, ascii_only) for k, v in value.pairs) + b"}"
    if isinstance(value, dict):
        return encode(Obj(tuple(value.items())), ascii_only)
    raise TypeError(type(value))


# -- strategies --------------------------------------------------------------------------------

NOW = datetime.now(UTC)
ODD_TEXT = [
    "\u202e",  # right-to-left override
    "\u200f",  # right-to-left mark
    "\u200d",  # zero-width joiner
    "\ufeff",  # byte order mark
    "\u0301",  # combining acute accent
    "\U0001f600",  # outside the BMP (a surrogate pair when escaped)
    "\uffff",  # a non-character
    "\x00",  # NUL: valid JSON as \u0000, impossible in PostgreSQL text
    "\x7f\x85",
    "\u0130\u0131",  # dotted and dotless i, which change length when case-folded
]
LONE_SURROGATES = ["\ud800", "\udbff\u0041", "\udfff"]  # JSON escapes that name no character
odd_text = st.lists(st.sampled_from(ODD_TEXT) | st.text(max_size=4), min_size=1, max_size=6).map("".join)
odder_text = st.lists(st.sampled_from(ODD_TEXT + LONE_SURROGATES), min_size=1, max_size=4).map("".join)
json_text = st.text(max_size=20) | odd_text
huge_numbers = st.sampled_from(
    [
        10**30,
        -(10**30),
        10**400,
        2**63,
        2**64,
        -(2**63) - 1,
        1e308,
        -1e308,
        5e-324,
        1e-400,
        -0.0,
        1.7976931348623157e308,
    ]
)
json_numbers = (
    st.integers() | st.floats(allow_nan=False, allow_infinity=False) | huge_numbers | st.sampled_from([0, 1, -1])
)
json_scalars = st.none() | st.booleans() | json_numbers | json_text
junk = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(st.tuples(json_text, children), max_size=4).map(lambda pairs: Obj(tuple(pairs)))
    ),
    max_leaves=4,
)
FIELDS = ["id", "device", "type", "time", "value", "values", "unit", "sent_at", "readings"]


@dataclass(frozen=True)
class Devices:
    """Registered devices by reading type (serials), each assigned to a patient from 2020."""

    serials: dict[str, str]


def _time_text(moment: datetime, minutes: int) -> str:
    return moment.astimezone(timezone(timedelta(minutes=minutes))).isoformat()


def valid_reading(rng: random.Random, devices: Devices, reading_id: str) -> dict[str, Any]:
    """A reading the worker must accept. Its filler values come from `rng` (one draw of
    hypothesis's), so a message costs a few draws, not dozens: 100,000 messages stay quick."""
    type_name = rng.choice(sorted(devices.serials))
    reading_type = READING_TYPES[type_name]
    ago = timedelta(seconds=rng.randint(60, 30 * 86400))
    reading: dict[str, Any] = {
        "id": reading_id,
        "device": {"serial": devices.serials[type_name]},
        "type": type_name,
        "time": _time_text(NOW - ago, rng.choice([0, 60, 120, -300, 330, 840, -720])),
        "unit": reading_type.unit,
    }
    values = {}
    for key, quantity in reading_type.components.items():
        low, high = quantity.plausible
        values[key] = round(rng.uniform(low, high), 2)
    if reading_type.is_panel:
        reading["values"] = values
    else:
        reading["value"] = values["value"]
    return reading


@st.composite
def one_mutation(draw: st.DrawFn, devices: Devices, reading: dict[str, Any]) -> tuple[Any, str]:
    """The reading broken in one way, and the reason that way must get."""
    kind = draw(
        st.sampled_from(
            [
                "missing",
                "wrong_type",
                "unknown_type",
                "bad_unit",
                "no_offset",
                "future",
                "implausible",
                "unknown_device",
                "not_assigned",
                "bad_time",
                "long_id",
                "nul",
                "not_an_object",
            ]
        )
    )
    broken = json.loads(json.dumps(reading))
    value_key = "values" if "values" in reading else "value"
    if kind == "missing":
        name = draw(st.sampled_from(["id", "device", "device.serial", "type", "time", value_key, "unit"]))
        if name == "device.serial":
            del broken["device"]["serial"]
        else:
            del broken[name]
        return broken, "schema"
    if kind == "wrong_type":
        name = draw(st.sampled_from(["id", "device", "type", "time", value_key, "unit"]))
        replacement = draw(st.none() | st.booleans() | st.lists(st.integers(), max_size=2) | st.integers())
        if (name in ("device", "values") and isinstance(replacement, int | bool)) or replacement is None:
            replacement = [replacement]
        if name == value_key and value_key == "value":
            replacement = draw(st.sampled_from([True, False, None, "81.4", [81.4], {"v": 1}]))
        broken[name] = replacement
        return broken, "schema"
    if kind == "unknown_type":
        broken["type"] = draw(st.text(max_size=12).filter(lambda t: t not in READING_TYPES))
        return broken, "unknown_type"
    if kind == "bad_unit":
        broken["unit"] = draw(st.sampled_from(["stone", "mmHg", "", "KG", "kg ", "[lb_av]x", "\u202ekg"]))
        return broken, "bad_unit"
    if kind == "no_offset":
        broken["time"] = broken["time"][:19]
        return broken, "time_without_offset"
    if kind == "future":
        broken["time"] = (NOW + timedelta(days=draw(st.integers(1, 3000)))).isoformat()
        return broken, "time_in_future"
    if kind == "implausible":
        number = draw(st.sampled_from([-1, 0, 1e6, 1e308, 10**30, 5e-324, -1e308]))
        if value_key == "values":
            broken["values"][draw(st.sampled_from(sorted(broken["values"])))] = number
        else:
            broken["value"] = number
        return broken, "implausible_value"
    if kind == "unknown_device":
        broken["device"]["serial"] = "NO-SUCH-" + draw(
            st.text(min_size=1, max_size=8).filter(lambda s: "\x00" not in s)
        )
        return broken, "unknown_device"
    if kind == "not_assigned":
        broken["time"] = "2019-06-01T12:00:00+02:00"  # a year before every assignment
        return broken, "device_not_assigned"
    if kind == "bad_time":
        broken["time"] = draw(
            st.sampled_from(
                [
                    "2026-02-30T10:00:00Z",
                    "2026-11-23T24:00:00Z",
                    "2026-11-23T07:59:60+01:00",
                    "2026-11-23 07:59:41+01:00",
                    "2026-11-23T07:59:41+15:00",
                    "0000-01-01T00:00:00Z",
                    "2026-11-23T07:59:41+01",
                    "yesterday",
                    "",
                    "2026-11-23T07:59:41.1234567890Z",
                ]
            )
        )
        return broken, "schema"
    if kind == "long_id":
        broken["id"] = "x" * draw(st.integers(129, 2000))
        return broken, "schema"
    if kind == "nul":
        name = draw(st.sampled_from(["id", "serial"]))
        if name == "id":
            broken["id"] = broken["id"] + "\x00"
        else:
            broken["device"]["serial"] = broken["device"]["serial"] + "\x00"
        return broken, "schema"
    return draw(st.sampled_from([[], 1, "reading", None, True])), "schema"


@st.composite
def valid_batch(draw: st.DrawFn, devices: Devices, size: int) -> list[dict[str, Any]]:
    rng = draw(st.randoms(use_true_random=True))
    return [valid_reading(rng, devices, f"r-{number}-{rng.randrange(10**9)}") for number in range(size)]


def _wrap(readings: list[Any], single: bool) -> bytes:
    if single and len(readings) == 1:
        return encode(readings[0])
    return encode({"sent_at": NOW.isoformat(), "readings": readings})


@st.composite
def valid_messages(draw: st.DrawFn, devices: Devices) -> FuzzMessage:
    readings = draw(valid_batch(devices, draw(st.integers(1, 8))))
    intended = [ACCEPTED] * len(readings)
    if draw(st.booleans()):  # a reading twice in one batch: the first counts, the second is a duplicate
        readings.append(readings[0])
        intended.append(ACCEPTED)
    return FuzzMessage("valid", _wrap(readings, draw(st.booleans())), intended=tuple(intended))


@st.composite
def mutated_messages(draw: st.DrawFn, devices: Devices) -> FuzzMessage:
    """A batch of valid readings, some broken in one way each: every reading's reason is known."""
    readings: list[Any] = draw(valid_batch(devices, draw(st.integers(1, 6))))
    intended = []
    for number, reading in enumerate(readings):
        if draw(st.integers(0, 2)):
            readings[number], reason = draw(one_mutation(devices, reading))
        else:
            reason = ACCEPTED
        intended.append(reason)
    return FuzzMessage("mutated", _wrap(readings, draw(st.booleans())), intended=tuple(intended))


@st.composite
def duplicate_keys(draw: st.DrawFn, devices: Devices) -> FuzzMessage:
    """A key twice in one object: both parsers keep the last, so that one decides."""
    [reading] = draw(valid_batch(devices, 1))
    name = draw(st.sampled_from(["id", "type", "unit", "time", "device", "readings"]))
    if name == "readings":
        body = Obj((("readings", [{"id": "dropped"}]), ("readings", [reading])))
        return FuzzMessage("duplicate_keys", encode(body), intended=(ACCEPTED,))
    body = Obj(((name, draw(junk)), *tuple(reading.items())))
    return FuzzMessage("duplicate_keys", encode(body), intended=(ACCEPTED,))


@st.composite
def junk_messages(draw: st.DrawFn, devices: Devices) -> FuzzMessage:
    """JSON of every shape, some of it with the contract's field names; reasons unknown."""
    shape = draw(st.sampled_from(["value", "reading", "batch"]))
    ascii_only = draw(st.booleans())
    if shape == "value":
        return FuzzMessage("junk", encode(draw(junk), ascii_only))
    keys = st.sampled_from(FIELDS) | json_text
    reading = st.lists(st.tuples(keys, junk), max_size=6).map(lambda pairs: Obj(tuple(pairs)))
    if shape == "reading":
        return FuzzMessage("junk", encode(draw(reading), ascii_only))
    readings = draw(st.lists(reading | junk, min_size=0, max_size=4))
    return FuzzMessage("junk", encode({"readings": readings}, ascii_only))


@st.composite
def not_json(draw: st.DrawFn, devices: Devices) -> FuzzMessage:
    [reading] = draw(valid_batch(devices, 1))
    text = encode({"readings": [reading]})
    kind = draw(st.sampled_from(["bytes", "truncated", "bad_utf8", "constant", "syntax", "empty"]))
    if kind == "bytes":
        body = draw(st.binary(max_size=200))
    elif kind == "truncated":
        body = text[: draw(st.integers(0, len(text) - 1))]
    elif kind == "bad_utf8":  # inside a string: a stray byte, an overlong NUL, an encoded surrogate
        bad = draw(st.sampled_from([b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xe2\x82", b"\xf8\x88\x80\x80\x80"]))
        at = text.index(b'"id":"') + 6
        body = text[:at] + bad + text[at:]
    elif kind == "constant":
        constant = draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"nan", b"undefined"]))
        body = text.replace(b'"time"', b'"extra":' + constant + b',"time"', 1)
    elif kind == "syntax":
        body = draw(
            st.sampled_from(
                [
                    text + b",",
                    text.replace(b'"', b"'"),
                    text.replace(b"}", b",}", 1),
                    b"\xef\xbb\xbf" + text,  # a byte order mark
                    text + b"{}",
                    text.replace(b":", b"=", 1),
                    b'{"readings": [' + text,
                    text.replace(b'"id"', b"id", 1),
                ]
            )
        )
    else:
        body = draw(st.sampled_from([b"", b" ", b"\x00", b"\n"]))
    return FuzzMessage("not_json", body)


@st.composite
def deep_messages(draw: st.DrawFn, devices: Devices) -> FuzzMessage:
    depth = draw(st.integers(1, 1500) | st.sampled_from([MAX_NESTING - 3, MAX_NESTING - 2, MAX_NESTING + 1]))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
    nest = opener * depth + (b"1" if opener == b'{"a":' else b"") + closer * depth
    [reading] = draw(valid_batch(devices, 1))
    where = draw(st.sampled_from(["whole", "extra", "value"]))
    if where == "whole":
        return FuzzMessage("deep", nest)
    text = encode(reading)
    name = b'"extra"' if where == "extra" else (b'"values"' if "values" in reading else b'"value"')
    body = text[:-1] + b"," + name + b":" + nest + b"}"
    return FuzzMessage("deep", body)


@st.composite
def unicode_messages(draw: st.DrawFn, devices: Devices) -> FuzzMessage:
    """Odd text in the fields: right-to-left marks, NUL, lone surrogates, non-characters."""
    [reading] = draw(valid_batch(devices, 1))
    name = draw(st.sampled_from(["id", "serial", "type", "unit", "time", "key"]))
    odd = draw(odder_text)
    body: Any = dict(reading)
    if name == "id":
        body["id"] = odd
    elif name == "serial":
        body["device"] = {"serial": odd}
    elif name == "key":
        body[odd] = odd
    else:
        body[name] = odd
    return FuzzMessage("unicode", encode(body, draw(st.booleans())))


@st.composite
def oversize_messages(draw: st.DrawFn, devices: Devices) -> FuzzMessage:
    readings = draw(valid_batch(devices, draw(st.integers(1, 3))))
    prefix = encode({"readings": readings})
    size = draw(
        st.sampled_from([MAX_PAYLOAD_BYTES - 1, MAX_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES + 1])
        | st.integers(MAX_PAYLOAD_BYTES + 1, MAX_PAYLOAD_BYTES + 65536)
        | st.just(1024 * 1024)
    )
    return FuzzMessage("oversize", Oversize(prefix, size), intended=(ACCEPTED,) * len(readings))


@st.composite
def batch_sizes(draw: st.DrawFn, devices: Devices) -> FuzzMessage:
    count = draw(st.sampled_from([0, MAX_BATCH_READINGS, MAX_BATCH_READINGS + 1]) | st.integers(1001, 3000))
    item = draw(st.sampled_from([{}, {"id": "x"}, 1, None]))
    return FuzzMessage("batch_size", encode({"readings": [item] * count}))


BAD_GATEWAY_LEVELS = [
    "",
    "has space",
    "bang!",
    "\u00e9t\u00e9",
    "\u202egw",
    "\U0001f600",
    "$SYS",
    "a" * 65,
    "x" * 20000,  # a very long topic (the whole topic may be 65,535 bytes)
    "tab\u2028sep",
]
OUTSIDE_TOPICS = [
    "gateways/{gateway}/x/measurements",
    "gateways/{gateway}/measurements/extra",
    "gateway/{gateway}/measurements",
    "gateways/{gateway}/Measurements",
    "gateways/{gateway}/acks",  # a gateway publishing on the backend's topic
    "gateways/{gateway}",
]
REFUSED_TOPICS: list[bytes] = [  # the broker refuses these (or no MQTT client can send them)
    b"gateways/+/measurements",
    b"gateways/#",
    b"gateways/a\x00b/measurements",
    b"gateways/a\x01b/measurements",
    b"gateways/a\x7fb/measurements",
    b"gateways/\xef\xbf\xbf/measurements",  # U+FFFF
    b"gateways/\xff/measurements",  # not UTF-8
    b"gateways/\xed\xa0\x80/measurements",  # an encoded surrogate
    b"gateways/\xc0\x80/measurements",  # an overlong NUL
]


@st.composite
def topic_abuse(draw: st.DrawFn, devices: Devices) -> FuzzMessage:
    [reading] = draw(valid_batch(devices, 1))
    body = encode(reading)
    route = draw(st.sampled_from(["bad_topic", "bad_topic", "outside", "refused"]))
    if route == "bad_topic":
        level = draw(st.sampled_from(BAD_GATEWAY_LEVELS) | st.text(min_size=65, max_size=200).filter(_broker_safe))
        # Unique where the level allows it, so each kept row is found again by its topic.
        unique = level + "-{gateway}" if level and len(level) >= 65 else level
        return FuzzMessage("topic", body, "bad_topic", "gateways/" + unique + "/measurements")
    if route == "outside":
        return FuzzMessage("topic", body, "outside", draw(st.sampled_from(OUTSIDE_TOPICS)))
    return FuzzMessage("topic", body, "refused", draw(st.sampled_from(REFUSED_TOPICS)))


def _broker_safe(text: str) -> bool:
    """Characters a topic level may hold: no wildcards, separators, controls or non-characters."""
    for c in text:
        code = ord(c)
        if c in "/+#" or code < 0x20 or 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF or code & 0xFFFE == 0xFFFE:
            return False
        if 0xFDD0 <= code <= 0xFDEF:
            return False
    return True


FAMILIES = [  # (weight, strategy)
    (10, valid_messages),
    (20, mutated_messages),
    (6, duplicate_keys),
    (14, junk_messages),
    (12, not_json),
    (5, deep_messages),
    (12, unicode_messages),
    (1, oversize_messages),
    (2, batch_sizes),
    (5, topic_abuse),
]


def fuzz_messages(devices: Devices) -> st.SearchStrategy[FuzzMessage]:
    weighted = [strategy(devices) for weight, strategy in FAMILIES for _ in range(weight)]
    return st.sampled_from(weighted).flatmap(lambda strategy: strategy)


def draw_messages(devices: Devices, count: int, seed_value: int, each: Callable[[FuzzMessage], None]) -> None:
    """Draw `count` messages from hypothesis, the same ones for the same seed, and hand each to
    `each` as it is drawn (the CI test and bench/fuzz.py both draw this way)."""

    @seed(seed_value)
    @hypothesis_settings(
        max_examples=count,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(fuzz_messages(devices))
    def handle(message: FuzzMessage) -> None:
        each(message)

    handle()
