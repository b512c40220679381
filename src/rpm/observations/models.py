"""Stored Observations: the FHIR R4 JSON plus typed columns to query by."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Double, Index, String, Text, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from rpm.db import Base, uuid_pk


class Observation(Base):
    __tablename__ = "observations"
    __table_args__ = (
        # De-duplication: a gateway's reading id is stored once per LOINC code, so a
        # redelivered message changes nothing (a blood pressure reading with a pulse
        # makes two Observations, hence the code in the key).
        UniqueConstraint("gateway_id", "reading_id", "code", name="uq_observations_reading"),
        Index("ix_observations_patient_code_time", "patient_id", "code", "effective_at"),
        Index("ix_observations_patient_time", "patient_id", "effective_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    # No foreign keys: a check per row was a sixth of a core at ingest rates. The ingest path
    # takes both ids from the device's assignment in the same transaction, and patients and
    # devices can never be deleted (a trigger refuses it; migration 0006).
    patient_id: Mapped[uuid.UUID]
    device_id: Mapped[uuid.UUID | None]  # None for an Observation the service derives (a NEWS2 score)
    reading_type: Mapped[str] = mapped_column(String(32))
    code: Mapped[str] = mapped_column(String(16))
    effective_at: Mapped[datetime]
    value: Mapped[float | None] = mapped_column(Double)
    # {"8480-6": 142.0, "8462-4": 91.0} for panels; null for single values.
    components: Mapped[dict[str, float] | None] = mapped_column(JSONB)
    unit: Mapped[str] = mapped_column(String(16))
    original_value: Mapped[Any] = mapped_column(JSON)
    original_unit: Mapped[str] = mapped_column(String(16))
    gateway_id: Mapped[str] = mapped_column(String(64))
    reading_id: Mapped[str] = mapped_column(String(128))
    received_at: Mapped[datetime]
    # Marked entered in error by staff (FHIR status entered-in-error): kept with its history,
    # left out of trends, the dashboard and the rules.
    invalidated_at: Mapped[datetime | None]
    invalidated_by_sub: Mapped[str | None] = mapped_column(Text)
    invalidated_by_name: Mapped[str | None] = mapped_column(Text)
    invalidation_reason: Mapped[str | None] = mapped_column(Text)
    stored_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # `json`, not `jsonb`: kept verbatim (resourceType first), never queried inside, and
    # parsing into jsonb was the largest cost of storing a batch.
    resource: Mapped[dict[str, Any]] = mapped_column(JSON)
