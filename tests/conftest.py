"""Session-wide servers and schema; per-test transactions that roll back; app and tokens.

- `database_url`: a scratch database on the real PostgreSQL, migrated with `alembic upgrade head`.
- `session`: a session inside a transaction rolled back after the test (nothing leaks).
- `client`: the API over ASGI, its request sessions joined to that same transaction.
- `committed`: sessions that really commit, for tests where a worker must see the data;
  such tests use fresh identifiers, serials and topic roots so they never collide, and
  `own_organisation` (a committed organisation of the test's own) rather than ORG_A.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rpm.access.tokens import mint_dev_token
from rpm.api.app import create_app
from rpm.api.deps import get_session
from rpm.config import Settings
from rpm.db import create_engine, session_factory
from rpm.ingest.worker import IngestWorker
from rpm.migrations import upgrade
from rpm.organisations.models import Organisation
from tests.fixtures.mqtt import Gateway
from tests.fixtures.servers import free_port, mqtt_broker, postgres_server, scratch_database
from tests.fixtures.world import add_organisation

ORG_A = "974600951"  # the care team's municipality in most tests
ORG_B = "999888777"  # another organisation, which must see nothing of ORG_A's patients


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with postgres_server() as maintenance, scratch_database(maintenance) as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def broker() -> Iterator[tuple[str, int]]:
    with mqtt_broker() as address:
        yield address


@pytest.fixture(scope="session")
def dev_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys") / "dev-key.pem"


@pytest.fixture
def settings(database_url: str, broker: tuple[str, int], dev_key: Path) -> Settings:
    host, port = broker
    return Settings(
        database_url=database_url,
        dev_auth=True,
        dev_key_path=dev_key,
        mqtt_url=f"mqtt://{host}:{port}",
        mqtt_topic_root=f"test-{uuid.uuid4().hex[:10]}/rpm/v1",
        mqtt_client_id=f"test-{uuid.uuid4().hex[:10]}",
        mqtt_session_expiry_seconds=60,
        metrics_port=0,
        ingest_flush_ms=20,
    )


@pytest.fixture(scope="session")
async def engine(database_url: str, dev_key: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(Settings(database_url=database_url, dev_key_path=dev_key), "rpm-tests")
    async with session_factory(engine)() as session, session.begin():
        for orgnr, name, kind in ((ORG_A, "Bergen kommune", "municipality"), (ORG_B, "Legekontoret", "gp-office")):
            session.add(Organisation(orgnr=orgnr, name=name, kind=kind))
    yield engine
    await engine.dispose()


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with engine.connect() as connection:
        transaction = await connection.begin()
        maker = async_sessionmaker(
            bind=connection, expire_on_commit=False, autoflush=False, join_transaction_mode="create_savepoint"
        )
        async with maker() as session:
            yield session
        await transaction.rollback()


@pytest.fixture
def committed(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
async def own_organisation(committed: async_sessionmaker[AsyncSession]) -> str:
    """A committed organisation of this test alone (its orgnr), for tests that commit: ORG_A is
    shared by the whole session, so its queue and stream also hold other tests' alerts."""
    return await add_organisation(committed)


@pytest.fixture
async def client(settings: Settings, engine: AsyncEngine, session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, engine=engine)

    async def test_session() -> AsyncIterator[AsyncSession]:
        # Like rpm.api.deps.get_session, inside the test's transaction: commit releases the
        # savepoint, rollback returns to it; the whole test transaction rolls back at the end.
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise

    app.dependency_overrides[get_session] = test_session
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://rpm.test") as http:
            yield http


class Tokens:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(
        self, org: str = ORG_A, *roles: str, sub: str = "staff-1", hpr: str | None = "1234567"
    ) -> dict[str, str]:
        token = mint_dev_token(self.settings, sub=sub, orgnr=org, roles=list(roles or ("nurse",)), hpr=hpr)
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def tokens(settings: Settings) -> Tokens:
    return Tokens(settings)


@pytest.fixture
async def live_api(settings: Settings, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    """The API served by uvicorn on a free port, with sessions that really commit (and the
    alert stream's LISTEN connection): for tests that stream or that a worker must see."""
    app = create_app(settings, engine=engine)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 30
    while not server.started:
        if task.done():
            task.result()
        assert time.monotonic() < deadline, "the API did not start listening"
        await asyncio.sleep(0.02)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.config.port}", timeout=15) as http:
        yield http
    server.should_exit = True
    await asyncio.wait_for(task, 15)


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[IngestWorker]:
    """The ingest worker running in this test's event loop; stopped (drained) after the test."""
    worker = IngestWorker(settings)
    await worker.start()
    task = asyncio.create_task(worker.run())
    deadline = time.monotonic() + 15
    while not worker.ready() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert worker.ready(), "the worker did not connect to the broker"
    yield worker
    worker.request_stop()
    await asyncio.wait_for(task, 15)


@pytest.fixture
def gateway(settings: Settings) -> Iterator[Gateway]:
    """A gateway publishing under this test's topic root and collecting its acks."""
    gateway = Gateway(settings.mqtt_host, settings.mqtt_port, settings.mqtt_topic_root)
    yield gateway
    gateway.close()
