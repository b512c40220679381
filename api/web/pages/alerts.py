"""An alert: the readings that raised it, the threshold crossed, its history; acknowledge in
one click, resolve with a note and an outcome.

The changes answer htmx with the alert's status part (and its history, out of band); a plain
form post (no script) is answered with the page again. Everything goes through the alert
services, which check access (another organisation's alert is 404) and write the audit trail.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.alerts import service as alerts
from rpm.alerts.models import ResolutionOutcome
from rpm.alerts.schemas import AlertItem, HistoryEntry, ResolveIn
from rpm.api.deps import SessionDep
from rpm.api.web import present
from rpm.api.web.deps import WebActor
from rpm.api.web.render import page
from rpm.audit.service import Actor
from rpm.errors import Conflict
from rpm.observations.schemas import REASON_MAX
from rpm.organisations import repository as organisations
from rpm.patients import service as patients

router = APIRouter(tags=["staff page"], include_in_schema=False)

# The note's limit is the API's (ResolveIn), so a note the page takes the API would take too.
NOTE_MAX = next(m.max_length for m in ResolveIn.model_fields["note"].metadata if hasattr(m, "max_length"))
OUTCOMES = [o.value for o in ResolutionOutcome]


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _last(history: list[HistoryEntry], kind: str) -> HistoryEntry | None:
    return next((step for step in reversed(history) if step.kind == kind), None)


async def _state(session: AsyncSession, actor: Actor, item: AlertItem) -> dict[str, Any]:
    """What the status part and the history show: the alert, its history, and from the history
    who acknowledged and resolved it (the history has their names)."""
    history = await alerts.history(session, actor, item.id)
    partner = await organisations.by_orgnr(session, item.handed_over_to) if item.handed_over_to else None
    return {
        "alert": item,
        "partner_name": partner.name if partner else None,
        "history": history,
        "acknowledgement": _last(history, "acknowledged"),
        "resolution": _last(history, "resolved"),
        "present": present,
        "outcomes": OUTCOMES,
        "note_max": NOTE_MAX,
        "reason_max": REASON_MAX,  # of marking a reading entered in error (pages.entered_in_error)
        "entered_in_error_note": alerts.ENTERED_IN_ERROR_NOTE,
        "errors": {},
        "form": {"note": "", "outcome": ""},
        "message": None,
        "failed": False,
    }


async def _answer(
    request: Request,
    session: AsyncSession,
    actor: Actor,
    alert_id: uuid.UUID,
    item: AlertItem | None,
    status: int,
    **changes: Any,
) -> Response:
    """The status part with the history and a message out of band (htmx), else the whole page;
    `item` is the alert as a change left it (None: read it now)."""
    changes["failed"] = status != 200
    if _is_htmx(request):
        item = item or await alerts.detail(session, actor, alert_id)
        return page(request, "_alert_changed.html", status, **(await _state(session, actor, item) | changes))
    if status == 200:
        # After a change, a plain form post gets the page by GET: reloading it posts nothing.
        return RedirectResponse(f"/alerts/{alert_id}", 303)
    return await _whole_page(request, session, actor, alert_id, status, **changes)


async def _whole_page(
    request: Request, session: AsyncSession, actor: Actor, alert_id: uuid.UUID, status: int = 200, **changes: Any
) -> HTMLResponse:
    detail = await alerts.detail(session, actor, alert_id)  # first: another organisation's alert is 404
    patient = await patients.read_model(session, actor, detail.patient)
    context = await _state(session, actor, detail) | changes
    return page(request, "alert.html", status, patient=patient, evidence=list(reversed(detail.evidence)), **context)


@router.get("/alerts/{alert_id:uuid}", response_class=HTMLResponse)
async def alert_page(request: Request, alert_id: uuid.UUID, session: SessionDep, actor: WebActor) -> HTMLResponse:
    """The alert with its evidence, threshold and history."""
    return await _whole_page(request, session, actor, alert_id)


@router.post("/alerts/{alert_id:uuid}/acknowledge")
async def acknowledge(request: Request, alert_id: uuid.UUID, session: SessionDep, actor: WebActor) -> Response:
    """Mark the alert as seen; again is nothing new, a resolved alert answers 409 with a message."""
    try:
        item = await alerts.acknowledge(session, actor, alert_id, datetime.now(UTC))
    except Conflict:
        return await _answer(request, session, actor, alert_id, None, 409, message="alert.already_resolved")
    return await _answer(request, session, actor, alert_id, item, 200, message="alert.acknowledged_message")


@router.post("/alerts/{alert_id:uuid}/resolve")
async def resolve(
    request: Request,
    alert_id: uuid.UUID,
    session: SessionDep,
    actor: WebActor,
    note: Annotated[str, Form()] = "",
    outcome: Annotated[str, Form()] = "",
) -> Response:
    """Resolve with a note (required) and an outcome (required on the page; the API takes
    none too). A missing one is answered 422 with the message next to its field."""
    errors: dict[str, str] = {}
    note = note.strip()
    if not note:
        errors["note"] = "alert.note_required"
    elif len(note) > NOTE_MAX:
        errors["note"] = "alert.note_too_long"
    if outcome not in OUTCOMES:
        errors["outcome"] = "alert.outcome_required"
    if errors:
        form = {"note": note, "outcome": outcome}
        return await _answer(
            request, session, actor, alert_id, None, 422, errors=errors, form=form, message="alert.form_invalid"
        )
    try:
        item = await alerts.resolve(session, actor, alert_id, note, datetime.now(UTC), ResolutionOutcome(outcome))
    except Conflict:
        return await _answer(request, session, actor, alert_id, None, 409, message="alert.already_resolved")
    return await _answer(request, session, actor, alert_id, item, 200, message="alert.resolved_message")
