"""Processing kept rejections again, e.g. once a device that was registered late is assigned."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access import service as access
from rpm.access.repository import visible_among
from rpm.access.staff import Role
from rpm.audit.service import Actor, record
from rpm.devices import repository as devices
from rpm.errors import NotFound
from rpm.observations import repository as observations
from rpm.organisations.service import caller_organisation
from rpm.pipeline import IncomingMessage, record_messages
from rpm.rejections import repository
from rpm.rejections.models import RejectedReading
from rpm.rejections.schemas import RejectedOut


async def reprocess_device(
    session: AsyncSession, serial: str, *, now: datetime | None = None, stored: set[tuple[str, str]] | None = None
) -> dict[str, int]:
    """Run the device's open rejections through ingest again; those still rejected stay open.
    The (gateway, reading id) of each reading accepted now is added to `stored`."""
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
            if result["status"] == "accepted" and stored is not None and row.gateway_id and result["id"]:
                stored.add((row.gateway_id, result["id"]))
    await session.flush()
    return counts


async def list_for_caller(
    session: AsyncSession,
    actor: Actor,
    *,
    gateway: str | None = None,
    serial: str | None = None,
    reason: str | None = None,
    received_from: datetime | None = None,
    received_to: datetime | None = None,
    include_reprocessed: bool = False,
    after: tuple[datetime, uuid.UUID] | None = None,
    limit: int = 50,
) -> list[RejectedOut]:
    """The rejected readings that belong to the caller's organisation (see repository.owned_by):
    raw payloads never cross organisations.

    Returns up to `limit` + 1: the last one, when there, only tells the page there is more;
    it is neither shown nor audited."""
    organisation = await caller_organisation(session, actor.staff)
    rows = await repository.owned_by(
        session,
        organisation.id,
        gateway=gateway,
        serial=serial,
        reason=reason,
        received_from=received_from,
        received_to=received_to,
        include_reprocessed=include_reprocessed,
        after=after,
        limit=limit + 1,
    )
    await record(session, actor, "search", "RejectedReading", None, await _patients_of(session, actor, rows[:limit]))
    return [RejectedOut.model_validate(row) for row in rows]


async def _patients_of(session: AsyncSession, actor: Actor, rows: Sequence[RejectedReading]) -> list[uuid.UUID]:
    """The patients the caller follows whose devices' readings these are: a reading refused as
    implausible, say, from an assigned device, is still a measurement of that patient."""
    serials = {r.device_serial for r in rows if r.device_serial}
    if not serials:
        return []
    known = await devices.with_assignments(session, serials)
    patients = {
        patient
        for r in rows
        if r.device_serial in known
        and (patient := devices.patient_at(known[r.device_serial][1], r.received_at)) is not None
    }
    return sorted(await visible_among(session, actor.staff.orgnr, patients, access.today()))


async def reprocess_for_caller(session: AsyncSession, actor: Actor, serial: str) -> dict[str, int]:
    """An admin reprocesses the open rejections of a device their organisation registered
    (typically just now, after seeing its readings rejected as `unknown_device`)."""
    actor.staff.require(Role.admin)
    device = await devices.by_serial(session, serial)
    organisation = await caller_organisation(session, actor.staff)
    if device is None or device.organisation_id != organisation.id:
        raise NotFound("not_found", "no such device")
    stored: set[tuple[str, str]] = set()
    counts = await reprocess_device(session, serial, stored=stored)
    patients = await observations.patients_of_readings(session, stored)
    await record(session, actor, "reprocess", "Device", str(device.id), patients)
    return counts
