"""Rejected readings of the caller's organisation's devices, and reprocessing them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter

from api.deps import ActorDep, SessionDep
from api.pagination import CursorParam, LimitParam, decode_cursor, page
from rpm.errors import InvalidInput
from rpm.rejections import service
from rpm.rejections.schemas import ReprocessIn, ReprocessOut

router = APIRouter(prefix="/api/v1/rejected", tags=["rejected readings"])


@router.get("")
async def list_rejected(
    session: SessionDep,
    actor: ActorDep,
    serial: str | None = None,
    include_reprocessed: bool = False,
    cursor: CursorParam = None,
    limit: LimitParam = 50,
) -> dict[str, Any]:
    position = decode_cursor(cursor)
    try:
        after = (datetime.fromisoformat(position[0]), uuid.UUID(position[1])) if position else None
    except (ValueError, TypeError, IndexError):
        raise InvalidInput("invalid_cursor", "cursor: not a cursor this API gave out") from None
    found = await service.list_for_caller(
        session, actor, serial=serial, include_reprocessed=include_reprocessed, after=after, limit=limit + 1
    )
    return page(found, limit, lambda rejected: [rejected.received_at.isoformat(), str(rejected.id)])


@router.post("/reprocess", response_model=ReprocessOut)
async def reprocess(payload: ReprocessIn, session: SessionDep, actor: ActorDep) -> ReprocessOut:
    counts = await service.reprocess_for_caller(session, actor, payload.serial)
    return ReprocessOut(**counts)
