"""Rules and alerts: threshold overrides, alerts with evidence, the alert event stream.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 09:38:08.132368
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('alerts',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('rule', sa.String(length=64), nullable=False),
    sa.Column('level', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('escalated', sa.Boolean(), nullable=False),
    sa.Column('escalated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('raised_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_reading_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('occurrences', sa.Integer(), nullable=False),
    sa.Column('value', sa.Double(), nullable=True),
    sa.Column('unit', sa.String(length=16), nullable=True),
    sa.Column('threshold', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('thresholds_version', sa.Integer(), nullable=False),
    sa.Column('acknowledged_by', sa.Text(), nullable=True),
    sa.Column('acknowledged_by_name', sa.Text(), nullable=True),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_by', sa.Text(), nullable=True),
    sa.Column('resolved_by_name', sa.Text(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("level in ('yellow', 'red')", name=op.f('ck_alerts_level_known')),
    sa.CheckConstraint("status <> 'resolved' or note is not null", name=op.f('ck_alerts_resolved_with_note')),
    sa.CheckConstraint("status in ('open', 'acknowledged', 'resolved')", name=op.f('ck_alerts_status_known')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_alerts_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts'))
    )
    op.create_index('ix_observations_patient_type_time', 'observations',
                    ['patient_id', 'reading_type', 'effective_at'], unique=False)
    op.create_index('ix_alerts_patient', 'alerts', ['patient_id', 'status'], unique=False)
    op.create_index('ix_alerts_queue', 'alerts', ['status', 'level', 'escalated', 'opened_at'], unique=False)
    op.create_index('uq_alerts_active_rule', 'alerts', ['patient_id', 'rule'], unique=True, postgresql_where=sa.text("status in ('open', 'acknowledged')"))
    op.create_table('threshold_overrides',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('bands', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('weight_gain', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('changed_by_sub', sa.Text(), nullable=False),
    sa.Column('changed_by_name', sa.Text(), nullable=True),
    sa.Column('changed_by_hpr', sa.String(length=16), nullable=True),
    sa.Column('changed_by_org', sa.String(length=9), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_threshold_overrides_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_threshold_overrides')),
    sa.UniqueConstraint('patient_id', 'version', name=op.f('uq_threshold_overrides_patient_id_version'))
    )
    op.create_table('alert_events',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('alert_id', sa.Uuid(), nullable=False),
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('alert', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_alert_events_alert_id_alerts')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_alert_events_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_events'))
    )
    op.create_index('ix_alert_events_patient', 'alert_events', ['patient_id', 'id'], unique=False)
    op.create_table('alert_observations',
    sa.Column('alert_id', sa.Uuid(), nullable=False),
    sa.Column('observation_id', sa.Uuid(), nullable=False),
    sa.Column('value', sa.Double(), nullable=True),
    sa.Column('effective_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_alert_observations_alert_id_alerts')),
    sa.ForeignKeyConstraint(['observation_id'], ['observations.id'], name=op.f('fk_alert_observations_observation_id_observations')),
    sa.PrimaryKeyConstraint('alert_id', 'observation_id', name=op.f('pk_alert_observations'))
    )


def downgrade() -> None:
    op.drop_table('alert_observations')
    op.drop_index('ix_alert_events_patient', table_name='alert_events')
    op.drop_table('alert_events')
    op.drop_table('threshold_overrides')
    op.drop_index('uq_alerts_active_rule', table_name='alerts', postgresql_where=sa.text("status in ('open', 'acknowledged')"))
    op.drop_index('ix_alerts_queue', table_name='alerts')
    op.drop_index('ix_alerts_patient', table_name='alerts')
    op.drop_table('alerts')
    op.drop_index('ix_observations_patient_type_time', table_name='observations')
