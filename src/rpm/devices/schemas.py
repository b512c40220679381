"""Payloads of device registration and assignment (api.md)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from rpm.fhir.codes import known_reading_type


class DeviceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    serial: str = Field(min_length=1, max_length=128)
    type: str
    manufacturer: str | None = Field(default=None, max_length=128)
    model: str | None = Field(default=None, max_length=128)

    _known_type = field_validator("type")(known_reading_type)


class DeviceOut(BaseModel):
    id: uuid.UUID
    serial: str
    type: str
    manufacturer: str | None
    model: str | None


class AssignmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    patient: uuid.UUID
    from_: AwareDatetime = Field(alias="from")
    to: AwareDatetime | None = None


class AssignmentOut(BaseModel):
    serial: str
    patient: uuid.UUID
    from_: datetime = Field(serialization_alias="from")
    to: datetime | None
