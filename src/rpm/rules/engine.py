"""The rules engine: every rule that judges a patient, behind one small interface.

Two kinds of rule, each a module of this package registered below:
- a *reading rule* judges a batch of newly stored readings (thresholds, the weight-gain
  trend, the NEWS2 early-warning score; a missing measurement is answered by its reading);
- a *clock rule* judges at a tick of the clock what should have happened and did not (a
  measurement that did not come).

Each returns Findings (rpm.alerts.breaches): breaches for the alert queue, and the active
alerts the batch answers. A rule never touches alerts itself; the ingest pipeline
(rpm.pipeline) and the worker's periodic checks hand the findings to the queue.

Adding a rule: a module with a class that meets ReadingRule or ClockRule (rules.interface),
registered in READING_RULES or CLOCK_RULES below, with its tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from rpm.alerts.breaches import Findings
from rpm.rules.early_warning import News2
from rpm.rules.interface import Batch, ClockRule, ReadingRule
from rpm.rules.missing import MissingMeasurement
from rpm.rules.threshold import Threshold
from rpm.rules.weight_gain import WeightGainTrend

# Order matters only for speed: each rule sees the batch's readings, not the others' findings.
READING_RULES: tuple[ReadingRule, ...] = (Threshold(), WeightGainTrend(), News2(), MissingMeasurement())
CLOCK_RULES: tuple[ClockRule, ...] = (MissingMeasurement(),)


async def judge_batch(session: AsyncSession, batch: Batch, rules: Sequence[ReadingRule] | None = None) -> Findings:
    """Every reading rule (by default those registered) over the batch, their findings together."""
    found = Findings()
    for rule in READING_RULES if rules is None else rules:
        findings = await rule.judge(session, batch)
        found.breaches.extend(findings.breaches)
        found.answered.update(findings.answered)
    return found


async def judge_clock(
    session: AsyncSession, now: datetime, grace: timedelta, rules: Sequence[ClockRule] | None = None
) -> Findings:
    """Every clock rule (by default those registered) at `now`."""
    found = Findings()
    for rule in CLOCK_RULES if rules is None else rules:
        findings = await rule.due(session, now, grace)
        found.breaches.extend(findings.breaches)
        found.answered.update(findings.answered)
    return found
