"""Service hours and escalation (issue 11, items 5 and 8) against the real PostgreSQL, with an
injected clock in 2021 (see test_lifecycle: other tests' committed alerts, on the real clock,
can never meet these deadlines).

Proves: a red alert raised Friday 15:20 escalates Monday 08:05 with 15 minutes, across the
spring-forward weekend, not Friday 15:35; an organisation's own red minutes apply; a red alert
acknowledged while yellow and then raised escalates unless acknowledged again as red; a yellow
alert escalates after 8 hours of service time, never at night; a red alert on a Saturday is
marked, handed over to the partner (event and system audit record) and the partner reads the
patient, works the alert, and loses all of it when the alert is resolved; it sees nothing
before, nor of other patients; it may not change the patient (403); a yellow alert on a
Saturday is neither marked nor handed over; with no partner named, marked only; one
care-team organisation in service is enough; 17 May is outside; a yellow alert costs the
ingest no query for service hours, a red one in service hours one (the care teams). At closing
time a red alert nobody acknowledged as red goes to the partner (once, audited, announced,
not marked), one acknowledged as red stays, and one seen only as yellow goes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access import service as access
from rpm.alerts import service
from rpm.audit.models import AuditRecord
from rpm.errors import NotFound
from rpm.organisations.models import Organisation
from rpm.patients.models import CareTeamMember
from tests.alerts.test_lifecycle import (
    HOUR,
    MINUTE,
    RED_AFTER,
    SECOND,
    SPO2_LOW,
    YELLOW_AFTER,
    enrol,
    events_of,
    new_organisation,
    send,
    staff,
    the_alert,
)

OSLO = ZoneInfo("Europe/Oslo")
# Friday 26 March 2021, 15:20 in Oslo; the clocks go forward on Sunday 28 March.
FRIDAY_1520 = datetime(2021, 3, 26, 15, 20, tzinfo=OSLO)
MONDAY_0805 = datetime(2021, 3, 29, 8, 5, tzinfo=OSLO)
SATURDAY = datetime(2021, 6, 5, 10, 0, tzinfo=OSLO)


async def escalate(session: AsyncSession, now: datetime) -> int:
    return await service.escalate(session, now.astimezone(UTC), RED_AFTER, YELLOW_AFTER)


async def organisation(session: AsyncSession, orgnr: str) -> Organisation:
    found = await session.scalar(select(Organisation).where(Organisation.orgnr == orgnr))
    assert found is not None
    return found


async def with_partner(session: AsyncSession) -> tuple[str, str]:
    """A fresh care-team organisation naming a fresh out-of-hours partner: (care team, partner)."""
    own, partner = await new_organisation(session), await new_organisation(session)
    (await organisation(session, own)).out_of_hours_partner_id = (await organisation(session, partner)).id
    await session.flush()
    return own, partner


async def at(session: AsyncSession, patient, value: float, when: datetime) -> None:
    """A reading that arrives at `when` (taken a minute before)."""
    await send(session, patient, value, at=when.astimezone(UTC) - MINUTE, received_at=when.astimezone(UTC))


# -- escalation in service hours -------------------------------------------------------------


async def test_a_red_alert_raised_friday_1520_escalates_monday_0805(session):
    orgnr = await new_organisation(session)
    patient = await enrol(session, orgnr)
    await at(session, patient, 85, FRIDAY_1520 - HOUR)  # yellow at 14:20
    await at(session, patient, 83, FRIDAY_1520)  # raised to red at 15:20, in service hours
    alert = await the_alert(session, patient.id)
    assert (alert.level, alert.raised_at, alert.outside_service_hours) == ("red", FRIDAY_1520, False)

    for early in (FRIDAY_1520 + RED_AFTER, FRIDAY_1520 + 2 * HOUR, datetime(2021, 3, 28, 12, 0, tzinfo=OSLO)):
        await escalate(session, early)
    await escalate(session, MONDAY_0805 - SECOND)
    assert (await the_alert(session, patient.id)).escalated is False, "the weekend counted as service time"

    assert await escalate(session, MONDAY_0805) >= 1
    stored = await the_alert(session, patient.id)
    assert (stored.escalated, stored.escalated_at) == (True, MONDAY_0805)
    assert MONDAY_0805.utcoffset() == timedelta(hours=2)  # summer time by then


async def test_the_organisations_own_red_minutes_apply(session):
    orgnr = await new_organisation(session)
    (await organisation(session, orgnr)).escalate_red_minutes = 5
    patient = await enrol(session, orgnr)
    opened = datetime(2021, 6, 1, 10, 0, tzinfo=OSLO)
    await at(session, patient, 83, opened)
    await escalate(session, opened + 5 * MINUTE - SECOND)
    assert (await the_alert(session, patient.id)).escalated is False
    await escalate(session, opened + 5 * MINUTE)
    assert (await the_alert(session, patient.id)).escalated is True


async def test_a_red_alert_acknowledged_as_yellow_escalates_unless_acknowledged_again(session):
    orgnr = await new_organisation(session)
    opened = datetime(2021, 6, 1, 10, 0, tzinfo=OSLO)  # a Tuesday
    seen_as_yellow, seen_again = await enrol(session, orgnr), await enrol(session, orgnr)
    for patient in (seen_as_yellow, seen_again):
        await at(session, patient, 85, opened)
        await service.acknowledge(session, staff(orgnr), (await the_alert(session, patient.id)).id, opened + MINUTE)
        await at(session, patient, 83, opened + HOUR)  # raised to red, still "acknowledged"
        alert = await the_alert(session, patient.id)
        assert (alert.level, alert.status) == ("red", "acknowledged")
    again = await the_alert(session, seen_again.id)
    item = await service.acknowledge(session, staff(orgnr, sub="nurse-ola"), again.id, opened + HOUR + 5 * MINUTE)
    assert (item.acknowledged_by, item.acknowledged_at) == ("nurse-ola", (opened + HOUR + 5 * MINUTE).astimezone(UTC))
    assert [e.kind for e in await events_of(session, again.id)][-1] == "changed"

    await escalate(session, opened + HOUR + RED_AFTER - SECOND)
    assert (await the_alert(session, seen_as_yellow.id)).escalated is False
    await escalate(session, opened + HOUR + RED_AFTER)
    escalated = await the_alert(session, seen_as_yellow.id)
    assert (escalated.escalated, escalated.status) == (True, "acknowledged")
    assert (await the_alert(session, seen_again.id)).escalated is False, "acknowledged as red"
    await escalate(session, opened + 7 * 24 * HOUR)
    assert (await the_alert(session, seen_again.id)).escalated is False

    # Acknowledging an alert seen as red again changes nothing (idempotent, no event).
    kinds = [e.kind for e in await events_of(session, again.id)]
    await service.acknowledge(session, staff(orgnr), again.id, opened + 8 * 24 * HOUR)
    assert [e.kind for e in await events_of(session, again.id)] == kinds


async def test_a_yellow_alert_waits_for_the_next_service_day(session):
    """Opened Friday 15:00: 30 minutes of service that day, none at the weekend, and 7 h 30 min
    more on Monday: it escalates when Monday's service closes, not Saturday morning."""
    orgnr = await new_organisation(session)
    patient = await enrol(session, orgnr)
    friday = datetime(2021, 6, 4, 15, 0, tzinfo=OSLO)
    await at(session, patient, 85, friday)
    for early in (friday + YELLOW_AFTER, friday + 2 * 24 * HOUR, datetime(2021, 6, 7, 15, 29, tzinfo=OSLO)):
        await escalate(session, early)
    assert (await the_alert(session, patient.id)).escalated is False
    await escalate(session, datetime(2021, 6, 7, 15, 30, tzinfo=OSLO))
    assert (await the_alert(session, patient.id)).escalated is True


