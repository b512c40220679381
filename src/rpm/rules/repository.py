"""Queries behind the rules: patients' conditions, their overrides, weights in a window."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.observations.models import Observation
from rpm.patients.models import Patient
from rpm.rules.models import ThresholdOverride


async def conditions_of(session: AsyncSession, patient_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    rows = await session.execute(select(Patient.id, Patient.conditions).where(Patient.id.in_(patient_ids)))
    return {pid: list(conditions) for pid, conditions in rows}


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


async def weights_between(
    session: AsyncSession, patient_ids: Collection[uuid.UUID], start: datetime, end: datetime
) -> dict[uuid.UUID, list[tuple[uuid.UUID, datetime, float]]]:
    """Body weights of the patients with start <= time <= end, oldest first, by patient."""
    found: dict[uuid.UUID, list[tuple[uuid.UUID, datetime, float]]] = {p: [] for p in patient_ids}
    if not patient_ids:
        return found
    rows = await session.execute(
        select(Observation.patient_id, Observation.id, Observation.effective_at, Observation.value)
        .where(
            Observation.patient_id.in_(patient_ids),
            Observation.code == "29463-7",
            Observation.effective_at >= start,
            Observation.effective_at <= end,
        )
        .order_by(Observation.effective_at)
    )
    for patient_id, oid, at, value in rows:
        found[patient_id].append((oid, at, float(value)))
    return found
