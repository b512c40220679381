"""Working an alert (issue 11, item 5): assigned to a staff member, commented on, snoozed for at
most 24 hours with a reason; each change one `changed` event and its audit record.

Proves: an alert is assigned only to a staff member the service knows, of an organisation
that may see the patient (the out-of-hours partner's during a hand-over, nobody's of another
organisation), and unassigned; the same assignment again is no change; a snooze must end
after now and at most 24 hours ahead, acknowledges an open alert, replaces the one before, is
refused on a resolved alert, ends when the alert rises to red (not when it re-triggers at the
same level), when staff wake it and when the worker's clock passes it (one event, once); the
queue hides snoozed alerts by default and filters by assignee; comments are counted, listed
oldest first and paged, on a resolved alert too; the history tells all of it.

Same world and clock as test_lifecycle (2021, inside the rolled-back `session` transaction;
an organisation of the test's own, so its queue holds only this test's alerts).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access.staff import Role, Staff
from rpm.alerts import service
from rpm.alerts.models import Alert, AlertComment
from rpm.audit.models import AuditRecord
from rpm.audit.service import Actor
from rpm.errors import Conflict, Forbidden, InvalidInput, NotFound
from rpm.ingest.worker import IngestWorker
from rpm.staff import service as staff_directory
from rpm.staff.models import StaffMember
from tests.alerts.test_lifecycle import (
    HOUR,
    MINUTE,
    SECOND,
    T0,
    Enrolled,
    enrol,
    events_of,
    new_organisation,
    send,
    staff,
    the_alert,
)
from tests.alerts.test_service_hours import SATURDAY, at, with_partner
from tests.conftest import ORG_B


async def member(session: AsyncSession, orgnr: str, name: str = "Kari Nordmann", *roles: Role) -> Actor:
    """A staff member the service has seen (a sub of the test's own), as an actor."""
    known = Staff(
        sub=f"sub-{uuid.uuid4().hex[:12]}",
        name=name,
        hpr="1234567",
        orgnr=orgnr,
        roles=frozenset(roles or (Role.nurse,)),
    )
    await staff_directory.seen(session, known, T0)
    return Actor(staff=known)


async def yellow_alert(session: AsyncSession, orgnr: str | None = None) -> tuple[str, Enrolled, Alert]:
    """A yellow SpO2 alert, opened at T0 for a patient of `orgnr` (a new organisation unless
    told): (organisation, patient, alert)."""
    orgnr = orgnr or await new_organisation(session)
    patient = await enrol(session, orgnr)
    await send(session, patient, 85, at=T0 - MINUTE)
    return orgnr, patient, await the_alert(session, patient.id)


async def kinds(session: AsyncSession, alert_id: uuid.UUID) -> list[str]:
    return [e.kind for e in await events_of(session, alert_id)]


async def audited(session: AsyncSession, alert_id: uuid.UUID) -> list[str]:
    """The audit trail's changes of the alert, in order (reads left out)."""
    rows = await session.scalars(
        select(AuditRecord.action)
        .where(AuditRecord.resource_id == str(alert_id), AuditRecord.action != "read")
        .order_by(AuditRecord.id)
    )
    return list(rows)


# -- assignment ----------------------------------------------------------------------------


async def test_assigned_to_a_colleague_then_another_then_nobody_each_one_event_and_record(session):
    orgnr, _, alert = await yellow_alert(session)
    kari, ola = await member(session, orgnr, "Kari Nordmann"), await member(session, orgnr, "Ola Nordmann")
    before = await kinds(session, alert.id)

    item = await service.assign(session, kari, alert.id, ola.staff.sub, T0 + MINUTE)
    assert (item.assigned_to, item.assigned_to_name, item.assigned_by, item.assigned_at) == (
        ola.staff.sub,
        "Ola Nordmann",
        kari.staff.sub,
        T0 + MINUTE,
    )
    assert item.status == "open", "assigning is not acknowledging"
    events = await events_of(session, alert.id)
    assert [e.kind for e in events] == [*before, "changed"]
    assert events[-1].alert["assigned_to"] == ola.staff.sub
    assert await audited(session, alert.id) == ["assign"]

    again = await service.assign(session, ola, alert.id, ola.staff.sub, T0 + 2 * MINUTE)
    assert again.assigned_at == T0 + MINUTE, "the same assignment again is no change"
    assert await kinds(session, alert.id) == [*before, "changed"]
    assert await audited(session, alert.id) == ["assign"]

    mine = await service.assign(session, ola, alert.id, kari.staff.sub, T0 + 3 * MINUTE)
    assert (mine.assigned_to, mine.assigned_to_name) == (kari.staff.sub, "Kari Nordmann")

    nobody = await service.assign(session, ola, alert.id, None, T0 + 4 * MINUTE)
    assert (nobody.assigned_to, nobody.assigned_to_name) == (None, None)
    assert (nobody.assigned_by, nobody.assigned_at) == (ola.staff.sub, T0 + 4 * MINUTE), "who took it off"
    assert await kinds(session, alert.id) == [*before, "changed", "changed", "changed"]
    assert await audited(session, alert.id) == ["assign", "assign", "assign"]
    assert (await service.assign(session, ola, alert.id, None, T0 + 5 * MINUTE)).assigned_at == T0 + 4 * MINUTE


async def test_only_a_known_staff_member_who_may_see_the_patient_is_assigned(session):
    orgnr, _, alert = await yellow_alert(session)
    kari = await member(session, orgnr)
    elsewhere = await member(session, ORG_B, "Lege Legesen")
    before = await kinds(session, alert.id)

    for sub in (f"never-seen-{uuid.uuid4().hex[:8]}", elsewhere.staff.sub, ""):
        with pytest.raises(InvalidInput) as refused:
            await service.assign(session, kari, alert.id, sub, T0 + MINUTE)
        assert refused.value.code == "unknown_staff_member"
        assert refused.value.status == 422
    assert (await the_alert(session, alert.patient_id)).assigned_to is None
    assert await kinds(session, alert.id) == before
    assert await audited(session, alert.id) == []

    with pytest.raises(NotFound):
        await service.assign(session, elsewhere, alert.id, elsewhere.staff.sub, T0 + MINUTE)
    with pytest.raises(NotFound):
        await service.assign(session, kari, uuid.uuid4(), kari.staff.sub, T0 + MINUTE)

    await service.resolve(session, kari, alert.id, "Ringte", T0 + HOUR)
    with pytest.raises(Conflict) as resolved:
        await service.assign(session, kari, alert.id, kari.staff.sub, T0 + 2 * HOUR)
    assert resolved.value.code == "alert_resolved"


async def test_during_a_hand_over_the_partners_staff_may_be_assigned_and_are_listed(session):
    own, partner = await with_partner(session)
    patient = await enrol(session, own)
    nurse = await member(session, own, "Kari Nordmann")
    on_call = await member(session, partner, "Legevakt Lege", Role.physician)
    await at(session, patient, 85, SATURDAY - HOUR)  # yellow: not handed over
    alert = await the_alert(session, patient.id)
    with pytest.raises(InvalidInput):
        await service.assign(session, nurse, alert.id, on_call.staff.sub, SATURDAY.astimezone(UTC))
    listed = await staff_directory.colleagues(session, nurse, patient.id)
    assert [m.sub for m in listed] == [nurse.staff.sub]

    await at(session, patient, 83, SATURDAY)  # red on a Saturday: handed over to the partner
    assert (await the_alert(session, patient.id)).handed_over_to is not None
    listed = await staff_directory.colleagues(session, nurse, patient.id)
    assert [(m.sub, m.name, m.orgnr, m.roles) for m in listed] == [
        (nurse.staff.sub, "Kari Nordmann", own, ["nurse"]),
        (on_call.staff.sub, "Legevakt Lege", partner, ["physician"]),
    ]
    item = await service.assign(session, nurse, alert.id, on_call.staff.sub, (SATURDAY + MINUTE).astimezone(UTC))
    assert (item.assigned_to, item.assigned_to_name) == (on_call.staff.sub, "Legevakt Lege")
    # The partner works the alert it was handed, and may give it back.
    back = await service.assign(session, on_call, alert.id, nurse.staff.sub, (SATURDAY + HOUR).astimezone(UTC))
    assert back.assigned_to == nurse.staff.sub


async def test_the_partner_works_only_the_alert_handed_over_to_it(session):
    """While one alert is handed over the partner sees the patient, but the patient's other
    alerts stay the care team's: the partner may not assign, snooze or wake them (403), nor may
    the partner's staff be given them (a care team would think someone who cannot act has it)."""
    own, partner = await with_partner(session)
    patient = await enrol(session, own)
    nurse = await member(session, own, "Kari Nordmann")
    on_call = await member(session, partner, "Legevakt Lege", Role.physician)
    await at(session, patient, 83, SATURDAY)  # red on a Saturday: handed over
    handed = await the_alert(session, patient.id)
    other = Alert(
        patient_id=patient.id,
        rule="missing:weight",
        level="yellow",
        opened_at=SATURDAY.astimezone(UTC),
        raised_at=SATURDAY.astimezone(UTC),
        updated_at=SATURDAY.astimezone(UTC),
    )
    session.add(other)
    await session.flush()
    later = (SATURDAY + MINUTE).astimezone(UTC)

    for change in (
        service.assign(session, on_call, other.id, on_call.staff.sub, later),
        service.snooze(session, on_call, other.id, later + HOUR, "Venter", later),
        service.wake(session, on_call, other.id, later),
    ):
        with pytest.raises(Forbidden) as refused:
            await change
        assert refused.value.code == "care_team_only"
    with pytest.raises(InvalidInput) as unknown:
        await service.assign(session, nurse, other.id, on_call.staff.sub, later)
    assert unknown.value.code == "unknown_staff_member"
    listed = await staff_directory.colleagues(session, nurse, patient.id, partner=None)
    assert [m.sub for m in listed] == [nurse.staff.sub], "the other alert's colleagues: the care team's"
    # The alert handed over is the partner's to work, and the care team's too.
    assert (
        await service.assign(session, on_call, handed.id, on_call.staff.sub, later)
    ).assigned_to == on_call.staff.sub
    assert (await service.snooze(session, nurse, other.id, later + HOUR, "Venter", later)).snoozed_until is not None


async def test_the_directory_is_the_callers_organisation_and_refuses_an_unseen_patient(session):
    orgnr = await new_organisation(session)
    kari = await member(session, orgnr, "Kari")
    unnamed = await member(session, orgnr, None)  # type: ignore[arg-type]
    await member(session, ORG_B, "Another")
    listed = await staff_directory.colleagues(session, kari, None)
    assert [m.sub for m in listed] == [kari.staff.sub, unnamed.staff.sub], "by name, the unnamed last"
    page = await staff_directory.colleagues(session, kari, None, limit=1)
    assert len(page) == 2, "one more than the limit tells there is more"
    rest = await staff_directory.colleagues(session, kari, None, after=staff_directory.position_of(page[0]), limit=1)
    assert [m.sub for m in rest] == [unnamed.staff.sub]

    other = await enrol(session, ORG_B)
    with pytest.raises(NotFound):
        await staff_directory.colleagues(session, kari, other.id)
    searched = await session.scalar(
        select(func.count()).where(AuditRecord.actor_sub == kari.staff.sub, AuditRecord.resource_type == "StaffMember")
    )
    assert searched == 3


async def test_seen_writes_a_staff_member_down_once_and_keeps_them_up_to_date(session):
    orgnr = await new_organisation(session)
    first = Staff(sub=f"sub-{uuid.uuid4().hex[:8]}", name="Kari", hpr=None, orgnr=orgnr, roles=frozenset({Role.nurse}))
    await staff_directory.seen(session, first, T0)
    renamed = Staff(first.sub, "Kari Nordmann", "1234567", orgnr, frozenset({Role.nurse, Role.admin}))
    await staff_directory.seen(session, renamed, T0 + HOUR)
    await staff_directory.seen(session, renamed, T0 + 30 * MINUTE)  # an older request finishing late
    [stored] = (
        await session.scalars(
            select(StaffMember).where(StaffMember.sub == first.sub).execution_options(populate_existing=True)
        )
    ).all()
    assert (stored.name, stored.hpr, sorted(stored.roles)) == ("Kari Nordmann", "1234567", ["admin", "nurse"])
    assert (stored.first_seen_at, stored.last_seen_at) == (T0, T0 + HOUR)


# -- snooze --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "until",
    [T0, T0 - SECOND, T0 - HOUR, T0 + 24 * HOUR + SECOND, T0 + 48 * HOUR, datetime(2021, 6, 1, 9, 0)],
    ids=["now", "a-second-ago", "an-hour-ago", "24h-and-a-second", "48h", "without-time-zone"],
)
async def test_a_snooze_ends_after_now_and_at_most_24_hours_ahead(session, until):
    orgnr, _, alert = await yellow_alert(session)
    before = await kinds(session, alert.id)
    with pytest.raises(InvalidInput) as refused:
        await service.snooze(session, staff(orgnr), alert.id, until, "Venter på ny måling", T0)
    assert (refused.value.code, refused.value.status) == ("invalid_snooze", 422)
    stored = await the_alert(session, alert.patient_id)
    assert (stored.snoozed_until, stored.status) == (None, "open")
    assert await kinds(session, alert.id) == before


