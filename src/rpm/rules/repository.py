"""Queries behind the rules: what patients' thresholds are made of, the weights around a reading,
the measurements that are overdue."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.fhir.codes import READING_TYPE_OF_CODE
from rpm.observations.models import Observation
from rpm.rules.models import ThresholdOverride
from rpm.rules.preview import PastReading
from rpm.rules.templates import BODY_WEIGHT

# Each patient's conditions and newest override version, in one round trip; the ids travel
# as one array, so the statement is the same for every batch.
_THRESHOLD_INPUTS = text(
    """
    select p.id, p.conditions, o.version, o.bands, o.weight_gain
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


async def threshold_inputs(session: AsyncSession, patient_ids: Collection[uuid.UUID]) -> list[ThresholdInputs]:
    rows = await session.execute(_THRESHOLD_INPUTS, {"patient_ids": list(patient_ids)})
    return [ThresholdInputs(pid, list(conditions), *override) for pid, conditions, *override in rows]


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
# table, in this transaction.
_WEIGHT_EXTREMES = text(
    """
    select w.reading_id, low.id, low.effective_at, low.value, high.id, high.effective_at, high.value
    from unnest(cast(:reading_ids as uuid[]), cast(:patient_ids as uuid[]), cast(:times as timestamptz[]),
                cast(:hours as int[])) as w(reading_id, patient_id, at, hours)
    left join lateral (
        select o.id, o.effective_at, o.value from observations o
        where o.patient_id = w.patient_id and o.code = :code and o.value is not null
          and o.effective_at >= w.at - make_interval(hours => w.hours) and o.effective_at < w.at
        order by o.value, o.effective_at limit 1
    ) as low on true
    left join lateral (
        select o.id, o.effective_at, o.value from observations o
        where o.patient_id = w.patient_id and o.code = :code and o.value is not null
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
# one?", which the (patient, code, time) index answers without finding the newest. The
# worklist marks overdue types by the same words.
OVERDUE = """
    p.created_at + make_interval(hours => m.every_hours) + :grace < :now
    and not exists (
        select from observations o where o.patient_id = m.patient_id and o.code = t.code
        and o.effective_at >= cast(:now as timestamptz) - make_interval(hours => m.every_hours) - :grace
    )
"""
# The same condition where the newest reading's time `last.at` is known already (null if none).
OVERDUE_SINCE_LAST = "greatest(last.at, p.created_at) + make_interval(hours => m.every_hours) + :grace < :now"

# Each active patient's plan items that are overdue and have no active missing alert yet,
# with the newest reading of the type (null if none).
_OVERDUE_ITEMS = text(
    f"""
    select p.id, m.reading_type, m.every_hours,
        (select max(o.effective_at) from observations o where o.patient_id = m.patient_id and o.code = t.code)
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


async def readings_since(session: AsyncSession, patient_id: uuid.UUID, since: datetime) -> list[PastReading]:
    """The patient's stored Observations taken from `since` on, as the rules see them."""
    rows = await session.execute(
        select(
            Observation.id,
            Observation.code,
            Observation.effective_at,
            Observation.value,
            Observation.components,
            Observation.unit,
        )
        .where(Observation.patient_id == patient_id, Observation.effective_at >= since)
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
