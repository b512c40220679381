"""NEWS2, the Royal College of Physicians' National Early Warning Score 2 (2017). Pure.

The chart scores seven parameters and adds the sub-scores (0-20):

    respiration rate /min  <=8: 3     9-11: 1      12-20: 0      21-24: 2      >=25: 3
    SpO2 scale 1 %         <=91: 3    92-93: 2     94-95: 1      >=96: 0
    SpO2 scale 2 %         <=83: 3    84-85: 2     86-87: 1      88-92: 0      >=93 on air: 0
                           on oxygen: 93-94: 1     95-96: 2      >=97: 3
    air or oxygen          air: 0     oxygen: 2
    systolic mm[Hg]        <=90: 3    91-100: 2    101-110: 1    111-219: 0    >=220: 3
    pulse /min             <=40: 3    41-50: 1     51-90: 0      91-110: 1     111-130: 2    >=131: 3
    consciousness          alert: 0   new confusion, or responds to voice or pain, or unresponsive: 3
    temperature Cel        <=35.0: 3  35.1-36.0: 1 36.1-38.0: 0  38.1-39.0: 1  >=39.1: 2

SpO2 scale 2 is for patients with hypercapnic respiratory failure (for example COPD) whose
prescribed target is 88-92 %; everyone else is on scale 1.

Values between the chart's edges. The chart is written in whole numbers, temperature in
tenths, as a nurse records them. A reading is first rounded to that precision, half away
from zero (half up, for the positive values vital signs have), in decimal: a pulse of 90.5
is 91 and scores 1, 90.4 is 90 and scores 0; a temperature of 38.05 is 38.1 and scores 1,
38.04 is 38.0 and scores 0. Rounding in decimal matters: the float 38.05 is 38.0499999...
in binary, and Python's `round(38.05, 1)` gives 38.0.

Missing parameters. A home patient rarely reports all seven: consciousness and oxygen only
when a questionnaire or the gateway says so. What is not measured is left out of the total
and listed in `missing`. Every sub-score is at least 0, so an incomplete score is the least
total the full set could have: a lower bound that never overstates. The one parameter that
depends on another keeps that promise too: on scale 2 a saturation of 93 % or more scores
0 on air and 1-3 on oxygen, so with oxygen unknown it is scored as on air (and `oxygen` is
listed as missing).

Levels. The RCP's clinical risk is low for 0-4, low-medium for a 3 in any single
parameter, medium for 5-6 and high for 7 or more. Ours (issue 11): red for high (7+);
yellow for medium (5-6) and for low-medium (a single 3); green for the rest of low (0-4).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal
from enum import StrEnum
from typing import Generic, NamedTuple, Protocol, TypeVar

from rpm.rules import templates
from rpm.rules.bands import Level

# The total score, from the UK edition of SNOMED CT (concept "Royal College of Physicians
# National Early Warning Score 2 - total score (observable entity)"). NHS England's FHIR
# NEWS2 guidance and regional UK profiles code the total with it, and HL7 Norway's
# welfare-technology hub (VKP) profile for a NEWS2 score fixes it as the pattern code until
# a Norwegian code exists. We found no LOINC code for the NEWS2 total: 88330-6, which one
# guide uses for it, is a CMS mobility assessment item.
SNOMED_CT = "http://snomed.info/sct"
NEWS2_TOTAL_CODE = "1104051000000101"
NEWS2_TOTAL_DISPLAY = "Royal College of Physicians National Early Warning Score 2 - total score"

RESPIRATORY_RATE = "respiratory_rate"
SPO2 = "spo2"
OXYGEN = "oxygen"
SYSTOLIC = "systolic"
PULSE = "pulse"
CONSCIOUSNESS = "consciousness"
TEMPERATURE = "temperature"
# In the chart's order.
PARAMETERS: tuple[str, ...] = (RESPIRATORY_RATE, SPO2, OXYGEN, SYSTOLIC, PULSE, CONSCIOUSNESS, TEMPERATURE)

# The sub-scores' codes (same source as the total), for components of the stored score;
# SpO2 has one per scale (see `subscore_code`).
SUBSCORE_CODES: dict[str, str] = {
    RESPIRATORY_RATE: "1104301000000104",
    "spo2_scale_1": "1104311000000102",
    "spo2_scale_2": "1104321000000108",
    OXYGEN: "1104331000000105",
    SYSTOLIC: "1104341000000101",
    PULSE: "1104351000000103",
    CONSCIOUSNESS: "1104361000000100",
    TEMPERATURE: "1104371000000107",
}


def subscore_code(parameter: str, spo2_scale: int = 1) -> str:
    """The SNOMED CT code of a parameter's sub-score."""
    return SUBSCORE_CODES[f"{SPO2}_scale_{spo2_scale}" if parameter == SPO2 else parameter]


