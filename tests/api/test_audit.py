"""The audit trail: every read or change of a patient's data leaves an append-only record."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from rpm.audit.models import AuditRecord
from tests.api.helpers import (
    FNR_SYSTEM,
    assign,
    enrol,
    enrolment,
    ingest,
    message,
    new_organisation,
    observations_of,
    reading,
    register,
)
from tests.conftest import ORG_A, ORG_B


def request_id() -> str:
    return f"req-{uuid.uuid4().hex}"


async def records(session, rid: str) -> list[AuditRecord]:
    rows = await session.scalars(select(AuditRecord).where(AuditRecord.request_id == rid).order_by(AuditRecord.id))
    return list(rows)


async def call(client, method: str, url: str, headers: dict, **kwargs):
    """The request with a fresh X-Request-ID; the response and the id."""
    rid = request_id()
    response = await client.request(method, url, headers={**headers, "X-Request-ID": rid}, **kwargs)
    assert response.status_code < 400, response.text
    assert response.headers["x-request-id"] == rid
    return response, rid


def assert_actor(record: AuditRecord, *, sub: str, hpr: str | None, org: str) -> None:
    assert (record.actor_sub, record.actor_hpr, record.actor_org) == (sub, hpr, org)
    assert record.at is not None


async def test_reading_a_patient_is_audited(client, tokens, session):
    patient = await enrol(client, tokens(ORG_A, "admin"))
    nurse = tokens(ORG_A, "nurse", sub="nurse-kari", hpr="9876543")
    _, rid = await call(client, "GET", f"/api/v1/patients/{patient['id']}", nurse)
    (record,) = await records(session, rid)
    assert_actor(record, sub="nurse-kari", hpr="9876543", org=ORG_A)
    assert (record.action, record.resource_type) == ("read", "Patient")
    assert record.resource_id == patient["id"]
    assert str(record.patient_id) == patient["id"]


async def test_caller_without_hpr_number(client, tokens, session):
    patient = await enrol(client, tokens(ORG_A, "admin"))
    _, rid = await call(client, "GET", f"/api/v1/patients/{patient['id']}", tokens(ORG_A, sub="secretary", hpr=None))
    (record,) = await records(session, rid)
    assert_actor(record, sub="secretary", hpr=None, org=ORG_A)


async def test_listing_patients_audits_each_patient_listed(client, tokens, session):
    org = await new_organisation(session)
    admin = tokens(org, "admin")
    patients = {(await enrol(client, admin, org))["id"] for _ in range(2)}
    _, rid = await call(client, "GET", "/api/v1/patients", tokens(org, sub="gp-1", hpr="555"))
    rows = await records(session, rid)
    assert {str(r.patient_id) for r in rows} == patients
    assert len(rows) == 2
    for row in rows:
        assert_actor(row, sub="gp-1", hpr="555", org=org)
        assert (row.action, row.resource_type) == ("search", "Patient")


async def test_enrolment_and_changes_are_audited(client, tokens, session):
    admin = tokens(ORG_A, "admin", sub="admin-1", hpr=None)
    response, rid = await call(client, "POST", "/api/v1/patients", admin, json=enrolment())
    patient = response.json()
    (created,) = await records(session, rid)
    assert_actor(created, sub="admin-1", hpr=None, org=ORG_A)
    assert (created.action, created.resource_type, str(created.patient_id)) == (
        "create",
        "Patient",
        patient["id"],
    )

    _, rid = await call(client, "PATCH", f"/api/v1/patients/{patient['id']}", admin, json={"status": "ended"})
    (changed,) = await records(session, rid)
    assert (changed.action, changed.resource_type, str(changed.patient_id)) == (
        "update",
        "Patient",
        patient["id"],
    )


async def test_assignment_is_audited(client, tokens, session):
    admin = tokens(ORG_A, "admin", sub="admin-2", hpr="111")
    patient = await enrol(client, admin)
    device = await register(client, admin)
    _, rid = await call(
        client,
        "PUT",
        f"/api/v1/devices/{device['serial']}/assignment",
        admin,
        json={"patient": patient["id"], "from": "2026-11-01T00:00:00+01:00"},
    )
    (record,) = await records(session, rid)
    assert_actor(record, sub="admin-2", hpr="111", org=ORG_A)
    assert (record.action, record.resource_type) == ("assign", "Device")
    assert record.resource_id == device["id"]
    assert str(record.patient_id) == patient["id"]


async def test_fhir_reads_and_searches_are_audited(client, tokens, session):
    admin = tokens(ORG_A, "admin")
    patient = await enrol(client, admin)
    device = await register(client, admin)
    await assign(client, admin, device["serial"], patient["id"])
    await ingest(session, message([reading(device["serial"], "2026-11-20T08:00:00Z")]))
    (observation,) = await observations_of(session, patient["id"])
    gp = tokens(ORG_A, "physician", sub="gp-2", hpr="222")

    _, rid = await call(client, "GET", "/fhir/Observation", gp, params={"patient": patient["id"]})
    (search,) = await records(session, rid)
    assert_actor(search, sub="gp-2", hpr="222", org=ORG_A)
    assert (search.action, search.resource_type, str(search.patient_id)) == (
        "search",
        "Observation",
        patient["id"],
    )

    _, rid = await call(client, "GET", f"/fhir/Observation/{observation.id}", gp)
    (read,) = await records(session, rid)
    assert (read.action, read.resource_type, read.resource_id, str(read.patient_id)) == (
        "read",
        "Observation",
        str(observation.id),
        patient["id"],
    )

    _, rid = await call(client, "GET", f"/fhir/Patient/{patient['id']}", gp)
    (read,) = await records(session, rid)
    assert (read.action, read.resource_type, str(read.patient_id)) == (
        "read",
        "Patient",
        patient["id"],
    )

    _, rid = await call(
        client,
        "GET",
        "/fhir/Patient",
        gp,
        params={"identifier": f"{FNR_SYSTEM}|{patient['identifier']}"},
    )
    (found,) = await records(session, rid)
    assert (found.action, found.resource_type, str(found.patient_id)) == (
        "search",
        "Patient",
        patient["id"],
    )


async def test_empty_search_of_one_patient_is_still_audited(client, tokens, session):
    patient = await enrol(client, tokens(ORG_A, "admin"))
    response, rid = await call(client, "GET", "/fhir/Observation", tokens(ORG_A), params={"patient": patient["id"]})
    assert response.json().get("entry", []) == []
    (record,) = await records(session, rid)
    assert str(record.patient_id) == patient["id"]


async def test_refused_access_leaves_no_record(client, tokens, session):
    patient = await enrol(client, tokens(ORG_A, "admin"))
    rid = request_id()
    r = await client.get(f"/api/v1/patients/{patient['id']}", headers={**tokens(ORG_B), "X-Request-ID": rid})
    assert r.status_code == 404
    assert r.headers["x-request-id"] == rid
    assert await records(session, rid) == []


async def test_request_id_is_made_when_not_sent(client, tokens, session):
    patient = await enrol(client, tokens(ORG_A, "admin"))
    r = await client.get(f"/api/v1/patients/{patient['id']}", headers=tokens(ORG_A))
    rid = r.headers["x-request-id"]
    assert len(rid) >= 16
    (record,) = await records(session, rid)
    assert str(record.patient_id) == patient["id"]
    other = await client.get(f"/api/v1/patients/{patient['id']}", headers=tokens(ORG_A))
    assert other.headers["x-request-id"] != rid


async def test_audit_records_cannot_be_changed_or_deleted(client, tokens, session):
    patient = await enrol(client, tokens(ORG_A, "admin"))
    _, rid = await call(client, "GET", f"/api/v1/patients/{patient['id']}", tokens(ORG_A))
    (record,) = await records(session, rid)
    statements = [
        text("update audit_records set action = 'tampered' where id = :id"),
        text("delete from audit_records where id = :id"),
    ]
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"):
            async with session.begin_nested():
                await session.execute(statement, {"id": record.id})
    # The outer transaction survived and the record is as it was.
    count = await session.scalar(select(func.count()).select_from(AuditRecord).where(AuditRecord.id == record.id))
    assert count == 1
    action = await session.scalar(select(AuditRecord.action).where(AuditRecord.id == record.id))
    assert action == "read"


async def test_long_request_id_is_cut_to_64_characters(client, tokens, session):
    patient = await enrol(client, tokens(ORG_A, "admin"))
    sent = "x" * 40 + uuid.uuid4().hex + "y" * 40
    r = await client.get(f"/api/v1/patients/{patient['id']}", headers={**tokens(ORG_A), "X-Request-ID": sent})
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == sent[:64]
    (record,) = await records(session, sent[:64])
    assert str(record.patient_id) == patient["id"]
