"""Turning one stored reading into breaches of the patient's rules. Pure."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rpm.rules.bands import GREEN, Judgement, Level, QuantityBands, WeightGain, judge, judge_gain
from rpm.rules.thresholds import EffectiveThresholds
from rpm.units import DECIMALS

LATE_AFTER = timedelta(hours=24)


@dataclass(slots=True)  # built for every reading: no frozen-init cost
class Evidence:
    observation_id: uuid.UUID
    value: float | None
    effective_at: datetime


@dataclass(frozen=True)
class Breach:
    """A reading outside the patient's targets: the input of the alert lifecycle."""

    patient_id: uuid.UUID
    rule: str
    level: Level
    value: float | None
    unit: str | None
    threshold: dict[str, Any] | None
    reading_at: datetime
    late: bool
    thresholds_version: int
    evidence: tuple[Evidence, ...] = field(default=())


NO_BANDS = QuantityBands()  # a code no template covers: always green


def judgements_for(values: dict[str, float], thresholds: EffectiveThresholds) -> dict[str, Judgement]:
    bands = thresholds.bands
    return {code: judge(value, bands.get(code, NO_BANDS)) for code, value in values.items()}


def all_green(judgements: dict[str, Judgement]) -> bool:
    """`judge` answers every in-band value with the shared GREEN; a green made elsewhere only
    costs a call of `threshold_breaches`, which checks levels itself."""
    for judgement in judgements.values():
        if judgement is not GREEN:
            return False
    return True


def threshold_breaches(
    *,
    patient_id: uuid.UUID,
    observation_id: uuid.UUID,
    judgements: dict[str, Judgement],
    values: dict[str, float],
    unit: str,
    reading_at: datetime,
    received_at: datetime,
    thresholds: EffectiveThresholds,
) -> list[Breach]:
    late = received_at - reading_at > LATE_AFTER
    return [
        Breach(
            patient_id=patient_id,
            rule=f"threshold:{code}:{judgement.side}",
            level=judgement.level,
            value=values[code],
            unit=unit,
            threshold=judgement.threshold,
            reading_at=reading_at,
            late=late,
            thresholds_version=thresholds.version,
            evidence=(Evidence(observation_id, values[code], reading_at),),
        )
        for code, judgement in judgements.items()
        if judgement.level is not Level.green
    ]


def weight_gain_breach(
    *,
    patient_id: uuid.UUID,
    reading: Evidence,
    neighbours: list[Evidence],
    rule: WeightGain,
    received_at: datetime,
    thresholds_version: int,
) -> Breach | None:
    """The worst gain that this reading takes part in, within the rule's window.

    Backwards: this reading against the lowest weight in the window before it. Forwards:
    a late reading can be the low point that a later reading gained from, so the later
    readings within the window after it are judged against it too.
    """
    assert reading.value is not None
    window = timedelta(hours=rule.window_hours)
    before = [n for n in neighbours if reading.effective_at - window <= n.effective_at < reading.effective_at]
    after = [n for n in neighbours if reading.effective_at < n.effective_at <= reading.effective_at + window]
    candidates: list[tuple[float, Evidence, Evidence]] = []
    if before:
        low = min(before, key=lambda n: (n.value, n.effective_at))
        candidates.append((reading.value - float(low.value or 0), low, reading))
    if after:
        high = max(after, key=lambda n: (n.value, n.effective_at))
        candidates.append((float(high.value or 0) - reading.value, reading, high))
    if not candidates:
        return None
    gain, low_point, high_point = max(candidates, key=lambda c: c[0])
    # 64.4 - 62.4 is 2.000000000000007 in floating point: judge the gain at the precision the
    # readings have, so exactly 2.0 kg is not "more than 2.0 kg".
    gain = round(gain, DECIMALS)
    level = judge_gain(gain, rule)
    if level is Level.green:
        return None
    limit = rule.red if level is Level.red else rule.yellow
    return Breach(
        patient_id=patient_id,
        rule="trend:weight-gain",
        level=level,
        value=gain,
        unit="kg",
        threshold={"gain": limit, "window_hours": rule.window_hours},
        reading_at=high_point.effective_at,
        late=received_at - reading.effective_at > LATE_AFTER,
        thresholds_version=thresholds_version,
        evidence=(low_point, high_point),
    )


@dataclass(frozen=True)
class BreachGroup:
    """The breaches of one batch for one (patient, rule), folded as the alert sees them."""

    patient_id: uuid.UUID
    rule: str
    level: Level  # the worst
    occurrences: int
    value: float | None  # of the newest reading
    unit: str | None
    threshold: dict[str, Any] | None  # crossed by the newest breach at the worst level
    reading_at: datetime  # the newest reading
    late: bool  # of the first breach, which opens the alert if none is active
    thresholds_version: int
    evidence: tuple[Evidence, ...]


def fold_breaches(breaches: list[Breach]) -> list[BreachGroup]:
    """One group per (patient, rule), in (patient, rule) order: the order alerts are locked in,
    so that concurrent batches cannot deadlock."""
    groups: dict[tuple[uuid.UUID, str], list[Breach]] = {}
    for breach in sorted(breaches, key=lambda b: (b.patient_id, b.rule, b.reading_at)):
        groups.setdefault((breach.patient_id, breach.rule), []).append(breach)
    folded = []
    for (patient_id, rule), members in groups.items():
        worst = max(b.level.rank for b in members)
        newest = members[-1]
        newest_worst = [b for b in members if b.level.rank == worst][-1]
        folded.append(
            BreachGroup(
                patient_id=patient_id,
                rule=rule,
                level=newest_worst.level,
                occurrences=len(members),
                value=newest.value,
                unit=newest.unit,
                threshold=newest_worst.threshold,
                reading_at=newest.reading_at,
                late=members[0].late,
                thresholds_version=max(b.thresholds_version for b in members),
                evidence=tuple(e for b in members for e in b.evidence),
            )
        )
    return folded
