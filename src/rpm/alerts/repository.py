"""Queries on alerts. The one-active-alert-per-rule guarantee lives in the database."""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple

from sqlalchemy import Row, Select, and_, case, func, or_, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access.staff import Staff
from rpm.alerts.breaches import BreachGroup, Evidence
from rpm.alerts.models import ACTIVE, Alert, AlertComment
from rpm.db import new_id
from rpm.organisations.models import Organisation

# The references a queue item lists for alert `a`, built by the database as one text[]: its
# newest `:newest` triggering Observations, oldest first, read backwards on (alert_id,
# effective_at). An ingest batch that touches forty alerts would otherwise make two thousand
# Python objects.
_STORED_EVIDENCE_OF_A = "select o.observation_id, o.effective_at from alert_observations o where o.alert_id = a.id"


def _references_of_a(evidence: str = _STORED_EVIDENCE_OF_A) -> str:
    """The references fragment over `evidence`, a query of (observation_id, effective_at) rows
    of alert `a`: by default what is stored."""
    return f"""
    array(
        select 'Observation/' || e.observation_id from (
            {evidence} order by effective_at desc limit :newest
        ) as e order by e.effective_at
    )
    """


# The stored evidence of `a` (the newest, still on the index) and what `new_evidence` adds.
_STORED_AND_NEW_EVIDENCE_OF_A = f"""
    ({_STORED_EVIDENCE_OF_A} order by o.effective_at desc limit :newest)
    union
    select n.observation_id, n.effective_at from new_evidence n where n.alert_id = a.id
"""

# The action of breach row `t`'s level in the patient's plan in force (action_plans, the newest
# version; on its (patient_id, version) key), as `plan_action` and `plan_version`: an alert
# keeps what was agreed when it reached its level. No plan, or no action for the level: null.
_PLAN_OF_T = """
    left join lateral (
        select p.actions ->> t.level as plan_action, p.version as plan_version from action_plans p
        where p.patient_id = t.patient_id order by p.version desc limit 1
    ) as plan on true
"""

# A new alert for each breach group (the column arrays of _group_columns, as `t`), with the
# action of its level; locked in (patient, rule) order so that concurrent batches cannot
# deadlock. Each statement adds what happens when the (patient, rule) has an active alert.
_NEW_ALERTS = f"""
    insert into alerts as a (id, patient_id, rule, level, status, escalated, late, opened_at, raised_at,
        last_reading_at, occurrences, value, unit, threshold, thresholds_version, action, action_plan_version,
        updated_at)
    select id, patient_id, rule, level, 'open', false, late, :now, :now,
        reading_at, occurrences, value, unit, cast(threshold as jsonb), version, plan_action, plan_version, :now
    from unnest(
        cast(:id as uuid[]), cast(:patient_id as uuid[]), cast(:rule as text[]), cast(:level as text[]),
        cast(:late as boolean[]), cast(:reading_at as timestamptz[]), cast(:occurrences as integer[]),
        cast(:value as float8[]), cast(:unit as text[]), cast(:threshold as text[]), cast(:version as integer[])
    ) as t(id, patient_id, rule, level, late, reading_at, occurrences, value, unit, threshold, version)
    {_PLAN_OF_T}
    order by patient_id, rule
"""

# The organisation number of the out-of-hours partner alert `a` is handed over to (null: none),
# as the queue item shows it; on the primary key, and only looked up for a handed-over alert.
_PARTNER_OF_A = (
    "case when a.handed_over_to is null then null"
    " else (select p.orgnr from organisations p where p.id = a.handed_over_to) end as handed_over_to_orgnr"
)

