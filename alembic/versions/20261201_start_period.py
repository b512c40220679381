"""A start period per patient, and the thresholds proposed from it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Null for the patients enrolled before start periods existed: they have none, so the
    # upgrade proposes nothing for them.
    op.add_column('patients', sa.Column('start_period_days', sa.Integer(), nullable=True))
    op.create_table(
        'threshold_proposals',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('patient_id', sa.Uuid(), nullable=False),
        sa.Column('proposed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('period_from', sa.DateTime(timezone=True), nullable=False),
        sa.Column('period_to', sa.DateTime(timezone=True), nullable=False),
        sa.Column('bands', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('basis', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('decided_by_sub', sa.Text(), nullable=True),
        sa.Column('decided_by_name', sa.Text(), nullable=True),
        sa.Column('decided_by_hpr', sa.String(length=16), nullable=True),
        sa.Column('decided_by_org', sa.String(length=9), nullable=True),
        sa.Column('decision_reason', sa.Text(), nullable=True),
        sa.Column('thresholds_version', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ['patient_id'], ['patients.id'], name=op.f('fk_threshold_proposals_patient_id_patients')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_threshold_proposals')),
        # A start period happens once: one proposal per patient.
        sa.UniqueConstraint('patient_id', name=op.f('uq_threshold_proposals_patient_id')),
    )


def downgrade() -> None:
    op.drop_table('threshold_proposals')
    op.drop_column('patients', 'start_period_days')
