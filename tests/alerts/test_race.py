"""One active alert per patient and rule, also when several workers write at the same moment.

Each transaction here has its own connection and really commits. To be sure the transactions
overlap, the first one keeps its transaction open after its work until every other one is
seen waiting on a lock in pg_stat_activity (or has finished), and only then commits. (Holding
every transaction open until all are done would deadlock against a correct implementation:
the others wait for the first one's commit inside their work.)
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rpm.alerts.models import Alert, AlertEvent, AlertObservation
from rpm.config import Settings
from rpm.db import create_engine, session_factory
from rpm.patients.models import Patient
from rpm.pipeline import IncomingMessage, RulesReport, record_messages, run_clock_rules
from tests.fixtures.world import enrol_with_devices

SPO2_LOW = "threshold:59408-5:low"
MISSING_WEIGHT = "missing:body-weight"
TOPIC_ROOT = "rpm/v1"
WAIT = 30.0  # seconds for the others to be seen waiting


@pytest.fixture
async def workers(database_url: str, dev_key: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Committing sessions like `committed`, with a pool big enough for 20 open transactions
    at once (the shared engine allows 15), under an application name of their own."""
    engine = create_engine(
        Settings(database_url=database_url, dev_key_path=dev_key, db_pool_size=25), "rpm-race-worker"
    )
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def retire(committed: async_sessionmaker[AsyncSession]) -> AsyncIterator[list[uuid.UUID]]:
    """Patients whose follow-up ends after the test, their active alerts resolved, so that the
    sweeps of ingest workers in later tests (real clock, committed) never act on them."""
    patients: list[uuid.UUID] = []
    yield patients
    if patients:
        async with committed() as session, session.begin():
            await session.execute(update(Patient).where(Patient.id.in_(patients)).values(status="ended"))
            await session.execute(
                update(Alert)
                .where(Alert.patient_id.in_(patients), Alert.status != "resolved")
                .values(status="resolved", resolved_at=datetime.now(UTC), resolved_by="test", note="test cleanup")
            )


