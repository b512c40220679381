"""Queries on stored Observations."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Select, and_, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.fhir.codes import READING_TYPE_OF_CODE
from rpm.observations.models import Observation


@dataclass(slots=True)  # built for every reading: no frozen-init cost
class ObservationRow:
    id: uuid.UUID
    patient_id: uuid.UUID
    device_id: uuid.UUID
    reading_type: str
    code: str
    effective_at: datetime
    value: float | None
    components: dict[str, float] | None
    unit: str
    original_value: Any
    original_unit: str
    gateway_id: str
    reading_id: str
    received_at: datetime
    resource: dict[str, Any]


# One statement for the whole batch: columns travel as arrays, so a batch of thousands
# of readings costs one round trip, and conflicts on the reading key are skipped.
_INSERT = text(
    """
    insert into observations (id, patient_id, device_id, reading_type, code, effective_at, value,
        components, unit, original_value, original_unit, gateway_id, reading_id, received_at, resource)
    select id, patient_id, device_id, reading_type, code, effective_at, value,
        components::jsonb, unit, original_value::json, original_unit, gateway_id, reading_id,
        received_at, resource::json
    from unnest(
        cast(:id as uuid[]), cast(:patient_id as uuid[]), cast(:device_id as uuid[]),
        cast(:reading_type as text[]), cast(:code as text[]), cast(:effective_at as timestamptz[]),
        cast(:value as float8[]), cast(:components as text[]), cast(:unit as text[]),
        cast(:original_value as text[]), cast(:original_unit as text[]), cast(:gateway_id as text[]),
        cast(:reading_id as text[]), cast(:received_at as timestamptz[]), cast(:resource as text[])
    ) as t(id, patient_id, device_id, reading_type, code, effective_at, value, components, unit,
           original_value, original_unit, gateway_id, reading_id, received_at, resource)
    on conflict on constraint uq_observations_reading do nothing
    returning id
    """
)


async def insert_new(session: AsyncSession, rows: Sequence[ObservationRow]) -> set[uuid.UUID]:
    """Insert the rows whose reading key is new; return the ids actually inserted."""
    if not rows:
        return set()
    params: dict[str, list[Any]] = {
        "id": [r.id for r in rows],
        "patient_id": [r.patient_id for r in rows],
        "device_id": [r.device_id for r in rows],
        "reading_type": [r.reading_type for r in rows],
        "code": [r.code for r in rows],
        "effective_at": [r.effective_at for r in rows],
        "value": [r.value for r in rows],
        "components": [None if r.components is None else orjson.dumps(r.components).decode() for r in rows],
        "unit": [r.unit for r in rows],
        "original_value": [orjson.dumps(r.original_value).decode() for r in rows],
        "original_unit": [r.original_unit for r in rows],
        "gateway_id": [r.gateway_id for r in rows],
        "reading_id": [r.reading_id for r in rows],
        "received_at": [r.received_at for r in rows],
        # orjson: the standard encoder was the largest Python cost of a batch.
        "resource": [orjson.dumps(r.resource).decode() for r in rows],
    }
    result = await session.execute(_INSERT, params)
    return {row[0] for row in result}


async def by_id(session: AsyncSession, observation_id: uuid.UUID) -> Observation | None:
    return await session.get(Observation, observation_id)


@dataclass(frozen=True)
class DateBound:
    prefix: str  # ge, le, gt, lt, eq
    at: datetime


@dataclass(frozen=True)
class SearchCursor:
    effective_at: datetime
    id: uuid.UUID


def search_statement(
    patient_ids: Sequence[uuid.UUID],
    codes: Sequence[str],
    dates: Sequence[DateBound],
    newest_first: bool,
    after: SearchCursor | None,
) -> Select[tuple[Observation]]:
    statement = select(Observation).where(Observation.patient_id.in_(patient_ids))
    if codes:
        statement = statement.where(Observation.code.in_(codes))
    for bound in dates:
        column = Observation.effective_at
        statement = statement.where(
            {
                "ge": column >= bound.at,
                "le": column <= bound.at,
                "gt": column > bound.at,
                "lt": column < bound.at,
                "eq": column == bound.at,
            }[bound.prefix]
        )
    if newest_first:
        if after is not None:
            statement = statement.where(
                or_(
                    Observation.effective_at < after.effective_at,
                    and_(Observation.effective_at == after.effective_at, Observation.id < after.id),
                )
            )
        return statement.order_by(Observation.effective_at.desc(), Observation.id.desc())
    if after is not None:
        statement = statement.where(
            or_(
                Observation.effective_at > after.effective_at,
                and_(Observation.effective_at == after.effective_at, Observation.id > after.id),
            )
        )
    return statement.order_by(Observation.effective_at, Observation.id)


async def search(
    session: AsyncSession,
    *,
    patient_ids: Sequence[uuid.UUID],
    codes: Sequence[str],
    dates: Sequence[DateBound],
    newest_first: bool,
    after: SearchCursor | None,
    limit: int,
) -> list[Observation]:
    statement = search_statement(patient_ids, codes, dates, newest_first, after).limit(limit)
    return list(await session.scalars(statement))


async def last_reading_times(
    session: AsyncSession, patient_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, datetime]]:
    """For each patient, the time of the newest reading of each type."""
    if not patient_ids:
        return {}
    rows = await session.execute(
        select(Observation.patient_id, Observation.code, func.max(Observation.effective_at))
        .where(Observation.patient_id.in_(patient_ids))
        .group_by(Observation.patient_id, Observation.code)
    )
    found: dict[uuid.UUID, dict[str, datetime]] = {}
    for patient_id, code, last in rows:
        found.setdefault(patient_id, {})[READING_TYPE_OF_CODE[code]] = last
    return found
