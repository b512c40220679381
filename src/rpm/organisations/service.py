"""Adding organisations of the health community (an operator's task: `rpm organisations add`),
their follow-up service settings (their admin's), and what of them applies to a patient's
alerts: service hours, escalation, the out-of-hours partner."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from rpm import norway
from rpm.access.staff import Role, Staff
from rpm.audit.service import Actor, record
from rpm.errors import Conflict, Forbidden, InvalidInput, NotFound
from rpm.organisations import repository
from rpm.organisations.models import Organisation, OrganisationKind
from rpm.organisations.schemas import ServiceHoursModel, ServiceSettingsIn, ServiceSettingsOut
from rpm.organisations.service_hours import (
    DEFAULT,
    InvalidServiceHours,
    ServiceHours,
    any_in_service,
    service_time_between_any,
)

log = logging.getLogger(__name__)


async def add(session: AsyncSession, *, orgnr: str, name: str, kind: str) -> Organisation:
    if len(orgnr) != 9 or not orgnr.isdigit():
        raise InvalidInput("invalid_orgnr", "orgnr: an organisation number is 9 digits")
    if kind not in {k.value for k in OrganisationKind}:
        raise InvalidInput("invalid_kind", f"kind: one of {[k.value for k in OrganisationKind]}")
    if not name.strip():
        raise InvalidInput("invalid_name", "name: required")
    if await repository.by_orgnr(session, orgnr) is not None:
        raise Conflict("organisation_exists", f"organisation {orgnr} is already registered")
    organisation = Organisation(orgnr=orgnr, name=name.strip(), kind=kind)
    session.add(organisation)
    await session.flush()
    return organisation


async def caller_organisation(session: AsyncSession, staff: Staff) -> Organisation:
    """The organisation a staff member acts for; it must be registered here."""
    organisation = await repository.by_orgnr(session, staff.orgnr)
    if organisation is None:
        raise Forbidden("unknown_organisation", f"your organisation {staff.orgnr} is not registered in this service")
    return organisation


# -- service hours, escalation and the out-of-hours partner ---------------------------------


@dataclass(frozen=True)
class FollowUp:
    """What applies to a patient's alerts (docs/rules.md, "Service hours"): the service hours
    of each care-team organisation (the alert is in service hours when any of them is), the
    shortest of their red escalation times, and the out-of-hours partner named by the first of
    them that names one (municipalities first, then by organisation number), with the
    organisation number of the one naming it."""

    hours: tuple[ServiceHours, ...]
    red_minutes: float
    partner_id: uuid.UUID | None = None
    handed_over_by: str | None = None

    def in_service(self, at: datetime) -> bool:
        return any_in_service(self.hours, at)

    def service_time_between(self, a: datetime, b: datetime) -> timedelta:
        return service_time_between_any(self.hours, a, b)


def _hours_of(stored: dict[str, Any] | None, orgnr: str) -> ServiceHours:
    try:
        return ServiceHours.from_json(stored)
    except InvalidServiceHours:  # written past the API's checks: the defaults, said loudly
        log.warning("organisation %s has invalid service hours %r; using the defaults", orgnr, stored)
        return DEFAULT


def follow_up_of(services: Sequence[repository.CareTeamService], default_red_minutes: float) -> FollowUp:
    """The follow-up of a patient with these care-team organisations (none: the defaults)."""
    if not services:
        return FollowUp((DEFAULT,), default_red_minutes)
    ordered = sorted(services, key=lambda s: (s.kind != OrganisationKind.municipality, s.orgnr))
    naming = next((s for s in ordered if s.partner_id is not None), None)
    return FollowUp(
        hours=tuple(_hours_of(s.service_hours, s.orgnr) for s in ordered),
        red_minutes=min(
            float(s.escalate_red_minutes) if s.escalate_red_minutes is not None else default_red_minutes
            for s in ordered
        ),
        partner_id=naming.partner_id if naming else None,
        handed_over_by=naming.orgnr if naming else None,
    )


async def follow_ups(
    session: AsyncSession, patient_ids: Collection[uuid.UUID], at: datetime, default_red_minutes: float
) -> dict[uuid.UUID, FollowUp]:
    """Each patient's follow-up at `at` (the care team of that day in Norway), in one query."""
    services = await repository.care_team_services(session, patient_ids, at.astimezone(norway.OSLO).date())
    return {p: follow_up_of(found, default_red_minutes) for p, found in services.items()}


