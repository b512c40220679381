"""Readings entered in error (issue 11, item 6): staff mark an Observation as a mistake with a
reason; it keeps its history (FHIR status `entered-in-error`), leaves trends, the dashboard and
the rules, what was derived from it goes with it, and the alerts it raised are judged again.

Service level, against the real PostgreSQL in the rolled-back `session`; the readings go
through the ingest pipeline as a gateway sends them. The clock is in 2021, as in
tests/alerts/test_lifecycle.py (the clock rules sweep every patient in the database).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from rpm.alerts import service as alerts
from rpm.alerts.models import Alert
from rpm.audit.models import AuditRecord
from rpm.errors import Conflict, NotFound
from rpm.observations import service
from rpm.observations.models import Observation
from rpm.pipeline import run_clock_rules
from rpm.rules import early_warning, news2
from rpm.rules.schemas import ThresholdsPreviewIn
from rpm.rules.service import preview_thresholds
from rpm.trends import service as trends
from tests.alerts.test_lifecycle import (
    GRACE,
    HOUR,
    MINUTE,
    SPO2_LOW,
    T0,
    alerts_of,
    enrol,
    kinds_of,
    send,
    staff,
    the_alert,
)
from tests.conftest import ORG_B
from tests.fixtures.waiting import wait_until
from tests.rules.test_early_warning import VITAL_DEVICES, scores_of
from tests.rules.test_early_warning import send as send_vital

FORGOT_CUFF = "the patient forgot the cuff"
ON_THE_SCALE = "a child stood on the scale"
WEIGHT_GAIN = "trend:weight-gain"
HEART_RATE_HIGH = "threshold:8867-4:high"


async def fresh(session, model: type, key: uuid.UUID):
    return await session.scalar(select(model).where(model.id == key).execution_options(populate_existing=True))


async def audit_of(session, resource_id: uuid.UUID) -> list[tuple[str, str, str]]:
    rows = await session.execute(
        select(AuditRecord.action, AuditRecord.resource_type, AuditRecord.actor_sub).where(
            AuditRecord.resource_id == str(resource_id)
        )
    )
    return [tuple(row) for row in rows]


async def panel_and_pulse(session, patient_id: uuid.UUID) -> tuple[Observation, Observation]:
    """The Observations of the patient's one blood-pressure reading: the panel and its pulse."""
    found = {
        o.code: o
        for o in await session.scalars(
            select(Observation).where(Observation.patient_id == patient_id, Observation.code.in_(["85354-9", "8867-4"]))
        )
    }
    return found["85354-9"], found["8867-4"]


# -- the reading itself ------------------------------------------------------------------------


async def test_the_reading_keeps_its_history_marked_entered_in_error(session):
    patient = await enrol(session, conditions=["copd"])
    observation_id = await send(session, patient, 95, at=T0)
    before = dict((await fresh(session, Observation, observation_id)).resource)
    nurse = staff(sub="nurse-kari", name="Kari Nordmann")

    answer = await service.invalidate(session, nurse, observation_id, FORGOT_CUFF, T0 + HOUR)

    assert answer.observation == f"Observation/{observation_id}"
    assert (answer.invalidated_at, answer.by, answer.by_name, answer.reason) == (
        T0 + HOUR,
        "nurse-kari",
        "Kari Nordmann",
        FORGOT_CUFF,
    )
    assert (answer.also_invalidated, answer.alerts_resolved) == ([], [])
    stored = await fresh(session, Observation, observation_id)
    assert (stored.invalidated_at, stored.invalidated_by_sub, stored.invalidated_by_name) == (
        T0 + HOUR,
        "nurse-kari",
        "Kari Nordmann",
    )
    assert stored.invalidation_reason == FORGOT_CUFF
    # The stored resource: the status changed, everything else as it was, in its order.
    assert stored.resource == before | {"status": "entered-in-error"}
    assert list(stored.resource) == list(before)
    assert before["status"] == "final"
    # The FHIR facade still serves it, read and search, with its new status.
    assert (await service.read_observation(session, nurse, observation_id))["status"] == "entered-in-error"
    found = await service.search_observations(
        session, nurse, patient_id=patient.id, codes=None, dates=[], newest_first=True, after=None, limit=10
    )
    assert [(o.id, o.resource["status"]) for o in found] == [(observation_id, "entered-in-error")]
    assert ("invalidate", "Observation", "nurse-kari") in await audit_of(session, observation_id)


