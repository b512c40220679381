"""The patient's course: the dashboard and trends, in the canonical units, judged by the rules."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access import service as access
from rpm.alerts import repository as alerts_repository
from rpm.alerts import service as alerts
from rpm.alerts.models import AlertStatus
from rpm.alerts.schemas import EnteredInError, EvidenceItem
from rpm.audit.service import Actor, record
from rpm.errors import InvalidInput, NotFound
from rpm.fhir.codes import CODES_BY_LOINC, READING_TYPE_OF_CODE, READING_TYPES
from rpm.fhir.news2 import score_of_resource
from rpm.observations import repository as observations
from rpm.observations.models import Observation
from rpm.patients import repository as patients
from rpm.patients import service as patient_service
from rpm.rules import early_warning, news2
from rpm.rules import repository as rules
from rpm.rules.models import ThresholdOverride
from rpm.rules.schemas import EffectiveThresholdsOut
from rpm.rules.service import thresholds_for
from rpm.rules.templates import BODY_WEIGHT
from rpm.rules.threshold import interpret
from rpm.rules.thresholds import EffectiveThresholds, effective_thresholds
from rpm.trends import repository
from rpm.trends.buckets import OSLO, TRUNCATE, Bucket, bucket_count, bucket_end
from rpm.trends.schemas import (
    AlertMarks,
    BandPeriod,
    Dashboard,
    LatestScore,
    LatestValue,
    ObservationDetail,
    ReadingPoint,
    Sparkline,
    SparkPoint,
    StoredReading,
    Trend,
    TrendBucket,
    TrendSeries,
)

SPARKLINE_DAYS = 14
MAX_BUCKETS = 10_000  # buckets in one trend
MAX_READINGS = 10_000  # raw readings in one trend
MAX_MARKS = 5_000  # alerts' triggering readings in one period

# What a trend's `code` asks for: the stored code, and the quantities to show. A blood
# pressure panel shows both components; a component code shows that one. The NEWS2 total, the
# score the service stores (rules.early_warning), is a quantity of its own.
TREND_CODES: dict[str, tuple[str, tuple[str, ...]]] = {
    **{t.code: (t.code, tuple(t.components[k].code for k in t.components)) for t in READING_TYPES.values()},
    **{q.code: (t.code, (q.code,)) for t in READING_TYPES.values() if t.is_panel for q in t.components.values()},
    news2.NEWS2_TOTAL_CODE: (news2.NEWS2_TOTAL_CODE, (news2.NEWS2_TOTAL_CODE,)),
}


def quantity_of(code: str) -> tuple[str, str]:
    """A trend quantity's display and canonical unit."""
    if code == news2.NEWS2_TOTAL_CODE:
        return news2.NEWS2_TOTAL_DISPLAY, early_warning.UNIT
    return CODES_BY_LOINC[code].display, CODES_BY_LOINC[code].unit


def score_of(row: repository.LatestScore) -> LatestScore:
    result = score_of_resource(row.resource)
    return LatestScore(
        observation=f"Observation/{row.id}",
        effective_at=row.effective_at.astimezone(OSLO),
        total=result.total,
        level=result.level.value,
        parameters=result.parameters,
        missing=list(result.missing),
        spo2_scale=result.spo2_scale,
    )


def _latest_value(row: repository.Latest, thresholds: EffectiveThresholds) -> LatestValue:
    values = row.components if row.components is not None else {row.code: row.value or 0.0}
    judgements = interpret(values, thresholds.at(row.effective_at))  # as the reading was judged
    worst = max(judgements.values(), key=lambda j: j.level.rank)
    return LatestValue(
        type=READING_TYPE_OF_CODE[row.code],
        code=row.code,
        observation=f"Observation/{row.id}",
        effective_at=row.effective_at.astimezone(OSLO),
        value=row.value,
        components=row.components,
        unit=row.unit,
        level=worst.level.value,
        interpretation=worst.interpretation,
    )


def _sparklines(points: Sequence[repository.Point]) -> list[Sparkline]:
    series: dict[str, list[SparkPoint]] = {}
    for point in points:
        series.setdefault(point.code, []).append(SparkPoint(at=point.effective_at.astimezone(OSLO), value=point.value))
    lines = []
    for reading_type in READING_TYPES.values():  # in the table's order, components in theirs
        for quantity in reading_type.components.values():
            if quantity.code in series:
                lines.append(
                    Sparkline(
                        type=reading_type.name, code=quantity.code, unit=quantity.unit, points=series[quantity.code]
                    )
                )
    return lines


