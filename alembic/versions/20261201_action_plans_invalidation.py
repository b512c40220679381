"""Self-management action plans, the action an alert carries, and readings entered in error.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'action_plans',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('patient_id', sa.Uuid(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('actions', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('changed_by_sub', sa.Text(), nullable=False),
        sa.Column('changed_by_name', sa.Text(), nullable=True),
        sa.Column('changed_by_hpr', sa.String(length=16), nullable=True),
        sa.Column('changed_by_org', sa.String(length=9), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_action_plans_patient_id_patients')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_action_plans')),
        sa.UniqueConstraint('patient_id', 'version', name=op.f('uq_action_plans_patient_id_version')),
    )
    # New columns without defaults: metadata only, no table rewrite.
    op.add_column('alerts', sa.Column('action', sa.Text(), nullable=True))
    op.add_column('alerts', sa.Column('action_plan_version', sa.Integer(), nullable=True))
    op.add_column('observations', sa.Column('invalidated_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('observations', sa.Column('invalidated_by_sub', sa.Text(), nullable=True))
    op.add_column('observations', sa.Column('invalidated_by_name', sa.Text(), nullable=True))
    op.add_column('observations', sa.Column('invalidation_reason', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('observations', 'invalidation_reason')
    op.drop_column('observations', 'invalidated_by_name')
    op.drop_column('observations', 'invalidated_by_sub')
    op.drop_column('observations', 'invalidated_at')
    op.drop_column('alerts', 'action_plan_version')
    op.drop_column('alerts', 'action')
    op.drop_table('action_plans')
