"""Reading and searching stored Observations (FHIR read and search), and marking one entered
in error. Storing them is the ingest pipeline's (rpm.pipeline)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access import service as access
from rpm.access.repository import visible_patient_ids
from rpm.alerts import service as alerts
from rpm.audit.service import Actor, record
from rpm.errors import Conflict, NotFound
from rpm.observations import repository
from rpm.observations.models import Observation
from rpm.observations.schemas import EnteredInErrorOut

log = logging.getLogger("rpm.ingest")

# The reason a NEWS2 score carries when it is marked with one of the readings it scored.
INPUT_IN_ERROR = "an input reading was entered in error: "


async def read_observation(session: AsyncSession, actor: Actor, observation_id: uuid.UUID) -> dict[str, Any]:
    observation = await repository.by_id(session, observation_id)
    if observation is None:
        raise NotFound("not_found", "no such Observation")
    try:
        await access.require_patient(session, actor.staff, observation.patient_id)
    except NotFound:
        raise NotFound("not_found", "no such Observation") from None
    await record(session, actor, "read", "Observation", str(observation_id), [observation.patient_id])
    return observation.resource


async def search_observations(
    session: AsyncSession,
    actor: Actor,
    *,
    patient_id: uuid.UUID | None,
    codes: Collection[str] | None,
    dates: Sequence[repository.DateBound],
    newest_first: bool,
    after: repository.SearchCursor | None,
    limit: int,
) -> list[Observation]:
    """Observations of one patient, or of every patient the caller may see. `codes=None`:
    any code; an empty list matches nothing.

    Returns up to `limit` + 1: the last one, when there, only tells the page there is more;
    it is neither shown nor audited."""
    if patient_id is not None:
        await access.require_patient(session, actor.staff, patient_id)
    found: list[Observation] = []
    if codes is None or codes:
        found = await repository.search(
            session,
            patients=patient_id or visible_patient_ids(actor.staff.orgnr, access.today()),
            codes=codes,
            dates=dates,
            newest_first=newest_first,
            after=after,
            limit=limit + 1,
            now=datetime.now(UTC),
        )
    await record(
        session,
        actor,
        "search",
        "Observation",
        None,
        sorted({o.patient_id for o in found[:limit]}) or ([patient_id] if patient_id else []),
    )
    return found


async def invalidate(
    session: AsyncSession, actor: Actor, observation_id: uuid.UUID, reason: str, now: datetime
) -> EnteredInErrorOut:
    """Mark a reading entered in error (the patient forgot the cuff, a child stood on the
    scale). It keeps its history: the FHIR facade still serves it, with status
    `entered-in-error`; trends, the dashboard, the worklist and the rules leave it out from now
    on (an invalid reading is no measurement done either).

    What was derived from it goes with it: a blood-pressure panel's pulse (the same cuff
    measurement, with the same reason; the pulse alone can be marked without the panel) and a
    NEWS2 score that scored it, found by their `derivedFrom`, with the reason "an input reading
    was entered in error: ..." (a score is no measurement of its own: it stands or falls with
    its readings). The score is not computed again without it. Then the patient's active
    alerts that rested on these readings are judged again
    (rpm.alerts.service.resolve_entered_in_error): a NEWS2 alert whose every score is now
    invalid is resolved.

    404 for an Observation the caller may not see; 409 `already_invalidated` when it was
    marked before. One audit record per Observation marked."""
    observation = await repository.locked(session, observation_id)
    if observation is None or not await access.may_see_patient(session, actor.staff, observation.patient_id):
        raise NotFound("not_found", "no such Observation")
    await access.require_care_team(session, actor.staff, observation.patient_id)
    if observation.invalidated_at is not None:
        raise Conflict("already_invalidated", "the reading is already marked entered in error")
    marked = [observation_id, *await repository.derived_closure(session, observation_id)]

    def reason_of(found: Observation) -> str:
        # What the service derived (no device: a NEWS2 score) fell with its input; the reading
        # marked, and a panel's pulse (the same cuff measurement), carry the reason as written.
        return reason if found.id == observation_id or found.device_id is not None else INPUT_IN_ERROR + reason

    await repository.mark_invalidated(
        session, marked, at=now, by_sub=actor.staff.sub, by_name=actor.staff.name, reason_of=reason_of
    )
    for oid in marked:
        await record(session, actor, "invalidate", "Observation", str(oid), [observation.patient_id])
    resolved = await alerts.resolve_entered_in_error(session, actor, observation.patient_id, marked, reason, now)
    return EnteredInErrorOut(
        observation=f"Observation/{observation_id}",
        invalidated_at=now,
        by=actor.staff.sub,
        by_name=actor.staff.name,
        reason=reason,
        also_invalidated=[f"Observation/{oid}" for oid in marked[1:]],
        alerts_resolved=resolved,
    )
