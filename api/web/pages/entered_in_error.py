"""Marking a reading entered in error from the alert page, where a nurse sees the readings that
raised the alert one by one.

The service (rpm.observations.service.invalidate) checks access, writes the audit trail, takes
what was derived from the reading with it and resolves the alerts left without a valid reading.
Under htmx the answer is the alert's status part with its history, its evidence and a message
out of band; a plain form post is answered with the page again (by GET after a change).
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.alerts import service as alerts
from rpm.api.deps import SessionDep
from rpm.api.web.deps import WebActor
from rpm.api.web.forms import mark_from_form
from rpm.api.web.pages.alerts import _is_htmx, _state, _whole_page
from rpm.api.web.render import page
from rpm.audit.service import Actor
from rpm.errors import NotFound

router = APIRouter(tags=["staff page"], include_in_schema=False)


async def _answer(
    request: Request, session: AsyncSession, actor: Actor, alert_id: uuid.UUID, status: int, **changes: Any
) -> Response:
    changes["failed"] = status != 200
    if not _is_htmx(request):
        if status == 200:
            return RedirectResponse(f"/alerts/{alert_id}", 303)
        return await _whole_page(request, session, actor, alert_id, status, **changes)
    detail = await alerts.detail(session, actor, alert_id)
    context = await _state(session, actor, detail) | changes
    return page(
        request, "_alert_changed.html", status, evidence=list(reversed(detail.evidence)), evidence_oob=True, **context
    )


@router.post("/alerts/{alert_id:uuid}/observations/{observation_id:uuid}/entered-in-error")
async def mark_entered_in_error(
    request: Request,
    alert_id: uuid.UUID,
    observation_id: uuid.UUID,
    session: SessionDep,
    actor: WebActor,
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Mark one of the alert's readings entered in error with a reason (required, at most
    REASON_MAX characters: 422 with the message beside the field). 404 for a reading that is
    not the alert's, 409 with a message for one marked before."""
    detail = await alerts.detail(session, actor, alert_id)  # first: another organisation's alert is 404
    if f"Observation/{observation_id}" not in {e.observation for e in detail.evidence}:
        raise NotFound("not_found", "no such reading of the alert")
    return await mark_from_form(
        session,
        actor,
        observation_id,
        reason,
        partial(_answer, request, session, actor, alert_id),
        lambda marked: "invalidation.done_resolved" if alert_id in marked.alerts_resolved else "invalidation.done",
    )
