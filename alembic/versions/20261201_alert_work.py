"""Working an alert: assignment, comments and snooze; the staff members the service knows.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 19:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns and one constant default: metadata only, no rewrite of the alerts table.
    for name in ('assigned_to', 'assigned_to_name', 'assigned_by'):
        op.add_column('alerts', sa.Column(name, sa.Text(), nullable=True))
    op.add_column('alerts', sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('alerts', sa.Column('snoozed_until', sa.DateTime(timezone=True), nullable=True))
    op.add_column('alerts', sa.Column('snoozed_at', sa.DateTime(timezone=True), nullable=True))
    for name in ('snoozed_by', 'snoozed_by_name', 'snooze_reason', 'woken_by', 'woken_by_name'):
        op.add_column('alerts', sa.Column(name, sa.Text(), nullable=True))
    op.add_column('alerts', sa.Column('comments', sa.Integer(), server_default=sa.text('0'), nullable=False))
    op.create_check_constraint(
        op.f('ck_alerts_snoozed_with_reason'), 'alerts', 'snoozed_until is null or snooze_reason is not null'
    )
    op.create_check_constraint(op.f('ck_alerts_comments_counted'), 'alerts', 'comments >= 0')
    op.create_index(
        op.f('ix_alerts_assigned_to'), 'alerts', ['assigned_to'],
        postgresql_where=sa.text("assigned_to is not null and status in ('open', 'acknowledged')"),
    )
    op.create_table(
        'alert_comments',
        sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column('alert_id', sa.Uuid(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('by_sub', sa.Text(), nullable=False),
        sa.Column('by_name', sa.Text(), nullable=True),
        sa.Column('by_org', sa.String(length=9), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.CheckConstraint('length(text) between 1 and 4000', name=op.f('ck_alert_comments_text_length')),
        sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_alert_comments_alert_id_alerts')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_comments')),
    )
    op.create_index(op.f('ix_alert_comments_alert_id'), 'alert_comments', ['alert_id', 'id'])
    op.create_table(
        'staff_members',
        sa.Column('sub', sa.Text(), nullable=False),
        sa.Column('orgnr', sa.String(length=9), nullable=False),
        sa.Column('name', sa.Text(), nullable=True),
        sa.Column('hpr', sa.String(length=16), nullable=True),
        sa.Column('roles', postgresql.ARRAY(sa.String(length=16)), nullable=False),
        sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('sub', 'orgnr', name=op.f('pk_staff_members')),
    )
    # An organisation's staff, for the colleagues an alert can be assigned to.
    op.create_index(op.f('ix_staff_members_orgnr'), 'staff_members', ['orgnr'])


def downgrade() -> None:
    op.drop_index(op.f('ix_staff_members_orgnr'), table_name='staff_members')
    op.drop_table('staff_members')
    op.drop_index(op.f('ix_alert_comments_alert_id'), table_name='alert_comments')
    op.drop_table('alert_comments')
    op.drop_index(op.f('ix_alerts_assigned_to'), table_name='alerts')
    op.drop_constraint(op.f('ck_alerts_comments_counted'), 'alerts', type_='check')
    op.drop_constraint(op.f('ck_alerts_snoozed_with_reason'), 'alerts', type_='check')
    for name in ('comments', 'woken_by_name', 'woken_by', 'snooze_reason', 'snoozed_by_name', 'snoozed_by', 'snoozed_at', 'snoozed_until',
                 'assigned_at', 'assigned_by', 'assigned_to_name', 'assigned_to'):
        op.drop_column('alerts', name)
