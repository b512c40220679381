"""Bands, levels and the judging of one value against a patient's bands. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rpm.alerts.breaches import Level as Level  # the zones of a judged value

INF = math.inf


@dataclass(frozen=True)
class Band:
    """Values inside [low, high] stay in the band; either side may be open."""

    low: float | None = None
    high: float | None = None

    def side_left(self, value: float) -> str | None:
        """'low' or 'high' if the value is strictly outside that side, else None."""
        if self.low is not None and value < self.low:
            return "low"
        if self.high is not None and value > self.high:
            return "high"
        return None

    def as_dict(self) -> dict[str, float]:
        return {k: v for k, v in (("low", self.low), ("high", self.high)) if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Band:
        data = data or {}
        return cls(low=data.get("low"), high=data.get("high"))

    def merged_with(self, other: Band) -> Band:
        """`other`'s sides where it has them, this band's otherwise."""
        return Band(
            low=other.low if other.low is not None else self.low,
            high=other.high if other.high is not None else self.high,
        )


def _edges(band: Band) -> tuple[float, float]:
    return (-INF if band.low is None else band.low, INF if band.high is None else band.high)


@dataclass(frozen=True)
class QuantityBands:
    yellow: Band = Band()
    red: Band = Band()
    # Both bands' edges with open sides as infinities: judging a value inside both (nearly
    # every reading) is then two chained comparisons.
    inside: tuple[float, float, float, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        red, yellow = self.red, self.yellow
        object.__setattr__(self, "inside", (*_edges(red), *_edges(yellow)))

    def merged_with(self, other: QuantityBands) -> QuantityBands:
        return QuantityBands(yellow=self.yellow.merged_with(other.yellow), red=self.red.merged_with(other.red))

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {"yellow": self.yellow.as_dict(), "red": self.red.as_dict()}


@dataclass(frozen=True)
class WeightGain:
    """Raise `yellow`/`red` when a weight is more than that many kg above the window's lowest."""

    yellow: float | None = 2.0
    red: float | None = None
    window_hours: int = 72

    def as_dict(self) -> dict[str, Any]:
        return {"yellow": self.yellow, "red": self.red, "window_hours": self.window_hours}


@dataclass(slots=True)  # built for every reading: no frozen-init cost
class Judgement:
    level: Level
    side: str | None  # 'low' / 'high' when outside a band
    threshold: dict[str, float] | None  # the edge crossed, e.g. {"low": 84}

    @property
    def interpretation(self) -> str:
        """HL7 v3 ObservationInterpretation: N, L/H for yellow, LL/HH for red."""
        if self.level is Level.green or self.side is None:
            return "N"
        letter = "L" if self.side == "low" else "H"
        return letter * (2 if self.level is Level.red else 1)


# Most readings are within their bands: they share one judgement (never mutated).
GREEN = Judgement(Level.green, None, None)


def judge(value: float, bands: QuantityBands) -> Judgement:
    """Red if strictly outside the red band; otherwise yellow if strictly outside yellow."""
    red_low, red_high, yellow_low, yellow_high = bands.inside
    if red_low <= value <= red_high and yellow_low <= value <= yellow_high:
        return GREEN
    side = bands.red.side_left(value)
    if side is not None:
        return Judgement(Level.red, side, {side: getattr(bands.red, side)})
    side = bands.yellow.side_left(value)
    if side is not None:
        return Judgement(Level.yellow, side, {side: getattr(bands.yellow, side)})
    return GREEN


def judge_gain(gain: float, rule: WeightGain) -> Level:
    if rule.red is not None and gain > rule.red:
        return Level.red
    if rule.yellow is not None and gain > rule.yellow:
        return Level.yellow
    return Level.green
