"""Devices: registration, assignment to patients, the organisation's devices and one device's history."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from rpm.api.deps import ActorDep, SessionDep
from rpm.api.pagination import Cursor, CursorParam, Key, LimitParam, Page
from rpm.devices import service
from rpm.devices.schemas import AssignmentIn, AssignmentOut, DeviceCreate, DeviceDetail, DeviceListItem, DeviceOut
from rpm.fhir.codes import ReadingTypeName

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])
DEVICE_CURSOR: Cursor[str] = Cursor("devices", Key)  # the serial


@router.post("", status_code=201, response_model=DeviceOut)
async def register(payload: DeviceCreate, session: SessionDep, actor: ActorDep) -> DeviceOut:
    return await service.register(session, actor, payload)


@router.get("", response_model=Page[DeviceListItem])
async def list_devices(
    session: SessionDep,
    actor: ActorDep,
    type: ReadingTypeName | None = None,
    patient: Annotated[uuid.UUID | None, Query(description="devices that have served this patient")] = None,
    cursor: CursorParam = None,
    limit: LimitParam = 50,
) -> Page[DeviceListItem]:
    """Devices the caller's organisation registered or that served a patient it follows, by
    serial, each with the assignment in force now."""
    found = await service.list_visible(
        session, actor, reading_type=type, patient_id=patient, after=DEVICE_CURSOR.decode(cursor), limit=limit
    )
    return Page[DeviceListItem].of(found, limit, DEVICE_CURSOR, lambda device: device.serial)


@router.get("/{serial:path}", response_model=DeviceDetail)
async def read(serial: str, session: SessionDep, actor: ActorDep) -> DeviceDetail:
    """The device with its assignment history and its newest reading."""
    return await service.detail(session, actor, serial)


@router.put("/{serial:path}/assignment", response_model=AssignmentOut)
async def assign(serial: str, payload: AssignmentIn, session: SessionDep, actor: ActorDep) -> AssignmentOut:
    return await service.assign(session, actor, serial, payload)
