"""The last status each gateway published on its status topic (mqtt.md)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from rpm.db import Base


class GatewayStatus(Base):
    __tablename__ = "gateway_status"
    __table_args__ = (CheckConstraint("status in ('online', 'offline')", name="status_known"),)

    gateway_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    changed_at: Mapped[datetime]