async def test_marking_it_again_is_a_conflict_and_changes_nothing(session):
    patient = await enrol(session, conditions=["copd"])
    observation_id = await send(session, patient, 95, at=T0)
    await service.invalidate(session, staff(sub="first"), observation_id, FORGOT_CUFF, T0 + HOUR)
    with pytest.raises(Conflict) as refused:
        await service.invalidate(session, staff(sub="second"), observation_id, ON_THE_SCALE, T0 + 2 * HOUR)
    assert refused.value.code == "already_invalidated"
    stored = await fresh(session, Observation, observation_id)
    assert (stored.invalidated_by_sub, stored.invalidation_reason, stored.invalidated_at) == (
        "first",
        FORGOT_CUFF,
        T0 + HOUR,
    )


async def test_another_organisation_s_staff_and_an_unknown_id_get_not_found(session):
    patient = await enrol(session, conditions=["copd"])
    observation_id = await send(session, patient, 83, at=T0)
    for actor, key in ((staff(ORG_B, sub="nurse-b"), observation_id), (staff(), uuid.uuid4())):
        with pytest.raises(NotFound) as refused:
            await service.invalidate(session, actor, key, FORGOT_CUFF, T0 + HOUR)
        assert refused.value.code == "not_found"
    stored = await fresh(session, Observation, observation_id)
    assert stored.invalidated_at is None and stored.resource["status"] == "final"
    assert (await the_alert(session, patient.id)).status == "open"
    assert await audit_of(session, observation_id) == []


# -- the alerts it raised ------------------------------------------------------------------------


async def test_an_alert_whose_only_reading_is_invalidated_is_resolved_with_the_reason(session):
    patient = await enrol(session, conditions=["copd"])
    observation_id = await send(session, patient, 83, at=T0)  # red on the COPD template
    alert = await the_alert(session, patient.id)
    await alerts.acknowledge(session, staff(), alert.id, T0 + 5 * MINUTE)

    answer = await service.invalidate(session, staff(sub="nurse-kari"), observation_id, FORGOT_CUFF, T0 + HOUR)

    assert answer.alerts_resolved == [alert.id]
    resolved = await fresh(session, Alert, alert.id)
    assert (resolved.status, resolved.resolved_by, resolved.resolved_at) == ("resolved", "system", T0 + HOUR)
    assert resolved.note == f"reading entered in error: {FORGOT_CUFF}"
    assert resolved.outcome is None
    # What it was is kept: level, count and value.
    assert (resolved.level, resolved.occurrences, resolved.value) == ("red", 1, 83)
    assert await kinds_of(session, alert.id) == ["opened", "changed", "resolved"]
    assert ("resolve", "Alert", "nurse-kari") in await audit_of(session, alert.id)
    history = await alerts.history(session, staff(), alert.id)
    assert [(s.kind, s.by, s.note) for s in history][-1] == ("resolved", "system", resolved.note)
    # The next breach opens a new alert.
    await send(session, patient, 83, at=T0 + 2 * HOUR)
    assert [a.status for a in await alerts_of(session, patient.id, SPO2_LOW)] == ["resolved", "open"]


