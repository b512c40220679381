"""The threshold rule: each quantity of a reading against the patient's bands (rules.md).

Judging is pure and shared: the ingest pipeline judges each new Observation once
(`interpret`), the stored resource carries the interpretation, and the rule turns the
judgements that are not green into breaches. The threshold preview and the patient's course
judge past readings with the same functions.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from rpm.alerts.breaches import Breach, Evidence, Findings, Level
from rpm.rules.bands import GREEN, Judgement, QuantityBands, judge
from rpm.rules.interface import Batch, is_late
from rpm.rules.thresholds import EffectiveThresholds, bands_from_dict

NO_BANDS = QuantityBands()  # a code no template covers: always green


def interpret(values: Mapping[str, float], thresholds: EffectiveThresholds) -> dict[str, Judgement]:
    """Each quantity (by LOINC code) judged against the patient's bands."""
    bands = thresholds.bands
    return {code: judge(value, bands.get(code, NO_BANDS)) for code, value in values.items()}


def level_of(value: float, bands: Mapping[str, Any]) -> Level:
    """The zone of one value in bands as stored ({"yellow": {...}, "red": {...}}): the course
    page colours each past reading by the bands in force when it was taken."""
    return judge(value, bands_from_dict(bands)).level


def all_green(judgements: Mapping[str, Judgement]) -> bool:
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
    judgements: Mapping[str, Judgement],
    values: Mapping[str, float],
    unit: str,
    reading_at: datetime,
    received_at: datetime,
    thresholds: EffectiveThresholds,
) -> list[Breach]:
    late = is_late(received_at, reading_at)
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


class Threshold:
    name = "threshold"

    async def judge(self, session: AsyncSession, batch: Batch) -> Findings:
        breaches: list[Breach] = []
        for reading in batch.readings:
            judgements = batch.judgements.get(reading.id)
            if judgements is None or all_green(judgements):
                continue
            values = reading.components
            if values is None:
                assert reading.value is not None  # only values are judged
                values = {reading.code: reading.value}
            breaches += threshold_breaches(
                patient_id=reading.patient_id,
                observation_id=reading.id,
                judgements=judgements,
                values=values,
                unit=reading.unit,
                reading_at=reading.effective_at,
                received_at=reading.received_at,
                thresholds=batch.thresholds[reading.patient_id],
            )
        return Findings(breaches)
