"""Queries behind the dashboard and trends: one patient's Observations by code and time."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.observations.models import Observation
from rpm.trends.buckets import OSLO


class Latest(NamedTuple):
    id: uuid.UUID
    code: str
    effective_at: datetime
    value: float | None
    components: dict[str, float] | None
    unit: str


# The newest Observation of each code: one probe of the (patient, code, time) index each.
# Everything here leaves out readings entered in error (`invalidated_at`): they are no values.
_LATEST = text(
    """
    select o.id, o.code, o.effective_at, o.value, o.components, o.unit
    from unnest(cast(:codes as text[])) as t(code)
    cross join lateral (
        select o.id, o.code, o.effective_at, o.value, o.components, o.unit from observations o
        where o.patient_id = :patient_id and o.code = t.code and o.invalidated_at is null
        order by o.effective_at desc limit 1
    ) as o
    """
).columns(components=JSONB)


async def latest(session: AsyncSession, patient_id: uuid.UUID, codes: Sequence[str]) -> list[Latest]:
    rows = await session.execute(_LATEST, {"patient_id": patient_id, "codes": list(codes)})
    return [Latest(*r) for r in rows]


# The patient's newest NEWS2 score (rules.early_warning), with the resource its sub-scores are in.
_LATEST_SCORE = text(
    """
    select o.id, o.effective_at, o.value, o.resource from observations o
    where o.patient_id = :patient_id and o.code = :code and o.invalidated_at is null
    order by o.effective_at desc limit 1
    """
)


class LatestScore(NamedTuple):
    id: uuid.UUID
    effective_at: datetime
    total: float
    resource: dict[str, Any]


async def latest_score(session: AsyncSession, patient_id: uuid.UUID, code: str) -> LatestScore | None:
    row = (await session.execute(_LATEST_SCORE, {"patient_id": patient_id, "code": code})).first()
    return LatestScore(*row) if row is not None else None


# The patient's scores of a period, on the (patient, code, time) index.
_SCORES = text(
    """
    select o.id, o.effective_at, o.value, o.resource from observations o
    where o.patient_id = :patient_id and o.code = :code and o.effective_at >= :start and o.effective_at < :end
        and o.invalidated_at is null
    order by o.effective_at, o.id
    limit :limit
    """
)


async def scores(
    session: AsyncSession, patient_id: uuid.UUID, code: str, start: datetime, end: datetime, limit: int
) -> list[LatestScore]:
    """The patient's scores of `code` taken in [start, end), oldest first, at most `limit`."""
    rows = await session.execute(
        _SCORES, {"patient_id": patient_id, "code": code, "start": start, "end": end, "limit": limit}
    )
    return [LatestScore(*r) for r in rows]


async def observations_of(
    session: AsyncSession, patient_id: uuid.UUID, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Observation]:
    """The patient's Observations with these ids, entered in error or not (another patient's
    are left out), by id."""
    if not ids:
        return {}
    found = await session.scalars(
        select(Observation).where(Observation.patient_id == patient_id, Observation.id.in_(list(ids)))
    )
    return {o.id: o for o in found}


class Point(NamedTuple):
    """One quantity of one Observation: a panel gives one per component."""

    observation_id: uuid.UUID
    code: str  # of the quantity (a component's code for a panel)
    effective_at: datetime
    value: float


# A panel's components become one point each, named by the component's code.
_QUANTITIES = """
    select o.id, q.code, o.effective_at, q.value
    from observations o
    cross join lateral (
        select o.code, o.value where o.value is not null
        union all
        select c.key, cast(c.value as float8) from jsonb_each_text(o.components) as c where o.components is not null
    ) as q(code, value)
"""

_POINTS = text(
    f"""
    {_QUANTITIES}
    where o.patient_id = :patient_id and o.effective_at >= :since and o.invalidated_at is null
    order by o.effective_at, o.id
    """
)


