"""Queries on the audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.audit.models import AuditRecord


async def page(
    session: AsyncSession,
    patient_scope: Any,
    *,
    patient_id: uuid.UUID | None = None,
    actor_sub: str | None = None,
    action: str | None = None,
    at_from: datetime | None = None,
    at_to: datetime | None = None,
    after: int | None = None,
    until: int | None = None,
    newest_first: bool = True,
    limit: int = 50,
) -> list[AuditRecord]:
    """Records about the patients in scope (every organisation's access to them), by id: the
    order they were written in."""
    statement = select(AuditRecord).where(AuditRecord.patient_id.in_(patient_scope))
    if patient_id is not None:
        statement = statement.where(AuditRecord.patient_id == patient_id)
    if actor_sub is not None:
        statement = statement.where(AuditRecord.actor_sub == actor_sub)
    if action is not None:
        statement = statement.where(AuditRecord.action == action)
    if at_from is not None:
        statement = statement.where(AuditRecord.at >= at_from)
    if at_to is not None:
        statement = statement.where(AuditRecord.at < at_to)
    if after is not None:
        statement = statement.where(AuditRecord.id < after if newest_first else AuditRecord.id > after)
    if until is not None:
        statement = statement.where(AuditRecord.id <= until)
    order = AuditRecord.id.desc() if newest_first else AuditRecord.id
    return list(await session.scalars(statement.order_by(order).limit(limit)))
