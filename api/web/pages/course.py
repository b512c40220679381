"""The patient's course: latest values with their levels, active alerts, the measurement plan
with adherence, and a chart per reading type over 7, 30, 90 or 365 days with the patient's
bands behind the line and the alerts' readings marked on it; for a patient with NEWS2 scores,
a chart of the scores too, each with its parts and a link to the score and its readings."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.api.deps import SessionDep, SettingsDep
from rpm.api.web import charts, present
from rpm.api.web.deps import WebActor
from rpm.api.web.render import page
from rpm.api.web.texts import DEFAULT_LANGUAGE, text
from rpm.audit.service import Actor
from rpm.errors import InvalidInput
from rpm.norway import OSLO
from rpm.organisations import repository as organisations
from rpm.trends import service as trends
from rpm.trends.buckets import Bucket
from rpm.trends.schemas import Trend

router = APIRouter(tags=["staff page"], include_in_schema=False)

RANGES = (7, 30, 90, 365)
DEFAULT_DAYS = 30
RAW_UP_TO_DAYS = 30  # every reading up to a month; daily buckets beyond


def language_of(request: Request) -> str:
    """The signed-in caller's language (as api.web.render.page chooses it)."""
    signed = getattr(request.state, "signed", None)
    return signed.language if signed is not None and signed.language in ("nb", "en") else DEFAULT_LANGUAGE


def texts_of(request: Request) -> charts.Text:
    """The caller's texts, for what the page module itself words (the charts' JSON)."""
    language = language_of(request)
    return lambda key: text(language, key)


def period(days: int, now: datetime) -> tuple[datetime, datetime, Bucket]:
    """[start, now) and the bucket: raw readings back to `days` ago, or whole days in Norway
    (the first one at midnight) when the range is longer than a month."""
    if days <= RAW_UP_TO_DAYS:
        return now - timedelta(days=days), now, "raw"
    first = now.astimezone(OSLO).date() - timedelta(days=days - 1)
    return datetime.combine(first, time(), OSLO), now, "1d"


def chosen(days: int) -> int:
    if days not in RANGES:
        raise InvalidInput("invalid_range", f"days: one of {', '.join(map(str, RANGES))}")
    return days


async def chart_trend(
    session: AsyncSession,
    actor: Actor,
    patient_id: uuid.UUID,
    reading_type: str,
    start: datetime,
    end: datetime,
    bucket: Bucket,
) -> Trend:
    """The trend a chart draws. A device that reports every few minutes can send more readings
    than one chart takes (`too_many_points`): its chart shows hourly buckets instead of failing
    the whole page."""
    code = charts.type_code(reading_type)
    try:
        return await trends.trend(session, actor, patient_id, code=code, start=start, end=end, bucket=bucket)
    except InvalidInput as error:
        if error.code != "too_many_points":
            raise
        return await trends.trend(session, actor, patient_id, code=code, start=start, end=end, bucket="1h")


async def course_charts(
    session: AsyncSession,
    actor: Actor,
    patient_id: uuid.UUID,
    types: list[str],
    days: int,
    now: datetime,
    t: charts.Text,
    *,
    scored: bool,
) -> list[charts.Chart]:
    """A chart of each reading type, with the patient's alerts' readings of the period marked;
    last, when the patient has NEWS2 scores (`scored`), the chart of those."""
    start, end, bucket = period(days, now)
    alerts = await trends.alerts_in_period(session, actor, patient_id, start=start, end=end)
    marks = [
        charts.Mark(code=a.code, at=e.effective_at, value=e.value, level=a.level, alert=str(a.id))
        for a in alerts
        if a.code is not None
        for e in a.evidence
        if e.value is not None
    ]
    found = []
    for reading_type in charts.type_order(types):
        trend = await chart_trend(session, actor, patient_id, reading_type, start, end, bucket)
        found.append(charts.build(trend, reading_type, marks, t, days=days))
    if scored:
        trend = await chart_trend(session, actor, patient_id, charts.NEWS2, start, end, bucket)
        chart = charts.build(trend, charts.NEWS2, marks, t, days=days, summary_key="score.chart_summary")
        chart.note = t("score.chart_note")
        if chart.bucket == "raw" and not chart.empty:
            scores = await trends.scores(session, actor, patient_id, start=start, end=end)
            charts.with_scores(chart, scores, lambda s: score_page(patient_id, s.observation), t)
        found.append(chart)
    return found


def score_page(patient_id: uuid.UUID, observation: str) -> str:
    """The page of one of the patient's Observations ("Observation/<id>"): a NEWS2 score with
    its parts and readings (pages.observation)."""
    return f"/patients/{patient_id}/observations/{observation.removeprefix('Observation/')}"


def _charts_context(patient_id: uuid.UUID, days: int, found: list[charts.Chart]) -> dict[str, Any]:
    return {"patient_id": patient_id, "days": days, "ranges": RANGES, "charts": found, "raw": days <= RAW_UP_TO_DAYS}


@router.get("/patients/{patient_id}", response_class=HTMLResponse)
async def course(
    request: Request,
    patient_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    actor: WebActor,
    days: Annotated[int, Query()] = DEFAULT_DAYS,
) -> HTMLResponse:
    """The whole page; `?days=` chooses the charts' range (a shareable address)."""
    days = chosen(days)
    now = datetime.now(UTC)
    board = await trends.dashboard(
        session, actor, patient_id, now=now, grace=timedelta(hours=settings.missing_grace_hours)
    )
    found = await course_charts(
        session,
        actor,
        patient_id,
        [v.type for v in board.latest],
        days,
        now,
        texts_of(request),
        scored=board.news2 is not None,
    )
    known = await organisations.by_orgnrs(session, [c.organisation for c in board.patient.care_team])
    return page(
        request,
        "course.html",
        board=board,
        patient=board.patient,
        organisation_names={orgnr: o.name for orgnr, o in known.items()},
        present=present,
        unit=charts.unit,
        score_page=score_page,
        today=now.astimezone(OSLO).date(),
        **_charts_context(patient_id, days, found),
    )


@router.get("/patients/{patient_id}/charts", response_class=HTMLResponse)
async def course_charts_fragment(
    request: Request,
    patient_id: uuid.UUID,
    session: SessionDep,
    actor: WebActor,
    days: Annotated[int, Query()] = DEFAULT_DAYS,
) -> HTMLResponse:
    """The charts section alone, for another range (htmx swaps it and pushes ?days= to the
    address bar)."""
    days = chosen(days)
    board_types = await trends.reading_types_of(session, actor, patient_id)
    scored = await trends.has_scores(session, actor, patient_id)
    found = await course_charts(
        session, actor, patient_id, board_types, days, datetime.now(UTC), texts_of(request), scored=scored
    )
    return page(request, "_course_charts.html", **_charts_context(patient_id, days, found))
