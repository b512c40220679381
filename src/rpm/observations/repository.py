"""Queries on stored Observations."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from sqlalchemy import Select, and_, func, or_, select, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.fhir.codes import READING_TYPES
from rpm.observations.models import Observation

# A reading type is one LOINC code (a blood pressure's pulse is stored as a heart rate).
TYPE_OF_CODE = {reading_type.code: name for name, reading_type in READING_TYPES.items()}


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


# The batch travels by binary COPY into a temporary table of the session, then moves into
# observations in one statement. COPY is the cheapest way in for both sides: binding fifteen
# arrays of thousands of elements cost the worker twice the CPU and PostgreSQL more time.
COLUMNS = (
    "id", "patient_id", "device_id", "reading_type", "code", "effective_at", "value", "components", "unit",
    "original_value", "original_unit", "gateway_id", "reading_id", "received_at", "resource",
)  # fmt: skip
_BATCH_TABLE = "observation_batch"
# A plain statement, so that it also opens the transaction the COPY then joins.
_CREATE_BATCH_TABLE = text(
    f"""
    do $$ begin
        if to_regclass('pg_temp.{_BATCH_TABLE}') is null then
            create temporary table {_BATCH_TABLE} (like observations including defaults) on commit delete rows;
        end if;
    end $$
    """
)
# The rows leave the temporary table as they move, so a second batch in one transaction starts
# empty. In key order, so two batches inserting the same redelivered readings lock them in the
# same order and cannot deadlock; conflicts on the reading key are skipped.
_MOVE_BATCH = text(
    f"""
    with moved as (delete from {_BATCH_TABLE} returning *)
    insert into observations ({", ".join(COLUMNS)})
    select {", ".join(COLUMNS)} from moved order by gateway_id, reading_id, code
    on conflict on constraint uq_observations_reading do nothing
    returning id
    """
)


def as_sqlalchemy_error(statement: str, error: Exception) -> DBAPIError:
    """The driver's error from COPY as the SQLAlchemy error every other statement raises: a
    lost connection is an OperationalError (the ingest worker retries the whole batch), any
    other failure a DBAPIError (the worker records the batch message by message)."""
    # Class 57 (operator intervention): the server is shutting down or restarting.
    lost = asyncpg.exceptions.PostgresConnectionError | asyncpg.exceptions.OperatorInterventionError
    if isinstance(error, OSError | asyncpg.InterfaceError | lost):
        return OperationalError(statement, None, error, connection_invalidated=True)
    return DBAPIError(statement, None, error)


async def insert_new(session: AsyncSession, rows: Sequence[ObservationRow]) -> set[uuid.UUID]:
    """Insert the rows whose reading key is new; return the ids actually inserted."""
    if not rows:
        return set()
    await session.execute(_CREATE_BATCH_TABLE)
    connection = await (await session.connection()).get_raw_connection()
    # orjson: the standard encoder was the largest Python cost of a batch.
    try:
        await connection.driver_connection.copy_records_to_table(
            _BATCH_TABLE,
            columns=COLUMNS,
            records=[
                (
                    r.id,
                    r.patient_id,
                    r.device_id,
                    r.reading_type,
                    r.code,
                    r.effective_at,
                    r.value,
                    None if r.components is None else orjson.dumps(r.components).decode(),
                    r.unit,
                    orjson.dumps(r.original_value).decode(),
                    r.original_unit,
                    r.gateway_id,
                    r.reading_id,
                    r.received_at,
                    orjson.dumps(r.resource).decode(),
                )
                for r in rows
            ],
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise as_sqlalchemy_error(f"COPY {_BATCH_TABLE}", error) from error
    result = await session.execute(_MOVE_BATCH)
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
        found.setdefault(patient_id, {})[TYPE_OF_CODE[code]] = last
    return found