# With two parameters or fewer, no total reaches 5 without a single 3 (every sub-score
# short of 3 is at most 2), and 7 needs three: the level is then exactly "yellow if some
# parameter scored 3", which the single-parameter threshold rules already say. From three
# on, the aggregate can say something they cannot (2+2+1 is yellow). Since an incomplete
# score is a lower bound, alerting on three or more never overstates.
MINIMUM_PARAMETERS = 3

# The total's levels as bands (rules.bands: a value above a band's `high` leaves it): 0-4 green,
# 5-6 yellow, 7 or more red. What a chart of the scores draws behind them; `News2Score.level`
# also makes a total under 5 yellow when one parameter scores 3, which no band of the total says.
TOTAL_BANDS: dict[str, dict[str, float]] = {"yellow": {"high": 4}, "red": {"high": 6}}

# Issue 11's default: readings further apart than this are not one set of observations.
DEFAULT_WINDOW = timedelta(hours=1)


class Consciousness(StrEnum):
    alert = "alert"
    # The C, V, P and U of ACVPU all score 3.
    new_confusion_or_vpu = "new-confusion-or-vpu"


class OxygenSupport(StrEnum):
    air = "air"
    oxygen = "oxygen"


_INF = Decimal("Infinity")
_WHOLE = Decimal(1)
_TENTH = Decimal("0.1")
# Wide enough to quantize any finite float without an InvalidOperation.
_ROUNDING = Context(prec=400, rounding=ROUND_HALF_UP)

# Each band as (highest value in the band, sub-score), lowest band first.
_Bands = tuple[tuple[Decimal, int], ...]


def _bands(*rows: tuple[str | Decimal, int]) -> _Bands:
    return tuple((Decimal(edge), points) for edge, points in rows)


RESPIRATORY_RATE_BANDS = _bands(("8", 3), ("11", 1), ("20", 0), ("24", 2), (_INF, 3))
SPO2_SCALE_1_BANDS = _bands(("91", 3), ("93", 2), ("95", 1), (_INF, 0))
# Below 93 % scale 2 does not depend on oxygen; from 93 % it does.
SPO2_SCALE_2_BANDS = _bands(("83", 3), ("85", 2), ("87", 1), ("92", 0))
SPO2_SCALE_2_ON_OXYGEN_BANDS = _bands(("94", 1), ("96", 2), (_INF, 3))
SYSTOLIC_BANDS = _bands(("90", 3), ("100", 2), ("110", 1), ("219", 0), (_INF, 3))
PULSE_BANDS = _bands(("40", 3), ("50", 1), ("90", 0), ("110", 1), ("130", 2), (_INF, 3))
TEMPERATURE_BANDS = _bands(("35.0", 3), ("36.0", 1), ("38.0", 0), ("39.0", 1), (_INF, 2))


def chart_value(value: float, step: Decimal) -> Decimal:
    """`value` as the chart records it: to `step` (1 or 0.1), half away from zero, in decimal."""
    # repr gives the shortest decimal that is this float: 38.05, not 38.0499999...
    return Decimal(repr(float(value))).quantize(step, context=_ROUNDING)


def _check_scale(scale: int) -> None:
    if scale not in (1, 2):
        raise ValueError(f"the SpO2 scale is 1 or 2, not {scale!r}")


