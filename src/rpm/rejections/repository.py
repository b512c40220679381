"""Queries on rejected readings."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from sqlalchemy import any_, case, exists, func, insert, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from rpm.devices.models import Device
from rpm.gateways.models import Gateway
from rpm.rejections.models import RejectedReading


async def add_all(session: AsyncSession, rows: Sequence[dict[str, object]]) -> None:
    # 12 columns a row stays well under PostgreSQL's 32,767 bind parameters at 1,000 rows.
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


async def owned_by(
    session: AsyncSession,
    organisation_id: uuid.UUID | Literal["anyone"] | None,
    *,
    gateway: str | None = None,
    serial: str | None = None,
    reason: str | None = None,
    received_from: datetime | None = None,
    received_to: datetime | None = None,
    include_reprocessed: bool = False,
    after: tuple[datetime, uuid.UUID] | None = None,
    limit: int = 50,
) -> list[RejectedReading]:
    """Rejections that belong to the organisation, newest first. A rejection belongs to the
    organisation that registered its device, else to the one that registered its gateway, else
    to none (`organisation_id=None`: what only an operator sees; "anyone": all of them). A whole
    message kept as one rejection has no device: it is its gateway's organisation's unless it
    names a device another organisation registered, then an operator's.
    Decided when asked, so a device registered later takes its rejections with it."""
    # A whole message names the devices of its readings: if one of them was registered by
    # another organisation, the gateway's organisation does not get to read it either.
    named = aliased(Device)
    foreign = exists().where(
        named.serial == any_(RejectedReading.mentioned_serials), named.organisation_id != Gateway.organisation_id
    )
    owner = func.coalesce(Device.organisation_id, case((foreign, None), else_=Gateway.organisation_id))
    statement = (
        select(RejectedReading)
        .outerjoin(Device, Device.serial == RejectedReading.device_serial)
        .outerjoin(Gateway, Gateway.id == RejectedReading.gateway_id)
    )
    if organisation_id is None:
        statement = statement.where(owner.is_(None))
    elif organisation_id != "anyone":
        statement = statement.where(owner == organisation_id)
    if gateway is not None:
        statement = statement.where(RejectedReading.gateway_id == gateway)
    if serial is not None:
        statement = statement.where(RejectedReading.device_serial == serial)
    if reason is not None:
        statement = statement.where(RejectedReading.reason == reason)
    if received_from is not None:
        statement = statement.where(RejectedReading.received_at >= received_from)
    if received_to is not None:
        statement = statement.where(RejectedReading.received_at < received_to)
    if not include_reprocessed:
        statement = statement.where(RejectedReading.reprocessed_at.is_(None))
    if after is not None:
        statement = statement.where(tuple_(RejectedReading.received_at, RejectedReading.id) < tuple_(*after))
    statement = statement.order_by(RejectedReading.received_at.desc(), RejectedReading.id.desc()).limit(limit)
    return list(await session.scalars(statement))
