"""The core behind the course and thresholds pages: a patient's alerts with their triggering
readings in a period (`trends.service.alerts_in_period`), the quantities of named Observations
(`trends.service.readings_of`), and the thresholds with the history of their overrides
(`rules.service.thresholds_record`, `rules.thresholds.override_changes`).

Proves: evidence outside the period is left out and alerts of any status count; a blood
pressure alert's readings carry the component's value and code; the weight-gain trend's are
weights; another organisation gets NotFound and nothing of another patient leaks; each read is
audited; each version's changes against the one before, removals included; the version that
last changed each override; templates beside overrides.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access.staff import Role, Staff
from rpm.alerts.models import Alert
from rpm.audit.models import AuditRecord
from rpm.audit.service import Actor
from rpm.errors import NotFound
from rpm.rules import service as rules
from rpm.rules.schemas import QuantityBandsIn, ThresholdsChange, WeightGainIn
from rpm.rules.thresholds import override_changes
from rpm.trends import service as trends
from tests.api.helpers import ingest, message, observations_of, reading
from tests.conftest import ORG_A, ORG_B
from tests.fixtures.world import add_patient_with_devices

SPO2, SYSTOLIC, DIASTOLIC, WEIGHT = "59408-5", "8480-6", "8462-4", "29463-7"
HOUR = timedelta(hours=1)
UNITS = {"spo2": "%", "blood-pressure": "mm[Hg]", "body-weight": "kg"}


def staff(org: str = ORG_A, *roles: Role, sub: str = "physician-1") -> Actor:
    return Actor(Staff(sub=sub, name="Dr. Lege", hpr="7654321", orgnr=org, roles=frozenset(roles or {Role.physician})))


async def patient_with(
    session: AsyncSession, device_type: str, conditions: list[str] | None = None
) -> tuple[uuid.UUID, str]:
    patient_id, [device] = await add_patient_with_devices(session, ORG_A, [device_type], conditions=conditions or [])
    return patient_id, device.serial


async def store(session: AsyncSession, serial: str, device_type: str, taken: list[tuple[datetime, Any]]) -> None:
    for at, value in taken:
        [outcome] = await ingest(
            session, message([reading(serial, at.isoformat(), type=device_type, value=value, unit=UNITS[device_type])])
        )
        assert [r["status"] for r in outcome.results] == ["accepted"], outcome.results


async def audits(session: AsyncSession, patient_id: uuid.UUID, action: str, resource: str) -> int:
    return int(
        await session.scalar(
            select(func.count()).where(
                AuditRecord.patient_id == patient_id,
                AuditRecord.action == action,
                AuditRecord.resource_type == resource,
            )
        )
        or 0
    )


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


# -- alerts in a period -------------------------------------------------------------------


async def test_alerts_in_period_carry_their_readings_taken_in_it(session):
    patient_id, serial = await patient_with(session, "spo2")
    t = now() - 10 * HOUR
    # General template: red below 92. 90 at t opens a red alert, 89 two hours later adds to it.
    await store(session, serial, "spo2", [(t, 90), (t + HOUR, 96), (t + 2 * HOUR, 89)])
    actor = staff()

    [alert] = await trends.alerts_in_period(session, actor, patient_id, start=t - HOUR, end=now())
    assert (alert.rule, alert.code, alert.level, alert.status) == (f"threshold:{SPO2}:low", SPO2, "red", "open")
    assert [(e.value, e.effective_at) for e in alert.evidence] == [(90, t), (89, t + 2 * HOUR)]
    assert all(e.observation.startswith("Observation/") for e in alert.evidence)

    # A period holding only the second reading marks only it; one before both marks nothing.
    [later] = await trends.alerts_in_period(session, actor, patient_id, start=t + HOUR, end=now())
    assert [e.value for e in later.evidence] == [89]
    assert await trends.alerts_in_period(session, actor, patient_id, start=t - 5 * HOUR, end=t) == []

    # Resolved alerts are still the course's.
    stored = await session.scalar(select(Alert).where(Alert.patient_id == patient_id))
    assert stored is not None
    stored.status, stored.note, stored.resolved_at = "resolved", "called", now()
    await session.flush()
    [resolved] = await trends.alerts_in_period(session, actor, patient_id, start=t - HOUR, end=now())
    assert resolved.status == "resolved"
    assert await audits(session, patient_id, "search", "Alert") == 4


async def test_a_blood_pressure_alert_marks_its_component(session):
    patient_id, serial = await patient_with(session, "blood-pressure", ["hypertension"])
    t = now() - 3 * HOUR
    # Hypertension: systolic red above 179; the diastolic 95 is within its yellow (99).
    await store(session, serial, "blood-pressure", [(t, {"systolic": 185, "diastolic": 95})])
    [alert] = await trends.alerts_in_period(session, staff(), patient_id, start=t - HOUR, end=now())
    assert (alert.rule, alert.code, [e.value for e in alert.evidence]) == (
        f"threshold:{SYSTOLIC}:high",
        SYSTOLIC,
        [185],
    )


async def test_weight_gain_marks_the_weights(session):
    patient_id, serial = await patient_with(session, "body-weight", ["heart-failure"])
    t = now() - 30 * HOUR
    await store(session, serial, "body-weight", [(t, 80.0), (t + 24 * HOUR, 82.5)])
    [alert] = await trends.alerts_in_period(session, staff(), patient_id, start=t - HOUR, end=now())
    assert (alert.rule, alert.code, alert.level) == ("trend:weight-gain", WEIGHT, "yellow")
    assert sorted((e.effective_at, e.value) for e in alert.evidence) == [(t, 80.0), (t + 24 * HOUR, 82.5)]


async def test_another_organisation_sees_no_alerts(session):
    patient_id, serial = await patient_with(session, "spo2")
    await store(session, serial, "spo2", [(now() - HOUR, 85)])
    with pytest.raises(NotFound):
        await trends.alerts_in_period(session, staff(ORG_B), patient_id, start=now() - 2 * HOUR, end=now())
    with pytest.raises(NotFound):
        await trends.readings_of(session, staff(ORG_B), patient_id, [])


async def test_readings_of_gives_the_named_observations_of_the_patient_only(session):
    patient_id, serial = await patient_with(session, "blood-pressure")
    other_id, other_serial = await patient_with(session, "spo2")
    t = now() - 2 * HOUR
    await store(session, serial, "blood-pressure", [(t, {"systolic": 130, "diastolic": 80})])
    await store(session, other_serial, "spo2", [(t, 97)])
    assert await trends.readings_of(session, staff(), other_id, []) == []
    [bp] = await observations_of(session, str(patient_id))
    [spo2] = await observations_of(session, str(other_id))
    points = await trends.readings_of(session, staff(), patient_id, [f"Observation/{bp.id}", f"Observation/{spo2.id}"])
    assert sorted((p.code, p.value) for p in points) == [(DIASTOLIC, 80), (SYSTOLIC, 130)]
    assert {p.observation for p in points} == {f"Observation/{bp.id}"}
    assert all(p.effective_at == t for p in points)
    assert await audits(session, patient_id, "read", "Observation") == 1


# -- thresholds and their history -----------------------------------------------------------


def test_override_changes_name_what_each_version_changed():
    spo2 = {"yellow": {"low": 90}, "red": {"low": 88}}
    assert override_changes(None, None, {SPO2: spo2}, None) == [(SPO2, None, spo2)]
    assert override_changes({SPO2: spo2}, None, {SPO2: spo2}, {"yellow": 1.5, "red": None, "window_hours": 72}) == [
        ("weight_gain", None, {"yellow": 1.5, "red": None, "window_hours": 72})
    ]
    assert override_changes({SPO2: spo2, WEIGHT: {}}, None, {WEIGHT: {}}, None) == [(SPO2, spo2, None)]
    assert override_changes({SPO2: spo2}, None, {SPO2: spo2}, None) == []


async def test_thresholds_record_tells_sources_versions_and_changes(session):
    patient_id, _ = await patient_with(session, "spo2", ["copd", "heart-failure"])
    physician = staff()
    empty = await rules.thresholds_record(session, physician, patient_id)
    assert empty.history == [] and empty.set_in == {}
    assert empty.thresholds.root[SPO2].source == "template"
    assert empty.thresholds.root[SPO2].templates == ["general", "copd"]

    spo2 = QuantityBandsIn.model_validate({"yellow": {"low": 90}, "red": {"low": 88}})
    systolic = QuantityBandsIn.model_validate({"yellow": {"high": 150}, "red": {"high": 170}})
    await rules.change_thresholds(
        session, physician, patient_id, ThresholdsChange(reason="habitual 88-92", bands={SPO2: spo2})
    )
    await rules.change_thresholds(
        session,
        staff(sub="physician-2"),
        patient_id,
        ThresholdsChange(reason="hypertensive", bands={SYSTOLIC: systolic}, weight_gain=WeightGainIn(yellow=1.5)),
    )
    await rules.change_thresholds(
        session, physician, patient_id, ThresholdsChange(reason="back to normal", bands={SYSTOLIC: None})
    )

    found = await rules.thresholds_record(session, physician, patient_id)
    assert [(v.version, v.reason, v.changed_by_sub) for v in found.history] == [
        (3, "back to normal", "physician-1"),
        (2, "hypertensive", "physician-2"),
        (1, "habitual 88-92", "physician-1"),
    ]
    assert all(v.changed_by_org == ORG_A and v.changed_by_name == "Dr. Lege" for v in found.history)
    assert [(c.key, c.before, c.after) for c in found.history[2].changes] == [
        (SPO2, None, {"yellow": {"low": 90.0}, "red": {"low": 88.0}})
    ]
    assert [(c.key, c.before is None) for c in found.history[1].changes] == [(SYSTOLIC, True), ("weight_gain", True)]
    assert [(c.key, c.after) for c in found.history[0].changes] == [(SYSTOLIC, None)]
    # SpO2's override came from version 1 and the weight gain's from 2; systolic's is gone.
    assert found.set_in == {SPO2: 1, "weight_gain": 2}
    assert found.thresholds.root[SPO2].source == "override"
    assert found.thresholds.root[SYSTOLIC].source == "template"
    assert found.thresholds.root["weight_gain"].source == "override"
    # What the conditions alone give, beside the override.
    assert found.templates.root[SPO2].yellow == {"low": 86} and found.templates.root[SPO2].source == "template"
    assert await audits(session, patient_id, "read", "Thresholds") == 2


async def test_thresholds_record_of_another_organisation_is_not_found(session):
    patient_id, _ = await patient_with(session, "spo2")
    with pytest.raises(NotFound):
        await rules.thresholds_record(session, staff(ORG_B), patient_id)