async def dashboard(
    session: AsyncSession, actor: Actor, patient_id: uuid.UUID, *, now: datetime, grace: timedelta
) -> Dashboard:
    """The latest value of each type with its level, active alerts, thresholds, the plan with
    adherence, and 14 days of points per quantity."""
    await access.require_patient(session, actor.staff, patient_id)
    patient = await patients.full(session, patient_id)
    if patient is None:
        raise NotFound("not_found", "no such patient")
    thresholds = (await thresholds_for(session, [patient_id]))[patient_id]
    latest = await repository.latest(session, patient_id, list(READING_TYPE_OF_CODE))
    active = await alerts_repository.active_of(session, patient_id)
    plan, adherence = await patient_service.plan_of(session, patient, now, grace)
    points = await repository.points_since(session, patient_id, now - timedelta(days=SPARKLINE_DAYS))
    score = await repository.latest_score(session, patient_id, news2.NEWS2_TOTAL_CODE)
    await record(session, actor, "read", "Dashboard", str(patient_id), [patient_id])
    return Dashboard(
        patient=patient_service.to_out(patient),
        latest=[_latest_value(row, thresholds) for row in latest],
        active_alerts=await alerts.items(session, active),
        thresholds=EffectiveThresholdsOut.model_validate(thresholds.as_dict()),
        plan=plan,
        adherence=adherence,
        sparklines=_sparklines(points),
        news2=score_of(score) if score is not None else None,
    )


def band_periods(
    conditions: Sequence[str], history: Sequence[ThresholdOverride], code: str, start: datetime, end: datetime
) -> list[BandPeriod]:
    """The bands of `code` in force over [start, end): the templates until the first override,
    then each version of the overrides from its change. (The patient's current conditions choose
    the templates throughout: changes of conditions are not versioned.) The NEWS2 total's are
    the chart's, the same for every patient and never overridden."""
    if code == news2.NEWS2_TOTAL_CODE:
        return [
            BandPeriod(
                from_=start.astimezone(OSLO),
                to=end.astimezone(OSLO),
                version=0,
                source="template",
                yellow=dict(news2.TOTAL_BANDS["yellow"]),
                red=dict(news2.TOTAL_BANDS["red"]),
            )
        ]
    versions: list[tuple[datetime | None, EffectiveThresholds]] = [(None, effective_thresholds(conditions))]
    versions += [(o.changed_at, effective_thresholds(conditions, o.bands, o.weight_gain, o.version)) for o in history]
    periods = []
    for number, (since, thresholds) in enumerate(versions):
        until = versions[number + 1][0] if number + 1 < len(versions) else None
        period_start = start if since is None else max(start, since)
        period_end = end if until is None else min(end, until)
        if period_start >= period_end:
            continue
        bands = thresholds.bands.get(code)
        periods.append(
            BandPeriod(
                from_=period_start.astimezone(OSLO),
                to=period_end.astimezone(OSLO),
                version=thresholds.version,
                source="override" if code in thresholds.overridden else "template",
                yellow=bands.yellow.as_dict() if bands else {},
                red=bands.red.as_dict() if bands else {},
            )
        )
    return periods