async def test_an_escalated_alert_is_not_escalated_again(session):
    orgnr = await new_organisation(session)
    patient = await enrol(session, orgnr)
    opened = datetime(2021, 6, 1, 10, 0, tzinfo=OSLO)
    await at(session, patient, 83, opened)
    alert = await the_alert(session, patient.id)
    assert await escalate(session, opened + RED_AFTER) >= 1
    await escalate(session, opened + RED_AFTER + MINUTE)
    assert [e.kind for e in await events_of(session, alert.id)] == ["opened", "escalated"]


# -- outside service hours: marked, handed over ----------------------------------------------


async def test_a_red_alert_on_saturday_is_handed_over_and_the_partner_follows_it(session):
    own, partner = await with_partner(session)
    partner_id = (await organisation(session, partner)).id
    patient, other = await enrol(session, own), await enrol(session, own)
    await at(session, other, 85, SATURDAY - HOUR)  # another patient's (yellow) alert: not handed over
    partner_nurse = staff(partner, sub="legevakt-1")
    assert not await access.may_see_patient(session, partner_nurse.staff, patient.id)
    assert await service.queue(session, partner_nurse) == []

    await at(session, patient, 83, SATURDAY)
    alert = await the_alert(session, patient.id)
    assert (alert.outside_service_hours, alert.handed_over_to, alert.handed_over_at) == (
        True,
        partner_id,
        SATURDAY.astimezone(UTC),
    )
    [opened] = await events_of(session, alert.id)
    assert (opened.kind, opened.alert["outside_service_hours"], opened.alert["handed_over_to"]) == (
        "opened",
        True,
        partner,
    )
    [audited] = await session.scalars(
        select(AuditRecord).where(AuditRecord.resource_id == str(alert.id), AuditRecord.action == "hand-over")
    )
    assert (audited.actor_sub, audited.actor_org, audited.patient_id) == ("system", own, patient.id)

    # The partner's queue holds the patient's alert, and nothing of the other patient.
    queue = await service.queue(session, partner_nurse)
    assert [(i.id, i.handed_over_to, i.outside_service_hours) for i in queue] == [(alert.id, partner, True)]
    assert await access.may_see_patient(session, partner_nurse.staff, patient.id)
    assert not await access.may_see_patient(session, partner_nurse.staff, other.id)
    assert (await service.detail(session, partner_nurse, alert.id)).handed_over_to == partner
    # The care team sees the hand-over too.
    assert [i.handed_over_to for i in await service.queue(session, staff(own), patient_id=patient.id)] == [partner]

    # A later red reading of the same alert keeps it with the partner; no second hand-over.
    await at(session, patient, 82, SATURDAY + HOUR)
    assert [e.alert["handed_over_to"] for e in await events_of(session, alert.id)] == [partner, partner]
    assert await session.scalar(
        select(AuditRecord.id).where(AuditRecord.resource_id == str(alert.id), AuditRecord.action == "hand-over")
    ) == audited.id  # fmt: skip

    # The partner works it; resolved, the patient is closed to the partner again.
    await service.acknowledge(session, partner_nurse, alert.id, (SATURDAY + 2 * HOUR).astimezone(UTC))
    await service.resolve(session, partner_nurse, alert.id, "Called; seen at the emergency room", SATURDAY + 3 * HOUR)
    assert await service.queue(session, partner_nurse) == []
    assert not await access.may_see_patient(session, partner_nurse.staff, patient.id)
    try:
        await service.detail(session, partner_nurse, alert.id)
        raise AssertionError("the partner still reads the resolved alert")
    except NotFound:
        pass
    # The resolved event still names the partner, so the partner's stream can drop it.
    assert (await events_of(session, alert.id))[-1].alert["handed_over_to"] == partner


