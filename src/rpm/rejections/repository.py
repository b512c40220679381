"""Queries on rejected readings."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.devices.models import Device
from rpm.rejections.models import RejectedReading


async def add_all(session: AsyncSession, rows: Sequence[dict[str, object]]) -> None:
    # 11 columns a row stays well under PostgreSQL's 32,767 bind parameters at 1,000 rows.
    for start in range(0, len(rows), 1000):
        await session.execute(insert(RejectedReading), list(rows[start : start + 1000]))


async def open_for_serial(session: AsyncSession, serial: str) -> list[RejectedReading]:
    rows = await session.scalars(
        select(RejectedReading)
        .where(RejectedReading.device_serial == serial, RejectedReading.reprocessed_at.is_(None))
        .order_by(RejectedReading.received_at)
        .with_for_update(skip_locked=True)
    )
    return list(rows)


async def for_organisation(
    session: AsyncSession,
    organisation_id: uuid.UUID,
    *,
    serial: str | None,
    include_reprocessed: bool,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[RejectedReading]:
    """Rejections of the devices the organisation registered, newest first."""
    own_serials = select(Device.serial).where(Device.organisation_id == organisation_id)
    statement = select(RejectedReading).where(RejectedReading.device_serial.in_(own_serials))
    if serial is not None:
        statement = statement.where(RejectedReading.device_serial == serial)
    if not include_reprocessed:
        statement = statement.where(RejectedReading.reprocessed_at.is_(None))
    if after is not None:
        statement = statement.where(tuple_(RejectedReading.received_at, RejectedReading.id) < tuple_(*after))
    statement = statement.order_by(RejectedReading.received_at.desc(), RejectedReading.id.desc()).limit(limit)
    return list(await session.scalars(statement))
