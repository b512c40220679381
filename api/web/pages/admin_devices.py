"""Devices from the staff page: register one (rpm.devices.service.register), assign it to a
patient the organisation follows from a time in Norwegian time (assign), and the list of the
organisation's devices with the assignment in force (list_visible)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.api.deps import SessionDep
from rpm.api.pagination import Cursor, Key, Page
from rpm.api.web.deps import attempt
from rpm.api.web.pages.admin import AdminActor, Errors, admin_page, flat_errors, oslo_time
from rpm.api.web.render import page
from rpm.audit.service import Actor
from rpm.devices import service as devices
from rpm.devices.schemas import AssignmentIn, DeviceCreate, DeviceListItem
from rpm.errors import Conflict, InvalidInput, NotFound
from rpm.fhir.codes import READING_TYPES
from rpm.norway import OSLO
from rpm.patients import service as patients
from rpm.patients.schemas import PatientOut

router = APIRouter(tags=["staff page"], include_in_schema=False)

PAGE = 50
CHOICES = 20  # patients offered for a search
DEVICES_CURSOR: Cursor[str] = Cursor("web-devices", Key)  # the serial

Text = Annotated[str, Query(max_length=200)]


@dataclass
class RegisterForm:
    serial: str = ""
    type: str = ""
    manufacturer: str = ""
    model: str = ""


@dataclass
class AssignForm:
    serial: str = ""
    q: str = ""
    patient: str = ""
    from_: str = field(default_factory=lambda: datetime.now(OSLO).strftime("%Y-%m-%dT%H:%M"))


async def _devices(session: AsyncSession, actor: Actor, cursor: str | None) -> dict[str, Any]:
    """A page of the devices with the names of the patients they are assigned to now."""
    found = await devices.list_visible(session, actor, after=DEVICES_CURSOR.decode(cursor), limit=PAGE)
    listed = Page[DeviceListItem].of(found, PAGE, DEVICES_CURSOR, lambda device: device.serial)
    assigned = {d.assigned_to.patient for d in listed.items if d.assigned_to and d.assigned_to.patient}
    names = {p.id: p for p in await patients.of_ids(session, actor, sorted(assigned))} if assigned else {}
    return {
        "devices": listed.items,
        "patients": names,
        "next": listed.next,
        "own_orgnr": actor.staff.orgnr,
    }


async def _choices(session: AsyncSession, actor: Actor, q: str, chosen: str = "") -> list[PatientOut]:
    """The patients matching the search, and the one chosen before (a form shown again keeps it)."""
    found = await patients.search(session, actor, q, limit=CHOICES) if q.strip() else []
    try:
        kept = uuid.UUID(chosen) if chosen else None
    except ValueError:
        kept = None
    if kept is not None and kept not in {p.id for p in found}:
        found = await patients.of_ids(session, actor, [kept]) + found
    return found


async def _devices_page(
    request: Request,
    session: AsyncSession,
    actor: Actor,
    *,
    register: RegisterForm | None = None,
    assign: AssignForm | None = None,
    errors: Errors | None = None,
    notice: dict[str, str] | None = None,
    cursor: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    assign = assign or AssignForm()
    return admin_page(
        request,
        "admin_devices.html",
        "/admin/devices",
        status,
        reading_types=list(READING_TYPES),
        register=register or RegisterForm(),
        assign=assign,
        q=assign.q,
        choice_limit=CHOICES,
        choices=await _choices(session, actor, assign.q, assign.patient),
        errors=errors or {},
        notice=notice,
        **await _devices(session, actor, cursor),
    )


@router.get("/admin/devices", response_class=HTMLResponse)
async def devices_page(
    request: Request,
    session: SessionDep,
    actor: AdminActor,
    serial: Text = "",
    q: Text = "",
    registered: Text = "",
    assigned: Text = "",
    cursor: Annotated[str, Query(max_length=600)] = "",
) -> HTMLResponse:
    """Register, assign, and the organisation's devices. `serial` fills both forms (from a
    rejected reading's unknown device, say); `q` searches patients for the assignment."""
    notice = None
    if registered:
        notice = {"key": "admin.devices.registered", "serial": registered}
    elif assigned:
        notice = {"key": "admin.devices.assigned", "serial": assigned}
    return await _devices_page(
        request,
        session,
        actor,
        register=RegisterForm(serial=serial if not registered else ""),
        assign=AssignForm(serial=serial or registered, q=q),
        notice=notice,
        cursor=cursor or None,
    )


