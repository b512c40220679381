"""Queries on stored Observations."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import CompoundSelect, Select, select, text, true, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from rpm.observations.models import Observation

# FHIR Observation.status of a reading staff marked as a mistake (the patient forgot the cuff).
ENTERED_IN_ERROR = "entered-in-error"


@dataclass(slots=True)  # built for every reading: no frozen-init cost
class ObservationRow:
    id: uuid.UUID
    patient_id: uuid.UUID
    device_id: uuid.UUID | None  # None for a derived Observation (a NEWS2 score)
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


def _search(
    statement: Select[Any],
    columns: Any,
    codes: Collection[str] | None,
    dates: Sequence[DateBound],
    newest_first: bool,
    after: SearchCursor | None,
) -> Select[Any]:
    """Search conditions and order on `columns` (Observation's, or a subquery's)."""
    if codes is not None:
        statement = statement.where(columns.code.in_(codes))
    column = columns.effective_at
    for bound in dates:
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
            # The plain bound lets the (patient, time) index start at the cursor.
            statement = statement.where(
                column <= after.effective_at, tuple_(column, columns.id) < tuple_(after.effective_at, after.id)
            )
        return statement.order_by(column.desc(), columns.id.desc())
    if after is not None:
        statement = statement.where(
            column >= after.effective_at, tuple_(column, columns.id) > tuple_(after.effective_at, after.id)
        )
    return statement.order_by(column, columns.id)


# Newest first across patients, the merge first looks this far back from the newest possible
# reading, then further: a day of an organisation's readings is usually a page's worth.
_LOOK_BACK = (timedelta(days=1), timedelta(days=8), timedelta(days=60))


async def search(
    session: AsyncSession,
    *,
    patients: uuid.UUID | Select[uuid.UUID] | CompoundSelect,
    codes: Collection[str] | None,
    dates: Sequence[DateBound],
    newest_first: bool,
    after: SearchCursor | None,
    limit: int,
    now: datetime,
) -> list[Observation]:
    """Observations of one patient, or of every patient `patients` selects, in time order.

    Across patients, each patient's first `limit` come off the (patient, time) index and only
    those are merged: the newest readings of an organisation's hundreds of patients without
    sorting all of them. Newest first, the merge tries a day back from the cursor (or from
    `now`), then a week, then two months, then all: once a window holds `limit` readings,
    nothing older can be among the first `limit`."""
    if isinstance(patients, uuid.UUID):
        statement = _search(
            select(Observation).where(Observation.patient_id == patients),
            Observation,
            codes,
            dates,
            newest_first,
            after,
        )
        return list(await session.scalars(statement.limit(limit)))
    # A union (care team and hand-overs) has no duplicates already.
    followed = (patients.distinct() if isinstance(patients, Select) else patients).subquery("followed")
    windows: Sequence[timedelta | None] = (*_LOOK_BACK, None) if newest_first else (None,)
    # A reading may be taken up to 10 minutes ahead of the clock (mqtt.md).
    newest = after.effective_at if after is not None else now + timedelta(hours=1)
    for window in windows:
        bounds = [*dates, DateBound("ge", newest - window)] if window is not None else dates
        each = _search(
            select(Observation).where(Observation.patient_id == followed.c[0]),
            Observation,
            codes,
            bounds,
            newest_first,
            after,
        )
        firsts = each.limit(limit).lateral("firsts")
        merged = aliased(Observation, firsts)
        statement = _search(
            select(merged).select_from(followed).join(firsts, true()), merged, None, (), newest_first, None
        )
        found = list(await session.scalars(statement.limit(limit)))
        if len(found) >= limit:
            break
    return found


_NEWEST_READING_TIMES = text(
    """
    select p.id, last.at
    from unnest(cast(:ids as uuid[])) as p(id)
    cross join lateral (
        select o.effective_at as at from observations o where o.patient_id = p.id and o.invalidated_at is null
        order by o.effective_at desc limit 1
    ) as last
    """
)


async def newest_reading_times(session: AsyncSession, patient_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, datetime]:
    """For each patient, when their newest valid reading of any type was taken (one entered in
    error does not count): one probe of the (patient, time) index each."""
    if not patient_ids:
        return {}
    rows = await session.execute(_NEWEST_READING_TIMES, {"ids": list(patient_ids)})
    return {patient_id: at for patient_id, at in rows}


async def patients_of_readings(session: AsyncSession, readings: Collection[tuple[str, str]]) -> list[uuid.UUID]:
    """The patients of the stored readings with these (gateway id, reading id) keys."""
    if not readings:
        return []
    rows = await session.scalars(
        select(Observation.patient_id)
        .where(tuple_(Observation.gateway_id, Observation.reading_id).in_(list(readings)))
        .distinct()
    )
    return sorted(rows)


async def locked(session: AsyncSession, observation_id: uuid.UUID) -> Observation | None:
    """The Observation, locked for a change (two staff marking it at once: one waits)."""
    return await session.scalar(
        select(Observation)
        .where(Observation.id == observation_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


# The Observations derived from any of `:ids`: the other Observations of the same gateway
# reading (a blood-pressure panel's pulse names the panel) and those the service made itself
# (no device: a NEWS2 score) at or after the reading's time, each only where its `derivedFrom`
# names one of them. Both on indexes: the reading key, and (patient, time).
_DERIVED = text(
    """
    with source as (
        select s.id, s.patient_id, s.effective_at, s.gateway_id, s.reading_id,
            jsonb_build_array(jsonb_build_object('reference', 'Observation/' || s.id)) as named
        from observations s where s.id = any(cast(:ids as uuid[]))
    ),
    candidate as (
        select o.id, s.named from source s
        join observations o on o.gateway_id = s.gateway_id and o.reading_id = s.reading_id and o.id <> s.id
        union all
        select o.id, s.named from source s
        join observations o on o.patient_id = s.patient_id and o.effective_at >= s.effective_at
            and o.device_id is null and o.id <> s.id
    )
    select distinct o.id from candidate c join observations o on o.id = c.id
    where o.invalidated_at is null and cast(o.resource as jsonb) -> 'derivedFrom' @> c.named
    """
)


async def derived_from(session: AsyncSession, observation_ids: Collection[uuid.UUID]) -> list[uuid.UUID]:
    """The valid Observations whose `derivedFrom` names one of these: a panel's pulse, a NEWS2
    score. Not transitive: ask again with what it found."""
    if not observation_ids:
        return []
    return sorted(await session.scalars(_DERIVED, {"ids": list(observation_ids)}))


async def derived_closure(session: AsyncSession, observation_id: uuid.UUID) -> list[uuid.UUID]:
    """Every valid Observation derived from this one, at any remove, nearest first: a panel's
    pulse, then the NEWS2 score that scored the pulse."""
    marked = [observation_id]
    found = await derived_from(session, marked)
    while found:
        marked += [oid for oid in found if oid not in marked]
        found = [oid for oid in await derived_from(session, found) if oid not in marked]
    return marked[1:]


async def mark_invalidated(
    session: AsyncSession,
    observation_ids: Collection[uuid.UUID],
    *,
    at: datetime,
    by_sub: str,
    by_name: str | None,
    reason_of: Callable[[Observation], str],
) -> list[Observation]:
    """Mark the Observations entered in error, each with its reason: the columns, and the status
    of the stored FHIR resource (everything else in it kept, key order too). Returns them,
    locked, by id."""
    found = list(
        await session.scalars(
            select(Observation)
            .where(Observation.id.in_(observation_ids))
            .order_by(Observation.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )
    for observation in found:
        observation.invalidated_at, observation.invalidation_reason = at, reason_of(observation)
        observation.invalidated_by_sub, observation.invalidated_by_name = by_sub, by_name
        # A new dict: the column is plain `json`, whose changes in place are not tracked.
        observation.resource = {**observation.resource, "status": ENTERED_IN_ERROR}
    await session.flush()
    return found