async def points_since(session: AsyncSession, patient_id: uuid.UUID, since: datetime) -> list[Point]:
    rows = await session.execute(_POINTS, {"patient_id": patient_id, "since": since})
    return [Point(*r) for r in rows]


_RAW = text(
    f"""
    {_QUANTITIES}
    where o.patient_id = :patient_id and o.code = :code and o.effective_at >= :start and o.effective_at < :end
        and o.invalidated_at is null
    order by o.effective_at, o.id
    limit :limit
    """
)


async def raw_points(
    session: AsyncSession, patient_id: uuid.UUID, code: str, start: datetime, end: datetime, limit: int
) -> list[Point]:
    """The Observations of `code` taken in [start, end), oldest first, at most `limit`."""
    rows = await session.execute(
        _RAW, {"patient_id": patient_id, "code": code, "start": start, "end": end, "limit": limit}
    )
    return [Point(*r) for r in rows]


class Aggregate(NamedTuple):
    start: datetime
    code: str  # of the quantity
    readings: int
    min: float
    max: float
    mean: float


_BUCKETS = text(
    f"""
    select date_trunc(:field, q.effective_at, :zone) as start, q.code, count(*), min(q.value), max(q.value),
        avg(q.value)
    from ({_QUANTITIES}
        where o.patient_id = :patient_id and o.code = :code and o.effective_at >= :start and o.effective_at < :end
            and o.invalidated_at is null
    ) as q(id, code, effective_at, value)
    group by 1, 2
    order by 2, 1
    """
)


async def buckets(
    session: AsyncSession, patient_id: uuid.UUID, code: str, start: datetime, end: datetime, field: str
) -> list[Aggregate]:
    """Count, min, max and mean per quantity and bucket (`field`: hour, day or week, cut in
    Oslo time) of the Observations of `code` taken in [start, end)."""
    rows = await session.execute(
        _BUCKETS,
        {"patient_id": patient_id, "code": code, "start": start, "end": end, "field": field, "zone": OSLO.key},
    )
    return [Aggregate(*r) for r in rows]


_OF_IDS = text(
    f"""
    {_QUANTITIES}
    where o.patient_id = :patient_id and o.id = any(cast(:ids as uuid[])) and o.invalidated_at is null
    order by o.effective_at, o.id
    """
)


async def points_of(session: AsyncSession, patient_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> list[Point]:
    """The quantities of the patient's Observations with these ids, oldest first."""
    if not ids:
        return []
    rows = await session.execute(_OF_IDS, {"patient_id": patient_id, "ids": list(ids)})
    return [Point(*r) for r in rows]


class AlertEvidence(NamedTuple):
    """One triggering reading of one of the patient's alerts."""

    alert_id: uuid.UUID
    rule: str
    level: str
    status: str
    opened_at: datetime
    observation_id: uuid.UUID
    value: float | None
    effective_at: datetime


# The patient's alerts (on the (patient_id, status) index) and, for each, its evidence taken in
# the period (on the (alert_id, effective_at) index): the cost follows the period, not the
# alerts' age. A reading entered in error is no point of the chart, so it marks none.
_ALERT_EVIDENCE = text(
    """
    select a.id, a.rule, a.level, a.status, a.opened_at, e.observation_id, e.value, e.effective_at
    from alerts a
    join alert_observations e on e.alert_id = a.id
    join observations o on o.id = e.observation_id and o.invalidated_at is null
    where a.patient_id = :patient_id and e.effective_at >= :start and e.effective_at < :end
    order by e.effective_at, a.id, e.observation_id
    limit :limit
    """
)


async def alert_evidence(
    session: AsyncSession, patient_id: uuid.UUID, start: datetime, end: datetime, limit: int
) -> list[AlertEvidence]:
    """The triggering readings taken in [start, end) of the patient's alerts (any status),
    oldest first, at most `limit`."""
    rows = await session.execute(
        _ALERT_EVIDENCE, {"patient_id": patient_id, "start": start, "end": end, "limit": limit}
    )
    return [AlertEvidence(*r) for r in rows]