# What the rules do to alerts after a batch, in one statement (one round trip, taken while
# other batches may wait on the same alerts):
# - `resolved`: active `missing:{type}` alerts that a reading of the type answers;
# - `landed`: the breaches, one row per (patient, rule): a new alert, or the active one
#   updated; ON CONFLICT on the partial unique index makes concurrent workers serialise;
# - `evidence`: the triggering Observations, stored against the alert they landed on.
# It returns every changed alert with its columns, its change, and its newest `:newest`
# references: those stored before and those added now (a statement does not see its own
# inserts). A resolved `missing:` alert and a landed one can never be the same alert.
_LAND = text(
    f"""
    with resolved as (
        update alerts as a
        set status = 'resolved', resolved_by = 'system', resolved_by_name = 'rpm', resolved_at = :now,
            note = 'reading received', snoozed_until = null, updated_at = :now
        from unnest(cast(:resolve_patient_id as uuid[]), cast(:resolve_rule as text[])) as t(patient_id, rule)
        where a.patient_id = t.patient_id and a.rule = t.rule and a.status in ('open', 'acknowledged')
        returning a.*, 'resolved' as change
    ),
    landed as (
        {_NEW_ALERTS}
        on conflict (patient_id, rule) where status in ('open', 'acknowledged') do update set
            occurrences = a.occurrences + excluded.occurrences,
            raised_at = case when excluded.level = 'red' and a.level = 'yellow' then excluded.raised_at
                             else a.raised_at end,
            action = case when excluded.level = 'red' and a.level = 'yellow' then excluded.action
                          else a.action end,
            action_plan_version = case when excluded.level = 'red' and a.level = 'yellow'
                                       then excluded.action_plan_version else a.action_plan_version end,
            level = case when a.level = 'red' or excluded.level = 'red' then 'red' else 'yellow' end,
            -- Rising to red ends a snooze: the alert is not what staff chose to wait on.
            snoozed_until = case when excluded.level = 'red' and a.level = 'yellow' then null
                                 else a.snoozed_until end,
            threshold = case when excluded.level = 'red' or a.level = 'yellow' then excluded.threshold
                             else a.threshold end,
            value = case when excluded.last_reading_at >= a.last_reading_at then excluded.value else a.value end,
            last_reading_at = greatest(a.last_reading_at, excluded.last_reading_at),
            thresholds_version = excluded.thresholds_version,
            updated_at = excluded.updated_at
        returning a.*, case when xmax = 0 then 'opened' else 'changed' end as change
    ),
    new_evidence as (
        select l.id as alert_id, e.observation_id, e.value, e.effective_at
        from unnest(cast(:evidence_patient_id as uuid[]), cast(:evidence_rule as text[]),
                    cast(:evidence_observation_id as uuid[]), cast(:evidence_value as float8[]),
                    cast(:evidence_at as timestamptz[])) as e(patient_id, rule, observation_id, value, effective_at)
        join landed l on l.patient_id = e.patient_id and l.rule = e.rule
    ),
    stored_evidence as (
        insert into alert_observations (alert_id, observation_id, value, effective_at)
        select alert_id, observation_id, value, effective_at from new_evidence
        on conflict do nothing
    )
    select a.*, {_references_of_a(_STORED_AND_NEW_EVIDENCE_OF_A)} as observations, {_PARTNER_OF_A}
    from (select * from resolved union all select * from landed) as a
    """
).columns(threshold=JSONB)


async def land(
    session: AsyncSession,
    resolve: Collection[tuple[uuid.UUID, str]],
    groups: Sequence[BreachGroup],
    now: datetime,
    *,
    newest: int,
) -> list[Row[Any]]:
    """Resolve the active alerts of the (patient, rule) pairs in `resolve`, and land each group
    of breaches on its alert. Returns the changed alerts as rows (attributes named like
    Alert's) with `change` ('resolved', 'opened' or 'changed') and `observations` (the newest
    `newest` triggering Observations as references, oldest first)."""
    if not resolve and not groups:
        return []
    pairs = sorted(resolve, key=lambda pair: (pair[0].bytes, pair[1]))  # lock order of the upsert
    evidence = [(g.patient_id, g.rule, e) for g in groups for e in g.evidence]
    result = await session.execute(
        _LAND,
        {
            "now": now,
            "newest": newest,
            "resolve_patient_id": [p for p, _ in pairs],
            "resolve_rule": [r for _, r in pairs],
            **_group_columns(groups),
            "evidence_patient_id": [p for p, _, _ in evidence],
            "evidence_rule": [r for _, r, _ in evidence],
            "evidence_observation_id": [e.observation_id for _, _, e in evidence],
            "evidence_value": [e.value for _, _, e in evidence],
            "evidence_at": [e.effective_at for _, _, e in evidence],
        },
    )
    return list(result)