async def test_a_yellow_raised_to_red_on_saturday_is_handed_over(session):
    own, partner = await with_partner(session)
    patient = await enrol(session, own)
    await at(session, patient, 85, SATURDAY)
    assert (await the_alert(session, patient.id)).outside_service_hours is False
    await at(session, patient, 83, SATURDAY + HOUR)
    alert = await the_alert(session, patient.id)
    assert (alert.level, alert.outside_service_hours) == ("red", True)
    assert alert.handed_over_to == (await organisation(session, partner)).id
    assert [(e.kind, e.alert["handed_over_to"]) for e in await events_of(session, alert.id)] == [
        ("opened", None),
        ("changed", partner),
    ]


async def test_a_yellow_alert_on_saturday_is_neither_marked_nor_handed_over(session):
    own, partner = await with_partner(session)
    patient = await enrol(session, own)
    await at(session, patient, 85, SATURDAY)
    alert = await the_alert(session, patient.id)
    assert (alert.level, alert.outside_service_hours, alert.handed_over_to) == ("yellow", False, None)
    assert await service.queue(session, staff(partner)) == []


async def test_with_no_partner_named_a_red_alert_is_only_marked(session):
    orgnr = await new_organisation(session)
    patient = await enrol(session, orgnr)
    await at(session, patient, 83, SATURDAY)
    alert = await the_alert(session, patient.id)
    assert (alert.outside_service_hours, alert.handed_over_to, alert.handed_over_at) == (True, None, None)
    [opened] = await events_of(session, alert.id)
    assert (opened.alert["outside_service_hours"], opened.alert["handed_over_to"]) == (True, None)
    assert await session.scalar(select(AuditRecord.id).where(AuditRecord.resource_id == str(alert.id))) is None


