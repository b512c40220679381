"""Payloads of the rejected-readings endpoints (api.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class RejectedOut(BaseModel):
    id: uuid.UUID
    received_at: datetime
    topic: str
    gateway_id: str | None
    reading_id: str | None
    device_serial: str | None
    reason: str
    detail: str | None
    payload: str  # as received; bytes that are not UTF-8 are shown escaped
    reprocessed_at: datetime | None
    reprocess_outcome: dict[str, Any] | None


class ReprocessIn(BaseModel):
    serial: str = Field(min_length=1, max_length=128)


class ReprocessOut(BaseModel):
    accepted: int
    duplicate: int
    rejected: int
