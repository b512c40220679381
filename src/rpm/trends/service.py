"""The patient's course: the dashboard and trends, in the canonical units, judged by the rules."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access import service as access
from rpm.alerts import repository as alerts_repository
from rpm.alerts import service as alerts
from rpm.audit.service import Actor, record
from rpm.errors import InvalidInput, NotFound
from rpm.fhir.codes import CODES_BY_LOINC, READING_TYPE_OF_CODE, READING_TYPES
from rpm.patients import repository as patients
from rpm.patients import service as patient_service
from rpm.rules import repository as rules
from rpm.rules.evaluation import judgements_for
from rpm.rules.models import ThresholdOverride
from rpm.rules.schemas import EffectiveThresholdsOut
from rpm.rules.service import thresholds_for
from rpm.rules.thresholds import EffectiveThresholds, effective_thresholds
from rpm.trends import repository
from rpm.trends.buckets import OSLO, TRUNCATE, Bucket, bucket_count, bucket_end
from rpm.trends.schemas import (
    BandPeriod,
    Dashboard,
    LatestValue,
    Sparkline,
    SparkPoint,
    Trend,
    TrendBucket,
    TrendSeries,
)

SPARKLINE_DAYS = 14
MAX_POINTS = 10_000  # raw readings or buckets in one trend

# What a trend's `code` asks for: the stored code, and the quantities to show. A blood
# pressure panel shows both components; a component code shows that one.
TREND_CODES: dict[str, tuple[str, tuple[str, ...]]] = {
    **{t.code: (t.code, tuple(t.components[k].code for k in t.components)) for t in READING_TYPES.values()},
    **{q.code: (t.code, (q.code,)) for t in READING_TYPES.values() if t.is_panel for q in t.components.values()},
}


def _latest_value(row: repository.Latest, thresholds: EffectiveThresholds) -> LatestValue:
    values = row.components if row.components is not None else {row.code: row.value or 0.0}
    judgements = judgements_for(values, thresholds)
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
    await record(session, actor, "read", "Dashboard", str(patient_id), [patient_id])
    return Dashboard(
        patient=patient_service.to_out(patient),
        latest=[_latest_value(row, thresholds) for row in latest],
        active_alerts=await alerts.items(session, active),
        thresholds=EffectiveThresholdsOut.model_validate(thresholds.as_dict()),
        plan=plan,
        adherence=adherence,
        sparklines=_sparklines(points),
    )


def band_periods(
    conditions: Sequence[str], history: Sequence[ThresholdOverride], code: str, start: datetime, end: datetime
) -> list[BandPeriod]:
    """The bands of `code` in force over [start, end): the templates until the first override,
    then each version of the overrides from its change. (The patient's current conditions choose
    the templates throughout: changes of conditions are not versioned.)"""
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
    if bucket_count(start, end, bucket) > MAX_POINTS:
        raise InvalidInput("too_many_buckets", f"the period has more than {MAX_POINTS} buckets; choose a larger bucket")
    stored_code, quantities = TREND_CODES[code]
    if bucket == "raw":
        # A panel gives a point per component: MAX_POINTS readings of a blood pressure are twice
        # as many points.
        most = MAX_POINTS * len(TREND_CODES[stored_code][1])
        points = await repository.raw_points(session, patient_id, stored_code, start, end, most + 1)
        if len(points) > most:
            raise InvalidInput(
                "too_many_points", f"more than {MAX_POINTS} readings in the period; choose a bucket such as 1d"
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
    for quantity in quantities:
        periods = band_periods(patient.conditions, history, quantity, start, end)
        series.append(
            TrendSeries(
                code=quantity,
                display=CODES_BY_LOINC[quantity].display,
                unit=CODES_BY_LOINC[quantity].unit,
                bands={"yellow": periods[-1].yellow, "red": periods[-1].red} if periods else {},
                band_periods=periods,
                buckets=by_quantity.get(quantity, []),
            )
        )
    await record(session, actor, "read", "Trend", f"{patient_id}/{code}", [patient_id])
    return Trend(
        code=code,
        unit=CODES_BY_LOINC[quantities[0]].unit,
        bucket=bucket,
        from_=start.astimezone(OSLO),
        to=end.astimezone(OSLO),
        bands=series[0].bands,
        buckets=series[0].buckets,
        series=series,
    )
