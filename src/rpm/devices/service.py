"""Registering devices and assigning them to patients over time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access import repository as access_repository
from rpm.access import service as access
from rpm.access.repository import visible_patient_ids
from rpm.access.staff import Role
from rpm.audit.service import Actor, record
from rpm.devices import repository
from rpm.devices.models import Device, DeviceAssignment
from rpm.devices.schemas import (
    AssignmentIn,
    AssignmentOut,
    AssignmentPeriod,
    DeviceCreate,
    DeviceDetail,
    DeviceListItem,
    DeviceOut,
    LastReading,
)
from rpm.errors import Conflict, InvalidInput, NotFound
from rpm.fhir.codes import READING_TYPES
from rpm.organisations.service import caller_organisation


async def register(session: AsyncSession, actor: Actor, payload: DeviceCreate) -> DeviceOut:
    actor.staff.require(Role.admin)
    organisation = await caller_organisation(session, actor.staff)
    if await repository.by_serial(session, payload.serial) is not None:
        raise Conflict("device_exists", f"device {payload.serial} is already registered")
    device = Device(
        serial=payload.serial,
        type=payload.type,
        manufacturer=payload.manufacturer,
        model=payload.model,
        organisation_id=organisation.id,
        organisation=organisation,
    )
    session.add(device)
    try:
        await session.flush()
    except IntegrityError as error:
        raise Conflict("device_exists", f"device {payload.serial} is already registered") from error
    return DeviceOut.model_validate(device)


async def _visible(session: AsyncSession, actor: Actor, device: Device | None) -> tuple[Device, set[uuid.UUID]]:
    """The device if the caller's organisation registered it or follows a patient it served,
    with the patients among those it served that the caller may see."""
    organisation = await caller_organisation(session, actor.staff)
    if device is None:
        raise NotFound("not_found", "no such device")
    served = {a.patient_id for a in await repository.assignments_of(session, device.id)}
    seen = await access_repository.visible_among(session, actor.staff.orgnr, served, access.today())
    if device.organisation_id != organisation.id and not seen:
        raise NotFound("not_found", "no such device")
    return device, seen


async def read(session: AsyncSession, actor: Actor, device_id: uuid.UUID) -> tuple[Device, uuid.UUID | None]:
    """A device the caller's organisation registered, or one that served a patient it follows;
    with the patient it is assigned to now, if the caller follows that patient."""
    device, seen = await _visible(session, actor, await repository.by_id(session, device_id))
    current = (await repository.assignments_in_force(session, [device.id], datetime.now(UTC))).get(device.id)
    shown = current.patient_id if current is not None and current.patient_id in seen else None
    await record(session, actor, "read", "Device", str(device.id), [shown] if shown else [])
    return device, shown


async def assigned_to(session: AsyncSession, actor: Actor, patient_id: uuid.UUID) -> list[Device]:
    """The devices assigned to the patient now (FHIR `Device?patient=`)."""
    await access.require_patient(session, actor.staff, patient_id)
    found = await repository.assigned_now(session, patient_id, datetime.now(UTC))
    await record(session, actor, "search", "Device", None, [patient_id])
    return found


async def detail(session: AsyncSession, actor: Actor, serial: str) -> DeviceDetail:
    """The device with its assignment history and its newest reading."""
    device, seen = await _visible(session, actor, await repository.by_serial(session, serial))
    assignments = [
        AssignmentPeriod(patient=a.patient_id if a.patient_id in seen else None, from_=a.valid_from, to=a.valid_to)
        for a in await repository.assignments_of(session, device.id)
    ]
    last = await repository.last_reading(session, device.id, READING_TYPES[device.type].code, seen)
    last_reading = None
    if last is not None:
        last_reading = LastReading(
            observation=f"Observation/{last.id}",
            patient=last.patient_id,
            code=last.code,
            effective_at=last.effective_at,
            value=last.value,
            components=last.components,
            unit=last.unit,
        )
    await record(session, actor, "read", "Device", str(device.id), sorted(seen))
    return DeviceDetail.model_validate(
        {**DeviceOut.model_validate(device).model_dump(), "assignments": assignments, "last_reading": last_reading}
    )


async def list_visible(
    session: AsyncSession,
    actor: Actor,
    *,
    reading_type: str | None = None,
    patient_id: uuid.UUID | None = None,
    after: str | None = None,
    limit: int = 50,
) -> list[DeviceListItem]:
    """Devices the caller's organisation registered or that served a patient it follows.

    Returns up to `limit` + 1: the last one, when there, only tells the page there is more;
    it is neither shown nor audited."""
    organisation = await caller_organisation(session, actor.staff)
    if patient_id is not None:
        await access.require_patient(session, actor.staff, patient_id)
    found = await repository.visible_page(
        session,
        organisation.id,
        visible_patient_ids(actor.staff.orgnr, access.today()),
        reading_type=reading_type,
        patient_id=patient_id,
        after=after,
        limit=limit + 1,
    )
    current = await repository.assignments_in_force(session, [d.id for d in found], datetime.now(UTC))
    followed = await access_repository.visible_among(
        session, actor.staff.orgnr, [a.patient_id for a in current.values()], access.today()
    )
    items = []
    for device in found:
        assignment = current.get(device.id)
        assigned_to = None
        if assignment is not None:
            assigned_to = AssignmentPeriod(
                patient=assignment.patient_id if assignment.patient_id in followed else None,
                from_=assignment.valid_from,
                to=assignment.valid_to,
            )
        items.append(
            DeviceListItem.model_validate({**DeviceOut.model_validate(device).model_dump(), "assigned_to": assigned_to})
        )
    shown = {i.assigned_to.patient for i in items[:limit] if i.assigned_to and i.assigned_to.patient}
    if patient_id is not None:  # the list says which devices served this patient
        shown.add(patient_id)
    await record(session, actor, "search", "Device", None, sorted(shown))
    return items


async def assign(session: AsyncSession, actor: Actor, serial: str, payload: AssignmentIn) -> AssignmentOut:
    """Give the device to the patient from `from`; the assignment open at that time ends there."""
    actor.staff.require(Role.admin)
    device = await repository.by_serial(session, serial)
    organisation = await caller_organisation(session, actor.staff)
    if device is None:
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
            await access.require_care_team(session, actor.staff, patient_id)
        if not holders:
            raise NotFound("not_found", "no such device")
    await access.require_care_team(session, actor.staff, payload.patient)
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
