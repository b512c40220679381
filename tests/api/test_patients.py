"""Enrolment, the patient list and changing or ending a follow-up (`/api/v1/patients`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from rpm import norway
from rpm.devices.models import DeviceAssignment
from tests.api.helpers import (
    DNR_SYSTEM,
    FNR_SYSTEM,
    assert_error,
    assign,
    enrol,
    enrolment,
    ingest,
    message,
    new_organisation,
    observations_of,
    parse_time,
    raw_cursor,
    reading,
    register,
)
from tests.conftest import ORG_A, ORG_B
from tests.fixtures.identity import fresh_identity, make_identity_number, with_check_digits

# --- enrolment ------------------------------------------------------------------------


async def test_enrol_returns_the_payload_with_id_and_active_status(client, tokens):
    payload = enrolment()
    r = await client.post("/api/v1/patients", headers=tokens(ORG_A, "admin"), json=payload)
    assert r.status_code == 201, r.text
    body = r.json()
    uuid.UUID(body["id"])
    assert body["status"] == "active"
    assert body["identifier"] == payload["identifier"]
    assert body["identifier_system"] == FNR_SYSTEM
    assert body["name"] == "Kari Nordmann"
    assert body["birth_date"] == payload["birth_date"]
    assert body["conditions"] == ["copd", "heart-failure"]
    assert body["care_team"] == [{"organisation": ORG_A, "from": "2026-11-01", "to": None}]
    assert sorted(body["measurement_plan"], key=lambda p: p["type"]) == [
        {"type": "body-weight", "every_hours": 24},
        {"type": "spo2", "every_hours": 24},
    ]
    assert body["follow_up_ended_at"] is None

    # It is stored: a nurse of the same organisation reads the same thing back.
    again = await client.get(f"/api/v1/patients/{body['id']}", headers=tokens(ORG_A, "nurse"))
    assert again.status_code == 200, again.text
    assert again.json() == body


async def test_enrol_d_number(client, tokens):
    number, born = fresh_identity()
    d_number = make_identity_number(born, int(number[6:9]), d_number=True)
    while d_number is None:
        number, born = fresh_identity()
        d_number = make_identity_number(born, int(number[6:9]), d_number=True)
    r = await client.post(
        "/api/v1/patients",
        headers=tokens(ORG_A, "admin"),
        json=enrolment(identifier=d_number, birth_date=born.isoformat()),
    )
    assert r.status_code == 201, r.text
    assert r.json()["identifier_system"] == DNR_SYSTEM


def _bad_check_digit() -> str:
    number, _ = fresh_identity()
    return number[:10] + str((int(number[10]) + 1) % 10)


def _impossible_date() -> str:
    # 31 February 1972 with check digits that are right for those digits.
    for individual in range(100, 500):
        number = with_check_digits(f"310272{individual:03d}")
        if number is not None:
            return number
    raise AssertionError("no number found")


async def test_enrol_rejects_invalid_identifiers(client, tokens):
    admin = tokens(ORG_A, "admin")
    good, born = fresh_identity()
    for bad in (_bad_check_digit(), good[:10], good + "0", "1309724802X", _impossible_date()):
        r = await client.post(
            "/api/v1/patients",
            headers=admin,
            json=enrolment(identifier=bad, birth_date=born.isoformat()),
        )
        assert_error(r, 422, "identifier")
    # The first check digit alone being wrong is caught too.
    wrong_first = good[:9] + str((int(good[9]) + 1) % 10) + good[10]
    r = await client.post(
        "/api/v1/patients",
        headers=admin,
        json=enrolment(identifier=wrong_first, birth_date=born.isoformat()),
    )
    assert_error(r, 422, "identifier")


async def test_enrol_rejects_birth_date_not_matching_identifier(client, tokens):
    number, born = fresh_identity()
    r = await client.post(
        "/api/v1/patients",
        headers=tokens(ORG_A, "admin"),
        json=enrolment(identifier=number, birth_date=(born + timedelta(days=1)).isoformat()),
    )
    assert_error(r, 422, "birth_date")


async def test_enrol_rejects_unknown_care_team_organisation(client, tokens):
    r = await client.post(
        "/api/v1/patients",
        headers=tokens(ORG_A, "admin"),
        json=enrolment(
            care_team=[
                {"organisation": ORG_A, "from": "2026-11-01"},
                {"organisation": "123123123", "from": "2026-11-01"},
            ]
        ),
    )
    body = assert_error(r, 422, "care_team")
    assert "123123123" in body["detail"]


async def test_enrol_rejects_malformed_care_team(client, tokens):
    admin = tokens(ORG_A, "admin")
    for care_team in (
        [],
        [{"organisation": "12345", "from": "2026-11-01"}],
        [{"organisation": ORG_A, "from": "2026-11-01", "to": "2026-10-01"}],
    ):
        r = await client.post("/api/v1/patients", headers=admin, json=enrolment(care_team=care_team))
        assert_error(r, 422, "care_team")


async def test_enrol_rejects_unknown_plan_type_and_condition(client, tokens):
    admin = tokens(ORG_A, "admin")
    r = await client.post(
        "/api/v1/patients",
        headers=admin,
        json=enrolment(measurement_plan=[{"type": "mood", "every_hours": 24}]),
    )
    assert_error(r, 422, "measurement_plan")
    r = await client.post("/api/v1/patients", headers=admin, json=enrolment(conditions=["flu"]))
    assert_error(r, 422, "conditions")


async def test_enrol_rejects_bad_measurement_plans(client, tokens):
    admin = tokens(ORG_A, "admin")
    twice = [{"type": "spo2", "every_hours": 24}, {"type": "spo2", "every_hours": 12}]
    for plan in (twice, [{"type": "spo2", "every_hours": 0}], [{"type": "spo2"}]):
        r = await client.post("/api/v1/patients", headers=admin, json=enrolment(measurement_plan=plan))
        assert_error(r, 422, "measurement_plan")


async def test_unsupported_method_is_405_json(client, tokens):
    patient = await enrol(client, tokens(ORG_A, "admin"))
    r = await client.delete(f"/api/v1/patients/{patient['id']}", headers=tokens(ORG_A, "admin"))
    assert assert_error(r, 405)["error"] == "method_not_allowed"


async def test_enrol_duplicate_identifier_is_409(client, tokens):
    admin = tokens(ORG_A, "admin")
    payload = enrolment()
    first = await client.post("/api/v1/patients", headers=admin, json=payload)
    assert first.status_code == 201, first.text
    r = await client.post("/api/v1/patients", headers=admin, json={**payload, "name": "Someone Else"})
    assert_error(r, 409)


async def test_enrol_needs_admin(client, tokens):
    for role in ("nurse", "physician"):
        r = await client.post("/api/v1/patients", headers=tokens(ORG_A, role), json=enrolment())
        assert_error(r, 403)


async def test_enrol_by_admin_outside_care_team_is_403(client, tokens):
    r = await client.post("/api/v1/patients", headers=tokens(ORG_B, "admin"), json=enrolment(ORG_A))
    assert_error(r, 403)


async def test_enrol_with_shared_care_team(client, tokens):
    """An admin may enrol a patient followed by several organisations, theirs among them."""
    patient = await enrol(
        client,
        tokens(ORG_B, "admin"),
        care_team=[
            {"organisation": ORG_A, "from": "2026-11-01"},
            {"organisation": ORG_B, "from": "2026-11-01"},
        ],
    )
    for org in (ORG_A, ORG_B):
        r = await client.get(f"/api/v1/patients/{patient['id']}", headers=tokens(org, "nurse"))
        assert r.status_code == 200, r.text


async def test_unknown_patient_is_404(client, tokens):
    r = await client.get(f"/api/v1/patients/{uuid.uuid4()}", headers=tokens(ORG_A, "nurse"))
    assert_error(r, 404)
    r = await client.get("/api/v1/patients/not-a-uuid", headers=tokens(ORG_A, "nurse"))
    assert_error(r, 422, "patient_id")


async def test_care_team_membership_in_the_future_or_past_gives_no_access(client, tokens):
    """The care team is followed for a period: outside it the organisation sees nothing."""
    today = norway.today()  # care-team periods are dates in Norway
    patient = await enrol(
        client,
        tokens(ORG_A, "admin"),
        care_team=[
            {"organisation": ORG_A, "from": "2026-01-01"},
            {"organisation": ORG_B, "from": (today + timedelta(days=30)).isoformat()},
        ],
    )
    url = f"/api/v1/patients/{patient['id']}"
    assert_error(await client.get(url, headers=tokens(ORG_B, "nurse")), 404)
    assert (await client.get(url, headers=tokens(ORG_A, "nurse"))).status_code == 200

    past = await enrol(
        client,
        tokens(ORG_A, "admin"),
        care_team=[
            {"organisation": ORG_A, "from": "2026-01-01"},
            {"organisation": ORG_B, "from": "2026-01-01", "to": (today - timedelta(days=2)).isoformat()},
        ],
    )
    assert_error(await client.get(f"/api/v1/patients/{past['id']}", headers=tokens(ORG_B)), 404)


async def test_patch_care_team_shares_the_patient(client, tokens):
    admin = tokens(ORG_A, "admin")
    patient = await enrol(client, admin)
    url = f"/api/v1/patients/{patient['id']}"
    assert_error(await client.get(url, headers=tokens(ORG_B)), 404)
    team = [
        {"organisation": ORG_A, "from": "2026-11-01"},
        {"organisation": ORG_B, "from": "2026-11-15"},
    ]
    r = await client.patch(url, headers=admin, json={"care_team": team})
    assert r.status_code == 200, r.text
    assert sorted(r.json()["care_team"], key=lambda m: m["organisation"]) == sorted(
        [{**m, "to": None} for m in team], key=lambda m: m["organisation"]
    )
    assert (await client.get(url, headers=tokens(ORG_B))).status_code == 200
    r = await client.patch(
        url, headers=admin, json={"care_team": [*team, {"organisation": "123123123", "from": "2026-11-01"}]}
    )
    assert_error(r, 422, "care_team")


# --- the list -------------------------------------------------------------------------


async def test_list_cursor_pagination(client, tokens, session):
    org = await new_organisation(session)
    admin = tokens(org, "admin")
    created = {(await enrol(client, admin, org))["id"] for _ in range(3)}

    seen: list[str] = []
    pages = 0
    params: dict[str, str | int] = {"limit": 2}
    while True:
        r = await client.get("/api/v1/patients", headers=admin, params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        assert len(body["items"]) <= 2
        seen += [p["id"] for p in body["items"]]
        if body["next"] is None:
            break
        assert pages < 5, "pagination does not end"
        params = {"limit": 2, "cursor": body["next"]}
    assert pages == 2
    assert len(seen) == len(set(seen)) == 3
    assert set(seen) == created
    assert seen == sorted(seen, key=uuid.UUID)


async def test_list_limit_bounds_and_bad_cursor(client, tokens):
    nurse = tokens(ORG_A, "nurse")
    for limit in (0, 501):
        r = await client.get("/api/v1/patients", headers=nurse, params={"limit": limit})
        assert_error(r, 422, "limit")
    # Not base64 JSON, JSON that is no UUID, and JSON that is not even a string: all 422, never 500.
    for cursor in ("!!!not-a-cursor", raw_cursor("zzz"), raw_cursor(123), raw_cursor(["x"])):
        r = await client.get("/api/v1/patients", headers=nurse, params={"cursor": cursor})
        assert_error(r, 422, "cursor")


async def test_list_status_filter(client, tokens, session):
    org = await new_organisation(session)
    admin = tokens(org, "admin")
    active = await enrol(client, admin, org)
    ended = await enrol(client, admin, org)
    r = await client.patch(f"/api/v1/patients/{ended['id']}", headers=admin, json={"status": "ended"})
    assert r.status_code == 200, r.text
    r = await client.get("/api/v1/patients", headers=admin, params={"status": "active"})
    assert [p["id"] for p in r.json()["items"]] == [active["id"]]
    r = await client.get("/api/v1/patients", headers=admin, params={"status": "ended"})
    assert [p["id"] for p in r.json()["items"]] == [ended["id"]]


# --- changes --------------------------------------------------------------------------


async def test_patch_changes_name_conditions_and_plan(client, tokens):
    admin = tokens(ORG_A, "admin")
    patient = await enrol(client, admin)
    r = await client.patch(
        f"/api/v1/patients/{patient['id']}",
        headers=admin,
        json={
            "name": "Kari Nordmann Hansen",
            "conditions": ["diabetes"],
            "measurement_plan": [{"type": "blood-glucose", "every_hours": 12}],
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "Kari Nordmann Hansen"
    assert body["conditions"] == ["diabetes"]
    assert body["measurement_plan"] == [{"type": "blood-glucose", "every_hours": 12}]
    assert body["status"] == "active"
    assert body["identifier"] == patient["identifier"]
    assert body["care_team"] == patient["care_team"]

    read = (await client.get(f"/api/v1/patients/{patient['id']}", headers=tokens(ORG_A, "nurse"))).json()
    assert read == body


async def test_patch_rejections(client, tokens):
    admin = tokens(ORG_A, "admin")
    patient = await enrol(client, admin)
    url = f"/api/v1/patients/{patient['id']}"
    assert_error(await client.patch(url, headers=tokens(ORG_A, "nurse"), json={"name": "X Y"}), 403)
    assert_error(await client.patch(url, headers=tokens(ORG_B, "admin"), json={"name": "X Y"}), 404)
    assert_error(await client.patch(url, headers=admin, json={"status": "paused"}), 422, "status")
    assert_error(await client.patch(url, headers=admin, json={"identifier": "13097248022"}), 422)
    assert_error(
        await client.patch(url, headers=admin, json={"care_team": [{"organisation": ORG_B, "from": "2026-11-01"}]}),
        403,
    )
    after = (await client.get(url, headers=admin)).json()
    assert after["name"] == patient["name"]
    assert after["care_team"] == patient["care_team"]


async def test_ending_follow_up_closes_the_device_assignment(client, tokens, session):
    admin = tokens(ORG_A, "admin")
    patient = await enrol(client, admin)
    device = await register(client, admin)
    await assign(client, admin, device["serial"], patient["id"])
    before = datetime.now(UTC) - timedelta(hours=1)
    first = await ingest(session, message([reading(device["serial"], before.isoformat())]))
    assert first[0].results[0]["status"] == "accepted"

    r = await client.patch(f"/api/v1/patients/{patient['id']}", headers=admin, json={"status": "ended"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ended"
    ended_at = parse_time(body["follow_up_ended_at"])
    assert abs(ended_at - datetime.now(UTC)) < timedelta(minutes=1)

    (assignment,) = (
        await session.scalars(
            select(DeviceAssignment)
            .where(DeviceAssignment.patient_id == uuid.UUID(patient["id"]))
            .execution_options(populate_existing=True)
        )
    ).all()
    assert assignment.valid_to == ended_at

    later = datetime.now(UTC) + timedelta(minutes=2)
    outcome = await ingest(
        session,
        message(
            [
                reading(device["serial"], later.isoformat()),
                reading(device["serial"], (before - timedelta(hours=1)).isoformat()),
            ]
        ),
    )
    results = outcome[0].results
    assert results[0]["status"] == "rejected" and results[0]["reason"] == "device_not_assigned"
    # A late reading taken while the follow-up still ran still belongs to the patient.
    assert results[1]["status"] == "accepted"
    assert len(await observations_of(session, patient["id"])) == 2

    # Staff can still read the ended follow-up.
    assert (await client.get(f"/api/v1/patients/{patient['id']}", headers=admin)).json()["status"] == "ended"


async def test_ending_follow_up_drops_an_assignment_starting_later(client, tokens, session):
    """An assignment that would only start after the follow-up ended must not take readings."""
    admin = tokens(ORG_A, "admin")
    patient = await enrol(client, admin)
    device = await register(client, admin)
    starts = datetime.now(UTC) + timedelta(days=1)
    await assign(client, admin, device["serial"], patient["id"], starts.isoformat())
    r = await client.patch(f"/api/v1/patients/{patient['id']}", headers=admin, json={"status": "ended"})
    assert r.status_code == 200, r.text
    at = starts + timedelta(days=1)
    outcome = await ingest(session, message([reading(device["serial"], at.isoformat())]), now=at)
    assert outcome[0].results[0].get("reason") == "device_not_assigned", outcome[0].results
    assert await observations_of(session, patient["id"]) == []


async def test_reactivating_follow_up(client, tokens):
    admin = tokens(ORG_A, "admin")
    patient = await enrol(client, admin)
    url = f"/api/v1/patients/{patient['id']}"
    assert (await client.patch(url, headers=admin, json={"status": "ended"})).json()["status"] == "ended"
    body = (await client.patch(url, headers=admin, json={"status": "active"})).json()
    assert body["status"] == "active" and body["follow_up_ended_at"] is None


async def test_ending_follow_up_leaves_the_next_patients_assignment_alone(client, tokens, session):
    """The device moved on from patient 1 to patient 2; ending patient 1's follow-up must not
    take the device away from patient 2."""
    admin = tokens(ORG_A, "admin")
    first = await enrol(client, admin)
    second = await enrol(client, admin)
    device = await register(client, admin)
    await assign(client, admin, device["serial"], first["id"], "2026-11-01T00:00:00+01:00")
    await assign(client, admin, device["serial"], second["id"], "2026-11-10T00:00:00+01:00")
    r = await client.patch(f"/api/v1/patients/{first['id']}", headers=admin, json={"status": "ended"})
    assert r.status_code == 200, r.text

    later = datetime.now(UTC) + timedelta(minutes=2)
    outcome = await ingest(session, message([reading(device["serial"], later.isoformat())]))
    assert outcome[0].results[0]["status"] == "accepted", outcome[0].results
    assert len(await observations_of(session, second["id"])) == 1
    assert await observations_of(session, first["id"]) == []
