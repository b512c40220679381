"""Queries on patients, their care team and measurement plan."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, NamedTuple

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from rpm.access.repository import visible_patient_ids
from rpm.fhir.codes import READING_TYPE_OF_CODE
from rpm.patients.models import CareTeamMember, Patient
from rpm.rules.repository import OVERDUE, OVERDUE_SINCE_LAST

_FULL = (
    selectinload(Patient.care_team).selectinload(CareTeamMember.organisation),
    selectinload(Patient.measurement_plan),
)


async def by_identifier(session: AsyncSession, identifier: str) -> Patient | None:
    return await session.scalar(select(Patient).where(Patient.identifier == identifier))


async def full(session: AsyncSession, patient_id: uuid.UUID) -> Patient | None:
    """The patient with care team and plan loaded (the relationships are lazy="raise")."""
    return await session.scalar(
        select(Patient).where(Patient.id == patient_id).options(*_FULL).execution_options(populate_existing=True)
    )


async def full_many(session: AsyncSession, patient_ids: Sequence[uuid.UUID]) -> Sequence[Patient]:
    return (await session.scalars(select(Patient).where(Patient.id.in_(patient_ids)).options(*_FULL))).all()


async def visible_by_identifier(session: AsyncSession, orgnr: str, today: date, identifier: str) -> Patient | None:
    """The patient with this national identifier, if the organisation follows them."""
    return await session.scalar(
        select(Patient)
        .where(Patient.identifier == identifier, Patient.id.in_(visible_patient_ids(orgnr, today)))
        .options(*_FULL)
    )


def _like(text: str) -> str:
    """`text` as a LIKE pattern matching itself anywhere: its wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def visible_matching(
    session: AsyncSession, orgnr: str, today: date, query: str, *, limit: int
) -> Sequence[Patient]:
    """The organisation's active patients whose identifier is `query` or whose name contains it
    (any case), by name."""
    return (
        await session.scalars(
            select(Patient)
            .where(
                Patient.id.in_(visible_patient_ids(orgnr, today)),
                Patient.status == "active",
                (Patient.identifier == query) | Patient.name.ilike(_like(query), escape="\\"),
            )
            .order_by(Patient.name, Patient.id)
            .limit(limit)
            .options(*_FULL)
        )
    ).all()


async def visible_many(
    session: AsyncSession, orgnr: str, today: date, patient_ids: Sequence[uuid.UUID]
) -> Sequence[Patient]:
    """Those of `patient_ids` the organisation follows today, by name."""
    if not patient_ids:
        return []
    return (
        await session.scalars(
            select(Patient)
            .where(Patient.id.in_(list(patient_ids)), Patient.id.in_(visible_patient_ids(orgnr, today)))
            .order_by(Patient.name, Patient.id)
            .options(*_FULL)
        )
    ).all()


async def clear_care_team(session: AsyncSession, patient_id: uuid.UUID) -> None:
    await session.execute(delete(CareTeamMember).where(CareTeamMember.patient_id == patient_id))


# -- the worklist (GET /patients) --------------------------------------------------------

# Far ends of time for sort keys that may be missing: keyset pagination compares whole rows,
# so "no unacknowledged alert" and "never measured" need a place in the order.
FAR_FUTURE = datetime(9000, 1, 1, tzinfo=UTC)  # within rpm.norway.plausible_time, as cursors must be
FAR_PAST = datetime(1900, 1, 1, tzinfo=UTC)

_VISIBLE = """
    select c.patient_id from care_team_members c join organisations o on o.id = c.organisation_id
    where o.orgnr = {orgnr} and c.period_from <= :today and (c.period_to is null or c.period_to >= :today)
"""
# The caller's worklist: its care team's patients and, while the alert is active, those with an
# alert handed over to it as out-of-hours partner (rpm.access.repository.visible_patient_ids).
_VISIBLE_OR_HANDED_OVER = (
    _VISIBLE
    + """
    union all
    select a.patient_id from alerts a join organisations o on o.id = a.handed_over_to
    where o.orgnr = {orgnr} and a.handed_over_to is not null and a.status in ('open', 'acknowledged')
"""
)

_READING_TYPES = "unnest(cast(:types as text[]), cast(:codes as text[])) as t(reading_type, code)"