# What the events of an ingest batch carry: each changed alert's columns and its references,
# in one round trip and without ORM objects.
_AS_ITEMS = text(
    f"select a.*, {_references_of_a()} as observations, {_PARTNER_OF_A}"
    " from alerts a where a.id = any(cast(:alert_ids as uuid[]))"
).columns(threshold=JSONB)


async def with_references(session: AsyncSession, ids: Collection[uuid.UUID], *, newest: int) -> list[Row[Any]]:
    """The alerts as rows (attributes named like Alert's), each with `observations`: its
    `newest` triggering Observations as references, oldest first."""
    if not ids:
        return []
    return list(await session.execute(_AS_ITEMS, {"alert_ids": list(ids), "newest": newest}))


async def by_id(session: AsyncSession, alert_id: uuid.UUID, *, for_update: bool = False) -> Alert | None:
    statement = select(Alert).where(Alert.id == alert_id).execution_options(populate_existing=True)
    if for_update:
        statement = statement.with_for_update()
    return await session.scalar(statement)


async def add_comment(session: AsyncSession, alert: Alert, staff: Staff, text: str, now: datetime) -> AlertComment:
    """Add the comment and count it on the alert (locked by the caller)."""
    added = AlertComment(alert_id=alert.id, at=now, by_sub=staff.sub, by_name=staff.name, by_org=staff.orgnr, text=text)
    session.add(added)
    alert.comments, alert.updated_at = alert.comments + 1, now
    await session.flush()
    return added


async def comments_of(
    session: AsyncSession, alert_id: uuid.UUID, *, after: int | None, limit: int
) -> list[AlertComment]:
    """The alert's comments, oldest first, after the one with id `after` (on the (alert_id, id)
    index)."""
    statement = select(AlertComment).where(AlertComment.alert_id == alert_id)
    if after is not None:
        statement = statement.where(AlertComment.id > after)
    return list(await session.scalars(statement.order_by(AlertComment.id).limit(limit)))


# Snoozes whose time has come, ended: active alerts only (resolving ends a snooze). An alert
# another transaction holds (staff snoozing it again, a batch landing on it) is skipped, and
# looked at again on the next round: so two workers never wait on each other, and each alert
# wakes once.
_WAKE_DUE = text(
    """
    with due as (
        select id from alerts
        where status in ('open', 'acknowledged') and snoozed_until <= :now
        order by id for update skip locked
    )
    update alerts as a set snoozed_until = null, updated_at = :now
    from due where a.id = due.id
    returning a.id
    """
)


async def wake_due(session: AsyncSession, now: datetime) -> list[uuid.UUID]:
    """End the snoozes whose time has come. Returns the ids of the alerts woken."""
    return sorted(await session.scalars(_WAKE_DUE, {"now": now}))


# Each alert's newest evidence, read backwards on (alert_id, effective_at): the cost does not
# grow with an alert's age.
_NEWEST_EVIDENCE = text(
    """
    select a.id, e.observation_id, e.value, e.effective_at
    from unnest(cast(:alert_ids as uuid[])) as a(id)
    cross join lateral (
        select o.observation_id, o.value, o.effective_at from alert_observations o
        where o.alert_id = a.id order by o.effective_at desc limit :newest
    ) as e
    """
)


