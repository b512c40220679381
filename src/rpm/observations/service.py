"""Reading and searching stored Observations (FHIR read and search). Storing them is the
ingest pipeline's (rpm.pipeline)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access import service as access
from rpm.access.repository import visible_patient_ids
from rpm.audit.service import Actor, record
from rpm.errors import NotFound
from rpm.observations import repository
from rpm.observations.models import Observation

log = logging.getLogger("rpm.ingest")


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
