"""GET /api/v1/devices and GET /api/v1/devices/{serial}.

Proves, on one world of two fresh organisations: the list holds the organisation's devices and
those that served a patient it follows (and nothing else), by serial across pages without gaps
or repeats, filtered by `type` and `patient`; `assigned_to` is the assignment in force, with
`patient: null` where the caller does not follow that patient. The detail has the assignment
history oldest first and the device's newest Observation by time taken (also after the device
moved to another patient), never a reading of a patient the caller does not follow; another
organisation's device that never served the caller's patients is 404; reads and searches are
audited ("read"/"search", "Device") for the patients they show.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.audit.models import AuditRecord
from tests.api.helpers import (
    assert_error,
    assign,
    enrol,
    ingest,
    message,
    new_organisation,
    observations_of,
    parse_time,
    raw_cursor,
    reading,
    register,
    unique,
)
from tests.conftest import ORG_B

NOV_1 = "2026-11-01T00:00:00+01:00"
NOV_20 = "2026-11-20T00:00:00+01:00"
NOV_22 = "2026-11-22T00:00:00+01:00"
TYPES = {
    "a1": "spo2",
    "a2": "body-weight",
    "a3": "blood-pressure",
    "a4": "spo2",
    "a5": "body-weight",
    "b1": "spo2",
    "b2": "spo2",
}


@dataclass
class World:
    org_a: str
    org_b: str
    shared: str  # a patient both organisations follow
    only_a: str
    only_b: str
    serials: dict[str, str]  # by name: a* registered by A, b* by B
    ids: dict[str, str]  # device ids by name


async def world(client: httpx.AsyncClient, tokens: Any, session: AsyncSession) -> World:
    """A's devices: a1 (P_a), a2 (shared), a3 (never assigned), a4 (shared, moved by B to P_b on
    Nov 20), a5 (P_a, moved by A to shared on Nov 22). B's devices: b1 (shared), b2 (P_b)."""
    org_a, org_b = await new_organisation(session), await new_organisation(session)
    admin_a, admin_b = tokens(org_a, "admin"), tokens(org_b, "admin")
    both = [{"organisation": org_a, "from": "2026-11-01"}, {"organisation": org_b, "from": "2026-11-01"}]
    shared = (await enrol(client, admin_a, org_a, care_team=both))["id"]
    only_a = (await enrol(client, admin_a, org_a))["id"]
    only_b = (await enrol(client, admin_b, org_b))["id"]
    prefix = unique("DEV")
    serials = {name: f"{prefix}-{name}" for name in TYPES}
    ids = {}
    for name, device_type in TYPES.items():
        registering = admin_a if name.startswith("a") else admin_b
        ids[name] = (await register(client, registering, serial=serials[name], type=device_type))["id"]
    await assign(client, admin_a, serials["a1"], only_a, NOV_1)
    await assign(client, admin_a, serials["a2"], shared, NOV_1)
    await assign(client, admin_a, serials["a4"], shared, NOV_1)
    await assign(client, admin_b, serials["a4"], only_b, NOV_20)  # B moves A's device between its patients
    await assign(client, admin_a, serials["a5"], only_a, NOV_1)
    await assign(client, admin_a, serials["a5"], shared, NOV_22)
    await assign(client, admin_b, serials["b1"], shared, NOV_1)
    await assign(client, admin_b, serials["b2"], only_b, NOV_1)
    return World(org_a, org_b, shared, only_a, only_b, serials, ids)