@pytest.mark.parametrize("reason", ["", "   ", "x" * 501, "a\x00b"])
async def test_a_snooze_needs_a_reason(session, reason):
    orgnr, _, alert = await yellow_alert(session)
    with pytest.raises(InvalidInput) as refused:
        await service.snooze(session, staff(orgnr), alert.id, T0 + HOUR, reason, T0)
    assert refused.value.code == "invalid_snooze"


async def test_snoozing_an_open_alert_acknowledges_it_and_snoozing_again_replaces_the_snooze(session):
    orgnr, _, alert = await yellow_alert(session)
    kari = await member(session, orgnr, "Kari Nordmann")
    before = await kinds(session, alert.id)

    item = await service.snooze(session, kari, alert.id, T0 + 24 * HOUR, "Venter på ny måling i morgen", T0)
    assert (item.status, item.acknowledged_by, item.acknowledged_at) == ("acknowledged", kari.staff.sub, T0)
    assert (item.snoozed_until, item.snoozed_at, item.snooze_reason) == (
        T0 + 24 * HOUR,
        T0,
        "Venter på ny måling i morgen",
    )
    assert (item.snoozed_by, item.snoozed_by_name) == (kari.staff.sub, "Kari Nordmann")
    assert await kinds(session, alert.id) == [*before, "changed"]
    assert await audited(session, alert.id) == ["snooze", "acknowledge"]

    ola = await member(session, orgnr, "Ola Nordmann")
    again = await service.snooze(session, ola, alert.id, T0 + 2 * HOUR, "Ringer pasienten kl. 10", T0 + HOUR)
    assert (again.snoozed_until, again.snoozed_by_name, again.snooze_reason) == (
        T0 + 2 * HOUR,
        "Ola Nordmann",
        "Ringer pasienten kl. 10",
    )
    assert (again.acknowledged_by, again.acknowledged_at) == (kari.staff.sub, T0), "acknowledged once"
    assert await kinds(session, alert.id) == [*before, "changed", "changed"]
    assert await audited(session, alert.id) == ["snooze", "acknowledge", "snooze"]


