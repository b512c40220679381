"""The patient's own normal values: bands proposed from the start period's readings. Pure.

The national trial's services judged each patient against their own normal values, set in a
start period and agreed with the GP. At the end of a patient's start period the service
proposes, for each quantity the patient's thresholds band and that was measured often
enough, a yellow band from the patient's own readings:

- the 5th and the 95th percentile of the readings (linear interpolation between the closest
  ranks, as `statistics.quantiles(method="inclusive")` and numpy's default compute it),
- widened on each side by the quantity's margin (MARGINS: about one device's measurement
  noise, so a reading at the patient's usual extreme does not alert),
- rounded outwards to the quantity's precision,
- never wider than the red band in force: a yellow edge at or beyond the red edge is set to
  the red edge (then only red alerts on that side, as before).

A side the red band in force leaves open keeps its yellow edge in force (the general
template's fever edge at 39.0 Cel has no red edge above it; SpO2 has no upper edge at all).
The red band is kept as it is. A physician reviews the proposal with the threshold preview and accepts it,
edits it or rejects it (rules.proposals); nothing changes until then.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rpm.rules import templates
from rpm.rules.bands import Band, QuantityBands

# A percentile of fewer readings says little: below this, the quantity keeps its bands.
MIN_READINGS = 10

# Widening of each side, in the quantity's canonical unit.
MARGINS: dict[str, float] = {
    templates.SPO2: 1.0,  # %
    templates.HEART_RATE: 5.0,  # /min
    templates.SYSTOLIC: 5.0,  # mm[Hg]
    templates.DIASTOLIC: 5.0,  # mm[Hg]
    templates.TEMPERATURE: 0.3,  # Cel
    templates.RESPIRATORY_RATE: 2.0,  # /min
    templates.GLUCOSE: 0.5,  # mmol/L
}
# The precision edges are given in: whole numbers, tenths for temperature and glucose.
STEPS: dict[str, float] = {templates.TEMPERATURE: 0.1, templates.GLUCOSE: 0.1}


@dataclass(frozen=True)
class Basis:
    """What a proposed band rests on, shown beside it."""

    readings: int
    p5: float
    p95: float
    margin: float

    def as_dict(self) -> dict[str, float | int]:
        return {"readings": self.readings, "p5": self.p5, "p95": self.p95, "margin": self.margin}


@dataclass(frozen=True)
class ProposedBands:
    bands: QuantityBands
    basis: Basis


def percentiles(values: Sequence[float]) -> tuple[float, float]:
    """The 5th and 95th percentiles (inclusive method)."""
    cuts = statistics.quantiles(values, n=20, method="inclusive")
    return cuts[0], cuts[-1]


def _down(value: float, step: float) -> float:
    return round(math.floor(round(value / step, 9)) * step, 6)


def _up(value: float, step: float) -> float:
    return round(math.ceil(round(value / step, 9)) * step, 6)


def propose(readings: Mapping[str, Sequence[float]], in_force: Mapping[str, QuantityBands]) -> dict[str, ProposedBands]:
    """The proposed bands by LOINC code, for the quantities with a margin, bands in force with
    at least one red edge, and MIN_READINGS readings or more."""
    proposed: dict[str, ProposedBands] = {}
    for code, values in sorted(readings.items()):
        bands = in_force.get(code)
        margin = MARGINS.get(code)
        if bands is None or margin is None or len(values) < MIN_READINGS:
            continue
        red = bands.red
        if red.low is None and red.high is None:
            continue
        p5, p95 = percentiles(values)
        step = STEPS.get(code, 1.0)
        low, high = bands.yellow.low, bands.yellow.high
        if red.low is not None:
            low = max(_down(p5 - margin, step), red.low)
        if red.high is not None:
            high = min(_up(p95 + margin, step), red.high)
        proposed[code] = ProposedBands(
            QuantityBands(yellow=Band(low=low, high=high), red=red),
            Basis(readings=len(values), p5=round(p5, 3), p95=round(p95, 3), margin=margin),
        )
    return proposed
