"""Queries on action plans. The alert queue reads the plan in force in its own SQL
(alerts.repository), on the same (patient_id, version) index."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.action_plans.models import ActionPlan


async def in_force(session: AsyncSession, patient_id: uuid.UUID) -> ActionPlan | None:
    """The patient's newest version, if any."""
    return await session.scalar(
        select(ActionPlan).where(ActionPlan.patient_id == patient_id).order_by(ActionPlan.version.desc()).limit(1)
    )


async def history(session: AsyncSession, patient_id: uuid.UUID) -> list[ActionPlan]:
    """Every version of the patient's plan, newest first."""
    rows = await session.scalars(
        select(ActionPlan).where(ActionPlan.patient_id == patient_id).order_by(ActionPlan.version.desc())
    )
    return list(rows)
