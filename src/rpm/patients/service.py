"""Enrolment: creating, reading, changing and ending a patient's follow-up."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access import service as access
from rpm.access.staff import Role
from rpm.alerts import repository as alerts
from rpm.audit.service import Actor, record
from rpm.devices import repository as devices
from rpm.errors import Conflict, Forbidden, InvalidInput, NotFound
from rpm.observations import repository as observations
from rpm.organisations import repository as organisations
from rpm.patients import repository
from rpm.patients.identity import parse_identity_number
from rpm.patients.models import CareTeamMember, MeasurementPlanItem, Patient
from rpm.patients.schemas import (
    CareTeamEntry,
    CareTeamOut,
    PatientCreate,
    PatientOut,
    PatientPatch,
    PatientSummary,
    PlanAdherence,
    PlanItem,
)


def to_out(patient: Patient) -> PatientOut:
    return PatientOut(
        id=patient.id,
        identifier=patient.identifier,
        identifier_system=patient.identifier_system,
        name=patient.name,
        birth_date=patient.birth_date,
        conditions=list(patient.conditions),
        care_team=[
            CareTeamOut(organisation=m.organisation.orgnr, from_=m.period_from, to=m.period_to)
            for m in patient.care_team
        ],
        measurement_plan=[PlanItem(type=p.reading_type, every_hours=p.every_hours) for p in patient.measurement_plan],
        status=patient.status,
        follow_up_ended_at=patient.follow_up_ended_at,
    )


async def _care_team(session: AsyncSession, patient_id: uuid.UUID, entries: Sequence[CareTeamEntry]) -> None:
    known = await organisations.by_orgnrs(session, [e.organisation for e in entries])
    for number, entry in enumerate(entries):
        organisation = known.get(entry.organisation)
        if organisation is None:
            raise InvalidInput(
                "unknown_organisation", f"care_team[{number}].organisation: {entry.organisation} is not registered"
            )
        session.add(
            CareTeamMember(
                patient_id=patient_id, organisation_id=organisation.id, period_from=entry.from_, period_to=entry.to
            )
        )


def _plan(patient: Patient, items: Sequence[PlanItem]) -> None:
    patient.measurement_plan = [
        MeasurementPlanItem(patient_id=patient.id, reading_type=i.type, every_hours=i.every_hours) for i in items
    ]


async def enrol(session: AsyncSession, actor: Actor, payload: PatientCreate) -> PatientOut:
    actor.staff.require(Role.admin)
    if actor.staff.orgnr not in {e.organisation for e in payload.care_team}:
        raise Forbidden("forbidden", "an admin may enrol only patients their own organisation follows")
    if await repository.by_identifier(session, payload.identifier) is not None:
        raise Conflict("patient_exists", "a patient with this identifier is already enrolled")
    identity = parse_identity_number(payload.identifier)
    patient = Patient(
        id=uuid.uuid4(),
        identifier=payload.identifier,
        identifier_system=identity.kind.value,
        name=payload.name,
        birth_date=payload.birth_date,
        conditions=list(payload.conditions),
        status="active",
    )
    patient.measurement_plan = []
    session.add(patient)
    _plan(patient, payload.measurement_plan)
    try:
        await session.flush()
    except IntegrityError as error:  # a concurrent enrolment of the same identifier
        raise Conflict("patient_exists", "a patient with this identifier is already enrolled") from error
    await _care_team(session, patient.id, payload.care_team)
    await record(session, actor, "create", "Patient", str(patient.id), [patient.id])
    return await _reload(session, patient.id)


async def _reload(session: AsyncSession, patient_id: uuid.UUID) -> PatientOut:
    await session.flush()
    patient = await repository.full(session, patient_id)
    assert patient is not None
    return to_out(patient)


async def read_model(session: AsyncSession, actor: Actor, patient_id: uuid.UUID) -> Patient:
    await access.require_patient(session, actor.staff, patient_id)
    patient = await repository.full(session, patient_id)
    if patient is None:
        raise NotFound("not_found", "no such patient")
    await record(session, actor, "read", "Patient", str(patient_id), [patient_id])
    return patient


async def read(session: AsyncSession, actor: Actor, patient_id: uuid.UUID) -> PatientOut:
    return to_out(await read_model(session, actor, patient_id))


async def find_by_identifier(session: AsyncSession, actor: Actor, system: str | None, value: str) -> list[Patient]:
    """The visible patient with this national identifier (FHIR `Patient?identifier=`)."""
    found = await repository.visible_page(
        session, actor.staff.orgnr, access.today(), after=None, limit=2, identifier=value
    )
    found = [p for p in found if system is None or p.identifier_system == system]
    await record(session, actor, "search", "Patient", None, [p.id for p in found])
    return list(found)


async def change(session: AsyncSession, actor: Actor, patient_id: uuid.UUID, patch: PatientPatch) -> PatientOut:
    await access.require_patient(session, actor.staff, patient_id)
    actor.staff.require(Role.admin)
    patient = await repository.full(session, patient_id)
    if patient is None:
        raise NotFound("not_found", "no such patient")
    if patch.name is not None:
        patient.name = patch.name
    if patch.conditions is not None:
        patient.conditions = list(patch.conditions)
    if patch.measurement_plan is not None:
        _plan(patient, patch.measurement_plan)
    if patch.care_team is not None:
        if actor.staff.orgnr not in {e.organisation for e in patch.care_team}:
            raise Forbidden("forbidden", "an admin cannot remove their own organisation from the care team")
        await repository.clear_care_team(session, patient_id)
        await _care_team(session, patient_id, patch.care_team)
    if patch.status == "ended" and patient.status != "ended":
        ended = datetime.now(UTC)
        patient.status, patient.follow_up_ended_at = "ended", ended
        # Readings taken after the follow-up ended belong to nobody.
        for device_id in await devices.device_ids_of_patient(session, patient_id):
            await devices.end_assignments_from(session, device_id, ended, patient_id=patient_id)
    elif patch.status == "active" and patient.status != "active":
        patient.status, patient.follow_up_ended_at = "active", None
    await record(session, actor, "update", "Patient", str(patient_id), [patient_id])
    return await _reload(session, patient_id)


def adherence(plan: Sequence[PlanItem], last: dict[str, datetime], now: datetime) -> list[PlanAdherence]:
    """Whether each planned type has a reading within its interval. Pure."""
    return [
        PlanAdherence(
            type=item.type,
            every_hours=item.every_hours,
            last_reading_at=last.get(item.type),
            on_schedule=item.type in last and now - last[item.type] <= timedelta(hours=item.every_hours),
        )
        for item in plan
    ]


async def list_visible(
    session: AsyncSession,
    actor: Actor,
    *,
    after: uuid.UUID | None,
    limit: int,
    status: str | None = None,
    identifier: str | None = None,
) -> list[PatientSummary]:
    patients = await repository.visible_page(
        session, actor.staff.orgnr, access.today(), after=after, limit=limit, status=status, identifier=identifier
    )
    ids = [p.id for p in patients]
    last = await observations.last_reading_times(session, ids)
    worst = await alerts.worst_levels(session, ids)
    now = datetime.now(UTC)
    summaries = []
    for patient in patients:
        out = to_out(patient)
        times = last.get(patient.id, {})
        summaries.append(
            PatientSummary(
                **out.model_dump(),
                last_reading_at=times,
                adherence=adherence(out.measurement_plan, times, now),
                worst_alert_level=worst.get(patient.id),
            )
        )
    await record(session, actor, "search", "Patient", None, ids)
    return summaries
