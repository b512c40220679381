"""Choosing a patient by what staff know of them: rpm.patients.service.search and of_ids.

Only the caller's active patients are found, by a part of the name (any case, wildcards taken
literally) or by the whole identifier; each search is audited for exactly the patients found.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select

from rpm.access.staff import Role, Staff
from rpm.audit.models import AuditRecord
from rpm.audit.service import Actor
from rpm.patients import service
from rpm.patients.schemas import PatientCreate, PatientPatch
from tests.api.helpers import enrolment, new_organisation


def admin_of(orgnr: str) -> Actor:
    staff = Staff(sub="admin-1", name=None, hpr=None, orgnr=orgnr, roles=frozenset({Role.admin}))
    return Actor(staff=staff, request_id=f"req-{uuid.uuid4().hex[:8]}")


async def enrolled(session, actor: Actor, orgnr: str, name: str) -> uuid.UUID:
    patient = await service.enrol(session, actor, PatientCreate.model_validate(enrolment(orgnr, name=name)))
    return patient.id


async def audited(session, actor: Actor) -> list[uuid.UUID]:
    rows = await session.scalars(
        select(AuditRecord.patient_id).where(AuditRecord.request_id == actor.request_id, AuditRecord.action == "search")
    )
    return sorted(p for p in rows if p is not None)


async def test_search_by_name_part_or_identifier_among_the_callers_active_patients(session):
    orgnr, other = await new_organisation(session), await new_organisation(session)
    admin = admin_of(orgnr)
    kari = await enrolled(session, admin, orgnr, "Kari Nordmann")
    ola = await enrolled(session, admin, orgnr, "Ola Nordmann")
    await enrolled(session, admin, orgnr, "Per 100% Hansen")
    ended = await enrolled(session, admin, orgnr, "Kari Ended")
    await service.change(session, admin, ended, PatientPatch(status="ended"))
    await enrolled(session, admin_of(other), other, "Kari Elsewhere")

    asking = admin_of(orgnr)
    found = await service.search(session, asking, "nordMANN")
    assert [p.name for p in found] == ["Kari Nordmann", "Ola Nordmann"]
    assert await audited(session, asking) == sorted([kari, ola])

    assert [p.name for p in await service.search(session, admin_of(orgnr), "kari")] == ["Kari Nordmann"]
    by_number = found[1].identifier
    assert [p.id for p in await service.search(session, admin_of(orgnr), by_number)] == [ola]
    # A wildcard is a character like any other.
    assert [p.name for p in await service.search(session, admin_of(orgnr), "0%")] == ["Per 100% Hansen"]
    assert await service.search(session, admin_of(orgnr), "_") == []
    nothing = admin_of(orgnr)
    assert await service.search(session, nothing, "  ") == []
    assert await service.search(session, nothing, "a\x00") == []
    assert await audited(session, nothing) == []
    assert len(await service.search(session, admin_of(orgnr), "a", limit=1)) == 1


async def test_of_ids_gives_only_the_patients_the_caller_follows(session):
    orgnr, other = await new_organisation(session), await new_organisation(session)
    mine = await enrolled(session, admin_of(orgnr), orgnr, "Berit")
    theirs = await enrolled(session, admin_of(other), other, "Anne")
    asking = admin_of(orgnr)
    found = await service.of_ids(session, asking, [theirs, mine, uuid.uuid4()])
    assert [p.id for p in found] == [mine]
    assert await audited(session, asking) == [mine]
    assert await service.of_ids(session, admin_of(orgnr), []) == []