async def test_an_alert_with_a_valid_reading_left_stays_as_it_is(session):
    patient = await enrol(session, conditions=["copd"])
    first = await send(session, patient, 85, at=T0)
    second = await send(session, patient, 83, at=T0 + 10 * MINUTE)
    alert = await the_alert(session, patient.id)
    assert (alert.level, alert.occurrences, alert.value) == ("red", 2, 83)

    answer = await service.invalidate(session, staff(), first, FORGOT_CUFF, T0 + HOUR)

    assert answer.alerts_resolved == []
    kept = await fresh(session, Alert, alert.id)
    assert (kept.status, kept.level, kept.occurrences, kept.value) == ("open", "red", 2, 83)
    assert await kinds_of(session, alert.id) == ["opened", "changed"]
    # Its detail marks the invalid reading, and only that one.
    detail = await alerts.detail(session, staff(), alert.id)
    marks = {e.observation: e.entered_in_error for e in detail.evidence}
    assert marks[f"Observation/{second}"] is None
    mark = marks[f"Observation/{first}"]
    assert mark is not None and (mark.at, mark.by, mark.reason) == (T0 + HOUR, "nurse-kari", FORGOT_CUFF)

    # Once the other reading goes too, nothing is left behind it.
    answer = await service.invalidate(session, staff(), second, ON_THE_SCALE, T0 + 2 * HOUR)
    assert answer.alerts_resolved == [alert.id]
    assert (await fresh(session, Alert, alert.id)).note == f"reading entered in error: {ON_THE_SCALE}"


async def test_a_resolved_alert_is_left_alone(session):
    patient = await enrol(session, conditions=["copd"])
    observation_id = await send(session, patient, 83, at=T0)
    alert = await the_alert(session, patient.id)
    await alerts.resolve(session, staff(), alert.id, "Called; fine", T0 + 5 * MINUTE)
    answer = await service.invalidate(session, staff(), observation_id, FORGOT_CUFF, T0 + HOUR)
    assert answer.alerts_resolved == []
    resolved = await fresh(session, Alert, alert.id)
    assert (resolved.note, resolved.resolved_by) == ("Called; fine", "nurse-kari")
    assert await kinds_of(session, alert.id) == ["opened", "resolved"]


# -- what was derived from it ------------------------------------------------------------------


async def test_a_blood_pressure_takes_its_pulse_and_the_news2_score_with_it(session):
    patient = await enrol(session, conditions=(), devices=VITAL_DEVICES)
    await send_vital(session, patient, "respiratory-rate", 24, T0)  # 2
    await send_vital(session, patient, "spo2", 95, T0 + MINUTE)  # 1
    await send_vital(
        session, patient, "blood-pressure", {"systolic": 105, "diastolic": 70, "pulse": 115}, T0 + 2 * MINUTE
    )
    [score] = await scores_of(session, patient.id)  # 6: yellow
    panel, pulse = await panel_and_pulse(session, patient.id)
    news2_alert = (await alerts_of(session, patient.id, early_warning.RULE))[0]
    pulse_alert = await the_alert(session, patient.id, HEART_RATE_HIGH)  # 115 is over 110: yellow

    answer = await service.invalidate(session, staff(), panel.id, FORGOT_CUFF, T0 + HOUR)

    assert sorted(answer.also_invalidated) == sorted([f"Observation/{pulse.id}", f"Observation/{score.id}"])
    # The pulse is the same cuff measurement: the same reason. The score fell with an input.
    for observation_id, reason in (
        (panel.id, FORGOT_CUFF),
        (pulse.id, FORGOT_CUFF),
        (score.id, service.INPUT_IN_ERROR + FORGOT_CUFF),
    ):
        stored = await fresh(session, Observation, observation_id)
        assert stored.resource["status"] == "entered-in-error" and stored.invalidation_reason == reason
        assert ("invalidate", "Observation", "nurse-kari") in await audit_of(session, observation_id)
    assert sorted(answer.alerts_resolved) == sorted([news2_alert.id, pulse_alert.id])
    for alert_id in answer.alerts_resolved:
        assert (await fresh(session, Alert, alert_id)).status == "resolved"
    # The readings it did not come from are untouched.
    others = await session.scalars(
        select(Observation).where(Observation.patient_id == patient.id, Observation.code.in_(["9279-1", "59408-5"]))
    )
    assert [o.invalidated_at for o in others] == [None, None]