async def evidence_of(
    session: AsyncSession, alert_ids: Collection[uuid.UUID], *, newest: int
) -> dict[uuid.UUID, list[Evidence]]:
    """Each alert's `newest` triggering Observations, oldest first. An alert open for months
    can gather thousands; `occurrences` still counts them all."""
    found: dict[uuid.UUID, list[Evidence]] = {a: [] for a in alert_ids}
    if alert_ids:
        rows = await session.execute(_NEWEST_EVIDENCE, {"alert_ids": list(found), "newest": newest})
        for alert_id, observation_id, value, effective_at in rows:
            found[alert_id].append(Evidence(observation_id, value, effective_at))
        for evidence in found.values():
            evidence.reverse()
    return found


_NEWEST_REFERENCES = text(f"select a.id, {_references_of_a()} from unnest(cast(:alert_ids as uuid[])) as a(id)")


async def evidence_references(
    session: AsyncSession, alert_ids: Collection[uuid.UUID], *, newest: int
) -> dict[uuid.UUID, list[str]]:
    """Each alert's `newest` triggering Observations as references, oldest first."""
    if not alert_ids:
        return {}
    rows = await session.execute(_NEWEST_REFERENCES, {"alert_ids": list(alert_ids), "newest": newest})
    return {alert_id: references for alert_id, references in rows}


# Alerts for breaches that only open: where the (patient, rule) has an active alert already,
# nothing changes (a measurement still missing is the same miss, not another occurrence).
_OPEN_UNLESS_ACTIVE = text(
    f"""
    {_NEW_ALERTS}
    on conflict (patient_id, rule) where status in ('open', 'acknowledged') do nothing
    returning id, patient_id, level
    """
)


def _group_columns(groups: Sequence[BreachGroup]) -> dict[str, list[Any]]:
    """The groups as the column arrays that _LAND and _OPEN_UNLESS_ACTIVE unnest."""
    return {
        "id": [new_id() for _ in groups],
        "patient_id": [g.patient_id for g in groups],
        "rule": [g.rule for g in groups],
        "level": [str(g.level) for g in groups],
        "late": [g.late for g in groups],
        "reading_at": [g.reading_at for g in groups],
        "occurrences": [g.occurrences for g in groups],
        "value": [g.value for g in groups],
        "unit": [g.unit for g in groups],
        "threshold": [json.dumps(g.threshold) if g.threshold else None for g in groups],
        "version": [g.thresholds_version for g in groups],
    }


async def open_unless_active(session: AsyncSession, groups: Sequence[BreachGroup], now: datetime) -> list[Row[Any]]:
    """Open an alert for each group whose (patient, rule) has no active one. Returns the alerts
    opened as rows of (id, patient_id, level)."""
    if not groups:
        return []
    return list(await session.execute(_OPEN_UNLESS_ACTIVE, {"now": now, **_group_columns(groups)}))


# Red alerts that became red outside service hours (`:mark`): marked, and handed over where a
# partner is named (an alert handed over once stays with that partner); the alerts were just
# landed in this transaction, so their rows are locked already. At closing time (not `:mark`):
# red alerts nobody acknowledged as red, handed over but not marked; the row lock makes a
# concurrent worker wait, and the conditions are read again after it.
_MARK_OUTSIDE_SERVICE_HOURS = text(
    f"""
    update alerts as a
    set outside_service_hours = a.outside_service_hours or :mark,
        handed_over_to = coalesce(a.handed_over_to, t.partner),
        handed_over_at = case when a.handed_over_to is null and t.partner is not null then :now
                              else a.handed_over_at end
    from unnest(cast(:ids as uuid[]), cast(:partners as uuid[])) as t(id, partner)
    where a.id = t.id and (:mark or (a.handed_over_to is null and a.status in ('open', 'acknowledged')
        and a.level = 'red' and (a.status = 'open' or a.acknowledged_at < a.raised_at)))
    returning a.id, a.patient_id, a.outside_service_hours, a.handed_over_to, a.handed_over_at,
        a.handed_over_to is not null and a.handed_over_at = :now as handed_over_now, {_PARTNER_OF_A}
    """
)


