"""The alert lifecycle: open -> acknowledged -> resolved (rules.md), and the queue.

Takes a session and never commits. Every change appends its events last (alerts.events).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access import service as access
from rpm.access.repository import followed_patient_ids, visible_patient_ids
from rpm.access.staff import Staff
from rpm.alerts import events, repository
from rpm.alerts.breaches import Findings, fold_breaches
from rpm.alerts.models import ACTIVE, Alert, AlertStatus, ResolutionOutcome
from rpm.alerts.schemas import (
    MAX_SNOOZE_HOURS,
    AlertDetail,
    AlertItem,
    CommentOut,
    EnteredInError,
    EvidenceItem,
    HistoryEntry,
    HistoryKind,
)
from rpm.audit.service import Actor, record
from rpm.errors import Conflict, InvalidInput, NotFound
from rpm.organisations import repository as organisations_repository
from rpm.organisations import service as organisations
from rpm.organisations.service_hours import service_time_reached_any
from rpm.staff import service as staff

# How many of an alert's triggering Observations a queue item (and a stream event) lists, and
# how many its detail view shows: the newest ones.
ITEM_OBSERVATIONS = 50
DETAIL_EVIDENCE = 500
# The longest comment and snooze reason staff may write (alerts.schemas checks the same).
COMMENT_LENGTH = 4000
SNOOZE_REASON_LENGTH = 500


def to_item(
    alert: Alert | Row[Any] | dict[str, Any],
    observations: list[str] | None = None,
    partners: dict[uuid.UUID, str] | None = None,
) -> AlertItem:
    """The queue item of an Alert, or of a row (or dict) with its columns, `observations` and
    `handed_over_to_orgnr`; `partners`: the organisation numbers of the partners, by id, for
    an Alert handed over."""
    item = AlertItem.model_validate(alert)
    if observations is not None:
        item.observations = observations
    if partners and isinstance(alert, Alert) and alert.handed_over_to is not None:
        item.handed_over_to = partners.get(alert.handed_over_to)
    return item


async def _partners_of(session: AsyncSession, alerts: Sequence[Alert]) -> dict[uuid.UUID, str]:
    """The organisation numbers of the partners the alerts are handed over to (no query when
    none is)."""
    return await organisations_repository.orgnrs_of(session, {a.handed_over_to for a in alerts if a.handed_over_to})


async def items(session: AsyncSession, alerts: Sequence[Alert]) -> list[AlertItem]:
    references = await repository.evidence_references(session, [a.id for a in alerts], newest=ITEM_OBSERVATIONS)
    partners = await _partners_of(session, alerts)
    return [to_item(a, references[a.id], partners) for a in alerts]


async def _emit(session: AsyncSession, changes: Sequence[tuple[str, uuid.UUID]], now: datetime) -> None:
    """Store and notify one event per (kind, alert), with the alert as it now is."""
    if not changes:
        return
    rows = await repository.with_references(session, {alert_id for _, alert_id in changes}, newest=ITEM_OBSERVATIONS)
    by_id = {row.id: row for row in rows}
    await _append_events(session, [(kind, by_id[alert_id]) for kind, alert_id in changes], now)


async def _append_events(
    session: AsyncSession, changes: Sequence[tuple[str, Row[Any] | dict[str, Any]]], now: datetime
) -> None:
    """(kind, alert row with its `observations`) as events."""
    await events.append(session, [(kind, to_item(row).model_dump(mode="json")) for kind, row in changes], now)


# The system's part in the audit trail: the hand-over of an alert to the out-of-hours partner,
# recorded in the name of the care-team organisation that names the partner.
SYSTEM_SUB, SYSTEM_NAME = "system", "rpm"


async def _outside_service_hours(
    session: AsyncSession, became_red: Sequence[tuple[uuid.UUID, uuid.UUID]], now: datetime
) -> dict[uuid.UUID, dict[str, Any]]:
    """Of the alerts (id, patient) that became red at `now`, mark those outside the service
    hours of the patient's care team and hand each over to its out-of-hours partner, if one is
    named (docs/rules.md, "Service hours"), with an audit record of each hand-over. Returns
    the columns changed, by alert id. Queries: none without red alerts; one (the care teams)
    when all are in service hours; else two and one per hand-over."""
    if not became_red:
        return {}
    follow = await organisations.follow_ups(session, {p for _, p in became_red}, now, default_red_minutes=0.0)
    outside = {a: follow[p] for a, p in became_red if not follow[p].in_service(now)}
    marked = await repository.mark_outside_service_hours(session, {a: f.partner_id for a, f in outside.items()}, now)
    await _record_hand_overs(session, marked, outside)
    return {
        row.id: {
            "outside_service_hours": row.outside_service_hours,
            "handed_over_to": row.handed_over_to,
            "handed_over_at": row.handed_over_at,
            "handed_over_to_orgnr": row.handed_over_to_orgnr,
        }
        for row in marked
    }


async def _record_hand_overs(
    session: AsyncSession, rows: Sequence[Row[Any]], follow: dict[uuid.UUID, organisations.FollowUp]
) -> None:
    """An audit record of each alert handed over now (rows of mark_outside_service_hours), in
    the name of the care-team organisation naming the partner (`follow`: by alert id)."""
    for row in rows:
        handed_over_by = follow[row.id].handed_over_by
        if row.handed_over_now and handed_over_by is not None:
            system = Actor(Staff(sub=SYSTEM_SUB, name=SYSTEM_NAME, hpr=None, orgnr=handed_over_by, roles=frozenset()))
            await record(session, system, "hand-over", "Alert", str(row.id), [row.patient_id])


async def hand_over_at_closing(session: AsyncSession, now: datetime) -> int:
    """Hand the red alerts nobody has acknowledged as red over to the out-of-hours partner
    once the service has closed (docs/rules.md, "Service hours"): a red alert raised at 15:25
    must not wait unseen until the morning. Not marked outside service hours (it was raised in
    them); audited and announced as `changed`. For the worker's clock; safe when several
    workers run it at once. Returns how many were handed over."""
    unattended = await repository.unattended_red(session)
    if not unattended:
        return 0
    follow = await organisations.follow_ups(session, {p for _, p in unattended}, now, default_red_minutes=0.0)
    closed = {a: follow[p] for a, p in unattended if follow[p].partner_id is not None and not follow[p].in_service(now)}
    handed = [
        row
        for row in await repository.mark_outside_service_hours(
            session, {a: f.partner_id for a, f in closed.items()}, now, mark=False
        )
        if row.handed_over_now
    ]
    await _record_hand_overs(session, handed, closed)
    await _emit(session, [("changed", row.id) for row in handed], now)
    return len(handed)


async def land_findings(session: AsyncSession, findings: Findings, now: datetime) -> list[str]:
    """What the rules found in an ingest batch: open or update an alert for each (patient,
    rule) breached, and resolve the active alerts the batch answers; a red alert opened or
    raised outside service hours is marked and handed over to the out-of-hours partner in the
    same transaction. Events are appended last, one per changed alert, telling the marks too.
    Returns the rule keys of the alerts opened."""
    changed = await repository.land(
        session, findings.answered, fold_breaches(findings.breaches), now, newest=ITEM_OBSERVATIONS
    )
    became_red = [
        (row.id, row.patient_id)
        for row in changed
        if row.change != "resolved" and row.level == "red" and row.raised_at >= now
    ]
    marks = await _outside_service_hours(session, became_red, now)
    await _append_events(
        session,
        [(row.change, dict(row._mapping) | marks[row.id] if row.id in marks else row) for row in changed],
        now,
    )
    return [row.rule for row in changed if row.change == "opened"]


async def open_findings(session: AsyncSession, findings: Findings, now: datetime) -> int:
    """What the clock rules found: open an alert for each (patient, rule) breached that has no
    active one; an active one is left as it is. A red one outside service hours is marked and
    handed over as in land_findings. Returns how many alerts opened."""
    opened = await repository.open_unless_active(session, fold_breaches(findings.breaches), now)
    await _outside_service_hours(session, [(row.id, row.patient_id) for row in opened if row.level == "red"], now)
    await _emit(session, [("opened", row.id) for row in opened], now)
    return len(opened)


async def escalate(session: AsyncSession, now: datetime, red_after: timedelta, yellow_after: timedelta) -> int:
    """Escalate the alerts nobody acknowledged in time, the time counted in the service hours
    of the patient's care team (docs/rules.md, "Escalation"): a red one not acknowledged since
    it became red, after the organisation's red escalation time (`red_after` where it set
    none); an open one, whatever its level, after `yellow_after`. Safe when several workers run
    it at once: each alert escalates once."""
    shortest = await repository.shortest_red_minutes(session)
    shortest_red = min(red_after, timedelta(minutes=shortest)) if shortest is not None else red_after
    candidates = await repository.escalation_candidates(session, now, shortest_red, yellow_after)
    if not candidates:
        return 0
    default_minutes = red_after / timedelta(minutes=1)
    follow = await organisations.follow_ups(session, {c.patient_id for c in candidates}, now, default_minutes)
    due = []
    for c in candidates:
        hours = follow[c.patient_id].hours
        red_budget = timedelta(minutes=follow[c.patient_id].red_minutes)
        if (c.red_unacknowledged and service_time_reached_any(hours, c.raised_at, red_budget, now) is not None) or (
            c.status == AlertStatus.open and service_time_reached_any(hours, c.opened_at, yellow_after, now) is not None
        ):
            due.append(c.id)
    escalated = await repository.mark_escalated(session, due, now)
    await _emit(session, [("escalated", alert_id) for alert_id in escalated], now)
    return len(escalated)


# -- staff actions ---------------------------------------------------------------------


async def _visible_alert(
    session: AsyncSession, actor: Actor, alert_id: uuid.UUID, *, for_update: bool = False
) -> Alert:
    alert = await repository.by_id(session, alert_id, for_update=for_update)
    if alert is None or not await access.may_see_patient(session, actor.staff, alert.patient_id):
        raise NotFound("not_found", "no such alert")
    return alert


# The queue's view of snoozed alerts: left out (the default), only them, or both.
SnoozedFilter = Literal["hide", "only", "include"]


async def queue(
    session: AsyncSession,
    actor: Actor,
    *,
    statuses: Sequence[str] = ACTIVE,
    level: str | None = None,
    patient_id: uuid.UUID | None = None,
    organisation: str | None = None,
    escalated: bool | None = None,
    assignee: str | None = None,
    snoozed: SnoozedFilter = "hide",
    now: datetime | None = None,
    after: tuple[int, int, datetime, uuid.UUID] | None = None,
    limit: int = 50,
) -> list[AlertItem]:
    """The alert queue. `assignee`: only the alerts assigned to this staff member (a sub);
    `snoozed`: "hide" leaves out the alerts snoozed at `now` (default: the current time),
    "only" shows only those, "include" shows both.

    Returns up to `limit` + 1: the last one, when there, only tells the page there is more;
    it is neither shown nor audited."""
    today = access.today()
    statement = repository.queue_statement(
        visible_patient_ids(actor.staff.orgnr, today),
        statuses=statuses,
        level=level,
        patient_id=patient_id,
        organisation_patients=followed_patient_ids(organisation, today) if organisation else None,
        escalated=escalated,
        assignee=assignee,
        snoozed=snoozed,
        now=now or datetime.now(UTC),
        after=after,
    ).limit(limit + 1)
    found = list(await session.scalars(statement))
    await record(session, actor, "search", "Alert", None, sorted({a.patient_id for a in found[:limit]}))
    return await items(session, found)


def queue_position(item: AlertItem) -> tuple[int, int, datetime, uuid.UUID]:
    """The sort key of an item, for the next page's cursor."""
    return (0 if item.level == "red" else 1, 0 if item.escalated else 1, item.opened_at, item.id)


