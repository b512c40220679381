"""One of a patient's Observations, linked from the course: a NEWS2 score with its parts and
the readings it scored, or a reading with what was derived from it; each valid one with a form
to mark it entered in error.

A NEWS2 score comes from readings. When it is wrong, it is nearly always because one of them
is: so the score's page lists its readings, each with its own form, and says that marking one
marks the score with it and judges its alert again. The score itself can still be marked
alone, below them. The service (rpm.observations.service.invalidate) checks access, writes the
audit trail, takes what was derived from the reading with it and resolves the alerts left
without a valid reading. Under htmx the answer is the page's main part with a message; a plain
form post is answered with the page again (by GET after a change).
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.api.deps import SessionDep
from rpm.api.web import present
from rpm.api.web.deps import WebActor
from rpm.api.web.forms import mark_from_form
from rpm.api.web.render import page
from rpm.audit.service import Actor
from rpm.errors import NotFound
from rpm.observations import service as observations
from rpm.observations.schemas import REASON_MAX, EnteredInErrorOut
from rpm.patients import service as patients
from rpm.trends import service as trends
from rpm.trends.schemas import ObservationDetail, StoredReading

router = APIRouter(tags=["staff page"], include_in_schema=False)


def reference_id(reading: StoredReading) -> str:
    return reading.observation.removeprefix("Observation/")


def reason_words(reason: str | None, t: Any) -> str:
    """A stored reason as the page says it: a score marked with its reading carries the
    service's English words first (rpm.observations.service.INPUT_IN_ERROR)."""
    if reason is not None and reason.startswith(observations.INPUT_IN_ERROR):
        return f"{t('score.input_in_error')}: {reason.removeprefix(observations.INPUT_IN_ERROR)}"
    return reason or ""


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _context(detail: ObservationDetail, **changes: Any) -> dict[str, Any]:
    return {
        "detail": detail,
        "shown_id": reference_id(detail.reading),
        "reference_id": reference_id,
        "reason_words": reason_words,
        "present": present,
        "reason_max": REASON_MAX,
        "invalidation_errors": {},
        "invalidation_form": {},
        "message": None,
        "failed": False,
    } | changes


async def _whole_page(
    request: Request,
    session: AsyncSession,
    actor: Actor,
    patient_id: uuid.UUID,
    observation_id: uuid.UUID,
    status: int = 200,
    **changes: Any,
) -> HTMLResponse:
    detail = await trends.observation(session, actor, patient_id, observation_id)  # first: 404 for another's
    patient = await patients.read_model(session, actor, patient_id)
    return page(request, "observation.html", status, patient=patient, **_context(detail, **changes))


@router.get("/patients/{patient_id}/observations/{observation_id}", response_class=HTMLResponse)
async def observation_page(
    request: Request, patient_id: uuid.UUID, observation_id: uuid.UUID, session: SessionDep, actor: WebActor
) -> HTMLResponse:
    """The Observation with what hangs on it (a NEWS2 score: its parts and readings)."""
    return await _whole_page(request, session, actor, patient_id, observation_id)


async def _answer(
    request: Request,
    session: AsyncSession,
    actor: Actor,
    patient_id: uuid.UUID,
    shown: uuid.UUID,
    status: int,
    **changes: Any,
) -> Response:
    changes["failed"] = status != 200
    if not _is_htmx(request):
        if status == 200:
            return RedirectResponse(f"/patients/{patient_id}/observations/{shown}", 303)
        return await _whole_page(request, session, actor, patient_id, shown, status, **changes)
    detail = await trends.observation(session, actor, patient_id, shown)
    return page(request, "_observation.html", status, **_context(detail, **changes))


@router.post("/patients/{patient_id}/observations/{observation_id}/entered-in-error")
async def mark_entered_in_error(
    request: Request,
    patient_id: uuid.UUID,
    observation_id: uuid.UUID,
    session: SessionDep,
    actor: WebActor,
    reason: Annotated[str, Form()] = "",
    shown: Annotated[str, Form()] = "",
) -> Response:
    """Mark the Observation entered in error with a reason (required, at most REASON_MAX
    characters: 422 with the message beside the field), from the page of `shown` (the
    Observation itself, or the NEWS2 score whose reading it is; by default itself). 404 for
    one that is neither, 409 with a message for one marked before."""
    try:
        page_of = uuid.UUID(shown) if shown else observation_id
    except ValueError:
        raise NotFound("not_found", "no such Observation") from None
    detail = await trends.observation(session, actor, patient_id, page_of)  # first: 404 for another's
    if observation_id not in {uuid.UUID(reference_id(r)) for r in (detail.reading, *detail.inputs)}:
        raise NotFound("not_found", "no such Observation on this page")
    return await mark_from_form(
        session, actor, observation_id, reason, partial(_answer, request, session, actor, patient_id, page_of), _done
    )


def _done(marked: EnteredInErrorOut) -> str:
    """The message after marking from this page: a score's reading also takes the score."""
    if marked.alerts_resolved:
        return "score.done_resolved"
    if marked.also_invalidated:
        return "score.done_with_derived"
    return "invalidation.done"
