"""The alert lifecycle of rules.md against the real PostgreSQL, with an injected clock.

Every test builds its own patients inside the rolled-back `session` transaction, so nothing
leaks. The clock is set in 2021: the clock rules and escalation sweep every patient and alert
in the database, and the committed data of other tests (created on the real clock, years
later) can then never meet their deadlines here.
"""

from __future__ import annotations

import itertools
import json
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access.staff import Role, Staff
from rpm.alerts import service
from rpm.alerts.breaches import Breach, Findings
from rpm.alerts.models import Alert, AlertEvent
from rpm.alerts.schemas import AlertItem
from rpm.audit.service import Actor
from rpm.config import Settings
from rpm.errors import Conflict, NotFound
from rpm.observations.models import Observation
from rpm.organisations.models import Organisation
from rpm.pipeline import IncomingMessage, RulesReport, record_messages, run_clock_rules
from rpm.rules.bands import Level
from tests.conftest import ORG_A, ORG_B
from tests.fixtures.world import add_patient_with_devices

T0 = datetime(2021, 6, 1, 8, 0, tzinfo=UTC)
MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)
SECOND = timedelta(seconds=1)
# rules.md: red unacknowledged 15 minutes, yellow 8 hours; missing grace 2 hours (all settings).
RED_AFTER = timedelta(minutes=15)
YELLOW_AFTER = timedelta(hours=8)
GRACE = timedelta(hours=2)

SPO2_LOW = "threshold:59408-5:low"
MISSING_WEIGHT = "missing:body-weight"
UNITS = {"spo2": "%", "body-weight": "kg"}
TOPIC_ROOT = "rpm/v1"


# -- helpers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Enrolled:
    id: uuid.UUID
    serials: dict[str, str]  # by reading type


async def new_organisation(session: AsyncSession) -> str:
    """An organisation no other test uses, so its queue holds exactly this test's alerts."""
    while True:
        orgnr = str(random.randint(100_000_000, 899_999_999))
        if orgnr not in (ORG_A, ORG_B) and not await session.scalar(
            select(Organisation.id).where(Organisation.orgnr == orgnr)
        ):
            break
    session.add(Organisation(orgnr=orgnr, name=f"Org {orgnr}", kind="municipality"))
    await session.flush()
    return orgnr


async def enrol(
    session: AsyncSession,
    orgnr: str = ORG_A,
    *,
    conditions: Sequence[str] = ("copd",),
    devices: Sequence[str] = ("spo2",),
    plan: dict[str, int] | None = None,
    status: str = "active",
    created_at: datetime | None = None,
) -> Enrolled:
    """A patient followed by `orgnr` since 2020, with one device per type assigned since 2020;
    created in the test's transaction (rolled back with it)."""
    patient_id, enrolled = await add_patient_with_devices(
        session,
        orgnr,
        devices,
        conditions=conditions,
        plan=plan,
        assigned_from=datetime(2020, 1, 1, tzinfo=UTC),
        status=status,
        created_at=created_at,
    )
    return Enrolled(patient_id, {reading_type: d.serial for reading_type, d in zip(devices, enrolled, strict=True)})


def staff(orgnr: str = ORG_A, sub: str = "nurse-kari", name: str = "Kari Nordmann") -> Actor:
    return Actor(staff=Staff(sub=sub, name=name, hpr="1234567", orgnr=orgnr, roles=frozenset({Role.nurse})))


async def send(
    session: AsyncSession,
    patient: Enrolled,
    value: float,
    *,
    at: datetime,
    received_at: datetime | None = None,
    reading_type: str = "spo2",
) -> uuid.UUID:
    """One reading through record_messages (received a minute after its time unless told),
    with `now` = its arrival; returns the id of the stored Observation."""
    received_at = received_at or at + MINUTE
    gateway, reading_id = f"gw-{uuid.uuid4().hex[:16]}", f"r-{uuid.uuid4().hex}"
    payload = {
        "id": reading_id,
        "device": {"serial": patient.serials[reading_type]},
        "type": reading_type,
        "time": at.isoformat(),
        "value": value,
        "unit": UNITS[reading_type],
    }
    report = RulesReport()
    [outcome] = await record_messages(
        session,
        [IncomingMessage(f"{TOPIC_ROOT}/gateways/{gateway}/measurements", json.dumps(payload).encode(), received_at)],
        now=received_at,
        topic_root=TOPIC_ROOT,
        report=report,
    )
    assert outcome.results == [{"id": reading_id, "status": "accepted"}], outcome.results
    assert report.errors == 0, "the rules failed"
    observation_id = await session.scalar(
        select(Observation.id).where(Observation.gateway_id == gateway, Observation.reading_id == reading_id)
    )
    assert observation_id is not None
    return observation_id


