"""Queries behind the rules: what patients' thresholds are made of, the weights around a reading,
the measurements that are overdue."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.fhir.codes import READING_TYPE_OF_CODE, READING_TYPES
from rpm.observations.models import Observation
from rpm.rules.models import ThresholdOverride, ThresholdProposal
from rpm.rules.preview import PastReading
from rpm.rules.templates import BODY_WEIGHT, SYSTOLIC

# Each patient's conditions and newest override version, in one round trip; the ids travel
# as one array, so the statement is the same for every batch.
_THRESHOLD_INPUTS = text(
    """
    select p.id, p.conditions, o.version, o.bands, o.weight_gain,
        p.created_at + make_interval(days => p.start_period_days)
    from patients p
    left join lateral (
        select t.version, t.bands, t.weight_gain from threshold_overrides t
        where t.patient_id = p.id order by t.version desc limit 1
    ) as o on true
    where p.id = any(cast(:patient_ids as uuid[]))
    """
)


class ThresholdInputs(NamedTuple):
    """What a patient's effective thresholds are made of."""

    patient_id: uuid.UUID
    conditions: list[str]
    version: int | None  # of the newest override; None if the patient has none
    bands: dict[str, Any] | None
    weight_gain: dict[str, Any] | None
    start_period_ends_at: datetime | None  # None: the patient has no start period


async def threshold_inputs(session: AsyncSession, patient_ids: Collection[uuid.UUID]) -> list[ThresholdInputs]:
    rows = await session.execute(_THRESHOLD_INPUTS, {"patient_ids": list(patient_ids)})
    return [ThresholdInputs(pid, list(conditions), *rest) for pid, conditions, *rest in rows]


async def latest_overrides(
    session: AsyncSession, patient_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, ThresholdOverride]:
    rows = await session.scalars(
        select(ThresholdOverride)
        .where(ThresholdOverride.patient_id.in_(patient_ids))
        .order_by(ThresholdOverride.patient_id, ThresholdOverride.version.desc())
        .ext(distinct_on(ThresholdOverride.patient_id))
    )
    return {row.patient_id: row for row in rows}


# Per new weight: the lowest weight in the window before it and the highest in the window
# after it, found by the database on the (patient, code, time) index. Only these two can
# decide the gain the reading takes part in, so a batch of a month's weights fetches two rows
# per reading instead of every weight of the month. The batch's own rows are already in the
# table, in this transaction. Weights entered in error (`invalidated_at`) are no weights; every
# query here leaves such readings out.
_WEIGHT_EXTREMES = text(
    """
    select w.reading_id, low.id, low.effective_at, low.value, high.id, high.effective_at, high.value
    from unnest(cast(:reading_ids as uuid[]), cast(:patient_ids as uuid[]), cast(:times as timestamptz[]),
                cast(:hours as int[])) as w(reading_id, patient_id, at, hours)
    left join lateral (
        select o.id, o.effective_at, o.value from observations o
        where o.patient_id = w.patient_id and o.code = :code and o.value is not null and o.invalidated_at is null
          and o.effective_at >= w.at - make_interval(hours => w.hours) and o.effective_at < w.at
        order by o.value, o.effective_at limit 1
    ) as low on true
    left join lateral (
        select o.id, o.effective_at, o.value from observations o
        where o.patient_id = w.patient_id and o.code = :code and o.value is not null and o.invalidated_at is null
          and o.effective_at > w.at and o.effective_at <= w.at + make_interval(hours => w.hours)
        order by o.value desc, o.effective_at desc limit 1
    ) as high on true
    """
)


async def weight_extremes(
    session: AsyncSession, readings: Sequence[tuple[uuid.UUID, uuid.UUID, datetime, int]]
) -> dict[uuid.UUID, list[tuple[uuid.UUID, datetime, float]]]:
    """For each (observation id, patient id, time, window hours): the lowest weight in the
    window before the time and the highest in the window after it, as (id, time, kg)."""
    found: dict[uuid.UUID, list[tuple[uuid.UUID, datetime, float]]] = {r[0]: [] for r in readings}
    if not readings:
        return found
    rows = await session.execute(
        _WEIGHT_EXTREMES,
        {
            "reading_ids": [r[0] for r in readings],
            "patient_ids": [r[1] for r in readings],
            "times": [r[2] for r in readings],
            "hours": [r[3] for r in readings],
            "code": BODY_WEIGHT,
        },
    )
    for reading_id, low_id, low_at, low_value, high_id, high_at, high_value in rows:
        if low_id is not None:
            found[reading_id].append((low_id, low_at, float(low_value)))
        if high_id is not None:
            found[reading_id].append((high_id, high_at, float(high_value)))
    return found