async def trend(
    session: AsyncSession,
    actor: Actor,
    patient_id: uuid.UUID,
    *,
    code: str,
    start: datetime,
    end: datetime,
    bucket: Bucket,
) -> Trend:
    """Count, min, max and mean per bucket of each quantity of `code`, with the patient's bands
    over the period."""
    await access.require_patient(session, actor.staff, patient_id)
    if code not in TREND_CODES:
        raise InvalidInput("unknown_code", f"code: one of {sorted(TREND_CODES)}")
    if start >= end:
        raise InvalidInput("invalid_period", "from: must be before to")
    if bucket_count(start, end, bucket) > MAX_BUCKETS:
        raise InvalidInput(
            "too_many_buckets", f"the period has more than {MAX_BUCKETS} buckets; choose a larger bucket"
        )
    stored_code, quantities = TREND_CODES[code]
    if bucket == "raw":
        # A panel gives a point per component: MAX_READINGS readings of a blood pressure are twice
        # as many points.
        most = MAX_READINGS * len(TREND_CODES[stored_code][1])
        points = await repository.raw_points(session, patient_id, stored_code, start, end, most + 1)
        if len(points) > most:
            raise InvalidInput(
                "too_many_points", f"more than {MAX_READINGS} readings in the period; choose a bucket such as 1d"
            )
        by_quantity: dict[str, list[TrendBucket]] = {}
        for p in points:
            at = p.effective_at.astimezone(OSLO)
            by_quantity.setdefault(p.code, []).append(
                TrendBucket(start=at, end=at, count=1, min=p.value, max=p.value, mean=p.value)
            )
    else:
        by_quantity = {}
        for a in await repository.buckets(session, patient_id, stored_code, start, end, TRUNCATE[bucket]):
            by_quantity.setdefault(a.code, []).append(
                TrendBucket(
                    start=a.start.astimezone(OSLO),
                    end=bucket_end(a.start, bucket),
                    count=a.readings,
                    min=a.min,
                    max=a.max,
                    mean=round(a.mean, 3),
                )
            )
    patient = await patients.full(session, patient_id)
    assert patient is not None
    history = await rules.override_history(session, patient_id)
    series = []
    for code_shown in quantities:
        periods = band_periods(patient.conditions, history, code_shown, start, end)
        display, unit = quantity_of(code_shown)
        series.append(
            TrendSeries(
                code=code_shown,
                display=display,
                unit=unit,
                bands={"yellow": periods[-1].yellow, "red": periods[-1].red} if periods else {},
                band_periods=periods,
                buckets=by_quantity.get(code_shown, []),
            )
        )
    await record(session, actor, "read", "Trend", f"{patient_id}/{code}", [patient_id])
    return Trend(
        code=code,
        unit=series[0].unit,
        bucket=bucket,
        from_=start.astimezone(OSLO),
        to=end.astimezone(OSLO),
        bands=series[0].bands,
        buckets=series[0].buckets,
        series=series,
    )


def quantity_of_rule(rule: str) -> str | None:
    """The code of the quantity an alert's readings are of: "threshold:8480-6:high" is systolic
    pressure, the weight-gain trend body weight, NEWS2 its stored total; a missing measurement
    has none."""
    kind, _, rest = rule.partition(":")
    if kind == "threshold":
        return rest.partition(":")[0]
    if rule == "trend:weight-gain":
        return BODY_WEIGHT
    if rule == early_warning.RULE:
        return news2.NEWS2_TOTAL_CODE
    return None


async def alerts_in_period(
    session: AsyncSession, actor: Actor, patient_id: uuid.UUID, *, start: datetime, end: datetime
) -> list[AlertMarks]:
    """The patient's alerts (any status) with their triggering readings taken in [start, end),
    in the order of their first such reading: what a chart of the period marks. At most
    MAX_MARKS readings, the oldest."""
    await access.require_patient(session, actor.staff, patient_id)
    found: dict[uuid.UUID, AlertMarks] = {}
    for row in await repository.alert_evidence(session, patient_id, start, end, MAX_MARKS):
        alert = found.get(row.alert_id)
        if alert is None:
            alert = found[row.alert_id] = AlertMarks(
                id=row.alert_id,
                rule=row.rule,
                code=quantity_of_rule(row.rule),
                level="red" if row.level == "red" else "yellow",
                status=AlertStatus(row.status),
                opened_at=row.opened_at.astimezone(OSLO),
                evidence=[],
            )
        alert.evidence.append(
            EvidenceItem(
                observation=f"Observation/{row.observation_id}",
                value=row.value,
                effective_at=row.effective_at.astimezone(OSLO),
            )
        )
    await record(session, actor, "search", "Alert", None, [patient_id])
    return list(found.values())


async def readings_of(
    session: AsyncSession, actor: Actor, patient_id: uuid.UUID, observations: Sequence[str]
) -> list[ReadingPoint]:
    """The quantities of the patient's Observations named by reference ("Observation/<id>"),
    oldest first: where a threshold preview's alerts lie on a chart. Others' are left out."""
    await access.require_patient(session, actor.staff, patient_id)
    ids = []
    for reference in observations:
        try:
            ids.append(uuid.UUID(reference.removeprefix("Observation/")))
        except ValueError:
            raise InvalidInput("invalid_reference", f"not an Observation reference: {reference[:60]}") from None
    points = await repository.points_of(session, patient_id, ids)
    await record(session, actor, "read", "Observation", None, [patient_id])
    return [
        ReadingPoint(
            observation=f"Observation/{p.observation_id}",
            code=p.code,
            effective_at=p.effective_at.astimezone(OSLO),
            value=p.value,
        )
        for p in points
    ]


