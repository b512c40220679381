"""Large values written on the ingest path are compressed with lz4 instead of pglz.

PostgreSQL compresses a value once its row passes about 2 kB: a blood-pressure Observation
with its interpretation and reference ranges can, and so can alert events with their
references and large rejected payloads. Inserting 100,000 rows of 2 kB of such JSON took
1.0 s with lz4 and 1.3-1.9 s with pglz, for about the same size on disk. (In the ingest
benchmark few rows pass 2 kB, and no difference showed.) Only new values are affected; old
ones stay readable.

A server built without lz4 keeps pglz: the change is skipped, not failed.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 14:30:00
"""

from collections.abc import Sequence

from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (('observations', 'resource'), ('alert_events', 'alert'), ('rejected_readings', 'payload'))


def _set_compression(method: str) -> None:
    for table, column in COLUMNS:
        op.execute(
            f"""
            do $$ begin
                alter table {table} alter column {column} set compression {method};
            exception when feature_not_supported then
                raise notice 'this server has no {method}; {table}.{column} keeps its compression';
            end $$;
            """
        )


def upgrade() -> None:
    _set_compression('lz4')


def downgrade() -> None:
    _set_compression('pglz')