# The missing-measurement rule's condition (rules.md) for the plan item `m` of patient `p`,
# whose type has the LOINC code `t.code`: no reading of it for its interval plus the grace
# period, counted from enrolment when there has never been one. Asked as "is there a recent
# one?", which the (patient, code, time) index answers without finding the newest. A reading
# entered in error is no measurement done. The worklist marks overdue types by the same words.
OVERDUE = """
    p.created_at + make_interval(hours => m.every_hours) + :grace < :now
    and not exists (
        select from observations o where o.patient_id = m.patient_id and o.code = t.code
        and o.effective_at >= cast(:now as timestamptz) - make_interval(hours => m.every_hours) - :grace
        and o.invalidated_at is null
    )
"""
# The same condition where the newest reading's time `last.at` is known already (null if none).
OVERDUE_SINCE_LAST = "greatest(last.at, p.created_at) + make_interval(hours => m.every_hours) + :grace < :now"

# Each active patient's plan items that are overdue and have no active missing alert yet,
# with the newest reading of the type (null if none).
_OVERDUE_ITEMS = text(
    f"""
    select p.id, m.reading_type, m.every_hours,
        (select max(o.effective_at) from observations o
         where o.patient_id = m.patient_id and o.code = t.code and o.invalidated_at is null)
    from measurement_plan_items m
    join patients p on p.id = m.patient_id and p.status = 'active'
    join unnest(cast(:types as text[]), cast(:codes as text[])) as t(reading_type, code)
        on t.reading_type = m.reading_type
    where {OVERDUE}
    and not exists (
        select from alerts a where a.patient_id = p.id and a.rule = 'missing:' || m.reading_type
        and a.status in ('open', 'acknowledged')
    )
    order by p.id, m.reading_type
    """
)


BLOOD_PRESSURE = READING_TYPES["blood-pressure"].code


class OverdueItem(NamedTuple):
    patient_id: uuid.UUID
    reading_type: str
    every_hours: int
    last_reading_at: datetime | None


async def overdue_items(session: AsyncSession, now: datetime, grace: timedelta) -> list[OverdueItem]:
    """The plan items of active patients whose measurement is overdue (OVERDUE) and not yet
    alerted."""
    rows = await session.execute(
        _OVERDUE_ITEMS,
        {
            "now": now,
            "grace": grace,
            # A reading type is one LOINC code: the (patient, code, time) index answers.
            "types": list(READING_TYPE_OF_CODE.values()),
            "codes": list(READING_TYPE_OF_CODE),
        },
    )
    return [OverdueItem(*row) for row in rows]


# The vital signs NEWS2 scores, per (patient, span): single values as they are, and the
# systolic component of a blood-pressure panel under its own code. On the (patient, code,
# time) index; the batch's own rows are already in the table, in this transaction.
# Only the spans that hold at least `:fewest` of the codes are read: most patients measure one
# or two vital signs, and for them a probe per code on the index settles it (an SpO2-only
# cohort costs no rows at all).
_VITAL_SIGNS = text(
    """
    with spans as (
        select * from unnest(cast(:patient_ids as uuid[]), cast(:starts as timestamptz[]),
                             cast(:ends as timestamptz[])) as s(patient_id, start_at, end_at)
    ),
    enough as (
        select s.* from spans s
        where (
            select count(*) from unnest(cast(:codes as text[])) as c(code)
            where exists (
                select from observations o where o.patient_id = s.patient_id and o.code = c.code
                and o.effective_at >= s.start_at and o.effective_at <= s.end_at and o.invalidated_at is null
            )
        ) >= :fewest
    )
    select s.patient_id, o.id,
        case when o.code = :panel then :systolic else o.code end,
        case when o.code = :panel then cast(o.components ->> :systolic as float8) else o.value end,
        o.effective_at
    from enough s
    join observations o on o.patient_id = s.patient_id and o.code = any(cast(:codes as text[]))
        and o.effective_at >= s.start_at and o.effective_at <= s.end_at and o.invalidated_at is null
    order by s.patient_id, o.effective_at, o.id
    """
)


# The types of the devices ever assigned to each patient: a reading can only come from one.
_DEVICE_TYPES = text(
    """
    select a.patient_id, array_agg(distinct d.type)
    from device_assignments a join devices d on d.id = a.device_id
    where a.patient_id = any(cast(:patient_ids as uuid[]))
    group by a.patient_id
    """
)


async def device_types(session: AsyncSession, patient_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, set[str]]:
    """The reading types each patient's devices (ever assigned) measure."""
    rows = await session.execute(_DEVICE_TYPES, {"patient_ids": list(patient_ids)})
    return {patient_id: set(types) for patient_id, types in rows}


class VitalSign(NamedTuple):
    """One value NEWS2 scores (a rules.news2.Measurement), with the Observation it is of."""

    id: uuid.UUID
    code: str
    value: float
    effective_at: datetime


