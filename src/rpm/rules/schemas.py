"""Payloads of the thresholds endpoints (api.md)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rpm.fhir.codes import CODES_BY_LOINC


class BandIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

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
    model_config = ConfigDict(extra="forbid")

    yellow: float | None = Field(default=None, gt=0)
    red: float | None = Field(default=None, gt=0)
    window_hours: int = Field(default=72, ge=1, le=24 * 14)


class ThresholdsChange(BaseModel):
    """Overrides per LOINC code (`null` removes an override), and the reason for the change."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)
    bands: dict[str, QuantityBandsIn | None] = Field(default_factory=dict)
    weight_gain: WeightGainIn | None = None

    @field_validator("bands")
    @classmethod
    def _known_codes(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(CODES_BY_LOINC))
        if unknown:
            raise ValueError(f"{unknown[0]} is not a LOINC code this service measures")
        return value
