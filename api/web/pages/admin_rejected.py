"""The organisation's rejected readings on the staff page (rpm.rejections.service.list_for_caller),
newest first with filters and "load more", and reprocessing a device's open rejections
(reprocess_for_caller) once the device is registered and assigned."""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.api.deps import SessionDep
from rpm.api.pagination import Cursor, Moment, Page
from rpm.api.web.pages.admin import AdminActor, admin_page
from rpm.api.web.render import page
from rpm.audit.service import Actor
from rpm.errors import InvalidInput, NotFound
from rpm.observations.readings import Reason
from rpm.rejections import service as rejections
from rpm.rejections.schemas import RejectedOut

router = APIRouter(tags=["staff page"], include_in_schema=False)

PAGE = 50
REJECTED_CURSOR: Cursor[tuple[Any, uuid.UUID]] = Cursor("web-rejected", tuple[Moment, uuid.UUID])
# A whole message kept as one rejection may be large: the page shows its beginning.
PAYLOAD_SHOWN = 20_000

Filter = Annotated[str, Query(max_length=128)]
Count = Annotated[int | None, Query(ge=0, le=10**9)]


def _filters(reason: str, gateway: str, serial: str, include_reprocessed: bool) -> dict[str, Any]:
    """The filters as given, checked: an unknown reason is the request's fault (a NUL in any
    query is refused before any route, by api.app)."""
    if reason and reason not in Reason.__members__:
        raise InvalidInput("invalid_request", f"reason: one of {', '.join(Reason.__members__)}")
    return {
        "reason": reason,
        "gateway": gateway.strip(),
        "serial": serial.strip(),
        "include_reprocessed": include_reprocessed,
    }


def _set(values: dict[str, Any]) -> list[tuple[str, str]]:
    """The parameters that are set (a count of 0 is the page's default too)."""
    return [(k, "true" if v is True else str(v)) for k, v in values.items() if v not in ("", None, False)]


def _query(filters: dict[str, Any], **more: Any) -> str:
    return urlencode(_set({**filters, **more}))


async def _rows(session: AsyncSession, actor: Actor, filters: dict[str, Any], cursor: str | None) -> dict[str, Any]:
    found = await rejections.list_for_caller(
        session,
        actor,
        gateway=filters["gateway"] or None,
        serial=filters["serial"] or None,
        reason=filters["reason"] or None,
        include_reprocessed=filters["include_reprocessed"],
        after=REJECTED_CURSOR.decode(cursor),
        limit=PAGE,
    )
    listed = Page[RejectedOut].of(found, PAGE, REJECTED_CURSOR, lambda row: (row.received_at, row.id))
    next_cursor = listed.next
    return {
        "rejected": listed.items,
        "next": _query(filters, cursor=next_cursor) if next_cursor else None,
        "shown_limit": PAYLOAD_SHOWN,
        "kept_filters": _set(filters),  # a reprocess returns to the list as it was filtered
    }


@router.get("/admin/rejected", response_class=HTMLResponse)
async def rejected_page(
    request: Request,
    session: SessionDep,
    actor: AdminActor,
    reason: Filter = "",
    gateway: Filter = "",
    serial: Filter = "",
    include_reprocessed: bool = False,
    cursor: Annotated[str, Query(max_length=600)] = "",
    reprocessed: Filter = "",
    accepted: Count = None,
    duplicate: Count = None,
    rejected: Count = None,
    unknown: Filter = "",
) -> HTMLResponse:
    """Newest first, with the filters; after a reprocess, what became of the readings."""
    filters = _filters(reason, gateway, serial, include_reprocessed)
    rows = await _rows(session, actor, filters, cursor or None)
    result = None
    if reprocessed:
        result = {"serial": reprocessed, "accepted": accepted or 0, "duplicate": duplicate or 0}
        result["rejected"] = rejected or 0
    return admin_page(
        request,
        "admin_rejected.html",
        "/admin/rejected",
        reasons=list(Reason.__members__),
        filters=filters,
        result=result,
        unknown=unknown,
        **rows,
    )


@router.get("/admin/rejected/rows", response_class=HTMLResponse)
async def rejected_rows(
    request: Request,
    session: SessionDep,
    actor: AdminActor,
    reason: Filter = "",
    gateway: Filter = "",
    serial: Filter = "",
    include_reprocessed: bool = False,
    cursor: Annotated[str, Query(max_length=600)] = "",
) -> HTMLResponse:
    """The next page of the list ("load more")."""
    filters = _filters(reason, gateway, serial, include_reprocessed)
    return page(request, "_admin_rejected_rows.html", **await _rows(session, actor, filters, cursor or None))


@router.post("/admin/rejected/reprocess")
async def reprocess(
    session: SessionDep,
    actor: AdminActor,
    serial: Annotated[str, Form(min_length=1, max_length=128)],
    reason: Annotated[str, Form(max_length=128)] = "",
    gateway: Annotated[str, Form(max_length=128)] = "",
    filter_serial: Annotated[str, Form(max_length=128)] = "",
    include_reprocessed: Annotated[bool, Form()] = False,
) -> Response:
    """Run the device's open rejections through ingest again; back to the list, which says what
    became of them. A device the organisation has not registered is sent to be registered."""
    filters = _filters(reason, gateway, filter_serial, include_reprocessed)
    try:
        counts = await rejections.reprocess_for_caller(session, actor, serial)
    except NotFound:
        return RedirectResponse(f"/admin/rejected?{_query(filters, unknown=serial)}", 303)
    return RedirectResponse(f"/admin/rejected?{_query(filters, reprocessed=serial, **counts)}", 303)
