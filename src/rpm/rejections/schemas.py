"""Payloads of the rejected-readings endpoints (api.md)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rpm.observations.readings import Reason


class RejectedOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    received_at: datetime
    topic: str
    gateway_id: str | None
    reading_id: str | None
    device_serial: str | None
    reason: Reason
    detail: str | None
    payload: str  # as received; bytes that are not UTF-8 are shown escaped

    @field_validator("payload", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return value.decode("utf-8", errors="backslashreplace") if isinstance(value, bytes) else value

    reprocessed_at: datetime | None
    reprocess_outcome: dict[str, Any] | None


class ReprocessIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    serial: str = Field(min_length=1, max_length=128)


class ReprocessOut(BaseModel):
    accepted: int
    duplicate: int
    rejected: int