async def alerts_of(session: AsyncSession, patient_id: uuid.UUID, rule: str | None = None) -> list[Alert]:
    statement = select(Alert).where(Alert.patient_id == patient_id)
    if rule is not None:
        statement = statement.where(Alert.rule == rule)
    statement = statement.order_by(Alert.opened_at, Alert.id).execution_options(populate_existing=True)
    return list(await session.scalars(statement))


async def the_alert(session: AsyncSession, patient_id: uuid.UUID, rule: str = SPO2_LOW) -> Alert:
    found = await alerts_of(session, patient_id, rule)
    assert len(found) == 1, [(a.rule, a.status) for a in found]
    return found[0]


async def item_of(session: AsyncSession, alert: Alert) -> AlertItem:
    return (await service.items(session, [alert]))[0]


async def events_of(session: AsyncSession, alert_id: uuid.UUID) -> list[AlertEvent]:
    statement = (
        select(AlertEvent)
        .where(AlertEvent.alert_id == alert_id)
        .order_by(AlertEvent.id)
        .execution_options(populate_existing=True)
    )
    return list(await session.scalars(statement))


async def kinds_of(session: AsyncSession, alert_id: uuid.UUID) -> list[str]:
    return [e.kind for e in await events_of(session, alert_id)]


async def escalate(session: AsyncSession, now: datetime) -> int:
    return await service.escalate(session, now, RED_AFTER, YELLOW_AFTER)


def test_the_clocks_used_here_are_the_settings_defaults() -> None:
    fields = Settings.model_fields
    assert timedelta(minutes=fields["escalate_red_minutes"].default) == RED_AFTER
    assert timedelta(hours=fields["escalate_yellow_hours"].default) == YELLOW_AFTER
    assert timedelta(hours=fields["missing_grace_hours"].default) == GRACE


# -- one active alert per patient and rule; the level only rises ------------------------


async def test_copd_spo2_opens_yellow_then_rises_to_red_and_never_falls(session):
    patient = await enrol(session, conditions=["copd"])

    first = await send(session, patient, 85, at=T0)
    alert = await the_alert(session, patient.id)
    assert (alert.rule, alert.level, alert.status, alert.occurrences) == (SPO2_LOW, "yellow", "open", 1)
    assert (alert.value, alert.unit, alert.threshold) == (85, "%", {"low": 86})
    assert (alert.late, alert.escalated, alert.opened_at, alert.last_reading_at) == (False, False, T0 + MINUTE, T0)
    assert (await item_of(session, alert)).observations == [f"Observation/{first}"]

    second = await send(session, patient, 83, at=T0 + 10 * MINUTE)
    raised = await the_alert(session, patient.id)
    assert raised.id == alert.id
    assert (raised.level, raised.status, raised.occurrences) == ("red", "open", 2)
    assert (raised.value, raised.threshold, raised.last_reading_at) == (83, {"low": 84}, T0 + 10 * MINUTE)
    assert raised.opened_at == T0 + MINUTE
    assert (await item_of(session, raised)).observations == [f"Observation/{first}", f"Observation/{second}"]

    third = await send(session, patient, 85, at=T0 + 20 * MINUTE)
    kept = await the_alert(session, patient.id)
    assert kept.id == alert.id
    assert (kept.level, kept.occurrences, kept.threshold) == ("red", 3, {"low": 84}), "a yellow breach lowered it"
    assert (kept.value, kept.last_reading_at) == (85, T0 + 20 * MINUTE)
    assert (await item_of(session, kept)).observations == [f"Observation/{o}" for o in (first, second, third)]

    detail = await service.detail(session, staff(), alert.id)
    assert [(e.observation, e.value) for e in detail.evidence] == [
        (f"Observation/{first}", 85),
        (f"Observation/{second}", 83),
        (f"Observation/{third}", 85),
    ]


async def test_stored_observations_carry_interpretation_and_the_yellow_band(session):
    patient = await enrol(session, conditions=["copd"])
    expected = {83: "LL", 85: "L", 90: "N"}
    for offset, (value, code) in enumerate(expected.items()):
        observation_id = await send(session, patient, value, at=T0 + offset * MINUTE)
        resource = (await session.get(Observation, observation_id)).resource
        assert [c["code"] for c in resource["interpretation"][0]["coding"]] == [code], value
        [reference] = resource["referenceRange"]
        assert reference["low"]["value"] == 86 and reference["low"]["code"] == "%"
        assert "high" not in reference


