"""Per-patient action plans, agreed with the GP: every change is a new version, with who,
when and why (like threshold overrides)."""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from rpm.db import Base, uuid_pk
from rpm.versions import ChangedBy


class ActionPlan(ChangedBy, Base):
    """The patient's plan as of `version` (the newest row is in force)."""

    __tablename__ = "action_plans"
    __table_args__ = (UniqueConstraint("patient_id", "version"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"))
    # By level: {"green": "...", "yellow": "...", "red": "..."}; a level may be left out.
    actions: Mapped[dict[str, str]] = mapped_column(JSONB)
