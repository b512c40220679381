"""The alert queue: list, detail, acknowledge, resolve, assign, comment, snooze, and the live
stream (SSE)."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from rpm.access import service as access
from rpm.access.repository import visible_patient_ids
from rpm.alerts import events, service
from rpm.alerts.models import ACTIVE, AlertStatus
from rpm.alerts.schemas import AlertDetail, AlertItem, AssignIn, CommentIn, CommentOut, ResolveIn, SnoozeIn
from rpm.api.deps import ActorDep, SessionDep, SettingsDep
from rpm.api.pagination import Cursor, CursorParam, LimitParam, Moment, Page, Rank, RecordId
from rpm.api.stream import Visibility, sse
from rpm.audit.service import record
from rpm.errors import InvalidInput

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])
MAX_EVENT_ID = 2**63 - 1  # alert_events.id is a bigint
EVENT_ID = re.compile(r"[0-9]{1,19}")
QueuePosition = tuple[Rank, Rank, Moment, uuid.UUID]  # level rank, escalated rank, opened, id
QUEUE_CURSOR: Cursor[QueuePosition] = Cursor("alerts", QueuePosition)
COMMENTS_CURSOR: Cursor[int] = Cursor("alert-comments", RecordId)


def _statuses(status: str | None) -> list[AlertStatus]:
    if status is None:
        return list(ACTIVE)
    wanted = [s.strip() for s in status.split(",") if s.strip()]
    known = {s.value for s in AlertStatus}
    if not wanted or set(wanted) - known:
        raise InvalidInput("invalid_filter", f"status: one or more of {sorted(known)}, comma-separated")
    return [AlertStatus(s) for s in wanted]


@router.get("", response_model=Page[AlertItem])
async def queue(
    session: SessionDep,
    actor: ActorDep,
    status: Annotated[
        str | None, Query(description="comma-separated: open, acknowledged, resolved (default open,acknowledged)")
    ] = None,
    level: Literal["red", "yellow"] | None = None,
    patient: uuid.UUID | None = None,
    organisation: Annotated[str | None, Query(pattern=r"^[0-9]{9}$")] = None,
    escalated: bool | None = None,
    assignee: Annotated[
        str | None,
        Query(min_length=1, max_length=256, description="the alerts assigned to this staff member (a sub), or `me`"),
    ] = None,
    snoozed: Annotated[
        Literal["hide", "only", "include"],
        Query(description="alerts snoozed now: left out (`hide`, the default), `only` them, or `include`d"),
    ] = "hide",
    cursor: CursorParam = None,
    limit: LimitParam = 50,
) -> Page[AlertItem]:
    """Red before yellow, escalated first, then oldest first."""
    found = await service.queue(
        session,
        actor,
        statuses=_statuses(status),
        level=level,
        patient_id=patient,
        organisation=organisation,
        escalated=escalated,
        assignee=actor.staff.sub if assignee == "me" else assignee,
        snoozed=snoozed,
        now=datetime.now(UTC),
        after=QUEUE_CURSOR.decode(cursor),
        limit=limit,
    )
    return Page[AlertItem].of(found, limit, QUEUE_CURSOR, service.queue_position)


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-Sent Events: `event:` opened, changed, escalated or resolved, `id:` the event "
            "id (resume with Last-Event-ID), `data:` the alert as in the queue (AlertItem)",
            # Each event as a client reads it (the SSE fields); `data` is the alert as JSON text.
            "content": {
                "text/event-stream": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "event": {"type": "string", "enum": ["opened", "changed", "escalated", "resolved"]},
                            "id": {"type": "string", "pattern": "^[0-9]+$"},
                            "data": {"type": "string"},
                        },
                        "required": ["event", "id", "data"],
                    }
                }
            },
        }
    },
)
async def stream(
    request: Request,
    actor: ActorDep,
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_EVENT_ID, description="the same as the Last-Event-ID header")
    ] = None,
) -> StreamingResponse:
    """Alert events (opened, changed, escalated, resolved) for the caller's patients."""
    start: int | None = after
    if last_event_id is not None:
        # An event id is a bigint: anything else (beyond 64 bits, say) never reaches the database.
        if not EVENT_ID.fullmatch(last_event_id) or int(last_event_id) > MAX_EVENT_ID:
            raise InvalidInput("invalid_last_event_id", "Last-Event-ID: an event id this stream sent")
        start = int(last_event_id)
    hub = request.app.state.hub
    subscriber = hub.subscribe()
    sessions = request.app.state.sessions
    last = hub.last_id if start is None else start

    async def audited(found: list[Any]) -> None:
        async with sessions() as session, session.begin():
            await record(session, actor, "stream", "Alert", None, sorted({e.patient_id for e in found}))

    async def generate() -> AsyncIterator[bytes]:
        nonlocal last
        try:
            yield b"retry: 3000\n: connected\n\n"
            while True:  # what the client missed, from the database
                async with sessions() as session:
                    backlog = await events.since(
                        session, last, visible_patient_ids(actor.staff.orgnr, access.today()), limit=500
                    )
                if backlog:
                    await audited(backlog)
                for event in backlog:
                    last = event.id
                    yield sse(event)
                if len(backlog) < 500:
                    break
            visibility = Visibility(sessions, actor.staff)
            while not subscriber.overflowed:
                try:
                    first = await asyncio.wait_for(subscriber.queue.get(), settings.sse_heartbeat_seconds)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                # What else is waiting goes with it: one audit entry and one write for a burst,
                # not one per event (200 streams and a burst of alerts were 200 audit commits
                # per alert).
                arrived = [first]
                while len(arrived) < 1000 and not subscriber.queue.empty():
                    arrived.append(subscriber.queue.get_nowait())
                found = [e for e in arrived if e.id > last and await visibility.may_see_event(e)]
                if not found:
                    continue
                await audited(found)
                last = found[-1].id
                yield b"".join(sse(event) for event in found)
        finally:
            hub.unsubscribe(subscriber)

    return StreamingResponse(
        generate(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


@router.get("/{alert_id}", response_model=AlertDetail)
async def detail(alert_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> AlertDetail:
    return await service.detail(session, actor, alert_id)


@router.post("/{alert_id}/acknowledge", response_model=AlertItem)
async def acknowledge(alert_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> AlertItem:
    return await service.acknowledge(session, actor, alert_id, datetime.now(UTC))


@router.post("/{alert_id}/resolve", response_model=AlertItem)
async def resolve(alert_id: uuid.UUID, payload: ResolveIn, session: SessionDep, actor: ActorDep) -> AlertItem:
    """`note` is required; 409 if the alert is already resolved."""
    return await service.resolve(session, actor, alert_id, payload.note, datetime.now(UTC), payload.outcome)


@router.put("/{alert_id}/assignment", response_model=AlertItem)
async def assign(alert_id: uuid.UUID, payload: AssignIn, session: SessionDep, actor: ActorDep) -> AlertItem:
    """Give the alert to a staff member (`assignee`: a sub from `GET /api/v1/staff?patient=`),
    or null to take it off; 422 `unknown_staff_member` for anyone else, 409 if resolved."""
    return await service.assign(session, actor, alert_id, payload.assignee, datetime.now(UTC))


@router.get("/{alert_id}/comments", response_model=Page[CommentOut])
async def comments(
    alert_id: uuid.UUID, session: SessionDep, actor: ActorDep, cursor: CursorParam = None, limit: LimitParam = 50
) -> Page[CommentOut]:
    """The alert's comments, oldest first."""
    found = await service.comments_of(session, actor, alert_id, after=COMMENTS_CURSOR.decode(cursor), limit=limit)
    return Page[CommentOut].of(found, limit, COMMENTS_CURSOR, lambda c: c.id)


@router.post("/{alert_id}/comments", response_model=CommentOut, status_code=201)
async def add_comment(alert_id: uuid.UUID, payload: CommentIn, session: SessionDep, actor: ActorDep) -> CommentOut:
    """A comment on the alert, whatever its status."""
    return await service.comment(session, actor, alert_id, payload.text, datetime.now(UTC))


@router.put("/{alert_id}/snooze", response_model=AlertItem)
async def snooze(alert_id: uuid.UUID, payload: SnoozeIn, session: SessionDep, actor: ActorDep) -> AlertItem:
    """Out of the queue's default view until `until` (after now, at most 24 hours ahead: else
    422 `invalid_snooze`), with a reason; acknowledges an open alert. 409 if resolved."""
    return await service.snooze(session, actor, alert_id, payload.until, payload.reason, datetime.now(UTC))


@router.delete("/{alert_id}/snooze", response_model=AlertItem)
async def wake(alert_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> AlertItem:
    """End the snooze now; an alert not snoozed is left as it is."""
    return await service.wake(session, actor, alert_id, datetime.now(UTC))