async def test_an_earlier_reading_arriving_later_counts_but_does_not_replace_the_latest(session):
    patient = await enrol(session, conditions=["copd"])
    await send(session, patient, 85, at=T0 + HOUR)
    await send(session, patient, 84, at=T0, received_at=T0 + 2 * HOUR)
    alert = await the_alert(session, patient.id)
    assert (alert.occurrences, alert.level) == (2, "yellow")
    assert (alert.value, alert.last_reading_at) == (85, T0 + HOUR)


async def test_breaches_of_different_rules_or_patients_are_separate_alerts(session):
    patient, other = await enrol(session), await enrol(session)
    await send(session, patient, 85, at=T0)
    await send(session, other, 85, at=T0)
    patient_alert, other_alert = await the_alert(session, patient.id), await the_alert(session, other.id)
    assert patient_alert.id != other_alert.id
    assert patient_alert.occurrences == other_alert.occurrences == 1


# -- staff actions -------------------------------------------------------------------------


async def test_acknowledging_twice_keeps_the_first_acknowledgement(session):
    patient = await enrol(session)
    await send(session, patient, 85, at=T0)
    alert = await the_alert(session, patient.id)

    first = await service.acknowledge(session, staff(sub="nurse-kari"), alert.id, T0 + 5 * MINUTE)
    assert (first.status, first.acknowledged_by, first.acknowledged_at) == (
        "acknowledged",
        "nurse-kari",
        T0 + 5 * MINUTE,
    )
    second = await service.acknowledge(session, staff(sub="nurse-ola", name="Ola"), alert.id, T0 + 9 * MINUTE)
    assert (second.status, second.acknowledged_by, second.acknowledged_at) == (
        "acknowledged",
        "nurse-kari",
        T0 + 5 * MINUTE,
    )
    stored = await the_alert(session, patient.id)
    assert (stored.acknowledged_by, stored.acknowledged_by_name, stored.acknowledged_at) == (
        "nurse-kari",
        "Kari Nordmann",
        T0 + 5 * MINUTE,
    )
    assert await kinds_of(session, alert.id) == ["opened", "changed"], "acknowledging again changed something"


async def test_resolving_records_who_when_and_the_note_and_happens_once(session):
    patient = await enrol(session)
    await send(session, patient, 83, at=T0)
    alert = await the_alert(session, patient.id)
    await service.acknowledge(session, staff(sub="nurse-kari"), alert.id, T0 + 5 * MINUTE)

    resolved = await service.resolve(
        session, staff(sub="nurse-ola", name="Ola Nordmann"), alert.id, "Ringte pasienten, ny måling 91 %", T0 + HOUR
    )
    assert (resolved.status, resolved.resolved_by, resolved.resolved_at, resolved.note) == (
        "resolved",
        "nurse-ola",
        T0 + HOUR,
        "Ringte pasienten, ny måling 91 %",
    )
    assert (resolved.acknowledged_by, resolved.acknowledged_at) == ("nurse-kari", T0 + 5 * MINUTE)

    with pytest.raises(Conflict):
        await service.resolve(session, staff(sub="nurse-kari"), alert.id, "again", T0 + 2 * HOUR)
    with pytest.raises(Conflict):
        await service.acknowledge(session, staff(sub="nurse-kari"), alert.id, T0 + 2 * HOUR)

    stored = await the_alert(session, patient.id)
    assert (stored.status, stored.resolved_by, stored.resolved_by_name, stored.resolved_at, stored.note) == (
        "resolved",
        "nurse-ola",
        "Ola Nordmann",
        T0 + HOUR,
        "Ringte pasienten, ny måling 91 %",
    )
    assert (stored.acknowledged_by, stored.acknowledged_at) == ("nurse-kari", T0 + 5 * MINUTE)
    assert (await kinds_of(session, alert.id))[-1] == "resolved"
    assert (await kinds_of(session, alert.id)).count("resolved") == 1


async def test_an_open_alert_can_be_resolved_without_acknowledgement(session):
    patient = await enrol(session)
    await send(session, patient, 85, at=T0)
    alert = await the_alert(session, patient.id)
    resolved = await service.resolve(session, staff(), alert.id, "Feilmåling, kald finger", T0 + HOUR)
    assert (resolved.status, resolved.acknowledged_by, resolved.acknowledged_at) == ("resolved", None, None)
    assert (resolved.resolved_by, resolved.resolved_at, resolved.note) == (
        "nurse-kari",
        T0 + HOUR,
        "Feilmåling, kald finger",
    )