async def test_a_resolved_alert_cannot_be_snoozed_and_resolving_ends_a_snooze(session):
    orgnr, _, alert = await yellow_alert(session)
    await service.snooze(session, staff(orgnr), alert.id, T0 + HOUR, "Venter", T0)
    resolved = await service.resolve(session, staff(orgnr), alert.id, "Ringte", T0 + MINUTE)
    assert resolved.snoozed_until is None
    with pytest.raises(Conflict) as refused:
        await service.snooze(session, staff(orgnr), alert.id, T0 + 2 * HOUR, "Venter", T0 + 2 * MINUTE)
    assert refused.value.code == "alert_resolved"
    kinds_before = await kinds(session, alert.id)
    assert (await service.wake(session, staff(orgnr), alert.id, T0 + 3 * MINUTE)).snoozed_until is None
    assert await service.wake_due(session, T0 + 3 * HOUR) == 0
    assert await kinds(session, alert.id) == kinds_before


async def test_rising_to_red_wakes_a_snoozed_alert_and_the_same_level_does_not(session):
    orgnr, patient, alert = await yellow_alert(session)
    await service.snooze(session, staff(orgnr), alert.id, T0 + 12 * HOUR, "Kjent lav metning", T0)
    await send(session, patient, 85, at=T0 + HOUR)  # yellow again: stays snoozed
    kept = await the_alert(session, patient.id)
    assert (kept.snoozed_until, kept.occurrences) == (T0 + 12 * HOUR, 2)

    await send(session, patient, 83, at=T0 + 2 * HOUR)  # red: the snooze ends
    woken = await the_alert(session, patient.id)
    assert (woken.level, woken.snoozed_until) == ("red", None)
    assert woken.snooze_reason == "Kjent lav metning", "who and why stay as the last snooze's"
    last = (await events_of(session, alert.id))[-1]
    assert (last.kind, last.alert["level"], last.alert["snoozed_until"]) == ("changed", "red", None)