async def mark_outside_service_hours(
    session: AsyncSession, partners: dict[uuid.UUID, uuid.UUID | None], now: datetime, *, mark: bool = True
) -> list[Row[Any]]:
    """Mark the alerts (keys) outside service hours and hand each over to its partner (value,
    None: nobody); with `mark` False (closing time) only hand over those still red and not
    acknowledged as red. Returns rows of (id, patient_id, outside_service_hours,
    handed_over_to, handed_over_at, handed_over_now, handed_over_to_orgnr)."""
    if not partners:
        return []
    ids = sorted(partners)
    return list(
        await session.execute(
            _MARK_OUTSIDE_SERVICE_HOURS,
            {"ids": ids, "partners": [partners[i] for i in ids], "now": now, "mark": mark},
        )
    )


async def unattended_red(session: AsyncSession) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Active red alerts nobody has acknowledged as red and nobody has handed over, as (id,
    patient_id): what the follow-up service leaves behind when it closes."""
    rows = await session.execute(
        select(Alert.id, Alert.patient_id).where(
            Alert.status.in_(ACTIVE), _RED_UNACKNOWLEDGED, Alert.handed_over_to.is_(None)
        )
    )
    return [(row.id, row.patient_id) for row in rows]


# Not acknowledged as red: open, or acknowledged before it was raised to red (seen as yellow;
# nobody has seen it red). Only such a red alert escalates on the red clock.
_RED_UNACKNOWLEDGED = and_(
    Alert.level == "red",
    or_(Alert.status == "open", and_(Alert.status == "acknowledged", Alert.acknowledged_at < Alert.raised_at)),
)


class EscalationCandidate(NamedTuple):
    id: uuid.UUID
    patient_id: uuid.UUID
    level: str
    status: str
    opened_at: datetime
    raised_at: datetime
    red_unacknowledged: bool


async def escalation_candidates(
    session: AsyncSession, now: datetime, shortest_red: timedelta, yellow_after: timedelta
) -> list[EscalationCandidate]:
    """Active alerts not yet escalated that may be due: red ones not acknowledged as red for at
    least `shortest_red` of wall time, and open ones opened at least `yellow_after` of wall time
    ago (service time never exceeds wall time; the service decides which are due)."""
    rows = await session.execute(
        select(
            Alert.id,
            Alert.patient_id,
            Alert.level,
            Alert.status,
            Alert.opened_at,
            Alert.raised_at,
            _RED_UNACKNOWLEDGED,
        ).where(
            Alert.escalated.is_(False),
            Alert.status.in_(ACTIVE),
            or_(
                and_(_RED_UNACKNOWLEDGED, Alert.raised_at <= now - shortest_red),
                and_(Alert.status == "open", Alert.opened_at <= now - yellow_after),
            ),
        )
    )
    return [EscalationCandidate(*row) for row in rows]


async def shortest_red_minutes(session: AsyncSession) -> float | None:
    """The shortest red escalation time any organisation set (None: none set one)."""
    found = await session.scalar(select(func.min(Organisation.escalate_red_minutes)))
    return float(found) if found is not None else None


async def mark_escalated(session: AsyncSession, ids: Collection[uuid.UUID], now: datetime) -> list[uuid.UUID]:
    """Mark the alerts escalated unless, by now, another worker did or staff acknowledged them
    (the row lock makes a concurrent run wait and re-read them). Returns those marked."""
    if not ids:
        return []
    rows = await session.scalars(
        update(Alert)
        .where(
            Alert.id.in_(sorted(ids)),
            Alert.escalated.is_(False),
            or_(Alert.status == "open", _RED_UNACKNOWLEDGED),
        )
        .values(escalated=True, escalated_at=now, updated_at=now)
        .returning(Alert.id)
    )
    return sorted(rows)


_LEVEL_RANK = case((Alert.level == "red", 0), else_=1)
_ESCALATED_RANK = case((Alert.escalated.is_(True), 0), else_=1)


def queue_statement(
    visible: Any,
    *,
    statuses: Sequence[str],
    level: str | None,
    patient_id: uuid.UUID | None,
    organisation_patients: Any | None,
    escalated: bool | None,
    assignee: str | None = None,
    snoozed: Literal["hide", "only", "include"] = "include",
    now: datetime | None = None,
    after: tuple[int, int, datetime, uuid.UUID] | None,
) -> Select[Alert]:
    """Red before yellow, escalated first, then oldest first. `snoozed`: leave out ("hide")
    or keep only ("only") the alerts snoozed at `now`."""
    statement = select(Alert).where(Alert.patient_id.in_(visible), Alert.status.in_(statuses))
    if level is not None:
        statement = statement.where(Alert.level == level)
    if patient_id is not None:
        statement = statement.where(Alert.patient_id == patient_id)
    if organisation_patients is not None:
        statement = statement.where(Alert.patient_id.in_(organisation_patients))
    if escalated is not None:
        statement = statement.where(Alert.escalated.is_(escalated))
    if assignee is not None:
        statement = statement.where(Alert.assigned_to == assignee)
    if snoozed != "include":
        # Snoozed now: until a time still ahead (the worker's clock clears those passed).
        snoozed_now = and_(Alert.snoozed_until.is_not(None), Alert.snoozed_until > (now or func.now()))
        statement = statement.where(snoozed_now if snoozed == "only" else ~snoozed_now)
    if after is not None:
        statement = statement.where(tuple_(_LEVEL_RANK, _ESCALATED_RANK, Alert.opened_at, Alert.id) > tuple_(*after))
    return statement.order_by(_LEVEL_RANK, _ESCALATED_RANK, Alert.opened_at, Alert.id)


class ActiveAlerts(NamedTuple):
    """A patient's active alerts in short: how many, the worst level, the newest, and the most
    urgent (the oldest of the worst level: the one whose action the nurse needs first)."""

    active: int
    worst: Literal["yellow", "red"]
    newest: Alert
    most_urgent: Alert


async def active_summaries(
    session: AsyncSession, patient_ids: Collection[uuid.UUID], *, awake_at: datetime | None = None
) -> dict[uuid.UUID, ActiveAlerts]:
    """`awake_at`: leave out the alerts snoozed at that moment (the staff page's worklist hides
    them, as the queue does)."""
    if not patient_ids:
        return {}
    statement = select(Alert).where(Alert.patient_id.in_(patient_ids), Alert.status.in_(ACTIVE))
    if awake_at is not None:
        statement = statement.where(or_(Alert.snoozed_until.is_(None), Alert.snoozed_until <= awake_at))
    rows = await session.scalars(statement.order_by(Alert.patient_id, Alert.opened_at.desc(), Alert.id.desc()))
    found: dict[uuid.UUID, ActiveAlerts] = {}
    for alert in rows:  # newest first
        known = found.get(alert.patient_id)
        if known is None:
            found[alert.patient_id] = ActiveAlerts(1, "red" if alert.level == "red" else "yellow", alert, alert)
        else:
            worst: Literal["yellow", "red"] = "red" if "red" in (known.worst, alert.level) else "yellow"
            # An older alert of the same level, or any of a worse one, is more urgent.
            urgent = alert if alert.level == worst else known.most_urgent
            found[alert.patient_id] = known._replace(active=known.active + 1, worst=worst, most_urgent=urgent)
    return found


async def active_of(session: AsyncSession, patient_id: uuid.UUID) -> list[Alert]:
    """The patient's active alerts, red first, then oldest first."""
    rows = await session.scalars(
        select(Alert)
        .where(Alert.patient_id == patient_id, Alert.status.in_(ACTIVE))
        .order_by(_LEVEL_RANK, Alert.opened_at, Alert.id)
    )
    return list(rows)


