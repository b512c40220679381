"""The audit trail as the API shows it."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AliasChoices, BaseModel, ConfigDict, Field


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor_sub: str
    actor_name: str | None
    actor_hpr: str | None
    actor_org: str
    action: str
    resource_type: str
    resource_id: str | None
    patient: uuid.UUID | None = Field(validation_alias=AliasChoices("patient_id", "patient"))
    request_id: str | None


CSV_COLUMNS = tuple(AuditOut.model_fields)
