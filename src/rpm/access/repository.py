"""Which patients an organisation may see: those whose care team it is in today, and those
with an active alert handed over to it as the out-of-hours partner (for the alert's duration)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, CompoundSelect, Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.alerts.models import ACTIVE, Alert
from rpm.organisations.models import Organisation
from rpm.patients.models import CareTeamMember


def in_care_team_on(day: date) -> ColumnElement[bool]:
    """A care-team membership whose period (both ends included, the end open) holds `day`."""
    return and_(
        CareTeamMember.period_from <= day,
        or_(CareTeamMember.period_to.is_(None), CareTeamMember.period_to >= day),
    )


def followed_patient_ids(orgnr: str, today: date) -> Select[Any]:
    """The patients whose care team the organisation is in today: it may change their
    enrolment, devices, thresholds and plan, and list their audit trail."""
    return (
        select(CareTeamMember.patient_id)
        .join(Organisation, Organisation.id == CareTeamMember.organisation_id)
        .where(Organisation.orgnr == orgnr, in_care_team_on(today))
    )


def handed_over_patient_ids(orgnr: str) -> Select[Any]:
    """The patients with an active alert handed over to the organisation as out-of-hours
    partner (on the partial index ix_alerts_handed_over_to): resolved, the access ends."""
    return (
        select(Alert.patient_id)
        .join(Organisation, Organisation.id == Alert.handed_over_to)
        .where(Organisation.orgnr == orgnr, Alert.handed_over_to.is_not(None), Alert.status.in_(ACTIVE))
    )


def visible_patient_ids(orgnr: str, today: date) -> CompoundSelect:
    """The patients whose data the organisation's staff may read and whose alerts they work:
    those it follows, and those handed over to it while the alert is active."""
    return followed_patient_ids(orgnr, today).union(handed_over_patient_ids(orgnr))


def care_team_orgnrs(patient_id: uuid.UUID, today: date) -> Select[str]:
    """The organisation numbers of the patient's care team today."""
    return (
        select(Organisation.orgnr)
        .join(CareTeamMember, CareTeamMember.organisation_id == Organisation.id)
        .where(CareTeamMember.patient_id == patient_id, in_care_team_on(today))
    )


def organisations_seeing(patient_id: uuid.UUID, today: date) -> CompoundSelect:
    """The organisation numbers whose staff may see the patient: those of its care team today,
    and the out-of-hours partner of one of its active alerts handed over."""
    in_care_team = care_team_orgnrs(patient_id, today)
    partner = (
        select(Organisation.orgnr)
        .join(Alert, Alert.handed_over_to == Organisation.id)
        .where(Alert.patient_id == patient_id, Alert.handed_over_to.is_not(None), Alert.status.in_(ACTIVE))
    )
    return in_care_team.union(partner)


async def may_see(session: AsyncSession, orgnr: str, patient_id: uuid.UUID, today: date) -> bool:
    followed = followed_patient_ids(orgnr, today).where(CareTeamMember.patient_id == patient_id)
    handed_over = handed_over_patient_ids(orgnr).where(Alert.patient_id == patient_id)
    return bool(await session.scalar(select(or_(followed.exists(), handed_over.exists()))))


async def follows(session: AsyncSession, orgnr: str, patient_id: uuid.UUID, today: date) -> bool:
    statement = followed_patient_ids(orgnr, today).where(CareTeamMember.patient_id == patient_id).limit(1)
    return await session.scalar(statement) is not None


async def visible_among(
    session: AsyncSession, orgnr: str, patient_ids: Iterable[uuid.UUID], today: date
) -> set[uuid.UUID]:
    """Those of `patient_ids` the organisation may see."""
    wanted = set(patient_ids)
    if not wanted:
        return set()
    followed = followed_patient_ids(orgnr, today).where(CareTeamMember.patient_id.in_(wanted))
    handed_over = handed_over_patient_ids(orgnr).where(Alert.patient_id.in_(wanted))
    return set(await session.scalars(followed.union(handed_over)))
