"""Administration for the admin role: the overview, and what the admin pages share.

The tasks live beside it: enrolment (admin_patients), devices (admin_devices), gateways
(admin_gateways) and rejected readings (admin_rejected). Every route takes `AdminActor`: signed
in, with the CSRF token on a change, and the admin role (others get the 403 page). Changes go
through the same services as the API, which check access again and write the audit trail.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from rpm.access.staff import Role
from rpm.api.web.deps import WebActor
from rpm.api.web.render import page
from rpm.audit.service import Actor
from rpm.norway import OSLO

router = APIRouter(tags=["staff page"], include_in_schema=False)

# The admin pages' own menu: (path, text key).
SECTIONS = (
    ("/admin", "admin.overview"),
    ("/admin/patients/new", "admin.enrol.title"),
    ("/admin/devices", "admin.devices.title"),
    ("/admin/gateways", "admin.gateways.title"),
    ("/admin/rejected", "admin.rejected.title"),
)


def admin_actor(actor: WebActor) -> Actor:
    actor.staff.require(Role.admin)
    return actor


AdminActor = Annotated[Actor, Depends(admin_actor)]

# What a form field's errors say: text keys (admin.error.*), shown next to the field.
Errors = dict[str, str]


def message_for(kind: str, default: str = "admin.error.invalid") -> str:
    """A pydantic error type in the page's words."""
    return {
        "missing": "admin.error.required",
        "string_too_short": "admin.error.required",
        "string_too_long": "admin.error.too_long",
        "string_pattern_mismatch": "admin.error.pattern",
        "uuid_parsing": "admin.error.invalid",
        "int_parsing": "admin.error.whole_number",
        "greater_than_equal": "admin.error.out_of_range",
        "less_than_equal": "admin.error.out_of_range",
    }.get(kind, "admin.error.date" if kind.startswith(("date", "datetime", "timezone")) else default)


def flat_errors(error: ValidationError, fields: Iterable[str]) -> Errors:
    """A flat payload's validation errors by field; anything else under "form"."""
    known = set(fields)
    found: Errors = {}
    for problem in error.errors():
        location = problem["loc"]
        field = str(location[0]) if location and str(location[0]) in known else "form"
        found.setdefault(field, message_for(problem["type"]))
    return found


def oslo_time(value: str) -> datetime | None:
    """A datetime-local field's "2026-12-01T08:30", meant in Norwegian time."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is not None or not 1900 <= moment.year <= 9000:
        return None
    return moment.replace(tzinfo=OSLO)


def admin_page(request: Request, template: str, section: str, status: int = 200, **context: Any) -> HTMLResponse:
    return page(request, template, status, active="admin", section=section, sections=SECTIONS, **context)


@router.get("/admin", response_class=HTMLResponse)
async def overview(request: Request, actor: AdminActor) -> HTMLResponse:
    """The four tasks of the organisation's administrator."""
    return admin_page(request, "admin.html", "/admin")