async def test_the_pulse_alone_leaves_its_blood_pressure_but_takes_the_score(session):
    patient = await enrol(session, conditions=(), devices=VITAL_DEVICES)
    await send_vital(session, patient, "respiratory-rate", 24, T0)
    await send_vital(session, patient, "spo2", 95, T0 + MINUTE)
    await send_vital(
        session, patient, "blood-pressure", {"systolic": 105, "diastolic": 70, "pulse": 115}, T0 + 2 * MINUTE
    )
    [score] = await scores_of(session, patient.id)
    panel, pulse = await panel_and_pulse(session, patient.id)
    answer = await service.invalidate(session, staff(), pulse.id, "counted an irregular rhythm", T0 + HOUR)
    assert answer.also_invalidated == [f"Observation/{score.id}"]
    assert (await fresh(session, Observation, panel.id)).invalidated_at is None
    assert (await fresh(session, Observation, score.id)).invalidated_at is not None
    assert score.code == news2.NEWS2_TOTAL_CODE


async def test_a_later_news2_score_leaves_an_invalidated_reading_out(session):
    patient = await enrol(session, conditions=(), devices=VITAL_DEVICES)
    await send_vital(session, patient, "respiratory-rate", 24, T0)  # 2
    _, [result] = await send_vital(session, patient, "spo2", 85, T0 + MINUTE)  # 3
    spo2 = await session.scalar(
        select(Observation).where(Observation.patient_id == patient.id, Observation.code == "59408-5")
    )
    assert result["status"] == "accepted"
    await service.invalidate(session, staff(), spo2.id, "probe on a cold finger", T0 + 2 * MINUTE)
    await send_vital(session, patient, "body-temperature", 38.5, T0 + 3 * MINUTE)  # 1
    # Respiration and temperature: two parameters, too few for a score without the SpO2.
    assert await scores_of(session, patient.id) == []


# -- the rules and the course leave it out -----------------------------------------------------


async def test_the_weight_gain_trend_judges_a_later_weight_without_it(session):
    marked = await enrol(session, conditions=["heart-failure"], devices=["body-weight"])
    control = await enrol(session, conditions=["heart-failure"], devices=["body-weight"])
    for patient in (marked, control):
        # 78.0 is a mistake; 80.0 an hour later is the patient's weight (+2.0: not more than 2.0).
        wrong = await send(session, patient, 78.0, at=T0, reading_type="body-weight")
        await send(session, patient, 80.0, at=T0 + HOUR, reading_type="body-weight")
        if patient is marked:
            await service.invalidate(session, staff(), wrong, ON_THE_SCALE, T0 + 2 * HOUR)
        await send(session, patient, 80.5, at=T0 + 24 * HOUR, reading_type="body-weight")
    # Against 78.0 the gain is 2.5 kg: the control patient's alert; against 80.0 it is 0.5 kg.
    [alert] = await alerts_of(session, control.id, WEIGHT_GAIN)
    assert alert.value == pytest.approx(2.5)
    assert await alerts_of(session, marked.id, WEIGHT_GAIN) == []


async def test_an_invalidated_reading_is_no_measurement_done(session):
    plan = {"body-weight": 24}
    created = T0 - timedelta(days=10)
    marked = await enrol(session, conditions=["heart-failure"], devices=["body-weight"], plan=plan, created_at=created)
    control = await enrol(session, conditions=["heart-failure"], devices=["body-weight"], plan=plan, created_at=created)
    for patient in (marked, control):
        reading = await send(session, patient, 80.0, at=T0, reading_type="body-weight")
        if patient is marked:
            await service.invalidate(session, staff(), reading, ON_THE_SCALE, T0 + HOUR)
    # Within the interval and its grace of the reading: only the invalid one is overdue.
    now = T0 + 12 * HOUR
    await run_clock_rules(session, now, GRACE)
    assert [a.rule for a in await alerts_of(session, marked.id)] == ["missing:body-weight"]
    assert await alerts_of(session, control.id) == []
    board = await trends.dashboard(session, staff(), marked.id, now=now, grace=GRACE)
    [item] = board.plan
    assert (item.last_reading_at, item.missing) == (None, True)
    control_board = await trends.dashboard(session, staff(), control.id, now=now, grace=GRACE)
    assert (control_board.plan[0].last_reading_at, control_board.plan[0].missing) == (T0, False)


