"""Writing the audit trail, in the caller's transaction so a change and its record are one."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access import service as access
from rpm.access.repository import visible_patient_ids
from rpm.access.staff import Role, Staff
from rpm.audit import repository
from rpm.audit.models import AuditRecord
from rpm.audit.schemas import AuditOut


@dataclass(frozen=True)
class Actor:
    """The staff member and the request an action belongs to."""

    staff: Staff
    request_id: str | None = None


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: str | None,
    patient_ids: Iterable[uuid.UUID | None],
) -> None:
    """One record per patient touched (a list or search touches many)."""
    rows = [
        {
            "actor_sub": actor.staff.sub,
            "actor_name": actor.staff.name,
            "actor_hpr": actor.staff.hpr,
            "actor_org": actor.staff.orgnr,
            "action": action,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "patient_id": patient_id,
            "request_id": actor.request_id,
        }
        for patient_id in patient_ids
    ]
    if rows:
        await session.execute(insert(AuditRecord), rows)


async def history(
    session: AsyncSession, actor: Actor, *, patient_id: uuid.UUID | None, after: int | None, limit: int
) -> list[AuditOut]:
    """Who read or changed the data of the organisation's patients (admins only). With
    `patient_id`, that patient's full access history, whichever organisation accessed it."""
    actor.staff.require(Role.admin)
    if patient_id is not None:
        await access.require_patient(session, actor.staff, patient_id)
    rows = await repository.page(
        session,
        visible_patient_ids(actor.staff.orgnr, access.today()),
        patient_id=patient_id,
        after=after,
        limit=limit,
    )
    return [
        AuditOut(
            id=r.id,
            at=r.at,
            actor_sub=r.actor_sub,
            actor_name=r.actor_name,
            actor_hpr=r.actor_hpr,
            actor_org=r.actor_org,
            action=r.action,
            resource_type=r.resource_type,
            resource_id=r.resource_id,
            patient=r.patient_id,
            request_id=r.request_id,
        )
        for r in rows
    ]