def _entered_in_error(found: repository.Invalidated | None) -> EnteredInError | None:
    if found is None:
        return None
    return EnteredInError(at=found.at, by=found.by_sub, by_name=found.by_name, reason=found.reason)


async def detail(session: AsyncSession, actor: Actor, alert_id: uuid.UUID) -> AlertDetail:
    alert = await _visible_alert(session, actor, alert_id)
    evidence = (await repository.evidence_of(session, [alert.id], newest=DETAIL_EVIDENCE))[alert.id]
    await record(session, actor, "read", "Alert", str(alert.id), [alert.patient_id])
    detail = AlertDetail.model_validate(alert)
    if alert.handed_over_to is not None:
        detail.handed_over_to = (await _partners_of(session, [alert])).get(alert.handed_over_to)
    invalidated = await repository.invalidated_among(session, [e.observation_id for e in evidence])
    detail.evidence = [
        EvidenceItem(
            observation=f"Observation/{e.observation_id}",
            value=e.value,
            effective_at=e.effective_at,
            entered_in_error=_entered_in_error(invalidated.get(e.observation_id)),
        )
        for e in evidence
    ]
    detail.observations = [e.observation for e in detail.evidence]
    return detail


# Steps of one moment, in the order they happened: a rise to red wakes a snoozed alert;
# snoozing an open alert acknowledges it first.
_STEP_ORDER: dict[str, int] = {
    "opened": 0,
    "raised": 1,
    "woke": 2,
    "acknowledged": 3,
    "snoozed": 4,
    "escalated": 5,
    "assigned": 6,
    "unassigned": 6,
    "commented": 7,
    "resolved": 8,
}


