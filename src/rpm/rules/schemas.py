"""Payloads of the thresholds endpoints (api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator, model_validator

from rpm.fhir.codes import CODES_BY_LOINC


def measured_codes(value: dict[str, Any]) -> dict[str, Any]:
    """Validator for overrides by LOINC code: only codes of quantities the service measures."""
    unknown = sorted(set(value) - set(CODES_BY_LOINC))
    if unknown:
        raise ValueError(f"{unknown[0]} is not a LOINC code this service measures")
    return value


class BandIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    low: float | None = None
    high: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> BandIn:
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError("low must not be above high")
        return self


class QuantityBandsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    yellow: BandIn = Field(default_factory=BandIn)
    red: BandIn = Field(default_factory=BandIn)

    @model_validator(mode="after")
    def _red_outside_yellow(self) -> QuantityBandsIn:
        y, r = self.yellow, self.red
        if y.low is not None and r.low is not None and r.low > y.low:
            raise ValueError("red.low must not be above yellow.low")
        if y.high is not None and r.high is not None and r.high < y.high:
            raise ValueError("red.high must not be below yellow.high")
        return self


class WeightGainIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    yellow: float | None = Field(default=None, gt=0)
    red: float | None = Field(default=None, gt=0)
    window_hours: int = Field(default=72, ge=1, le=24 * 14)


class ThresholdsChange(BaseModel):
    """Overrides per LOINC code (`null` removes an override), and the reason for the change."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)
    bands: dict[str, QuantityBandsIn | None] = Field(default_factory=dict)
    weight_gain: WeightGainIn | None = None

    _known_codes = field_validator("bands")(measured_codes)


class ThresholdsPreviewIn(BaseModel):
    """Proposed overrides, as in a change (without its reason), and how many days back to try them."""

    model_config = ConfigDict(extra="forbid")

    days: int = Field(default=30, ge=1, le=365)
    bands: dict[str, QuantityBandsIn | None] = Field(default_factory=dict)
    weight_gain: WeightGainIn | None = None

    _known_codes = field_validator("bands")(measured_codes)


class PreviewAlert(BaseModel):
    rule: str
    level: Literal["yellow", "red"]
    at: datetime = Field(description="when the reading that would have opened it was taken")
    last_reading_at: datetime
    occurrences: int
    value: float | None
    unit: str | None
    threshold: dict[str, Any] | None
    observations: list[str]


class AlertCounts(BaseModel):
    yellow: int
    red: int


class QuantityThresholds(BaseModel):
    yellow: dict[Literal["low", "high"], float]
    red: dict[Literal["low", "high"], float]
    source: Literal["template", "override"]
    # The templates it comes from, when the source is template.
    templates: list[str] | None = Field(default=None, exclude_if=lambda templates: templates is None)


class WeightGainThresholds(BaseModel):
    yellow: float | None
    red: float | None
    window_hours: int
    source: Literal["template", "override"]


class EffectiveThresholdsOut(RootModel[dict[str, QuantityThresholds | WeightGainThresholds]]):
    """The bands by LOINC code, and the weight-gain rule under `weight_gain` (api.md)."""


class ThresholdsPreviewOut(BaseModel):
    """The alerts the proposed thresholds would have raised from the patient's readings of the
    last `days` days (one per episode of out-of-band readings; see rules.preview), and, for
    comparison, what the thresholds in force now would have raised."""

    days: int
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    readings: int  # stored Observations judged
    yellow: int
    red: int
    alerts: list[PreviewAlert]
    current: AlertCounts
    thresholds: EffectiveThresholdsOut  # what the proposal makes of the thresholds in force


class OverrideChange(BaseModel):
    """One quantity's (or the weight-gain rule's) override as a version changed it."""

    key: str  # LOINC code, or "weight_gain"
    before: dict[str, Any] | None  # None: no override, the templates applied
    after: dict[str, Any] | None  # None: the override was removed, the templates apply


class ThresholdsVersion(BaseModel):
    """A version of the patient's overrides: who made it, when, why, and what it changed."""

    version: int
    changed_at: datetime
    changed_by_sub: str
    changed_by_name: str | None
    changed_by_hpr: str | None
    changed_by_org: str
    reason: str
    changes: list[OverrideChange]


class ThresholdsRecord(BaseModel):
    """The thresholds in force with each one's source, what the patient's conditions alone give,
    the version that last changed each override, and every version (newest first)."""

    thresholds: EffectiveThresholdsOut
    templates: EffectiveThresholdsOut
    set_in: dict[str, int]  # overridden key (LOINC code or "weight_gain") -> version
    history: list[ThresholdsVersion]


class ProposedQuantity(BaseModel):
    """The bands proposed for one quantity, and what they rest on (rules.baselines)."""

    yellow: dict[Literal["low", "high"], float]
    red: dict[Literal["low", "high"], float]
    readings: int = Field(description="readings of the start period the percentiles are of")
    p5: float
    p95: float
    margin: float = Field(description="the widening of each side, in the quantity's unit")


class ThresholdProposalOut(BaseModel):
    """Bands proposed from the patient's own readings at the end of their start period, and
    the physician's decision (status `proposed` until there is one)."""

    model_config = ConfigDict(from_attributes=True)

    patient: str
    proposed_at: datetime
    period_from: datetime
    period_to: datetime
    status: Literal["proposed", "accepted", "edited", "rejected"]
    bands: dict[str, ProposedQuantity]
    decided_at: datetime | None
    decided_by: str | None
    decided_by_name: str | None
    decision_reason: str | None
    thresholds_version: int | None = Field(description="the version of the overrides an acceptance made")


class ThresholdProposalDecision(BaseModel):
    """Accept the proposal as it is, accept it with `bands` edited (they replace the proposed
    bands of their codes; `null` leaves a code out), or reject it; with the reason."""

    model_config = ConfigDict(extra="forbid")

    decision: Literal["accept", "reject"]
    reason: str = Field(min_length=1, max_length=2000)
    bands: dict[str, QuantityBandsIn | None] | None = None

    _known_codes = field_validator("bands")(lambda value: value if value is None else measured_codes(value))

    @model_validator(mode="after")
    def _edits_only_when_accepting(self) -> ThresholdProposalDecision:
        if self.decision == "reject" and self.bands is not None:
            raise ValueError("bands: only an accepted proposal can be edited")
        return self