async def test_after_resolution_the_next_breach_opens_a_new_alert(session):
    patient = await enrol(session)
    await send(session, patient, 83, at=T0)
    await send(session, patient, 83, at=T0 + MINUTE)
    old = await the_alert(session, patient.id)
    await service.resolve(session, staff(), old.id, "Fulgt opp", T0 + HOUR)

    observation = await send(session, patient, 85, at=T0 + 2 * HOUR)
    resolved, new = await alerts_of(session, patient.id, SPO2_LOW)
    assert resolved.id == old.id and new.id != old.id
    assert (resolved.status, resolved.occurrences, resolved.level) == ("resolved", 2, "red")
    assert (new.status, new.occurrences, new.level, new.value) == ("open", 1, "yellow", 85)
    assert new.opened_at == T0 + 2 * HOUR + MINUTE
    assert (new.acknowledged_by, new.resolved_by, new.note) == (None, None, None)
    assert (await item_of(session, new)).observations == [f"Observation/{observation}"]
    assert await kinds_of(session, new.id) == ["opened"]


async def test_another_organisation_cannot_see_or_touch_the_alert(session):
    patient = await enrol(session, ORG_A)
    await send(session, patient, 83, at=T0)
    alert = await the_alert(session, patient.id)
    outsider = staff(ORG_B, sub="nurse-b")

    with pytest.raises(NotFound):
        await service.detail(session, outsider, alert.id)
    with pytest.raises(NotFound):
        await service.acknowledge(session, outsider, alert.id, T0 + MINUTE)
    with pytest.raises(NotFound):
        await service.resolve(session, outsider, alert.id, "not mine", T0 + MINUTE)
    assert await service.queue(session, outsider, patient_id=patient.id) == []
    everything = await service.queue(session, outsider, statuses=("open", "acknowledged", "resolved"), limit=1000)
    assert all(item.patient != patient.id for item in everything)
    with pytest.raises(NotFound):
        await service.detail(session, outsider, uuid.uuid4())

    untouched = await the_alert(session, patient.id)
    assert (untouched.status, untouched.acknowledged_by, untouched.resolved_by) == ("open", None, None)
    # ... while the patient's own organisation sees it.
    assert [i.id for i in await service.queue(session, staff(ORG_A), patient_id=patient.id)] == [alert.id]
    assert (await service.detail(session, staff(ORG_A), alert.id)).id == alert.id


# -- the queue -----------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueWorld:
    orgnr: str
    alerts: dict[str, uuid.UUID]  # by name: red/yellow, escalated or acknowledged, age
    patients: dict[str, uuid.UUID]


async def queue_world(session: AsyncSession) -> QueueWorld:
    """Five alerts of a fresh organisation, each on its own patient, opened an hour apart:

    yellow_oldest (T0, acknowledged), red_acked (T0+1h, acknowledged), red_escalated (T0+2h),
    yellow_escalated (T0+3h), yellow_newest (T0+4h); escalate(T0+27h45) escalates only the
    red at T0+2h (15 min) and the yellow at T0+3h (8 h of service time: Tuesday 13:00-15:30 and
    Wednesday 08:00-13:30 in Oslo; the newest yellow is 15 minutes short).
    """
    orgnr = await new_organisation(session)
    opened = {
        "yellow_oldest": (85, T0),
        "red_acked": (83, T0 + HOUR),
        "red_escalated": (83, T0 + 2 * HOUR),
        "yellow_escalated": (85, T0 + 3 * HOUR),
        "yellow_newest": (85, T0 + 4 * HOUR),
    }
    alerts, patients = {}, {}
    for name, (value, at) in opened.items():
        patient = await enrol(session, orgnr)
        await send(session, patient, value, at=at - MINUTE)
        alerts[name], patients[name] = (await the_alert(session, patient.id)).id, patient.id
    for name in ("yellow_oldest", "red_acked"):
        await service.acknowledge(session, staff(orgnr), alerts[name], opened[name][1] + MINUTE)
    await escalate(session, T0 + 27 * HOUR + 45 * MINUTE)
    escalated = set(
        await session.scalars(select(Alert.id).where(Alert.id.in_(alerts.values()), Alert.escalated.is_(True)))
    )
    assert {alerts["red_escalated"], alerts["yellow_escalated"]} <= escalated
    assert not escalated & {alerts[n] for n in ("yellow_oldest", "red_acked", "yellow_newest")}
    return QueueWorld(orgnr, alerts, patients)


async def test_queue_puts_red_first_then_escalated_then_oldest(session):
    world = await queue_world(session)
    items = await service.queue(session, staff(world.orgnr))
    names = {v: k for k, v in world.alerts.items()}
    assert [names[i.id] for i in items] == [
        "red_escalated",
        "red_acked",
        "yellow_escalated",
        "yellow_oldest",
        "yellow_newest",
    ]


async def test_queue_pages_in_the_same_order(session):
    world = await queue_world(session)
    actor = staff(world.orgnr)
    whole = [i.id for i in await service.queue(session, actor)]
    paged: list[uuid.UUID] = []
    after = None
    while True:
        page = await service.queue(session, actor, after=after, limit=2)
        if not page:
            break
        paged += [i.id for i in page]
        after = service.queue_position(page[-1])
    assert paged == whole and len(whole) == 5


