"""The append-only audit trail of every read or change of a patient's data."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Identity, Index, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from rpm.db import Base


class AuditRecord(Base):
    """Rows are only ever inserted; a trigger from the migration refuses UPDATE and DELETE."""

    __tablename__ = "audit_records"
    __table_args__ = (Index("ix_audit_records_patient_at", "patient_id", "at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(server_default=func.now())
    actor_sub: Mapped[str] = mapped_column(Text)
    actor_name: Mapped[str | None] = mapped_column(Text)
    actor_hpr: Mapped[str | None] = mapped_column(String(16))
    actor_org: Mapped[str] = mapped_column(String(9), index=True)
    action: Mapped[str] = mapped_column(String(32))
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str | None] = mapped_column(Text)
    patient_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("patients.id"))
    request_id: Mapped[str | None] = mapped_column(String(64))
