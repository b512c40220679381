"""The staff directory: writing down who calls the service, and who may be assigned a
patient's alerts.

Takes a session and never commits.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access import service as access
from rpm.access.repository import care_team_orgnrs, organisations_seeing
from rpm.access.staff import Staff
from rpm.audit.service import Actor, record
from rpm.staff import repository
from rpm.staff.models import StaffMember
from rpm.staff.repository import DirectoryPosition
from rpm.staff.schemas import StaffMemberOut

position_of = repository.position_of


async def seen(session: AsyncSession, staff: Staff, now: datetime) -> None:
    """The staff member called the service at `now`: written down (sub, organisation, name,
    HPR number, roles), or brought up to date."""
    await repository.upsert(session, staff, now)


async def colleagues(
    session: AsyncSession,
    actor: Actor,
    patient_id: uuid.UUID | None,
    *,
    partner: str | Literal["any"] | None = "any",
    after: DirectoryPosition | None = None,
    limit: int = 50,
) -> list[StaffMemberOut]:
    """Who may be assigned the patient's alerts: the staff of the organisations that may see
    the patient (its care team today, and the out-of-hours partner of an alert handed over);
    for one alert (`partner`: the organisation number of the partner it is handed over to, or
    None), its care team's and that partner's only. Without a patient, the staff of the
    caller's own organisation. 404 for a patient the caller may not see. By name.

    Returns up to `limit` + 1: the last one, when there, only tells the page there is more."""
    orgnrs: Any = [actor.staff.orgnr]
    if patient_id is not None:
        await access.require_patient(session, actor.staff, patient_id)
        orgnrs = (
            organisations_seeing(patient_id, access.today())
            if partner == "any"
            else _working_alert(patient_id, partner)
        )
    found = await repository.of_organisations(session, orgnrs, after=after, limit=limit + 1)
    await record(session, actor, "search", "StaffMember", None, [patient_id])
    return [StaffMemberOut.model_validate(member) for member in found]


def _working_alert(patient_id: uuid.UUID, partner: str | None) -> Any:
    """The organisation numbers that work an alert of the patient: its care team today, and
    the partner it is handed over to (None: none)."""
    care_team = care_team_orgnrs(patient_id, access.today())
    return care_team if partner is None else care_team.union(select(literal(partner)))


async def may_be_assigned(
    session: AsyncSession, sub: str, patient_id: uuid.UUID, partner: str | None
) -> StaffMember | None:
    """The staff member `sub` if they may be assigned an alert of the patient (of its care team
    today, or of `partner`, the organisation number of the out-of-hours partner the alert is
    handed over to), else None. The partner's staff work the alerts handed over to it, not
    the patient's others."""
    return await repository.member_of(session, sub, _working_alert(patient_id, partner))


async def names_of(session: AsyncSession, subs: set[str]) -> dict[str, str]:
    """The names the service knows for these staff members' subs."""
    return await repository.names_of(session, subs)
