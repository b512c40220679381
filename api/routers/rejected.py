"""Rejected readings that belong to the caller's organisation, and reprocessing them."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from rpm.api.deps import ActorDep, SessionDep
from rpm.api.pagination import Cursor, CursorParam, LimitParam, Moment, Page
from rpm.observations.readings import Reason
from rpm.rejections import service
from rpm.rejections.schemas import RejectedOut, ReprocessIn, ReprocessOut

router = APIRouter(prefix="/api/v1/rejected", tags=["rejected readings"])
RejectedPosition = tuple[Moment, uuid.UUID]  # received, id
REJECTED_CURSOR: Cursor[RejectedPosition] = Cursor("rejected", RejectedPosition)


@router.get("", response_model=Page[RejectedOut])
async def list_rejected(
    session: SessionDep,
    actor: ActorDep,
    gateway: str | None = None,
    serial: Annotated[str | None, Query(description="the device's serial")] = None,
    reason: Reason | None = None,
    received_from: Annotated[Moment | None, Query(alias="from")] = None,
    received_to: Annotated[Moment | None, Query(alias="to")] = None,
    include_reprocessed: bool = False,
    cursor: CursorParam = None,
    limit: LimitParam = 50,
) -> Page[RejectedOut]:
    """Newest first. A rejected reading belongs to the organisation of its device, else of its
    gateway; one that belongs to neither only an operator sees (`rpm rejected list`)."""
    found = await service.list_for_caller(
        session,
        actor,
        gateway=gateway,
        serial=serial,
        reason=reason,
        received_from=received_from,
        received_to=received_to,
        include_reprocessed=include_reprocessed,
        after=REJECTED_CURSOR.decode(cursor),
        limit=limit,
    )
    return Page[RejectedOut].of(found, limit, REJECTED_CURSOR, lambda rejected: (rejected.received_at, rejected.id))


@router.post("/reprocess", response_model=ReprocessOut)
async def reprocess(payload: ReprocessIn, session: SessionDep, actor: ActorDep) -> ReprocessOut:
    """Process a device's open rejections again, e.g. once it is registered and assigned."""
    counts = await service.reprocess_for_caller(session, actor, payload.serial)
    return ReprocessOut(**counts)
