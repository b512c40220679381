"""Observations: drop the (patient, reading type, time) index.

A reading type is exactly one LOINC code, so (patient, code, time) answers the same
questions (the missing-measurement check, the last reading of each type), and every index
on this table is paid for by every reading stored.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 12:40:00
"""

from collections.abc import Sequence

from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index('ix_observations_patient_type_time', table_name='observations')


def downgrade() -> None:
    op.create_index('ix_observations_patient_type_time', 'observations', ['patient_id', 'reading_type', 'effective_at'])