async def test_the_clock_wakes_each_snooze_once_when_its_time_comes(session):
    orgnr, _, alert = await yellow_alert(session)
    _, _, later = await yellow_alert(session, orgnr)
    await service.snooze(session, staff(orgnr), alert.id, T0 + HOUR, "Venter", T0)
    await service.snooze(session, staff(orgnr), later.id, T0 + 3 * HOUR, "Venter", T0)
    before = await kinds(session, alert.id)

    assert await service.wake_due(session, T0 + HOUR - SECOND) == 0
    assert await service.wake_due(session, T0 + HOUR) == 1
    assert await kinds(session, alert.id) == [*before, "changed"]
    assert (await events_of(session, alert.id))[-1].alert["snoozed_until"] is None
    assert await service.wake_due(session, T0 + 2 * HOUR) == 0
    assert await kinds(session, alert.id) == [*before, "changed"], "woken once"
    stored = await the_alert(session, alert.patient_id)
    assert (stored.snoozed_until, stored.status, stored.updated_at) == (None, "acknowledged", T0 + HOUR)
    assert (await the_alert(session, later.patient_id)).snoozed_until == T0 + 3 * HOUR


async def test_staff_wake_a_snoozed_alert_early_and_waking_another_changes_nothing(session):
    orgnr, _, alert = await yellow_alert(session)
    await service.snooze(session, staff(orgnr), alert.id, T0 + HOUR, "Venter", T0)
    before = await kinds(session, alert.id)
    woken = await service.wake(session, staff(orgnr, sub="nurse-ola"), alert.id, T0 + MINUTE)
    assert (woken.snoozed_until, woken.snooze_reason) == (None, "Venter")
    assert await kinds(session, alert.id) == [*before, "changed"]
    assert await audited(session, alert.id) == ["snooze", "acknowledge", "wake"]
    await service.wake(session, staff(orgnr), alert.id, T0 + 2 * MINUTE)
    assert await kinds(session, alert.id) == [*before, "changed"]
    assert await audited(session, alert.id) == ["snooze", "acknowledge", "wake"]
    with pytest.raises(NotFound):
        await service.wake(session, staff(ORG_B), alert.id, T0 + 3 * MINUTE)


