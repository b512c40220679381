"""Queries on devices and their assignments."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.devices.models import Device, DeviceAssignment


async def by_serial(session: AsyncSession, serial: str) -> Device | None:
    return await session.scalar(select(Device).where(Device.serial == serial))


async def by_id(session: AsyncSession, device_id: uuid.UUID) -> Device | None:
    return await session.get(Device, device_id)


class Assignment(NamedTuple):
    patient_id: uuid.UUID
    valid_from: datetime
    valid_to: datetime | None


# Built once: on the ingest path, constructing a select() per batch cost more CPU than the
# round trip. The serials travel as one array, so the statement is the same for every batch.
_WITH_ASSIGNMENTS = text(
    """
    select d.id, d.serial, a.patient_id, a.valid_from, a.valid_to
    from devices d left join device_assignments a on a.device_id = d.id
    where d.serial = any(cast(:serials as text[]))
    """
)


async def with_assignments(
    session: AsyncSession, serials: Collection[str]
) -> dict[str, tuple[uuid.UUID, list[Assignment]]]:
    """Device ids by serial, each with every assignment it ever had, in one round trip."""
    rows = await session.execute(_WITH_ASSIGNMENTS, {"serials": list(serials)})
    found: dict[str, tuple[uuid.UUID, list[Assignment]]] = {}
    for device_id, serial, patient_id, valid_from, valid_to in rows:
        assignments = found.setdefault(serial, (device_id, []))[1]
        if patient_id is not None:
            assignments.append(Assignment(patient_id, valid_from, valid_to))
    return found


async def assignments_of(session: AsyncSession, device_id: uuid.UUID) -> list[DeviceAssignment]:
    rows = await session.scalars(
        select(DeviceAssignment).where(DeviceAssignment.device_id == device_id).order_by(DeviceAssignment.valid_from)
    )
    return list(rows)


async def end_assignments_from(
    session: AsyncSession,
    device_id: uuid.UUID,
    at: datetime,
    *,
    patient_id: uuid.UUID | None = None,
) -> None:
    """Close the assignment open at `at` and drop any that would start after it.

    With `patient_id`, only that patient's assignments are touched (ending a follow-up
    must not take the device away from the patient it has since moved on to).
    """
    mine = [DeviceAssignment.device_id == device_id]
    if patient_id is not None:
        mine.append(DeviceAssignment.patient_id == patient_id)
    await session.execute(
        update(DeviceAssignment)
        .where(
            *mine,
            DeviceAssignment.valid_from < at,
            (DeviceAssignment.valid_to.is_(None)) | (DeviceAssignment.valid_to > at),
        )
        .values(valid_to=at)
    )
    await session.execute(delete(DeviceAssignment).where(*mine, DeviceAssignment.valid_from >= at))


def patient_at(assignments: Iterable[Assignment], time: datetime) -> uuid.UUID | None:
    """The patient the device belonged to at `time`: assignments are [from, to)."""
    for a in assignments:
        if a.valid_from <= time and (a.valid_to is None or time < a.valid_to):
            return a.patient_id
    return None


async def device_ids_of_patient(session: AsyncSession, patient_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await session.scalars(
        select(DeviceAssignment.device_id).where(DeviceAssignment.patient_id == patient_id).distinct()
    )
    return list(rows)
