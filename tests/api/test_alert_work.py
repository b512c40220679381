"""Working an alert through the API (issue 11, item 5): `PUT /alerts/{id}/assignment`,
`PUT`/`DELETE /alerts/{id}/snooze`, `GET`/`POST /alerts/{id}/comments`, the queue's
`assignee` and `snoozed` filters, and `GET /staff` (who may be assigned).

Proves the round trip of each route and its errors (404 for another organisation's alert or
patient, 409 on a resolved alert, 422 for an unknown staff member, a snooze out of bounds, a
malformed body); comments page with the list cursor; every caller with a role is written down
in the staff directory, in a transaction of its own, so that colleagues can assign them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from rpm.staff.models import StaffMember
from tests.api.helpers import assert_error, new_organisation
from tests.api.test_api_edges import with_red_alert
from tests.conftest import ORG_B


def sub(name: str) -> str:
    """A sub of this test alone: callers are written down for good (a transaction of their own)."""
    return f"{name}-{uuid.uuid4().hex[:10]}"


async def the_alert(client: httpx.AsyncClient, headers: dict[str, str], patient: str) -> dict[str, Any]:
    r = await client.get("/api/v1/alerts", headers=headers, params={"patient": patient, "snoozed": "include"})
    assert r.status_code == 200, r.text
    (alert,) = r.json()["items"]
    return alert


async def queue_ids(client: httpx.AsyncClient, headers: dict[str, str], **params: str) -> set[str]:
    r = await client.get("/api/v1/alerts", headers=headers, params={"limit": 500, **params})
    assert r.status_code == 200, r.text
    return {item["id"] for item in r.json()["items"]}


def in_hours(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


async def test_assign_snooze_wake_and_comment(client, tokens, session):
    org = await new_organisation(session)
    kari_sub, ola_sub = sub("kari"), sub("ola")
    kari = tokens(org, "nurse", sub=kari_sub)
    ola = tokens(org, "physician", sub=ola_sub)
    patient = await with_red_alert(client, session, tokens(org, "admin", sub=sub("admin")), org)
    alert = await the_alert(client, kari, patient)
    assert (alert["assigned_to"], alert["snoozed_until"], alert["comments"]) == (None, None, 0)

    # Ola has called the service, so the directory knows him.
    r = await client.get("/api/v1/staff", headers=ola, params={"patient": patient})
    assert r.status_code == 200, r.text
    assert {m["sub"] for m in r.json()["items"]} >= {ola_sub}
    r = await client.put(f"/api/v1/alerts/{alert['id']}/assignment", headers=kari, json={"assignee": ola_sub})
    assert r.status_code == 200, r.text
    assigned = r.json()
    assert (assigned["assigned_to"], assigned["assigned_by"], assigned["status"]) == (ola_sub, kari_sub, "open")
    assert await queue_ids(client, ola, assignee="me") == {alert["id"]}
    assert await queue_ids(client, kari, assignee="me") == set()
    assert await queue_ids(client, kari, assignee=ola_sub) == {alert["id"]}

    until = in_hours(2)
    r = await client.put(
        f"/api/v1/alerts/{alert['id']}/snooze", headers=ola, json={"until": until, "reason": "Ny måling kl. 12"}
    )
    assert r.status_code == 200, r.text
    snoozed = r.json()
    assert (snoozed["status"], snoozed["acknowledged_by"], snoozed["snoozed_by"]) == ("acknowledged", ola_sub, ola_sub)
    assert datetime.fromisoformat(snoozed["snoozed_until"]) == datetime.fromisoformat(until)
    assert snoozed["snooze_reason"] == "Ny måling kl. 12"
    assert alert["id"] not in await queue_ids(client, kari)
    assert alert["id"] not in await queue_ids(client, kari, snoozed="hide")
    assert await queue_ids(client, kari, snoozed="only") == {alert["id"]}
    assert alert["id"] in await queue_ids(client, kari, snoozed="include")

    r = await client.delete(f"/api/v1/alerts/{alert['id']}/snooze", headers=kari)
    assert r.status_code == 200, r.text
    assert (r.json()["snoozed_until"], r.json()["snooze_reason"]) == (None, "Ny måling kl. 12")
    assert alert["id"] in await queue_ids(client, kari)
    again = await client.delete(f"/api/v1/alerts/{alert['id']}/snooze", headers=kari)
    assert again.status_code == 200 and again.json() == r.json(), "not snoozed: left as it is"

    for text in ("Ringte, ingen svar", "Ringte igjen: bedre", "Fastlegen er orientert"):
        r = await client.post(f"/api/v1/alerts/{alert['id']}/comments", headers=kari, json={"text": text})
        assert r.status_code == 201, r.text
    assert set(r.json()) == {"id", "at", "by", "by_name", "text"}
    assert (r.json()["by"], r.json()["text"]) == (kari_sub, "Fastlegen er orientert")
    first = await client.get(f"/api/v1/alerts/{alert['id']}/comments", headers=ola, params={"limit": 2})
    assert first.status_code == 200, first.text
    assert [c["text"] for c in first.json()["items"]] == ["Ringte, ingen svar", "Ringte igjen: bedre"]
    rest = await client.get(
        f"/api/v1/alerts/{alert['id']}/comments", headers=ola, params={"limit": 2, "cursor": first.json()["next"]}
    )
    assert rest.json() == {"items": [r.json()], "next": None}
    assert (await the_alert(client, kari, patient))["comments"] == 3

    r = await client.put(f"/api/v1/alerts/{alert['id']}/assignment", headers=ola, json={"assignee": None})
    assert r.status_code == 200 and r.json()["assigned_to"] is None, r.text


async def test_the_errors_of_working_an_alert(client, tokens, session):
    org = await new_organisation(session)
    nurse = tokens(org, "nurse", sub=sub("nurse"))
    patient = await with_red_alert(client, session, tokens(org, "admin", sub=sub("admin")), org)
    alert = (await the_alert(client, nurse, patient))["id"]
    outsider_sub = sub("outsider")
    outsider = tokens(ORG_B, "nurse", sub=outsider_sub)
    await client.get("/api/v1/staff", headers=outsider)  # known, but of another organisation

    for assignee in (sub("never-seen"), outsider_sub):
        r = await client.put(f"/api/v1/alerts/{alert}/assignment", headers=nurse, json={"assignee": assignee})
        assert assert_error(r, 422, "assignee")["error"] == "unknown_staff_member", assignee
    for body in ({}, {"assignee": ""}, {"assignee": 7}, {"assignee": "x", "extra": 1}):
        r = await client.put(f"/api/v1/alerts/{alert}/assignment", headers=nurse, json=body)
        assert assert_error(r, 422)["error"] == "invalid_request", body

    for until in (in_hours(0), in_hours(-1), in_hours(24.01), in_hours(48)):
        r = await client.put(f"/api/v1/alerts/{alert}/snooze", headers=nurse, json={"until": until, "reason": "Venter"})
        assert assert_error(r, 422, "until")["error"] == "invalid_snooze", until
    for body in (
        {"until": in_hours(1)},
        {"until": in_hours(1), "reason": ""},
        {"until": in_hours(1), "reason": "x" * 501},
        {"until": "2026-12-01T12:00:00", "reason": "Venter"},  # no offset
        {"until": "tomorrow", "reason": "Venter"},
    ):
        r = await client.put(f"/api/v1/alerts/{alert}/snooze", headers=nurse, json=body)
        assert assert_error(r, 422)["error"] == "invalid_request", body
    r = await client.put(f"/api/v1/alerts/{alert}/snooze", headers=nurse, json={"until": in_hours(24), "reason": "Ok"})
    assert r.status_code == 200, "24 hours is allowed"
    for body in ({}, {"text": ""}, {"text": "x" * 4001}):
        r = await client.post(f"/api/v1/alerts/{alert}/comments", headers=nurse, json=body)
        assert assert_error(r, 422)["error"] == "invalid_request", body
    r = await client.post(f"/api/v1/alerts/{alert}/comments", headers=nurse, json={"text": "   "})
    assert assert_error(r, 422)["error"] == "invalid_comment"

    # Another organisation's alert and patient: 404, as if there were none.
    for method, path, body in [
        ("PUT", f"/api/v1/alerts/{alert}/assignment", {"assignee": None}),
        ("PUT", f"/api/v1/alerts/{alert}/snooze", {"until": in_hours(1), "reason": "Venter"}),
        ("DELETE", f"/api/v1/alerts/{alert}/snooze", None),
        ("GET", f"/api/v1/alerts/{alert}/comments", None),
        ("POST", f"/api/v1/alerts/{alert}/comments", {"text": "Hei"}),
        ("GET", f"/api/v1/alerts/{uuid.uuid4()}/comments", None),
    ]:
        r = await client.request(method, path, headers=outsider, json=body)
        assert assert_error(r, 404)["error"] == "not_found", (method, path)
    r = await client.get("/api/v1/staff", headers=outsider, params={"patient": patient})
    assert assert_error(r, 404)["error"] == "not_found"

    # A resolved alert: no assignment or snooze (409), but comments still.
    r = await client.post(f"/api/v1/alerts/{alert}/resolve", headers=nurse, json={"note": "Ringte"})
    assert r.status_code == 200 and r.json()["snoozed_until"] is None, r.text
    r = await client.put(f"/api/v1/alerts/{alert}/assignment", headers=nurse, json={"assignee": None})
    assert assert_error(r, 409)["error"] == "alert_resolved"
    r = await client.put(f"/api/v1/alerts/{alert}/snooze", headers=nurse, json={"until": in_hours(1), "reason": "V"})
    assert assert_error(r, 409)["error"] == "alert_resolved"
    r = await client.post(f"/api/v1/alerts/{alert}/comments", headers=nurse, json={"text": "Etterord"})
    assert r.status_code == 201, r.text

    for params in ({"snoozed": "all"}, {"assignee": ""}):
        assert_error(await client.get("/api/v1/alerts", headers=nurse, params=params), 422)


async def test_every_caller_with_a_role_is_written_down_in_their_organisation(client, tokens, session):
    org = await new_organisation(session)
    nurse_sub, nobody_sub = sub("nurse"), sub("nobody")
    for _ in range(2):
        r = await client.get("/api/v1/staff", headers=tokens(org, "nurse", "admin", sub=nurse_sub))
        assert r.status_code == 200, r.text
    assert (await client.get("/api/v1/staff", headers=tokens(org, "receptionist", sub=nobody_sub))).status_code == 403
    stored = list(await session.scalars(select(StaffMember).where(StaffMember.sub.in_([nurse_sub, nobody_sub]))))
    assert [(m.orgnr, sorted(m.roles), m.hpr) for m in stored] == [(org, ["admin", "nurse"], "1234567")]
    listed = (await client.get("/api/v1/staff", headers=tokens(org, "nurse", sub=nurse_sub))).json()["items"]
    assert listed == [{"sub": nurse_sub, "name": None, "orgnr": org, "roles": ["admin", "nurse"]}]
