"""Gateway status: the last online/offline each gateway announced on its status topic.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 09:56:56.241038
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('gateway_status',
    sa.Column('gateway_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("status in ('online', 'offline')", name=op.f('ck_gateway_status_status_known')),
    sa.PrimaryKeyConstraint('gateway_id', name=op.f('pk_gateway_status'))
    )


def downgrade() -> None:
    op.drop_table('gateway_status')
