"""The patient's self-management plan: read it (in force and every version) and change it
(physician or admin) as a new version with who, when and why, like thresholds.

A patient without a plan has no action: alerts then carry none, and nothing is made up in its
place. An alert takes the action of its level from the plan in force when it opens or is
raised to red (alerts.repository); a later change of the plan does not rewrite it.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access import service as access
from rpm.access.staff import Role
from rpm.action_plans import repository
from rpm.action_plans.models import ActionPlan
from rpm.action_plans.schemas import ActionPlanChange, ActionPlanRecord, ActionPlanVersion, Actions
from rpm.audit.service import Actor, record
from rpm.errors import Conflict
from rpm.versions import add_version

CHANGERS = (Role.physician, Role.admin)


def _version(row: ActionPlan) -> ActionPlanVersion:
    return ActionPlanVersion(
        version=row.version,
        actions=Actions.model_validate(row.actions),
        reason=row.reason,
        changed_at=row.changed_at,
        changed_by_sub=row.changed_by_sub,
        changed_by_name=row.changed_by_name,
        changed_by_hpr=row.changed_by_hpr,
        changed_by_org=row.changed_by_org,
    )


async def _record(session: AsyncSession, patient_id: uuid.UUID) -> ActionPlanRecord:
    versions = [_version(row) for row in await repository.history(session, patient_id)]
    return ActionPlanRecord(in_force=versions[0] if versions else None, history=versions)


async def plan_record(session: AsyncSession, actor: Actor, patient_id: uuid.UUID) -> ActionPlanRecord:
    """The plan in force and every version, newest first; audited as a read."""
    await access.require_patient(session, actor.staff, patient_id)
    found = await _record(session, patient_id)
    await record(session, actor, "read", "ActionPlan", str(patient_id), [patient_id])
    return found


async def change_plan(
    session: AsyncSession, actor: Actor, patient_id: uuid.UUID, change: ActionPlanChange
) -> ActionPlanRecord:
    """A new version holding the whole plan as given (409 for the later of two at once)."""
    await access.require_care_team(session, actor.staff, patient_id)
    actor.staff.require(*CHANGERS)
    current = await repository.in_force(session, patient_id)
    await add_version(
        session,
        ActionPlan(
            patient_id=patient_id,
            version=(current.version if current else 0) + 1,
            actions=change.actions.model_dump(exclude_none=True),
        ),
        actor.staff,
        change.reason,
        Conflict("action_plan_changed", "the action plan was changed at the same moment; try again"),
    )
    await record(session, actor, "update", "ActionPlan", str(patient_id), [patient_id])
    return await _record(session, patient_id)
