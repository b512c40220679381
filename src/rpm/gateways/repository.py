"""Queries on gateways and what the workers last heard from them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Row, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.gateways.models import Gateway, GatewayStatus
from rpm.organisations.models import Organisation


async def set_status(session: AsyncSession, gateway_id: str, status: str, at: datetime) -> None:
    """Keep the newest status; a status redelivered late never overwrites a newer one."""
    statement = insert(GatewayStatus).values(gateway_id=gateway_id, status=status, changed_at=at)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[GatewayStatus.gateway_id],
            set_={"status": statement.excluded.status, "changed_at": statement.excluded.changed_at},
            where=or_(GatewayStatus.changed_at.is_(None), GatewayStatus.changed_at <= statement.excluded.changed_at),
        )
    )


# In gateway order, so two workers recording the same gateways lock their rows in one order.
_HEARD_FROM = text(
    """
    insert into gateway_status as s (gateway_id, last_message_at)
    select gateway_id, at from unnest(cast(:gateway_ids as text[]), cast(:times as timestamptz[])) as t(gateway_id, at)
    order by gateway_id
    on conflict (gateway_id) do update
        set last_message_at = greatest(s.last_message_at, excluded.last_message_at)
    """
)


async def heard_from(session: AsyncSession, last_message_at: Mapping[str, datetime]) -> None:
    """Record when each gateway's newest message arrived (never moving a time backwards)."""
    if last_message_at:
        gateways = sorted(last_message_at)
        await session.execute(_HEARD_FROM, {"gateway_ids": gateways, "times": [last_message_at[g] for g in gateways]})


async def by_id(session: AsyncSession, gateway_id: str) -> Gateway | None:
    return await session.get(Gateway, gateway_id)


def _listed() -> Any:
    return (
        select(
            Gateway.id,
            Gateway.name,
            Organisation.orgnr.label("organisation"),
            Gateway.registered_at,
            GatewayStatus.status,
            GatewayStatus.changed_at.label("status_changed_at"),
            GatewayStatus.last_message_at,
        )
        .join(Organisation, Organisation.id == Gateway.organisation_id)
        .outerjoin(GatewayStatus, GatewayStatus.gateway_id == Gateway.id)
    )


async def listed(session: AsyncSession, gateway_id: str) -> Row[Any] | None:
    return (await session.execute(_listed().where(Gateway.id == gateway_id))).first()


async def of_organisation(
    session: AsyncSession, organisation_id: uuid.UUID, *, after: str | None, limit: int
) -> list[Row[Any]]:
    """The organisation's gateways with their last status and message, by id."""
    statement = _listed().where(Gateway.organisation_id == organisation_id)
    if after is not None:
        statement = statement.where(Gateway.id > after)
    return list(await session.execute(statement.order_by(Gateway.id).limit(limit)))