async def test_queue_filters(session):
    world = await queue_world(session)
    actor, a = staff(world.orgnr), world.alerts

    async def ids(**filters) -> list[uuid.UUID]:
        return [i.id for i in await service.queue(session, actor, **filters)]

    assert await ids(level="red") == [a["red_escalated"], a["red_acked"]]
    assert await ids(level="yellow") == [a["yellow_escalated"], a["yellow_oldest"], a["yellow_newest"]]
    assert await ids(escalated=True) == [a["red_escalated"], a["yellow_escalated"]]
    assert await ids(escalated=False) == [a["red_acked"], a["yellow_oldest"], a["yellow_newest"]]
    assert await ids(level="yellow", escalated=False) == [a["yellow_oldest"], a["yellow_newest"]]
    assert await ids(patient_id=world.patients["yellow_newest"]) == [a["yellow_newest"]]
    assert await ids(statuses=("acknowledged",)) == [a["red_acked"], a["yellow_oldest"]]
    assert await ids(statuses=("open",)) == [a["red_escalated"], a["yellow_escalated"], a["yellow_newest"]]
    assert await ids(statuses=("resolved",)) == []

    await service.resolve(session, actor, a["yellow_newest"], "Ok", T0 + 12 * HOUR)
    assert a["yellow_newest"] not in await ids()
    assert await ids(statuses=("resolved",)) == [a["yellow_newest"]]
    assert await ids(statuses=("resolved",), patient_id=world.patients["red_acked"]) == []
    assert len(await ids(statuses=("open", "acknowledged", "resolved"))) == 5


# -- late readings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "late"),
    [
        pytest.param(23 * HOUR, False, id="23h"),
        pytest.param(24 * HOUR, False, id="exactly-24h"),
        pytest.param(24 * HOUR + SECOND, True, id="24h-and-a-second"),
        pytest.param(3 * 24 * HOUR, True, id="3-days"),
    ],
)
async def test_an_alert_opened_by_a_reading_older_than_24h_on_arrival_is_late(session, age, late):
    patient = await enrol(session)
    await send(session, patient, 83, at=T0 - age, received_at=T0)
    alert = await the_alert(session, patient.id)
    assert (alert.late, alert.level, alert.last_reading_at, alert.opened_at) == (late, "red", T0 - age, T0)
    assert (await item_of(session, alert)).late is late


# -- escalation ----------------------------------------------------------------------------


async def test_a_red_alert_escalates_15_minutes_after_opening_unacknowledged(session):
    patient = await enrol(session)
    await send(session, patient, 83, at=T0 - MINUTE)  # opened at T0
    alert = await the_alert(session, patient.id)
    assert alert.opened_at == T0

    await escalate(session, T0 + RED_AFTER - SECOND)
    assert (await the_alert(session, patient.id)).escalated is False
    assert await kinds_of(session, alert.id) == ["opened"]

    await escalate(session, T0 + RED_AFTER)
    escalated = await the_alert(session, patient.id)
    assert (escalated.escalated, escalated.escalated_at, escalated.status) == (True, T0 + RED_AFTER, "open")
    events = await events_of(session, alert.id)
    assert [e.kind for e in events] == ["opened", "escalated"]
    assert events[-1].at == T0 + RED_AFTER
    assert events[-1].alert["escalated"] is True and events[-1].alert["id"] == str(alert.id)

    await escalate(session, T0 + 2 * HOUR)
    assert await kinds_of(session, alert.id) == ["opened", "escalated"], "escalated twice"
    assert (await the_alert(session, patient.id)).escalated_at == T0 + RED_AFTER


async def test_an_acknowledged_red_alert_never_escalates(session):
    patient = await enrol(session)
    await send(session, patient, 83, at=T0 - MINUTE)
    alert = await the_alert(session, patient.id)
    await service.acknowledge(session, staff(), alert.id, T0 + 14 * MINUTE)
    for later in (RED_AFTER, YELLOW_AFTER, 7 * 24 * HOUR):
        await escalate(session, T0 + later)
    stored = await the_alert(session, patient.id)
    assert (stored.escalated, stored.escalated_at, stored.status) == (False, None, "acknowledged")
    assert "escalated" not in await kinds_of(session, alert.id)


# T0 is Tuesday 10:00 in Oslo: 8 hours of service time (weekdays 08:00-15:30) are Tuesday
# 10:00-15:30 and Wednesday 08:00-10:30.
YELLOW_DUE = T0 + 24 * HOUR + 30 * MINUTE


