"""The audit trail: the organisation's patients (admins), and one patient's access history."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response

from rpm.api.deps import ActorDep, SessionDep
from rpm.api.pagination import Cursor, CursorParam, LimitParam, Moment, Page, RecordId
from rpm.audit import service
from rpm.audit.schemas import AuditOut

router = APIRouter(prefix="/api/v1", tags=["audit"])
AUDIT_CURSOR: Cursor[int] = Cursor("audit", RecordId)  # the record id
# The last record shown, and the record of the reading that began the history (its end).
HISTORY_CURSOR: Cursor[tuple[int, int]] = Cursor("patient-audit", tuple[RecordId, RecordId])


def _wants_csv(accept: str | None) -> bool:
    """Whether an Accept header asks for text/csv (with a quality above 0)."""
    for media_range in (accept or "").split(","):
        kind, *parameters = (part.strip() for part in media_range.split(";"))
        if kind.lower() == "text/csv":
            quality = next((p.partition("=")[2] for p in parameters if p.lower().startswith("q=")), "1")
            try:
                return float(quality) > 0
            except ValueError:
                return False
    return False


@router.get("/audit", response_model=Page[AuditOut])
async def audit_trail(
    session: SessionDep,
    actor: ActorDep,
    patient: uuid.UUID | None = None,
    staff: Annotated[str | None, Query(description="the staff member's `sub`")] = None,
    action: Annotated[str | None, Query(description="read, search, create, update, acknowledge, ...")] = None,
    at_from: Annotated[Moment | None, Query(alias="from")] = None,
    at_to: Annotated[Moment | None, Query(alias="to")] = None,
    cursor: CursorParam = None,
    limit: LimitParam = 50,
) -> Page[AuditOut]:
    """Who read or changed the data of the organisation's patients, newest first (admins)."""
    found = await service.history(
        session,
        actor,
        patient_id=patient,
        actor_sub=staff,
        action=action,
        at_from=at_from,
        at_to=at_to,
        after=AUDIT_CURSOR.decode(cursor),
        limit=limit,
    )
    return Page[AuditOut].of(found, limit, AUDIT_CURSOR, lambda record: record.id)


@router.get(
    "/patients/{patient_id}/audit",
    response_model=Page[AuditOut],
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def patient_audit(
    patient_id: uuid.UUID,
    session: SessionDep,
    actor: ActorDep,
    format: Annotated[
        Literal["json", "csv"] | None, Query(description="csv: the whole history at once (or Accept: text/csv)")
    ] = None,
    accept: Annotated[str | None, Header()] = None,
    cursor: CursorParam = None,
    limit: LimitParam = 50,
) -> Page[AuditOut] | Response:
    """The patient's full access history, oldest first, by every organisation (admins of the
    care team): the record a patient may ask to see. As JSON pages, or whole as CSV."""
    if format == "csv" or (format is None and _wants_csv(accept)):
        records, _ = await service.patient_history(session, actor, patient_id, limit=None)
        return Response(
            service.as_csv(records),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="audit-{patient_id}.csv"'},
        )
    found, until = await service.patient_history(
        session, actor, patient_id, after=HISTORY_CURSOR.decode(cursor), limit=limit
    )
    return Page[AuditOut].of(found, limit, HISTORY_CURSOR, lambda record: (record.id, until))
