"""The reference gateways against the real broker, ingest worker and database: every message
keeps the contract, bad ones get the reason the simulator meant, readings whose acks or
messages were lost are recovered by the resend, acks reach a gateway that was away, and an
offline hub sends what it kept as one batch."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rpm.config import Settings
from rpm.norway import OSLO
from rpm.observations.models import Observation
from rpm.simulator.cohort import SimPatient, make_cohort
from rpm.simulator.gateway import Fleet, ReferenceGateway
from rpm.simulator.physiology import SimReading, simulate
from rpm.simulator.run import BackfillStalled, backfill, enrol, gateway_ids
from tests.simulator import contract
from tests.simulator.conftest import Observer, running_worker, wait_until

pytestmark = pytest.mark.slow

ENROLLED_ON = date(2025, 1, 1)
HISTORY_START = datetime(2025, 3, 3, tzinfo=OSLO)


async def enrolled(
    live_api: httpx.AsyncClient, token: str, organisation: str, size: int, seed: int, prefix: str
) -> list[SimPatient]:
    cohort = make_cohort(size, seed, serial_prefix=prefix)
    await enrol(str(live_api.base_url), token, cohort, [organisation], ENROLLED_ON)
    return cohort


def fleet_for(settings: Settings, cohort: list[SimPatient], unique: str, **options: object) -> Fleet:
    options = {"resend_after": 10.0, "session_expiry": 60, **options}
    return Fleet(
        settings.mqtt_host,
        settings.mqtt_port,
        gateway_ids(cohort),
        client_id_prefix=f"{unique}-",
        topic_root=settings.mqtt_topic_root,
        **options,  # type: ignore[arg-type]
    )


async def stored(committed: async_sessionmaker[AsyncSession], prefix: str) -> int:
    """Readings of this test stored (one per gateway and id; a blood pressure's pulse is not counted)."""
    async with committed() as session:
        return int(
            await session.scalar(
                select(
                    func.count(func.distinct(func.concat(Observation.gateway_id, "/", Observation.reading_id)))
                ).where(Observation.reading_id.like(f"{prefix}-%"))
            )
            or 0
        )


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_every_message_keeps_the_contract_and_bad_ones_get_the_meant_reason(
    protocol, settings, live_api, admin_token, organisation, observer: Observer, committed, unique
):
    cohort = await enrolled(live_api, admin_token, organisation, 10, seed=91 if protocol == "5" else 92, prefix=unique)
    course = simulate(  # a fixed stretch of the past: the same faults and offline hubs in every run
        cohort, HISTORY_START, HISTORY_START + timedelta(days=8), seed=91,
        faults_per_patient_year=150, duplicates_per_patient_year=100, offline_per_hub_year=40,
    )  # fmt: skip
    bad = [f for f in course.faults if f.kind != "duplicate"]
    assert {f.kind for f in bad} >= {"bad_json", "unknown_type", "implausible_value", "schema", "unknown_device"}
    assert course.offline_windows(), "a hub goes offline during the run"
    fleet = fleet_for(settings, cohort, unique, protocol=protocol)
    async with running_worker(settings):
        await asyncio.to_thread(fleet.connect)
        result = await asyncio.to_thread(backfill, fleet, course, settle_timeout=60)
        await asyncio.to_thread(fleet.close)
    assert result.complete and result.readings == len(course.readings)

    stats = fleet.stats()
    assert stats.unexpected == [] and stats.pending == 0
    assert stats.rejected == Counter(f.kind for f in bad)  # each bad message answered with its reason
    assert stats.accepted + stats.duplicate == len(course.readings) + (len(course.faults) - len(bad))
    assert await stored(committed, unique) == len(course.readings)  # none lost

    deliberate = {f.payload() for f in bad}
    observer.wait_for(lambda: len(observer.reading_ids()) >= len(course.readings), "every reading on the wire")
    bodies: dict[tuple[str, str], dict] = {}
    for message in observer.measurements():
        if message.payload in deliberate:
            continue
        assert contract.problems(message.topic, message.payload, settings.mqtt_topic_root) == [], message.payload[:300]
        gateway = contract.measurement_topic_gateway(message.topic, settings.mqtt_topic_root)
        for reading in json.loads(message.payload)["readings"]:
            # A reading published again is the same reading, under the same id.
            assert bodies.setdefault((gateway, reading["id"]), reading) == reading
    assert {m.payload for m in observer.statuses()} == {b"online", b"offline"}

    # After the run every gateway's retained status says offline (the last will, or said on closing).
    late = Observer(settings.mqtt_host, settings.mqtt_port, settings.mqtt_topic_root, "gateways/+/status")
    try:
        late.wait_for(lambda: len(late.statuses()) == len(fleet.gateways), "a retained status per gateway")
        assert {(m.payload, m.retain) for m in late.statuses()} == {(b"offline", True)}
    finally:
        late.close()


async def test_resend_recovers_readings_whose_acks_were_lost(
    settings, live_api, admin_token, organisation, committed, unique, observer: Observer
):
    """A hub sends while no worker runs, then restarts and loses its broker session; the worker
    stores the readings and acks into the void. The hub's resend gets `duplicate`: settled."""
    [patient] = await enrolled(live_api, admin_token, organisation, 1, seed=93, prefix=unique)
    readings = history(patient, days=3)
    async with running_worker(settings):
        pass  # the worker's session now exists and keeps what arrives while it is away
    gateway = ReferenceGateway(
        patient.gateway_id, settings.mqtt_host, settings.mqtt_port, topic_root=settings.mqtt_topic_root,
        client_id=f"{unique}-gw", session_expiry=60, resend_after=1.0, resend_at_most=4.0,
    )  # fmt: skip
    await asyncio.to_thread(gateway.connect)
    gateway.send(readings)
    assert await asyncio.to_thread(gateway.flush)  # else paho itself publishes them again on return
    await asyncio.to_thread(gateway.go_offline, forget_session=True)
    async with running_worker(settings):
        await wait_until(lambda: _all_stored(committed, unique, len(readings)), "the readings stored")
        await asyncio.to_thread(observer.wait_for, lambda: observer.acked() >= {r.id for r in readings}, "the acks")
        assert gateway.stats().accepted == 0 and gateway.pending() == len(readings)  # no ack reached it
        await asyncio.to_thread(gateway.come_online)
        assert await asyncio.to_thread(gateway.wait_until_settled, 30)
    gateway.close()
    stats = gateway.stats()
    assert stats.duplicate == len(readings) and stats.accepted == 0 and stats.pending == 0
    assert stats.resent >= len(readings) and stats.unexpected == []
    assert await stored(committed, unique) == len(readings)


async def test_readings_no_worker_received_are_published_again_and_stored(
    settings, live_api, admin_token, organisation, committed, unique
):
    """Published before any worker subscribed: the broker drops them. The resend delivers them."""
    [patient] = await enrol_one(live_api, admin_token, organisation, 94, unique)
    readings = history(patient, days=2)
    gateway = ReferenceGateway(
        patient.gateway_id, settings.mqtt_host, settings.mqtt_port, topic_root=settings.mqtt_topic_root,
        client_id=f"{unique}-gw", session_expiry=60, resend_after=1.0, resend_at_most=2.0,
    )  # fmt: skip
    await asyncio.to_thread(gateway.connect)
    gateway.send(readings)
    assert gateway.pending() == len(readings)
    async with running_worker(settings):
        assert await asyncio.to_thread(gateway.wait_until_settled, 30)
    gateway.close()
    stats = gateway.stats()
    assert stats.accepted == len(readings) and stats.resent >= len(readings) and stats.unexpected == []
    assert await stored(committed, unique) == len(readings)


async def test_acks_sent_while_a_gateway_was_away_reach_it_on_return(
    settings, live_api, admin_token, organisation, committed, unique, observer: Observer
):
    """The persistent session: no resend is needed (the timeout is far away)."""
    [patient] = await enrol_one(live_api, admin_token, organisation, 95, unique)
    readings = history(patient, days=2)
    async with running_worker(settings):
        pass
    gateway = ReferenceGateway(
        patient.gateway_id, settings.mqtt_host, settings.mqtt_port, topic_root=settings.mqtt_topic_root,
        client_id=f"{unique}-gw", session_expiry=60, resend_after=300.0,
    )  # fmt: skip
    await asyncio.to_thread(gateway.connect)
    gateway.send(readings)
    assert await asyncio.to_thread(gateway.flush)
    await asyncio.to_thread(gateway.go_offline)
    observer.wait_for(lambda: any(m.payload == b"offline" for m in observer.statuses()), "the will: offline")
    async with running_worker(settings):
        await asyncio.to_thread(observer.wait_for, lambda: observer.acked() >= {r.id for r in readings}, "the acks")
        await asyncio.to_thread(gateway.come_online)
        assert await asyncio.to_thread(gateway.wait_until_settled, 20)
    gateway.close()
    stats = gateway.stats()
    assert stats.accepted == len(readings) and stats.resent == 0 and stats.pending == 0


async def test_an_offline_hub_keeps_its_readings_and_sends_them_as_one_batch(
    settings, live_api, admin_token, organisation, committed, unique, observer: Observer
):
    [patient] = await enrol_one(live_api, admin_token, organisation, 96, unique)
    readings = history(patient, days=2)
    gateway = ReferenceGateway(
        patient.gateway_id, settings.mqtt_host, settings.mqtt_port, topic_root=settings.mqtt_topic_root,
        client_id=f"{unique}-gw", session_expiry=60, resend_after=300.0,
    )  # fmt: skip
    async with running_worker(settings):
        await asyncio.to_thread(gateway.connect)
        await asyncio.to_thread(gateway.go_offline)
        gateway.send(readings)  # kept: nothing goes out
        assert gateway.pending() == len(readings) and observer.measurements() == []
        await asyncio.to_thread(gateway.come_online)
        assert await asyncio.to_thread(gateway.wait_until_settled, 20)
    gateway.close()
    [batch] = observer.measurements()
    assert [r["id"] for r in json.loads(batch.payload)["readings"]] == [r.id for r in readings]
    assert gateway.stats().accepted == len(readings)


async def test_backfill_without_a_worker_stops_with_a_clear_error(settings, unique):
    cohort = make_cohort(2, seed=97, serial_prefix=unique)
    now = datetime.now(UTC)
    course = simulate(cohort, now - timedelta(days=2), now, seed=97, faults=False)
    fleet = fleet_for(settings, cohort, unique)
    await asyncio.to_thread(fleet.connect)
    try:
        with pytest.raises(BackfillStalled, match="ingest worker"):
            await asyncio.to_thread(backfill, fleet, course, settle_timeout=1.0)
    finally:
        await asyncio.to_thread(fleet.close)


async def test_a_gateway_without_a_broker_says_so(unique):
    from tests.fixtures.servers import free_port

    gateway = ReferenceGateway("hub-x", "127.0.0.1", free_port(), client_id=f"{unique}-gw")
    with pytest.raises(TimeoutError, match="hub-x"):
        await asyncio.to_thread(gateway.connect, 1.0)
    await asyncio.to_thread(gateway.close)
    assert not gateway.online


async def test_a_gateway_refuses_an_unknown_protocol():
    with pytest.raises(ValueError, match="protocol"):
        ReferenceGateway("hub-x", protocol="4")


# -- helpers -------------------------------------------------------------------------------


async def enrol_one(
    live_api: httpx.AsyncClient, token: str, organisation: str, seed: int, prefix: str
) -> list[SimPatient]:
    return await enrolled(live_api, token, organisation, 1, seed=seed, prefix=prefix)


def history(patient: SimPatient, days: int) -> list[SimReading]:
    now = datetime.now(UTC)
    course = simulate([patient], now - timedelta(days=days), now - timedelta(minutes=5), seed=1, faults=False)
    assert course.readings
    return course.readings


async def _all_stored(committed: async_sessionmaker[AsyncSession], prefix: str, count: int) -> bool:
    return await stored(committed, prefix) >= count
