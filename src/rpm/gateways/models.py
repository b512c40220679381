"""Gateways: the ones an organisation registered, and what each gateway last did (mqtt.md)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from rpm.db import Base

# The contract's gateway id: 1-64 characters of A-Z a-z 0-9 . _ -
GATEWAY_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"


class Gateway(Base):
    """A gateway an organisation answers for: its rejected readings from devices nobody has
    registered are that organisation's to see and fix."""

    __tablename__ = "gateways"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    organisation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id"), index=True)
    registered_at: Mapped[datetime] = mapped_column(server_default=func.now())
    registered_by: Mapped[str] = mapped_column(Text)


class GatewayStatus(Base):
    """What the ingest workers last heard from a gateway, registered or not: the status it
    announced (retained, its last will) and when a message last came."""

    __tablename__ = "gateway_status"
    __table_args__ = (CheckConstraint("status in ('online', 'offline')", name="status_known"),)

    gateway_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str | None] = mapped_column(String(16))
    changed_at: Mapped[datetime | None]
    last_message_at: Mapped[datetime | None]