# A patient's priority on the worklist: red, then yellow (an alert of that level), then
# missing (an active missing-measurement alert, or a planned type overdue by that rule's
# condition right now), then green. Within a level, the oldest unacknowledged alert of it.
_KEYED = f"""
    select p.id, p.name,
        case when al.red then 0 when al.yellow then 1 when al.missing or coalesce(od.overdue, false) then 2
             else 3 end as priority,
        case when al.red then al.red_since when al.yellow then al.yellow_since else al.missing_since end
            as unacknowledged_since
        {{last_column}}
    from (select distinct patient_id from ({_VISIBLE_OR_HANDED_OVER.format(orgnr=":orgnr")}) as v) as v
    join patients p on p.id = v.patient_id
    cross join lateral (
        select coalesce(bool_or(a.level = 'red'), false) as red,
            coalesce(bool_or(a.level = 'yellow' and a.rule not like 'missing:%'), false) as yellow,
            coalesce(bool_or(a.rule like 'missing:%'), false) as missing,
            min(a.opened_at) filter (where a.status = 'open' and a.level = 'red') as red_since,
            min(a.opened_at) filter (where a.status = 'open' and a.level = 'yellow' and a.rule not like 'missing:%')
                as yellow_since,
            min(a.opened_at) filter (where a.status = 'open' and a.rule like 'missing:%') as missing_since
        from alerts a where a.patient_id = p.id and a.status in ('open', 'acknowledged') {{alert_filter}}
    ) as al
    left join lateral (
        select bool_or({OVERDUE}) as overdue
        from measurement_plan_items m
        join {_READING_TYPES} on t.reading_type = m.reading_type
        where m.patient_id = p.id
    ) as od on p.status = 'active'
    {{last_join}}
    where true {{filters}}
"""

_LAST_READING = """
    left join lateral (
        select o.effective_at as at from observations o where o.patient_id = p.id and o.invalidated_at is null
        order by o.effective_at desc limit 1
    ) as newest on true
"""

# For each way to sort: the keyset's columns, and whether it runs backwards. Missing times
# take the far ends.
_ORDERS: dict[str, tuple[tuple[str, ...], bool]] = {
    "priority": (("priority", "coalesce(unacknowledged_since, :far_future)", "name", "id"), False),
    "name": (("name", "id"), False),
    "last_reading": (("coalesce(last_reading_at, :far_past)", "id"), False),
    "-last_reading": (("coalesce(last_reading_at, :far_past)", "id"), True),
}
PRIORITY_RANK = {"red": 0, "yellow": 1, "missing": 2, "green": 3}

# Snoozed: an active alert snoozed until a time still ahead (the worker's clock clears those
# passed), as the alert queue reads it (rpm.alerts.repository.queue_statement).
_AWAKE = "and ({alias}.snoozed_until is null or {alias}.snoozed_until <= :now)"
_ACTIVE_ALERT_OF_P = "select 1 from alerts s where s.patient_id = p.id and s.status in ('open', 'acknowledged')"


class WorklistKey(NamedTuple):
    """A patient's place on the worklist."""

    id: uuid.UUID
    name: str
    priority: int  # PRIORITY_RANK
    unacknowledged_since: datetime | None
    last_reading_at: datetime | None


