"""A patient's self-management plan on the staff page: the action agreed with the GP for each
level, every version with who, when and why, and for a physician or an administrator a form
that saves a new version with its reason. The thresholds page shows the plan in force with the
same form; a refused save is answered here, with the form as typed and what was wrong.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access import service as access
from rpm.access.staff import Staff
from rpm.action_plans import service as action_plans
from rpm.action_plans.schemas import ACTION_LENGTH, REASON_LENGTH, ZONES, ActionPlanChange, ActionPlanRecord
from rpm.api.deps import SessionDep
from rpm.api.web.deps import WebActor, attempt
from rpm.api.web.render import page
from rpm.audit.service import Actor
from rpm.errors import Conflict
from rpm.patients import service as patients

router = APIRouter(tags=["staff page"], include_in_schema=False)


def may_change(staff: Staff) -> bool:
    return bool(staff.roles.intersection(action_plans.CHANGERS))


def blank_form(record: ActionPlanRecord) -> dict[str, str]:
    """The form's fields filled in with the plan in force."""
    actions = record.in_force.actions if record.in_force else None
    return {zone: (getattr(actions, zone) or "") if actions else "" for zone in ZONES} | {"reason": ""}


def plan_context(record: ActionPlanRecord, staff: Staff) -> dict[str, Any]:
    """What the plan's section needs (here and on the thresholds page)."""
    return {
        "plan": record,
        "plan_form": blank_form(record),
        "plan_errors": [],
        "plan_editable": may_change(staff),
        "zones": ZONES,
        "action_length": ACTION_LENGTH,
        "plan_reason_length": REASON_LENGTH,
    }


async def _page(
    request: Request,
    session: AsyncSession,
    actor: Actor,
    patient_id: uuid.UUID,
    *,
    status: int = 200,
    saved: int | None = None,
    **changes: Any,
) -> HTMLResponse:
    record = await action_plans.plan_record(session, actor, patient_id)  # first: another organisation's is 404
    patient = await patients.read(session, actor, patient_id)
    context = plan_context(record, actor.staff) | changes
    return page(request, "action_plan.html", status, patient=patient, saved=saved, **context)


@router.get("/patients/{patient_id}/action-plan", response_class=HTMLResponse)
async def action_plan_page(
    request: Request,
    patient_id: uuid.UUID,
    session: SessionDep,
    actor: WebActor,
    saved: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
) -> HTMLResponse:
    """The plan in force, its versions and (physician or administrator) the form."""
    return await _page(request, session, actor, patient_id, saved=saved)


def _problems(error: ValidationError) -> list[str]:
    """The schema's refusals as keys of the page's texts."""
    found = []
    for detail in error.errors():
        where = [str(part) for part in detail.get("loc", ())]
        if where and where[0] == "reason":
            found.append("plan.error.reason")
        elif len(where) > 1 and where[1] in ZONES:
            found.append(f"plan.error.long.{where[1]}")
        else:
            found.append("plan.error.none")
    return list(dict.fromkeys(found))


@router.post("/patients/{patient_id}/action-plan", response_class=HTMLResponse)
async def save_plan(request: Request, patient_id: uuid.UUID, session: SessionDep, actor: WebActor) -> Response:
    """A new version of the plan with its reason (physician or administrator). An empty field
    leaves its level without an action."""
    await access.require_care_team(session, actor.staff, patient_id)
    actor.staff.require(*action_plans.CHANGERS)
    submitted = await request.form()
    form = {field: str(submitted.get(field, "")) for field in (*ZONES, "reason")}
    errors: list[str] = []
    status = 422
    try:
        change = ActionPlanChange.model_validate(
            {"reason": form["reason"], "actions": {zone: form[zone].strip() or None for zone in ZONES}}
        )
    except ValidationError as error:
        errors = _problems(error)
    else:
        try:
            async with attempt(session):  # a save at the same moment by someone else is refused
                record = await action_plans.change_plan(session, actor, patient_id, change)
        except Conflict:
            errors, status = ["plan.error.conflict"], 409
        else:
            version = record.in_force.version if record.in_force else 0
            return RedirectResponse(f"/patients/{patient_id}/action-plan?saved={version}", 303)
    return await _page(request, session, actor, patient_id, status=status, plan_form=form, plan_errors=errors)
