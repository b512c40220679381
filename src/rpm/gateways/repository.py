"""Queries on gateway status."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.gateways.models import GatewayStatus


async def set_status(session: AsyncSession, gateway_id: str, status: str, at: datetime) -> None:
    """Keep the newest status; a status redelivered late never overwrites a newer one."""
    statement = insert(GatewayStatus).values(gateway_id=gateway_id, status=status, changed_at=at)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[GatewayStatus.gateway_id],
            set_={"status": statement.excluded.status, "changed_at": statement.excluded.changed_at},
            where=GatewayStatus.changed_at <= statement.excluded.changed_at,
        )
    )