def _points(value: Decimal, bands: _Bands) -> int:
    for highest, points in bands:
        if value <= highest:
            return points
    raise AssertionError("the last band is open")  # pragma: no cover


def respiratory_rate_score(per_minute: float) -> int:
    return _points(chart_value(per_minute, _WHOLE), RESPIRATORY_RATE_BANDS)


def spo2_score(percent: float, scale: int, oxygen: OxygenSupport | None) -> int:
    """Scale 1 or 2; on scale 2 from 93 % the score depends on oxygen (unknown counts as air)."""
    _check_scale(scale)
    value = chart_value(percent, _WHOLE)
    if scale == 1:
        return _points(value, SPO2_SCALE_1_BANDS)
    if value <= SPO2_SCALE_2_BANDS[-1][0]:
        return _points(value, SPO2_SCALE_2_BANDS)
    if oxygen is OxygenSupport.oxygen:
        return _points(value, SPO2_SCALE_2_ON_OXYGEN_BANDS)
    return 0


def oxygen_score(support: OxygenSupport) -> int:
    return 2 if support is OxygenSupport.oxygen else 0


def systolic_score(mm_hg: float) -> int:
    return _points(chart_value(mm_hg, _WHOLE), SYSTOLIC_BANDS)


def pulse_score(per_minute: float) -> int:
    return _points(chart_value(per_minute, _WHOLE), PULSE_BANDS)


def consciousness_score(level: Consciousness) -> int:
    return 0 if level is Consciousness.alert else 3


def temperature_score(celsius: float) -> int:
    return _points(chart_value(celsius, _TENTH), TEMPERATURE_BANDS)


@dataclass(frozen=True)
class Vitals:
    """One set of observations to score; None is "not measured" (or not reported)."""

    respiratory_rate: float | None = None  # /min
    spo2: float | None = None  # %
    systolic: float | None = None  # mm[Hg]
    pulse: float | None = None  # /min
    temperature: float | None = None  # Cel
    consciousness: Consciousness | None = None
    oxygen: OxygenSupport | None = None
    spo2_scale: int = 1  # 2 for hypercapnic respiratory failure with a prescribed 88-92 % target

    def __post_init__(self) -> None:
        _check_scale(self.spo2_scale)
        for name in (RESPIRATORY_RATE, SPO2, SYSTOLIC, PULSE, TEMPERATURE):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, not {value!r}")


@dataclass(frozen=True)
class News2Score:
    """The sub-score of each measured parameter; everything else follows from them."""

    parameters: dict[str, int]
    spo2_scale: int = 1

    @property
    def total(self) -> int:
        return sum(self.parameters.values())

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(name for name in PARAMETERS if name not in self.parameters)

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def sufficient(self) -> bool:
        """Enough parameters for the aggregate to say more than the single-parameter rules."""
        return len(self.parameters) >= MINIMUM_PARAMETERS

    @property
    def any_three(self) -> bool:
        return 3 in self.parameters.values()

    @property
    def level(self) -> Level:
        total = self.total
        if total >= 7:
            return Level.red
        if total >= 5 or self.any_three:
            return Level.yellow
        return Level.green


def score(vitals: Vitals) -> News2Score:
    """The NEWS2 of what was measured; see the module's docstring for rounding and gaps."""
    measured: dict[str, int] = {}
    if vitals.respiratory_rate is not None:
        measured[RESPIRATORY_RATE] = respiratory_rate_score(vitals.respiratory_rate)
    if vitals.spo2 is not None:
        measured[SPO2] = spo2_score(vitals.spo2, vitals.spo2_scale, vitals.oxygen)
    if vitals.oxygen is not None:
        measured[OXYGEN] = oxygen_score(vitals.oxygen)
    if vitals.systolic is not None:
        measured[SYSTOLIC] = systolic_score(vitals.systolic)
    if vitals.pulse is not None:
        measured[PULSE] = pulse_score(vitals.pulse)
    if vitals.consciousness is not None:
        measured[CONSCIOUSNESS] = consciousness_score(vitals.consciousness)
    if vitals.temperature is not None:
        measured[TEMPERATURE] = temperature_score(vitals.temperature)
    return News2Score(
        parameters={name: measured[name] for name in PARAMETERS if name in measured}, spo2_scale=vitals.spo2_scale
    )


