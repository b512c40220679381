"""Registering gateways to an organisation, and listing an organisation's gateways."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access.staff import Role
from rpm.audit.service import Actor
from rpm.errors import Conflict
from rpm.gateways import repository
from rpm.gateways.models import Gateway
from rpm.gateways.schemas import GatewayCreate, GatewayOut
from rpm.organisations.service import caller_organisation


async def register(session: AsyncSession, actor: Actor, payload: GatewayCreate) -> GatewayOut:
    """The caller's organisation answers for the gateway from now on: its rejected readings
    from devices nobody registered become that organisation's to see and reprocess."""
    actor.staff.require(Role.admin)
    organisation = await caller_organisation(session, actor.staff)
    if await repository.by_id(session, payload.id) is not None:
        raise Conflict("gateway_exists", f"gateway {payload.id} is already registered")
    session.add(
        Gateway(id=payload.id, name=payload.name, organisation_id=organisation.id, registered_by=actor.staff.sub)
    )
    try:
        await session.flush()
    except IntegrityError as error:  # registered at the same moment by someone else
        raise Conflict("gateway_exists", f"gateway {payload.id} is already registered") from error
    row = await repository.listed(session, payload.id)
    return GatewayOut.model_validate(row)


async def of_caller(session: AsyncSession, actor: Actor, *, after: str | None, limit: int) -> list[GatewayOut]:
    """The caller's organisation's gateways by id; up to `limit` + 1, the last only says there is more."""
    organisation = await caller_organisation(session, actor.staff)
    rows = await repository.of_organisation(session, organisation.id, after=after, limit=limit + 1)
    return [GatewayOut.model_validate(row) for row in rows]
