"""GET and PUT /api/v1/organisations/{orgnr}/service, and the out-of-hours partner over HTTP.

Proves: the defaults when nothing is set; a PUT replaces the whole (left out: the default) and is
audited; only the organisation's own admin (a nurse 403, another organisation 404 whether it is
registered or not); a partner must be registered (422 unknown_organisation) and not the
organisation itself (422 invalid_partner); bad service hours name the field (422); and the
partner's nurse reads the patient's dashboard and alert only while the handed-over alert is
active (404 before and after, 404 for the care team's other patients), may not change the
patient's thresholds (403 care_team_only), and every read is audited in the partner's name.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from rpm.audit.models import AuditRecord
from tests.alerts.test_lifecycle import enrol, new_organisation, send

SATURDAY = datetime(2021, 6, 5, 8, 0, tzinfo=UTC)  # 10:00 in Oslo
DEFAULTS = {
    "service_hours": {
        "days": [1, 2, 3, 4, 5],
        "start": "08:00",
        "end": "15:30",
        "timezone": "Europe/Oslo",
        "holidays": False,
    },
    "service_hours_default": True,
    "escalate_red_minutes": 15.0,
    "escalate_red_minutes_default": True,
    "out_of_hours_partner": None,
    "out_of_hours_partner_name": None,
}


def assert_error(response, status: int, code: str) -> None:
    assert (response.status_code, response.json()["error"]) == (status, code), response.text
    assert set(response.json()) == {"error", "detail"}


def path(orgnr: str) -> str:
    return f"/api/v1/organisations/{orgnr}/service"


async def test_defaults_then_a_change_replacing_the_whole(client, tokens, session):
    own, partner = await new_organisation(session), await new_organisation(session)
    admin = tokens(own, "admin", sub="admin-1")
    r = await client.get(path(own), headers=admin)
    assert r.status_code == 200, r.text
    assert r.json() == {"organisation": own} | DEFAULTS

    weekend = {"days": [6, 7], "start": "09:00", "end": "13:00", "timezone": "Europe/Oslo", "holidays": True}
    r = await client.put(
        path(own),
        headers=admin,
        json={"service_hours": weekend, "escalate_red_minutes": 10, "out_of_hours_partner": partner},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "organisation": own,
        "service_hours": weekend,
        "service_hours_default": False,
        "escalate_red_minutes": 10.0,
        "escalate_red_minutes_default": False,
        "out_of_hours_partner": partner,
        "out_of_hours_partner_name": f"Org {partner}",
    }
    assert (await client.get(path(own), headers=admin)).json() == r.json()
    [audited] = await session.scalars(
        select(AuditRecord).where(AuditRecord.resource_type == "OrganisationService", AuditRecord.resource_id == own)
    )
    assert (audited.action, audited.actor_sub, audited.actor_org, audited.patient_id) == (
        "update",
        "admin-1",
        own,
        None,
    )

    r = await client.put(path(own), headers=admin, json={})
    assert r.json() == {"organisation": own} | DEFAULTS


async def test_only_the_organisations_own_admin(client, tokens, session):
    own, other = await new_organisation(session), await new_organisation(session)
    await session.commit()
    for method in ("GET", "PUT"):
        body = {} if method == "PUT" else None
        r = await client.request(method, path(own), headers=tokens(own, "nurse"), json=body)
        assert_error(r, 403, "forbidden")
        r = await client.request(method, path(own), headers=tokens(other, "admin"), json=body)
        assert_error(r, 404, "not_found")
        r = await client.request(method, path("999999990"), headers=tokens(other, "admin"), json=body)
        assert_error(r, 404, "not_found")
    assert_error(await client.get(path("12345"), headers=tokens(own, "admin")), 422, "invalid_request")


async def test_bad_settings_are_refused_naming_the_field(client, tokens, session):
    own = await new_organisation(session)
    await session.commit()  # kept when a refused request rolls back (the test's transaction still ends)
    admin = tokens(own, "admin")
    hours = {"days": [1], "start": "08:00", "end": "15:30"}
    cases = [
        ({"out_of_hours_partner": "999999991"}, "unknown_organisation", "out_of_hours_partner"),
        ({"out_of_hours_partner": own}, "invalid_partner", "out_of_hours_partner"),
        ({"service_hours": hours | {"start": "16:00"}}, "invalid_service_hours", "service_hours.end"),
        ({"service_hours": hours | {"timezone": "Mars/Olympus"}}, "invalid_service_hours", "service_hours.timezone"),
        ({"service_hours": hours | {"start": "24:00"}}, "invalid_service_hours", "service_hours.start"),
        ({"service_hours": hours | {"days": [8]}}, "invalid_request", "days"),
        ({"escalate_red_minutes": 0}, "invalid_request", "escalate_red_minutes"),
        ({"weekends": True}, "invalid_request", "weekends"),
    ]
    for body, code, field in cases:
        r = await client.put(path(own), headers=admin, json=body)
        assert_error(r, 422, code)
        assert field in r.json()["detail"], (body, r.json())
    assert (await client.get(path(own), headers=admin)).json() == {"organisation": own} | DEFAULTS


async def test_the_partner_reads_the_patient_only_while_the_alert_is_active(client, tokens, session):
    own, partner = await new_organisation(session), await new_organisation(session)
    r = await client.put(path(own), headers=tokens(own, "admin"), json={"out_of_hours_partner": partner})
    assert r.status_code == 200, r.text
    patient, other = await enrol(session, own), await enrol(session, own)
    await session.commit()
    nurse = tokens(partner, "nurse", sub="legevakt-1")

    dashboard = f"/api/v1/patients/{patient.id}/dashboard"
    assert_error(await client.get(dashboard, headers=nurse), 404, "not_found")
    assert (await client.get("/api/v1/alerts", headers=nurse)).json()["items"] == []

    await send(session, patient, 83, at=SATURDAY - timedelta(minutes=1), received_at=SATURDAY)
    await send(session, other, 85, at=SATURDAY - timedelta(minutes=1), received_at=SATURDAY)  # yellow: stays
    await session.commit()
    [item] = (await client.get("/api/v1/alerts", headers=nurse)).json()["items"]
    assert (item["patient"], item["outside_service_hours"], item["handed_over_to"]) == (str(patient.id), True, partner)
    assert item["handed_over_at"] is not None
    assert (await client.get(dashboard, headers=nurse)).status_code == 200
    assert (await client.get(f"/api/v1/alerts/{item['id']}", headers=nurse)).status_code == 200
    listed = (await client.get("/api/v1/patients", headers=nurse)).json()["items"]
    assert [p["id"] for p in listed] == [str(patient.id)]
    assert_error(await client.get(f"/api/v1/patients/{other.id}/dashboard", headers=nurse), 404, "not_found")
    change = {"reason": "partner", "bands": {"59408-5": {"yellow": {"low": 88}, "red": {"low": 85}}}}
    r = await client.put(f"/api/v1/patients/{patient.id}/thresholds", headers=tokens(partner, "physician"), json=change)
    assert_error(r, 403, "care_team_only")
    reads = await session.scalars(
        select(AuditRecord.action).where(AuditRecord.patient_id == patient.id, AuditRecord.actor_org == partner)
    )
    assert {"read", "search"} <= set(reads)

    r = await client.post(
        f"/api/v1/alerts/{item['id']}/resolve", headers=nurse, json={"note": "Seen at the emergency room"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["handed_over_to"] == partner
    assert_error(await client.get(dashboard, headers=nurse), 404, "not_found")
    assert_error(await client.get(f"/api/v1/alerts/{item['id']}", headers=nurse), 404, "not_found")
    assert (await client.get("/api/v1/alerts", headers=nurse)).json()["items"] == []
    assert (await client.get("/api/v1/patients", headers=nurse)).json()["items"] == []
    # The care team still sees it all, the hand-over on the resolved alert.
    r = await client.get(f"/api/v1/alerts/{item['id']}", headers=tokens(own, "nurse"))
    assert (r.status_code, r.json()["handed_over_to"]) == (200, partner)
