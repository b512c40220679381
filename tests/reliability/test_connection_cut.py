"""The database connection is cut in the middle of a batch's transaction, again and again during
a burst: every reading is stored exactly once, nothing is acknowledged that was not committed,
and the same worker process carries on.

Real processes: `rpm ingest` on a database of the test's own (so that only its connections are
cut), and PostgreSQL itself cutting them: a short lock on the observations table holds the next
batch inside its transaction, and `pg_terminate_backend` ends the worker's backend (tagged
`rpm-ingest`) that waits on it. The worker sees a real lost connection, not a raised exception.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import psycopg

from rpm.config import Settings
from rpm.db import create_engine, session_factory
from rpm.migrations import upgrade
from tests.fixtures.servers import scratch_database
from tests.fixtures.waiting import wait_until
from tests.fixtures.world import add_organisation, enrol_with_devices
from tests.reliability.processes import Burst, start_worker, stored

CUTS_WANTED = 12


class Cutter:
    """From a thread until stopped: holds a short lock on the observations table so that the
    worker's next batch is surely inside its transaction (its insert waits on the lock), then
    terminates that backend; counts the cuts."""

    def __init__(self, maintenance_url: str, database_url: str, database: str) -> None:
        self.maintenance_url, self.database_url, self.database = maintenance_url, database_url, database
        self.cuts = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with (
            psycopg.connect(self.maintenance_url, autocommit=True) as watcher,
            psycopg.connect(self.database_url) as locker,
        ):
            while not self.stop.is_set():
                with locker.transaction():
                    locker.execute("lock table observations in exclusive mode")
                    while not self.stop.is_set():
                        # A batch's insert waiting on the lock: its transaction is under way.
                        [cut] = watcher.execute(
                            "select count(*) filter (where pg_terminate_backend(pid)) from pg_stat_activity "
                            "where datname = %s and application_name = 'rpm-ingest' and wait_event_type = 'Lock'",
                            (self.database,),
                        ).fetchone() or (0,)
                        if cut:
                            self.cuts += cut
                            break
                        time.sleep(0.005)
                # Longer than the worker's first back-off: the batch cut is retried and commits,
                # and the next cut falls on another batch (cutting the same one again and again
                # only tests the back-off, ever longer).
                self.stop.wait(1.0)

    def start(self) -> None:
        self.thread.start()

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(10)


async def test_connections_cut_inside_batch_transactions_lose_and_double_nothing(
    settings: Settings, database_url: str, tmp_path: Path
):
    maintenance = database_url.rsplit("/", 1)[0] + "/postgres"
    with scratch_database(maintenance) as url:
        name = url.rsplit("/", 1)[1].partition("?")[0]
        await asyncio.to_thread(upgrade, url)
        own = settings.model_copy(update={"database_url": url})
        engine = create_engine(own, "rpm-tests-connection-cut")
        sessions = session_factory(engine)
        worker = burst = None
        cutter = Cutter(maintenance, url.replace("+asyncpg", ""), name)
        try:
            organisation = await add_organisation(sessions)
            [scale] = await enrol_with_devices(sessions, organisation, ["body-weight"])
            worker = await asyncio.to_thread(start_worker, own, tmp_path / "worker.log")
            pid = worker.process.pid
            burst = Burst(own.mqtt_url, own.mqtt_topic_root, scale.serial, total=3000, per_second=150)
            await asyncio.to_thread(burst.start)
            await wait_until(lambda: burst.answered() >= 200, "200 readings answered before the first cut", 60)

            cutter.start()
            started = time.monotonic()
            await wait_until(lambda: cutter.cuts >= CUTS_WANTED, f"{CUTS_WANTED} transactions cut", 45)
            cutter.finish()
            assert burst.answered() < len(burst.readings), "the burst ended before the cuts were made"
            cut_for = time.monotonic() - started

            await asyncio.to_thread(burst.finish, 180)
            assert worker.process.poll() is None and worker.process.pid == pid, "the worker did not carry on"
            stats = burst.gateway.stats()
            assert stats.unexpected == [] and stats.rejected == {}, stats.summary()
            # A lost connection is no fault of any message: every batch was retried whole.
            batch_failures = worker.metric("rpm_ingest_batch_failures_total")
            assert batch_failures >= 1
            assert worker.metric("rpm_ingest_message_failures_total") == 0
            assert await asyncio.to_thread(worker.stop) == 0
            total, distinct = await stored(sessions, scale.device_id)
            # Every reading is stored once: an ack for a batch that did not commit would have
            # left a hole here, as the gateway resends only what no ack named.
            assert (total, distinct) == (len(burst.readings), len(burst.readings))
            log = (tmp_path / "worker.log").read_text()
            assert log.count("ingest worker") == 2, "one start and one clean stop: no restart"
            print(
                f"\nconnection cut: {cutter.cuts} batch transactions cut in {cut_for:.1f} s; "
                f"{len(burst.readings)} readings sent, {total} stored, {distinct} distinct; "
                f"{batch_failures:.0f} batch failures; gateway: {stats.summary()}"
            )
        finally:
            cutter.finish()
            if burst is not None:
                burst.close()
            if worker is not None:
                worker.kill()
            await engine.dispose()
