"""An alert's history (service.history): the stored events told as opened, raised, acknowledged,
escalated and resolved, by whom and when; the alert's columns where no event was stored.

Same world and clock as test_lifecycle (2021, inside the rolled-back `session` transaction).
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from rpm.alerts import service
from rpm.alerts.models import Alert, ResolutionOutcome
from rpm.audit.models import AuditRecord
from rpm.audit.service import Actor
from rpm.errors import NotFound
from rpm.pipeline import run_clock_rules
from tests.alerts.test_lifecycle import (
    GRACE,
    HOUR,
    MINUTE,
    MISSING_WEIGHT,
    RED_AFTER,
    T0,
    C,
    enrol,
    escalate,
    send,
    staff,
    the_alert,
    weight_patient,
)
from tests.conftest import ORG_A, ORG_B


def story(steps) -> list[tuple]:
    return [(s.kind, s.at, s.level, s.by) for s in steps]


async def test_the_whole_story_by_whom_and_when(session):
    patient = await enrol(session)
    await send(session, patient, 85, at=T0 - MINUTE)  # yellow, opened at T0
    await send(session, patient, 85, at=T0 + 5 * MINUTE - MINUTE)  # yellow again: no step of its own
    await send(session, patient, 83, at=T0 + 10 * MINUTE - MINUTE)  # red: raised
    await send(session, patient, 82, at=T0 + 12 * MINUTE - MINUTE)  # red again: no step of its own
    alert = await the_alert(session, patient.id)
    await escalate(session, T0 + 10 * MINUTE + RED_AFTER)
    await service.acknowledge(session, staff(sub="nurse-kari", name="Kari Nordmann"), alert.id, T0 + HOUR)
    await service.resolve(
        session,
        staff(sub="nurse-ola", name="Ola Nordmann"),
        alert.id,
        "Ringte, ny måling 93 %",
        T0 + 2 * HOUR,
        ResolutionOutcome.contacted_patient,
    )

    steps = await service.history(session, staff(), alert.id)
    assert story(steps) == [
        ("opened", T0, "yellow", None),
        ("raised", T0 + 10 * MINUTE, "red", None),
        ("escalated", T0 + 10 * MINUTE + RED_AFTER, "red", None),
        ("acknowledged", T0 + HOUR, "red", "nurse-kari"),
        ("resolved", T0 + 2 * HOUR, "red", "nurse-ola"),
    ]
    opened, raised, _, acknowledged, resolved = steps
    assert (opened.value, opened.unit, raised.value) == (85, "%", 83)
    assert (acknowledged.by_name, resolved.by_name) == ("Kari Nordmann", "Ola Nordmann")
    assert (resolved.note, resolved.outcome) == ("Ringte, ny måling 93 %", "contacted-patient")
    assert (acknowledged.note, acknowledged.outcome) == (None, None)


async def test_an_alert_opened_red_is_never_raised_and_a_second_acknowledgement_is_no_step(session):
    patient = await enrol(session)
    await send(session, patient, 83, at=T0 - MINUTE)
    alert = await the_alert(session, patient.id)
    await service.acknowledge(session, staff(sub="nurse-kari"), alert.id, T0 + MINUTE)
    await service.acknowledge(session, staff(sub="nurse-ola", name="Ola"), alert.id, T0 + 2 * MINUTE)
    steps = await service.history(session, staff(), alert.id)
    assert story(steps) == [("opened", T0, "red", None), ("acknowledged", T0 + MINUTE, "red", "nurse-kari")]


async def test_a_missing_measurement_resolved_by_a_reading_is_resolved_by_the_system(session):
    patient = await weight_patient(session)
    due = C + 24 * HOUR + GRACE + MINUTE
    await run_clock_rules(session, due, GRACE)
    alert = await the_alert(session, patient.id, MISSING_WEIGHT)
    await send(session, patient, 80.9, at=due + HOUR - MINUTE, reading_type="body-weight")
    steps = await service.history(session, staff(), alert.id)
    assert story(steps) == [("opened", due, "yellow", None), ("resolved", due + HOUR, "yellow", "system")]
    assert (steps[-1].note, steps[-1].outcome) == ("reading received", None)


async def test_without_stored_events_the_alerts_columns_tell_the_story(session):
    """Alerts loaded in bulk (the seeded demo database) have no events."""
    patient = await enrol(session)
    alert = Alert(
        id=uuid.uuid4(),
        patient_id=patient.id,
        rule="threshold:59408-5:low",
        level="red",
        status="resolved",
        escalated=True,
        escalated_at=T0 + 30 * MINUTE,
        late=False,
        opened_at=T0,
        raised_at=T0 + 10 * MINUTE,
        last_reading_at=T0 + 10 * MINUTE,
        occurrences=2,
        value=83,
        unit="%",
        threshold={"low": 84},
        thresholds_version=0,
        acknowledged_by="nurse-kari",
        acknowledged_by_name="Kari Nordmann",
        acknowledged_at=T0 + HOUR,
        resolved_by="nurse-ola",
        resolved_by_name="Ola Nordmann",
        resolved_at=T0 + 2 * HOUR,
        note="Fulgt opp",
        outcome="advice-given",
        updated_at=T0 + 2 * HOUR,
    )
    session.add(alert)
    await session.flush()
    steps = await service.history(session, staff(), alert.id)
    assert story(steps) == [
        ("opened", T0, "yellow", None),
        ("raised", T0 + 10 * MINUTE, "red", None),
        ("escalated", T0 + 30 * MINUTE, "red", None),
        ("acknowledged", T0 + HOUR, "red", "nurse-kari"),
        ("resolved", T0 + 2 * HOUR, "red", "nurse-ola"),
    ]
    assert (steps[3].by_name, steps[4].by_name, steps[4].note, steps[4].outcome) == (
        "Kari Nordmann",
        "Ola Nordmann",
        "Fulgt opp",
        "advice-given",
    )


async def test_reading_the_history_is_audited_and_another_organisation_gets_not_found(session):
    patient = await enrol(session, ORG_A)
    await send(session, patient, 83, at=T0 - MINUTE)
    alert = await the_alert(session, patient.id)
    reader = Actor(staff=staff(ORG_A).staff, request_id=f"req-{uuid.uuid4().hex}")
    await service.history(session, reader, alert.id)
    [audited] = await session.scalars(select(AuditRecord).where(AuditRecord.request_id == reader.request_id))
    assert (audited.action, audited.resource_type, audited.resource_id, audited.patient_id) == (
        "read",
        "AlertHistory",
        str(alert.id),
        patient.id,
    )

    outsider = Actor(staff=staff(ORG_B, sub="nurse-b").staff, request_id=f"req-{uuid.uuid4().hex}")
    for alert_id in (alert.id, uuid.uuid4()):
        with pytest.raises(NotFound):
            await service.history(session, outsider, alert_id)
    assert not list(await session.scalars(select(AuditRecord).where(AuditRecord.request_id == outsider.request_id)))
