"""Observations the service derives (a NEWS2 score) come from no device.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 17:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Metadata only: dropping NOT NULL neither rewrites nor scans the table.
    op.alter_column('observations', 'device_id', nullable=True)


def downgrade() -> None:
    # Refused while derived Observations exist: they would have to be deleted first, which
    # loses what the staff saw.
    op.alter_column('observations', 'device_id', nullable=False)
