"""POST /api/v1/patients/{id}/thresholds/preview on stored readings.

Proves: the counts and alerts of a proposal against a hand-computed case; `current` judged with
the thresholds in force; `days` limits the readings judged (and the weight-gain trend still sees
its history before them); nothing is stored; validation, access (another organisation 404, any
staff role of the care team may preview) and the audit record. And the issue's cross-check: the
preview's alerts equal the alerts the live rules open on the same readings, stored one by one
through the real ingest path under the same thresholds, with a nurse resolving each alert when
the patient is back within the bands (the preview's documented assumption).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.alerts.models import Alert
from rpm.audit.models import AuditRecord
from rpm.rules.models import ThresholdOverride
from tests.api.helpers import (
    assert_error,
    assign,
    enrol,
    ingest,
    message,
    observations_of,
    parse_time,
    reading,
    register,
    unique,
)
from tests.conftest import ORG_A, ORG_B

SPO2, WEIGHT = "59408-5", "29463-7"
SYSTOLIC, DIASTOLIC, HEART_RATE = "8480-6", "8462-4", "8867-4"
SPO2_LOW = f"threshold:{SPO2}:low"
WEIGHT_GAIN = "trend:weight-gain"
PROPOSED_SPO2 = {SPO2: {"yellow": {"low": 92}, "red": {"low": 90}}}
UNITS = {"spo2": "%", "body-weight": "kg", "blood-pressure": "mm[Hg]"}
HOUR = timedelta(hours=1)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


async def followed_patient(
    client: httpx.AsyncClient, admin: dict[str, str], device_type: str, conditions: list[str]
) -> tuple[str, str]:
    """A patient of ORG_A with one assigned device of the type: (patient id, serial)."""
    patient = await enrol(client, admin, conditions=conditions)
    device = await register(client, admin, type=device_type)
    await assign(client, admin, device["serial"], patient["id"])
    return patient["id"], device["serial"]


async def store(
    session: AsyncSession, serial: str, device_type: str, taken: list[tuple[datetime, Any]], gateway: str = "gw-1"
) -> None:
    """Readings stored through the ingest path (which also runs the live rules on them)."""
    for at, value in taken:
        [outcome] = await ingest(
            session,
            message([reading(serial, at.isoformat(), type=device_type, value=value, unit=UNITS[device_type])], gateway),
        )
        assert [r["status"] for r in outcome.results] == ["accepted"], outcome.results


async def preview(client: httpx.AsyncClient, headers: dict[str, str], patient: str, **body: Any) -> dict[str, Any]:
    r = await client.post(f"/api/v1/patients/{patient}/thresholds/preview", headers=headers, json=body)
    assert r.status_code == 200, r.text
    return r.json()


async def alert_count(session: AsyncSession, patient: str) -> int:
    return int(await session.scalar(select(func.count()).where(Alert.patient_id == uuid.UUID(patient))) or 0)


# -- a hand-computed case -------------------------------------------------------------------


async def test_counts_and_alerts_of_a_proposal_on_stored_readings(client, tokens, session):
    admin, nurse = tokens(ORG_A, "admin"), tokens(ORG_A, "nurse")
    patient, serial = await followed_patient(client, admin, "spo2", conditions=[])
    t0 = now() - 10 * HOUR
    values = [95, 91, 90, 95, 89]
    await store(session, serial, "spo2", [(t0 + n * HOUR, v) for n, v in enumerate(values)])
    ids = [f"Observation/{o.id}" for o in await observations_of(session, patient)]

    out = await preview(client, nurse, patient, days=1, bands=PROPOSED_SPO2)

    # Proposed yellow low 92 / red low 90 (strictly outside):
    #   95 green | 91 yellow: opens 1 | 90 (not < 90) yellow: 1 again | 95 green: 1 ends | 89 red: opens 2.
    assert (out["yellow"], out["red"], out["readings"], out["days"]) == (1, 1, 5, 1)
    assert [
        (a["rule"], a["level"], parse_time(a["at"]), parse_time(a["last_reading_at"]), a["occurrences"])
        for a in out["alerts"]
    ] == [
        (SPO2_LOW, "yellow", t0 + HOUR, t0 + 2 * HOUR, 2),
        (SPO2_LOW, "red", t0 + 4 * HOUR, t0 + 4 * HOUR, 1),
    ]
    assert [(a["value"], a["unit"], a["threshold"]) for a in out["alerts"]] == [
        (90, "%", {"low": 92}),
        (89, "%", {"low": 90}),
    ]
    assert [a["observations"] for a in out["alerts"]] == [[ids[1], ids[2]], [ids[4]]]
    # In force, the general template (yellow low 94, red low 92): 91 and 90 are red (one
    # episode), 95 ends it, 89 is red again: two red alerts.
    assert out["current"] == {"yellow": 0, "red": 2}
    assert out["thresholds"][SPO2] == {"yellow": {"low": 92.0}, "red": {"low": 90.0}, "source": "override"}
    assert parse_time(out["to"]) - parse_time(out["from"]) == timedelta(days=1)
    assert abs(parse_time(out["to"]) - datetime.now(UTC)) < timedelta(minutes=1)


async def test_current_counts_use_the_thresholds_in_force(client, tokens, session):
    admin, physician = tokens(ORG_A, "admin"), tokens(ORG_A, "physician")
    patient, serial = await followed_patient(client, admin, "spo2", conditions=[])
    t0 = now() - 6 * HOUR
    await store(session, serial, "spo2", [(t0 + n * HOUR, v) for n, v in enumerate([93, 95, 87, 93])])
    r = await client.put(
        f"/api/v1/patients/{patient}/thresholds",
        headers=physician,
        json={"reason": "habitual SpO2 88-92", "bands": {SPO2: {"yellow": {"low": 88}, "red": {"low": 85}}}},
    )
    assert r.status_code == 200, r.text
    # In force, yellow 88 / red 85: only 87 is out (yellow). Proposed: the general template
    # back (null removes the override), yellow 94 / red 92: 93 yellow | 95 ends | 87 red | 93 yellow,
    # where 87 and 93 are one episode (the level stays red).
    out = await preview(client, physician, patient, days=1, bands={SPO2: None})
    assert out["current"] == {"yellow": 1, "red": 0}
    assert (out["yellow"], out["red"]) == (1, 1)
    assert [(a["level"], a["occurrences"]) for a in out["alerts"]] == [("yellow", 1), ("red", 2)]
    assert out["thresholds"][SPO2]["source"] == "template"


async def test_days_limit_the_readings_judged(client, tokens, session):
    admin = tokens(ORG_A, "admin")
    patient, serial = await followed_patient(client, admin, "spo2", conditions=[])
    t = now()
    # 89 three days ago (red), 95 two and a half days ago, 91 an hour ago (yellow).
    await store(session, serial, "spo2", [(t - 72 * HOUR, 89), (t - 60 * HOUR, 95), (t - HOUR, 91)])
    recent = await preview(client, admin, patient, days=2, bands=PROPOSED_SPO2)
    assert (recent["readings"], recent["yellow"], recent["red"]) == (1, 1, 0)
    assert [parse_time(a["at"]) for a in recent["alerts"]] == [t - HOUR]
    longer = await preview(client, admin, patient, days=4, bands=PROPOSED_SPO2)
    assert (longer["readings"], longer["yellow"], longer["red"]) == (3, 1, 1)
    assert [parse_time(a["at"]) for a in longer["alerts"]] == [t - 72 * HOUR, t - HOUR]


async def test_weights_before_the_days_are_the_trends_history(client, tokens, session):
    admin = tokens(ORG_A, "admin")
    patient, serial = await followed_patient(client, admin, "body-weight", conditions=["heart-failure"])
    t = now()
    # 80.0 sixty hours ago (before the 2 days), 82.5 an hour ago: +2.5 kg within 72 h.
    await store(session, serial, "body-weight", [(t - 60 * HOUR, 80.0), (t - HOUR, 82.5)])
    ids = [f"Observation/{o.id}" for o in await observations_of(session, patient)]
    out = await preview(client, admin, patient, days=2, weight_gain={"yellow": 2.0, "red": 3.0})
    assert out["readings"] == 1
    [alert] = out["alerts"]
    assert (alert["rule"], alert["level"], parse_time(alert["at"]), alert["value"]) == (
        WEIGHT_GAIN,
        "yellow",
        t - HOUR,
        2.5,
    )
    assert alert["threshold"] == {"gain": 2.0, "window_hours": 72}
    assert alert["observations"] == ids
    # Proposing red above 2.0 instead: the same gain is now red.
    out = await preview(client, admin, patient, days=2, weight_gain={"yellow": 1.0, "red": 2.0})
    assert (out["yellow"], out["red"]) == (0, 1)
    assert out["current"] == {"yellow": 1, "red": 0}  # the heart-failure template: yellow above 2.0


async def test_nothing_is_stored(client, tokens, session):
    admin = tokens(ORG_A, "admin")
    patient, serial = await followed_patient(client, admin, "spo2", conditions=[])
    await store(session, serial, "spo2", [(now() - 2 * HOUR, 89), (now() - HOUR, 95)])
    before = (await client.get(f"/api/v1/patients/{patient}/thresholds", headers=admin)).json()
    alerts_before = await alert_count(session, patient)

    out = await preview(client, admin, patient, days=1, bands=PROPOSED_SPO2, weight_gain={"yellow": 1.0})
    assert out["red"] == 1

    overrides = await session.scalar(select(func.count()).where(ThresholdOverride.patient_id == uuid.UUID(patient)))
    assert overrides == 0
    assert await alert_count(session, patient) == alerts_before
    after = (await client.get(f"/api/v1/patients/{patient}/thresholds", headers=admin)).json()
    assert after == before and after[SPO2]["source"] == "template"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"bands": {"1234-5": {"yellow": {"low": 1}}}}, "bands", id="unknown-code"),
        pytest.param({"bands": {SPO2: {"yellow": {"low": 90}, "red": {"low": 92}}}}, "bands", id="red-above-yellow"),
        pytest.param({"bands": {SPO2: {"yellow": {"low": 95, "high": 90}}}}, "bands", id="low-above-high"),
        pytest.param({"days": 0}, "days", id="days-0"),
        pytest.param({"days": 366}, "days", id="days-366"),
        pytest.param({"weight_gain": {"yellow": 0}}, "weight_gain", id="gain-0"),
        pytest.param({"reason": "not part of a preview"}, "reason", id="extra-field"),
    ],
)
async def test_invalid_proposals_are_422(client, tokens, body, field):
    admin = tokens(ORG_A, "admin")
    patient = await enrol(client, admin)
    r = await client.post(f"/api/v1/patients/{patient['id']}/thresholds/preview", headers=admin, json=body)
    assert_error(r, 422, field)


async def test_365_days_is_allowed(client, tokens):
    admin = tokens(ORG_A, "admin")
    patient = await enrol(client, admin)
    out = await preview(client, admin, patient["id"], days=365)
    assert (out["days"], out["readings"], out["alerts"]) == (365, 0, [])


async def test_another_organisation_gets_404(client, tokens):
    patient = await enrol(client, tokens(ORG_A, "admin"))
    for role in ("admin", "nurse"):
        r = await client.post(
            f"/api/v1/patients/{patient['id']}/thresholds/preview",
            headers=tokens(ORG_B, role),
            json={"bands": PROPOSED_SPO2},
        )
        assert_error(r, 404)
    r = await client.post(f"/api/v1/patients/{uuid.uuid4()}/thresholds/preview", headers=tokens(ORG_A), json={})
    assert_error(r, 404)


async def test_any_staff_role_of_the_care_team_may_preview_and_each_is_audited(client, tokens, session):
    patient = await enrol(client, tokens(ORG_A, "admin"))
    for role in ("nurse", "physician", "admin"):
        r = await client.post(
            f"/api/v1/patients/{patient['id']}/thresholds/preview",
            headers={**tokens(ORG_A, role, sub=f"{role}-7"), "X-Request-ID": f"req-{role}"},
            json={"bands": PROPOSED_SPO2},
        )
        assert r.status_code == 200, r.text
    records = (
        await session.execute(
            select(AuditRecord.actor_sub, AuditRecord.resource_id, AuditRecord.actor_org, AuditRecord.request_id)
            .where(
                AuditRecord.patient_id == uuid.UUID(patient["id"]),
                AuditRecord.action == "preview",
                AuditRecord.resource_type == "Thresholds",
            )
            .order_by(AuditRecord.id)
        )
    ).all()
    assert [tuple(r) for r in records] == [
        (f"{role}-7", patient["id"], ORG_A, f"req-{role}") for role in ("nurse", "physician", "admin")
    ]


# -- the cross-check against the live rules --------------------------------------------------

# The codes of a reading type's quantities: an active alert of a threshold rule on one of them
# (or the weight-gain trend, for a weight) is judged again by each reading of that type.
JUDGED = {"spo2": {SPO2}, "body-weight": {WEIGHT}, "blood-pressure": {SYSTOLIC, DIASTOLIC, HEART_RATE}}


def judged_by(rule: str, device_type: str) -> bool:
    if rule == WEIGHT_GAIN:
        return device_type == "body-weight"
    return rule.split(":")[1] in JUDGED[device_type]


async def patient_alerts(client: httpx.AsyncClient, headers: dict[str, str], patient: str, status: str) -> list[dict]:
    r = await client.get("/api/v1/alerts", headers=headers, params={"patient": patient, "status": status, "limit": 500})
    assert r.status_code == 200, r.text
    assert r.json()["next"] is None
    return r.json()["items"]


async def live_alerts(
    client: httpx.AsyncClient,
    session: AsyncSession,
    tokens: Any,
    *,
    device_type: str,
    conditions: list[str],
    proposal: dict[str, Any],
    taken: list[tuple[datetime, Any]],
) -> tuple[str, list[dict[str, Any]]]:
    """Under `proposal` (PUT by a physician), the readings stored one by one on the ingest path,
    each received as it is taken; after each, a nurse resolves every active alert of a rule the
    reading judged and did not breach. Returns the patient and every alert the rules opened."""
    admin, physician, nurse = tokens(ORG_A, "admin"), tokens(ORG_A, "physician"), tokens(ORG_A, "nurse")
    patient, serial = await followed_patient(client, admin, device_type, conditions)
    r = await client.put(
        f"/api/v1/patients/{patient}/thresholds", headers=physician, json={"reason": "tuning", **proposal}
    )
    assert r.status_code == 200, r.text
    gateway = unique("gw")
    for at, value in taken:
        body = reading(serial, at.isoformat(), type=device_type, value=value, unit=UNITS[device_type])
        [outcome] = await ingest(session, message([body], gateway, received_at=at), now=at)
        assert [x["status"] for x in outcome.results] == ["accepted"]
        for alert in await patient_alerts(client, nurse, patient, "open,acknowledged"):
            breached_now = parse_time(alert["last_reading_at"]) == at
            if judged_by(alert["rule"], device_type) and not breached_now:
                resolved = await client.post(
                    f"/api/v1/alerts/{alert['id']}/resolve",
                    headers=nurse,
                    json={"note": "back within the bands", "outcome": "no-action-needed"},
                )
                assert resolved.status_code == 200, resolved.text
    return patient, await patient_alerts(client, nurse, patient, "open,acknowledged,resolved")


def episodes(alerts: list[dict[str, Any]], opened: str) -> list[tuple[str, str, datetime, int, frozenset[str]]]:
    return sorted(
        (a["rule"], a["level"], parse_time(a[opened]), a["occurrences"], frozenset(a["observations"])) for a in alerts
    )


async def test_preview_equals_the_live_rules_on_an_spo2_series(client, tokens, session):
    t0 = now() - 30 * HOUR
    values = [95, 91, 90, 95, 89, 91, 93, 92, 88, 86, 90, 94, 91, 95, 95, 80, 92.5, 91.9]
    taken = [(t0 + n * HOUR, v) for n, v in enumerate(values)]
    patient, live = await live_alerts(
        client,
        session,
        tokens,
        device_type="spo2",
        conditions=["copd"],
        proposal={"bands": PROPOSED_SPO2},
        taken=taken,
    )
    out = await preview(client, tokens(ORG_A, "nurse"), patient, days=2, bands=PROPOSED_SPO2)
    # By hand (yellow low 92, red low 90): episodes 91-90 (yellow, 2) | 89-91 (red, 2) |
    # 88-86-90 (red, 3) | 91 (yellow, 1) | 80 (red, 1) | 91.9 (yellow, 1); 93, 92, 94, 95, 92.5 end them.
    assert [(a["level"], a["occurrences"]) for a in out["alerts"]] == [
        ("yellow", 2),
        ("red", 2),
        ("red", 3),
        ("yellow", 1),
        ("red", 1),
        ("yellow", 1),
    ]
    assert len(live) == 6
    assert episodes(live, "opened_at") == episodes(out["alerts"], "at")
    assert out["current"] == {"yellow": out["yellow"], "red": out["red"]}  # the proposal is in force


async def test_preview_equals_the_live_rules_on_a_heart_failure_weight_series(client, tokens, session):
    t0 = now() - 162 * HOUR  # the last of 14 readings 12 hours apart: 6 hours ago
    # Every 12 hours; the trend judges each weight against the lowest of the 72 h before it
    # (6 readings back, the window's start included; of equal lows, the earliest).
    values = [80.0, 81.0, 82.5, 82.6, 81.0, 83.5, 83.1, 84.0, 82.0, 82.0, 82.3, 84.9, 85.2, 83.0]
    taken = [(t0 + n * 12 * HOUR, v) for n, v in enumerate(values)]
    proposal = {"weight_gain": {"yellow": 2.0, "red": 3.0}}
    patient, live = await live_alerts(
        client,
        session,
        tokens,
        device_type="body-weight",
        conditions=["heart-failure"],
        proposal=proposal,
        taken=taken,
    )
    out = await preview(client, tokens(ORG_A, "nurse"), patient, days=7, **proposal)
    # By hand (gain above the 72 h low; yellow > 2.0, red > 3.0):
    #   80.0 | 81.0 +1.0 | 82.5 +2.5 Y opens | 82.6 +2.6 Y | 81.0 +1.0 ends | 83.5 +3.5 R opens |
    #   83.1 +3.1 R (80.0 exactly 72 h back, still in) | 84.0 +3.0 from 81.0 (80.0 fell out): not more
    #   than 3.0, so Y, the alert stays R | 82.0 +1.0 ends | 82.0 +1.0 | 82.3 +1.3 |
    #   84.9 +2.9 from 82.0 Y opens | 85.2 +3.2 R raises | 83.0 +1.0 ends.
    assert [(a["level"], a["occurrences"], a["value"]) for a in out["alerts"]] == [
        ("yellow", 2, 2.6),
        ("red", 3, 3.0),
        ("red", 2, 3.2),
    ]
    assert episodes(live, "opened_at") == episodes(out["alerts"], "at")
    assert out["current"] == {"yellow": out["yellow"], "red": out["red"]}


async def test_preview_equals_the_live_rules_on_blood_pressure_panels(client, tokens, session):
    t0 = now() - 20 * HOUR
    panels = [
        {"systolic": 185, "diastolic": 85, "pulse": 70},
        {"systolic": 150, "diastolic": 125, "pulse": 115},
        {"systolic": 165, "diastolic": 125, "pulse": 135},
        {"systolic": 150, "diastolic": 95, "pulse": 80},
        {"systolic": 190, "diastolic": 130, "pulse": 38},
    ]
    taken = [(t0 + n * 2 * HOUR, v) for n, v in enumerate(panels)]
    patient, live = await live_alerts(
        client,
        session,
        tokens,
        device_type="blood-pressure",
        conditions=["hypertension"],
        proposal={},
        taken=taken,
    )
    out = await preview(client, tokens(ORG_A, "nurse"), patient, days=1)
    # hypertension: systolic red high 179 / yellow 159, diastolic red 119 / yellow 99; pulse (general):
    # yellow high 110, red low 41 / high 130. Systolic: 185 R | 150 ends | 165 Y | 150 ends | 190 R.
    # Diastolic: 125 R, 125 R (one episode) | 95 ends | 130 R. Pulse: 115 Y, 135 R (one) | 80 ends | 38 R low.
    assert sorted((a["rule"], a["level"], a["occurrences"]) for a in out["alerts"]) == [
        (f"threshold:{DIASTOLIC}:high", "red", 1),
        (f"threshold:{DIASTOLIC}:high", "red", 2),
        (f"threshold:{SYSTOLIC}:high", "red", 1),
        (f"threshold:{SYSTOLIC}:high", "red", 1),
        (f"threshold:{SYSTOLIC}:high", "yellow", 1),
        (f"threshold:{HEART_RATE}:high", "red", 2),
        (f"threshold:{HEART_RATE}:low", "red", 1),
    ]
    assert episodes(live, "opened_at") == episodes(out["alerts"], "at")
