"""rpm.observations.readings: the pure checks of the gateway contract (mqtt.md).

Every reason code the pure layer produces, the bounds of every reading type, the drafts a
reading becomes, and the topic rule. `now` is fixed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpm.fhir.codes import HEART_RATE, READING_TYPES
from rpm.observations.readings import (
    MAX_BATCH_READINGS,
    MAX_PAYLOAD_BYTES,
    ObservationDraft,
    Reason,
    Rejection,
    ValidReading,
    parse_status,
    parse_topic,
    split_message,
    validate_reading,
)

NOW = datetime(2026, 11, 23, 8, 0, 0, tzinfo=UTC)
GATEWAY = "hub-0042"
TIME = "2026-11-23T07:59:41+01:00"  # 06:59:41Z, an hour before NOW
DROP = object()  # a field to leave out

# The contract's types: canonical unit, a typical value, and the plausible bounds.
SINGLE = {
    "heart-rate": ("/min", 72, (20, 300)),
    "spo2": ("%", 96, (50, 100)),
    "respiratory-rate": ("/min", 16, (3, 80)),
    "body-temperature": ("Cel", 36.8, (30, 45)),
    "body-weight": ("kg", 81.4, (2, 400)),
    "blood-glucose": ("mmol/L", 6.1, (0.5, 50)),
    "peak-flow": ("L/min", 420, (30, 1000)),
}
BP_BOUNDS = {"systolic": (40, 300), "diastolic": (20, 200), "pulse": (20, 300)}


def make(type_name: str = "body-weight", **fields: Any) -> dict[str, Any]:
    """A valid reading of `type_name`, with `fields` replaced (DROP leaves one out)."""
    reading: dict[str, Any] = {
        "id": "r-000123",
        "device": {"serial": "SC-7788", "manufacturer": "A&D"},
        "type": type_name,
        "time": TIME,
    }
    if type_name == "blood-pressure":
        reading["values"] = {"systolic": 142, "diastolic": 91}
        reading["unit"] = "mm[Hg]"
    else:
        unit, value, _ = SINGLE[type_name]
        reading["value"] = value
        reading["unit"] = unit
    for key, value in fields.items():
        if value is DROP:
            reading.pop(key, None)
        else:
            reading[key] = value
    return reading


def bp(unit: str = "mm[Hg]", **values: Any) -> dict[str, Any]:
    sent = {"systolic": 120, "diastolic": 80}
    sent.update(values)
    values = {k: v for k, v in sent.items() if v is not DROP}
    return make("blood-pressure", values=values, unit=unit)


def check(reading: Any) -> ValidReading | Rejection:
    return validate_reading(reading, GATEWAY, NOW)


def accepted(reading: Any) -> ValidReading:
    outcome = check(reading)
    assert isinstance(outcome, ValidReading), outcome
    return outcome


def rejected(reading: Any, reason: Reason) -> Rejection:
    outcome = check(reading)
    assert isinstance(outcome, Rejection), outcome
    assert outcome.reason == reason, outcome
    return outcome


# --- topics ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "root", "gateway"),
    [
        ("rpm/v1/gateways/hub-0042/measurements", "rpm/v1", "hub-0042"),
        ("rpm/v1/gateways/A.b_c-9/measurements", "rpm/v1", "A.b_c-9"),
        ("rpm/v1/gateways/x/measurements", "rpm/v1", "x"),
        ("rpm/v1/gateways/" + "g" * 64 + "/measurements", "rpm/v1", "g" * 64),
        ("rpm/v1/gateways/measurements/measurements", "rpm/v1", "measurements"),
        ("test-1a2b/rpm/v1/gateways/gw/measurements", "test-1a2b/rpm/v1", "gw"),
    ],
)
def test_parse_topic_of_good_measurements_topics(topic, root, gateway):
    assert parse_topic(topic, root) == (gateway, "measurements")


def test_parse_topic_default_root():
    assert parse_topic("rpm/v1/gateways/gw-1/measurements") == ("gw-1", "measurements")


@pytest.mark.parametrize(
    "topic",
    [
        "rpm/v2/gateways/gw/measurements",  # wrong prefix
        "rpm/v1/gateway/gw/measurements",
        "/rpm/v1/gateways/gw/measurements",
        "RPM/v1/gateways/gw/measurements",
        "test/rpm/v1/gateways/gw/measurements",  # another root
        "gateways/gw/measurements",
        "rpm/v1/gateways/gw/acks",  # wrong suffix
        "rpm/v1/gateways/gw/measurements/",
        "rpm/v1/gateways/gw/measurements/extra",
        "rpm/v1/gateways/gw/Measurements",
        "rpm/v1/gateways//measurements",  # empty gateway id
        "rpm/v1/gateways/measurements",
        "rpm/v1/gateways/" + "g" * 65 + "/measurements",  # > 64 characters
        "rpm/v1/gateways/a/b/measurements",  # illegal characters
        "rpm/v1/gateways/gw 1/measurements",
        "rpm/v1/gateways/gw+/measurements",
        "rpm/v1/gateways/+/measurements",
        "rpm/v1/gateways/#/measurements",
        "rpm/v1/gateways/gw:1/measurements",
        "rpm/v1/gateways/gw$1/measurements",
        "rpm/v1/gateways/gw@1/measurements",
        "rpm/v1/gateways/gåtewåy/measurements",
        "rpm/v1/gateways/gw1\n/measurements",
        "rpm/v1/gateways/\ngw1/measurements",
        "rpm/v1/gateways/gw1\t/measurements",
        "",
    ],
)
def test_parse_topic_refuses_bad_topics(topic):
    assert parse_topic(topic) is None


@given(gateway=st.text(alphabet=st.characters(codec="utf-8"), min_size=0, max_size=80))
def test_gateway_ids_follow_the_contract(gateway):
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
    valid = 1 <= len(gateway) <= 64 and set(gateway) <= allowed
    found = parse_topic(f"rpm/v1/gateways/{gateway}/measurements")
    assert found == ((gateway, "measurements") if valid else None)


# --- splitting a message ----------------------------------------------------------------------


def payload_of(document: Any) -> bytes:
    return json.dumps(document).encode()


def test_a_single_reading_is_a_list_of_one():
    reading = make()
    assert split_message(payload_of(reading)) == [reading]


def test_a_batch_is_its_readings_in_order():
    readings = [make(id=f"r-{i}") for i in range(3)]
    batch = {"sent_at": "2026-11-23T08:00:05+01:00", "readings": readings}
    assert split_message(payload_of(batch)) == readings


def test_the_contract_example_splits_and_validates():
    batch = {
        "sent_at": "2026-11-23T08:00:05+01:00",
        "readings": [
            {
                "id": "r-000123",
                "device": {"serial": "UA651-12345", "manufacturer": "A&D", "model": "UA-651BLE"},
                "type": "blood-pressure",
                "time": "2026-11-23T07:59:41+01:00",
                "values": {"systolic": 142, "diastolic": 91, "pulse": 77},
                "unit": "mm[Hg]",
            },
            {
                "id": "r-000124",
                "device": {"serial": "SC-7788"},
                "type": "body-weight",
                "time": "2026-11-23T07:58:02+01:00",
                "value": 81.4,
                "unit": "kg",
            },
        ],
    }
    readings = split_message(payload_of(batch))
    assert isinstance(readings, list)
    outcomes = [check(r) for r in readings]
    assert all(isinstance(o, ValidReading) for o in outcomes)
    assert [len(o.drafts) for o in outcomes] == [2, 1]


def test_a_batch_of_1000_is_accepted_and_1001_is_not():
    assert MAX_BATCH_READINGS == 1000
    small = {"id": "r", "device": {"serial": "s"}, "type": "heart-rate", "time": TIME,
             "value": 70, "unit": "/min"}
    readings = split_message(payload_of({"readings": [small] * 1000}))
    assert isinstance(readings, list) and len(readings) == 1000
    outcome = split_message(payload_of({"readings": [small] * 1001}))
    assert isinstance(outcome, Rejection)
    assert outcome.reason == Reason.schema
    assert outcome.detail.startswith("readings:")


@pytest.mark.parametrize("readings", [[], {}, {"id": "r-1"}, "r-1", None, 3, True])
def test_readings_must_be_a_non_empty_list(readings):
    outcome = split_message(payload_of({"readings": readings}))
    assert isinstance(outcome, Rejection)
    assert outcome.reason == Reason.schema
    assert outcome.detail.startswith("readings:")


@pytest.mark.parametrize("document", [[make()], [], "reading", 42, 4.2, None, True])
def test_a_payload_that_is_not_an_object_is_a_schema_error(document):
    payload = payload_of(document)
    outcome = split_message(payload)
    assert isinstance(outcome, Rejection)
    assert outcome.reason == Reason.schema
    assert outcome.detail.startswith("payload:")
    assert outcome.payload == payload


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"{",
        b'{"id": "r-1",}',
        b"{'id': 'r-1'}",
        b'{"value": NaN}',
        b'{"value": Infinity}',
        b'{"value": -Infinity}',
        b'{"readings": [{"value": NaN}]}',
        b"\xff\xfe{}",  # not UTF-8
        b'{"id": "\xe6\xf8\xe5"}',  # latin-1, not UTF-8
        b'{"id": "r-1"} trailing',
        "\ufeff{}".encode(),  # a byte order mark is not JSON
    ],
)
def test_not_json_is_bad_json(payload):
    outcome = split_message(payload)
    assert isinstance(outcome, Rejection)
    assert outcome.reason == Reason.bad_json
    assert outcome.payload == payload
    assert outcome.reading_id is None
    assert outcome.detail


def test_utf8_text_is_json():
    reading = make(id="måling-ø")
    assert split_message(json.dumps(reading, ensure_ascii=False).encode()) == [reading]


def _padded(size: int) -> bytes:
    """A valid single-reading payload of exactly `size` bytes."""
    skeleton = payload_of(make(note=""))
    payload = payload_of(make(note="x" * (size - len(skeleton))))
    assert len(payload) == size
    return payload


def test_256_kib_is_the_limit():
    assert MAX_PAYLOAD_BYTES == 256 * 1024
    assert isinstance(split_message(_padded(256 * 1024)), list)
    outcome = split_message(_padded(256 * 1024 + 1))
    assert isinstance(outcome, Rejection)
    assert outcome.reason == Reason.too_large
    assert str(256 * 1024 + 1) in outcome.detail


def test_too_large_is_decided_before_parsing():
    payload = b"\xff" * (256 * 1024 + 1)
    outcome = split_message(payload)
    assert isinstance(outcome, Rejection)
    assert outcome.reason == Reason.too_large
    assert outcome.payload == payload


@settings(max_examples=200)
@given(payload=st.binary(max_size=200))
def test_split_message_never_raises(payload):
    outcome = split_message(payload)
    assert isinstance(outcome, list | Rejection)


# What the fuzzer (tests/fuzz) found: each of these crashed the worker, or changed a kept payload.


@pytest.mark.parametrize(
    "payload",
    [
        b'{"id": "\\ud800", "device": {"serial": "SC-1"}}',  # a lone high surrogate
        b'{"readings": [{"id": "r-1", "device": {"serial": "\\udfff"}}]}',  # a lone low surrogate
        b'{"\\udbffA": 1}',  # in a key
        b'{"id": "r-1", "value": 1e400, "unit": "\\ud800"}',  # beside a number orjson refuses
    ],
)
def test_a_lone_surrogate_escape_is_bad_json(payload):
    # It parses with the standard parser, but no UTF-8 text, PostgreSQL text or ack can hold it:
    # writing its rejection (or its ack) used to raise, and the worker died on every redelivery.
    outcome = split_message(payload)
    assert isinstance(outcome, Rejection)
    assert (outcome.reason, outcome.payload) == (Reason.bad_json, payload)
    assert "surrogate" in (outcome.detail or "")


def test_a_surrogate_pair_is_one_character_and_accepted():
    assert split_message(b'{"id": "\\ud83d\\ude00"}') == [{"id": "\U0001f600"}]


@pytest.mark.parametrize("opener, closer", [(b"[", b"]"), (b'{"a":', b"}")])
def test_nesting_deeper_than_254_levels_is_a_schema_rejection(opener, closer):
    def nested(depth: int) -> bytes:
        inner = b"1" if opener != b"[" else b""
        return b'{"id":"r-1","extra":' + opener * depth + inner + closer * depth + b"}"

    assert isinstance(split_message(nested(253)), list)  # 254 levels with the reading itself
    for depth in (254, 1000):  # 1,000: its rejection used to exceed the recursion limit
        outcome = split_message(nested(depth))
        assert isinstance(outcome, Rejection)
        assert outcome.reason == Reason.schema and "254" in (outcome.detail or "")


def test_nesting_beyond_what_a_parser_reads_is_bad_json():
    payload = b"[" * 5000 + b"]" * 5000  # raised RecursionError out of the standard parser
    outcome = split_message(payload)
    assert isinstance(outcome, Rejection)
    assert (outcome.reason, outcome.payload) == (Reason.bad_json, payload)


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1, -558218471928918573056, 10**30, 10**400])
def test_integers_beyond_64_bits_keep_every_digit(number):
    # orjson reads them as floats: the kept rejection said -5.582184719289186e+20.
    [reading] = split_message(b'{"id": "r-1", "value": %d}' % number)
    assert reading["value"] == number and isinstance(reading["value"], int)
    rejection = validate_reading(reading, GATEWAY, NOW)
    assert isinstance(rejection, Rejection)
    assert json.loads(rejection.payload)["value"] == number


# --- a valid reading --------------------------------------------------------------------------


def test_a_valid_reading_keeps_what_was_sent():
    reading = make("body-weight", value=81.4, unit="kg")
    outcome = accepted(reading)
    assert outcome.gateway_id == GATEWAY
    assert outcome.reading_id == "r-000123"
    assert outcome.device_serial == "SC-7788"
    assert outcome.reading_type is READING_TYPES["body-weight"]
    assert outcome.time == datetime(2026, 11, 23, 6, 59, 41, tzinfo=UTC)
    assert outcome.time.utcoffset() == timedelta(hours=1)
    assert outcome.time_text == TIME
    assert outcome.original_value == 81.4
    assert outcome.original_unit == "kg"
    assert json.loads(outcome.payload) == reading
    assert outcome.drafts == (
        ObservationDraft(
            READING_TYPES["body-weight"], "29463-7", {"29463-7": 81.4}, "kg", f"{GATEWAY}/r-000123"
        ),
    )
    assert outcome.drafts[0].value == 81.4
    assert outcome.drafts[0].derived_from_panel is False


def test_the_original_value_and_unit_are_kept_and_the_draft_is_canonical():
    outcome = accepted(make("body-weight", value=180, unit="[lb_av]"))
    assert (outcome.original_value, outcome.original_unit) == (180, "[lb_av]")
    assert outcome.drafts[0].unit == "kg"
    assert outcome.drafts[0].value == 81.647


def test_the_payload_is_compact_utf8_json():
    outcome = accepted(make(id="måling-1"))
    assert "måling-1".encode() in outcome.payload
    assert b": " not in outcome.payload and b", " not in outcome.payload


@pytest.mark.parametrize(
    ("type_name", "code", "unit"),
    [
        ("heart-rate", "8867-4", "/min"),
        ("spo2", "59408-5", "%"),
        ("respiratory-rate", "9279-1", "/min"),
        ("body-temperature", "8310-5", "Cel"),
        ("body-weight", "29463-7", "kg"),
        ("blood-glucose", "14743-9", "mmol/L"),
        ("peak-flow", "19935-6", "L/min"),
    ],
)
def test_every_single_valued_type_becomes_one_draft(type_name, code, unit):
    value = SINGLE[type_name][1]
    outcome = accepted(make(type_name))
    (draft,) = outcome.drafts
    assert draft.code == code
    assert draft.unit == unit
    assert draft.values == {code: float(value)}
    assert draft.value == float(value)
    assert draft.identifier == f"{GATEWAY}/r-000123"
    assert draft.reading_type.name == type_name


def test_blood_pressure_with_pulse_becomes_a_panel_and_a_heart_rate():
    reading = make("blood-pressure", values={"systolic": 142, "diastolic": 91, "pulse": 77})
    outcome = accepted(reading)
    assert outcome.original_value == {"systolic": 142, "diastolic": 91, "pulse": 77}
    panel, pulse = outcome.drafts
    assert panel.code == "85354-9"
    assert panel.values == {"8480-6": 142.0, "8462-4": 91.0}
    assert list(panel.values) == ["8480-6", "8462-4"]
    assert panel.unit == "mm[Hg]"
    assert panel.value is None
    assert panel.identifier == f"{GATEWAY}/r-000123"
    assert panel.derived_from_panel is False
    assert pulse.code == "8867-4"
    assert pulse.reading_type is HEART_RATE
    assert pulse.values == {"8867-4": 77.0}
    assert pulse.value == 77.0
    assert pulse.unit == "/min"
    assert pulse.identifier == f"{GATEWAY}/r-000123/pulse"
    assert pulse.derived_from_panel is True


@pytest.mark.parametrize("values", [{"systolic": 142, "diastolic": 91},
                                    {"systolic": 142, "diastolic": 91, "pulse": None}])
def test_blood_pressure_without_pulse_is_one_draft(values):
    (panel,) = accepted(make("blood-pressure", values=values)).drafts
    assert panel.code == "85354-9"
    assert panel.values == {"8480-6": 142.0, "8462-4": 91.0}


def test_blood_pressure_in_kpa_converts_the_pressures_but_not_the_pulse():
    reading = bp("kPa", systolic=16, diastolic=10.7, pulse=77)
    panel, pulse = accepted(reading).drafts
    assert panel.values == {"8480-6": 120.01, "8462-4": 80.257}  # 80.256634
    assert panel.unit == "mm[Hg]"
    assert pulse.values == {"8867-4": 77.0}


@pytest.mark.parametrize(
    ("type_name", "value", "unit", "canonical"),
    [
        ("heart-rate", 72, "bpm", 72.0),
        ("spo2", 0.93, "1", 93.0),
        ("spo2", 0.95, "1", 95.0),
        ("body-temperature", 98.6, "[degF]", 37.0),
        ("body-weight", 81400, "g", 81.4),
        ("body-weight", 180, "[lb_av]", 81.647),
        ("blood-glucose", 90, "mg/dL", 4.996),
    ],
)
def test_accepted_aliases_are_converted(type_name, value, unit, canonical):
    (draft,) = accepted(make(type_name, value=value, unit=unit)).drafts
    assert draft.value == canonical
    assert draft.unit == SINGLE[type_name][0]


# --- schema -------------------------------------------------------------------------------------

SCHEMA = [
    pytest.param(["r-1"], "reading", id="reading is a list"),
    pytest.param("r-1", "reading", id="reading is a string"),
    pytest.param(None, "reading", id="reading is null"),
    pytest.param(42, "reading", id="reading is a number"),
    pytest.param(make(id=DROP), "id", id="id missing"),
    pytest.param(make(id=123), "id", id="id a number"),
    pytest.param(make(id=None), "id", id="id null"),
    pytest.param(make(id=""), "id", id="id empty"),
    pytest.param(make(id="r" * 129), "id", id="id 129 characters"),
    pytest.param(make(device=DROP), "device", id="device missing"),
    pytest.param(make(device="SC-7788"), "device", id="device a string"),
    pytest.param(make(device=["SC-7788"]), "device", id="device a list"),
    pytest.param(make(device={}), "device.serial", id="device.serial missing"),
    pytest.param(make(device={"serial": 7788}), "device.serial", id="device.serial a number"),
    pytest.param(make(device={"serial": ""}), "device.serial", id="device.serial empty"),
    pytest.param(make(device={"serial": "s" * 129}), "device.serial", id="device.serial 129"),
    pytest.param(make(type=DROP), "type", id="type missing"),
    pytest.param(make(type=7), "type", id="type a number"),
    pytest.param(make(type=["body-weight"]), "type", id="type a list"),
    pytest.param(make(time=DROP), "time", id="time missing"),
    pytest.param(make(time=1763884781), "time", id="time a number"),
    pytest.param(make(time=None), "time", id="time null"),
    pytest.param(make(unit=DROP), "unit", id="unit missing"),
    pytest.param(make(unit=None), "unit", id="unit null"),
    pytest.param(make(unit=1), "unit", id="unit a number"),
    pytest.param(make(value=DROP), "value", id="value missing"),
    pytest.param(make(value="81.4"), "value", id="value a string"),
    pytest.param(make(value=None), "value", id="value null"),
    pytest.param(make(value=True), "value", id="value a boolean"),
    pytest.param(make(value=[81.4]), "value", id="value a list"),
    pytest.param(make(value={"value": 81.4}), "value", id="value an object"),
    pytest.param(make(value=10**400), "value", id="value beyond a float"),
    pytest.param(make(value=DROP, values={"value": 81.4}), "value", id="values for a single type"),
    pytest.param(make("blood-pressure", values=DROP), "values", id="values missing"),
    pytest.param(make("blood-pressure", values=DROP, value=120), "values", id="value for bp"),
    pytest.param(make("blood-pressure", values=[142, 91]), "values", id="values a list"),
    pytest.param(make("blood-pressure", values="142/91"), "values", id="values a string"),
    pytest.param(bp(systolic=DROP), "values.systolic", id="values.systolic missing"),
    pytest.param(bp(diastolic=DROP), "values.diastolic", id="values.diastolic missing"),
    pytest.param(bp(systolic="142"), "values.systolic", id="values.systolic a string"),
    pytest.param(bp(systolic=None), "values.systolic", id="values.systolic null"),
    pytest.param(bp(systolic=True), "values.systolic", id="values.systolic a boolean"),
    pytest.param(bp(diastolic=[91]), "values.diastolic", id="values.diastolic a list"),
    pytest.param(bp(diastolic=10**400), "values.diastolic", id="values.diastolic beyond a float"),
    pytest.param(bp(pulse="77"), "values.pulse", id="values.pulse a string"),
    pytest.param(bp(pulse=False), "values.pulse", id="values.pulse a boolean"),
    pytest.param(bp(pulse=10**400), "values.pulse", id="values.pulse beyond a float"),
    pytest.param(bp(mean=100), "values.mean", id="values with an unknown component"),
]


@pytest.mark.parametrize(("reading", "field"), SCHEMA)
def test_schema_errors_name_the_field(reading, field):
    rejection = rejected(reading, Reason.schema)
    assert rejection.detail.split(":")[0] == field


def test_a_rejection_carries_the_id_serial_and_payload_it_could_read():
    reading = make(value="heavy")
    rejection = rejected(reading, Reason.schema)
    assert rejection.reading_id == "r-000123"
    assert rejection.device_serial == "SC-7788"
    assert json.loads(rejection.payload) == reading


@pytest.mark.parametrize(
    "reading",
    [["r-1"], make(id=123, device={"serial": 5}, value="x"), make(id=DROP, device=DROP)],
)
def test_a_rejection_without_a_readable_id_or_serial_has_none(reading):
    rejection = check(reading)
    assert isinstance(rejection, Rejection)
    assert rejection.reading_id is None
    assert rejection.device_serial is None


def test_ids_and_serials_of_128_characters_are_accepted():
    outcome = accepted(make(id="r" * 128, device={"serial": "s" * 128}))
    assert outcome.drafts[0].identifier == f"{GATEWAY}/{'r' * 128}"


def test_a_single_character_id_and_serial_are_accepted():
    assert accepted(make(id="r", device={"serial": "s"})).reading_id == "r"


def test_extra_fields_are_ignored():
    assert accepted(make(note="after breakfast", device={"serial": "S", "model": "X"}))


@pytest.mark.parametrize(
    ("reading", "reason"),
    [
        (make(type="weight"), Reason.unknown_type),
        (make(type="Body-Weight"), Reason.unknown_type),
        (make(type=""), Reason.unknown_type),
        (make(type="pulse"), Reason.unknown_type),
        (make(type="blood-pressure-panel"), Reason.unknown_type),
    ],
)
def test_unknown_types(reading, reason):
    rejection = rejected(reading, reason)
    assert repr(reading["type"]) in rejection.detail


# --- units --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_name", "unit"),
    [
        ("blood-pressure", "mmHg"),
        ("blood-pressure", "kpa"),
        ("blood-pressure", "bpm"),
        ("heart-rate", "beats/min"),
        ("heart-rate", "Hz"),
        ("spo2", "fraction"),
        ("spo2", "percent"),
        ("respiratory-rate", "kPa"),
        ("respiratory-rate", "/s"),
        ("body-temperature", "°C"),
        ("body-temperature", "[degC]"),
        ("body-temperature", "K"),
        ("body-weight", "lb"),
        ("body-weight", "lbs"),
        ("body-weight", "KG"),
        ("blood-glucose", "mg/dl"),
        ("blood-glucose", "mmol/l"),
        ("peak-flow", "l/min"),
        ("peak-flow", "L/s"),
        ("peak-flow", ""),
    ],
)
def test_units_not_accepted_for_the_type_are_bad_unit(type_name, unit):
    rejection = rejected(make(type_name, unit=unit), Reason.bad_unit)
    assert rejection.detail.startswith("unit:")
    assert repr(unit) in rejection.detail


# --- time --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "time",
    [
        "2026-11-23T08:09:00Z",  # 9 minutes ahead
        "2026-11-23T08:10:00Z",  # exactly 10 minutes ahead
        "2026-11-23T09:09:59+01:00",
        "2026-11-23T03:09:59-05:00",
        "2026-11-23T08:00:00Z",
        "2026-11-23T07:59:41+01:00",
        "2026-11-20T08:00:00Z",  # days old: late data is accepted
        "2025-11-23T08:00:00+01:00",  # a year old
        "2000-01-01T00:00:00Z",
        "2026-11-23t07:59:41z",  # RFC 3339 allows lower case
        "2026-11-23T07:59:41.5Z",
        "2026-11-23T07:59:41.123456789+01:00",
        "2026-11-23T07:59:41-00:00",
        "2026-11-23T22:00:00+14:00",
        "2026-11-22T20:00:00-12:00",
    ],
)
def test_times_that_are_accepted(time):
    outcome = accepted(make(time=time))
    assert outcome.time_text == time
    assert outcome.time.tzinfo is not None


@pytest.mark.parametrize(
    ("time", "instant", "offset"),
    [
        ("2026-11-23T07:59:41+01:00", datetime(2026, 11, 23, 6, 59, 41, tzinfo=UTC), 60),
        ("2026-11-23T07:59:41Z", datetime(2026, 11, 23, 7, 59, 41, tzinfo=UTC), 0),
        ("2026-11-23t07:59:41z", datetime(2026, 11, 23, 7, 59, 41, tzinfo=UTC), 0),
        ("2026-11-23T02:59:41.25-05:00",
         datetime(2026, 11, 23, 7, 59, 41, 250000, tzinfo=UTC), -300),
        ("2026-11-23T13:29:41+05:30", datetime(2026, 11, 23, 7, 59, 41, tzinfo=UTC), 330),
    ],
)
def test_the_time_keeps_its_instant_and_offset(time, instant, offset):
    outcome = accepted(make(time=time))
    assert outcome.time == instant
    assert outcome.time.utcoffset() == timedelta(minutes=offset)


@pytest.mark.parametrize(
    "time",
    [
        "2026-11-23T08:10:00.001Z",
        "2026-11-23T08:10:01Z",
        "2026-11-23T08:11:00Z",
        "2026-11-23T09:10:01+01:00",
        "2026-11-23T03:11:00-05:00",
        "2026-11-24T08:00:00Z",
        "2027-01-01T00:00:00Z",
        "2126-11-23T08:00:00Z",
    ],
)
def test_more_than_ten_minutes_ahead_is_time_in_future(time):
    rejection = rejected(make(time=time), Reason.time_in_future)
    assert rejection.detail.startswith("time:")


def test_the_future_is_measured_from_now():
    reading = make(time="2026-11-23T08:15:00Z")
    assert isinstance(validate_reading(reading, GATEWAY, NOW), Rejection)
    later = NOW + timedelta(minutes=5)
    assert isinstance(validate_reading(reading, GATEWAY, later), ValidReading)
    in_oslo = NOW.astimezone(timezone(timedelta(hours=1)))
    assert isinstance(validate_reading(reading, GATEWAY, in_oslo), Rejection)


@pytest.mark.parametrize(
    "time",
    ["2026-11-23T07:59:41", "2026-11-23T07:59:41.250", "2026-11-23t07:59:41"],
)
def test_a_time_without_offset_is_rejected(time):
    rejection = rejected(make(time=time), Reason.time_without_offset)
    assert rejection.detail.startswith("time:")


@pytest.mark.parametrize(
    "time",
    [
        "",
        "yesterday",
        "2026-11-23",
        "07:59:41Z",
        "2026-11-23 07:59:41Z",
        "2026-11-23T07:59Z",
        "20261123T075941Z",
        "2026-11-23T07:59:41+0100",
        "2026-11-23T07:59:41+01",
        "2026-11-23T07:59:41.Z",
        "2026-11-23T07:59:41.1234567890Z",
        "2026-02-30T07:59:41Z",
        "2026-13-01T07:59:41Z",
        "2026-11-23T24:00:00Z",
        "2026-11-23T07:60:00Z",
        "2026-11-23T07:59:41+25:00",
        "2026-11-23T07:59:41Z\n",
        " 2026-11-23T07:59:41Z",
        "2026-11-23T07:59:41 Z",
    ],
)
def test_a_time_that_is_not_rfc_3339_is_a_schema_error(time):
    rejection = rejected(make(time=time), Reason.schema)
    assert rejection.detail.startswith("time:")


# --- plausibility ---------------------------------------------------------------------------------

BOUNDS = [(name, "value", low, high) for name, (_, _, (low, high)) in SINGLE.items()] + [
    ("blood-pressure", "systolic", 40, 300),
    ("blood-pressure", "diastolic", 20, 200),
    ("blood-pressure", "pulse", 20, 300),
]


def _reading_with(type_name: str, key: str, value: float) -> dict[str, Any]:
    if type_name == "blood-pressure":
        return bp(**{key: value})
    return make(type_name, value=value)


@pytest.mark.parametrize(("type_name", "key", "low", "high"), BOUNDS)
def test_the_bounds_are_inclusive(type_name, key, low, high):
    for value in (low, high, float(low), float(high)):
        assert accepted(_reading_with(type_name, key, value))


@pytest.mark.parametrize(("type_name", "key", "low", "high"), BOUNDS)
@pytest.mark.parametrize("step", [0.1, 0.001])
def test_just_outside_the_bounds_is_implausible(type_name, key, low, high, step):
    for value in (low - step, high + step):
        rejection = rejected(_reading_with(type_name, key, value), Reason.implausible_value)
        assert rejection.detail.startswith(f"{key}:")


@pytest.mark.parametrize(("type_name", "key", "low", "high"), BOUNDS)
def test_far_outside_the_bounds_is_implausible(type_name, key, low, high):
    for value in (-1, 0, high * 10, 1e300) if low > 0 else (-1, high * 10):
        rejected(_reading_with(type_name, key, value), Reason.implausible_value)


@pytest.mark.parametrize(
    ("type_name", "value", "unit", "ok"),
    [
        ("body-weight", 400, "kg", True),
        ("body-weight", 400.1, "kg", False),
        ("body-weight", 2, "kg", True),
        ("body-weight", 1.9, "kg", False),
        ("body-weight", 400_000, "g", True),
        ("body-weight", 400_100, "g", False),
        ("body-weight", 2000, "g", True),
        ("body-weight", 1900, "g", False),
        ("body-weight", 881.8, "[lb_av]", True),  # 399.977 kg
        ("body-weight", 882, "[lb_av]", False),  # 400.068 kg
        ("body-weight", 4.4, "[lb_av]", False),  # 1.996 kg
        ("spo2", 0.93, "1", True),
        ("spo2", 1, "1", True),
        ("spo2", 0.5, "1", True),
        ("spo2", 1.01, "1", False),
        ("spo2", 0.49, "1", False),
        ("spo2", 93, "1", False),  # a percentage sent as a fraction: 9300 %
        ("spo2", 100.1, "%", False),
        ("body-temperature", 113, "[degF]", True),  # 45 Cel
        ("body-temperature", 86, "[degF]", True),  # 30 Cel
        ("body-temperature", 113.2, "[degF]", False),
        ("body-temperature", 85.8, "[degF]", False),
        ("body-temperature", 98.6, "Cel", False),  # Fahrenheit sent as Celsius
        ("blood-glucose", 900.8, "mg/dL", True),  # 50 mmol/L
        ("blood-glucose", 901, "mg/dL", False),
        ("blood-glucose", 9.008, "mg/dL", True),  # 0.5 mmol/L
        ("blood-glucose", 8.9, "mg/dL", False),
        ("blood-glucose", 90, "mmol/L", False),  # mg/dL sent as mmol/L
        ("heart-rate", 300, "bpm", True),
        ("heart-rate", 300.1, "bpm", False),
        ("heart-rate", 19.9, "bpm", False),
    ],
)
def test_plausibility_is_judged_in_the_canonical_unit(type_name, value, unit, ok):
    outcome = check(make(type_name, value=value, unit=unit))
    if ok:
        assert isinstance(outcome, ValidReading), outcome
    else:
        assert isinstance(outcome, Rejection) and outcome.reason == Reason.implausible_value


@pytest.mark.parametrize(
    ("values", "ok", "component"),
    [
        ({"systolic": 39.99, "diastolic": 10}, True, None),  # 299.95 / 75.006 mm[Hg]
        ({"systolic": 40, "diastolic": 10}, False, "systolic"),  # 300.025 mm[Hg]
        ({"systolic": 5.34, "diastolic": 2.67}, True, None),  # 40.053 / 20.027
        ({"systolic": 5.3, "diastolic": 2.67}, False, "systolic"),  # 39.753
        ({"systolic": 16, "diastolic": 2.6}, False, "diastolic"),  # 19.502
        ({"systolic": 16, "diastolic": 26.7}, False, "diastolic"),  # 200.267
        ({"systolic": 16, "diastolic": 10, "pulse": 300}, True, None),  # pulse is not a pressure
        ({"systolic": 16, "diastolic": 10, "pulse": 300.5}, False, "pulse"),
    ],
)
def test_blood_pressure_in_kpa_is_judged_in_mm_hg(values, ok, component):
    outcome = check(make("blood-pressure", values=values, unit="kPa"))
    if ok:
        assert isinstance(outcome, ValidReading), outcome
    else:
        assert isinstance(outcome, Rejection) and outcome.reason == Reason.implausible_value
        assert outcome.detail.startswith(f"{component}:")


def test_the_implausible_detail_gives_value_unit_and_bounds():
    rejection = rejected(make("body-weight", value=400.1), Reason.implausible_value)
    assert rejection.detail == "value: 400.1 kg is outside 2-400"


@pytest.mark.parametrize("type_name", sorted(SINGLE))
@given(data=st.data())
def test_values_within_bounds_are_accepted_unchanged(type_name, data):
    unit, _, (low, high) = SINGLE[type_name]
    value = data.draw(st.floats(min_value=low, max_value=high))
    (draft,) = accepted(make(type_name, value=value, unit=unit)).drafts
    assert draft.value == value


@pytest.mark.parametrize("type_name", sorted(SINGLE))
@given(data=st.data())
def test_values_outside_bounds_are_implausible(type_name, data):
    unit, _, (low, high) = SINGLE[type_name]
    value = data.draw(
        st.floats(max_value=low, exclude_max=True, allow_nan=False, allow_infinity=False)
        | st.floats(min_value=high, exclude_min=True, allow_nan=False, allow_infinity=False)
    )
    rejected(make(type_name, value=value, unit=unit), Reason.implausible_value)


@given(
    systolic=st.floats(min_value=40, max_value=300),
    diastolic=st.floats(min_value=20, max_value=200),
    pulse=st.none() | st.integers(min_value=20, max_value=300),
)
def test_blood_pressure_within_bounds_is_accepted(systolic, diastolic, pulse):
    outcome = accepted(bp(systolic=systolic, diastolic=diastolic, pulse=pulse))
    assert outcome.drafts[0].values == {"8480-6": systolic, "8462-4": diastolic}
    assert len(outcome.drafts) == (1 if pulse is None else 2)


# --- robustness ---------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**400)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
numbers = st.integers(min_value=-10, max_value=10**400) | st.floats(
    allow_nan=False, allow_infinity=False
)
units = st.sampled_from(["mm[Hg]", "kPa", "/min", "bpm", "%", "1", "Cel", "[degF]", "kg", "g",
                         "[lb_av]", "mmol/L", "mg/dL", "L/min", "lb"])
readings = st.fixed_dictionaries(
    {},
    optional={
        "id": st.just("r-1") | json_values,
        "device": st.just({"serial": "S-1"}) | json_values,
        "type": st.sampled_from(sorted(READING_TYPES)) | json_values,
        "time": st.sampled_from([TIME, "2026-11-23T08:30:00Z", "2026-11-23T07:00:00"])
        | json_values,
        "unit": units | json_values,
        "value": numbers | json_values,
        "values": st.fixed_dictionaries(
            {}, optional={"systolic": numbers, "diastolic": numbers, "pulse": numbers | st.none()}
        ) | json_values,
    },
)
FIELDS = {"reading", "id", "device", "device.serial", "type", "time", "unit", "value", "values",
          "values.systolic", "values.diastolic", "values.pulse"}


@settings(max_examples=500)
@given(reading=readings | json_values)
def test_validate_reading_never_raises_and_names_the_field_of_a_schema_error(reading):
    outcome = check(reading)
    assert isinstance(outcome, ValidReading | Rejection)
    if isinstance(outcome, Rejection):
        assert outcome.reason in {Reason.schema, Reason.unknown_type, Reason.bad_unit,
                                  Reason.time_without_offset, Reason.time_in_future,
                                  Reason.implausible_value}
        assert outcome.detail
        if outcome.reason == Reason.schema:
            field = outcome.detail.split(":")[0]
            assert field in FIELDS or field.startswith("values.")
    else:
        assert outcome.drafts
        for draft in outcome.drafts:
            for (low, high), value in zip(
                [q.plausible for q in draft.reading_type.components.values()],
                draft.values.values(),
                strict=True,
            ):
                assert low <= value <= high


@pytest.mark.parametrize(
    ("time", "accepted"),
    [
        ("2026-11-23T21:59:41+14:00", True),
        ("2026-11-22T17:59:41-14:00", True),
        ("2026-11-23T22:59:41+15:00", False),
        ("2026-11-22T16:59:41-15:00", False),
        ("2026-11-23T07:59:41+14:30", False),
    ],
)
def test_offsets_beyond_fourteen_hours_are_a_schema_rejection(time, accepted):
    # FHIR dateTime cannot carry them, and no real time zone has one.
    outcome = check(make(time=time))
    if accepted:
        assert isinstance(outcome, ValidReading)
    else:
        assert isinstance(outcome, Rejection)
        assert outcome.reason is Reason.schema and outcome.detail.startswith("time:")


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("rpm/v1/gateways/gw-1/measurements", ("gw-1", "measurements")),
        ("rpm/v1/gateways/gw-1/status", ("gw-1", "status")),
        ("rpm/v1/gateways/gw-1/acks", None),
        ("rpm/v1/gateways/gw 1/status", None),
        ("rpm/v1/gateways//status", None),
        ("other/v1/gateways/gw-1/status", None),
    ],
)
def test_parse_topic_knows_the_two_topics_gateways_publish_on(topic, expected):
    assert parse_topic(topic) == expected


@pytest.mark.parametrize(("payload", "expected"), [(b"online", "online"), (b"offline\n", "offline")])
def test_status_payloads(payload, expected):
    assert parse_status(payload) == expected


@pytest.mark.parametrize("payload", [b"", b"ONLINE", b'{"status": "online"}', b"\xff"])
def test_other_status_payloads_are_schema_rejections(payload):
    rejection = parse_status(payload)
    assert isinstance(rejection, Rejection) and rejection.reason is Reason.schema and rejection.payload == payload