def _steps_of_events(alert: Alert, rows: Sequence[Row[Any]], names: dict[str | None, str | None]) -> list[HistoryEntry]:
    """The story the stored events tell: `changed` is "raised" where the level went from
    yellow to red, "acknowledged" where the status became acknowledged, "assigned" or
    "unassigned" where the assignment changed, "snoozed" where a snooze began (or was
    replaced) and "woke" where one ended before its time was passed on. `names`: staff
    members' names by sub, for those the events do not name."""
    names = names | {alert.acknowledged_by: alert.acknowledged_by_name, alert.resolved_by: alert.resolved_by_name}
    steps: list[HistoryEntry] = []
    for row in rows:
        kinds: list[HistoryKind] = []
        if row.kind in ("opened", "escalated", "resolved"):
            kinds.append(row.kind)
        else:
            if row.previous_level == "yellow" and row.level == "red":
                kinds.append("raised")
            if row.woke:
                kinds.append("woke")
            if row.status == AlertStatus.acknowledged and row.previous_status != AlertStatus.acknowledged:
                kinds.append("acknowledged")
            if row.snoozed:
                kinds.append("snoozed")
            if row.assignment_changed and row.assigned_at is not None:
                kinds.append("assigned" if row.assigned_to is not None else "unassigned")
        for kind in kinds:
            by = {
                "acknowledged": row.acknowledged_by,
                "resolved": row.resolved_by,
                "snoozed": row.snoozed_by,
                "assigned": row.assigned_by,
                "unassigned": row.assigned_by,
                "woke": row.woken_by,
            }.get(kind)
            step = HistoryEntry(kind=kind, at=row.at, level=row.level, value=row.value, unit=row.unit, by=by)
            if by is not None:
                step.by_name = {"snoozed": row.snoozed_by_name, "woke": row.woken_by_name}.get(kind) or names.get(by)
            if kind == "resolved":
                step.note, step.outcome = row.note, row.outcome
            elif kind == "assigned":
                step.assigned_to, step.assigned_to_name = row.assigned_to, row.assigned_to_name
            elif kind == "snoozed":
                step.until, step.reason = row.snoozed_until, row.snooze_reason
            steps.append(step)
    return steps


