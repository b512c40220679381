"""Per-patient threshold overrides: every change is a new version, with who, when and why."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from rpm.db import Base, uuid_pk
from rpm.versions import ChangedBy


class ThresholdOverride(ChangedBy, Base):
    """The patient's complete set of overrides as of `version` (the newest row is in force)."""

    __tablename__ = "threshold_overrides"
    __table_args__ = (UniqueConstraint("patient_id", "version"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"))
    bands: Mapped[dict[str, Any]] = mapped_column(JSONB)  # code -> {"yellow": {...}, "red": {...}}
    weight_gain: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class ThresholdProposal(Base):
    """Bands proposed from a patient's own readings at the end of the start period, and the
    physician's decision on them: accepted, accepted with edits, or rejected."""

    __tablename__ = "threshold_proposals"
    __table_args__ = (UniqueConstraint("patient_id"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"))
    proposed_at: Mapped[datetime]
    period_from: Mapped[datetime]
    period_to: Mapped[datetime]
    bands: Mapped[dict[str, Any]] = mapped_column(JSONB)  # code -> {"yellow": {...}, "red": {...}}
    basis: Mapped[dict[str, Any]] = mapped_column(JSONB)  # code -> readings, percentiles, margin
    status: Mapped[str] = mapped_column(String(16))  # proposed, accepted, edited, rejected
    decided_at: Mapped[datetime | None]
    decided_by_sub: Mapped[str | None] = mapped_column(Text)
    decided_by_name: Mapped[str | None] = mapped_column(Text)
    decided_by_hpr: Mapped[str | None] = mapped_column(String(16))
    decided_by_org: Mapped[str | None] = mapped_column(String(9))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    thresholds_version: Mapped[int | None] = mapped_column(Integer)  # the overrides an acceptance made