async def test_a_holiday_is_outside_service_hours(session):
    orgnr = await new_organisation(session)
    patient = await enrol(session, orgnr)
    await at(session, patient, 83, datetime(2021, 5, 17, 11, 0, tzinfo=OSLO))  # a Monday, 17 May
    assert (await the_alert(session, patient.id)).outside_service_hours is True


async def test_one_care_team_organisation_in_service_is_enough(session):
    """Saturday service at the GP office: the alert is in service hours, not handed over."""
    own, _ = await with_partner(session)
    patient = await enrol(session, own)
    gp = await new_organisation(session)
    gp_office = await organisation(session, gp)
    gp_office.kind = "gp-office"
    gp_office.service_hours = {"days": [6], "start": "09:00", "end": "12:00"}
    session.add(CareTeamMember(patient_id=patient.id, organisation_id=gp_office.id, period_from=date(2020, 1, 1)))
    await session.flush()
    await at(session, patient, 83, SATURDAY)
    alert = await the_alert(session, patient.id)
    assert (alert.outside_service_hours, alert.handed_over_to) == (False, None)


async def test_red_alerts_in_service_hours_cost_one_query_and_none_without_red(session, engine):
    orgnr = await new_organisation(session)
    patient = await enrol(session, orgnr)
    tuesday = datetime(2021, 6, 1, 10, 0, tzinfo=OSLO)
    statements: list[str] = []

    def seen(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    sync_engine = (await session.connection()).engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", seen)
    try:
        await at(session, patient, 85, tuesday)  # yellow: no care-team query
        yellow = [s for s in statements if "care_team_members" in s and "service_hours" in s]
        statements.clear()
        await at(session, patient, 83, tuesday + HOUR)  # raised to red in service hours
        red = [s for s in statements if "care_team_members" in s and "service_hours" in s]
        marked = [s for s in statements if "set outside_service_hours =" in s]
    finally:
        event.remove(sync_engine, "before_cursor_execute", seen)
    assert (len(yellow), len(red), len(marked)) == (0, 1, 0)
    assert isinstance((await the_alert(session, patient.id, SPO2_LOW)).id, uuid.UUID)


# -- the hand-over at closing time -------------------------------------------------------------

CLOSING = datetime(2021, 6, 4, 15, 30, tzinfo=OSLO)  # a Friday


async def hand_over(session: AsyncSession, now: datetime) -> int:
    return await service.hand_over_at_closing(session, now.astimezone(UTC))


async def test_at_closing_an_unacknowledged_red_alert_goes_to_the_partner_once(session):
    own, partner = await with_partner(session)
    partner_id = (await organisation(session, partner)).id
    patient = await enrol(session, own)
    await at(session, patient, 83, CLOSING - 5 * MINUTE)  # red at 15:25, in service hours
    alert = await the_alert(session, patient.id)
    assert (alert.level, alert.outside_service_hours, alert.handed_over_to) == ("red", False, None)

    assert await hand_over(session, CLOSING - MINUTE) == 0  # still open
    assert (await the_alert(session, patient.id)).handed_over_to is None
    assert await hand_over(session, CLOSING + MINUTE) == 1
    stored = await the_alert(session, patient.id)
    assert (stored.handed_over_to, stored.handed_over_at, stored.outside_service_hours) == (
        partner_id,
        (CLOSING + MINUTE).astimezone(UTC),
        False,
    )
    assert [(e.kind, e.alert["handed_over_to"]) for e in await events_of(session, alert.id)] == [
        ("opened", None),
        ("changed", partner),
    ]
    [audited] = await session.scalars(
        select(AuditRecord).where(AuditRecord.resource_id == str(alert.id), AuditRecord.action == "hand-over")
    )
    assert (audited.actor_sub, audited.actor_org, audited.patient_id) == ("system", own, patient.id)
    assert [i.id for i in await service.queue(session, staff(partner, sub="legevakt-1"))] == [alert.id]

    # The next minute's check finds nothing more to do.
    assert await hand_over(session, CLOSING + 2 * MINUTE) == 0
    assert len(await events_of(session, alert.id)) == 2


async def test_at_closing_a_red_alert_acknowledged_as_red_stays_with_the_service(session):
    own, partner = await with_partner(session)
    patient = await enrol(session, own)
    await at(session, patient, 83, CLOSING - 20 * MINUTE)
    alert = await the_alert(session, patient.id)
    await service.acknowledge(session, staff(own), alert.id, (CLOSING - 10 * MINUTE).astimezone(UTC))
    assert await hand_over(session, CLOSING + MINUTE) == 0
    assert (await the_alert(session, patient.id)).handed_over_to is None
    assert await service.queue(session, staff(partner, sub="legevakt-1")) == []


async def test_at_closing_a_red_alert_seen_only_as_yellow_goes_to_the_partner(session):
    own, partner = await with_partner(session)
    patient = await enrol(session, own)
    await at(session, patient, 85, CLOSING - HOUR)  # yellow
    alert = await the_alert(session, patient.id)
    await service.acknowledge(session, staff(own), alert.id, (CLOSING - 50 * MINUTE).astimezone(UTC))
    await at(session, patient, 83, CLOSING - 5 * MINUTE)  # raised to red, nobody has seen it red
    assert await hand_over(session, CLOSING + MINUTE) == 1
    assert (await the_alert(session, patient.id)).handed_over_to == (await organisation(session, partner)).id


async def test_at_closing_nothing_goes_without_a_partner_nor_a_yellow_or_resolved_alert(session):
    alone = await new_organisation(session)
    unpartnered = await enrol(session, alone)
    await at(session, unpartnered, 83, CLOSING - 5 * MINUTE)
    own, partner = await with_partner(session)
    yellow, resolved = await enrol(session, own), await enrol(session, own)
    await at(session, yellow, 85, CLOSING - 5 * MINUTE)
    await at(session, resolved, 83, CLOSING - 5 * MINUTE)
    done = await the_alert(session, resolved.id)
    await service.resolve(session, staff(own), done.id, "Called; better", (CLOSING - MINUTE).astimezone(UTC))
    assert await hand_over(session, CLOSING + MINUTE) == 0
    assert (await the_alert(session, unpartnered.id)).handed_over_to is None
    assert (await the_alert(session, yellow.id)).handed_over_to is None
    assert await service.queue(session, staff(partner, sub="legevakt-1")) == []
