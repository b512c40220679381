"""PostgreSQL refuses connections during a burst: the worker keeps every message unacknowledged
(no PUBACK, no ack), retries with back-off and carries on when the database is back; the API
answers 503 on /readyz meanwhile and recovers by itself. Nothing is lost or stored twice.

Real processes (`rpm ingest`, `rpm api`) on a database of the test's own, which is made to
refuse connections (`ALTER DATABASE ... ALLOW_CONNECTIONS false`, every session of it
terminated), as a database server does while it restarts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg

from rpm.config import Settings
from rpm.db import create_engine, session_factory
from rpm.migrations import upgrade
from tests.fixtures.servers import scratch_database
from tests.fixtures.waiting import wait_until
from tests.fixtures.world import add_organisation, enrol_with_devices
from tests.reliability.processes import Burst, start_api, start_worker, stored


def refuse_connections(maintenance_url: str, name: str) -> None:
    with psycopg.connect(maintenance_url, autocommit=True) as connection:
        connection.execute(f'alter database "{name}" allow_connections false')
        connection.execute("select pg_terminate_backend(pid) from pg_stat_activity where datname = %s", (name,))


def allow_connections(maintenance_url: str, name: str) -> None:
    with psycopg.connect(maintenance_url, autocommit=True) as connection:
        connection.execute(f'alter database "{name}" allow_connections true')


async def test_the_database_refusing_connections_mid_burst_loses_nothing(
    settings: Settings, database_url: str, dev_key: Path, tmp_path: Path
):
    maintenance = database_url.rsplit("/", 1)[0] + "/postgres"
    with scratch_database(maintenance) as url:
        name = url.rsplit("/", 1)[1].partition("?")[0]
        await asyncio.to_thread(upgrade, url)
        own = settings.model_copy(update={"database_url": url})
        engine = create_engine(own, "rpm-tests-database-away")
        sessions = session_factory(engine)
        worker = api = burst = None
        try:
            organisation = await add_organisation(sessions)
            [scale] = await enrol_with_devices(sessions, organisation, ["body-weight"])
            worker = await asyncio.to_thread(start_worker, own, tmp_path / "worker.log")
            api = await asyncio.to_thread(start_api, url, dev_key, tmp_path / "api.log")
            burst = Burst(own.mqtt_url, own.mqtt_topic_root, scale.serial)
            await asyncio.to_thread(burst.start)
            await wait_until(lambda: burst.answered() >= 500, "500 readings answered before the database went", 60)

            await asyncio.to_thread(refuse_connections, maintenance, name)
            assert burst.answered() < len(burst.readings), "the burst ended before the database went away"
            await wait_until(lambda: api.readiness() == 503, "the API not ready while the database refuses", 30)
            await wait_until(
                lambda: worker.metric("rpm_ingest_batch_failures_total") >= 3, "the worker retrying its batch", 60
            )
            held = burst.answered()
            assert worker.ready(), "the worker stays subscribed while the database is away"

            await asyncio.to_thread(allow_connections, maintenance, name)
            await wait_until(lambda: api.readiness() == 200, "the API ready again, without a restart", 60)
            await asyncio.to_thread(burst.finish, 180)
            assert burst.answered() > held
            assert worker.process.poll() is None and api.process.poll() is None, "a process gave up"
            stats = burst.gateway.stats()
            assert stats.unexpected == [] and stats.rejected == {}, stats.summary()
            # The database being away is no fault of any message: none was set aside.
            assert worker.metric("rpm_ingest_message_failures_total") == 0
            assert await asyncio.to_thread(worker.stop) == 0
            assert await asyncio.to_thread(api.stop) == 0
            total, distinct = await stored(sessions, scale.device_id)
            assert (total, distinct) == (len(burst.readings), len(burst.readings))
        finally:
            allow_connections(maintenance, name)
            if burst is not None:
                burst.close()
            for process in (worker, api):
                if process is not None:
                    process.kill()
            await engine.dispose()