# -- the queue -----------------------------------------------------------------------------


async def test_the_queue_hides_snoozed_alerts_unless_asked_and_filters_by_assignee(session):
    orgnr, _, snoozed = await yellow_alert(session)
    _, _, assigned = await yellow_alert(session, orgnr)
    _, _, plain = await yellow_alert(session, orgnr)
    kari = await member(session, orgnr, "Kari")
    await service.snooze(session, kari, snoozed.id, T0 + HOUR, "Venter", T0)
    await service.assign(session, kari, assigned.id, kari.staff.sub, T0)

    async def ids(now: datetime = T0 + MINUTE, **filters) -> set[uuid.UUID]:
        return {a.id for a in await service.queue(session, kari, now=now, **filters)}

    assert await ids() == {assigned.id, plain.id}
    assert await ids(snoozed="hide") == {assigned.id, plain.id}
    assert await ids(snoozed="only") == {snoozed.id}
    assert await ids(snoozed="include") == {snoozed.id, assigned.id, plain.id}
    assert await ids(now=T0 + HOUR) == {snoozed.id, assigned.id, plain.id}, "a snooze passed hides nothing"
    assert await ids(assignee=kari.staff.sub) == {assigned.id}
    assert await ids(assignee="somebody-else") == set()


# -- comments ------------------------------------------------------------------------------


