"""Adding organisations of the health community (an operator's task: `rpm organisations add`)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access.staff import Staff
from rpm.errors import Conflict, Forbidden, InvalidInput
from rpm.organisations import repository
from rpm.organisations.models import Organisation, OrganisationKind


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