@router.get("/admin/devices/rows", response_class=HTMLResponse)
async def device_rows(
    request: Request, session: SessionDep, actor: AdminActor, cursor: Annotated[str, Query(max_length=600)] = ""
) -> HTMLResponse:
    """The next page of the list ("load more")."""
    return page(request, "_admin_device_rows.html", **await _devices(session, actor, cursor or None))


@router.get("/admin/patients/choices", response_class=HTMLResponse)
async def patient_choices(request: Request, session: SessionDep, actor: AdminActor, q: Text = "") -> HTMLResponse:
    """The caller's active patients matching a name or identity number, as the choice of the
    assignment form (asked as the admin types)."""
    choices = await _choices(session, actor, q)
    return page(request, "_admin_patient_choices.html", choices=choices, q=q, choice_limit=CHOICES, oob=True)


@router.post("/admin/devices", response_class=HTMLResponse)
async def register(
    request: Request,
    session: SessionDep,
    actor: AdminActor,
    serial: Annotated[str, Form(max_length=400)] = "",
    type: Annotated[str, Form(max_length=100)] = "",
    manufacturer: Annotated[str, Form(max_length=400)] = "",
    model: Annotated[str, Form(max_length=400)] = "",
) -> Response:
    form = RegisterForm(serial.strip(), type, manufacturer.strip(), model.strip())
    try:
        created = DeviceCreate.model_validate(
            {"serial": form.serial, "type": form.type, "manufacturer": form.manufacturer or None}
            | {"model": form.model or None}
        )
    except ValidationError as error:
        errors = flat_errors(error, ("serial", "type", "manufacturer", "model"))
        return await _devices_page(request, session, actor, register=form, errors=errors, status=422)
    try:
        async with attempt(session):
            device = await devices.register(session, actor, created)
    except Conflict:
        return await _devices_page(
            request, session, actor, register=form, errors={"serial": "admin.error.device_exists"}, status=409
        )
    return RedirectResponse("/admin/devices?" + urlencode({"registered": device.serial}), 303)


@router.post("/admin/devices/assignment", response_class=HTMLResponse)
async def assign(
    request: Request,
    session: SessionDep,
    actor: AdminActor,
    serial: Annotated[str, Form(max_length=400)] = "",
    patient: Annotated[str, Form(max_length=100)] = "",
    from_: Annotated[str, Form(alias="from", max_length=100)] = "",
) -> Response:
    """Assign from the time given (Norwegian time); the assignment open then ends there."""
    form = AssignForm(serial=serial.strip(), patient=patient, from_=from_)
    errors: Errors = {}
    if not form.serial:
        errors["assign_serial"] = "admin.error.required"
    if not patient:
        errors["patient"] = "admin.error.choose_patient"
    start = oslo_time(from_)
    if start is None:
        errors["from"] = "admin.error.date_time"
    if not errors:
        try:
            payload = AssignmentIn.model_validate({"patient": patient, "from": start})
        except ValidationError as error:
            errors = {("patient" if k == "patient" else "from"): v for k, v in flat_errors(error, ("patient",)).items()}
    if errors:
        return await _devices_page(request, session, actor, assign=form, errors=errors, status=422)
    try:
        async with attempt(session):
            await devices.assign(session, actor, form.serial, payload)
    except NotFound as error:
        field_ = "patient" if "patient" in error.detail else "assign_serial"
        key = "admin.error.no_patient" if field_ == "patient" else "admin.error.no_device"
        return await _devices_page(request, session, actor, assign=form, errors={field_: key}, status=404)
    except Conflict:
        errors = {"from": "admin.error.assignment_conflict"}
        return await _devices_page(request, session, actor, assign=form, errors=errors, status=409)
    except InvalidInput as error:
        return await _devices_page(request, session, actor, assign=form, errors={"from": error.detail}, status=422)
    return RedirectResponse("/admin/devices?" + urlencode({"assigned": form.serial}), 303)
