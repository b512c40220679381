"""What proposed thresholds would have done to a patient's past readings. Pure.

Each stored reading is judged, in the order it was taken, by the functions that judge live
readings (`interpret`, `threshold_breaches`, `weight_gain_breach`). Breaches land on
alerts as in the live queue: a breach while an alert of its rule is active adds an
occurrence and can raise the level, never lower it. Staff resolve live alerts; the preview
assumes they do so once the patient is back within the bands, that is at the next reading
of the same quantity that does not breach the rule (for the weight-gain trend: the next
weight that is not a gain). So an alert here is one episode of out-of-band readings.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rpm.alerts.breaches import Breach, Evidence, Level
from rpm.rules.templates import BODY_WEIGHT
from rpm.rules.threshold import interpret, threshold_breaches
from rpm.rules.thresholds import EffectiveThresholds
from rpm.rules.weight_gain import RULE as WEIGHT_GAIN
from rpm.rules.weight_gain import weight_gain_breach


@dataclass(frozen=True)
class PastReading:
    """A stored Observation: its quantities by LOINC code (a panel's components, or one value)."""

    id: uuid.UUID
    code: str
    effective_at: datetime
    values: dict[str, float]
    unit: str


@dataclass
class SimulatedAlert:
    rule: str
    level: Level
    opened_at: datetime  # the time of the reading that opened it
    last_reading_at: datetime
    occurrences: int
    value: float | None
    unit: str | None
    threshold: dict[str, Any] | None
    observations: list[uuid.UUID] = field(default_factory=list)


def _land(active: dict[str, SimulatedAlert], done: list[SimulatedAlert], breach: Breach) -> None:
    """A breach on its alert, with the live queue's rules for level, threshold and value."""
    assert breach.reading_at is not None  # a breach of a past reading
    alert = active.get(breach.rule)
    if alert is None:
        alert = active[breach.rule] = SimulatedAlert(
            rule=breach.rule,
            level=breach.level,
            opened_at=breach.reading_at,
            last_reading_at=breach.reading_at,
            occurrences=0,
            value=breach.value,
            unit=breach.unit,
            threshold=breach.threshold,
        )
        done.append(alert)
    elif breach.level is Level.red or alert.level is Level.yellow:
        alert.level, alert.threshold = max(alert.level, breach.level, key=lambda level: level.rank), breach.threshold
    alert.occurrences += 1
    alert.value, alert.last_reading_at = breach.value, breach.reading_at
    alert.observations += [e.observation_id for e in breach.evidence if e.observation_id not in alert.observations]


def simulate(
    patient_id: uuid.UUID,
    readings: Iterable[PastReading],
    thresholds: EffectiveThresholds,
    start: datetime,
) -> list[SimulatedAlert]:
    """The alerts that the readings taken from `start` on would have raised, oldest first.
    Weights before `start` are the weight-gain trend's history only."""
    ordered = sorted(readings, key=lambda r: (r.effective_at, r.id))
    weights: list[Evidence] = []
    active: dict[str, SimulatedAlert] = {}
    raised: list[SimulatedAlert] = []
    for reading in ordered:
        weight = Evidence(reading.id, reading.values.get(BODY_WEIGHT), reading.effective_at)
        if reading.effective_at < start:
            if reading.code == BODY_WEIGHT:
                weights.append(weight)
            continue
        judgements = interpret(reading.values, thresholds)
        breaches = threshold_breaches(
            patient_id=patient_id,
            observation_id=reading.id,
            judgements=judgements,
            values=reading.values,
            unit=reading.unit,
            reading_at=reading.effective_at,
            received_at=reading.effective_at,
            thresholds=thresholds,
        )
        judged_rules = {f"threshold:{code}:{side}" for code in reading.values for side in ("low", "high")}
        rule = thresholds.weight_gain
        if reading.code == BODY_WEIGHT and rule is not None:
            judged_rules.add(WEIGHT_GAIN)
            window = timedelta(hours=rule.window_hours)
            before = [w for w in weights if reading.effective_at - window <= w.effective_at < reading.effective_at]
            gain = weight_gain_breach(
                patient_id=patient_id,
                reading=weight,
                neighbours=before,
                rule=rule,
                received_at=reading.effective_at,
                thresholds_version=thresholds.version,
            )
            if gain is not None:
                breaches.append(gain)
        if reading.code == BODY_WEIGHT:
            weights.append(weight)
        breached = {b.rule for b in breaches}
        for ended in judged_rules - breached:
            active.pop(ended, None)
        for breach in breaches:
            _land(active, raised, breach)
    return raised


def counts(alerts: Sequence[SimulatedAlert]) -> dict[str, int]:
    """{"yellow": n, "red": m}"""
    return {level.value: sum(1 for a in alerts if a.level is level) for level in (Level.yellow, Level.red)}
