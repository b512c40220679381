"""The scenario of rules.md, through the public contract only: MQTT in, the staff API out."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from fhir.resources.R4B.bundle import Bundle

from tests.conftest import ORG_B
from tests.fixtures.identity import fresh_identity
from tests.fixtures.mqtt import Gateway, reading


async def enrol(api, admin, conditions: list[str], device_type: str, orgnr: str) -> tuple[str, str]:
    """Enrol a patient of `orgnr` and assign a new device through the API; return (patient id, serial)."""
    number, born = fresh_identity()
    patient = await api.post(
        "/api/v1/patients",
        headers=admin,
        json={
            "identifier": number,
            "name": "Kari Nordmann",
            "birth_date": born.isoformat(),
            "conditions": conditions,
            "care_team": [{"organisation": orgnr, "from": "2026-01-01"}],
            "start_period_days": 0,  # the scenarios judge by the bands in force from the first reading
        },
    )
    assert patient.status_code == 201, patient.text
    serial = f"DEV-{uuid.uuid4().hex[:10]}"
    assert (
        await api.post("/api/v1/devices", headers=admin, json={"serial": serial, "type": device_type})
    ).status_code == 201
    assigned = await api.put(
        f"/api/v1/devices/{serial}/assignment",
        headers=admin,
        json={"patient": patient.json()["id"], "from": "2026-01-01T00:00:00+01:00"},
    )
    assert assigned.status_code == 200, assigned.text
    return patient.json()["id"], serial


async def send(gateway: Gateway, hub: str, *readings: dict) -> list[dict]:
    before = len(gateway.acks)
    gateway.publish(hub, {"readings": list(readings)})
    acks = await asyncio.to_thread(gateway.wait_for_acks, before + 1)
    return acks[-1][1]["results"]


async def active_alerts(api, headers, patient: str) -> list[dict]:
    response = await api.get("/api/v1/alerts", headers=headers, params={"patient": patient})
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_copd_spo2_alert_lifecycle_through_the_contract(live_api, worker, gateway, tokens, own_organisation):
    org = own_organisation
    admin, nurse, outsider = tokens(org, "admin"), tokens(org, "nurse", sub="nurse-kari"), tokens(ORG_B, "nurse")
    patient, serial = await enrol(live_api, admin, ["copd"], "spo2", org)
    hub, now = f"hub-{uuid.uuid4().hex[:8]}", datetime.now(UTC)

    assert await send(
        gateway, hub, reading("s1", serial, "spo2", (now - timedelta(minutes=3)).isoformat(), 85, "%")
    ) == [{"id": "s1", "status": "accepted"}]
    [alert] = await active_alerts(live_api, nurse, patient)
    assert (alert["rule"], alert["level"], alert["status"], alert["occurrences"]) == (
        "threshold:59408-5:low",
        "yellow",
        "open",
        1,
    )
    assert (alert["value"], alert["unit"], alert["threshold"], alert["late"]) == (85, "%", {"low": 86}, False)
    assert await active_alerts(live_api, outsider, patient) == []
    assert (await live_api.get(f"/api/v1/alerts/{alert['id']}", headers=outsider)).status_code == 404

    await send(gateway, hub, reading("s2", serial, "spo2", (now - timedelta(minutes=2)).isoformat(), 83, "%"))
    [raised] = await active_alerts(live_api, nurse, patient)
    assert (raised["id"], raised["level"], raised["occurrences"], raised["value"], raised["threshold"]) == (
        alert["id"],
        "red",
        2,
        83,
        {"low": 84},
    )
    assert len(raised["observations"]) == 2

    detail = (await live_api.get(f"/api/v1/alerts/{alert['id']}", headers=nurse)).json()
    assert [e["value"] for e in detail["evidence"]] == [85, 83]

    acknowledged = await live_api.post(f"/api/v1/alerts/{alert['id']}/acknowledge", headers=nurse)
    again = await live_api.post(f"/api/v1/alerts/{alert['id']}/acknowledge", headers=nurse)
    assert acknowledged.status_code == again.status_code == 200
    assert acknowledged.json()["status"] == "acknowledged" and acknowledged.json()["acknowledged_by"] == "nurse-kari"
    assert again.json()["acknowledged_at"] == acknowledged.json()["acknowledged_at"]

    no_note = await live_api.post(f"/api/v1/alerts/{alert['id']}/resolve", headers=nurse, json={"note": ""})
    assert no_note.status_code == 422 and no_note.json()["error"] == "invalid_request"
    resolved = await live_api.post(
        f"/api/v1/alerts/{alert['id']}/resolve",
        headers=nurse,
        json={"note": "Called the patient; oxygen adjusted by GP."},
    )
    assert resolved.status_code == 200
    assert (resolved.json()["status"], resolved.json()["resolved_by"]) == ("resolved", "nurse-kari")
    twice = await live_api.post(f"/api/v1/alerts/{alert['id']}/resolve", headers=nurse, json={"note": "again"})
    assert (twice.status_code, twice.json()["error"]) == (409, "alert_resolved")
    assert await active_alerts(live_api, nurse, patient) == []

    await send(gateway, hub, reading("s3", serial, "spo2", now.isoformat(), 85, "%"))
    [fresh] = await active_alerts(live_api, nurse, patient)
    assert fresh["id"] != alert["id"] and (fresh["level"], fresh["occurrences"]) == ("yellow", 1)

    # The Observations carry their interpretation and the patient's yellow band.
    bundle = (await live_api.get("/fhir/Observation", headers=nurse, params={"patient": patient})).json()
    Bundle.model_validate(bundle)
    by_value = {e["resource"]["valueQuantity"]["value"]: e["resource"] for e in bundle["entry"]}
    assert by_value[83.0]["interpretation"][0]["coding"][0]["code"] == "LL"
    assert by_value[85.0]["interpretation"][0]["coding"][0]["code"] == "L"
    assert by_value[85.0]["referenceRange"][0]["low"]["value"] == 86


async def test_heart_failure_weight_gain_of_2_1_kg_in_two_days(live_api, worker, gateway, tokens, own_organisation):
    admin, nurse = tokens(own_organisation, "admin"), tokens(own_organisation, "nurse")
    patient, serial = await enrol(live_api, admin, ["heart-failure"], "body-weight", own_organisation)
    hub, now = f"hub-{uuid.uuid4().hex[:8]}", datetime.now(UTC)
    await send(
        gateway,
        hub,
        reading("w1", serial, "body-weight", (now - timedelta(days=2)).isoformat(), 80.0, "kg"),
        reading("w2", serial, "body-weight", (now - timedelta(days=1)).isoformat(), 81.0, "kg"),
    )
    assert await active_alerts(live_api, nurse, patient) == []
    await send(gateway, hub, reading("w3", serial, "body-weight", now.isoformat(), 82.1, "kg"))
    [alert] = await active_alerts(live_api, nurse, patient)
    assert (alert["rule"], alert["level"]) == ("trend:weight-gain", "yellow")
    assert alert["value"] == 2.1 and alert["unit"] == "kg"
    assert len(alert["observations"]) == 2


async def test_thresholds_override_applies_to_later_readings(live_api, worker, gateway, tokens, own_organisation):
    org = own_organisation
    admin, physician, nurse = tokens(org, "admin"), tokens(org, "physician", sub="gp-1"), tokens(org, "nurse")
    patient, serial = await enrol(live_api, admin, ["copd"], "spo2", org)
    effective = (await live_api.get(f"/api/v1/patients/{patient}/thresholds", headers=nurse)).json()
    assert effective["59408-5"] == {
        "yellow": {"low": 86},
        "red": {"low": 84},
        "source": "template",
        "templates": ["general", "copd"],
    }
    change = {"reason": "COPD, habitual SpO2 89-91", "bands": {"59408-5": {"yellow": {"low": 88}, "red": {"low": 85}}}}
    assert (await live_api.put(f"/api/v1/patients/{patient}/thresholds", headers=nurse, json=change)).status_code == 403
    changed = await live_api.put(f"/api/v1/patients/{patient}/thresholds", headers=physician, json=change)
    assert changed.status_code == 200
    assert changed.json()["59408-5"] == {"yellow": {"low": 88}, "red": {"low": 85}, "source": "override"}
    hub = f"hub-{uuid.uuid4().hex[:8]}"
    await send(gateway, hub, reading("o1", serial, "spo2", datetime.now(UTC).isoformat(), 87, "%"))
    [alert] = await active_alerts(live_api, nurse, patient)
    assert (alert["level"], alert["threshold"], alert["thresholds_version"]) == ("yellow", {"low": 88}, 1)
