"""The missing-measurement rule (rules.md): a measurement of the patient's plan that has not
come within its interval plus the grace period opens a yellow alert; a reading of the type
answers it, and the queue resolves it."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from rpm.alerts.breaches import Breach, Findings, Level
from rpm.rules import repository
from rpm.rules.interface import Batch

PREFIX = "missing:"


def rule_key(reading_type: str) -> str:
    return PREFIX + reading_type


class MissingMeasurement:
    name = "missing"

    async def judge(self, session: AsyncSession, batch: Batch) -> Findings:
        """A reading answers its type's missing alert, however old the reading is."""
        return Findings(answered={(r.patient_id, rule_key(r.reading_type)) for r in batch.readings})

    async def due(self, session: AsyncSession, now: datetime, grace: timedelta) -> Findings:
        hours = grace.total_seconds() / 3600
        grace_hours = int(hours) if hours.is_integer() else hours  # 24, as rules.md writes it, not 24.0
        return Findings(
            [
                Breach(
                    patient_id=item.patient_id,
                    rule=rule_key(item.reading_type),
                    level=Level.yellow,
                    value=None,
                    unit=None,
                    threshold={"every_hours": item.every_hours, "grace_hours": grace_hours},
                    reading_at=item.last_reading_at,
                    late=False,
                    thresholds_version=0,
                )
                for item in await repository.overdue_items(session, now, grace)
            ]
        )