async def test_a_yellow_alert_escalates_after_8_hours_of_service_time_unacknowledged(session):
    patient = await enrol(session)
    await send(session, patient, 85, at=T0 - MINUTE)
    alert = await the_alert(session, patient.id)

    for early in (RED_AFTER, HOUR, YELLOW_AFTER, 22 * HOUR, YELLOW_DUE - T0 - SECOND):
        await escalate(session, T0 + early)
    assert (await the_alert(session, patient.id)).escalated is False, "the night counted as service time"

    await escalate(session, YELLOW_DUE)
    stored = await the_alert(session, patient.id)
    assert (stored.escalated, stored.escalated_at, stored.level) == (True, YELLOW_DUE, "yellow")
    assert await kinds_of(session, alert.id) == ["opened", "escalated"]


async def test_a_yellow_raised_to_red_escalates_15_minutes_after_the_raise(session):
    patient = await enrol(session)
    await send(session, patient, 85, at=T0 - MINUTE)  # yellow at T0
    await send(session, patient, 83, at=T0 + HOUR - MINUTE)  # red at T0+1h
    alert = await the_alert(session, patient.id)
    assert (alert.level, alert.opened_at, alert.raised_at) == ("red", T0, T0 + HOUR)

    await escalate(session, T0 + HOUR + RED_AFTER - SECOND)
    assert (await the_alert(session, patient.id)).escalated is False
    await escalate(session, T0 + HOUR + RED_AFTER)
    stored = await the_alert(session, patient.id)
    assert (stored.escalated, stored.escalated_at) == (True, T0 + HOUR + RED_AFTER)
    assert await kinds_of(session, alert.id) == ["opened", "changed", "escalated"]


async def test_a_red_breach_on_a_red_alert_does_not_restart_its_clock(session):
    patient = await enrol(session)
    await send(session, patient, 83, at=T0 - MINUTE)  # red at T0
    await send(session, patient, 82, at=T0 + 10 * MINUTE - MINUTE)  # again red at T0+10 min
    alert = await the_alert(session, patient.id)
    assert alert.raised_at == T0
    await escalate(session, T0 + RED_AFTER)
    assert (await the_alert(session, patient.id)).escalated is True


async def test_raising_a_yellow_to_red_never_postpones_its_escalation(session):
    """Unacknowledged for 8 hours of service time, yellow for 7 h 55 min of it and then red:
    rules.md escalates a yellow alert after 8 hours; becoming more urgent must not push that to
    8 h 10 min."""
    patient = await enrol(session)
    await send(session, patient, 85, at=T0 - MINUTE)  # yellow at T0
    await send(session, patient, 83, at=YELLOW_DUE - 6 * MINUTE)  # red 5 minutes before it is due
    assert (await the_alert(session, patient.id)).level == "red"
    await escalate(session, YELLOW_DUE)
    stored = await the_alert(session, patient.id)
    assert stored.escalated is True, "8 h unacknowledged, but the raise to red restarted the escalation clock"


# -- missing measurements ------------------------------------------------------------------

C = datetime(2021, 3, 1, 6, 0, tzinfo=UTC)  # enrolment of the missing-measurement patients


async def weight_patient(session: AsyncSession, **kwargs) -> Enrolled:
    return await enrol(
        session,
        conditions=["heart-failure"],
        devices=["body-weight", "spo2"],
        plan={"body-weight": 24},
        created_at=C,
        **kwargs,
    )


async def test_a_late_weighing_opens_exactly_one_missing_alert(session):
    patient = await weight_patient(session)
    last = C + 10 * HOUR
    await send(session, patient, 81.4, at=last, reading_type="body-weight")

    assert await run_clock_rules(session, last + 24 * HOUR + HOUR + 59 * MINUTE, GRACE) == 0
    assert await alerts_of(session, patient.id) == []

    due = last + 24 * HOUR + GRACE + SECOND
    assert await run_clock_rules(session, due, GRACE) == 1
    alert = await the_alert(session, patient.id, MISSING_WEIGHT)
    assert (alert.level, alert.status, alert.occurrences, alert.opened_at) == ("yellow", "open", 1, due)
    assert alert.last_reading_at == last
    assert await kinds_of(session, alert.id) == ["opened"]

    assert await run_clock_rules(session, due + MINUTE, GRACE) == 0
    assert await run_clock_rules(session, due + 3 * 24 * HOUR, GRACE) == 0
    assert [a.id for a in await alerts_of(session, patient.id)] == [alert.id]
    assert (await the_alert(session, patient.id, MISSING_WEIGHT)).occurrences == 1


