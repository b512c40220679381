"""GET /rejected, POST /rejected/reprocess (mqtt.md: nothing is lost) and GET /audit."""

from __future__ import annotations

from tests.api.helpers import assert_error, assign, enrol, ingest, message, new_organisation, reading, unique
from tests.conftest import ORG_A, ORG_B

TIME = "2026-11-20T08:00:00+01:00"


async def test_a_device_registered_late_has_its_rejected_readings_reprocessed(client, tokens, session):
    admin = tokens(ORG_A, "admin")
    serial = unique("LATE")
    gateway = unique("gw")
    [outcome] = await ingest(session, message([reading(serial, TIME, reading_id="a"),
                                               reading(serial, TIME, reading_id="b", value=900)], gateway))
    assert [r["reason"] for r in outcome.results] == ["unknown_device", "implausible_value"]

    # Unknown serials belong to nobody yet: no organisation sees them.
    listed = await client.get("/api/v1/rejected", headers=admin, params={"serial": serial})
    assert listed.status_code == 200 and listed.json()["items"] == []

    patient = await enrol(client, admin)
    assert (await client.post("/api/v1/devices", headers=admin,
                              json={"serial": serial, "type": "body-weight"})).status_code == 201
    listed = (await client.get("/api/v1/rejected", headers=admin, params={"serial": serial})).json()
    assert sorted(r["reason"] for r in listed["items"]) == ["implausible_value", "unknown_device"]
    assert all(r["gateway_id"] == gateway and r["device_serial"] == serial for r in listed["items"])
    assert any('"value":900' in r["payload"] for r in listed["items"])

    # Before the assignment, reprocessing still cannot place the reading; nothing is closed.
    counts = await client.post("/api/v1/rejected/reprocess", headers=admin, json={"serial": serial})
    assert counts.json() == {"accepted": 0, "duplicate": 0, "rejected": 2}
    await assign(client, admin, serial, patient["id"])
    counts = await client.post("/api/v1/rejected/reprocess", headers=admin, json={"serial": serial})
    assert counts.status_code == 200 and counts.json() == {"accepted": 1, "duplicate": 0, "rejected": 1}
    again = await client.post("/api/v1/rejected/reprocess", headers=admin, json={"serial": serial})
    assert again.json() == {"accepted": 0, "duplicate": 0, "rejected": 1}

    still_open = (await client.get("/api/v1/rejected", headers=admin, params={"serial": serial})).json()["items"]
    assert [r["reason"] for r in still_open] == ["implausible_value"]
    everything = (await client.get("/api/v1/rejected", headers=admin,
                                   params={"serial": serial, "include_reprocessed": "true"})).json()["items"]
    done = [r for r in everything if r["reprocessed_at"]]
    assert [r["reprocess_outcome"] for r in done] == [{"id": "a", "status": "accepted"}]


async def test_reprocessing_needs_an_admin_of_the_registering_organisation(client, tokens, session):
    admin = tokens(ORG_A, "admin")
    serial = unique("SC")
    assert (await client.post("/api/v1/devices", headers=admin,
                              json={"serial": serial, "type": "body-weight"})).status_code == 201
    assert_error(await client.post("/api/v1/rejected/reprocess", headers=tokens(ORG_A, "nurse"),
                                   json={"serial": serial}), 403)
    assert_error(await client.post("/api/v1/rejected/reprocess", headers=tokens(ORG_B, "admin"),
                                   json={"serial": serial}), 404)
    assert_error(await client.post("/api/v1/rejected/reprocess", headers=admin,
                                   json={"serial": unique("NONE")}), 404)
    assert_error(await client.post("/api/v1/rejected/reprocess", headers=admin, json={}), 422, "serial")


async def test_audit_trail_lists_every_access_to_the_organisations_patients(client, tokens, session):
    org = await new_organisation(session)
    admin, nurse = tokens(org, "admin", sub="admin-1"), tokens(org, "nurse", sub="nurse-1", hpr="7654321")
    patient = await enrol(client, admin, org)
    await client.get(f"/api/v1/patients/{patient['id']}", headers={**nurse, "X-Request-ID": "req-42"})
    trail = await client.get("/api/v1/audit", headers=admin, params={"patient": patient["id"]})
    assert trail.status_code == 200
    rows = trail.json()["items"]
    # Newest first: the nurse's read, then the admin's enrolment.
    assert [(r["actor_sub"], r["action"], r["resource_type"]) for r in rows] == [
        ("nurse-1", "read", "Patient"), ("admin-1", "create", "Patient")]
    assert (rows[0]["actor_hpr"], rows[0]["actor_org"], rows[0]["request_id"]) == ("7654321", org, "req-42")
    assert rows[0]["id"] > rows[1]["id"]
    assert all(r["patient"] == patient["id"] for r in rows)

    page = (await client.get("/api/v1/audit", headers=admin, params={"limit": 1})).json()
    assert len(page["items"]) == 1 and page["next"]
    following = (await client.get("/api/v1/audit", headers=admin, params={"limit": 1, "cursor": page["next"]})).json()
    assert following["items"][0]["id"] < page["items"][0]["id"]

    assert_error(await client.get("/api/v1/audit", headers=nurse), 403)
    assert_error(await client.get("/api/v1/audit", headers=tokens(ORG_B, "admin"),
                                  params={"patient": patient["id"]}), 404)
    others = (await client.get("/api/v1/audit", headers=tokens(ORG_B, "admin"))).json()["items"]
    assert all(r["patient"] != patient["id"] for r in others)
