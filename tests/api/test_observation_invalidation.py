"""`POST /api/v1/observations/{id}/entered-in-error` (issue 11, item 6) over ASGI: the answer,
a malformed body, another organisation, twice, the FHIR facade and the alert's detail after it,
the audit trail. The rules' side of it: tests/observations/test_invalidation.py.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from rpm.alerts.models import Alert, AlertEvent
from rpm.audit.models import AuditRecord
from rpm.observations.models import Observation
from tests.alerts.test_lifecycle import MINUTE, T0, enrol, send, the_alert
from tests.conftest import ORG_A, ORG_B
from tests.rules.test_early_warning import VITAL_DEVICES, news2_alerts, scores_of
from tests.rules.test_early_warning import send as send_vital

REASON = "the patient forgot the cuff"


def path(observation_id: uuid.UUID | str) -> str:
    return f"/api/v1/observations/{observation_id}/entered-in-error"


async def test_marking_a_reading_answers_what_was_done(client, session, tokens):
    patient = await enrol(session, ORG_A)
    observation_id = await send(session, patient, 83, at=T0)  # red: one alert on this reading alone
    alert_id = (await the_alert(session, patient.id)).id
    nurse = tokens(ORG_A, "nurse", sub="nurse-kari")

    r = await client.post(path(observation_id), headers=nurse, json={"reason": f"  {REASON} "})

    assert r.status_code == 200, r.text
    body = r.json()
    assert body["invalidated_at"]
    assert {k: v for k, v in body.items() if k != "invalidated_at"} == {
        "observation": f"Observation/{observation_id}",
        "by": "nurse-kari",
        "by_name": body["by_name"],
        "reason": REASON,  # as written, without the spaces around it
        "also_invalidated": [],
        "alerts_resolved": [str(alert_id)],
    }
    alert = await session.scalar(select(Alert).where(Alert.id == alert_id).execution_options(populate_existing=True))
    assert (alert.status, alert.resolved_by, alert.note) == (
        "resolved",
        "system",
        f"reading entered in error: {REASON}",
    )
    events = (await session.scalars(select(AlertEvent.kind).where(AlertEvent.alert_id == alert_id))).all()
    assert list(events) == ["opened", "resolved"]
    actions = (
        await session.execute(
            select(AuditRecord.action, AuditRecord.resource_type, AuditRecord.resource_id, AuditRecord.actor_sub)
            .where(AuditRecord.patient_id == patient.id)
            .order_by(AuditRecord.id)
        )
    ).all()
    assert [tuple(a) for a in actions] == [
        ("invalidate", "Observation", str(observation_id), "nurse-kari"),
        ("resolve", "Alert", str(alert_id), "nurse-kari"),
    ]

    # The FHIR facade still serves it, read and search, as entered in error.
    read = await client.get(f"/fhir/Observation/{observation_id}", headers=nurse)
    assert read.status_code == 200 and read.json()["status"] == "entered-in-error"
    search = await client.get("/fhir/Observation", params={"patient": str(patient.id)}, headers=nurse)
    assert [e["resource"]["status"] for e in search.json()["entry"]] == ["entered-in-error"]
    # The alert's detail marks the reading.
    detail = (await client.get(f"/api/v1/alerts/{alert_id}", headers=nurse)).json()
    [evidence] = detail["evidence"]
    assert evidence["entered_in_error"]["reason"] == REASON
    assert evidence["entered_in_error"]["by"] == "nurse-kari"
    # The dashboard no longer shows it.
    board = (await client.get(f"/api/v1/patients/{patient.id}/dashboard", headers=nurse)).json()
    assert board["latest"] == [] and board["active_alerts"] == []


async def test_a_physician_and_an_admin_may_mark_one_too(client, session, tokens):
    patient = await enrol(session, ORG_A)
    for role in ("physician", "admin"):
        observation_id = await send(session, patient, 95, at=T0 + (1 if role == "admin" else 0) * MINUTE)
        r = await client.post(path(observation_id), headers=tokens(ORG_A, role), json={"reason": REASON})
        assert r.status_code == 200, (role, r.text)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"reason": ""},
        {"reason": "   "},
        {"reason": "x" * 501},
        {"reason": None},
        {"reason": REASON, "also": "this"},
        ["reason"],
    ],
)
async def test_a_malformed_body_is_refused_with_422_and_changes_nothing(client, session, tokens, body):
    patient = await enrol(session, ORG_A)
    observation_id = await send(session, patient, 83, at=T0)
    await session.commit()  # kept when the refused request rolls back to the test's savepoint
    r = await client.post(path(observation_id), headers=tokens(ORG_A, "nurse"), json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]
    stored = await session.scalar(
        select(Observation).where(Observation.id == observation_id).execution_options(populate_existing=True)
    )
    assert stored.invalidated_at is None and stored.resource["status"] == "final"


async def test_the_longest_reason_is_taken(client, session, tokens):
    patient = await enrol(session, ORG_A)
    observation_id = await send(session, patient, 95, at=T0)
    r = await client.post(path(observation_id), headers=tokens(ORG_A, "nurse"), json={"reason": "x" * 500})
    assert r.status_code == 200, r.text


async def test_another_organisation_and_an_unknown_id_get_404(client, session, tokens):
    patient = await enrol(session, ORG_A)
    observation_id = await send(session, patient, 83, at=T0)
    await session.commit()  # kept when a refused request rolls back to the test's savepoint
    for key, headers in ((observation_id, tokens(ORG_B, "nurse")), (uuid.uuid4(), tokens(ORG_A, "nurse"))):
        r = await client.post(path(key), headers=headers, json={"reason": REASON})
        assert r.status_code == 404, r.text
        assert r.json()["error"] == "not_found"
        assert str(observation_id) not in r.text
    assert (await the_alert(session, patient.id)).status == "open"


async def test_marking_it_twice_is_409(client, session, tokens):
    patient = await enrol(session, ORG_A)
    observation_id = await send(session, patient, 95, at=T0)
    first = await client.post(path(observation_id), headers=tokens(ORG_A, "nurse"), json={"reason": REASON})
    assert first.status_code == 200
    await session.commit()  # kept when the refused request rolls back to the test's savepoint
    again = await client.post(path(observation_id), headers=tokens(ORG_A, "nurse"), json={"reason": "again"})
    assert again.status_code == 409, again.text
    assert again.json()["error"] == "already_invalidated"
    stored = await session.scalar(
        select(Observation).where(Observation.id == observation_id).execution_options(populate_existing=True)
    )
    assert stored.invalidation_reason == REASON


async def test_marking_an_input_of_a_news2_score_marks_the_score_and_judges_its_alert_again(client, session, tokens):
    """The score stands or falls with its readings: it is marked with the input's reason behind
    the service's words, its alert (on this score alone) is resolved, and the FHIR facade
    serves it as entered in error. The readings it did not come from stay."""
    patient = await enrol(session, ORG_A, conditions=(), devices=VITAL_DEVICES)
    await send_vital(session, patient, "respiratory-rate", 24, T0)  # 2
    await send_vital(session, patient, "spo2", 95, T0 + MINUTE)  # 1
    await send_vital(
        session, patient, "blood-pressure", {"systolic": 105, "diastolic": 70, "pulse": 115}, T0 + 2 * MINUTE
    )  # 1 + 2: 6, yellow
    [score] = await scores_of(session, patient.id)
    [news2_alert] = await news2_alerts(session, patient.id)
    # SpO2 95 % is within its bands: no alert of its own, only the score's rests on it.
    spo2 = await session.scalar(
        select(Observation).where(Observation.patient_id == patient.id, Observation.code == "59408-5")
    )
    nurse = tokens(ORG_A, "nurse", sub="nurse-kari")

    r = await client.post(path(spo2.id), headers=nurse, json={"reason": "probe on a cold finger"})

    assert r.status_code == 200, r.text
    body = r.json()
    assert body["also_invalidated"] == [f"Observation/{score.id}"]
    assert body["alerts_resolved"] == [str(news2_alert.id)]
    stored = await session.scalar(
        select(Observation).where(Observation.id == score.id).execution_options(populate_existing=True)
    )
    assert stored.invalidation_reason == "an input reading was entered in error: probe on a cold finger"
    read = await client.get(f"/fhir/Observation/{score.id}", headers=nurse)
    assert read.json()["status"] == "entered-in-error"
    [alert] = await news2_alerts(session, patient.id)
    assert (alert.status, alert.note) == ("resolved", "reading entered in error: probe on a cold finger")
    others = await session.scalars(
        select(Observation.invalidated_at).where(
            Observation.patient_id == patient.id, Observation.device_id.is_not(None), Observation.code != "59408-5"
        )
    )
    assert set(others) == {None}
    # The score leaves the trend of the scores.
    trend = await client.get(
        f"/api/v1/patients/{patient.id}/trends",
        params={"code": "1104051000000101", "bucket": "raw", "from": "2021-06-01", "to": "2021-06-02"},
        headers=nurse,
    )
    assert trend.status_code == 200, trend.text
    assert trend.json()["buckets"] == []