async def test_without_any_reading_the_interval_counts_from_enrolment(session):
    patient = await weight_patient(session)
    assert await run_clock_rules(session, C + 24 * HOUR + HOUR + 59 * MINUTE, GRACE) == 0
    assert await alerts_of(session, patient.id) == []
    assert await run_clock_rules(session, C + 24 * HOUR + GRACE + SECOND, GRACE) == 1
    alert = await the_alert(session, patient.id, MISSING_WEIGHT)
    assert (alert.level, alert.last_reading_at) == ("yellow", None)


async def test_a_weighing_resolves_the_missing_alert_and_another_type_does_not(session):
    patient = await weight_patient(session)
    due = C + 24 * HOUR + GRACE + SECOND
    await run_clock_rules(session, due, GRACE)
    alert = await the_alert(session, patient.id, MISSING_WEIGHT)

    await send(session, patient, 96, at=due + HOUR, reading_type="spo2")  # green, another type
    assert (await the_alert(session, patient.id, MISSING_WEIGHT)).status == "open"

    arrival = due + 2 * HOUR
    await send(session, patient, 80.9, at=arrival - MINUTE, reading_type="body-weight")
    resolved = await the_alert(session, patient.id, MISSING_WEIGHT)
    assert (resolved.status, resolved.note, resolved.resolved_by, resolved.resolved_at) == (
        "resolved",
        "reading received",
        "system",
        arrival,
    )
    assert await kinds_of(session, alert.id) == ["opened", "resolved"]

    # The fresh weighing starts a new interval: nothing is missing an hour later.
    assert await run_clock_rules(session, arrival + HOUR, GRACE) == 0
    assert [a.id for a in await alerts_of(session, patient.id)] == [alert.id]


async def test_an_acknowledged_missing_alert_is_also_resolved_by_the_reading(session):
    patient = await weight_patient(session)
    due = C + 24 * HOUR + GRACE + SECOND
    await run_clock_rules(session, due, GRACE)
    alert = await the_alert(session, patient.id, MISSING_WEIGHT)
    await service.acknowledge(session, staff(), alert.id, due + MINUTE)
    await send(session, patient, 80.9, at=due + HOUR, reading_type="body-weight")
    resolved = await the_alert(session, patient.id, MISSING_WEIGHT)
    assert (resolved.status, resolved.note, resolved.resolved_by) == ("resolved", "reading received", "system")


async def test_a_patient_whose_follow_up_ended_gets_no_missing_alert(session):
    ended = await weight_patient(session, status="ended")
    active = await weight_patient(session)
    assert await run_clock_rules(session, C + 30 * 24 * HOUR, GRACE) == 1
    assert await alerts_of(session, ended.id) == []
    assert len(await alerts_of(session, active.id, MISSING_WEIGHT)) == 1


async def test_only_planned_types_are_missed(session):
    patient = await weight_patient(session)  # plans body-weight only, has an spo2 device too
    await run_clock_rules(session, C + 30 * 24 * HOUR, GRACE)
    assert [a.rule for a in await alerts_of(session, patient.id)] == [MISSING_WEIGHT]


# -- events --------------------------------------------------------------------------------


def spo2_breach(patient_id: uuid.UUID, level: Level, value: float, at: datetime) -> Breach:
    return Breach(
        patient_id=patient_id,
        rule=SPO2_LOW,
        level=level,
        value=value,
        unit="%",
        threshold={"low": 84 if level is Level.red else 86},
        reading_at=at,
        late=False,
        thresholds_version=0,
    )


async def test_landed_findings_and_resolve_append_events_in_order(session):
    patient = await enrol(session)
    opened = await service.land_findings(session, Findings([spo2_breach(patient.id, Level.yellow, 85, T0)]), T0)
    assert opened == [SPO2_LOW]
    again = await service.land_findings(
        session, Findings([spo2_breach(patient.id, Level.red, 83, T0 + MINUTE)]), T0 + MINUTE
    )
    assert again == []
    alert = await the_alert(session, patient.id)
    await service.resolve(session, staff(), alert.id, "Fulgt opp", T0 + HOUR)

    events = await events_of(session, alert.id)
    assert [e.kind for e in events] == ["opened", "changed", "resolved"]
    assert all(a.id < b.id for a, b in itertools.pairwise(events))
    assert [e.at for e in events] == [T0, T0 + MINUTE, T0 + HOUR]
    assert {e.patient_id for e in events} == {patient.id}
    # Each event carries the alert as it was at that moment.
    assert [(e.alert["level"], e.alert["occurrences"], e.alert["status"]) for e in events] == [
        ("yellow", 1, "open"),
        ("red", 2, "open"),
        ("red", 2, "resolved"),
    ]
    assert events[-1].alert["note"] == "Fulgt opp"


