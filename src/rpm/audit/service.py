"""Writing the audit trail, in the caller's transaction so a change and its record are one."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access import service as access
from rpm.access.repository import followed_patient_ids
from rpm.access.staff import Role, Staff
from rpm.audit import repository
from rpm.audit.schemas import CSV_COLUMNS, AuditOut


@dataclass(frozen=True)
class Actor:
    """The staff member and the request an action belongs to."""

    staff: Staff
    request_id: str | None = None


_RECORD = text(
    """
    insert into audit_records (actor_sub, actor_name, actor_hpr, actor_org, action, resource_type, resource_id,
        patient_id, request_id)
    select :actor_sub, :actor_name, :actor_hpr, :actor_org, :action, :resource_type, :resource_id, p.id, :request_id
    from unnest(cast(:patient_ids as uuid[])) with ordinality as p(id, n)
    order by p.n
    returning id
    """
)


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    resource_type: str,
    resource_id: str | None,
    patient_ids: Iterable[uuid.UUID | None],
) -> list[int]:
    """One record per patient touched (a list or search touches many), in one statement; the
    records' ids, in the patients' order."""
    patients = list(patient_ids)
    if not patients:
        return []
    ids = await session.scalars(
        _RECORD,
        {
            "actor_sub": actor.staff.sub,
            "actor_name": actor.staff.name,
            "actor_hpr": actor.staff.hpr,
            "actor_org": actor.staff.orgnr,
            "action": action,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "patient_ids": patients,
            "request_id": actor.request_id,
        },
    )
    return sorted(ids)  # ids follow the insert's order (an identity column)


async def history(
    session: AsyncSession,
    actor: Actor,
    *,
    patient_id: uuid.UUID | None = None,
    actor_sub: str | None = None,
    action: str | None = None,
    at_from: datetime | None = None,
    at_to: datetime | None = None,
    after: int | None = None,
    limit: int = 50,
) -> list[AuditOut]:
    """Who read or changed the data of the organisation's patients (admins only), newest first,
    whichever organisation it was.

    Returns up to `limit` + 1: the last one, when there, only tells the page there is more;
    it is neither shown nor audited."""
    actor.staff.require(Role.admin)
    if patient_id is not None:
        await access.require_care_team(session, actor.staff, patient_id)
    rows = await repository.page(
        session,
        followed_patient_ids(actor.staff.orgnr, access.today()),
        patient_id=patient_id,
        actor_sub=actor_sub,
        action=action,
        at_from=at_from,
        at_to=at_to,
        after=after,
        limit=limit + 1,
    )
    found = [AuditOut.model_validate(r) for r in rows]
    await record(session, actor, "search", "AuditTrail", None, sorted({r.patient for r in found[:limit] if r.patient}))
    return found


async def patient_history(
    session: AsyncSession,
    actor: Actor,
    patient_id: uuid.UUID,
    *,
    after: tuple[int, int] | None = None,
    limit: int | None = 50,
) -> tuple[list[AuditOut], int]:
    """One patient's full access history, oldest first: every organisation's reads and changes,
    the record a patient may ask to see. An admin of the patient's care team reads it, and the
    reading is itself recorded.

    The history ends with the record of the reading that began it: `until`, returned with the
    records. Later pages (`after` = (last id shown, until)) keep to it, or each page's own
    record would lengthen the history forever. With `limit=None`, all of it; otherwise up to
    `limit` + 1 records, the last only saying there is more."""
    actor.staff.require(Role.admin)
    await access.require_care_team(session, actor.staff, patient_id)
    (this_reading,) = await record(session, actor, "read", "AuditTrail", str(patient_id), [patient_id])
    last_shown, until = after if after is not None else (None, this_reading)
    found: list[AuditOut] = []
    while True:
        chunk = EXPORT_CHUNK if limit is None else limit + 1
        rows = await repository.page(
            session, [patient_id], patient_id=patient_id, after=last_shown, until=until, newest_first=False, limit=chunk
        )
        found += [AuditOut.model_validate(r) for r in rows]
        if limit is not None or len(rows) < chunk:
            return found, until
        last_shown = rows[-1].id


EXPORT_CHUNK = 5000


def as_csv(records: Sequence[AuditOut]) -> str:
    """The records as CSV (RFC 4180), one line each. A cell that a spreadsheet would run as a
    formula (from a name in a token, say) is prefixed with an apostrophe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for item in records:
        values = item.model_dump(mode="json")
        writer.writerow([_cell(values[column]) for column in CSV_COLUMNS])
    return buffer.getvalue()


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
