"""Payloads of device registration and assignment (api.md)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AliasChoices, AliasPath, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from rpm.fhir.codes import known_reading_type


class DeviceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    serial: str = Field(min_length=1, max_length=128)
    type: str
    manufacturer: str | None = Field(default=None, max_length=128)
    model: str | None = Field(default=None, max_length=128)

    _known_type = field_validator("type")(known_reading_type)


class DeviceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    serial: str
    type: str
    manufacturer: str | None
    model: str | None
    organisation: str = Field(
        validation_alias=AliasChoices(AliasPath("organisation", "orgnr"), "organisation"),
        description="the organisation that registered the device",
    )
    registered_at: datetime = Field(validation_alias=AliasChoices("created_at", "registered_at"))


class AssignmentPeriod(BaseModel):
    """When the device served a patient; `patient` is null for a patient the caller's
    organisation does not follow."""

    model_config = ConfigDict(from_attributes=True)

    patient: uuid.UUID | None = Field(validation_alias=AliasChoices("patient_id", "patient"))
    from_: datetime = Field(validation_alias=AliasChoices("valid_from", "from_"), serialization_alias="from")
    to: datetime | None = Field(validation_alias=AliasChoices("valid_to", "to"))


class DeviceListItem(DeviceOut):
    assigned_to: AssignmentPeriod | None  # the assignment in force now


class LastReading(BaseModel):
    observation: str  # Observation/<id>
    patient: uuid.UUID
    code: str
    effective_at: datetime
    value: float | None
    components: dict[str, float] | None
    unit: str


class DeviceDetail(DeviceOut):
    assignments: list[AssignmentPeriod]  # oldest first
    last_reading: LastReading | None  # the newest of a patient the caller's organisation follows


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
