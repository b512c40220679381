"""Measuring devices and their assignment to a patient over time."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from rpm.db import Base, uuid_pk
from rpm.organisations.models import Organisation


class Device(Base):
    __tablename__ = "devices"

    id: Mapped[uuid.UUID] = uuid_pk()
    serial: Mapped[str] = mapped_column(String(128), unique=True)
    type: Mapped[str] = mapped_column(String(32))
    manufacturer: Mapped[str | None] = mapped_column(String(128))
    model: Mapped[str | None] = mapped_column(String(128))
    # The organisation that registered the device; it may see the device before assignment.
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())

    organisation: Mapped[Organisation] = relationship(lazy="raise")


class DeviceAssignment(Base):
    """The device belongs to the patient for readings taken in [valid_from, valid_to).

    The migration adds an exclusion constraint so that one device never has two
    overlapping assignments: a reading always has at most one patient.
    """

    __tablename__ = "device_assignments"
    __table_args__ = (CheckConstraint("valid_to is null or valid_to > valid_from", name="period_ordered"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    device_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("devices.id"), index=True)
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"), index=True)
    valid_from: Mapped[datetime]
    valid_to: Mapped[datetime | None]

    device: Mapped[Device] = relationship(lazy="raise")
