"""Keeping a rejection fails (a statement timeout, a constraint refusing the row): the message is
not acknowledged (no ack, no PUBACK), it comes back, and once the cause has gone it is recorded
exactly once. The readings behind it are not held up meanwhile.

Real processes: `rpm ingest` on a database of the test's own, where the failures are made by
PostgreSQL itself: a `statement_timeout` for the database and a lock on `rejected_readings`
held by the test (57014, as a long migration or VACUUM FULL would cause), and a trigger that
refuses the row (23514 check_violation). The reference gateway's resend timeout is longer than
the test, so a message that comes back comes back from the worker or the broker, not from a
resend.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from rpm.config import Settings
from rpm.db import create_engine, session_factory
from rpm.migrations import upgrade
from rpm.simulator.cohort import SimDevice
from rpm.simulator.gateway import ReferenceGateway, batches
from rpm.simulator.physiology import SimReading
from tests.fixtures.servers import scratch_database
from tests.fixtures.waiting import wait_until
from tests.fixtures.world import add_organisation, enrol_with_devices
from tests.reliability.processes import Worker, start_worker, stored

REFUSE_TRIGGER = """
create function refuse_rejection() returns trigger language plpgsql as $$
begin
    raise exception 'rejections are not kept now' using errcode = 'check_violation';
end $$;
create trigger refuse_rejection before insert on rejected_readings
    for each row execute function refuse_rejection();
"""


def body_weight(gateway_id: str, serial: str, reading_id: str, at: datetime) -> SimReading:
    device = SimDevice(serial=serial, type="body-weight", unit="kg", manufacturer="A&D", model="UC-352BLE")
    return SimReading(
        patient="test",
        gateway_id=gateway_id,
        id=reading_id,
        device=device,
        type="body-weight",
        time=at,
        value=81.5,
        values=None,
        unit="kg",
    )


def send_from_unknown_device(gateway: ReferenceGateway, reading_id: str) -> None:
    """A reading the worker must keep as a rejection (`unknown_device`)."""
    reading = body_weight(gateway.gateway_id, f"SN-unknown-{uuid.uuid4().hex[:8]}", reading_id, datetime.now(UTC))
    [(payload, _)] = batches([reading.to_contract()], datetime.now(UTC).isoformat())
    gateway.send_raw(payload, "unknown_device", reading_id)


def kept(url: str, reading_id: str) -> int:
    with psycopg.connect(url) as connection:
        row = connection.execute("select count(*) from rejected_readings where reading_id = %s", (reading_id,))
        return int((row.fetchone() or (0,))[0])


async def test_a_rejection_that_cannot_be_kept_yet_is_held_and_recorded_once_later(
    settings: Settings, database_url: str, tmp_path: Path
):
    maintenance = database_url.rsplit("/", 1)[0] + "/postgres"
    with scratch_database(maintenance) as url:
        name = url.rsplit("/", 1)[1].partition("?")[0]
        await asyncio.to_thread(upgrade, url)
        plain = url.replace("+asyncpg", "")
        with psycopg.connect(maintenance, autocommit=True) as connection:
            connection.execute(f"alter database \"{name}\" set statement_timeout = '1s'")
        own = settings.model_copy(update={"database_url": url})
        engine = create_engine(own, "rpm-tests-rejection-not-kept")
        sessions = session_factory(engine)
        log = tmp_path / "worker.log"
        worker: Worker | None = None
        gateway = ReferenceGateway(
            f"hub-{uuid.uuid4().hex[:8]}",
            own.mqtt_host,
            own.mqtt_port,
            topic_root=own.mqtt_topic_root,
            resend_after=300,
            resend_at_most=300,
        )
        try:
            organisation = await add_organisation(sessions)
            [scale] = await enrol_with_devices(sessions, organisation, ["body-weight"])
            worker = await asyncio.to_thread(start_worker, own, log)
            await asyncio.to_thread(gateway.connect)

            # 1. A statement timeout: the test holds a lock on the rejections' table.
            with psycopg.connect(plain) as locker:
                locker.execute("lock table rejected_readings in exclusive mode")
                send_from_unknown_device(gateway, "late-1")
                await wait_until(
                    lambda: worker.metric("rpm_ingest_message_failures_total") >= 1, "the message failing alone", 30
                )
                # Readings behind it are not held up by it.
                start = datetime.now(UTC) - timedelta(hours=1)
                fine = [
                    body_weight(gateway.gateway_id, scale.serial, f"ok-{n}", start + timedelta(minutes=n))
                    for n in range(20)
                ]
                gateway.send(fine)
                await wait_until(lambda: gateway.stats().accepted == 20, "the readings behind it accepted", 30)
                # It comes back, and fails again while the cause lasts.
                await wait_until(
                    lambda: worker.metric("rpm_ingest_message_failures_total") >= 2, "the message tried again", 30
                )
                assert gateway.pending_ids() == ["late-1"], "a message whose rejection was not kept was answered"
                assert kept(plain, "late-1") == 0
                timeouts = worker.metric("rpm_ingest_message_failures_total")
            # The lock released: the next try keeps the rejection, and only then it is answered.
            await asyncio.to_thread(gateway.wait_until_settled, 30)
            assert gateway.stats().rejected == {"unknown_device": 1}, gateway.stats().summary()
            assert kept(plain, "late-1") == 1
            assert "canceling statement due to statement timeout" in log.read_text()

            # 2. A constraint refusing the row, for as long as the worker runs: it stops with the
            # message unacknowledged, the broker keeps it in the worker's session, and the worker
            # started again after the cause has gone gets it back.
            with psycopg.connect(plain, autocommit=True) as connection:
                connection.execute(REFUSE_TRIGGER)
            send_from_unknown_device(gateway, "late-2")
            await wait_until(
                lambda: worker.metric("rpm_ingest_message_failures_total") >= timeouts + 1,
                "the message refused by the constraint failing alone",
                30,
            )
            assert await asyncio.to_thread(worker.stop) == 0
            assert "left unacknowledged; the broker keeps it" in log.read_text()
            assert gateway.pending_ids() == ["late-2"] and kept(plain, "late-2") == 0
            with psycopg.connect(plain, autocommit=True) as connection:
                connection.execute("drop trigger refuse_rejection on rejected_readings")
            worker = await asyncio.to_thread(start_worker, own, log)
            await asyncio.to_thread(gateway.wait_until_settled, 30)

            stats = gateway.stats()
            assert stats.rejected == {"unknown_device": 2} and stats.accepted == 20, stats.summary()
            assert stats.unexpected == [] and stats.stray_acks == 0 and stats.resent == 0, stats.summary()
            assert (kept(plain, "late-1"), kept(plain, "late-2")) == (1, 1)
            assert await stored(sessions, scale.device_id) == (20, 20)
            print(
                f"\nrejection not kept: {timeouts:.0f} failures under the statement timeout, "
                f"{worker.metric('rpm_ingest_message_failures_total'):.0f} after the restart; "
                f"gateway: {stats.summary()}"
            )
            assert await asyncio.to_thread(worker.stop) == 0
        finally:
            gateway.close(forget_session=True)
            if worker is not None:
                worker.kill()
            await engine.dispose()
