"""Organisations of the health community: municipalities, GP offices, hospital departments."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from rpm.db import Base, uuid_pk


class OrganisationKind(StrEnum):
    municipality = "municipality"
    gp_office = "gp-office"
    hospital_department = "hospital-department"


class Organisation(Base):
    __tablename__ = "organisations"
    __table_args__ = (
        CheckConstraint("orgnr ~ '^[0-9]{9}$'", name="orgnr_nine_digits"),
        CheckConstraint("kind in ('municipality', 'gp-office', 'hospital-department')", name="kind_known"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    orgnr: Mapped[str] = mapped_column(String(9), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # When the organisation's follow-up service is staffed (None: weekdays 08:00-15:30
    # Europe/Oslo, Norwegian public holidays off), how soon an unacknowledged red alert
    # escalates in those hours (None: RPM_ESCALATE_RED_MINUTES), and who takes its red alerts
    # outside them (None: nobody; they wait, marked outside service hours).
    service_hours: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    escalate_red_minutes: Mapped[int | None] = mapped_column(Integer)
    out_of_hours_partner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("organisations.id"))
