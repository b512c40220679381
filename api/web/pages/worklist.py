"""The start page: the nurse's worklist, kept current by the alert stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, NamedTuple
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from rpm.access import service as access
from rpm.alerts import repository as alerts
from rpm.api.deps import SessionDep, SettingsDep
from rpm.api.stream import Visibility
from rpm.api.web import present
from rpm.api.web.deps import SESSION_COOKIE, StaffSession, WebActor
from rpm.api.web.render import page
from rpm.organisations import repository as organisations
from rpm.patients import service as patients
from rpm.patients.schemas import CONDITIONS, Condition
from rpm.sessions import service as web_sessions

router = APIRouter(tags=["staff page"], include_in_schema=False)
# One screen: a nurse follows about 80 patients, a big service a few hundred.
ROWS = 500


# Snoozed alerts on the worklist, as in the alert queue: hidden by default (they count for
# nothing in the row), shown with the rest, or only the patients with one.
Snoozed = Literal["hide", "include", "only"]
SNOOZED: tuple[Snoozed, ...] = ("hide", "include", "only")


class Filters(NamedTuple):
    condition: str | None
    organisation: str | None
    mine: bool  # only patients with an active alert assigned to the caller
    snoozed: Snoozed

    def query(self) -> str:
        """The filters as the rows' URL carries them."""
        return urlencode(
            {
                "condition": self.condition or "",
                "organisation": self.organisation or "",
                "mine": "1" if self.mine else "",
                "snoozed": self.snoozed,
            }
        )


async def _rows(
    request: Request, session: SessionDep, settings: SettingsDep, actor: WebActor, filters: Filters
) -> dict[str, Any]:
    now = datetime.now(UTC)
    found = await patients.worklist(
        session,
        actor,
        now=now,
        grace=timedelta(hours=settings.missing_grace_hours),
        limit=ROWS,
        condition=filters.condition,
        organisation=filters.organisation,
        status="active",
        snoozed=filters.snoozed,
        assignee=actor.staff.sub if filters.mine else None,
    )
    summaries = [summary for _, summary in found]
    shown = [s.id for s in summaries[:ROWS]]
    return {
        "patients": summaries[:ROWS],
        # Rows with an active alert that turned red outside service hours: the partner's name
        # where it was handed over (the partner's own worklist lists these patients too).
        "out_of_hours": await alerts.out_of_hours_of(session, shown),
        # Rows with alerts snoozed now: how many, and when the first wakes.
        "snoozed": await alerts.snoozed_of(session, shown, now),
        "more": len(summaries) > ROWS,
        "rows": ROWS,
        "present": present,
        "condition": filters.condition or "",
        "organisation": filters.organisation or "",
        "mine": filters.mine,
        "snoozed_filter": filters.snoozed,
        "rows_query": filters.query(),
    }


def _filters(
    condition: str | None, organisation: str | None, mine: str | None, snoozed: Snoozed | Literal[""] | None
) -> Filters:
    # The filter form's "all" and the live rows' URL send an empty value: no filter.
    return Filters(condition or None, organisation or None, mine == "1", snoozed or "hide")


ConditionQuery = Annotated[Condition | Literal[""] | None, Query()]
OrganisationQuery = Annotated[str | None, Query(pattern=r"^([0-9]{9})?$")]
MineQuery = Annotated[Literal["", "1"] | None, Query()]
SnoozedQuery = Annotated[Literal["", "hide", "include", "only"] | None, Query()]


@router.get("/", response_class=HTMLResponse)
async def worklist(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    actor: WebActor,
    condition: ConditionQuery = None,
    organisation: OrganisationQuery = None,
    mine: MineQuery = None,
    snoozed: SnoozedQuery = None,
) -> HTMLResponse:
    """The caller's patients by priority: red, yellow, missing measurement, then the rest;
    snoozed alerts hidden unless asked for; only those with an alert assigned to the caller
    when asked."""
    context = await _rows(request, session, settings, actor, _filters(condition, organisation, mine, snoozed))
    return page(
        request,
        "worklist.html",
        active="worklist",
        conditions=CONDITIONS,
        organisations=await organisations.in_care_teams_of(session, actor.staff.orgnr, access.today()),
        snoozed_choices=SNOOZED,
        **context,
    )


@router.get("/worklist/rows", response_class=HTMLResponse)
async def worklist_rows(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    actor: WebActor,
    condition: ConditionQuery = None,
    organisation: OrganisationQuery = None,
    mine: MineQuery = None,
    snoozed: SnoozedQuery = None,
) -> HTMLResponse:
    """The rows alone: what the page fetches when the alert stream says something changed."""
    context = await _rows(request, session, settings, actor, _filters(condition, organisation, mine, snoozed))
    return page(request, "_worklist_rows.html", **context)


@router.get("/events")
async def events(request: Request, signed: StaffSession, settings: SettingsDep) -> StreamingResponse:
    """A nudge for each alert event of the caller's patients (no patient data: the page fetches
    its rows, which are audited). The browser reconnects by itself; the page then catches up."""
    hub = request.app.state.hub
    token = request.cookies.get(SESSION_COOKIE, "")
    subscriber = hub.subscribe()
    sessions = request.app.state.sessions
    visibility = Visibility(sessions, signed.staff)

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 2000\n: connected\n\n"
            while not subscriber.overflowed:
                try:
                    event = await asyncio.wait_for(subscriber.queue.get(), settings.sse_heartbeat_seconds)
                except TimeoutError:
                    # A signed-out or expired session keeps no stream open.
                    async with sessions() as session:
                        if not await web_sessions.alive(
                            session, token, now=datetime.now(UTC), idle_minutes=settings.web_idle_minutes
                        ):
                            return
                    yield b": keep-alive\n\n"
                    continue
                if await visibility.may_see_event(event):
                    yield f"id: {event.id}\nevent: alert\ndata: {event.kind}\n\n".encode()
        finally:
            hub.unsubscribe(subscriber)

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
