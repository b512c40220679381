"""The audit trail of the caller's organisation's patients (admins)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter

from api.deps import ActorDep, SessionDep
from api.pagination import CursorParam, LimitParam, decode_cursor, page
from rpm.audit import service
from rpm.errors import InvalidInput

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("")
async def audit_trail(
    session: SessionDep,
    actor: ActorDep,
    patient: uuid.UUID | None = None,
    cursor: CursorParam = None,
    limit: LimitParam = 50,
) -> dict[str, Any]:
    """Oldest first. With `patient`: that patient's full access history, to export."""
    after = decode_cursor(cursor)
    if after is not None and not isinstance(after, int):
        raise InvalidInput("invalid_cursor", "cursor: not a cursor this API gave out")
    found = await service.history(session, actor, patient_id=patient, after=after, limit=limit + 1)
    return page(found, limit, lambda record: record.id)