async def worklist_page(
    session: AsyncSession,
    orgnr: str,
    today: date,
    now: datetime,
    grace: timedelta,
    *,
    sort: str,
    after: tuple[Any, ...] | None,
    limit: int,
    status: str | None = None,
    condition: str | None = None,
    priority: str | None = None,
    organisation: str | None = None,
    snoozed: Literal["hide", "include", "only"] = "include",
    assignee: str | None = None,
) -> list[WorklistKey]:
    """The caller's patients in worklist order, from after the keyset position `after`.

    `snoozed`: "hide" leaves the alerts snoozed at `now` out of the priority (a patient whose
    only alert is snoozed sorts as if it were not there), "only" keeps only the patients with
    such an alert; `assignee`: only the patients with an active alert assigned to that staff
    member (not snoozed, when they are hidden)."""
    columns, backwards = _ORDERS[sort]
    filters: list[str] = []
    params: dict[str, Any] = {}
    if status is not None:
        filters.append("and p.status = :status")
        params["status"] = status
    if condition is not None:
        filters.append("and :condition = any(p.conditions)")
        params["condition"] = condition
    if organisation is not None:
        filters.append(f"and p.id in ({_VISIBLE.format(orgnr=':organisation')})")
        params["organisation"] = organisation
    if snoozed == "only":
        filters.append(f"and exists ({_ACTIVE_ALERT_OF_P} and s.snoozed_until > :now)")
    if assignee is not None:
        awake = _AWAKE.format(alias="s") if snoozed == "hide" else ""
        filters.append(f"and exists ({_ACTIVE_ALERT_OF_P} and s.assigned_to = :assignee {awake})")
        params["assignee"] = assignee
    with_last = sort.endswith("last_reading")
    keyed = _KEYED.format(
        last_column=", newest.at as last_reading_at" if with_last else ", null::timestamptz as last_reading_at",
        last_join=_LAST_READING if with_last else "",
        filters=" ".join(filters),
        alert_filter=_AWAKE.format(alias="a") if snoozed == "hide" else "",
    )
    outer = []
    if priority is not None:
        outer.append("priority = :priority")
        params["priority"] = PRIORITY_RANK[priority]
    if after is not None:
        names = [f":after_{n}" for n in range(len(after))]
        outer.append(f"({', '.join(columns)}) {'<' if backwards else '>'} ({', '.join(names)})")
        params.update({f"after_{n}": value for n, value in enumerate(after)})
    statement = text(
        f"""
        select id, name, priority, unacknowledged_since, last_reading_at from ({keyed}) as keyed
        where {" and ".join(outer) or "true"}
        order by {", ".join(f"{column} desc" if backwards else column for column in columns)}
        limit :limit
        """
    )
    rows = await session.execute(
        statement,
        {
            "orgnr": orgnr,
            "today": today,
            "now": now,
            "grace": grace,
            "types": list(READING_TYPE_OF_CODE.values()),
            "codes": list(READING_TYPE_OF_CODE),
            "far_future": FAR_FUTURE,
            "far_past": FAR_PAST,
            "limit": limit,
            **params,
        },
    )
    return [WorklistKey(*r) for r in rows]


class PlanRow(NamedTuple):
    patient_id: uuid.UUID
    reading_type: str
    every_hours: int
    last_reading_at: datetime | None
    missing: bool


_PLAN_STATUS = text(
    f"""
    select m.patient_id, m.reading_type, m.every_hours, last.at, p.status = 'active' and {OVERDUE_SINCE_LAST}
    from measurement_plan_items m
    join patients p on p.id = m.patient_id
    join {_READING_TYPES} on t.reading_type = m.reading_type
    cross join lateral (
        select max(o.effective_at) as at from observations o
        where o.patient_id = m.patient_id and o.code = t.code and o.invalidated_at is null
    ) as last
    where m.patient_id = any(cast(:ids as uuid[]))
    order by m.patient_id, m.reading_type
    """
)


async def plan_status(
    session: AsyncSession, patient_ids: Sequence[uuid.UUID], now: datetime, grace: timedelta
) -> list[PlanRow]:
    """Each plan item of the patients with its newest reading and whether it is overdue."""
    rows = await session.execute(
        _PLAN_STATUS,
        {
            "ids": list(patient_ids),
            "now": now,
            "grace": grace,
            "types": list(READING_TYPE_OF_CODE.values()),
            "codes": list(READING_TYPE_OF_CODE),
        },
    )
    return [PlanRow(*r) for r in rows]


_PLAN_READINGS = text(
    f"""
    select m.patient_id, m.reading_type, o.effective_at
    from measurement_plan_items m
    join {_READING_TYPES} on t.reading_type = m.reading_type
    join observations o on o.patient_id = m.patient_id and o.code = t.code and o.invalidated_at is null
        and o.effective_at > cast(:now as timestamptz) - make_interval(hours => greatest(m.every_hours, 168))
    where m.patient_id = any(cast(:ids as uuid[]))
    """
)


async def plan_readings(
    session: AsyncSession, patient_ids: Sequence[uuid.UUID], now: datetime
) -> dict[tuple[uuid.UUID, str], list[datetime]]:
    """The times of the planned types' readings of the last week (or the last interval of a
    plan asking less often), by (patient, reading type)."""
    found: dict[tuple[uuid.UUID, str], list[datetime]] = {}
    if patient_ids:
        rows = await session.execute(
            _PLAN_READINGS,
            {
                "ids": list(patient_ids),
                "now": now,
                "types": list(READING_TYPE_OF_CODE.values()),
                "codes": list(READING_TYPE_OF_CODE),
            },
        )
        for patient_id, reading_type, at in rows:
            found.setdefault((patient_id, reading_type), []).append(at)
    return found
