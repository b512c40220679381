"""Enrolling a patient from the staff page: the form, its identity number check as the admin
types (the server's own rpm.patients.identity, no second implementation in the browser), and
the enrolment through rpm.patients.service.enrol."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from rpm import norway
from rpm.api.deps import SessionDep
from rpm.api.web.deps import attempt
from rpm.api.web.pages.admin import AdminActor, Errors, admin_page, message_for
from rpm.api.web.render import page
from rpm.errors import Conflict, InvalidInput
from rpm.fhir.codes import READING_TYPES
from rpm.organisations import repository as organisations
from rpm.patients import service as patients
from rpm.patients.identity import IdentifierKind, InvalidIdentityNumber, NationalIdentity, parse_identity_number
from rpm.patients.schemas import CONDITIONS, PatientCreate

router = APIRouter(tags=["staff page"], include_in_schema=False)

DEFAULT_EVERY_HOURS = "24"

# Why parse_identity_number refused a number (its messages), in the page's words.
IDENTITY_REASONS = {
    "must be exactly 11 digits": "admin.identity.length",
    "individual number does not fit the year of birth": "admin.identity.individual",
    "does not start with a real date": "admin.identity.date",
    "first check digit is wrong": "admin.identity.check_first",
    "second check digit is wrong": "admin.identity.check_second",
}


def identity_number(raw: str) -> str:
    """What was typed, without the spaces people put in ("010203 12345")."""
    return re.sub(r"\s+", "", raw)[:64]


@dataclass
class IdentityCheck:
    number: str
    identity: NationalIdentity | None = None
    reason: str | None = None  # a text key

    @property
    def kind(self) -> str | None:
        if self.identity is None:
            return None
        return "dnr" if self.identity.kind is IdentifierKind.dnr else "fnr"


def check_identity(raw: str) -> IdentityCheck:
    number = identity_number(raw)
    if not number:
        return IdentityCheck(number)
    try:
        return IdentityCheck(number, identity=parse_identity_number(number))
    except InvalidIdentityNumber as error:
        return IdentityCheck(number, reason=IDENTITY_REASONS.get(str(error), "admin.identity.invalid"))


@dataclass
class CareRow:
    organisation: str
    from_: str
    key: str = field(default_factory=lambda: uuid.uuid4().hex[:8])  # for the row's element ids


@dataclass
class EnrolForm:
    """The form as the admin filled it, kept when it is shown again with its errors."""

    identifier: str = ""
    name: str = ""
    birth_date: str = ""
    conditions: list[str] = field(default_factory=list)
    own_from: str = ""
    others: list[CareRow] = field(default_factory=list)
    plan: dict[str, str] = field(default_factory=dict)  # checked type -> every N hours as typed
    every: dict[str, str] = field(default_factory=dict)  # every type -> as typed


def blank_form() -> EnrolForm:
    today = norway.today().isoformat()
    return EnrolForm(
        own_from=today,
        others=[CareRow("", today)],
        every={name: DEFAULT_EVERY_HOURS for name in READING_TYPES},
    )


async def _context(session: SessionDep, actor: AdminActor) -> dict[str, Any]:
    known = await organisations.all_of(session)
    own = next((o for o in known if o.orgnr == actor.staff.orgnr), None)
    return {
        "conditions": CONDITIONS,
        "reading_types": list(READING_TYPES),
        "own": own,
        "own_orgnr": actor.staff.orgnr,
        "others": [o for o in known if o.orgnr != actor.staff.orgnr],
        "today": norway.today().isoformat(),
    }


def _enrol_page(request: Request, context: dict[str, Any], form: EnrolForm, errors: Errors, status: int) -> Response:
    check = check_identity(form.identifier) if form.identifier else None
    return admin_page(
        request, "admin_enrol.html", "/admin/patients/new", status, form=form, errors=errors, check=check, **context
    )


@router.get("/admin/patients/new", response_class=HTMLResponse)
async def enrol_form(request: Request, session: SessionDep, actor: AdminActor) -> Response:
    """The enrolment form: the caller's organisation in the care team from today."""
    return _enrol_page(request, await _context(session, actor), blank_form(), {}, 200)


@router.post("/admin/patients/identity", response_class=HTMLResponse)
async def identity_check(
    request: Request, actor: AdminActor, identifier: Annotated[str, Form(max_length=200)] = ""
) -> HTMLResponse:
    """The identity number as typed, checked by the server: valid fødselsnummer or D-number
    with the birth date it implies (which fills the birth date field), or why not."""
    check = check_identity(identifier)
    return page(request, "_admin_identity.html", check=check, oob=True, today=norway.today().isoformat())


@router.get("/admin/patients/new/care-team-row", response_class=HTMLResponse)
async def care_team_row(request: Request, session: SessionDep, actor: AdminActor) -> HTMLResponse:
    """One more organisation for the care team (added by the form's button)."""
    context = await _context(session, actor)
    return page(request, "_admin_care_team_row.html", row=CareRow("", context["today"]), errors={}, **context)


