"""Service hours, escalation and the out-of-hours partner of each organisation; an alert's
service-hours flag and its hand-over.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 17:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Null: the defaults (weekdays 08:00-15:30 Europe/Oslo without Norwegian public holidays).
    op.add_column('organisations', sa.Column('service_hours', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    # Null: the service's RPM_ESCALATE_RED_MINUTES.
    op.add_column('organisations', sa.Column('escalate_red_minutes', sa.Integer(), nullable=True))
    op.add_column('organisations', sa.Column('out_of_hours_partner_id', sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f('fk_organisations_out_of_hours_partner_id_organisations'),
        'organisations', 'organisations', ['out_of_hours_partner_id'], ['id'],
    )
    # A constant default: PostgreSQL adds it without rewriting the table.
    op.add_column(
        'alerts',
        sa.Column('outside_service_hours', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    )
    op.add_column('alerts', sa.Column('handed_over_to', sa.Uuid(), nullable=True))
    op.add_column('alerts', sa.Column('handed_over_at', sa.DateTime(timezone=True), nullable=True))
    # The partner's queue: its active hand-overs.
    op.create_index(
        op.f('ix_alerts_handed_over_to'), 'alerts', ['handed_over_to'],
        postgresql_where=sa.text("handed_over_to is not null and status in ('open', 'acknowledged')"),
    )


def downgrade() -> None:
    op.drop_index(op.f('ix_alerts_handed_over_to'), table_name='alerts')
    op.drop_column('alerts', 'handed_over_at')
    op.drop_column('alerts', 'handed_over_to')
    op.drop_column('alerts', 'outside_service_hours')
    op.drop_constraint(
        op.f('fk_organisations_out_of_hours_partner_id_organisations'), 'organisations', type_='foreignkey'
    )
    op.drop_column('organisations', 'out_of_hours_partner_id')
    op.drop_column('organisations', 'escalate_red_minutes')
    op.drop_column('organisations', 'service_hours')
