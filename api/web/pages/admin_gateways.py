"""Gateways from the staff page: register one to the organisation (rpm.gateways.service.register)
and the organisation's gateways with their last status and last message (of_caller)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.api.deps import SessionDep
from rpm.api.pagination import Cursor, Key, Page
from rpm.api.web.deps import attempt
from rpm.api.web.pages.admin import AdminActor, Errors, admin_page, flat_errors
from rpm.api.web.render import page
from rpm.audit.service import Actor
from rpm.errors import Conflict
from rpm.gateways import service as gateways
from rpm.gateways.models import GATEWAY_ID_PATTERN
from rpm.gateways.schemas import GatewayCreate, GatewayOut

router = APIRouter(tags=["staff page"], include_in_schema=False)

PAGE = 50
GATEWAYS_CURSOR: Cursor[str] = Cursor("web-gateways", Key)  # the gateway id
# The pattern for the browser's own hint (the service checks it again): without ^ and $.
ID_PATTERN = GATEWAY_ID_PATTERN.removeprefix("^").removesuffix("$")


async def _gateways(session: AsyncSession, actor: Actor, cursor: str | None) -> dict[str, Any]:
    found = await gateways.of_caller(session, actor, after=GATEWAYS_CURSOR.decode(cursor), limit=PAGE)
    listed = Page[GatewayOut].of(found, PAGE, GATEWAYS_CURSOR, lambda gateway: gateway.id)
    return {"gateways": listed.items, "next": listed.next}


async def _gateways_page(
    request: Request,
    session: AsyncSession,
    actor: Actor,
    *,
    form: dict[str, str] | None = None,
    errors: Errors | None = None,
    registered: str = "",
    cursor: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    return admin_page(
        request,
        "admin_gateways.html",
        "/admin/gateways",
        status,
        form=form or {"id": "", "name": ""},
        errors=errors or {},
        registered=registered,
        id_pattern=ID_PATTERN,
        **await _gateways(session, actor, cursor),
    )


@router.get("/admin/gateways", response_class=HTMLResponse)
async def gateways_page(
    request: Request,
    session: SessionDep,
    actor: AdminActor,
    registered: Annotated[str, Query(max_length=200)] = "",
    cursor: Annotated[str, Query(max_length=600)] = "",
) -> HTMLResponse:
    """Register a gateway; the organisation's gateways by id."""
    return await _gateways_page(request, session, actor, registered=registered, cursor=cursor or None)


@router.get("/admin/gateways/rows", response_class=HTMLResponse)
async def gateway_rows(
    request: Request, session: SessionDep, actor: AdminActor, cursor: Annotated[str, Query(max_length=600)] = ""
) -> HTMLResponse:
    """The next page of the list ("load more")."""
    return page(request, "_admin_gateway_rows.html", **await _gateways(session, actor, cursor or None))


@router.post("/admin/gateways", response_class=HTMLResponse)
async def register(
    request: Request,
    session: SessionDep,
    actor: AdminActor,
    id: Annotated[str, Form(max_length=400)] = "",
    name: Annotated[str, Form(max_length=400)] = "",
) -> Response:
    """The gateway is the organisation's from now on; a gateway registered already is refused
    (409) with the form kept."""
    form = {"id": id.strip(), "name": name.strip()}
    try:
        created = GatewayCreate.model_validate(form)
    except ValidationError as error:
        errors = flat_errors(error, ("id", "name"))
        if errors.get("id") in ("admin.error.pattern", "admin.error.required"):
            errors["id"] = "admin.gateways.id_rule"
        return await _gateways_page(request, session, actor, form=form, errors=errors, status=422)
    try:
        async with attempt(session):
            await gateways.register(session, actor, created)
    except Conflict:
        errors = {"id": "admin.error.gateway_exists"}
        return await _gateways_page(request, session, actor, form=form, errors=errors, status=409)
    return RedirectResponse("/admin/gateways?" + urlencode({"registered": created.id}), 303)
