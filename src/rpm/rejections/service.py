"""Processing kept rejections again, e.g. once a device that was registered late is assigned."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access.staff import Role
from rpm.audit.service import Actor
from rpm.devices import repository as devices
from rpm.errors import NotFound
from rpm.observations.service import IncomingMessage, record_messages
from rpm.organisations import repository as organisations
from rpm.rejections import repository
from rpm.rejections.models import RejectedReading
from rpm.rejections.schemas import RejectedOut


async def reprocess_device(session: AsyncSession, serial: str, *, now: datetime | None = None) -> dict[str, int]:
    """Run the device's open rejections through ingest again; those still rejected stay open."""
    now = now or datetime.now(UTC)
    rows = await repository.open_for_serial(session, serial)
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    if not rows:
        return counts
    outcomes = await record_messages(
        session,
        [IncomingMessage(r.topic, r.payload, r.received_at, r.gateway_id) for r in rows],
        now=now,
        keep_rejections=False,
    )
    for row, outcome in zip(rows, outcomes, strict=True):
        result = outcome.results[0]
        counts[result["status"]] += 1
        if result["status"] == "rejected":
            row.reason, row.detail = result["reason"], result.get("detail")
        else:
            row.reprocessed_at, row.reprocess_outcome = now, result
    await session.flush()
    return counts


def to_out(row: RejectedReading) -> RejectedOut:
    return RejectedOut(
        id=row.id,
        received_at=row.received_at,
        topic=row.topic,
        gateway_id=row.gateway_id,
        reading_id=row.reading_id,
        device_serial=row.device_serial,
        reason=row.reason,
        detail=row.detail,
        payload=row.payload.decode("utf-8", errors="backslashreplace"),
        reprocessed_at=row.reprocessed_at,
        reprocess_outcome=row.reprocess_outcome,
    )


async def _organisation_id(session: AsyncSession, actor: Actor) -> uuid.UUID:
    organisation = await organisations.by_orgnr(session, actor.staff.orgnr)
    if organisation is None:
        raise NotFound("not_found", "your organisation is not registered")
    return organisation.id


async def list_for_caller(
    session: AsyncSession,
    actor: Actor,
    *,
    serial: str | None,
    include_reprocessed: bool,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[RejectedOut]:
    """Rejected readings of the devices the caller's organisation registered."""
    organisation_id = await _organisation_id(session, actor)
    rows = await repository.for_organisation(
        session, organisation_id, serial=serial, include_reprocessed=include_reprocessed, after=after, limit=limit
    )
    return [to_out(row) for row in rows]


async def reprocess_for_caller(session: AsyncSession, actor: Actor, serial: str) -> dict[str, int]:
    """An admin reprocesses the open rejections of a device their organisation registered."""
    actor.staff.require(Role.admin)
    device = await devices.by_serial(session, serial)
    if device is None or device.organisation_id != await _organisation_id(session, actor):
        raise NotFound("not_found", "no such device")
    return await reprocess_device(session, serial)