# The events that changed an alert's story, oldest first: every event but the `changed` ones
# where neither level, status, assignment nor snooze moved (another breaching reading landing on
# the alert, the evidence tells those; a comment, alert_comments tells those). Read on the
# (patient_id, id) index, compared with the event before it in the database, so a long-lived
# alert's hundreds of events never leave it.
_STORY = text(
    """
    select kind, at, level, status, previous_level, previous_status, value, unit,
           acknowledged_by, resolved_by, note, outcome,
           assigned_to, assigned_to_name, assigned_by, cast(assigned_at as timestamptz) as assigned_at,
           assigned_at is distinct from previous_assigned_at as assignment_changed,
           cast(snoozed_until as timestamptz) as snoozed_until, snoozed_by, snoozed_by_name, snooze_reason,
           woken_by, woken_by_name,
           snoozed_at is distinct from previous_snoozed_at and snoozed_until is not null as snoozed,
           snoozed_until is null and previous_snoozed_until is not null as woke
    from (
        select e.id, e.kind, e.at,
               e.alert->>'level' as level, e.alert->>'status' as status,
               lag(e.alert->>'level') over w as previous_level, lag(e.alert->>'status') over w as previous_status,
               cast(e.alert->>'value' as float8) as value, e.alert->>'unit' as unit,
               e.alert->>'acknowledged_by' as acknowledged_by, e.alert->>'resolved_by' as resolved_by,
               e.alert->>'note' as note, e.alert->>'outcome' as outcome,
               e.alert->>'assigned_to' as assigned_to, e.alert->>'assigned_to_name' as assigned_to_name,
               e.alert->>'assigned_by' as assigned_by, e.alert->>'assigned_at' as assigned_at,
               lag(e.alert->>'assigned_at') over w as previous_assigned_at,
               e.alert->>'snoozed_until' as snoozed_until, e.alert->>'snoozed_at' as snoozed_at,
               e.alert->>'snoozed_by' as snoozed_by, e.alert->>'snoozed_by_name' as snoozed_by_name,
               e.alert->>'snooze_reason' as snooze_reason,
               e.alert->>'woken_by' as woken_by, e.alert->>'woken_by_name' as woken_by_name,
               lag(e.alert->>'snoozed_until') over w as previous_snoozed_until,
               lag(e.alert->>'snoozed_at') over w as previous_snoozed_at
        from alert_events e
        where e.patient_id = :patient_id and e.alert_id = :alert_id
        window w as (order by e.id)
    ) as s
    where kind <> 'changed' or level is distinct from previous_level or status is distinct from previous_status
       or assigned_at is distinct from previous_assigned_at or snoozed_at is distinct from previous_snoozed_at
       or snoozed_until is distinct from previous_snoozed_until
    order by id
    """
)


