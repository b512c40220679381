"""Queries on devices and their assignments."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Row, delete, or_, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from rpm.devices.models import Device, DeviceAssignment


async def by_serial(session: AsyncSession, serial: str) -> Device | None:
    return await session.scalar(
        select(Device).where(Device.serial == serial).options(joinedload(Device.organisation, innerjoin=True))
    )


async def by_id(session: AsyncSession, device_id: uuid.UUID) -> Device | None:
    return await session.scalar(
        select(Device).where(Device.id == device_id).options(joinedload(Device.organisation, innerjoin=True))
    )


async def visible_page(
    session: AsyncSession,
    organisation_id: uuid.UUID,
    visible_patients: Any,
    *,
    reading_type: str | None,
    patient_id: uuid.UUID | None,
    after: str | None,
    limit: int,
) -> list[Device]:
    """Devices the organisation registered or that served a patient it follows, by serial."""
    served = select(DeviceAssignment.device_id).where(DeviceAssignment.patient_id.in_(visible_patients))
    statement = (
        select(Device)
        .options(joinedload(Device.organisation, innerjoin=True))
        .where(or_(Device.organisation_id == organisation_id, Device.id.in_(served)))
    )
    if reading_type is not None:
        statement = statement.where(Device.type == reading_type)
    if patient_id is not None:
        statement = statement.where(
            Device.id.in_(select(DeviceAssignment.device_id).where(DeviceAssignment.patient_id == patient_id))
        )
    if after is not None:
        statement = statement.where(Device.serial > after)
    return list(await session.scalars(statement.order_by(Device.serial).limit(limit)))


async def assignments_in_force(
    session: AsyncSession, device_ids: Collection[uuid.UUID], at: datetime
) -> dict[uuid.UUID, DeviceAssignment]:
    rows = await session.scalars(
        select(DeviceAssignment).where(
            DeviceAssignment.device_id.in_(device_ids),
            DeviceAssignment.valid_from <= at,
            (DeviceAssignment.valid_to.is_(None)) | (DeviceAssignment.valid_to > at),
        )
    )
    return {a.device_id: a for a in rows}


async def assigned_now(session: AsyncSession, patient_id: uuid.UUID, at: datetime) -> list[Device]:
    rows = await session.scalars(
        select(Device)
        .join(DeviceAssignment, DeviceAssignment.device_id == Device.id)
        .where(
            DeviceAssignment.patient_id == patient_id,
            DeviceAssignment.valid_from <= at,
            (DeviceAssignment.valid_to.is_(None)) | (DeviceAssignment.valid_to > at),
        )
        .order_by(Device.serial)
        .options(joinedload(Device.organisation, innerjoin=True))
    )
    return list(rows)


# The newest Observation the device stored: searched per assignment on the (patient, code,
# time) index within the assignment's period, newest assignment first (there is no index by
# device, which every stored reading would pay for).
_LAST_READING = text(
    """
    select o.id, o.patient_id, o.code, o.effective_at, o.value, o.components, o.unit
    from device_assignments a
    cross join lateral (
        select o.id, o.patient_id, o.code, o.effective_at, o.value, o.components, o.unit from observations o
        where o.patient_id = a.patient_id and o.code = :code and o.device_id = a.device_id
          and o.effective_at >= a.valid_from and (a.valid_to is null or o.effective_at < a.valid_to)
        order by o.effective_at desc limit 1
    ) as o
    where a.device_id = :device_id and a.patient_id = any(cast(:patients as uuid[]))
    order by o.effective_at desc limit 1
    """
).columns(components=JSONB)


async def last_reading(
    session: AsyncSession, device_id: uuid.UUID, code: str, patients: Collection[uuid.UUID]
) -> Row[Any] | None:
    """The newest Observation the device stored for one of `patients`."""
    params = {"device_id": device_id, "code": code, "patients": list(patients)}
    return (await session.execute(_LAST_READING, params)).first()


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
