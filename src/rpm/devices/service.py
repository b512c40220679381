"""Registering devices and assigning them to patients over time."""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access import repository as access_repository
from rpm.access import service as access
from rpm.access.staff import Role
from rpm.audit.service import Actor, record
from rpm.devices import repository
from rpm.devices.models import Device, DeviceAssignment
from rpm.devices.schemas import AssignmentIn, AssignmentOut, DeviceCreate, DeviceOut
from rpm.errors import Conflict, InvalidInput, NotFound
from rpm.organisations import repository as organisations


def to_out(device: Device) -> DeviceOut:
    return DeviceOut(
        id=device.id, serial=device.serial, type=device.type, manufacturer=device.manufacturer, model=device.model
    )


async def register(session: AsyncSession, actor: Actor, payload: DeviceCreate) -> DeviceOut:
    actor.staff.require(Role.admin)
    organisation = await organisations.by_orgnr(session, actor.staff.orgnr)
    if organisation is None:
        raise InvalidInput("unknown_organisation", f"your organisation {actor.staff.orgnr} is not registered")
    if await repository.by_serial(session, payload.serial) is not None:
        raise Conflict("device_exists", f"device {payload.serial} is already registered")
    device = Device(
        serial=payload.serial,
        type=payload.type,
        manufacturer=payload.manufacturer,
        model=payload.model,
        organisation_id=organisation.id,
    )
    session.add(device)
    try:
        await session.flush()
    except IntegrityError as error:
        raise Conflict("device_exists", f"device {payload.serial} is already registered") from error
    return to_out(device)


async def read(session: AsyncSession, actor: Actor, device_id: uuid.UUID) -> Device:
    """A device the caller's organisation registered, or one that served a patient it follows."""
    device = await repository.by_id(session, device_id)
    organisation = await organisations.by_orgnr(session, actor.staff.orgnr)
    if device is None or organisation is None:
        raise NotFound("not_found", "no such device")
    if device.organisation_id != organisation.id:
        patients = {a.patient_id for a in await repository.assignments_of(session, device.id)}
        for patient_id in patients:
            if await access_repository.may_see(session, actor.staff.orgnr, patient_id, access.today()):
                break
        else:
            raise NotFound("not_found", "no such device")
    return device


async def assign(session: AsyncSession, actor: Actor, serial: str, payload: AssignmentIn) -> AssignmentOut:
    """Give the device to the patient from `from`; the assignment open at that time ends there."""
    actor.staff.require(Role.admin)
    device = await repository.by_serial(session, serial)
    organisation = await organisations.by_orgnr(session, actor.staff.orgnr)
    if device is None or organisation is None:
        raise NotFound("not_found", "no such device")
    # Lock the device row: two admins re-assigning one device at once must not interleave.
    await session.refresh(device, with_for_update=True)
    current = [
        a
        for a in await repository.assignments_of(session, device.id)
        if a.valid_to is None or a.valid_to > payload.from_
    ]
    if device.organisation_id != organisation.id:
        # Another organisation's device may be moved only from a patient the caller also follows.
        holders = {a.patient_id for a in current}
        for patient_id in holders:
            await access.require_patient(session, actor.staff, patient_id)
        if not holders:
            raise NotFound("not_found", "no such device")
    await access.require_patient(session, actor.staff, payload.patient)
    if payload.to is not None and payload.to <= payload.from_:
        raise InvalidInput("invalid_period", "to: must be after from")
    if any(a.valid_from >= payload.from_ for a in current):
        raise Conflict(
            "assignment_conflict", "the device has an assignment starting at or after this time; end it first"
        )
    await repository.end_assignments_from(session, device.id, payload.from_)
    assignment = DeviceAssignment(
        device_id=device.id, patient_id=payload.patient, valid_from=payload.from_, valid_to=payload.to
    )
    session.add(assignment)
    try:
        await session.flush()
    except IntegrityError as error:
        raise Conflict("assignment_conflict", "the period overlaps another assignment of the device") from error
    await record(session, actor, "assign", "Device", str(device.id), [payload.patient])
    return AssignmentOut(serial=device.serial, patient=payload.patient, from_=payload.from_, to=payload.to)
