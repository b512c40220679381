"""An alert: what to do, the readings that raised it, the threshold crossed, its history;
acknowledge in one click, resolve with a note and an outcome; assign it (to me, to a colleague,
to nobody), comment on it, snooze it for at most 24 hours with a reason, wake it.

The changes answer htmx with the alert's status part (and its work part, history and message,
out of band); a plain form post (no script) is answered with the page again. Everything goes
through the alert services, which check access (another organisation's alert is 404) and
write the audit trail.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NamedTuple

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.alerts import service as alerts
from rpm.alerts.models import ResolutionOutcome
from rpm.alerts.schemas import MAX_SNOOZE_HOURS, AlertItem, CommentIn, HistoryEntry, ResolveIn, SnoozeIn
from rpm.api.deps import SessionDep
from rpm.api.web import present
from rpm.api.web.deps import WebActor, attempt
from rpm.api.web.forms import written_text
from rpm.api.web.render import page
from rpm.audit.service import Actor
from rpm.errors import Conflict, InvalidInput
from rpm.observations.schemas import REASON_MAX
from rpm.organisations import repository as organisations
from rpm.organisations import service as follow_up
from rpm.patients import service as patients
from rpm.staff import service as staff_directory

router = APIRouter(tags=["staff page"], include_in_schema=False)


def _max_length(model: Any, field: str) -> int:
    return int(next(m.max_length for m in model.model_fields[field].metadata if hasattr(m, "max_length")))


# The limits are the API's, so a text the page takes the API would take too.
NOTE_MAX = _max_length(ResolveIn, "note")
COMMENT_MAX = _max_length(CommentIn, "text")
SNOOZE_REASON_MAX = _max_length(SnoozeIn, "reason")
OUTCOMES = [o.value for o in ResolutionOutcome]
SNOOZE_LONGEST = timedelta(hours=MAX_SNOOZE_HOURS)
# The snooze's choices (minutes): 1 hour, 4 hours and 24 hours; between the last two, until
# the patient's follow-up service next opens when that is within 24 hours.
SNOOZE_MINUTES = (60, 240, 24 * 60)
SERVICE = "service"
# Comments shown on the page, oldest first; an alert with more says so.
COMMENTS = 200


class SnoozeChoice(NamedTuple):
    value: str
    until: datetime | None = None  # for SERVICE: when the service opens


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def _last(history: list[HistoryEntry], kind: str) -> HistoryEntry | None:
    return next((step for step in reversed(history) if step.kind == kind), None)


async def _service_opens(session: AsyncSession, patient_id: uuid.UUID, now: datetime) -> datetime | None:
    """When the patient's follow-up service next opens (a service day's start after now, of
    any of the care team's organisations), if that is within 24 hours: a night's or an
    evening's alert may wait for the day's staff."""
    # Only the service hours are used here, not the escalation times.
    hours = (await follow_up.follow_ups(session, [patient_id], now, default_red_minutes=0.0))[patient_id].hours
    starts = [start for h in hours for start, _ in h.windows(now, now + SNOOZE_LONGEST) if start > now]
    return min(starts, default=None)


async def _snooze_choices(session: AsyncSession, patient_id: uuid.UUID, now: datetime) -> list[SnoozeChoice]:
    opens = await _service_opens(session, patient_id, now)
    choices = [SnoozeChoice(str(minutes)) for minutes in SNOOZE_MINUTES[:2]]
    if opens is not None:
        choices.append(SnoozeChoice(SERVICE, opens))
    return [*choices, SnoozeChoice(str(SNOOZE_MINUTES[2]))]


async def _work(session: AsyncSession, actor: Actor, item: AlertItem) -> dict[str, Any]:
    """What the work part and the comments show: whether the alert is snoozed now, the
    colleagues it may be assigned to, the snooze's choices, and its comments (read only when
    there are some: each reading is audited)."""
    now = datetime.now(UTC)
    working = item.status != "resolved"
    colleagues = (
        await staff_directory.colleagues(session, actor, item.patient, partner=item.handed_over_to, limit=500)
        if working
        else []
    )
    colleagues = [c for c in colleagues if c.sub != actor.staff.sub]
    others = {c.orgnr for c in colleagues} - {actor.staff.orgnr}
    comments = await alerts.comments_of(session, actor, item.id, after=None, limit=COMMENTS) if item.comments else []
    return {
        "snoozed": item.snoozed_until is not None and item.snoozed_until > now,
        "colleagues": colleagues,
        "organisation_names": {o: org.name for o, org in (await organisations.by_orgnrs(session, others)).items()},
        "snooze_choices": await _snooze_choices(session, item.patient, now) if working else [],
        "snooze_reason_max": SNOOZE_REASON_MAX,
        "comments": comments[:COMMENTS],
        "comments_more": len(comments) > COMMENTS,
        "comment_max": COMMENT_MAX,
    }


async def _state(session: AsyncSession, actor: Actor, item: AlertItem) -> dict[str, Any]:
    """What the status part, the work part, the comments and the history show: the alert, its
    history, and from the history who acknowledged and resolved it (the history has their
    names)."""
    history = await alerts.history(session, actor, item.id)
    partner = await organisations.by_orgnr(session, item.handed_over_to) if item.handed_over_to else None
    return await _work(session, actor, item) | {
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
        "form": {"note": "", "outcome": "", "colleague": "", "duration": "", "reason": "", "comment": ""},
        "message": None,
        "failed": False,
        "comments_oob": False,
    }


async def _answer(
    request: Request,
    session: AsyncSession,
    actor: Actor,
    alert_id: uuid.UUID,
    item: AlertItem | None,
    status: int,
    anchor: str = "",
    **changes: Any,
) -> Response:
    """The status part with the work part, the history and a message out of band (htmx), else
    the whole page; `item` is the alert as a change left it (None: read it now); `anchor`: the
    part of the page a plain form post returns to."""
    changes["failed"] = status != 200
    if _is_htmx(request):
        item = item or await alerts.detail(session, actor, alert_id)
        return page(request, "_alert_changed.html", status, **(await _state(session, actor, item) | changes))
    if status == 200:
        # After a change, a plain form post gets the page by GET: reloading it posts nothing.
        return RedirectResponse(f"/alerts/{alert_id}{anchor}", 303)
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
    note, problem = written_text(note, NOTE_MAX, "alert.note")
    if problem:
        errors["note"] = problem
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


@router.post("/alerts/{alert_id:uuid}/assignment")
async def assign(
    request: Request,
    alert_id: uuid.UUID,
    session: SessionDep,
    actor: WebActor,
    to: Annotated[str, Form()] = "",
    colleague: Annotated[str, Form()] = "",
) -> Response:
    """Assign the alert to the caller (`to` "me"), to a colleague (`to` "colleague" and their
    sub in `colleague`), or to nobody (`to` "nobody"). A colleague not chosen, or one who may
    not be given the alert, is answered 422 with the message next to the field."""
    if to == "me":
        assignee: str | None = actor.staff.sub
    elif to == "nobody":
        assignee = None
    else:
        assignee = colleague.strip()
        if not assignee:
            return await _answer(
                request,
                session,
                actor,
                alert_id,
                None,
                422,
                errors={"colleague": "alert.assignee_required"},
                message="alert.assign_invalid",
            )
    try:
        async with attempt(session):
            item = await alerts.assign(session, actor, alert_id, assignee, datetime.now(UTC))
    except Conflict:
        return await _answer(request, session, actor, alert_id, None, 409, message="alert.already_resolved")
    except InvalidInput:
        return await _answer(
            request,
            session,
            actor,
            alert_id,
            None,
            422,
            errors={"colleague": "alert.assignee_unknown"},
            form={"colleague": colleague},
            message="alert.assign_invalid",
        )
    done = "alert.assigned_message" if assignee else "alert.unassigned_message"
    return await _answer(request, session, actor, alert_id, item, 200, anchor="#alert-work", message=done)


def _snooze_until(duration: str, now: datetime, service_opens: datetime | None) -> datetime | None:
    """The end of the snooze the form chose: a number of minutes from now, or the service's
    opening (None: no choice the page knows)."""
    if duration == SERVICE:
        return service_opens
    if duration.isdigit() and len(duration) <= 5:
        return now + timedelta(minutes=int(duration))
    return None


@router.post("/alerts/{alert_id:uuid}/snooze")
async def snooze(
    request: Request,
    alert_id: uuid.UUID,
    session: SessionDep,
    actor: WebActor,
    duration: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Snooze for one of the page's durations (or any number of minutes up to 24 hours), with
    a reason. A missing or too long reason, a missing duration, one beyond 24 hours, or the
    service's opening when it is no longer within 24 hours is answered 422 with the message
    next to its field; a resolved alert 409."""
    now = datetime.now(UTC)
    errors: dict[str, str] = {}
    reason, problem = written_text(reason, SNOOZE_REASON_MAX, "alert.snooze_reason")
    if problem:
        errors["reason"] = problem
    opens = None
    if duration == SERVICE:
        detail = await alerts.detail(session, actor, alert_id)  # whose service: the patient's care team
        opens = await _service_opens(session, detail.patient, now)
    until = _snooze_until(duration, now, opens)
    if until is None:
        errors["duration"] = "alert.snooze_service_closed" if duration == SERVICE else "alert.snooze_duration_required"
    elif not now < until <= now + SNOOZE_LONGEST:
        errors["duration"] = "alert.snooze_too_long"
    form = {"duration": duration, "reason": reason}
    if errors or until is None:
        return await _answer(
            request, session, actor, alert_id, None, 422, errors=errors, form=form, message="alert.snooze_invalid"
        )
    try:
        async with attempt(session):
            item = await alerts.snooze(session, actor, alert_id, until, reason, now)
    except Conflict:
        return await _answer(request, session, actor, alert_id, None, 409, message="alert.already_resolved")
    except InvalidInput:  # what the page did not check itself: a character the database cannot keep
        errors = {"reason": "alert.text_unreadable"}
        return await _answer(
            request, session, actor, alert_id, None, 422, errors=errors, form=form, message="alert.snooze_invalid"
        )
    return await _answer(
        request, session, actor, alert_id, item, 200, anchor="#alert-work", message="alert.snoozed_message"
    )