async def test_one_event_per_alert_per_transaction(session):
    patient = await enrol(session)
    breaches = [spo2_breach(patient.id, Level.yellow, 85, T0), spo2_breach(patient.id, Level.red, 83, T0 + MINUTE)]
    await service.land_findings(session, Findings(breaches), T0 + MINUTE)
    alert = await the_alert(session, patient.id)
    [event] = await events_of(session, alert.id)
    assert (event.kind, event.alert["occurrences"], event.alert["level"]) == ("opened", 2, "red")


async def test_staff_actions_append_changed_and_resolved_events(session):
    patient = await enrol(session)
    await send(session, patient, 85, at=T0)
    alert = await the_alert(session, patient.id)
    await service.acknowledge(session, staff(), alert.id, T0 + HOUR)
    await service.resolve(session, staff(), alert.id, "Ok", T0 + 2 * HOUR)
    events = await events_of(session, alert.id)
    assert [e.kind for e in events] == ["opened", "changed", "resolved"]
    assert events[1].alert["status"] == "acknowledged" and events[1].alert["acknowledged_by"] == "nurse-kari"
    assert all(a.id < b.id for a, b in itertools.pairwise(events))


async def test_a_long_lived_alert_lists_only_its_newest_observations(session):
    patient = await enrol(session)
    sent = [await send(session, patient, 85, at=T0 + n * MINUTE) for n in range(service.ITEM_OBSERVATIONS + 5)]
    alert = await the_alert(session, patient.id)
    item = await item_of(session, alert)
    assert item.occurrences == len(sent)
    assert item.observations == [f"Observation/{oid}" for oid in sent[-service.ITEM_OBSERVATIONS :]]
    detail = await service.detail(session, staff(), alert.id)
    assert [e.observation for e in detail.evidence] == [f"Observation/{oid}" for oid in sent]


async def test_each_event_lists_the_newest_observations_including_the_batchs_own(session):
    # The batch's evidence is stored by the same statement that returns the event's alert:
    # its references must include what that statement added, and only the newest ones.
    patient = await enrol(session)
    sent = [await send(session, patient, 85, at=T0 + n * MINUTE) for n in range(service.ITEM_OBSERVATIONS + 3)]
    alert = await the_alert(session, patient.id)
    events = await events_of(session, alert.id)
    assert [e.kind for e in events] == ["opened"] + ["changed"] * (len(sent) - 1)
    for number, event in enumerate(events):
        newest = sent[: number + 1][-service.ITEM_OBSERVATIONS :]
        assert event.alert["observations"] == [f"Observation/{oid}" for oid in newest], number
    assert events[-1].alert["observations"] == (await item_of(session, alert)).observations


async def test_a_late_reading_lands_in_its_place_among_an_events_references(session):
    patient = await enrol(session)
    early, late_time = T0, T0 + 10 * MINUTE
    first = await send(session, patient, 85, at=early)
    third = await send(session, patient, 85, at=T0 + 20 * MINUTE)
    second = await send(session, patient, 85, at=late_time, received_at=T0 + 30 * MINUTE)
    [*_, event] = await events_of(session, (await the_alert(session, patient.id)).id)
    assert event.alert["observations"] == [f"Observation/{o}" for o in (first, second, third)]


async def test_one_batch_resolves_a_missing_alert_and_opens_a_threshold_alert_with_an_event_each(session):
    patient = await weight_patient(session)
    due = C + 24 * HOUR + GRACE + SECOND
    await run_clock_rules(session, due, GRACE)
    missing = await the_alert(session, patient.id, MISSING_WEIGHT)
    breach = Breach(
        patient_id=patient.id,
        rule="threshold:29463-7:high",
        level=Level.yellow,
        value=150.0,
        unit="kg",
        threshold={"high": 140},
        reading_at=due + MINUTE,
        late=False,
        thresholds_version=0,
    )
    opened = await service.land_findings(session, Findings([breach], {(patient.id, MISSING_WEIGHT)}), due + MINUTE)
    assert opened == ["threshold:29463-7:high"]
    resolved_events = await events_of(session, missing.id)
    assert [e.kind for e in resolved_events] == ["opened", "resolved"]
    assert resolved_events[-1].alert["status"] == "resolved"
    assert resolved_events[-1].alert["note"] == "reading received"
    threshold_alert = await the_alert(session, patient.id, "threshold:29463-7:high")
    [event] = await events_of(session, threshold_alert.id)
    assert (event.kind, event.alert["value"], event.alert["observations"]) == ("opened", 150.0, [])


async def test_a_batch_with_nothing_to_resolve_or_land_changes_no_alert(session):
    patient = await enrol(session)
    assert await service.land_findings(session, Findings([], {(patient.id, "missing:spo2")}), T0) == []
    assert await alerts_of(session, patient.id) == []