async def story_events(session: AsyncSession, alert: Alert) -> list[Row[Any]]:
    """The alert's events that opened, raised, acknowledged, escalated, assigned, snoozed, woke
    or resolved it, oldest first, each with the alert's level and status before and after (rows
    with `kind`, `at`, `level`, `status`, `previous_level`, `previous_status`, `value`, `unit`,
    `acknowledged_by`, `resolved_by`, `note`, `outcome`; the assignment as it then was with
    `assignment_changed`; the snooze as it then was with `snoozed` (a new snooze) and `woke`)."""
    return list(await session.execute(_STORY, {"patient_id": alert.patient_id, "alert_id": alert.id}))


# An alert's history tells its first comments; the list of comments pages through them all.
COMMENTS_IN_HISTORY = 1000


async def comment_steps(session: AsyncSession, alert_id: uuid.UUID) -> list[AlertComment]:
    """The alert's first COMMENTS_IN_HISTORY comments, oldest first: for its history."""
    return await comments_of(session, alert_id, after=None, limit=COMMENTS_IN_HISTORY)


# The patient's active alerts that rest on one of `:ids` (found on the (patient_id, status)
# index, their evidence by its primary key), locked in id order: an ingest batch landing on
# one of them waits, or has committed its evidence before the next statement looks.
_RESTING_ON = text(
    """
    select a.id from alerts a
    where a.patient_id = :patient_id and a.status in ('open', 'acknowledged')
      and exists (
        select from alert_observations e
        where e.alert_id = a.id and e.observation_id = any(cast(:ids as uuid[]))
      )
    order by a.id
    for update
    """
)

