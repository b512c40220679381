"""Observations: no per-row foreign-key checks; patients and devices can never be deleted.

Every stored reading paid two foreign-key checks (a query each, run row by row): about a
sixth of a core at 9,000 readings/s, the largest single cost of storing a batch after the
rows themselves. The ids an Observation names are never taken from outside: the ingest
service reads them from the device's assignment (which has its own foreign keys) in the
same transaction that stores the reading. What a foreign key would still protect against
is the deletion of a patient or a device with readings, and that is refused here for every
patient and device: a health record is kept, and a patient's follow-up ends by status.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 12:50:00
"""

from collections.abc import Sequence

from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint('fk_observations_patient_id_patients', 'observations', type_='foreignkey')
    op.drop_constraint('fk_observations_device_id_devices', 'observations', type_='foreignkey')
    op.execute(
        """
        create function refuse_record_deletion() returns trigger language plpgsql as $$
        begin
            raise exception '% are never deleted: readings refer to them', tg_table_name;
        end $$;
        """
    )
    for table in ('patients', 'devices'):
        op.execute(
            f"create trigger {table}_never_deleted before delete or truncate on {table} "
            "for each statement execute function refuse_record_deletion()"
        )


def downgrade() -> None:
    for table in ('patients', 'devices'):
        op.execute(f"drop trigger {table}_never_deleted on {table}")
    op.execute("drop function refuse_record_deletion()")
    op.create_foreign_key('fk_observations_device_id_devices', 'observations', 'devices', ['device_id'], ['id'])
    op.create_foreign_key('fk_observations_patient_id_patients', 'observations', 'patients', ['patient_id'], ['id'])
