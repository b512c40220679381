"""Patients, their care team over time and their measurement plan."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import ARRAY, CheckConstraint, Date, ForeignKey, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from rpm.db import Base, uuid_pk
from rpm.organisations.models import Organisation


class Patient(Base):
    __tablename__ = "patients"
    __table_args__ = (CheckConstraint("status in ('active', 'ended')", name="status_known"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    identifier: Mapped[str] = mapped_column(String(11), unique=True)
    identifier_system: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    birth_date: Mapped[date] = mapped_column(Date)
    conditions: Mapped[list[str]] = mapped_column(ARRAY(String(32)), default=list)
    status: Mapped[str] = mapped_column(String(16), default="active")
    follow_up_ended_at: Mapped[datetime | None]
    # Days from enrolment in which readings alert only on the templates' red edges, after which
    # the service proposes thresholds from the patient's own readings (rules.baselines). None:
    # no start period (enrolled before there were any, or without one).
    start_period_days: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

    care_team: Mapped[list[CareTeamMember]] = relationship(
        back_populates="patient", lazy="raise", order_by="CareTeamMember.period_from"
    )
    measurement_plan: Mapped[list[MeasurementPlanItem]] = relationship(
        lazy="raise", order_by="MeasurementPlanItem.reading_type", cascade="all, delete-orphan"
    )


class CareTeamMember(Base):
    """An organisation following a patient from `period_from` to `period_to` (inclusive dates)."""

    __tablename__ = "care_team_members"
    __table_args__ = (CheckConstraint("period_to is null or period_to >= period_from", name="period_ordered"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"), index=True)
    period_from: Mapped[date] = mapped_column(Date)
    period_to: Mapped[date | None] = mapped_column(Date)

    patient: Mapped[Patient] = relationship(back_populates="care_team", lazy="raise")
    organisation: Mapped[Organisation] = relationship(lazy="raise")


class MeasurementPlanItem(Base):
    __tablename__ = "measurement_plan_items"
    __table_args__ = (CheckConstraint("every_hours > 0", name="every_hours_positive"),)

    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), primary_key=True)
    reading_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    every_hours: Mapped[int] = mapped_column(Integer)