async def test_comments_are_counted_listed_oldest_first_paged_and_allowed_on_a_resolved_alert(session):
    orgnr, _, alert = await yellow_alert(session)
    kari, ola = await member(session, orgnr, "Kari Nordmann"), await member(session, orgnr, "Ola Nordmann")
    before = await kinds(session, alert.id)

    first = await service.comment(session, kari, alert.id, "Ringte, ingen svar", T0 + MINUTE)
    assert (first.by, first.by_name, first.at, first.text) == (
        kari.staff.sub,
        "Kari Nordmann",
        T0 + MINUTE,
        "Ringte, ingen svar",
    )
    await service.comment(session, ola, alert.id, "Fikk tak i datteren", T0 + 2 * MINUTE)
    await service.resolve(session, ola, alert.id, "Pasienten har det bra", T0 + 3 * MINUTE)
    await service.comment(session, kari, alert.id, "Fastlegen er orientert", T0 + 4 * MINUTE)

    stored = await the_alert(session, alert.patient_id)
    assert stored.comments == 3
    assert stored.comments == await session.scalar(
        select(func.count()).select_from(AlertComment).where(AlertComment.alert_id == alert.id)
    )
    assert await kinds(session, alert.id) == [*before, "changed", "changed", "resolved", "changed"]
    assert (await events_of(session, alert.id))[-1].alert["comments"] == 3
    assert await audited(session, alert.id) == ["comment", "comment", "resolve", "comment"]

    listed = await service.comments_of(session, ola, alert.id)
    assert [c.text for c in listed] == ["Ringte, ingen svar", "Fikk tak i datteren", "Fastlegen er orientert"]
    page = await service.comments_of(session, ola, alert.id, limit=2)
    assert len(page) == 3, "one more than the limit tells there is more"
    rest = await service.comments_of(session, ola, alert.id, after=page[1].id, limit=2)
    assert [c.text for c in rest] == ["Fastlegen er orientert"]
    reads = await session.scalar(
        select(func.count()).where(
            AuditRecord.resource_id == str(alert.id),
            AuditRecord.action == "read",
            AuditRecord.resource_type == "AlertComment",
        )
    )
    assert reads == 3

    with pytest.raises(NotFound):
        await service.comments_of(session, staff(ORG_B), alert.id)
    with pytest.raises(NotFound):
        await service.comment(session, staff(ORG_B), alert.id, "Hei", T0 + 5 * MINUTE)
    for text in ("", "  \n", "x" * 4001):
        with pytest.raises(InvalidInput) as refused:
            await service.comment(session, kari, alert.id, text, T0 + 5 * MINUTE)
        assert refused.value.code == "invalid_comment"
    assert (await the_alert(session, alert.patient_id)).comments == 3


# -- the history ---------------------------------------------------------------------------