# The LOINC codes the project stores these vital signs under (rules.templates, fhir.codes).
# A blood pressure is a panel: pass its systolic component. Its pulse is stored as a heart
# rate. 2708-6 is the FHIR vital-signs profile's SpO2 code, carried beside 59408-5.
VITAL_SIGN_CODES: dict[str, str] = {
    templates.RESPIRATORY_RATE: RESPIRATORY_RATE,
    templates.SPO2: SPO2,
    "2708-6": SPO2,
    templates.SYSTOLIC: SYSTOLIC,
    templates.HEART_RATE: PULSE,
    templates.TEMPERATURE: TEMPERATURE,
}


# The measured parameters whose score depends on their value alone.
_SCORERS: dict[str, Callable[[float], int]] = {
    RESPIRATORY_RATE: respiratory_rate_score,
    SYSTOLIC: systolic_score,
    PULSE: pulse_score,
    TEMPERATURE: temperature_score,
}


class Measurement(Protocol):
    """One stored value: an Observation, or a component of one, in its canonical unit."""

    @property
    def code(self) -> str: ...

    @property
    def value(self) -> float: ...

    @property
    def effective_at(self) -> datetime: ...


class Reading(NamedTuple):
    """The plainest Measurement; callers may pass their own rows (with their ids) instead."""

    code: str
    value: float
    effective_at: datetime


M = TypeVar("M", bound=Measurement)


@dataclass(frozen=True)
class Selection(Generic[M]):
    vitals: Vitals
    # The measurements scored, one per parameter in the chart's order: the `derivedFrom`.
    used: tuple[M, ...] = field(default=())


def select_vitals(
    measurements: Iterable[M],
    *,
    at: datetime,
    window: timedelta = DEFAULT_WINDOW,
    spo2_scale: int = 1,
    consciousness: Consciousness | None = None,
    oxygen: OxygenSupport | None = None,
) -> Selection[M]:
    """The newest value of each vital sign with `at - window <= effective_at <= at`.

    Both ends are inclusive: a reading exactly `window` old still counts, and one taken at
    `at` (the reading that triggers the score) does too; later ones belong to a later score.
    Codes that are not vital signs of the chart are ignored. Of two readings of a parameter
    at the same instant, the one scoring higher counts (then the later in `measurements`):
    a duplicate never lowers the score. Consciousness and oxygen come from a questionnaire
    or the gateway, not from coded measurements, and are passed through as given.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("at must be timezone-aware")
    if window <= timedelta(0):
        raise ValueError("window must be positive")
    _check_scale(spo2_scale)
    start = at - window

    def points(name: str, value: float) -> int:
        if name == SPO2:
            return spo2_score(value, spo2_scale, oxygen)
        return _SCORERS[name](value)

    chosen: dict[str, tuple[datetime, int, M]] = {}
    for measurement in measurements:
        name = VITAL_SIGN_CODES.get(measurement.code)
        if name is None or not start <= measurement.effective_at <= at:
            continue
        if not math.isfinite(measurement.value):
            raise ValueError(f"{name} must be a finite number, not {measurement.value!r}")
        candidate = (measurement.effective_at, points(name, measurement.value), measurement)
        best = chosen.get(name)
        if best is None or candidate[:2] >= best[:2]:
            chosen[name] = candidate

    def value(name: str) -> float | None:
        return chosen[name][2].value if name in chosen else None

    vitals = Vitals(
        respiratory_rate=value(RESPIRATORY_RATE),
        spo2=value(SPO2),
        systolic=value(SYSTOLIC),
        pulse=value(PULSE),
        temperature=value(TEMPERATURE),
        consciousness=consciousness,
        oxygen=oxygen,
        spo2_scale=spo2_scale,
    )
    return Selection(vitals=vitals, used=tuple(chosen[name][2] for name in PARAMETERS if name in chosen))
