"""The weight-gain trend (rules.md): a gain in body weight within a window, fluid retention's
early sign in heart failure. Judging is pure; the rule asks the database for the weights
around each new one."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from rpm.alerts.breaches import Breach, Evidence, Findings, Level
from rpm.rules import repository
from rpm.rules.bands import WeightGain, judge_gain
from rpm.rules.interface import Batch, is_late
from rpm.rules.templates import BODY_WEIGHT
from rpm.units import DECIMALS

RULE = "trend:weight-gain"


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
        rule=RULE,
        level=level,
        value=gain,
        unit="kg",
        threshold={"gain": limit, "window_hours": rule.window_hours},
        reading_at=high_point.effective_at,
        late=is_late(received_at, reading.effective_at),
        thresholds_version=thresholds_version,
        evidence=(low_point, high_point),
    )


class WeightGainTrend:
    name = "weight-gain"

    async def judge(self, session: AsyncSession, batch: Batch) -> Findings:
        thresholds = batch.thresholds
        judged = [
            (reading, rule)
            for reading in batch.readings
            if reading.code == BODY_WEIGHT
            and reading.value is not None
            and reading.patient_id in thresholds
            and (rule := thresholds[reading.patient_id].at(reading.effective_at).weight_gain)
        ]
        if not judged:
            return Findings()
        extremes = await repository.weight_extremes(
            session, [(r.id, r.patient_id, r.effective_at, rule.window_hours) for r, rule in judged]
        )
        breaches = []
        for reading, rule in judged:
            assert reading.value is not None
            breach = weight_gain_breach(
                patient_id=reading.patient_id,
                reading=Evidence(reading.id, reading.value, reading.effective_at),
                neighbours=[Evidence(oid, value, at) for oid, at, value in extremes[reading.id]],
                rule=rule,
                received_at=reading.received_at,
                thresholds_version=thresholds[reading.patient_id].version,
            )
            if breach is not None:
                breaches.append(breach)
        return Findings(breaches)