def _steps_of_columns(alert: Alert, known: set[str]) -> list[HistoryEntry]:
    """The steps the alert's own columns record that no stored event tells (alerts loaded in
    bulk without events): opened, raised (a red alert that reached red after it opened),
    acknowledged, escalated, resolved. Each happens at most once, and once an "opened" event
    is stored every later change of level is an event too."""
    raised = alert.level == "red" and alert.raised_at > alert.opened_at
    steps: list[dict[str, Any]] = []
    if "opened" not in known:
        steps.append({"kind": "opened", "at": alert.opened_at, "level": "yellow" if raised else alert.level})
    if raised and "raised" not in known:
        steps.append({"kind": "raised", "at": alert.raised_at, "level": "red"})
    if alert.acknowledged_at is not None and "acknowledged" not in known:
        steps.append(
            {
                "kind": "acknowledged",
                "at": alert.acknowledged_at,
                "by": alert.acknowledged_by,
                "by_name": alert.acknowledged_by_name,
            }
        )
    if alert.escalated_at is not None and "escalated" not in known:
        steps.append({"kind": "escalated", "at": alert.escalated_at})
    if alert.resolved_at is not None and "resolved" not in known:
        steps.append(
            {
                "kind": "resolved",
                "at": alert.resolved_at,
                "by": alert.resolved_by,
                "by_name": alert.resolved_by_name,
                "note": alert.note,
                "outcome": alert.outcome,
            }
        )
    # The columns keep only the newest value: a step of its own would claim what was not seen.
    return [HistoryEntry.model_validate({"level": alert.level, "unit": alert.unit} | step) for step in steps]