def _read_form(form: Any) -> EnrolForm:
    def one(name: str) -> str:
        value = form.get(name)
        return value.strip() if isinstance(value, str) else ""

    def every(name: str) -> list[str]:
        return [v.strip() for v in form.getlist(name) if isinstance(v, str)]

    organisations_, froms = every("care_organisation"), every("care_from")
    froms += [""] * (len(organisations_) - len(froms))
    every_by_type = {name: one(f"every_{name}") for name in READING_TYPES}
    return EnrolForm(
        identifier=identity_number(one("identifier")),
        name=one("name"),
        birth_date=one("birth_date"),
        conditions=[c for c in every("conditions") if c in CONDITIONS],
        own_from=one("own_from"),
        others=[CareRow(o, f) for o, f in zip(organisations_, froms, strict=False)],
        plan={name: every_by_type[name] for name in READING_TYPES if name in every("plan")},
        every=every_by_type,
    )


def _given(**values: Any) -> dict[str, Any]:
    """The fields filled in: an empty one is missing (and said so), not an empty value."""
    return {name: value for name, value in values.items() if value not in (None, "")}


def _payload(form: EnrolForm, own_orgnr: str) -> tuple[dict[str, Any], list[str]]:
    """The enrolment as PatientCreate takes it, and which row each care-team entry came from
    ("own" or a row's key), to put an entry's error next to its row."""
    team = [_given(organisation=own_orgnr, **{"from": form.own_from})]
    rows = ["own"]
    for row in form.others:
        if row.organisation:  # a row left at "choose" adds nobody
            team.append(_given(organisation=row.organisation, **{"from": row.from_}))
            rows.append(row.key)
    birth_date: str | date | None = form.birth_date
    if not birth_date:  # filled from the identity number, as the page does while typing
        check = check_identity(form.identifier)
        birth_date = check.identity.birth_date if check.identity else None
    payload = _given(identifier=form.identifier, name=form.name, birth_date=birth_date) | {
        "conditions": form.conditions,
        "care_team": team,
        "measurement_plan": [_given(type=kind, every_hours=every) for kind, every in form.plan.items()],
    }
    return payload, rows


def _validation_errors(error: ValidationError, form: EnrolForm, rows: list[str]) -> Errors:
    errors: Errors = {}
    plan_types = list(form.plan)
    for problem in error.errors():
        location, kind = problem["loc"], problem["type"]
        head = str(location[0]) if location else ""
        if head == "identifier":
            check = check_identity(form.identifier)
            errors.setdefault("identifier", check.reason or "admin.error.required")
        elif head == "birth_date":
            errors.setdefault("birth_date", message_for(kind, "admin.error.date"))
        elif head == "name":
            errors.setdefault("name", message_for(kind))
        elif head == "care_team" and len(location) > 1 and isinstance(location[1], int):
            errors.setdefault(f"care_{rows[location[1]]}", message_for(kind, "admin.error.organisation"))
        elif head == "measurement_plan" and len(location) > 1 and isinstance(location[1], int):
            key = message_for(kind)
            if key in ("admin.error.out_of_range", "admin.error.required", "admin.error.invalid"):
                key = "admin.error.every_hours"
            errors.setdefault(f"plan_{plan_types[location[1]]}", key)
        elif not location and "birth_date" in problem["msg"]:
            errors.setdefault("birth_date", "admin.error.birth_date_mismatch")
        elif head in ("conditions", "care_team", "measurement_plan"):
            errors.setdefault(head, "admin.error.invalid")
        else:
            errors.setdefault("form", "admin.error.invalid")
    return errors


CARE_TEAM_ENTRY = re.compile(r"^care_team\[(\d+)\]")


@router.post("/admin/patients", response_class=HTMLResponse)
async def enrol(request: Request, session: SessionDep, actor: AdminActor) -> Response:
    """Enrol through the service; the new patient's page on success, else the form again,
    filled as it was, with each error next to its field."""
    context = await _context(session, actor)
    form = _read_form(await request.form())
    payload, rows = _payload(form, actor.staff.orgnr)
    errors: Errors = {}
    try:
        created = PatientCreate.model_validate(payload)
    except ValidationError as error:
        return _enrol_page(request, context, form, _validation_errors(error, form, rows), 422)
    try:
        async with attempt(session):
            patient = await patients.enrol(session, actor, created)
    except Conflict:
        errors["identifier"] = "admin.error.patient_exists"
        return _enrol_page(request, context, form, errors, 409)
    except InvalidInput as error:
        entry = CARE_TEAM_ENTRY.match(error.detail)
        if error.code == "unknown_organisation" and entry and int(entry.group(1)) < len(rows):
            errors[f"care_{rows[int(entry.group(1))]}"] = "admin.error.unknown_organisation"
        else:
            errors["form"] = error.detail
        return _enrol_page(request, context, form, errors, 422)
    return RedirectResponse(f"/patients/{patient.id}", 303)
