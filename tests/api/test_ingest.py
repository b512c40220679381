"""Readings through the ingest core (no broker): linking to patients, rejections, de-duplication,
reprocessing. Patients, devices and assignments are made through the API."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from rpm.observations.models import Observation
from rpm.pipeline import IncomingMessage
from rpm.rejections.models import RejectedReading
from rpm.rejections.service import reprocess_device
from tests.api.helpers import (
    TOPIC_ROOT,
    assign,
    enrol,
    ingest,
    message,
    observations_of,
    reading,
    register,
    unique,
)
from tests.conftest import ORG_A
from tests.fixtures.world import add_patient_with_devices


async def rejections_of(session, serial: str) -> list[RejectedReading]:
    rows = await session.scalars(
        select(RejectedReading)
        .where(RejectedReading.device_serial == serial)
        .order_by(RejectedReading.received_at)
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def count_observations(session, gateway: str, reading_id: str) -> int:
    return await session.scalar(
        select(func.count())
        .select_from(Observation)
        .where(Observation.gateway_id == gateway, Observation.reading_id == reading_id)
    )


async def test_accepted_reading_is_stored_for_the_assigned_patient(client, tokens, session):
    admin = tokens(ORG_A, "admin")
    patient = await enrol(client, admin)
    device = await register(client, admin)
    await assign(client, admin, device["serial"], patient["id"])
    sent = reading(device["serial"], "2026-11-20T07:58:02+01:00", value=81.4)
    (outcome,) = await ingest(session, message([sent], gateway="gw-accept"))
    assert outcome.gateway_id == "gw-accept"
    assert outcome.results == [{"id": sent["id"], "status": "accepted"}]

    (stored,) = await observations_of(session, patient["id"])
    assert str(stored.device_id) == device["id"]
    assert stored.code == "29463-7" and stored.value == 81.4 and stored.unit == "kg"
    assert stored.effective_at == datetime.fromisoformat("2026-11-20T07:58:02+01:00")
    assert (stored.gateway_id, stored.reading_id) == ("gw-accept", sent["id"])
    assert stored.resource["subject"] == {"reference": f"Patient/{patient['id']}"}
    assert stored.resource["effectiveDateTime"] == "2026-11-20T07:58:02+01:00"


async def test_unknown_device_is_rejected_and_kept(client, tokens, session):
    serial = unique("GHOST")
    sent = reading(serial, "2026-11-20T07:58:02+01:00")
    received = datetime(2026, 11, 20, 7, 0, 5, tzinfo=UTC)
    msg = message([sent], gateway="gw-ghost", received_at=received)
    (outcome,) = await ingest(session, msg)
    (result,) = outcome.results
    assert result["status"] == "rejected" and result["reason"] == "unknown_device"
    assert result["id"] == sent["id"]

    (kept,) = await rejections_of(session, serial)
    assert kept.reason == "unknown_device"
    assert json.loads(kept.payload) == sent
    assert kept.topic == msg.topic
    assert kept.gateway_id == "gw-ghost"
    assert kept.reading_id == sent["id"]
    assert kept.received_at == received
    assert kept.reprocessed_at is None
    assert await count_observations(session, "gw-ghost", sent["id"]) == 0


async def test_registered_but_unassigned_device_is_rejected(client, tokens, session):
    admin = tokens(ORG_A, "admin")
    patient = await enrol(client, admin)
    device = await register(client, admin)
    (outcome,) = await ingest(session, message([reading(device["serial"], "2026-11-20T08:00:00Z")]))
    assert outcome.results[0]["reason"] == "device_not_assigned"

    # Assigned from 1 November: a reading from October is still nobody's.
    await assign(client, admin, device["serial"], patient["id"], "2026-11-01T00:00:00+01:00")
    (outcome,) = await ingest(
        session,
        message(
            [
                reading(device["serial"], "2026-10-31T22:59:59Z"),
                reading(device["serial"], "2026-10-31T23:00:00Z"),
            ]
        ),
    )
    assert outcome.results[0]["status"] == "rejected"
    assert outcome.results[0]["reason"] == "device_not_assigned"
    assert outcome.results[1]["status"] == "accepted"
    reasons = [r.reason for r in await rejections_of(session, device["serial"])]
    assert reasons == ["device_not_assigned", "device_not_assigned"]


async def test_patient_is_chosen_by_the_assignment_in_force_at_the_reading_time(client, tokens, session):
    admin = tokens(ORG_A, "admin")
    first, second = await enrol(client, admin), await enrol(client, admin)
    device = await register(client, admin)
    await assign(client, admin, device["serial"], first["id"], "2026-11-01T00:00:00+01:00")
    await assign(client, admin, device["serial"], second["id"], "2026-11-10T12:00:00+01:00")

    serial = device["serial"]
    readings = {
        "before": reading(serial, "2026-11-10T11:59:59+01:00", value=80.0),
        "at": reading(serial, "2026-11-10T12:00:00+01:00", value=81.0),
        "after-utc": reading(serial, "2026-11-10T11:30:00Z", value=82.0),
        "early": reading(serial, "2026-11-02T08:00:00+01:00", value=79.0),
    }
    # All arrive after the move: the reading's own time decides, not its arrival.
    (outcome,) = await ingest(session, message(list(readings.values())))
    assert [r["status"] for r in outcome.results] == ["accepted"] * 4

    to_first = {o.reading_id for o in await observations_of(session, first["id"])}
    to_second = {o.reading_id for o in await observations_of(session, second["id"])}
    assert to_first == {readings["before"]["id"], readings["early"]["id"]}
    assert to_second == {readings["at"]["id"], readings["after-utc"]["id"]}


async def test_same_message_twice_is_a_duplicate(client, tokens, session):
    admin = tokens(ORG_A, "admin")
    patient = await enrol(client, admin)
    device = await register(client, admin)
    await assign(client, admin, device["serial"], patient["id"])
    sent = reading(device["serial"], "2026-11-20T07:58:02+01:00")
    msg = message([sent], gateway="gw-dup")

    (first,) = await ingest(session, msg)
    (second,) = await ingest(session, msg)
    assert first.results == [{"id": sent["id"], "status": "accepted"}]
    assert second.results == [{"id": sent["id"], "status": "duplicate"}]
    assert second.duplicates == 1 and second.accepted == []
    assert await count_observations(session, "gw-dup", sent["id"]) == 1

    # The same reading id from another gateway is another reading.
    (other,) = await ingest(session, message([sent], gateway="gw-dup-2"))
    assert other.results[0]["status"] == "accepted"
    assert len(await observations_of(session, patient["id"])) == 2


async def test_same_reading_twice_in_one_batch(client, tokens, session):
    admin = tokens(ORG_A, "admin")
    patient = await enrol(client, admin)
    device = await register(client, admin)
    await assign(client, admin, device["serial"], patient["id"])
    sent = reading(device["serial"], "2026-11-20T07:58:02+01:00")
    (outcome,) = await ingest(session, message([sent, sent], gateway="gw-dup-batch"))
    assert [r["status"] for r in outcome.results] == ["accepted", "duplicate"]
    assert await count_observations(session, "gw-dup-batch", sent["id"]) == 1


async def test_blood_pressure_with_pulse_makes_two_observations_once(client, tokens, session):
    admin = tokens(ORG_A, "admin")
    patient = await enrol(client, admin)
    device = await register(client, admin, type="blood-pressure")
    await assign(client, admin, device["serial"], patient["id"])
    sent = reading(
        device["serial"],
        "2026-11-23T07:59:41+01:00",
        type="blood-pressure",
        value={"systolic": 142, "diastolic": 91, "pulse": 77},
        unit="mm[Hg]",
    )
    msg = message([sent], gateway="gw-bp")
    (first,) = await ingest(session, msg)
    (again,) = await ingest(session, msg)
    assert first.results[0]["status"] == "accepted"
    assert again.results[0]["status"] == "duplicate"
    stored = {o.code: o for o in await observations_of(session, patient["id"])}
    assert set(stored) == {"85354-9", "8867-4"}
    assert stored["85354-9"].components == {"8480-6": 142.0, "8462-4": 91.0}
    assert stored["8867-4"].value == 77.0


async def test_units_are_converted_and_the_original_kept(client, tokens, session):
    admin = tokens(ORG_A, "admin")
    patient = await enrol(client, admin)
    device = await register(client, admin)
    await assign(client, admin, device["serial"], patient["id"])
    sent = reading(device["serial"], "2026-11-20T07:58:02+01:00", value=180, unit="[lb_av]")
    await ingest(session, message([sent]))
    (stored,) = await observations_of(session, patient["id"])
    assert stored.value == round(180 * 0.45359237, 3) and stored.unit == "kg"
    assert stored.original_value == 180 and stored.original_unit == "[lb_av]"


async def test_message_level_rejection_keeps_the_raw_bytes(session):
    raw = b'{"readings": [ this is not json'
    topic = f"{TOPIC_ROOT}/gateways/gw-broken/measurements"
    (outcome,) = await ingest(session, IncomingMessage(topic, raw, datetime.now(UTC)))
    (result,) = outcome.results
    assert result["id"] is None and result["reason"] == "bad_json"
    kept = (await session.scalars(select(RejectedReading).where(RejectedReading.topic == topic))).all()
    assert [(k.reason, k.payload, k.gateway_id) for k in kept] == [("bad_json", raw, "gw-broken")]


async def test_reading_level_rejections_are_kept_with_reason(client, tokens, session):
    admin = tokens(ORG_A, "admin")
    patient = await enrol(client, admin)
    device = await register(client, admin)
    await assign(client, admin, device["serial"], patient["id"])
    serial = device["serial"]
    now = datetime.now(UTC)
    sent = [
        reading(serial, "2026-11-20T07:58:02", value=81.0),
        reading(serial, (now + timedelta(hours=1)).isoformat(), value=81.0),
        reading(serial, "2026-11-20T07:58:02+01:00", value=900.0),
        reading(serial, "2026-11-20T07:58:02+01:00", value=81.0, unit="stone"),
        reading(serial, "2026-11-20T07:58:02+01:00", type="mood", value=3, unit="1"),
    ]
    (outcome,) = await ingest(session, message(sent), now=now)
    expected = [
        "time_without_offset",
        "time_in_future",
        "implausible_value",
        "bad_unit",
        "unknown_type",
    ]
    assert [r.get("reason") for r in outcome.results] == expected
    kept = {r.reading_id: r for r in await rejections_of(session, serial)}
    assert {k: v.reason for k, v in kept.items()} == {s["id"]: reason for s, reason in zip(sent, expected, strict=True)}
    for s in sent:
        assert json.loads(kept[s["id"]].payload) == s
    assert await observations_of(session, patient["id"]) == []


async def test_reprocess_accepts_a_reading_once_the_device_is_known(client, tokens, session):
    admin = tokens(ORG_A, "admin")
    patient = await enrol(client, admin)
    serial = unique("LATE")
    sent = reading(serial, "2026-11-20T07:58:02+01:00", value=77.7)
    (outcome,) = await ingest(session, message([sent], gateway="gw-late"))
    assert outcome.results[0]["reason"] == "unknown_device"

    # Registered but not yet assigned: still rejected, now for the new reason, and kept open.
    await register(client, admin, serial=serial)
    counts = await reprocess_device(session, serial)
    assert counts == {"accepted": 0, "duplicate": 0, "rejected": 1}
    (kept,) = await rejections_of(session, serial)
    assert kept.reason == "device_not_assigned" and kept.reprocessed_at is None

    await assign(client, admin, serial, patient["id"])
    counts = await reprocess_device(session, serial)
    assert counts == {"accepted": 1, "duplicate": 0, "rejected": 0}
    (kept,) = await rejections_of(session, serial)
    assert kept.reprocessed_at is not None
    assert kept.reprocess_outcome == {"id": sent["id"], "status": "accepted"}
    (stored,) = await observations_of(session, patient["id"])
    assert (stored.gateway_id, stored.reading_id, stored.value) == ("gw-late", sent["id"], 77.7)

    # Nothing open is left; the gateway redelivering the reading is now a duplicate.
    counts = await reprocess_device(session, serial)
    assert counts == {"accepted": 0, "duplicate": 0, "rejected": 0}
    (again,) = await ingest(session, message([sent], gateway="gw-late"))
    assert again.results[0]["status"] == "duplicate"
    assert len(await observations_of(session, patient["id"])) == 1


async def test_reprocess_touches_only_that_device(client, tokens, session):
    admin = tokens(ORG_A, "admin")
    patient = await enrol(client, admin)
    wanted, other = unique("LATE"), unique("OTHER")
    await ingest(
        session,
        message([reading(wanted, "2026-11-20T07:58:02+01:00"), reading(other, "2026-11-20T08:00:00Z")]),
    )
    wanted_device = await register(client, admin, serial=wanted)
    await register(client, admin, serial=other)
    await assign(client, admin, wanted, patient["id"])
    await assign(client, admin, other, patient["id"])
    assert (await reprocess_device(session, wanted))["accepted"] == 1
    (left,) = await rejections_of(session, other)
    assert left.reprocessed_at is None and left.reason == "unknown_device"
    (stored,) = await observations_of(session, patient["id"])
    assert str(stored.device_id) == wanted_device["id"]


async def test_patients_and_devices_with_readings_are_never_deleted(session):
    """Observations carry no foreign keys (a check per stored row); what they name must stay."""
    patient_id, (device,) = await add_patient_with_devices(session, ORG_A, ["spo2"])
    statements = [
        (text("delete from patients where id = :id"), patient_id, "patients are never deleted"),
        (text("delete from devices where id = :id"), device.device_id, "devices are never deleted"),
        (text("truncate patients cascade"), None, "patients are never deleted"),
        (text("truncate devices cascade"), None, "devices are never deleted"),
    ]
    for statement, row_id, refusal in statements:
        with pytest.raises(DBAPIError, match=refusal):
            async with session.begin_nested():
                await session.execute(statement, {"id": row_id} if row_id else {})
    assert await session.scalar(text("select count(*) from patients where id = :id"), {"id": patient_id}) == 1
    assert await session.scalar(text("select count(*) from devices where id = :id"), {"id": device.device_id}) == 1


async def test_a_nul_character_in_an_id_or_serial_is_rejected_and_kept(session):
    """U+0000 is valid JSON but no PostgreSQL text can hold it: the reading is rejected as a
    schema error (not left to fail its batch), and the rejection is kept with the raw payload."""
    serial = unique("NUL")
    bad_id = reading(serial, "2026-11-20T07:58:02+01:00", reading_id="r\x00-1")
    bad_serial = reading(serial + "\x00", "2026-11-20T07:58:02+01:00")
    (outcome,) = await ingest(session, message([bad_id, bad_serial], gateway="gw-nul"))
    assert [(r["status"], r["reason"]) for r in outcome.results] == [("rejected", "schema"), ("rejected", "schema")]
    assert "U+0000" in outcome.results[0]["detail"] and "U+0000" in outcome.results[1]["detail"]
    kept = await rejections_of(session, serial)
    assert [k.reading_id for k in kept] == ["r\ufffd-1"]
    assert json.loads(kept[0].payload) == bad_id  # the original, NUL included
    (by_serial,) = await rejections_of(session, serial + "\ufffd")
    assert json.loads(by_serial.payload) == bad_serial


async def test_large_ingest_columns_use_lz4_where_the_server_has_it(session):
    try:
        async with session.begin_nested():
            await session.execute(text("set local default_toast_compression = 'lz4'"))
        expected = "l"
    except DBAPIError:  # a server built without lz4: the migration keeps pglz
        expected = ""
    found = await session.execute(
        text(
            "select attrelid::regclass::text, attname, attcompression::text from pg_attribute "
            "where (attrelid, attname) in (('observations'::regclass, 'resource'), "
            "('alert_events'::regclass, 'alert'), ('rejected_readings'::regclass, 'payload'))"
        )
    )
    assert sorted(tuple(row) for row in found) == [
        ("alert_events", "alert", expected),
        ("observations", "resource", expected),
        ("rejected_readings", "payload", expected),
    ]