async def vital_signs(
    session: AsyncSession,
    spans: Sequence[tuple[uuid.UUID, datetime, datetime]],
    codes: Collection[str],
    fewest: int = 1,
) -> dict[uuid.UUID, list[VitalSign]]:
    """For each (patient, start, end): the patient's values of `codes` taken in [start, end],
    oldest first; a blood-pressure panel gives its systolic value under the systolic code. A span
    with fewer than `fewest` of the codes (the panel counted as one) gets no values."""
    found: dict[uuid.UUID, list[VitalSign]] = {patient_id: [] for patient_id, _, _ in spans}
    if not spans:
        return found
    rows = await session.execute(
        _VITAL_SIGNS,
        {
            "patient_ids": [s[0] for s in spans],
            "starts": [s[1] for s in spans],
            "ends": [s[2] for s in spans],
            "codes": [*(set(codes) - {SYSTOLIC}), BLOOD_PRESSURE],
            "fewest": fewest,
            "panel": BLOOD_PRESSURE,
            "systolic": SYSTOLIC,
        },
    )
    for patient_id, oid, code, value, at in rows:
        if value is not None:
            found[patient_id].append(VitalSign(oid, code, float(value), at))
    return found


async def readings_since(session: AsyncSession, patient_id: uuid.UUID, since: datetime) -> list[PastReading]:
    """The patient's stored Observations taken from `since` on, as the rules see them (none
    entered in error)."""
    rows = await session.execute(
        select(
            Observation.id,
            Observation.code,
            Observation.effective_at,
            Observation.value,
            Observation.components,
            Observation.unit,
        )
        .where(
            Observation.patient_id == patient_id,
            Observation.effective_at >= since,
            Observation.invalidated_at.is_(None),
        )
        .order_by(Observation.effective_at, Observation.id)
    )
    found = []
    for oid, code, at, value, components, unit in rows:
        values = dict(components) if components is not None else {code: value} if value is not None else None
        if values is not None:
            found.append(PastReading(id=oid, code=code, effective_at=at, values=values, unit=unit))
    return found


async def override_history(session: AsyncSession, patient_id: uuid.UUID) -> list[ThresholdOverride]:
    """Every version of the patient's overrides, oldest first."""
    rows = await session.scalars(
        select(ThresholdOverride).where(ThresholdOverride.patient_id == patient_id).order_by(ThresholdOverride.version)
    )
    return list(rows)


# The patients whose start period has ended and who have no proposal yet (rules.baselines).
_DUE_A_PROPOSAL = text(
    """
    select p.id, p.created_at, p.created_at + make_interval(days => p.start_period_days)
    from patients p
    where p.status = 'active' and p.start_period_days is not null
      and p.created_at + make_interval(days => p.start_period_days) <= :now
      and not exists (select from threshold_proposals t where t.patient_id = p.id)
    order by p.created_at, p.id
    limit :limit
    """
)


class DueProposal(NamedTuple):
    patient_id: uuid.UUID
    period_from: datetime
    period_to: datetime


async def due_a_proposal(session: AsyncSession, now: datetime, limit: int) -> list[DueProposal]:
    rows = await session.execute(_DUE_A_PROPOSAL, {"now": now, "limit": limit})
    return [DueProposal(*row) for row in rows]


# Each quantity's values in [start, end): a panel's components under their own codes.
_VALUES_IN_PERIOD = text(
    """
    select coalesce(c.key, o.code), coalesce(cast(c.value as float8), o.value)
    from observations o
    left join lateral jsonb_each_text(o.components) as c(key, value) on true
    where o.patient_id = :patient_id and o.effective_at >= :start and o.effective_at < :end
      and o.invalidated_at is null
    """
)


async def values_in_period(
    session: AsyncSession, patient_id: uuid.UUID, start: datetime, end: datetime
) -> dict[str, list[float]]:
    """The patient's values by LOINC code (a panel's components under theirs) taken in
    [start, end), leaving out readings entered in error."""
    found: dict[str, list[float]] = {}
    rows = await session.execute(_VALUES_IN_PERIOD, {"patient_id": patient_id, "start": start, "end": end})
    for code, value in rows:
        if value is not None:
            found.setdefault(code, []).append(float(value))
    return found


async def add_proposal(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Store a proposal unless the patient has one already (another worker was first)."""
    inserted = await session.scalar(
        pg_insert(ThresholdProposal)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["patient_id"])
        .returning(ThresholdProposal.id)
    )
    return inserted is not None


async def proposal_of(
    session: AsyncSession, patient_id: uuid.UUID, *, for_update: bool = False
) -> ThresholdProposal | None:
    statement = select(ThresholdProposal).where(ThresholdProposal.patient_id == patient_id)
    if for_update:
        statement = statement.with_for_update()
    return await session.scalar(statement)