async def test_the_dashboard_and_the_trend_leave_it_out(session):
    patient = await enrol(session, conditions=["copd"])
    valid = await send(session, patient, 93, at=T0)
    wrong = await send(session, patient, 70, at=T0 + HOUR)
    now = T0 + 2 * HOUR
    board = await trends.dashboard(session, staff(), patient.id, now=now, grace=GRACE)
    assert [v.observation for v in board.latest] == [f"Observation/{wrong}"]

    await service.invalidate(session, staff(), wrong, "the probe fell off", now)

    board = await trends.dashboard(session, staff(), patient.id, now=now, grace=GRACE)
    assert [(v.observation, v.value) for v in board.latest] == [(f"Observation/{valid}", 93)]
    assert [[p.value for p in s.points] for s in board.sparklines] == [[93]]
    assert board.active_alerts == []  # the red alert of 70 went with it
    for bucket in ("raw", "1h", "1d"):
        trend = await trends.trend(
            session, staff(), patient.id, code="59408-5", start=T0 - HOUR, end=now, bucket=bucket
        )
        assert [(b.count, b.min, b.max) for b in trend.buckets] == [(1, 93, 93)], bucket
    marks = await trends.alerts_in_period(session, staff(), patient.id, start=T0 - HOUR, end=now)
    assert [m.evidence for m in marks] == []
    assert await trends.readings_of(session, staff(), patient.id, [f"Observation/{wrong}"]) == []


async def test_the_threshold_preview_leaves_it_out(session):
    patient = await enrol(session, conditions=["copd"])
    await send(session, patient, 90, at=T0)  # green under the proposal
    wrong = await send(session, patient, 80, at=T0 + HOUR)
    proposal = ThresholdsPreviewIn.model_validate(
        {"days": 7, "bands": {"59408-5": {"yellow": {"low": 88}, "red": {"low": 85}}}}
    )
    before = await preview_thresholds(session, staff(), patient.id, proposal, T0 + 2 * HOUR)
    await service.invalidate(session, staff(), wrong, "the probe fell off", T0 + 2 * HOUR)
    after = await preview_thresholds(session, staff(), patient.id, proposal, T0 + 2 * HOUR)
    assert (before.red, before.yellow, after.red, after.yellow) == (1, 0, 0, 0)
    assert after.alerts == []


# -- two staff at once -------------------------------------------------------------------------


async def test_two_staff_marking_the_same_reading_at_once_one_marks_it_the_other_gets_409(committed, own_organisation):
    """Each in its own committed transaction: the second waits on the first's lock (seen in
    pg_stat_activity) and, once the first commits, is refused; the alert is resolved once."""
    async with committed() as session, session.begin():
        patient = await enrol(session, own_organisation, conditions=["copd"])
        observation_id = await send(session, patient, 83, at=T0)
        alert_id = (await the_alert(session, patient.id)).id
    first_staff, second_staff = staff(own_organisation, sub="first"), staff(own_organisation, sub="second")
    async with committed() as first, committed() as second:
        await first.begin()
        await service.invalidate(first, first_staff, observation_id, FORGOT_CUFF, T0 + HOUR)
        await second.begin()
        pid = await second.scalar(text("select pg_backend_pid()"))
        racing = asyncio.create_task(service.invalidate(second, second_staff, observation_id, ON_THE_SCALE, T0 + HOUR))

        async def waiting() -> bool:
            async with committed() as watcher:
                state = await watcher.scalar(
                    text("select wait_event_type from pg_stat_activity where pid = :pid"), {"pid": pid}
                )
            assert not racing.done(), "the second did not wait for the first"
            return state == "Lock"

        await wait_until(waiting, "the second transaction waiting on the first's lock")
        await first.commit()
        with pytest.raises(Conflict):
            await racing
        await second.rollback()
    async with committed() as session:
        stored = await fresh(session, Observation, observation_id)
        assert (stored.invalidated_by_sub, stored.invalidation_reason) == ("first", FORGOT_CUFF)
        assert await kinds_of(session, alert_id) == ["opened", "resolved"]
