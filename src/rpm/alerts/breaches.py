"""What the alert queue consumes: breaches of a patient's rules. Pure.

The rules (rpm.rules) produce these; the queue folds them per (patient, rule) and lands each
group on the patient's active alert of that rule, or opens one. The queue knows nothing of
how a breach was found.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Level(StrEnum):
    """The zone a value, a score or a breach is in: green is within the patient's targets."""

    green = "green"
    yellow = "yellow"
    red = "red"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Level.green: 0, Level.yellow: 1, Level.red: 2}  # a dict lookup: Enum.value is slow


@dataclass(slots=True)  # built for every reading: no frozen-init cost
class Evidence:
    """An Observation that a breach rests on."""

    observation_id: uuid.UUID
    value: float | None
    effective_at: datetime


@dataclass(frozen=True)
class Breach:
    """A patient outside one of their rules: the input of the alert lifecycle.

    `rule` is the alert's rule key (`threshold:{code}:{side}`, `trend:weight-gain`, `news2`,
    `missing:{type}`): one active alert per patient and rule. `reading_at` is the time of
    the newest reading it rests on (None for a measurement that never came)."""

    patient_id: uuid.UUID
    rule: str
    level: Level
    value: float | None
    unit: str | None
    threshold: dict[str, Any] | None
    reading_at: datetime | None
    late: bool
    thresholds_version: int
    evidence: tuple[Evidence, ...] = field(default=())


@dataclass(frozen=True)
class Findings:
    """What the rules found in a batch of readings, or at a tick of the clock.

    `answered`: (patient, rule) pairs whose active alert the batch answers, which the queue
    resolves (a measurement that was missing has come)."""

    breaches: list[Breach] = field(default_factory=list)
    answered: set[tuple[uuid.UUID, str]] = field(default_factory=set)


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
    reading_at: datetime | None  # the newest reading
    late: bool  # of the first breach, which opens the alert if none is active
    thresholds_version: int
    evidence: tuple[Evidence, ...]


def fold_breaches(breaches: list[Breach]) -> list[BreachGroup]:
    """One group per (patient, rule), in (patient, rule) order: the order alerts are locked in,
    so that concurrent batches cannot deadlock."""
    groups: dict[tuple[uuid.UUID, str], list[Breach]] = {}
    for breach in sorted(breaches, key=lambda b: (b.patient_id, b.rule, b.reading_at is not None, b.reading_at)):
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