async def listed(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    r = await client.get("/api/v1/devices", headers=headers, params={"limit": 500, **params})
    assert r.status_code == 200, r.text
    assert r.json()["next"] is None
    return r.json()["items"]


def names(w: World, items: list[dict[str, Any]]) -> list[str]:
    by_serial = {serial: name for name, serial in w.serials.items()}
    return [by_serial[item["serial"]] for item in items]


def by_name(w: World, items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return dict(zip(names(w, items), items, strict=True))


async def store(session: AsyncSession, serial: str, device_type: str, time: str, value: Any) -> None:
    unit = {"spo2": "%", "body-weight": "kg"}[device_type]
    [outcome] = await ingest(session, message([reading(serial, time, type=device_type, value=value, unit=unit)]))
    assert [r["status"] for r in outcome.results] == ["accepted"], outcome.results


async def audit_rows(session: AsyncSession, request_id: str) -> list[tuple[str, str, str | None, uuid.UUID | None]]:
    rows = await session.execute(
        select(AuditRecord.action, AuditRecord.resource_type, AuditRecord.resource_id, AuditRecord.patient_id)
        .where(AuditRecord.request_id == request_id)
        .order_by(AuditRecord.patient_id)
    )
    return [tuple(r) for r in rows]


# -- the list -------------------------------------------------------------------------------


async def test_the_list_is_the_organisations_devices_and_those_of_its_patients(client, tokens, session):
    w = await world(client, tokens, session)
    items = await listed(client, tokens(w.org_a, "nurse"))
    # b2 served only a patient A does not follow.
    assert names(w, items) == ["a1", "a2", "a3", "a4", "a5", "b1"]
    assert {i["serial"]: i["organisation"] for i in items} == {
        w.serials[n]: (w.org_a if n.startswith("a") else w.org_b) for n in names(w, items)
    }
    assert {i["serial"]: i["type"] for i in items} == {w.serials[n]: TYPES[n] for n in names(w, items)}
    # B sees its own devices and those of A that served the shared patient or B's own.
    assert names(w, await listed(client, tokens(w.org_b, "physician"))) == ["a2", "a4", "a5", "b1", "b2"]
    # A third organisation sees none of them.
    assert set(names(w, await listed(client, tokens(ORG_B)))) & set(TYPES) == set()


async def test_assigned_to_is_the_assignment_in_force(client, tokens, session):
    w = await world(client, tokens, session)
    seen_by_a = by_name(w, await listed(client, tokens(w.org_a)))
    assert seen_by_a["a3"]["assigned_to"] is None
    assert {n: i["assigned_to"]["patient"] for n, i in seen_by_a.items() if i["assigned_to"] is not None} == {
        "a1": w.only_a,
        "a2": w.shared,
        "a4": None,  # now with B's patient, whom A does not follow
        "a5": w.shared,
        "b1": w.shared,
    }
    a4, a5 = seen_by_a["a4"]["assigned_to"], seen_by_a["a5"]["assigned_to"]
    assert (parse_time(a4["from"]), a4["to"]) == (parse_time(NOV_20), None)
    assert (parse_time(a5["from"]), a5["to"]) == (parse_time(NOV_22), None)
    seen_by_b = by_name(w, await listed(client, tokens(w.org_b)))
    assert {n: i["assigned_to"]["patient"] for n, i in seen_by_b.items()} == {
        "a2": w.shared,
        "a4": w.only_b,
        "a5": w.shared,
        "b1": w.shared,
        "b2": w.only_b,
    }


async def test_filters_by_type_and_patient(client, tokens, session):
    w = await world(client, tokens, session)
    nurse = tokens(w.org_a, "nurse")
    assert names(w, await listed(client, nurse, type="spo2")) == ["a1", "a4", "b1"]
    assert names(w, await listed(client, nurse, type="body-weight")) == ["a2", "a5"]
    assert names(w, await listed(client, nurse, type="heart-rate")) == []
    # Devices that have served the patient, now or before.
    assert names(w, await listed(client, nurse, patient=w.shared)) == ["a2", "a4", "a5", "b1"]
    assert names(w, await listed(client, nurse, patient=w.only_a)) == ["a1", "a5"]
    assert names(w, await listed(client, nurse, patient=w.only_a, type="body-weight")) == ["a5"]
    # A patient the caller does not follow, or no such patient: 404; a type no device has: 422.
    assert_error(await client.get("/api/v1/devices", headers=nurse, params={"patient": w.only_b}), 404)
    assert_error(await client.get("/api/v1/devices", headers=nurse, params={"patient": str(uuid.uuid4())}), 404)
    assert_error(await client.get("/api/v1/devices", headers=nurse, params={"type": "toaster"}), 422, "type")


async def test_pages_by_serial_without_gaps_or_repeats(client, tokens, session):
    w = await world(client, tokens, session)
    headers = tokens(w.org_a, "admin")
    pages, cursor = [], None
    while True:
        params = {"limit": 4} | ({"cursor": cursor} if cursor else {})
        r = await client.get("/api/v1/devices", headers=headers, params=params)
        assert r.status_code == 200, r.text
        pages.append(names(w, r.json()["items"]))
        cursor = r.json()["next"]
        if cursor is None:
            break
    assert pages == [["a1", "a2", "a3", "a4"], ["a5", "b1"]]
    pages = [names(w, (await client.get("/api/v1/devices", headers=headers, params={"limit": 6})).json()["items"])]
    assert pages == [["a1", "a2", "a3", "a4", "a5", "b1"]]
    for bad in (raw_cursor(["a", 1]), "!!"):
        assert_error(await client.get("/api/v1/devices", headers=headers, params={"cursor": bad}), 422, "cursor")


async def test_a_search_is_audited_for_the_patients_it_shows(client, tokens, session):
    w = await world(client, tokens, session)
    request_id = unique("req")
    r = await client.get("/api/v1/devices", headers={**tokens(w.org_a), "X-Request-ID": request_id})
    assert r.status_code == 200
    # The patients of the assignments in force that A follows: P_a (a1) and the shared one
    # (a2, a5, b1); not B's patient that a4 serves now.
    assert sorted(await audit_rows(session, request_id)) == sorted(
        ("search", "Device", None, uuid.UUID(p)) for p in (w.only_a, w.shared)
    )


async def test_a_page_audits_only_the_patients_it_shows(client, tokens, session):
    w = await world(client, tokens, session)
    request_id = unique("req")
    r = await client.get(
        "/api/v1/devices", headers={**tokens(w.org_a), "X-Request-ID": request_id}, params={"limit": 1}
    )
    assert names(w, r.json()["items"]) == ["a1"]  # the extra row fetched is a2, of the shared patient
    assert await audit_rows(session, request_id) == [("search", "Device", None, uuid.UUID(w.only_a))]


# -- one device -----------------------------------------------------------------------------


async def test_detail_has_the_history_oldest_first_and_the_newest_reading(client, tokens, session):
    w = await world(client, tokens, session)
    # a5: P_a until Nov 22, then the shared patient. The reading of Nov 25 arrives before the
    # late one of Nov 21: the newest by time taken is Nov 25's, the shared patient's.
    await store(session, w.serials["a5"], "body-weight", "2026-11-25T08:00:00+01:00", 83.0)
    await store(session, w.serials["a5"], "body-weight", "2026-11-21T08:00:00+01:00", 82.0)
    [newest] = await observations_of(session, w.shared)
    request_id = unique("req")
    r = await client.get(
        f"/api/v1/devices/{w.serials['a5']}", headers={**tokens(w.org_a, "nurse"), "X-Request-ID": request_id}
    )
    assert r.status_code == 200, r.text
    detail = r.json()
    assert (detail["id"], detail["serial"], detail["type"], detail["organisation"]) == (
        w.ids["a5"],
        w.serials["a5"],
        "body-weight",
        w.org_a,
    )
    assert [(a["patient"], parse_time(a["from"]), a["to"] and parse_time(a["to"])) for a in detail["assignments"]] == [
        (w.only_a, parse_time(NOV_1), parse_time(NOV_22)),
        (w.shared, parse_time(NOV_22), None),
    ]
    last = detail["last_reading"]
    assert (last["observation"], last["patient"], last["code"], last["value"], last["unit"]) == (
        f"Observation/{newest.id}",
        w.shared,
        "29463-7",
        83.0,
        "kg",
    )
    assert parse_time(last["effective_at"]) == parse_time("2026-11-25T08:00:00+01:00")
    # Audited for each patient the device served that the caller follows.
    assert sorted(await audit_rows(session, request_id)) == sorted(
        ("read", "Device", w.ids["a5"], uuid.UUID(p)) for p in (w.only_a, w.shared)
    )


async def test_detail_after_the_device_moved_to_a_patient_the_caller_does_not_follow(client, tokens, session):
    w = await world(client, tokens, session)
    # a4: the shared patient until Nov 20, then B's own patient.
    await store(session, w.serials["a4"], "spo2", "2026-11-10T08:00:00+01:00", 96)
    await store(session, w.serials["a4"], "spo2", "2026-11-25T08:00:00+01:00", 91)
    [after_move] = await observations_of(session, w.only_b)

    by_b = (await client.get(f"/api/v1/devices/{w.serials['a4']}", headers=tokens(w.org_b))).json()
    assert [a["patient"] for a in by_b["assignments"]] == [w.shared, w.only_b]
    assert (by_b["last_reading"]["observation"], by_b["last_reading"]["patient"], by_b["last_reading"]["value"]) == (
        f"Observation/{after_move.id}",
        w.only_b,
        91.0,
    )
    by_a = (await client.get(f"/api/v1/devices/{w.serials['a4']}", headers=tokens(w.org_a))).json()
    assert [a["patient"] for a in by_a["assignments"]] == [w.shared, None]
    assert parse_time(by_a["assignments"][1]["from"]) == parse_time(NOV_20)
    # A never sees the reading of B's patient.
    assert by_a["last_reading"] is None or by_a["last_reading"]["patient"] == w.shared
    assert str(after_move.id) not in str(by_a)


async def test_detail_of_a_device_without_readings_or_assignments(client, tokens, session):
    w = await world(client, tokens, session)
    detail = (await client.get(f"/api/v1/devices/{w.serials['a3']}", headers=tokens(w.org_a, "admin"))).json()
    assert (detail["assignments"], detail["last_reading"]) == ([], None)
    detail = (await client.get(f"/api/v1/devices/{w.serials['b1']}", headers=tokens(w.org_a))).json()
    assert (detail["organisation"], [a["patient"] for a in detail["assignments"]], detail["last_reading"]) == (
        w.org_b,
        [w.shared],
        None,
    )


async def test_another_organisations_device_that_never_served_its_patients_is_404(client, tokens, session):
    w = await world(client, tokens, session)
    for org, name in ((w.org_a, "b2"), (w.org_b, "a1"), (w.org_b, "a3"), (ORG_B, "a2")):
        request_id = unique("req")
        r = await client.get(f"/api/v1/devices/{w.serials[name]}", headers={**tokens(org), "X-Request-ID": request_id})
        assert_error(r, 404)
        assert await audit_rows(session, request_id) == []
    assert_error(await client.get(f"/api/v1/devices/{unique('NONE')}", headers=tokens(w.org_a)), 404)


async def test_no_token_is_401(client):
    for path in ("/api/v1/devices", f"/api/v1/devices/{unique('SC')}"):
        r = await client.get(path)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_serial_with_a_slash_is_read_and_assigned_by_its_path(client, tokens, session):
    """The contract does not forbid "/" in a serial (some vendors write "SN/12345"): the device
    routes take the rest of the path as the serial."""
    org = await new_organisation(session)
    admin = tokens(org, "admin")
    patient = await enrol(client, admin, org)
    serial = unique("UA651") + "/2026"
    await register(client, admin, serial=serial, type="blood-pressure")
    assigned = await assign(client, admin, serial, patient["id"])
    assert assigned["serial"] == serial
    r = await client.get(f"/api/v1/devices/{serial}", headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["serial"] == serial
    assert [a["patient"] for a in r.json()["assignments"]] == [patient["id"]]


async def test_device_reads_and_searches_audit_the_patients_they_reveal(client, tokens, session):
    """The FHIR Device read shows only the patient the device serves now, so only that patient
    is recorded; a device list filtered by a patient reveals that patient's devices, so that
    patient is recorded even when none of the devices serves them any more."""
    w = await world(client, tokens, session)
    nurse = tokens(w.org_a)
    request_id = unique("req")
    r = await client.get(f"/fhir/Device/{w.ids['a5']}", headers={**nurse, "X-Request-ID": request_id})
    assert r.json()["patient"]["reference"] == f"Patient/{w.shared}"  # a5 served P_a before
    assert await audit_rows(session, request_id) == [("read", "Device", w.ids["a5"], uuid.UUID(w.shared))]

    request_id = unique("req")
    r = await client.get(
        "/api/v1/devices", headers={**nurse, "X-Request-ID": request_id}, params={"patient": w.only_a, "type": "spo2"}
    )
    assert r.status_code == 200, r.text
    assert ("search", "Device", None, uuid.UUID(w.only_a)) in await audit_rows(session, request_id)
