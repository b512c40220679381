"""Payloads of the dashboard and trends (api.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from rpm.alerts.models import AlertStatus
from rpm.alerts.schemas import AlertItem, EnteredInError, EvidenceItem
from rpm.patients.schemas import Adherence, PatientOut, PlanStatus
from rpm.rules.schemas import EffectiveThresholdsOut


class LatestValue(BaseModel):
    """The newest reading of a type, judged against the patient's thresholds in force now."""

    type: str
    code: str
    observation: str  # Observation/<id>
    effective_at: datetime
    value: float | None
    components: dict[str, float] | None  # a panel's values by component code
    unit: str
    level: Literal["green", "yellow", "red"]
    interpretation: str  # HL7 v3 ObservationInterpretation: N, L, H, LL, HH


class SparkPoint(BaseModel):
    at: datetime
    value: float


class Sparkline(BaseModel):
    """One quantity's readings of the last 14 days, oldest first (a blood pressure gives two)."""

    type: str
    code: str
    unit: str
    points: list[SparkPoint]


class LatestScore(BaseModel):
    """A NEWS2 score (rules.md), the newest on the dashboard: its total and level, each
    parameter's points, and the parameters it left out (not measured in its window, or not
    reported by the devices)."""

    observation: str  # Observation/<id>
    effective_at: datetime
    total: int
    level: Literal["green", "yellow", "red"]
    parameters: dict[str, int]
    missing: list[str]
    spo2_scale: int


class Dashboard(BaseModel):
    patient: PatientOut
    latest: list[LatestValue]
    news2: LatestScore | None = None
    active_alerts: list[AlertItem]
    thresholds: EffectiveThresholdsOut  # as GET /patients/{id}/thresholds
    plan: list[PlanStatus]
    adherence: Adherence
    sparklines: list[Sparkline]


class TrendBucket(BaseModel):
    start: datetime  # in Oslo time
    end: datetime  # exclusive; a day is 23 or 25 hours when daylight saving time begins or ends
    count: int
    min: float
    max: float
    mean: float


class BandPeriod(BaseModel):
    """The bands in force from `from` to `to` (a change of thresholds starts a new period)."""

    from_: datetime = Field(serialization_alias="from")
    to: datetime
    version: int  # of the patient's overrides; 0 = templates only
    source: Literal["template", "override"]
    yellow: dict[str, float]
    red: dict[str, float]


class TrendSeries(BaseModel):
    code: str
    display: str
    unit: str
    bands: dict[str, dict[str, float]]  # in force at the end of the period: {"yellow": ..., "red": ...}
    band_periods: list[BandPeriod]
    buckets: list[TrendBucket]


class Trend(BaseModel):
    """Top-level `bands` and `buckets` are those of the first series: the quantity itself, or a
    blood pressure's systolic; `series` has each quantity (systolic and diastolic)."""

    code: str
    unit: str
    bucket: Literal["raw", "1h", "1d", "1w"]
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    bands: dict[str, dict[str, float]]
    buckets: list[TrendBucket]
    series: list[TrendSeries]


class AlertMarks(BaseModel):
    """One of the patient's alerts with its triggering readings taken in a period: what a
    chart of the course marks on the line."""

    id: uuid.UUID
    rule: str
    code: str | None  # the quantity its readings are of; None for a rule of no quantity (missing)
    level: Literal["yellow", "red"]
    status: AlertStatus
    opened_at: datetime
    evidence: list[EvidenceItem]  # oldest first, each value that quantity's


class ReadingPoint(BaseModel):
    """One quantity of one Observation (a panel gives one per component)."""

    observation: str  # Observation/<id>
    code: str
    effective_at: datetime
    value: float


class StoredReading(BaseModel):
    """One stored Observation as the course shows it, valid or entered in error."""

    observation: str  # Observation/<id>
    code: str
    effective_at: datetime
    value: float | None
    components: dict[str, float] | None  # a panel's values by component code
    unit: str
    derived: bool  # made by the service from readings (a NEWS2 score), not by a device
    entered_in_error: EnteredInError | None = None


class ObservationDetail(BaseModel):
    """One of a patient's Observations with what hangs on it: for a NEWS2 score its parts and
    the readings it scored (its `derivedFrom`); for any, the valid Observations that marking it
    entered in error would mark with it (a panel's pulse, a NEWS2 score that scored it)."""

    patient: uuid.UUID
    reading: StoredReading
    score: LatestScore | None = None
    inputs: list[StoredReading] = Field(default_factory=list)  # in the score's order
    derived: list[StoredReading] = Field(default_factory=list)  # oldest first