async def history(session: AsyncSession, actor: Actor, alert_id: uuid.UUID) -> list[HistoryEntry]:
    """What happened to the alert, oldest first: opened, raised (yellow to red), acknowledged,
    escalated, assigned and unassigned, snoozed and woke, commented, resolved, with who and
    when. The stored alert events tell it, and the comments; where events are missing (data
    loaded without them) the alert's own columns fill in the steps they record."""
    alert = await _visible_alert(session, actor, alert_id)
    rows = await repository.story_events(session, alert)
    assigners = {row.assigned_by for row in rows if row.assignment_changed and row.assigned_by is not None}
    names: dict[str | None, str | None] = {
        sub: name for sub, name in (await staff.names_of(session, assigners)).items()
    }
    steps = _steps_of_events(alert, rows, names)
    steps += _steps_of_columns(alert, {step.kind for step in steps})
    # A comment records no level of its own: the alert's level now.
    level: Literal["yellow", "red"] = "red" if alert.level == "red" else "yellow"
    steps += [
        HistoryEntry(kind="commented", at=c.at, level=level, by=c.by_sub, by_name=c.by_name, text=c.text)
        for c in await repository.comment_steps(session, alert.id)
    ]
    await record(session, actor, "read", "AlertHistory", str(alert.id), [alert.patient_id])
    return sorted(steps, key=lambda step: (step.at, _STEP_ORDER[step.kind]))


def _seen_before_red(alert: Alert) -> bool:
    """A red alert acknowledged while it was yellow: nobody has acknowledged it as red."""
    return alert.level == "red" and alert.acknowledged_at is not None and alert.acknowledged_at < alert.raised_at


async def acknowledge(session: AsyncSession, actor: Actor, alert_id: uuid.UUID, now: datetime) -> AlertItem:
    """Mark as seen. Acknowledging again changes nothing, except for a red alert acknowledged
    while it was yellow: acknowledging it as red stops its red escalation clock. A resolved
    alert cannot be."""
    alert = await _visible_alert(session, actor, alert_id, for_update=True)
    if alert.status == AlertStatus.resolved:
        raise Conflict("alert_resolved", "the alert is already resolved")
    if alert.status == AlertStatus.open or _seen_before_red(alert):
        alert.status, alert.acknowledged_at, alert.updated_at = AlertStatus.acknowledged, now, now
        alert.acknowledged_by, alert.acknowledged_by_name = actor.staff.sub, actor.staff.name
        await session.flush()
        await record(session, actor, "acknowledge", "Alert", str(alert.id), [alert.patient_id])
        await _emit(session, [("changed", alert.id)], now)
    return (await items(session, [alert]))[0]


async def resolve(
    session: AsyncSession,
    actor: Actor,
    alert_id: uuid.UUID,
    note: str,
    now: datetime,
    outcome: ResolutionOutcome | None = None,
) -> AlertItem:
    alert = await _visible_alert(session, actor, alert_id, for_update=True)
    if alert.status == AlertStatus.resolved:
        raise Conflict("alert_resolved", "the alert is already resolved")
    alert.status, alert.resolved_at, alert.updated_at = AlertStatus.resolved, now, now
    alert.note, alert.outcome = note, outcome
    alert.resolved_by, alert.resolved_by_name = actor.staff.sub, actor.staff.name
    alert.snoozed_until = None  # a resolved alert is never snoozed: nothing is left to wake
    await session.flush()
    await record(session, actor, "resolve", "Alert", str(alert.id), [alert.patient_id])
    await _emit(session, [("resolved", alert.id)], now)
    return (await items(session, [alert]))[0]


# -- working an alert: assignment, comments, snooze -------------------------------------


async def _require_working(session: AsyncSession, actor: Actor, alert: Alert) -> None:
    """Assigning, snoozing and waking are for the patient's care team, and for the out-of-hours
    partner on the alerts handed over to it only: 403 `care_team_only` for the partner on the
    patient's other alerts (it sees them while one is handed over, but they stay the care
    team's: a snooze of theirs would hide one from the care team's queue)."""
    if alert.handed_over_to is not None:
        partner = (await _partners_of(session, [alert])).get(alert.handed_over_to)
        if partner == actor.staff.orgnr:
            return
    await access.require_care_team(session, actor.staff, alert.patient_id)


