"""Alembic environment: the one metadata of `rpm.models`, the URL from the settings."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from rpm.config import get_settings
from rpm.db import async_url, database_url
from rpm.models import Base

target_metadata = Base.metadata


def _url() -> str:
    return context.config.attributes.get("database_url") or database_url(get_settings())


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        # Two operators migrating at once must not interleave.
        connection.exec_driver_sql("select pg_advisory_xact_lock(7345001)")
        context.run_migrations()


async def _run_online() -> None:
    url, connect_args = async_url(_url())
    connect_args["server_settings"] = {"application_name": "rpm-migrate"}
    engine = create_async_engine(url, connect_args=connect_args)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
