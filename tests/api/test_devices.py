"""Device registration and assignment (`/api/v1/devices`)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select

from rpm.devices.models import Device, DeviceAssignment
from tests.api.helpers import assert_error, assign, enrol, parse_time, register, unique
from tests.conftest import ORG_A, ORG_B


async def _assignments(session, serial: str) -> list[DeviceAssignment]:
    rows = await session.scalars(
        select(DeviceAssignment)
        .join(Device, Device.id == DeviceAssignment.device_id)
        .where(Device.serial == serial)
        .order_by(DeviceAssignment.valid_from)
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def test_register_device(client, tokens, session):
    serial = unique("UA651")
    body = {"serial": serial, "type": "blood-pressure", "manufacturer": "A&D", "model": "UA-651BLE"}
    r = await client.post("/api/v1/devices", headers=tokens(ORG_A, "admin"), json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    uuid.UUID(out["id"])
    assert {k: out[k] for k in body} == body
    stored = await session.scalar(select(Device).where(Device.serial == serial))
    assert stored is not None and str(stored.id) == out["id"] and stored.type == "blood-pressure"


async def test_register_device_without_manufacturer(client, tokens):
    r = await client.post(
        "/api/v1/devices",
        headers=tokens(ORG_A, "admin"),
        json={"serial": unique("SC"), "type": "spo2"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["manufacturer"] is None and r.json()["model"] is None


async def test_register_duplicate_serial_is_409(client, tokens):
    admin = tokens(ORG_A, "admin")
    device = await register(client, admin)
    r = await client.post("/api/v1/devices", headers=admin, json={"serial": device["serial"], "type": "spo2"})
    assert_error(r, 409)
    # Another organisation cannot take the serial either.
    r = await client.post(
        "/api/v1/devices",
        headers=tokens(ORG_B, "admin"),
        json={"serial": device["serial"], "type": "spo2"},
    )
    assert_error(r, 409)


async def test_register_unknown_type_is_422(client, tokens):
    r = await client.post(
        "/api/v1/devices",
        headers=tokens(ORG_A, "admin"),
        json={"serial": unique("SC"), "type": "toaster"},
    )
    assert_error(r, 422, "type")
    r = await client.post("/api/v1/devices", headers=tokens(ORG_A, "admin"), json={"type": "spo2"})
    assert_error(r, 422, "serial")


async def test_register_needs_admin(client, tokens, session):
    serial = unique("SC")
    for role in ("nurse", "physician"):
        r = await client.post("/api/v1/devices", headers=tokens(ORG_A, role), json={"serial": serial, "type": "spo2"})
        assert_error(r, 403)
    assert await session.scalar(select(Device).where(Device.serial == serial)) is None


async def test_assign_device(client, tokens, session):
    admin = tokens(ORG_A, "admin")
    patient = await enrol(client, admin)
    device = await register(client, admin)
    r = await client.put(
        f"/api/v1/devices/{device['serial']}/assignment",
        headers=admin,
        json={"patient": patient["id"], "from": "2026-11-01T00:00:00+01:00"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"serial", "patient", "from", "to"}
    assert body["serial"] == device["serial"]
    assert body["patient"] == patient["id"]
    assert parse_time(body["from"]) == datetime.fromisoformat("2026-11-01T00:00:00+01:00")
    assert body["to"] is None
    (stored,) = await _assignments(session, device["serial"])
    assert str(stored.patient_id) == patient["id"]
    assert stored.valid_from == datetime.fromisoformat("2026-11-01T00:00:00+01:00")
    assert stored.valid_to is None


async def test_reassigning_closes_the_previous_assignment(client, tokens, session):
    admin = tokens(ORG_A, "admin")
    first, second = await enrol(client, admin), await enrol(client, admin)
    device = await register(client, admin)
    await assign(client, admin, device["serial"], first["id"], "2026-11-01T00:00:00+01:00")
    moved = await assign(client, admin, device["serial"], second["id"], "2026-11-10T12:00:00+01:00")
    assert moved["patient"] == second["id"] and moved["to"] is None

    old, new = await _assignments(session, device["serial"])
    at = datetime.fromisoformat("2026-11-10T12:00:00+01:00")
    assert (str(old.patient_id), old.valid_to) == (first["id"], at)
    assert (str(new.patient_id), new.valid_from, new.valid_to) == (second["id"], at, None)


async def test_assigning_before_an_existing_assignment_start_is_409(client, tokens, session):
    admin = tokens(ORG_A, "admin")
    first, second = await enrol(client, admin), await enrol(client, admin)
    device = await register(client, admin)
    await assign(client, admin, device["serial"], first["id"], "2026-11-10T00:00:00+01:00")
    r = await client.put(
        f"/api/v1/devices/{device['serial']}/assignment",
        headers=admin,
        json={"patient": second["id"], "from": "2026-11-05T00:00:00+01:00"},
    )
    assert_error(r, 409)
    assert len(await _assignments(session, device["serial"])) == 1


async def test_assignment_with_end(client, tokens):
    admin = tokens(ORG_A, "admin")
    patient = await enrol(client, admin)
    device = await register(client, admin)
    r = await client.put(
        f"/api/v1/devices/{device['serial']}/assignment",
        headers=admin,
        json={
            "patient": patient["id"],
            "from": "2026-11-01T00:00:00+01:00",
            "to": "2026-11-05T00:00:00+01:00",
        },
    )
    assert r.status_code == 200, r.text
    assert parse_time(r.json()["to"]) == datetime.fromisoformat("2026-11-05T00:00:00+01:00")
    r = await client.put(
        f"/api/v1/devices/{device['serial']}/assignment",
        headers=admin,
        json={
            "patient": patient["id"],
            "from": "2026-11-20T00:00:00+01:00",
            "to": "2026-11-19T00:00:00+01:00",
        },
    )
    assert_error(r, 422, "to")


async def test_assignment_to_another_organisations_patient_is_404(client, tokens, session):
    other = await enrol(client, tokens(ORG_B, "admin"), ORG_B)
    admin = tokens(ORG_A, "admin")
    device = await register(client, admin)
    r = await client.put(
        f"/api/v1/devices/{device['serial']}/assignment",
        headers=admin,
        json={"patient": other["id"], "from": "2026-11-01T00:00:00+01:00"},
    )
    assert_error(r, 404)
    r = await client.put(
        f"/api/v1/devices/{device['serial']}/assignment",
        headers=admin,
        json={"patient": str(uuid.uuid4()), "from": "2026-11-01T00:00:00+01:00"},
    )
    assert_error(r, 404)
    assert await _assignments(session, device["serial"]) == []


async def test_another_organisations_device_cannot_be_taken(client, tokens, session):
    """ORG_B's admin cannot assign a device ORG_A registered to ORG_B's own patient."""
    device = await register(client, tokens(ORG_A, "admin"))
    theirs = await enrol(client, tokens(ORG_B, "admin"), ORG_B)
    r = await client.put(
        f"/api/v1/devices/{device['serial']}/assignment",
        headers=tokens(ORG_B, "admin"),
        json={"patient": theirs["id"], "from": "2026-11-01T00:00:00+01:00"},
    )
    assert_error(r, 404)
    assert await _assignments(session, device["serial"]) == []


async def test_assignment_of_unknown_serial_is_404(client, tokens):
    admin = tokens(ORG_A, "admin")
    patient = await enrol(client, admin)
    r = await client.put(
        f"/api/v1/devices/{unique('NOPE')}/assignment",
        headers=admin,
        json={"patient": patient["id"], "from": "2026-11-01T00:00:00+01:00"},
    )
    assert_error(r, 404)


async def test_assignment_from_without_offset_is_422(client, tokens, session):
    admin = tokens(ORG_A, "admin")
    patient = await enrol(client, admin)
    device = await register(client, admin)
    for start in ("2026-11-01T00:00:00", "yesterday"):
        r = await client.put(
            f"/api/v1/devices/{device['serial']}/assignment",
            headers=admin,
            json={"patient": patient["id"], "from": start},
        )
        assert_error(r, 422, "from")
    assert await _assignments(session, device["serial"]) == []


async def test_assignment_needs_admin(client, tokens, session):
    admin = tokens(ORG_A, "admin")
    patient = await enrol(client, admin)
    device = await register(client, admin)
    r = await client.put(
        f"/api/v1/devices/{device['serial']}/assignment",
        headers=tokens(ORG_A, "nurse"),
        json={"patient": patient["id"], "from": "2026-11-01T00:00:00+01:00"},
    )
    assert_error(r, 403)
    assert await _assignments(session, device["serial"]) == []


async def test_device_of_a_shared_patient_is_visible_to_the_care_team(client, tokens):
    """ORG_B sees ORG_A's device once it serves a patient ORG_B follows, not before."""
    admin = tokens(ORG_A, "admin")
    device = await register(client, admin)
    url = f"/fhir/Device/{device['id']}"
    assert (await client.get(url, headers=tokens(ORG_B))).status_code == 404
    shared = await enrol(
        client,
        admin,
        care_team=[
            {"organisation": ORG_A, "from": "2026-11-01"},
            {"organisation": ORG_B, "from": "2026-11-01"},
        ],
    )
    await assign(client, admin, device["serial"], shared["id"])
    r = await client.get(url, headers=tokens(ORG_B))
    assert r.status_code == 200, r.text
    assert r.json()["serialNumber"] == device["serial"]


async def test_care_team_admin_may_move_another_organisations_device(client, tokens, session):
    """ORG_B's admin may move ORG_A's device from a patient both follow to one ORG_B follows."""
    device = await register(client, tokens(ORG_A, "admin"))
    team = [
        {"organisation": ORG_A, "from": "2026-11-01"},
        {"organisation": ORG_B, "from": "2026-11-01"},
    ]
    shared = await enrol(client, tokens(ORG_A, "admin"), care_team=team)
    await assign(client, tokens(ORG_A, "admin"), device["serial"], shared["id"])
    theirs = await enrol(client, tokens(ORG_B, "admin"), ORG_B)
    moved = await assign(client, tokens(ORG_B, "admin"), device["serial"], theirs["id"], "2026-11-15T00:00:00+01:00")
    assert moved["patient"] == theirs["id"]
    assert [str(a.patient_id) for a in await _assignments(session, device["serial"])] == [
        shared["id"],
        theirs["id"],
    ]