def _fit_text(value: str, longest: int) -> bool:
    """A staff member's text as it may be stored: not blank, at most `longest` characters, no
    NUL (the API's schemas check the same; the staff page calls the service directly)."""
    return bool(value.strip()) and len(value) <= longest and "\x00" not in value


async def assign(
    session: AsyncSession, actor: Actor, alert_id: uuid.UUID, assignee: str | None, now: datetime
) -> AlertItem:
    """Give the alert to a staff member (`assignee`: their sub), or take it off whoever has it
    (None). Only a staff member the service knows, of an organisation that may see the patient
    (its care team today, or the out-of-hours partner of an alert handed over), may be given
    it: else 422 `unknown_staff_member`. 404 for an alert the caller may not see, 409
    `alert_resolved` for a resolved one. The same assignment again changes nothing (no event,
    no audit record). Audited as "assign"; one `changed` event."""
    alert = await _visible_alert(session, actor, alert_id, for_update=True)
    if alert.status == AlertStatus.resolved:
        raise Conflict("alert_resolved", "the alert is already resolved")
    await _require_working(session, actor, alert)
    if assignee == alert.assigned_to:
        return (await items(session, [alert]))[0]
    name = None
    if assignee is not None:
        partner = (await _partners_of(session, [alert])).get(alert.handed_over_to) if alert.handed_over_to else None
        member = (
            None if "\x00" in assignee else await staff.may_be_assigned(session, assignee, alert.patient_id, partner)
        )
        if member is None:
            raise InvalidInput(
                "unknown_staff_member", "assignee: no staff member of an organisation that may see the patient"
            )
        name = member.name
    # On unassigning, `assigned_by` and `assigned_at` tell who took it off, and when.
    alert.assigned_to, alert.assigned_to_name = assignee, name
    alert.assigned_by, alert.assigned_at, alert.updated_at = actor.staff.sub, now, now
    await session.flush()
    await record(session, actor, "assign", "Alert", str(alert.id), [alert.patient_id])
    await _emit(session, [("changed", alert.id)], now)
    return (await items(session, [alert]))[0]


async def comment(session: AsyncSession, actor: Actor, alert_id: uuid.UUID, text: str, now: datetime) -> CommentOut:
    """Add a comment (1 to 4000 characters) to the alert, whatever its status: a resolved one
    can still be commented on. Counted in the alert's `comments`; audited as "comment"; one
    `changed` event."""
    if not _fit_text(text, COMMENT_LENGTH):
        raise InvalidInput("invalid_comment", f"text: 1 to {COMMENT_LENGTH} characters, not only blanks")
    # Locked, so that two comments at once both count.
    alert = await _visible_alert(session, actor, alert_id, for_update=True)
    added = await repository.add_comment(session, alert, actor.staff, text, now)
    await record(session, actor, "comment", "Alert", str(alert.id), [alert.patient_id])
    await _emit(session, [("changed", alert.id)], now)
    return CommentOut.model_validate(added)


async def comments_of(
    session: AsyncSession, actor: Actor, alert_id: uuid.UUID, *, after: int | None = None, limit: int = 50
) -> list[CommentOut]:
    """The alert's comments, oldest first, after the comment `after` (its id). Audited as a
    "read" of AlertComment.

    Returns up to `limit` + 1: the last one, when there, only tells the page there is more;
    it is neither shown nor audited."""
    alert = await _visible_alert(session, actor, alert_id)
    found = await repository.comments_of(session, alert.id, after=after, limit=limit + 1)
    await record(session, actor, "read", "AlertComment", str(alert.id), [alert.patient_id])
    return [CommentOut.model_validate(c) for c in found]