async def overlapping(
    sessions: async_sessionmaker[AsyncSession],
    monitor: async_sessionmaker[AsyncSession],
    jobs: list[Callable[[AsyncSession], Awaitable[Any]]],
) -> tuple[list[Any], int]:
    """Run each job in a transaction of its own and commit it; return their results and how
    many of the other jobs were seen waiting on a lock while jobs[0]'s transaction was open.

    jobs[0] runs first and holds its transaction open until each other job is waiting on a
    lock or done; the others all start together, once jobs[0]'s work is done.
    """
    first_done, release = asyncio.Event(), asyncio.Event()
    pids: list[int] = []

    async def run(job: Callable[[AsyncSession], Awaitable[Any]], holder: bool) -> Any:
        async with sessions() as session, session.begin():
            pids.append(await session.scalar(text("select pg_backend_pid()")))
            result = await job(session)
            if holder:
                first_done.set()
                await release.wait()
        return result

    holder = asyncio.create_task(run(jobs[0], True))
    waiting = 0
    try:
        signal = asyncio.create_task(first_done.wait())
        await asyncio.wait([holder, signal], timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
        signal.cancel()
        if holder.done():
            holder.result()  # the first job failed: its error, not a timeout
        assert first_done.is_set(), "the first transaction did not finish its work"
        others = [asyncio.create_task(run(job, False)) for job in jobs[1:]]
        try:
            async with asyncio.timeout(WAIT):
                while True:
                    async with monitor() as watcher:
                        waiting = await watcher.scalar(
                            text(
                                "select count(*) from pg_stat_activity "
                                "where pid = any(:pids) and wait_event_type = 'Lock'"
                            ),
                            {"pids": pids[1:]},
                        )
                    if waiting + sum(task.done() for task in others) >= len(others):
                        break
                    await asyncio.sleep(0.01)
        except TimeoutError:
            pytest.fail(f"only {waiting} of {len(others)} transactions were seen overlapping the first")
        finally:
            release.set()
        return [await holder, *await asyncio.gather(*others)], waiting
    finally:
        release.set()
        await asyncio.gather(holder, return_exceptions=True)


def spo2_message(serial: str, value: float, at: datetime) -> tuple[IncomingMessage, str]:
    reading_id = f"r-{uuid.uuid4().hex}"
    payload = {
        "id": reading_id,
        "device": {"serial": serial},
        "type": "spo2",
        "time": at.isoformat(),
        "value": value,
        "unit": "%",
    }
    topic = f"{TOPIC_ROOT}/gateways/gw-{uuid.uuid4().hex[:16]}/measurements"
    return IncomingMessage(topic, json.dumps(payload).encode(), at + timedelta(seconds=5)), reading_id


def recording(serial: str, value: float, at: datetime) -> Callable[[AsyncSession], Awaitable[list[dict]]]:
    message, reading_id = spo2_message(serial, value, at)

    async def job(session: AsyncSession) -> list[dict]:
        report = RulesReport()
        [outcome] = await record_messages(session, [message], now=message.received_at, report=report)
        assert report.errors == 0, "the rules failed in a concurrent transaction"
        assert outcome.results == [{"id": reading_id, "status": "accepted"}], outcome.results
        return outcome.results

    return job


async def active_alerts(sessions: async_sessionmaker[AsyncSession], patient_id: uuid.UUID, rule: str) -> list[Alert]:
    async with sessions() as session:
        return list(
            await session.scalars(
                select(Alert).where(
                    Alert.patient_id == patient_id, Alert.rule == rule, Alert.status.in_(("open", "acknowledged"))
                )
            )
        )


async def check_one_alert(
    committed: async_sessionmaker[AsyncSession], patient_id: uuid.UUID, occurrences: int, level: str
) -> None:
    found = await active_alerts(committed, patient_id, SPO2_LOW)
    assert len(found) == 1, f"{len(found)} active alerts for one patient and rule"
    [alert] = found
    assert (alert.occurrences, alert.level) == (occurrences, level)
    async with committed() as session:
        assert len(list(await session.scalars(select(Alert.id).where(Alert.patient_id == patient_id)))) == 1
        evidence = list(await session.scalars(select(AlertObservation).where(AlertObservation.alert_id == alert.id)))
        assert len(evidence) == occurrences
        events = list(await session.scalars(select(AlertEvent).where(AlertEvent.alert_id == alert.id)))
    kinds = [e.kind for e in sorted(events, key=lambda e: e.id)]
    assert kinds == ["opened"] + ["changed"] * (occurrences - 1)
    # Event ids follow commit order, so occurrences in the events only grow.
    assert [e.alert["occurrences"] for e in sorted(events, key=lambda e: e.id)] == list(range(1, occurrences + 1))


async def test_two_overlapping_transactions_make_one_alert(committed, workers, retire, own_organisation):
    [device] = await enrol_with_devices(committed, own_organisation, ["spo2"], conditions=["copd"])
    retire.append(device.patient_id)
    now = datetime.now(UTC)
    results, waiting = await overlapping(
        workers,
        committed,
        [recording(device.serial, 85, now - timedelta(minutes=2)), recording(device.serial, 83, now)],
    )
    assert len(results) == 2
    await check_one_alert(committed, device.patient_id, occurrences=2, level="red")
    assert waiting == 1, "the second transaction never waited for the first"


async def test_two_transactions_started_together_make_one_alert(committed, workers, retire, own_organisation):
    """Both sessions open a transaction, meet at a barrier, then record at the same moment."""
    [device] = await enrol_with_devices(committed, own_organisation, ["spo2"], conditions=["copd"])
    retire.append(device.patient_id)
    now = datetime.now(UTC)
    barrier = asyncio.Barrier(2)

    async def run(value: float, at: datetime) -> None:
        job = recording(device.serial, value, at)
        async with workers() as session, session.begin():
            await session.execute(text("select 1"))
            await barrier.wait()
            await job(session)

    for round_ in range(5):
        await asyncio.wait_for(
            asyncio.gather(run(85, now - timedelta(minutes=10 - round_)), run(83, now - timedelta(seconds=round_))),
            WAIT,
        )
    await check_one_alert(committed, device.patient_id, occurrences=10, level="red")


async def test_twenty_concurrent_transactions_make_one_alert(committed, workers, retire, own_organisation):
    [device] = await enrol_with_devices(committed, own_organisation, ["spo2"], conditions=["copd"])
    retire.append(device.patient_id)
    now = datetime.now(UTC)
    jobs = [recording(device.serial, 85 if n % 2 else 83, now - timedelta(seconds=n)) for n in range(20)]
    results, waiting = await overlapping(workers, committed, jobs)
    assert len(results) == 20
    await check_one_alert(committed, device.patient_id, occurrences=20, level="red")
    assert waiting == 19, f"only {waiting} of 19 transactions waited for the first"
    [alert] = await active_alerts(committed, device.patient_id, SPO2_LOW)
    assert alert.threshold == {"low": 84}


async def test_concurrent_missing_checks_open_one_alert(committed, workers, retire, own_organisation):
    """The clock rules run in the ingest worker and in schedulers, several at once (rules.md)."""
    [device] = await enrol_with_devices(committed, own_organisation, ["body-weight"], plan={"body-weight": 24})
    patient_id = device.patient_id
    retire.append(patient_id)
    # Enrolled in 2019 with no weighing: overdue on a 2019 clock, where no other test's data is.
    enrolled = datetime(2019, 5, 1, 6, 0, tzinfo=UTC)
    now = enrolled + timedelta(hours=24 + 2, seconds=1)
    async with committed() as session, session.begin():
        await session.execute(update(Patient).where(Patient.id == patient_id).values(created_at=enrolled))

    async def check(session: AsyncSession) -> int:
        return await run_clock_rules(session, now, timedelta(hours=2))

    opened, waiting = await overlapping(workers, committed, [check, check])
    assert sorted(opened) == [0, 1]
    assert waiting == 1, "the second check never waited for the first"

    async def again() -> None:
        async with committed() as session, session.begin():
            assert await check(session) == 0

    await asyncio.wait_for(asyncio.gather(again(), again()), WAIT)
    found = await active_alerts(committed, patient_id, MISSING_WEIGHT)
    assert len(found) == 1
    assert (found[0].level, found[0].occurrences) == ("yellow", 1)
    async with committed() as session:
        assert len(list(await session.scalars(select(Alert.id).where(Alert.patient_id == patient_id)))) == 1


async def test_the_partial_unique_index_guards_active_alerts(session, committed, own_organisation):
    """The guarantee lives in the database: a second active alert for the same patient and
    rule cannot be inserted by any code path; resolved ones can be many."""
    definition = await session.scalar(
        text("select indexdef from pg_indexes where tablename = 'alerts' and indexname = 'uq_alerts_active_rule'")
    )
    assert definition is not None, "the partial unique index is missing"
    assert "UNIQUE" in definition and "(patient_id, rule)" in definition and "WHERE" in definition

    [device] = await enrol_with_devices(committed, own_organisation, ["spo2"], conditions=["copd"])
    insert = text(
        "insert into alerts (id, patient_id, rule, level, status, escalated, late, opened_at, raised_at,"
        " occurrences, thresholds_version, updated_at, note)"
        " values (:id, :patient, :rule, 'yellow', :status, false, false, now(), now(), 1, 0, now(), :note)"
    )

    async def add(status: str, rule: str = SPO2_LOW) -> None:
        note = "done" if status == "resolved" else None
        await session.execute(
            insert, {"id": uuid.uuid4(), "patient": device.patient_id, "rule": rule, "status": status, "note": note}
        )

    await add("resolved")
    await add("resolved")
    await add("open")
    for status in ("open", "acknowledged"):
        with pytest.raises(IntegrityError, match="uq_alerts_active_rule"):
            async with session.begin_nested():
                await add(status)
    await add("open", rule="threshold:59408-5:high")  # another rule is another alert
    await add("resolved")
