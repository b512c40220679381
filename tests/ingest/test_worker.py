"""The ingest worker against the real broker and database: acks, storage, de-duplication."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from rpm.config import MqttProtocol, Settings
from rpm.devices import repository as devices
from rpm.devices.models import DeviceAssignment
from rpm.errors import ServiceUnavailable
from rpm.gateways.models import GatewayStatus
from rpm.ingest.worker import IngestWorker
from rpm.observations.models import Observation
from rpm.rejections.models import RejectedReading
from tests.fixtures.mqtt import Gateway, reading
from tests.fixtures.servers import free_port, scratch_database
from tests.fixtures.waiting import wait_until
from tests.fixtures.world import enrol_with_devices


@pytest.fixture
def now() -> datetime:
    """This test's clock reading, taken as it starts (not when the module was imported):
    readings stamped relative to it keep their place against the worker's windows (10 minutes
    into the future, 24 hours late) however long the session has run before the test."""
    return datetime.now(UTC).replace(microsecond=0)


def new_hub() -> str:
    """A gateway id of this test alone: (gateway, reading id) identifies a reading system-wide."""
    return f"hub-{uuid.uuid4().hex[:8]}"


def iso(moment: datetime) -> str:
    return moment.isoformat()


async def acks(gateway: Gateway, count: int) -> list:
    return await asyncio.to_thread(gateway.wait_for_acks, count)


async def test_example_payload_of_the_contract_is_stored_and_acknowledged(
    worker, gateway, committed, own_organisation, now
):
    hub = new_hub()
    bp, scale = await enrol_with_devices(committed, own_organisation, ["blood-pressure", "body-weight"])
    t = now - timedelta(minutes=1)
    gateway.publish(
        hub,
        {
            "sent_at": iso(now),
            "readings": [
                {
                    "id": "r-000123",
                    "device": {"serial": bp.serial, "manufacturer": "A&D", "model": "UA-651BLE"},
                    "type": "blood-pressure",
                    "time": t.astimezone().isoformat(),
                    "values": {"systolic": 142, "diastolic": 91, "pulse": 77},
                    "unit": "mm[Hg]",
                },
                reading("r-000124", scale.serial, "body-weight", iso(t), 81.4, "kg"),
            ],
        },
    )
    [(gateway_id, document)] = await acks(gateway, 1)
    assert gateway_id == hub
    assert document == {"results": [{"id": "r-000123", "status": "accepted"}, {"id": "r-000124", "status": "accepted"}]}
    async with committed() as session:
        rows = (
            await session.scalars(
                select(Observation).where(Observation.patient_id == bp.patient_id).order_by(Observation.code)
            )
        ).all()
    assert {(r.code, r.value) for r in rows} == {("29463-7", 81.4), ("8867-4", 77.0), ("85354-9", None)}
    panel = next(r for r in rows if r.code == "85354-9")
    assert panel.components == {"8480-6": 142.0, "8462-4": 91.0}
    assert panel.resource["identifier"] == [{"system": "urn:rpm:reading", "value": f"{hub}/r-000123"}]


async def test_converted_units_and_every_rejection_kept(worker, gateway, committed, own_organisation, now):
    hub = new_hub()
    [scale] = await enrol_with_devices(committed, own_organisation, ["body-weight"])
    t = iso(now - timedelta(hours=30))  # late data is accepted
    gateway.publish(
        hub,
        {
            "readings": [
                reading("a", scale.serial, "body-weight", t, 180.0, "[lb_av]"),
                reading("b", "NO-SUCH-SERIAL", "body-weight", t, 80.0, "kg"),
                reading("c", scale.serial, "body-weight", "2026-11-23T07:58:02", 80.0, "kg"),
                reading("d", scale.serial, "body-weight", t, 80.0, "stone"),
                reading("e", scale.serial, "body-weight", t, 900.0, "kg"),
                reading("f", scale.serial, "body-weight", iso(now + timedelta(hours=1)), 80.0, "kg"),
                reading("g", scale.serial, "blood-sugar", t, 5.0, "mmol/L"),
                {"id": "h", "device": {"serial": scale.serial}, "type": "body-weight", "time": t, "unit": "kg"},
            ]
        },
    )
    gateway.publish(hub, b"\xff not json")
    gateway.publish("bad gateway id", b"{}", topic=f"{gateway.root}/gateways/bad!id/measurements")
    gateway.publish(hub, {"readings": "nope"})
    acknowledged = await acks(gateway, 3)
    results = [r for _, doc in acknowledged for r in doc["results"]]
    by_id = {r["id"]: r for r in results if r["id"]}
    assert by_id["a"]["status"] == "accepted"
    assert {k: by_id[k]["reason"] for k in "bcdefgh"} == {
        "b": "unknown_device",
        "c": "time_without_offset",
        "d": "bad_unit",
        "e": "implausible_value",
        "f": "time_in_future",
        "g": "unknown_type",
        "h": "schema",
    }
    assert "value" in by_id["h"]["detail"]
    assert sorted(r["reason"] for r in results if r["id"] is None) == ["bad_json", "schema"]
    async with committed() as session:
        weight = await session.scalar(
            select(Observation.value).where(Observation.gateway_id == hub, Observation.reading_id == "a")
        )
        for _ in range(50):  # the bad_topic message is answered to nobody; wait for its row
            kept = (
                await session.execute(
                    select(RejectedReading.reason, RejectedReading.payload).where(
                        RejectedReading.topic.like(f"{gateway.root}/%")
                    )
                )
            ).all()
            if len(kept) >= 10:
                break
            await asyncio.sleep(0.1)
    assert weight == 81.647  # 180 lb in kg, kept to 3 decimals
    reasons = sorted(reason for reason, _ in kept)
    assert reasons == sorted(
        [
            "unknown_device",
            "time_without_offset",
            "bad_unit",
            "implausible_value",
            "time_in_future",
            "unknown_type",
            "schema",
            "bad_json",
            "bad_topic",
            "schema",
        ]
    )
    assert b"\xff not json" in {payload for _, payload in kept}


async def test_redelivered_message_is_a_duplicate_and_stored_once(worker, gateway, committed, own_organisation, now):
    hub = new_hub()
    [oximeter] = await enrol_with_devices(committed, own_organisation, ["spo2"])
    message = reading("same", oximeter.serial, "spo2", iso(now), 0.95, "1")
    gateway.publish(hub, message)
    await acks(gateway, 1)
    gateway.publish(hub, message)
    gateway.publish(hub, {"readings": [message, message]})
    acknowledged = await acks(gateway, 3)
    statuses = [r["status"] for _, doc in acknowledged for r in doc["results"]]
    assert statuses == ["accepted", "duplicate", "duplicate", "duplicate"]
    async with committed() as session:
        rows = (await session.scalars(select(Observation).where(Observation.gateway_id == hub))).all()
    assert [(r.reading_id, r.value, r.unit) for r in rows] == [("same", 95.0, "%")]


async def test_reading_goes_to_the_patient_assigned_at_its_time(worker, gateway, committed, own_organisation, now):
    hub = new_hub()
    moved_at = now - timedelta(days=2)
    [first] = await enrol_with_devices(committed, own_organisation, ["heart-rate"])
    [second] = await enrol_with_devices(committed, own_organisation, ["heart-rate"])
    # Move the first device: the first patient until moved_at, the second patient from then on.
    async with committed() as session, session.begin():
        await devices.end_assignments_from(session, first.device_id, moved_at)
        session.add(DeviceAssignment(device_id=first.device_id, patient_id=second.patient_id, valid_from=moved_at))
    gateway.publish(
        hub,
        {
            "readings": [
                reading("before", first.serial, "heart-rate", iso(moved_at - timedelta(minutes=1)), 70, "bpm"),
                reading("after", first.serial, "heart-rate", iso(moved_at + timedelta(minutes=1)), 71, "/min"),
                reading("at", first.serial, "heart-rate", iso(moved_at), 72, "/min"),
            ]
        },
    )
    await acks(gateway, 1)
    async with committed() as session:
        owners = dict(
            (
                await session.execute(
                    select(Observation.reading_id, Observation.patient_id).where(Observation.gateway_id == hub)
                )
            ).all()
        )
    assert owners == {"before": first.patient_id, "after": second.patient_id, "at": second.patient_id}


async def test_device_not_assigned_outside_every_assignment(worker, gateway, committed, own_organisation, now):
    hub = new_hub()
    [meter] = await enrol_with_devices(
        committed, own_organisation, ["blood-glucose"], assigned_from=now - timedelta(days=1)
    )
    gateway.publish(
        hub,
        {
            "readings": [
                reading("old", meter.serial, "blood-glucose", iso(now - timedelta(days=3)), 90, "mg/dL"),
                reading("new", meter.serial, "blood-glucose", iso(now - timedelta(hours=1)), 90, "mg/dL"),
            ]
        },
    )
    [(_, document)] = await acks(gateway, 1)
    assert [r.get("reason", r["status"]) for r in document["results"]] == ["device_not_assigned", "accepted"]
    async with committed() as session:
        value = await session.scalar(
            select(Observation.value).where(Observation.gateway_id == hub, Observation.reading_id == "new")
        )
    assert value == round(90 / 18.016, 3)


async def test_metrics_and_readiness_on_the_metrics_port(settings: Settings, gateway, committed, own_organisation, now):
    hub = new_hub()
    port = free_port()
    worker = IngestWorker(settings.model_copy(update={"metrics_port": port}))
    await worker.start()
    task = asyncio.create_task(worker.run())
    try:
        [scale] = await enrol_with_devices(committed, own_organisation, ["body-weight"])
        await wait_until(worker.ready, "the worker subscribed")
        gateway.publish(
            hub,
            {
                "readings": [
                    reading("m1", scale.serial, "body-weight", iso(now), 80, "kg"),
                    reading("m2", "nope", "body-weight", iso(now), 80, "kg"),
                ]
            },
        )
        await acks(gateway, 1)
        text = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        )
        ready = await asyncio.to_thread(
            lambda: json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5).read())
        )
    finally:
        worker.request_stop()
        await asyncio.wait_for(task, 15)
    assert "rpm_readings_accepted_total 1.0" in text
    assert 'rpm_readings_rejected_total{reason="unknown_device"} 1.0' in text
    assert "rpm_ingest_lag_seconds_count 1.0" in text
    assert "rpm_ingest_batch_readings_count" in text
    assert ready == {"status": "ready"}


async def test_worker_refuses_an_unmigrated_database(settings: Settings, database_url: str):
    maintenance = database_url.rsplit("/", 1)[0] + "/postgres"
    with scratch_database(maintenance) as empty:
        worker = IngestWorker(settings.model_copy(update={"database_url": empty}))
        with pytest.raises(ServiceUnavailable, match="rpm migrate"):
            await worker.start()
        assert worker.engine is not None
        await worker.engine.dispose()


async def count_rows(committed, gateway_id: str) -> int:
    async with committed() as session:
        return int(await session.scalar(select(func.count()).where(Observation.gateway_id == gateway_id)) or 0)


async def test_gateway_status_is_recorded_and_a_bad_one_kept(worker, gateway, committed):
    hub = f"hub-{uuid.uuid4().hex[:8]}"
    gateway.publish(hub, b"online", topic=f"{gateway.root}/gateways/{hub}/status")
    gateway.publish(hub, b"offline", topic=f"{gateway.root}/gateways/{hub}/status")
    gateway.publish(hub, b"sleepy", topic=f"{gateway.root}/gateways/{hub}/status")
    async with committed() as session:
        for _ in range(100):
            status = await session.scalar(select(GatewayStatus.status).where(GatewayStatus.gateway_id == hub))
            kept = await session.scalar(select(RejectedReading.detail).where(RejectedReading.gateway_id == hub))
            if status == "offline" and kept:
                break
            await asyncio.sleep(0.05)
    assert status == "offline"
    assert kept == "status: the payload must be online or offline"
    assert gateway.acks == []  # status messages are not answered


async def test_mqtt_3_1_1_mode_stores_and_acknowledges(settings: Settings, gateway, committed, own_organisation, now):
    worker = IngestWorker(settings.model_copy(update={"mqtt_protocol": MqttProtocol.v311}))
    await worker.start()
    task = asyncio.create_task(worker.run())
    try:
        await wait_until(worker.ready, "the worker subscribed")
        [meter] = await enrol_with_devices(committed, own_organisation, ["peak-flow"])
        hub = f"hub-{uuid.uuid4().hex[:8]}"
        gateway.publish(hub, reading("pf", meter.serial, "peak-flow", iso(now), 380, "L/min"))
        [(_, document)] = await acks(gateway, 1)
    finally:
        worker.request_stop()
        await asyncio.wait_for(task, 15)
    assert document == {"results": [{"id": "pf", "status": "accepted"}]}


async def test_a_batch_is_retried_while_the_database_is_away(
    worker, gateway, committed, monkeypatch, own_organisation, now
):
    [scale] = await enrol_with_devices(committed, own_organisation, ["body-weight"])
    real, calls = worker._record, []

    async def away_twice(batch):
        calls.append(len(batch))
        if len(calls) <= 2:
            raise OperationalError("insert", {}, ConnectionRefusedError("database away"))
        return await real(batch)

    monkeypatch.setattr(worker, "_record", away_twice)
    gateway.publish(f"hub-{uuid.uuid4().hex[:8]}", reading("away", scale.serial, "body-weight", iso(now), 80, "kg"))
    [(_, document)] = await acks(gateway, 1)
    assert document == {"results": [{"id": "away", "status": "accepted"}]}
    assert len(calls) == 3 and worker.metrics.batch_failures._value.get() == 2


async def test_a_poison_message_is_held_unacknowledged_the_others_go_through_and_it_is_tried_again(
    worker, gateway, committed, monkeypatch, own_organisation, now
):
    [scale] = await enrol_with_devices(committed, own_organisation, ["body-weight"])
    real = worker._record

    async def poisoned(batch):
        if any(b"poison" in delivery.message.payload for delivery in batch):
            raise IntegrityError("insert", {}, ValueError("an unexpected database error"))
        return await real(batch)

    monkeypatch.setattr(worker, "_record", poisoned)
    hub = f"hub-{uuid.uuid4().hex[:8]}"
    # While a first batch is being recorded (held back here), the next three messages wait
    # and become one batch: it keeps growing until the first is done (the flush timer being
    # far away), and the test lets the first go only once the worker has taken all three.
    monkeypatch.setattr(worker.settings, "ingest_flush_ms", 120_000)
    entered, held = asyncio.Event(), asyncio.Event()
    real_poisoned = worker._record

    async def slow_first(batch):
        if any(b"first" in delivery.message.payload for delivery in batch):
            entered.set()
            await held.wait()
        return await real_poisoned(batch)

    taken, real_take = [], worker.queue.take

    def counted_take():
        item = real_take()
        if item is not None:
            taken.append(item)
        return item

    monkeypatch.setattr(worker, "_record", slow_first)
    monkeypatch.setattr(worker.queue, "take", counted_take)
    gateway.publish(hub, reading("first", scale.serial, "body-weight", iso(now), 80, "kg"))
    await asyncio.wait_for(entered.wait(), 15)
    for reading_id in ("ok-1", "poison", "ok-2"):
        gateway.publish(hub, reading(reading_id, scale.serial, "body-weight", iso(now), 80, "kg"))
    await wait_until(lambda: len(taken) == 4, "the worker took the three messages into its next batch")
    held.set()
    # The poison message is tried alone before ok-2 is: were it acknowledged, its ack would be
    # among the first three.
    answered = await acks(gateway, 3)
    assert sorted(doc["results"][0]["id"] for _, doc in gateway.acks) == ["first", "ok-1", "ok-2"]
    assert len(answered) == 3
    assert worker.metrics.batch_failures._value.get() == 2  # the batch of three, then the poison alone
    assert worker.metrics.message_failures._value.get() == 1
    # Held, not given up: once its cause has gone, its next try records it, and only then is it
    # answered (and PUBACKed).
    monkeypatch.setattr(worker, "_record", real)
    await acks(gateway, 4)
    assert sorted(doc["results"][0]["id"] for _, doc in gateway.acks) == ["first", "ok-1", "ok-2", "poison"]
    assert await count_rows(committed, hub) == 4


def test_a_server_process_freezes_its_startup_objects_and_collects_rarely():
    # In a child process: the settings are process-wide and must not leak into the test session.
    code = (
        "import gc\n"
        "from rpm.runtime import tune_garbage_collection\n"
        "tune_garbage_collection()\n"
        "print(gc.get_freeze_count() > 1000, gc.get_threshold())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split("\n")[0] == "True (50000, 20, 10)"


async def test_batches_overlap_up_to_the_setting_and_acks_keep_the_arrival_order(
    settings: Settings, gateway, committed, monkeypatch, own_organisation, now
):
    worker = IngestWorker(settings.model_copy(update={"ingest_batches_in_flight": 3, "ingest_batch_readings": 1}))
    await worker.start()
    task = asyncio.create_task(worker.run())
    try:
        await wait_until(worker.ready, "the worker subscribed")
        [scale] = await enrol_with_devices(committed, own_organisation, ["body-weight"])
        real, started, held = worker._record, [], asyncio.Event()

        async def first_one_slow(batch):
            [delivery] = batch
            started.append(json.loads(delivery.message.payload)["id"])
            if started[-1] == "r-0":
                await held.wait()
            return await real(batch)

        monkeypatch.setattr(worker, "_record", first_one_slow)
        hub = f"hub-{uuid.uuid4().hex[:8]}"
        for number in range(6):  # one batch each: the setting allows one reading per batch
            gateway.publish(hub, reading(f"r-{number}", scale.serial, "body-weight", iso(now), 80 + number, "kg"))
        # Three in flight; the other three wait in the hand-off until the first is done.
        await wait_until(
            lambda: len(started) == 3 and worker.queue.qsize() == 3, "three batches started, three messages waiting"
        )
        assert started == ["r-0", "r-1", "r-2"]

        async def r1_and_r2_committed() -> bool:
            return await count_rows(committed, hub) == 2

        await wait_until(r1_and_r2_committed, "r-1 and r-2 committed")
        assert gateway.answered() == 0  # r-1 and r-2 are committed, but acks wait for r-0's
        held.set()
        answered = await acks(gateway, 6)
    finally:
        worker.request_stop()
        await asyncio.wait_for(task, 15)
    assert [document["results"] for _, document in answered] == [
        [{"id": f"r-{number}", "status": "accepted"}] for number in range(6)
    ]