async def snooze(
    session: AsyncSession, actor: Actor, alert_id: uuid.UUID, until: datetime, reason: str, now: datetime
) -> AlertItem:
    """Leave the alert out of the queue's default view until `until`, after now and at most 24
    hours ahead (else 422 `invalid_snooze`), with a reason (1 to 500 characters). Who snoozes
    has seen the alert: an open one (or a red one acknowledged only while it was yellow) is
    acknowledged too, by the same person at the same moment. Snoozing again replaces the
    snooze. 409 `alert_resolved` for a resolved alert. The snooze ends at `until` (the
    worker's clock: wake_due), when staff wake it, or when the alert rises to red. Audited as
    "snooze" (and "acknowledge" when it acknowledged); one `changed` event."""
    if not _fit_text(reason, SNOOZE_REASON_LENGTH):
        raise InvalidInput("invalid_snooze", f"reason: 1 to {SNOOZE_REASON_LENGTH} characters, not only blanks")
    if until.tzinfo is None or not now < until <= now + timedelta(hours=MAX_SNOOZE_HOURS):
        raise InvalidInput("invalid_snooze", f"until: a time after now and at most {MAX_SNOOZE_HOURS} hours ahead")
    alert = await _visible_alert(session, actor, alert_id, for_update=True)
    if alert.status == AlertStatus.resolved:
        raise Conflict("alert_resolved", "the alert is already resolved")
    await _require_working(session, actor, alert)
    acknowledges = alert.status == AlertStatus.open or _seen_before_red(alert)
    if acknowledges:
        alert.status, alert.acknowledged_at = AlertStatus.acknowledged, now
        alert.acknowledged_by, alert.acknowledged_by_name = actor.staff.sub, actor.staff.name
    alert.snoozed_until, alert.snoozed_at, alert.snooze_reason = until, now, reason
    alert.woken_by = alert.woken_by_name = None
    alert.snoozed_by, alert.snoozed_by_name, alert.updated_at = actor.staff.sub, actor.staff.name, now
    await session.flush()
    await record(session, actor, "snooze", "Alert", str(alert.id), [alert.patient_id])
    if acknowledges:
        await record(session, actor, "acknowledge", "Alert", str(alert.id), [alert.patient_id])
    await _emit(session, [("changed", alert.id)], now)
    return (await items(session, [alert]))[0]


async def wake(session: AsyncSession, actor: Actor, alert_id: uuid.UUID, now: datetime) -> AlertItem:
    """End the alert's snooze now (staff waking it early). An alert not snoozed (a resolved one
    never is) is left as it is: no event, no audit record. Audited as "wake"; one `changed`
    event."""
    alert = await _visible_alert(session, actor, alert_id, for_update=True)
    await _require_working(session, actor, alert)
    if alert.snoozed_until is not None:
        alert.snoozed_until, alert.updated_at = None, now
        alert.woken_by, alert.woken_by_name = actor.staff.sub, actor.staff.name
        await session.flush()
        await record(session, actor, "wake", "Alert", str(alert.id), [alert.patient_id])
        await _emit(session, [("changed", alert.id)], now)
    return (await items(session, [alert]))[0]


async def wake_due(session: AsyncSession, now: datetime) -> int:
    """The worker's clock: end every snooze whose time has come (`snoozed_until` <= now), one
    `changed` event each. Safe when several workers run it at once: each alert wakes once. Not
    audited, like escalation: nobody acted. Returns how many woke."""
    woke = await repository.wake_due(session, now)
    await _emit(session, [("changed", alert_id) for alert_id in woke], now)
    return len(woke)


# -- readings entered in error -----------------------------------------------------------

# The note of an alert the system resolved because its readings were entered in error; the
# staff page tells these from the `reading received` ones by it.
ENTERED_IN_ERROR_NOTE = "reading entered in error: "


async def resolve_entered_in_error(
    session: AsyncSession,
    actor: Actor,
    patient_id: uuid.UUID,
    invalidated: Sequence[uuid.UUID],
    reason: str,
    now: datetime,
) -> list[uuid.UUID]:
    """Re-judge the patient's active alerts after staff marked the `invalidated` Observations
    (already flushed) entered in error: an alert whose every triggering reading is now invalid
    is resolved by the system with the reason in its note (no outcome: nothing was done for
    the patient), audited as the caller's doing and announced as `resolved`. An alert with a
    valid reading left stays as it is: its count, value and level still tell what was measured,
    and the invalid readings are marked in its evidence. Returns the ids of those resolved."""
    resolved = await repository.resolve_unsupported(
        session, patient_id, invalidated, ENTERED_IN_ERROR_NOTE + reason, now
    )
    for alert_id in resolved:
        await record(session, actor, "resolve", "Alert", str(alert_id), [patient_id])
    await _emit(session, [("resolved", alert_id) for alert_id in resolved], now)
    return resolved