async def scores(
    session: AsyncSession, actor: Actor, patient_id: uuid.UUID, *, start: datetime, end: datetime
) -> list[LatestScore]:
    """The patient's NEWS2 scores taken in [start, end), oldest first, each with its parts:
    what the course's NEWS2 chart tells point by point. At most MAX_READINGS, the oldest (as
    for a raw trend). Scores entered in error are left out, as readings are."""
    await access.require_patient(session, actor.staff, patient_id)
    rows = await repository.scores(session, patient_id, news2.NEWS2_TOTAL_CODE, start, end, MAX_READINGS)
    await record(session, actor, "search", "Observation", None, [patient_id])
    return [score_of(row) for row in rows]


async def has_scores(session: AsyncSession, actor: Actor, patient_id: uuid.UUID) -> bool:
    """Whether the patient has a valid NEWS2 score (any time): whether the course shows their
    NEWS2 chart. Not audited itself, as reading_types_of."""
    await access.require_patient(session, actor.staff, patient_id)
    return await repository.latest_score(session, patient_id, news2.NEWS2_TOTAL_CODE) is not None


def _stored(o: Observation) -> StoredReading:
    return StoredReading(
        observation=f"Observation/{o.id}",
        code=o.code,
        effective_at=o.effective_at.astimezone(OSLO),
        value=o.value,
        components=o.components,
        unit=o.unit,
        derived=o.device_id is None,
        entered_in_error=EnteredInError(
            at=o.invalidated_at.astimezone(OSLO),
            by=o.invalidated_by_sub,
            by_name=o.invalidated_by_name,
            reason=o.invalidation_reason,
        )
        if o.invalidated_at is not None
        else None,
    )


def _referenced(resource: dict[str, Any]) -> list[uuid.UUID]:
    """The ids a stored Observation's `derivedFrom` names, in its order."""
    found: list[uuid.UUID] = []
    for entry in resource.get("derivedFrom", []):
        try:
            found.append(uuid.UUID(str(entry.get("reference", "")).removeprefix("Observation/")))
        except ValueError:
            continue  # not one of ours: nothing to show
    return found


async def observation(
    session: AsyncSession, actor: Actor, patient_id: uuid.UUID, observation_id: uuid.UUID
) -> ObservationDetail:
    """One of the patient's Observations, valid or entered in error, with what hangs on it:
    for a NEWS2 score its parts and the readings it scored, and the valid Observations that
    marking it entered in error would take with it. 404 for another patient's. Each
    Observation shown is audited as read."""
    await access.require_patient(session, actor.staff, patient_id)
    shown = (await repository.observations_of(session, patient_id, [observation_id])).get(observation_id)
    if shown is None:
        raise NotFound("not_found", "no such Observation")
    score: LatestScore | None = None
    inputs: list[Observation] = []
    if shown.code == news2.NEWS2_TOTAL_CODE and shown.device_id is None:
        score = score_of(repository.LatestScore(shown.id, shown.effective_at, shown.value or 0.0, shown.resource))
        named = _referenced(shown.resource)
        scored = await repository.observations_of(session, patient_id, named)
        inputs = [scored[oid] for oid in named if oid in scored]
    derived: list[Observation] = []
    if shown.invalidated_at is None:  # what marking it would take along
        closure = await observations.derived_closure(session, shown.id)
        found = await repository.observations_of(session, patient_id, closure)
        derived = sorted((found[oid] for oid in closure if oid in found), key=lambda o: (o.effective_at, o.id))
    for o in (shown, *inputs, *derived):
        await record(session, actor, "read", "Observation", str(o.id), [patient_id])
    return ObservationDetail(
        patient=patient_id,
        reading=_stored(shown),
        score=score,
        inputs=[_stored(o) for o in inputs],
        derived=[_stored(o) for o in derived],
    )


async def reading_types_of(session: AsyncSession, actor: Actor, patient_id: uuid.UUID) -> list[str]:
    """The reading types the patient has readings of (any time), in the table's order: which
    charts the course shows. Not audited itself: it tells no value, and the charts it leads to
    are."""
    await access.require_patient(session, actor.staff, patient_id)
    found = {
        READING_TYPE_OF_CODE[row.code]
        for row in await repository.latest(session, patient_id, list(READING_TYPE_OF_CODE))
    }
    return [name for name in READING_TYPES if name in found]
