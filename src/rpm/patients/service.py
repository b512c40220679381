"""Enrolment: creating, reading, changing and ending a patient's follow-up."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

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
from rpm.patients.plan import plan_adherence, ratio
from rpm.patients.schemas import (
    Adherence,
    CareTeamEntry,
    PatientCreate,
    PatientOut,
    PatientPatch,
    PatientSort,
    PatientSummary,
    PlanItem,
    PlanStatus,
    Priority,
)

PRIORITIES: tuple[Priority, ...] = ("red", "yellow", "missing", "green")  # by repository.PRIORITY_RANK


def to_out(patient: Patient) -> PatientOut:
    """The patient with care team (and each member's organisation) and plan loaded."""
    return PatientOut.model_validate(patient)


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


async def enrol(session: AsyncSession, actor: Actor, payload: PatientCreate, start_period_days: int = 0) -> PatientOut:
    """`start_period_days`: the start period when the payload names none (RPM_START_PERIOD_DAYS)."""
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
        start_period_days=(start_period_days if payload.start_period_days is None else payload.start_period_days)
        or None,
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
    patient = await repository.visible_by_identifier(session, actor.staff.orgnr, access.today(), value)
    found = [patient] if patient is not None and system in (None, patient.identifier_system) else []
    await record(session, actor, "search", "Patient", None, [p.id for p in found])
    return found


async def search(session: AsyncSession, actor: Actor, query: str, *, limit: int = 20) -> list[PatientOut]:
    """The caller's active patients whose identifier is `query` or whose name contains it, by
    name: choosing a patient by what staff know of them (the staff page's device assignment)."""
    query = query.strip()
    if not query or "\x00" in query:
        return []
    found = await repository.visible_matching(session, actor.staff.orgnr, access.today(), query[:200], limit=limit)
    await record(session, actor, "search", "Patient", None, [p.id for p in found])
    return [to_out(p) for p in found]


async def of_ids(session: AsyncSession, actor: Actor, patient_ids: Sequence[uuid.UUID]) -> list[PatientOut]:
    """Those of the patients the caller follows, by name: the names behind ids another list
    gave (the devices a page shows, say)."""
    found = await repository.visible_many(session, actor.staff.orgnr, access.today(), patient_ids)
    await record(session, actor, "search", "Patient", None, [p.id for p in found])
    return [to_out(p) for p in found]


async def change(session: AsyncSession, actor: Actor, patient_id: uuid.UUID, patch: PatientPatch) -> PatientOut:
    await access.require_care_team(session, actor.staff, patient_id)
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


class _With:
    """A patient with more attributes, for a schema built from attributes in one pass."""

    def __init__(self, patient: Patient, **more: Any) -> None:
        self._patient = patient
        self.__dict__.update(more)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._patient, name)


def _plan_statuses(
    rows: Sequence[repository.PlanRow],
    taken: dict[tuple[uuid.UUID, str], list[datetime]],
    enrolled_at: datetime,
    now: datetime,
) -> list[PlanStatus]:
    statuses = []
    for row in rows:
        times = taken.get((row.patient_id, row.reading_type), [])
        received, expected = plan_adherence(row.every_hours, times, enrolled_at, now)
        statuses.append(
            PlanStatus(
                type=row.reading_type,
                every_hours=row.every_hours,
                last_reading_at=row.last_reading_at,
                missing=row.missing,
                received=received,
                expected=expected,
            )
        )
    return statuses


def _total(statuses: Sequence[PlanStatus]) -> Adherence:
    received, expected = sum(p.received for p in statuses), sum(p.expected for p in statuses)
    return Adherence(received=received, expected=expected, ratio=ratio(received, expected))


async def plan_of(
    session: AsyncSession, patient: Patient, now: datetime, grace: timedelta
) -> tuple[list[PlanStatus], Adherence]:
    """The patient's plan items with their last reading, whether overdue, and adherence."""
    rows = await repository.plan_status(session, [patient.id], now, grace)
    taken = await repository.plan_readings(session, [patient.id], now)
    statuses = _plan_statuses(rows, taken, patient.created_at, now)
    return statuses, _total(statuses)


async def worklist(
    session: AsyncSession,
    actor: Actor,
    *,
    now: datetime,
    grace: timedelta,
    sort: PatientSort = "priority",
    after: tuple[Any, ...] | None = None,
    limit: int = 50,
    status: str | None = None,
    condition: str | None = None,
    priority: Priority | None = None,
    organisation: str | None = None,
    snoozed: Literal["hide", "include", "only"] = "include",
    assignee: str | None = None,
) -> list[tuple[repository.WorklistKey, PatientSummary]]:
    """The caller's patients, each with their alerts, plan and adherence, in worklist order,
    with the key that placed them there (a page's cursor is made of it: the summary is read a
    moment later and a reading may have arrived in between). `snoozed` "hide": the alerts
    snoozed at `now` count for nothing (neither priority nor summary), as in the alert queue;
    "only": only patients with such an alert. `assignee`: only patients with an active alert
    assigned to that staff member (a sub).

    Returns up to `limit` + 1: the last one, when there, only tells the page there is more;
    it is neither shown nor audited."""
    keys = await repository.worklist_page(
        session,
        actor.staff.orgnr,
        access.today(),
        now,
        grace,
        sort=sort,
        after=after,
        limit=limit + 1,
        status=status,
        condition=condition,
        priority=priority,
        organisation=organisation,
        snoozed=snoozed,
        assignee=assignee,
    )
    ids = [k.id for k in keys]
    patients = {p.id: p for p in await repository.full_many(session, ids)}
    active = await alerts.active_summaries(session, ids, awake_at=now if snoozed == "hide" else None)
    newest = (
        {k.id: k.last_reading_at for k in keys if k.last_reading_at}
        if sort.endswith("last_reading")
        else await observations.newest_reading_times(session, ids)
    )
    plans: dict[uuid.UUID, list[repository.PlanRow]] = {}
    for row in await repository.plan_status(session, ids, now, grace):
        plans.setdefault(row.patient_id, []).append(row)
    taken = await repository.plan_readings(session, ids, now)
    summaries: list[tuple[repository.WorklistKey, PatientSummary]] = []
    for key in keys:
        patient = patients[key.id]
        statuses = _plan_statuses(plans.get(key.id, []), taken, patient.created_at, now)
        summary = active.get(key.id)
        times = {row.reading_type: row.last_reading_at for row in plans.get(key.id, []) if row.last_reading_at}
        summaries.append(
            (
                key,
                PatientSummary.model_validate(
                    _With(
                        patient,
                        priority=PRIORITIES[key.priority],
                        worst_alert_level=summary.worst if summary else None,
                        active_alerts=summary.active if summary else 0,
                        unacknowledged_since=key.unacknowledged_since,
                        newest_alert=summary.newest if summary else None,
                        action=summary.most_urgent.action if summary else None,
                        last_reading=newest.get(key.id),
                        last_reading_at=times,
                        plan=statuses,
                        adherence=_total(statuses),
                    )
                ),
            )
        )
    await record(session, actor, "search", "Patient", None, ids[:limit])
    return summaries
