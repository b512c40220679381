"""Queries on the audit trail."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.audit.models import AuditRecord


async def page(
    session: AsyncSession, patient_scope: Any, *, patient_id: uuid.UUID | None, after: int | None, limit: int
) -> list[AuditRecord]:
    """Records about the patients in scope (every organisation's access to them), oldest first."""
    statement = select(AuditRecord).where(AuditRecord.patient_id.in_(patient_scope))
    if patient_id is not None:
        statement = statement.where(AuditRecord.patient_id == patient_id)
    if after is not None:
        statement = statement.where(AuditRecord.id > after)
    return list(await session.scalars(statement.order_by(AuditRecord.id).limit(limit)))
