"""Versioned per-patient records (threshold overrides, action plans): every change is a new
row with its version number, why, by whom and when, and the newest row is in force."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text, func
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from rpm.access.staff import Staff
from rpm.errors import Conflict


class ChangedBy:
    """The columns of one version: its number (unique per patient) and who changed it, when and
    why."""

    version: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    changed_by_sub: Mapped[str] = mapped_column(Text)
    changed_by_name: Mapped[str | None] = mapped_column(Text)
    changed_by_hpr: Mapped[str | None] = mapped_column(String(16))
    changed_by_org: Mapped[str] = mapped_column(String(9))
    changed_at: Mapped[datetime] = mapped_column(server_default=func.now())


async def add_version(session: AsyncSession, row: ChangedBy, staff: Staff, reason: str, conflict: Conflict) -> None:
    """Store `row` (its version set) as changed by `staff` for `reason`. Two changes at the same
    moment take the same version number: the later is refused with `conflict` (409) by the
    (patient, version) key."""
    row.reason = reason
    row.changed_by_sub, row.changed_by_name = staff.sub, staff.name
    row.changed_by_hpr, row.changed_by_org = staff.hpr, staff.orgnr
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as error:
        raise conflict from error
