"""An organisation's follow-up service settings: service hours, red escalation time and
out-of-hours partner (its own admin only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from rpm.api.deps import ActorDep, SessionDep, SettingsDep
from rpm.organisations import service
from rpm.organisations.schemas import ServiceSettingsIn, ServiceSettingsOut

router = APIRouter(prefix="/api/v1/organisations", tags=["organisations"])
OrgnrPath = Annotated[str, Path(pattern=r"^[0-9]{9}$", description="the organisation number (9 digits)")]


@router.get("/{orgnr}/service", response_model=ServiceSettingsOut)
async def read_service(
    orgnr: OrgnrPath, session: SessionDep, actor: ActorDep, settings: SettingsDep
) -> ServiceSettingsOut:
    """The settings in force, defaults filled in (404 for another organisation than the caller's)."""
    return await service.read_service(session, actor, orgnr, settings.escalate_red_minutes)


@router.put("/{orgnr}/service", response_model=ServiceSettingsOut)
async def change_service(
    orgnr: OrgnrPath, change: ServiceSettingsIn, session: SessionDep, actor: ActorDep, settings: SettingsDep
) -> ServiceSettingsOut:
    """Replace the settings; a field left out or null takes its default (no partner)."""
    return await service.change_service(session, actor, orgnr, change, settings.escalate_red_minutes)
