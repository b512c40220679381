"""Gateways registered to the caller's organisation, with what the workers last heard from them."""

from __future__ import annotations

from fastapi import APIRouter

from rpm.api.deps import ActorDep, SessionDep
from rpm.api.pagination import Cursor, CursorParam, Key, LimitParam, Page
from rpm.gateways import service
from rpm.gateways.schemas import GatewayCreate, GatewayOut

router = APIRouter(prefix="/api/v1/gateways", tags=["gateways"])
GATEWAY_CURSOR: Cursor[str] = Cursor("gateways", Key)


@router.post("", status_code=201, response_model=GatewayOut)
async def register(payload: GatewayCreate, session: SessionDep, actor: ActorDep) -> GatewayOut:
    """An admin registers a gateway to their organisation (409 if it is registered already)."""
    return await service.register(session, actor, payload)


@router.get("", response_model=Page[GatewayOut])
async def list_gateways(
    session: SessionDep, actor: ActorDep, cursor: CursorParam = None, limit: LimitParam = 50
) -> Page[GatewayOut]:
    """The organisation's gateways by id, with their last status and last message time."""
    found = await service.of_caller(session, actor, after=GATEWAY_CURSOR.decode(cursor), limit=limit)
    return Page[GatewayOut].of(found, limit, GATEWAY_CURSOR, lambda gateway: gateway.id)
