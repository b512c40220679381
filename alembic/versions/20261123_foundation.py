"""Foundation: organisations, patients, devices, observations, rejected readings, audit.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 09:19:49.654677
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("create extension if not exists btree_gist")
    op.create_table('organisations',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('orgnr', sa.String(length=9), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("kind in ('municipality', 'gp-office', 'hospital-department')", name=op.f('ck_organisations_kind_known')),
    sa.CheckConstraint("orgnr ~ '^[0-9]{9}$'", name=op.f('ck_organisations_orgnr_nine_digits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organisations')),
    sa.UniqueConstraint('orgnr', name=op.f('uq_organisations_orgnr'))
    )
    op.create_table('patients',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('identifier', sa.String(length=11), nullable=False),
    sa.Column('identifier_system', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=False),
    sa.Column('conditions', sa.ARRAY(sa.String(length=32)), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('follow_up_ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status in ('active', 'ended')", name=op.f('ck_patients_status_known')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patients')),
    sa.UniqueConstraint('identifier', name=op.f('uq_patients_identifier'))
    )
    op.create_table('rejected_readings',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('topic', sa.Text(), nullable=False),
    sa.Column('gateway_id', sa.String(length=64), nullable=True),
    sa.Column('reading_id', sa.Text(), nullable=True),
    sa.Column('device_serial', sa.Text(), nullable=True),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('reprocessed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reprocess_outcome', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rejected_readings'))
    )
    op.create_index('ix_rejected_readings_received_at', 'rejected_readings', ['received_at'], unique=False)
    op.create_index('ix_rejected_readings_serial_open', 'rejected_readings', ['device_serial', 'reprocessed_at'], unique=False)
    op.create_table('audit_records',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('actor_sub', sa.Text(), nullable=False),
    sa.Column('actor_name', sa.Text(), nullable=True),
    sa.Column('actor_hpr', sa.String(length=16), nullable=True),
    sa.Column('actor_org', sa.String(length=9), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('resource_type', sa.String(length=32), nullable=False),
    sa.Column('resource_id', sa.Text(), nullable=True),
    sa.Column('patient_id', sa.Uuid(), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_audit_records_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_records'))
    )
    op.create_index(op.f('ix_audit_records_actor_org'), 'audit_records', ['actor_org'], unique=False)
    op.create_index('ix_audit_records_patient_at', 'audit_records', ['patient_id', 'at'], unique=False)
    op.create_table('care_team_members',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('organisation_id', sa.Uuid(), nullable=False),
    sa.Column('period_from', sa.Date(), nullable=False),
    sa.Column('period_to', sa.Date(), nullable=True),
    sa.CheckConstraint('period_to is null or period_to >= period_from', name=op.f('ck_care_team_members_period_ordered')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_care_team_members_organisation_id_organisations')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_care_team_members_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_care_team_members'))
    )
    op.create_index(op.f('ix_care_team_members_organisation_id'), 'care_team_members', ['organisation_id'], unique=False)
    op.create_index(op.f('ix_care_team_members_patient_id'), 'care_team_members', ['patient_id'], unique=False)
    op.create_table('devices',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('serial', sa.String(length=128), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('manufacturer', sa.String(length=128), nullable=True),
    sa.Column('model', sa.String(length=128), nullable=True),
    sa.Column('organisation_id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisations.id'], name=op.f('fk_devices_organisation_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_devices')),
    sa.UniqueConstraint('serial', name=op.f('uq_devices_serial'))
    )
    op.create_index(op.f('ix_devices_organisation_id'), 'devices', ['organisation_id'], unique=False)
    op.create_table('measurement_plan_items',
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('reading_type', sa.String(length=32), nullable=False),
    sa.Column('every_hours', sa.Integer(), nullable=False),
    sa.CheckConstraint('every_hours > 0', name=op.f('ck_measurement_plan_items_every_hours_positive')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_measurement_plan_items_patient_id_patients')),
    sa.PrimaryKeyConstraint('patient_id', 'reading_type', name=op.f('pk_measurement_plan_items'))
    )
    op.create_table('device_assignments',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('device_id', sa.Uuid(), nullable=False),
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('valid_to is null or valid_to > valid_from', name=op.f('ck_device_assignments_period_ordered')),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_device_assignments_device_id_devices')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_device_assignments_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_assignments'))
    )
    op.create_index(op.f('ix_device_assignments_device_id'), 'device_assignments', ['device_id'], unique=False)
    op.create_index(op.f('ix_device_assignments_patient_id'), 'device_assignments', ['patient_id'], unique=False)
    op.create_table('observations',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('patient_id', sa.Uuid(), nullable=False),
    sa.Column('device_id', sa.Uuid(), nullable=False),
    sa.Column('reading_type', sa.String(length=32), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('effective_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('value', sa.Double(), nullable=True),
    sa.Column('components', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('unit', sa.String(length=16), nullable=False),
    sa.Column('original_value', sa.JSON(), nullable=False),
    sa.Column('original_unit', sa.String(length=16), nullable=False),
    sa.Column('gateway_id', sa.String(length=64), nullable=False),
    sa.Column('reading_id', sa.String(length=128), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stored_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('resource', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_observations_device_id_devices')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_observations_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_observations')),
    sa.UniqueConstraint('gateway_id', 'reading_id', 'code', name='uq_observations_reading')
    )
    op.create_index('ix_observations_patient_code_time', 'observations', ['patient_id', 'code', 'effective_at'], unique=False)
    op.create_index('ix_observations_patient_time', 'observations', ['patient_id', 'effective_at'], unique=False)
    # One device never belongs to two patients at the same instant.
    op.execute(
        "alter table device_assignments add constraint ex_device_assignments_no_overlap "
        "exclude using gist (device_id with =, tstzrange(valid_from, valid_to) with &&)"
    )
    # The audit trail is append-only, whoever connects.
    op.execute(
        """
        create function audit_records_append_only() returns trigger language plpgsql as $$
        begin
            raise exception 'audit records are append-only';
        end $$;
        """
    )
    op.execute(
        "create trigger audit_records_append_only before update or delete on audit_records "
        "for each statement execute function audit_records_append_only()"
    )
    op.execute(
        "create trigger audit_records_no_truncate before truncate on audit_records "
        "for each statement execute function audit_records_append_only()"
    )


def downgrade() -> None:
    op.execute("drop trigger audit_records_no_truncate on audit_records")
    op.execute("drop trigger audit_records_append_only on audit_records")
    op.execute("drop function audit_records_append_only()")
    op.drop_index('ix_observations_patient_time', table_name='observations')
    op.drop_index('ix_observations_patient_code_time', table_name='observations')
    op.drop_table('observations')
    op.drop_index(op.f('ix_device_assignments_patient_id'), table_name='device_assignments')
    op.drop_index(op.f('ix_device_assignments_device_id'), table_name='device_assignments')
    op.drop_table('device_assignments')
    op.drop_table('measurement_plan_items')
    op.drop_index(op.f('ix_devices_organisation_id'), table_name='devices')
    op.drop_table('devices')
    op.drop_index(op.f('ix_care_team_members_patient_id'), table_name='care_team_members')
    op.drop_index(op.f('ix_care_team_members_organisation_id'), table_name='care_team_members')
    op.drop_table('care_team_members')
    op.drop_index('ix_audit_records_patient_at', table_name='audit_records')
    op.drop_index(op.f('ix_audit_records_actor_org'), table_name='audit_records')
    op.drop_table('audit_records')
    op.drop_index('ix_rejected_readings_serial_open', table_name='rejected_readings')
    op.drop_index('ix_rejected_readings_received_at', table_name='rejected_readings')
    op.drop_table('rejected_readings')
    op.drop_table('patients')
    op.drop_table('organisations')
