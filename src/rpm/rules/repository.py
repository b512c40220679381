"""Queries behind the rules: what patients' thresholds are made of, the weights around a reading."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

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
