"""A chart of one reading type for the course and thresholds pages: the JSON that chart.js
draws with uPlot, and the same readings as rows of a table (the chart's text alternative).
The course also charts the patient's NEWS2 scores (`NEWS2`): the same chart, with the
chart's fixed bands and each score's parts beside its point (`with_scores`).

Built from a trend (`rpm.trends.service.trend`): raw readings or daily buckets of each
quantity, and the bands in force period by period. Marks are readings behind alerts. A raw
reading's level is judged by the threshold rule (`level_of`) against the bands in force when it was
taken. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rpm.api.web import present
from rpm.fhir.codes import READING_TYPES
from rpm.rules import news2
from rpm.rules.bands import Level
from rpm.rules.threshold import level_of
from rpm.trends.schemas import BandPeriod, LatestScore, Trend, TrendBucket

Text = Callable[[str], str]

# Line colours of a chart's first and second quantity (a blood pressure's systolic, diastolic).
COLOURS = ("#0b5cad", "#6a2c91")
# The chart of the patient's NEWS2 scores, beside those of the reading types.
NEWS2 = "news2"


def unit(ucum: str | None) -> str:
    """A unit as people read it ("mm[Hg]" is "mmHg")."""
    return present.readable_unit(ucum)


def epoch(moment: datetime) -> float:
    return moment.timestamp()


@dataclass(frozen=True)
class Mark:
    """A reading behind an alert (or a previewed alert): where it lies on the line."""

    code: str
    at: datetime
    value: float
    level: str  # yellow or red
    alert: str | None = None  # the alert's id, for a link; None for a previewed alert


@dataclass
class Row:
    """One row of the table view: a raw reading (`at`) or a day (`start`, `end`)."""

    at: datetime
    end: datetime | None
    values: list[TrendBucket | None]  # per quantity, in the chart's order
    level: str | None = None  # the worst of the quantities' levels (raw readings only)
    marks: list[Mark] = field(default_factory=list)
    score: LatestScore | None = None  # a NEWS2 chart's score at this time
    parts: str | None = None  # its parts in words
    link: str | None = None  # where the score is shown with its readings


@dataclass
class Chart:
    id: str
    type: str
    title: str
    unit: str
    bucket: str
    labels: list[str]  # per quantity
    rows: list[Row]
    marks: list[Mark]
    data: dict[str, Any]
    summary: str
    has_bands: bool
    note: str | None = None  # what the bands mean, where they are not the patient's thresholds
    scored: bool = False  # rows carry NEWS2 scores with their parts

    @property
    def empty(self) -> bool:
        return not self.rows


def _period_at(periods: Sequence[BandPeriod], at: datetime) -> BandPeriod | None:
    for period in periods:
        if period.from_ <= at < period.to:
            return period
    return periods[-1] if periods and at >= periods[-1].to else None


def _level(value: float, period: BandPeriod | None) -> Level:
    if period is None:
        return Level.green
    return level_of(value, {"yellow": period.yellow, "red": period.red})


def _bands_json(periods: Sequence[BandPeriod]) -> list[dict[str, Any]]:
    return [
        {"from": epoch(p.from_), "to": epoch(p.to), "yellow": p.yellow, "red": p.red, "version": p.version}
        for p in periods
    ]


def single_period(trend: Trend, bands: Mapping[str, Mapping[str, Any]]) -> dict[str, list[BandPeriod]]:
    """Each quantity's bands `bands[code]` ({"yellow": ..., "red": ...}) over the trend's whole
    period: what a preview judges with, and what it compares against."""
    periods = {}
    for series in trend.series:
        entry = bands.get(series.code) or {}
        periods[series.code] = [
            BandPeriod(
                from_=trend.from_,
                to=trend.to,
                version=0,
                source=entry.get("source", "template"),
                yellow=dict(entry.get("yellow") or {}),
                red=dict(entry.get("red") or {}),
            )
        ]
    return periods


def build(
    trend: Trend,
    reading_type: str,
    marks: Sequence[Mark],
    t: Text,
    *,
    days: int,
    bands: Mapping[str, list[BandPeriod]] | None = None,
    compare: Mapping[str, list[BandPeriod]] | None = None,
    id_prefix: str = "chart",
    summary_key: str = "course.chart_summary",
) -> Chart:
    """The chart of one reading type. `bands` replaces the trend's band periods (a preview's
    proposal); `compare` adds another set drawn as dashed edges (the thresholds in force)."""
    raw = trend.bucket == "raw"
    codes = [s.code for s in trend.series]
    periods = {s.code: list(bands[s.code]) if bands and s.code in bands else s.band_periods for s in trend.series}
    ours = [m for m in marks if m.code in codes and trend.from_ <= m.at <= trend.to]

    # Rows: a raw reading of a panel gives a point per component at the same time; the n-th
    # point of a time in each series belongs to the same row.
    rows: dict[tuple[datetime, int], Row] = {}
    for index, series in enumerate(trend.series):
        seen: dict[datetime, int] = {}
        for bucket in series.buckets:
            n = seen[bucket.start] = seen.get(bucket.start, -1) + 1
            row = rows.get((bucket.start, n))
            if row is None:
                row = rows[(bucket.start, n)] = Row(
                    at=bucket.start, end=None if raw else bucket.end, values=[None] * len(codes)
                )
            row.values[index] = bucket
            if raw:
                level = _level(bucket.mean, _period_at(periods[series.code], bucket.start))
                if row.level is None or level.rank > Level(row.level).rank:
                    row.level = level.value
    ordered = sorted(rows.values(), key=lambda r: r.at)
    if raw:
        by_time: dict[datetime, list[Mark]] = {}
        for mark in ours:
            by_time.setdefault(mark.at, []).append(mark)
        for row in ordered:
            row.marks = by_time.get(row.at, [])
    else:
        for row in ordered:
            row.marks = [m for m in ours if row.at <= m.at < (row.end or row.at)]

    # One x array for uPlot: the rows' times (a day at its middle, where its mean belongs).
    xs = [epoch(r.at) if raw else (epoch(r.at) + epoch(r.end or r.at)) / 2 for r in ordered]
    series_json = []
    for index, series in enumerate(trend.series):
        values = [r.values[index] for r in ordered]
        entry: dict[str, Any] = {
            "code": series.code,
            "label": t("code." + series.code),
            "colour": COLOURS[index % len(COLOURS)],
            "y": [v.mean if v else None for v in values],
            "bands": _bands_json(periods[series.code]),
        }
        if not raw:
            entry["min"] = [v.min if v else None for v in values]
            entry["max"] = [v.max if v else None for v in values]
        if len(trend.series) > 1:  # limits drawn as lines, each named by its quantity
            entry["short"] = t("course.short." + series.code)
        if compare and series.code in compare:
            entry["compare"] = _bands_json(compare[series.code])
        series_json.append(entry)

    title = t("type." + reading_type)
    shown = unit(trend.unit)
    data = {
        "title": title,
        "unit": shown,
        "bucket": trend.bucket,
        "from": epoch(trend.from_),
        "to": epoch(trend.to),
        "x": xs,
        "series": series_json,
        "marks": [{"x": epoch(m.at), "y": m.value, "level": m.level, "series": codes.index(m.code)} for m in ours],
        "labels": {
            "yellow": t("level.yellow"),
            "red": t("level.red"),
            "min": t("course.min"),
            "max": t("course.max"),
            "time": t("course.time"),
        },
    }
    readings = sum(v.count for r in ordered for v in r.values[:1] if v)
    summary = (
        t(summary_key)
        .replace("{title}", title)
        .replace("{days}", str(days))
        .replace("{readings}", str(readings))
        .replace("{marks}", str(len(ours)))
    )
    return Chart(
        id=f"{id_prefix}-{reading_type}",
        type=reading_type,
        title=title,
        unit=shown,
        bucket=trend.bucket,
        labels=[t("code." + c) for c in codes],
        rows=ordered,
        marks=ours,
        data=data,
        summary=summary,
        has_bands=any(p.yellow or p.red for code in codes for p in periods[code]),
    )


def parts(score: LatestScore, t: Text) -> str:
    """A score's parts in the chart's order: "RF 2 · SpO2 1 · Sys 1 · Puls 2 · Temp 1"."""
    return " · ".join(f"{t('score.short.' + name)} {points}" for name, points in score.parameters.items())


def with_scores(chart: Chart, scores: Sequence[LatestScore], link: Callable[[LatestScore], str], t: Text) -> Chart:
    """A raw NEWS2 chart with each score's parts: in its table row (with the level the rule
    gave it, which a single parameter's 3 makes yellow below 5, and a link to the score and
    its readings) and beside its point in the chart's legend."""
    if chart.bucket != "raw":
        return chart
    by_time: dict[datetime, list[LatestScore]] = {}
    for score in scores:
        by_time.setdefault(score.effective_at, []).append(score)
    notes: list[str | None] = []
    for row in chart.rows:
        found = by_time.get(row.at)
        if found:
            at_row = found.pop(0)
            row.score, row.level, row.parts, row.link = at_row, at_row.level, parts(at_row, t), link(at_row)
        notes.append(row.parts)
    chart.data["series"][0]["notes"] = notes
    chart.scored = True
    return chart


def type_code(reading_type: str) -> str:
    if reading_type == NEWS2:
        return news2.NEWS2_TOTAL_CODE
    return READING_TYPES[reading_type].code


def type_order(types: Sequence[str]) -> list[str]:
    """Reading types in the table's order."""
    return [name for name in READING_TYPES if name in set(types)]