@router.post("/alerts/{alert_id:uuid}/wake")
async def wake(request: Request, alert_id: uuid.UUID, session: SessionDep, actor: WebActor) -> Response:
    """End the snooze now: the alert is back on the worklist. One not snoozed is left as it is."""
    item = await alerts.wake(session, actor, alert_id, datetime.now(UTC))
    return await _answer(
        request, session, actor, alert_id, item, 200, anchor="#alert-work", message="alert.woke_message"
    )


@router.post("/alerts/{alert_id:uuid}/comments")
async def comment(
    request: Request,
    alert_id: uuid.UUID,
    session: SessionDep,
    actor: WebActor,
    text: Annotated[str, Form()] = "",
) -> Response:
    """Add a comment, on an alert of any status. A missing or too long one is answered 422
    with the message next to the field and the text kept."""
    text, error = written_text(text, COMMENT_MAX, "alert.comment")
    if error is None:
        try:
            async with attempt(session):
                await alerts.comment(session, actor, alert_id, text, datetime.now(UTC))
        except InvalidInput:  # what the page did not check itself: a character the database cannot keep
            error = "alert.text_unreadable"
    if error is not None:
        return await _answer(
            request,
            session,
            actor,
            alert_id,
            None,
            422,
            errors={"comment": error},
            form={"comment": text},
            message="alert.comment_invalid",
            comments_oob=True,
        )
    return await _answer(
        request,
        session,
        actor,
        alert_id,
        None,
        200,
        anchor="#alert-comments",
        message="alert.commented_message",
        comments_oob=True,
    )
