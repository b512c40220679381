"""The staff members the service knows: everyone who has called it, by organisation.

Staff come from the identity provider's tokens, not from a register here; a staff member is
written down the first time a process sees them (and again when their name or roles change),
so that an alert can be assigned to a colleague by name and the assignment checked.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ARRAY, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from rpm.db import Base


class StaffMember(Base):
    __tablename__ = "staff_members"

    sub: Mapped[str] = mapped_column(Text, primary_key=True)
    # Indexed on its own: an organisation's staff are the colleagues an alert can be assigned to.
    orgnr: Mapped[str] = mapped_column(String(9), primary_key=True, index=True)
    name: Mapped[str | None] = mapped_column(Text)
    hpr: Mapped[str | None] = mapped_column(String(16))
    roles: Mapped[list[str]] = mapped_column(ARRAY(String(16)))
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
