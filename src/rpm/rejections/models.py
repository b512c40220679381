"""Readings and messages the ingest worker could not accept, kept with their raw payload."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, Index, LargeBinary, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from rpm.db import Base, uuid_pk


class RejectedReading(Base):
    __tablename__ = "rejected_readings"
    __table_args__ = (
        Index("ix_rejected_readings_serial_open", "device_serial", "reprocessed_at"),
        Index("ix_rejected_readings_received_at", "received_at"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    received_at: Mapped[datetime]
    topic: Mapped[str] = mapped_column(Text)
    gateway_id: Mapped[str | None] = mapped_column(String(64))
    reading_id: Mapped[str | None] = mapped_column(Text)
    device_serial: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    # The bytes as they came: the whole message when it could not be split into
    # readings, otherwise this one reading's JSON object.
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    # For a whole message kept as one rejection: the device serials its payload names.
    mentioned_serials: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    reprocessed_at: Mapped[datetime | None]
    reprocess_outcome: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
