"""Device registration and assignment to patients."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ActorDep, SessionDep
from rpm.devices import service
from rpm.devices.schemas import AssignmentIn, AssignmentOut, DeviceCreate, DeviceOut

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])


@router.post("", status_code=201, response_model=DeviceOut)
async def register(payload: DeviceCreate, session: SessionDep, actor: ActorDep) -> DeviceOut:
    return await service.register(session, actor, payload)


@router.put("/{serial}/assignment", response_model=AssignmentOut)
async def assign(serial: str, payload: AssignmentIn, session: SessionDep, actor: ActorDep) -> AssignmentOut:
    return await service.assign(session, actor, serial, payload)