async def test_the_history_tells_assignment_snooze_waking_and_comments(session):
    orgnr, patient, alert = await yellow_alert(session)
    kari, ola = await member(session, orgnr, "Kari Nordmann"), await member(session, orgnr, "Ola Nordmann")
    await service.assign(session, kari, alert.id, ola.staff.sub, T0 + MINUTE)
    await service.snooze(session, ola, alert.id, T0 + 6 * HOUR, "Venter på ny måling", T0 + 2 * MINUTE)
    await service.comment(session, ola, alert.id, "Avtalt ny måling kl. 12", T0 + 3 * MINUTE)
    await send(session, patient, 83, at=T0 + HOUR - MINUTE)  # red at T0 + 1 h: wakes it
    await service.snooze(session, ola, alert.id, T0 + 2 * HOUR, "Ringer legevakten", T0 + HOUR + MINUTE)
    await service.wake_due(session, T0 + 2 * HOUR)
    await service.snooze(session, ola, alert.id, T0 + 4 * HOUR, "Venter", T0 + 2 * HOUR + MINUTE)
    await service.wake(session, kari, alert.id, T0 + 2 * HOUR + 2 * MINUTE)  # staff wake it early
    await service.assign(session, kari, alert.id, None, T0 + 3 * HOUR)

    steps = await service.history(session, kari, alert.id)
    assert [(s.kind, s.at, s.by) for s in steps] == [
        ("opened", T0, None),
        ("assigned", T0 + MINUTE, kari.staff.sub),
        ("acknowledged", T0 + 2 * MINUTE, ola.staff.sub),
        ("snoozed", T0 + 2 * MINUTE, ola.staff.sub),
        ("commented", T0 + 3 * MINUTE, ola.staff.sub),
        ("raised", T0 + HOUR, None),
        ("woke", T0 + HOUR, None),
        ("snoozed", T0 + HOUR + MINUTE, ola.staff.sub),
        ("woke", T0 + 2 * HOUR, None),
        ("snoozed", T0 + 2 * HOUR + MINUTE, ola.staff.sub),
        ("woke", T0 + 2 * HOUR + 2 * MINUTE, kari.staff.sub),
        ("unassigned", T0 + 3 * HOUR, kari.staff.sub),
    ]
    assert steps[-2].by_name == "Kari Nordmann", "who woke it, by name"
    assigned, acknowledged, snoozed, commented = steps[1:5]
    assert (assigned.by_name, assigned.assigned_to, assigned.assigned_to_name) == (
        "Kari Nordmann",
        ola.staff.sub,
        "Ola Nordmann",
    )
    assert acknowledged.by_name == "Ola Nordmann"
    assert (snoozed.by_name, snoozed.until, snoozed.reason) == ("Ola Nordmann", T0 + 6 * HOUR, "Venter på ny måling")
    assert (commented.by_name, commented.text) == ("Ola Nordmann", "Avtalt ny måling kl. 12")
    assert steps[-1].by_name == "Kari Nordmann"


# -- the item ------------------------------------------------------------------------------


async def test_the_queue_item_and_the_events_carry_the_work(session):
    orgnr, _, alert = await yellow_alert(session)
    kari = await member(session, orgnr, "Kari Nordmann")
    await service.assign(session, kari, alert.id, kari.staff.sub, T0)
    await service.comment(session, kari, alert.id, "Ringte", T0 + MINUTE)
    item = await service.snooze(session, kari, alert.id, T0 + HOUR, "Venter", T0 + 2 * MINUTE)
    event = (await events_of(session, alert.id))[-1].alert
    assert event == item.model_dump(mode="json")
    assert (event["assigned_to"], event["comments"], event["snooze_reason"]) == (kari.staff.sub, 1, "Venter")
    [queued] = await service.queue(session, kari, snoozed="include", now=T0 + 3 * MINUTE)
    assert queued == item
    detail = await service.detail(session, kari, alert.id)
    assert (detail.assigned_to_name, detail.snoozed_until, detail.comments) == ("Kari Nordmann", T0 + HOUR, 1)


# -- the worker's clock --------------------------------------------------------------------


async def test_the_workers_clock_ends_a_snooze_whose_time_has_come(settings, committed, own_organisation):
    """Committed, in a week of 2021 no other test's clock reaches; the alert is resolved after."""
    week_later = T0 + 7 * 24 * HOUR  # a Tuesday, in service hours: nothing else of the round applies
    async with committed() as session, session.begin():
        patient = await enrol(session, own_organisation)
        await send(session, patient, 85, at=week_later - MINUTE)
        alert = await the_alert(session, patient.id)
        await service.snooze(session, staff(own_organisation), alert.id, week_later + HOUR, "Venter", week_later)
    worker = IngestWorker(settings)
    worker.sessions = committed
    try:
        await worker.run_checks(week_later + HOUR - SECOND)
        async with committed() as session:
            assert (await the_alert(session, patient.id)).snoozed_until == week_later + HOUR
        await worker.run_checks(week_later + HOUR)
        async with committed() as session:
            woken = await the_alert(session, patient.id)
            assert (woken.snoozed_until, woken.updated_at) == (None, week_later + HOUR)
            assert [e.kind for e in await events_of(session, alert.id)] == ["opened", "changed", "changed"]
    finally:
        async with committed() as session, session.begin():
            await service.resolve(session, staff(own_organisation), alert.id, "Testen er ferdig", week_later + 2 * HOUR)
