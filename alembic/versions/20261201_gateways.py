"""Registered gateways, when each gateway last sent a message, rejected readings by gateway,
and the outcome recorded when an alert is resolved.

A rejected reading belongs to the organisation of its device, else of its gateway (api.md):
`gateways` records which organisation answers for a gateway. `gateway_status` gains the
time of the last message, so a row may now exist before any status was announced.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 10:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'gateways',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('organisation_id', sa.Uuid(), nullable=False),
        sa.Column('registered_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('registered_by', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ['organisation_id'], ['organisations.id'], name=op.f('fk_gateways_organisation_id_organisations')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_gateways')),
    )
    op.create_index(op.f('ix_gateways_organisation_id'), 'gateways', ['organisation_id'], unique=False)
    op.alter_column('gateway_status', 'status', existing_type=sa.String(length=16), nullable=True)
    op.alter_column('gateway_status', 'changed_at', existing_type=sa.DateTime(timezone=True), nullable=True)
    op.add_column('gateway_status', sa.Column('last_message_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_rejected_readings_gateway_received', 'rejected_readings', ['gateway_id', 'received_at'])
    # The serials a whole message kept as one rejection names, for rows kept before this too.
    op.add_column('rejected_readings', sa.Column('mentioned_serials', sa.ARRAY(sa.Text()), nullable=True))
    op.execute(
        """
        update rejected_readings set mentioned_serials = array(
            select distinct (regexp_matches(encode(payload, 'escape'), '"serial"\\s*:\\s*"([^"]{1,128})"', 'g'))[1]
        )
        where device_serial is null
        """
    )
    op.add_column('alerts', sa.Column('outcome', sa.String(length=32), nullable=True))
    op.create_check_constraint(
        op.f('ck_alerts_outcome_known'),
        'alerts',
        "outcome is null or outcome in ('contacted-patient', 'advice-given', 'referred-to-gp', "
        "'referred-to-emergency', 'no-action-needed')",
    )


def downgrade() -> None:
    op.drop_constraint(op.f('ck_alerts_outcome_known'), 'alerts', type_='check')
    op.drop_column('alerts', 'outcome')
    op.drop_column('rejected_readings', 'mentioned_serials')
    op.drop_index('ix_rejected_readings_gateway_received', table_name='rejected_readings')
    op.drop_column('gateway_status', 'last_message_at')
    op.execute("delete from gateway_status where status is null")
    op.alter_column('gateway_status', 'changed_at', existing_type=sa.DateTime(timezone=True), nullable=False)
    op.alter_column('gateway_status', 'status', existing_type=sa.String(length=16), nullable=False)
    op.drop_index(op.f('ix_gateways_organisation_id'), table_name='gateways')
    op.drop_table('gateways')
