"""GET and PUT /api/v1/patients/{id}/action-plan, and the action in the alert queue's JSON.

Proves: an empty record for a patient without a plan; each PUT a new version (newest first,
with who, when and why) answered with the record; a nurse reads but is refused a change (403);
another organisation 404 for both; malformed bodies 422 in the error shape; a change that
collides with another 409; the queue item and the alert's detail carry the action of the level
agreed when the alert reached it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from rpm.action_plans import repository as plans_repository
from rpm.action_plans.models import ActionPlan
from tests.api.helpers import assert_error, assign, enrol, ingest, message, reading, register
from tests.conftest import ORG_A, ORG_B

YELLOW = "Call the follow-up service"
RED = "Call the out-of-hours emergency service 116 117"


def path(patient: str) -> str:
    return f"/api/v1/patients/{patient}/action-plan"


async def test_versions_newest_first_with_who_when_and_why(client, tokens):
    patient = (await enrol(client, tokens(ORG_A, "admin")))["id"]
    r = await client.get(path(patient), headers=tokens(ORG_A, "nurse"))
    assert r.status_code == 200, r.text
    assert r.json() == {"in_force": None, "history": []}

    r = await client.put(
        path(patient),
        headers=tokens(ORG_A, "physician", sub="dr-1"),
        json={"reason": "GP visit 1 Dec", "actions": {"yellow": YELLOW, "red": RED}},
    )
    assert r.status_code == 200, r.text
    first = r.json()["in_force"]
    assert first["version"] == 1
    assert first["actions"] == {"green": None, "yellow": YELLOW, "red": RED}
    assert (first["changed_by_sub"], first["changed_by_org"], first["reason"]) == ("dr-1", ORG_A, "GP visit 1 Dec")

    r = await client.put(
        path(patient),
        headers=tokens(ORG_A, "admin", sub="admin-1"),
        json={"reason": "red only", "actions": {"red": RED}},
    )
    assert r.status_code == 200, r.text
    r = await client.get(path(patient), headers=tokens(ORG_A, "nurse"))
    body = r.json()
    assert [v["version"] for v in body["history"]] == [2, 1]
    assert body["in_force"] == body["history"][0]
    assert body["in_force"]["actions"] == {"green": None, "yellow": None, "red": RED}
    assert [v["changed_by_sub"] for v in body["history"]] == ["admin-1", "dr-1"]
    assert all(datetime.fromisoformat(v["changed_at"]) for v in body["history"])


async def test_a_nurse_is_refused_a_change_and_another_organisation_sees_nothing(client, tokens, session):
    patient = (await enrol(client, tokens(ORG_A, "admin")))["id"]
    change = {"reason": "x", "actions": {"red": RED}}
    assert_error(await client.put(path(patient), headers=tokens(ORG_A, "nurse"), json=change), 403)
    for role in ("nurse", "physician", "admin"):
        assert_error(await client.get(path(patient), headers=tokens(ORG_B, role)), 404)
        assert_error(await client.put(path(patient), headers=tokens(ORG_B, role), json=change), 404)
    assert await session.scalar(select(func.count()).select_from(ActionPlan)) == await session.scalar(
        select(func.count()).select_from(ActionPlan).where(ActionPlan.patient_id != patient)
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason": "x", "actions": {}}, "actions"),
        ({"reason": "x", "actions": {"red": None}}, "actions"),
        ({"reason": "", "actions": {"red": RED}}, "reason"),
        ({"actions": {"red": RED}}, "reason"),
        ({"reason": "x", "actions": {"red": "x" * 501}}, "red"),
        ({"reason": "x", "actions": {"orange": RED}}, "orange"),
        ({"reason": "x", "actions": "call"}, "actions"),
    ],
)
async def test_malformed_changes_are_422(client, tokens, body: dict[str, Any], field: str):
    patient = (await enrol(client, tokens(ORG_A, "admin")))["id"]
    assert_error(await client.put(path(patient), headers=tokens(ORG_A, "physician"), json=body), 422, field)
    assert (await client.get(path(patient), headers=tokens(ORG_A, "nurse"))).json()["history"] == []


async def test_a_change_colliding_with_another_is_409(client, tokens, monkeypatch):
    patient = (await enrol(client, tokens(ORG_A, "admin")))["id"]
    physician = tokens(ORG_A, "physician")
    r = await client.put(path(patient), headers=physician, json={"reason": "first", "actions": {"red": RED}})
    assert r.status_code == 200, r.text

    async def as_if_none_yet(session: Any, patient_id: Any) -> None:
        return None  # what the second change saw a moment before the first committed

    monkeypatch.setattr(plans_repository, "in_force", as_if_none_yet)
    r = await client.put(path(patient), headers=physician, json={"reason": "second", "actions": {"red": "other"}})
    assert assert_error(r, 409)["error"] == "action_plan_changed"
    monkeypatch.undo()
    body = (await client.get(path(patient), headers=physician)).json()
    assert [(v["version"], v["reason"]) for v in body["history"]] == [(1, "first")]


async def test_the_queue_and_the_detail_carry_the_action_of_the_alerts_level(client, tokens, session):
    admin = tokens(ORG_A, "admin")
    patient = (await enrol(client, admin, conditions=["copd"], start_period_days=0))["id"]  # yellow alerts at once
    device = await register(client, admin, type="spo2")
    await assign(client, admin, device["serial"], patient, "2025-01-01T00:00:00+01:00")
    r = await client.put(
        path(patient),
        headers=tokens(ORG_A, "physician"),
        json={"reason": "r", "actions": {"yellow": YELLOW, "red": RED}},
    )
    assert r.status_code == 200, r.text
    at = datetime.now(UTC) - timedelta(minutes=5)
    [outcome] = await ingest(
        session, message([reading(device["serial"], at.isoformat(), type="spo2", value=85, unit="%")])
    )
    assert [r["status"] for r in outcome.results] == ["accepted"], outcome.results

    nurse = tokens(ORG_A, "nurse")
    [item] = (await client.get("/api/v1/alerts", headers=nurse, params={"patient": patient})).json()["items"]
    assert (item["level"], item["action"], item["action_plan_version"]) == ("yellow", YELLOW, 1)
    detail = (await client.get(f"/api/v1/alerts/{item['id']}", headers=nurse)).json()
    assert (detail["action"], detail["action_plan_version"]) == (YELLOW, 1)
    worklist = (await client.get("/api/v1/patients", headers=nurse, params={"limit": 500})).json()["items"]
    [row] = [p for p in worklist if p["id"] == patient]
    assert row["newest_alert"]["action"] == YELLOW
