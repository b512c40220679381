"""The NEWS2 rule: the early-warning score of the vital signs a patient measured together.

Each new vital-sign reading (respiration rate, SpO2, blood pressure, pulse, temperature) is
scored with the patient's other vital signs of the window before it (RPM_NEWS2_WINDOW_MINUTES,
default one hour). Readings of other types cannot change a score, so they do not trigger one
(rules.md: "whenever a reading arrives"). A score of enough parameters (news2.MINIMUM_PARAMETERS) is stored as an
Observation of its own, derived from the readings scored, and alerts by the chart's
clinical risk: 7 or more red, 5-6 or a single parameter scoring 3 yellow.

In a patient's start period (rules.thresholds.start_period_thresholds) a score is stored
but alerts only when red, as readings alert only on red edges then.

The SpO2 scale follows the patient's SpO2 bands in force: scale 2 (hypercapnic respiratory
failure, target 88-92 %) where the red edge is at 84 or below, as the COPD template and an
override for a prescribed 88-92 % target set it; scale 1 otherwise.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from rpm.alerts.breaches import Breach, Evidence, Findings, Level
from rpm.db import new_id
from rpm.fhir.news2 import news2_resource
from rpm.observations import repository as observations
from rpm.rules import news2, repository
from rpm.rules.interface import Batch, StoredReading, is_late
from rpm.rules.templates import SPO2
from rpm.rules.thresholds import EffectiveThresholds

RULE = "news2"  # rules.md: the aggregate rule's key
UNIT = "{score}"
READING_TYPE = "news2"
# The service's own Observations are kept under this gateway id: their reading ids
# ("news2/{observation}") and code cannot meet a gateway's.
SERVICE = "rpm"
# The red SpO2 edge at or below which the patient is on scale 2: NEWS2 scale 2 scores 3 at 83.
SCALE_2_RED_LOW = 84.0
TRIGGERS = frozenset({*news2.VITAL_SIGN_CODES, repository.BLOOD_PRESSURE})
# The NEWS2 parameters a device of each reading type can report (a blood pressure's pulse is
# stored as a heart rate).
PARAMETERS_OF_TYPE: dict[str, set[str]] = {
    "respiratory-rate": {news2.RESPIRATORY_RATE},
    "spo2": {news2.SPO2},
    "blood-pressure": {news2.SYSTOLIC, news2.PULSE},
    "heart-rate": {news2.PULSE},
    "body-temperature": {news2.TEMPERATURE},
}


def spo2_scale(thresholds: EffectiveThresholds | None) -> int:
    bands = thresholds.bands.get(SPO2) if thresholds else None
    red_low = bands.red.low if bands else None
    return 2 if red_low is not None and red_low <= SCALE_2_RED_LOW else 1


def crossed(result: news2.News2Score) -> dict[str, Any]:
    """The edge a score crossed, as an alert's `threshold` says it."""
    if result.level is Level.red:
        return {"total": 7}
    if result.total >= 5:
        return {"total": 5}
    return {"parameter": 3}


def score_observation(
    patient_id: uuid.UUID,
    at: datetime,
    trigger: StoredReading,
    result: news2.News2Score,
    derived_from: list[uuid.UUID],
) -> observations.ObservationRow:
    """The stored Observation of a score taken at `at`, the time of the reading that triggered
    it; keyed by that reading, so a score is stored once."""
    observation_id = new_id()
    return observations.ObservationRow(
        id=observation_id,
        patient_id=patient_id,
        device_id=None,
        reading_type=READING_TYPE,
        code=news2.NEWS2_TOTAL_CODE,
        effective_at=at,
        value=float(result.total),
        components=None,
        unit=UNIT,
        original_value=result.total,
        original_unit=UNIT,
        gateway_id=SERVICE,
        reading_id=f"news2/{trigger.id}",
        received_at=trigger.received_at,
        resource=news2_resource(
            result,
            observation_id=observation_id,
            patient_id=patient_id,
            effective_at=at,
            issued=trigger.received_at,
            derived_from=derived_from,
        ),
    )


class News2:
    name = "news2"

    async def judge(self, session: AsyncSession, batch: Batch) -> Findings:
        # One score per (patient, time): a blood pressure and its pulse are one measurement.
        triggers: dict[tuple[uuid.UUID, datetime], StoredReading] = {}
        for reading in batch.readings:
            if reading.code in TRIGGERS:
                key = (reading.patient_id, reading.effective_at)
                if key not in triggers or reading.id < triggers[key].id:
                    triggers[key] = reading
        if not triggers:
            return Findings()
        # A patient whose devices cannot measure enough parameters never has a score: most
        # patients (an oximeter, a scale) are settled by one query, without reading values.
        types = await repository.device_types(session, {patient_id for patient_id, _ in triggers})
        can_score = {
            patient_id
            for patient_id, measured in types.items()
            if len(set().union(*(PARAMETERS_OF_TYPE.get(t, set()) for t in measured))) >= news2.MINIMUM_PARAMETERS
        }
        triggers = {key: reading for key, reading in triggers.items() if key[0] in can_score}
        if not triggers:
            return Findings()
        spans: dict[uuid.UUID, tuple[datetime, datetime]] = {}
        for patient_id, at in triggers:
            first, last = spans.get(patient_id, (at, at))
            spans[patient_id] = (min(first, at), max(last, at))
        vital_signs = await repository.vital_signs(
            session,
            [(p, first - batch.news2_window, last) for p, (first, last) in spans.items()],
            news2.VITAL_SIGN_CODES,
            # Our devices report neither consciousness nor oxygen: the codes alone must make up a
            # score's parameters.
            fewest=news2.MINIMUM_PARAMETERS,
        )
        scored: list[tuple[observations.ObservationRow, news2.News2Score]] = []
        quiet: set[uuid.UUID] = set()  # scores taken in a start period: they alert only when red
        for (patient_id, at), trigger in sorted(triggers.items()):
            in_force = batch.thresholds.get(patient_id)
            selection = news2.select_vitals(
                vital_signs[patient_id], at=at, window=batch.news2_window, spo2_scale=spo2_scale(in_force)
            )
            result = news2.score(selection.vitals)
            if not result.sufficient:
                continue
            row = score_observation(patient_id, at, trigger, result, [v.id for v in selection.used])
            scored.append((row, result))
            if in_force is not None and in_force.at(at).in_start_period:
                quiet.add(row.id)
        inserted = await observations.insert_new(session, [row for row, _ in scored])
        return Findings(
            [
                Breach(
                    patient_id=row.patient_id,
                    rule=RULE,
                    level=result.level,
                    value=float(result.total),
                    unit=UNIT,
                    threshold=crossed(result),
                    reading_at=row.effective_at,
                    late=is_late(row.received_at, row.effective_at),
                    thresholds_version=batch.thresholds[row.patient_id].version
                    if row.patient_id in batch.thresholds
                    else 0,
                    evidence=(Evidence(row.id, float(result.total), row.effective_at),),
                )
                for row, result in scored
                if row.id in inserted
                and (result.level is Level.red or (result.level is Level.yellow and row.id not in quiet))
            ]
        )
