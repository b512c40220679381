"""An index for an alert's newest evidence: queue items and stream events list the newest 50
of an alert's Observations, which a long-open alert can have thousands of.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 12:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_alert_observations_alert_time', 'alert_observations', ['alert_id', 'effective_at'])


def downgrade() -> None:
    op.drop_index('ix_alert_observations_alert_time', table_name='alert_observations')
