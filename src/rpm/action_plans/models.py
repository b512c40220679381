"""Per-patient action plans, agreed with the GP: every change is a new version, with who,
when and why (like threshold overrides)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from rpm.db import Base, uuid_pk


class ActionPlan(Base):
    """The patient's plan as of `version` (the newest row is in force)."""

    __tablename__ = "action_plans"
    __table_args__ = (UniqueConstraint("patient_id", "version"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"))
    version: Mapped[int] = mapped_column(Integer)
    # By level: {"green": "...", "yellow": "...", "red": "..."}; a level may be left out.
    actions: Mapped[dict[str, str]] = mapped_column(JSONB)
    reason: Mapped[str] = mapped_column(Text)
    changed_by_sub: Mapped[str] = mapped_column(Text)
    changed_by_name: Mapped[str | None] = mapped_column(Text)
    changed_by_hpr: Mapped[str | None] = mapped_column(String(16))
    changed_by_org: Mapped[str] = mapped_column(String(9))
    changed_at: Mapped[datetime] = mapped_column(server_default=func.now())
