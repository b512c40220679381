"""A patient's course: the dashboard and trends."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from rpm.api.deps import ActorDep, SessionDep, SettingsDep
from rpm.errors import InvalidInput
from rpm.norway import plausible_time
from rpm.trends import service
from rpm.trends.buckets import OSLO, Bucket
from rpm.trends.schemas import Dashboard, Trend

router = APIRouter(prefix="/api/v1/patients", tags=["course"])
DEFAULT_PERIOD = timedelta(days=30)


def _moment(name: str, text: str, *, end: bool) -> datetime:
    """A date with a time and offset, or a day: the start of the day in Norway, or for `to`
    the end of it."""
    day: date | None = None
    try:
        day = date.fromisoformat(text)
        moment = datetime.combine(day, time(), OSLO)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput("invalid_period", f"{name}: a date (2026-11-01) or a time with offset") from None
    if moment.tzinfo is None:
        raise InvalidInput("invalid_period", f"{name}: a time needs an offset (Z or +01:00)")
    try:
        plausible_time(moment)
    except ValueError as error:
        raise InvalidInput("invalid_period", f"{name}: {error}") from None
    # Local arithmetic: the next midnight in Norway, 23 or 25 hours on if the clocks change.
    return moment + timedelta(days=1) if end and day is not None else moment


@router.get("/{patient_id}/dashboard", response_model=Dashboard)
async def dashboard(patient_id: uuid.UUID, session: SessionDep, actor: ActorDep, settings: SettingsDep) -> Dashboard:
    """The latest value of each type with its level, active alerts, the thresholds in force,
    the plan with adherence, and 14 days of points per quantity for sparklines."""
    return await service.dashboard(
        session, actor, patient_id, now=datetime.now(UTC), grace=timedelta(hours=settings.missing_grace_hours)
    )


@router.get("/{patient_id}/trends", response_model=Trend)
async def trends(
    patient_id: uuid.UUID,
    session: SessionDep,
    actor: ActorDep,
    code: Annotated[str, Query(description="LOINC code: a reading type's, or a blood pressure's component")],
    start: Annotated[
        str | None, Query(alias="from", description="a time with offset, or a day (its start in Norway)")
    ] = None,
    end: Annotated[
        str | None, Query(alias="to", description="a time with offset, or a day (its end in Norway); default now")
    ] = None,
    bucket: Bucket = "1d",
) -> Trend:
    """Count, min, max and mean per bucket in the canonical unit; days and weeks begin at
    midnight in Norway (a day is 23 or 25 hours when daylight saving time begins or ends); the
    patient's bands over the period, with each change. Default period: the last 30 days."""
    period_end = _moment("to", end, end=True) if end else datetime.now(UTC)
    period_start = _moment("from", start, end=False) if start else period_end - DEFAULT_PERIOD
    return await service.trend(session, actor, patient_id, code=code, start=period_start, end=period_end, bucket=bucket)