# Of those, the ones whose every triggering Observation is now entered in error: resolved by
# the system with the note. One with a valid reading left keeps its level, count and value.
_RESOLVE_UNSUPPORTED = text(
    """
    update alerts as a
    set status = 'resolved', resolved_by = 'system', resolved_by_name = 'rpm', resolved_at = :now,
        note = :note, snoozed_until = null, updated_at = :now
    where a.id = any(cast(:alert_ids as uuid[])) and a.status in ('open', 'acknowledged')
      and not exists (
        select from alert_observations e join observations o on o.id = e.observation_id
        where e.alert_id = a.id and o.invalidated_at is null
      )
    returning a.id
    """
)


async def resolve_unsupported(
    session: AsyncSession, patient_id: uuid.UUID, invalidated: Collection[uuid.UUID], note: str, now: datetime
) -> list[uuid.UUID]:
    """Resolve (by the system, with `note`) the patient's active alerts that rested on one of
    the `invalidated` Observations and now rest on none that is valid. Returns their ids."""
    if not invalidated:
        return []
    ids = list(await session.scalars(_RESTING_ON, {"patient_id": patient_id, "ids": list(invalidated)}))
    if not ids:
        return []
    return sorted(await session.scalars(_RESOLVE_UNSUPPORTED, {"alert_ids": ids, "note": note, "now": now}))


class Invalidated(NamedTuple):
    """An Observation staff marked entered in error, as the alert's evidence shows it."""

    at: datetime
    by_sub: str | None
    by_name: str | None
    reason: str | None


_INVALIDATED = text(
    """
    select o.id, o.invalidated_at, o.invalidated_by_sub, o.invalidated_by_name, o.invalidation_reason
    from observations o where o.id = any(cast(:ids as uuid[])) and o.invalidated_at is not null
    """
)


async def invalidated_among(
    session: AsyncSession, observation_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, Invalidated]:
    """Which of these Observations were entered in error, by whom and why (by primary key)."""
    if not observation_ids:
        return {}
    rows = await session.execute(_INVALIDATED, {"ids": list(observation_ids)})
    return {oid: Invalidated(at, sub, name, reason) for oid, at, sub, name, reason in rows}


async def snoozed_of(
    session: AsyncSession, patient_ids: Collection[uuid.UUID], now: datetime
) -> dict[uuid.UUID, tuple[int, datetime]]:
    """The patients with active alerts snoozed at `now`: how many, and when the first wakes."""
    if not patient_ids:
        return {}
    rows = await session.execute(
        select(Alert.patient_id, func.count(), func.min(Alert.snoozed_until))
        .where(Alert.patient_id.in_(list(patient_ids)), Alert.status.in_(ACTIVE), Alert.snoozed_until > now)
        .group_by(Alert.patient_id)
    )
    return {patient_id: (count, first) for patient_id, count, first in rows if first is not None}


async def out_of_hours_of(session: AsyncSession, patient_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, str | None]:
    """The patients with an active alert marked outside service hours or handed over (at
    closing time): the name of the partner organisation one of them is handed over to (None:
    not handed over)."""
    if not patient_ids:
        return {}
    rows = await session.execute(
        select(Alert.patient_id, func.max(Organisation.name))
        .outerjoin(Organisation, Organisation.id == Alert.handed_over_to)
        .where(
            Alert.patient_id.in_(list(patient_ids)),
            Alert.status.in_(ACTIVE),
            or_(Alert.outside_service_hours, Alert.handed_over_to.is_not(None)),
        )
        .group_by(Alert.patient_id)
    )
    return {patient_id: name for patient_id, name in rows}