async def _own_organisation(session: AsyncSession, actor: Actor, orgnr: str, *, for_update: bool) -> Organisation:
    """The caller's own organisation, for its admin: 404 for any other (whether registered or
    not), 403 for a caller without the admin role."""
    if actor.staff.orgnr != orgnr:
        raise NotFound("not_found", "no such organisation")
    actor.staff.require(Role.admin)
    organisation = await (repository.lock(session, orgnr) if for_update else repository.by_orgnr(session, orgnr))
    if organisation is None:
        raise NotFound("not_found", "no such organisation")
    return organisation


async def _settings_out(
    session: AsyncSession, organisation: Organisation, default_red_minutes: float
) -> ServiceSettingsOut:
    partner = (
        await repository.by_id(session, organisation.out_of_hours_partner_id)
        if organisation.out_of_hours_partner_id
        else None
    )
    hours = _hours_of(organisation.service_hours, organisation.orgnr)
    return ServiceSettingsOut(
        organisation=organisation.orgnr,
        service_hours=ServiceHoursModel.model_validate(hours.to_json()),
        service_hours_default=organisation.service_hours is None,
        escalate_red_minutes=float(organisation.escalate_red_minutes)
        if organisation.escalate_red_minutes is not None
        else default_red_minutes,
        escalate_red_minutes_default=organisation.escalate_red_minutes is None,
        out_of_hours_partner=partner.orgnr if partner else None,
        out_of_hours_partner_name=partner.name if partner else None,
    )


async def read_service(
    session: AsyncSession, actor: Actor, orgnr: str, default_red_minutes: float
) -> ServiceSettingsOut:
    organisation = await _own_organisation(session, actor, orgnr, for_update=False)
    return await _settings_out(session, organisation, default_red_minutes)


async def change_service(
    session: AsyncSession, actor: Actor, orgnr: str, change: ServiceSettingsIn, default_red_minutes: float
) -> ServiceSettingsOut:
    """Replace the organisation's service hours, red escalation time and out-of-hours partner
    (each left out or null: the default; no partner). Alerts already handed over stay with
    their partner until resolved; new ones follow the new settings. Audited (no patient)."""
    organisation = await _own_organisation(session, actor, orgnr, for_update=True)
    hours: ServiceHours | None = None
    if change.service_hours is not None:
        try:
            hours = ServiceHours.from_json(change.service_hours.model_dump())
        except InvalidServiceHours as error:
            raise InvalidInput("invalid_service_hours", f"service_hours.{error}") from None
    partner_id: uuid.UUID | None = None
    if change.out_of_hours_partner is not None:
        if change.out_of_hours_partner == orgnr:
            raise InvalidInput("invalid_partner", "out_of_hours_partner: another organisation than your own")
        partner = await repository.by_orgnr(session, change.out_of_hours_partner)
        if partner is None:
            raise InvalidInput(
                "unknown_organisation",
                f"out_of_hours_partner: organisation {change.out_of_hours_partner} is not registered",
            )
        partner_id = partner.id
    organisation.service_hours = hours.to_json() if hours is not None else None
    organisation.escalate_red_minutes = change.escalate_red_minutes
    organisation.out_of_hours_partner_id = partner_id
    await session.flush()
    await record(session, actor, "update", "OrganisationService", orgnr, [None])
    return await _settings_out(session, organisation, default_red_minutes)
