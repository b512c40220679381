"""What a rule is given and what it must offer (the registry is rules.engine)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from rpm.alerts.breaches import Findings
from rpm.rules.bands import Judgement
from rpm.rules.thresholds import EffectiveThresholds


class StoredReading(Protocol):
    """An Observation just stored, as far as the rules need it (the ingest path's row)."""

    @property
    def patient_id(self) -> uuid.UUID: ...
    @property
    def id(self) -> uuid.UUID: ...
    @property
    def reading_type(self) -> str: ...
    @property
    def code(self) -> str: ...
    @property
    def value(self) -> float | None: ...
    @property
    def components(self) -> dict[str, float] | None: ...
    @property
    def unit(self) -> str: ...
    @property
    def effective_at(self) -> datetime: ...
    @property
    def received_at(self) -> datetime: ...


@dataclass(frozen=True)
class Batch:
    """The new readings of one ingest batch, each stored once (redeliveries left out)."""

    readings: Sequence[StoredReading]
    thresholds: Mapping[uuid.UUID, EffectiveThresholds]  # by patient: those in force
    # By Observation id: each quantity judged against the patient's bands, as the stored
    # resource's interpretation says (rules.threshold.interpret); absent when not judged.
    judgements: Mapping[uuid.UUID, Mapping[str, Judgement]] = field(default_factory=dict)
    news2_window: timedelta = timedelta(hours=1)  # RPM_NEWS2_WINDOW_MINUTES


class ReadingRule(Protocol):
    name: str

    async def judge(self, session: AsyncSession, batch: Batch) -> Findings: ...


class ClockRule(Protocol):
    name: str

    async def due(self, session: AsyncSession, now: datetime, grace: timedelta) -> Findings: ...


# A reading received more than this after it was taken opens its alert marked late.
LATE_AFTER = timedelta(hours=24)


def is_late(received_at: datetime, taken_at: datetime) -> bool:
    return received_at - taken_at > LATE_AFTER
