"""The alert queue item (api.md): field names are part of the contract."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class AlertItem(BaseModel):
    id: uuid.UUID
    patient: uuid.UUID
    rule: str
    level: str
    status: str
    escalated: bool
    late: bool
    opened_at: datetime
    last_reading_at: datetime | None
    occurrences: int
    value: float | None
    unit: str | None
    threshold: dict[str, Any] | None
    observations: list[str]
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    resolved_by: str | None
    resolved_at: datetime | None
    note: str | None
    escalated_at: datetime | None
    thresholds_version: int


class EvidenceItem(BaseModel):
    observation: str
    value: float | None
    effective_at: datetime


class AlertDetail(AlertItem):
    evidence: list[EvidenceItem]


class ResolveIn(BaseModel):
    note: str = Field(min_length=1, max_length=4000)
