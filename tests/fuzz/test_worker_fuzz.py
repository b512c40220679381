"""Bad input at volume, in CI: a few thousand generated messages through the real broker to an
`rpm ingest` process. Every message answered by the contract, the worker alive throughout,
every rejection kept with its payload. bench/fuzz.py runs the same with 100,000 messages.
"""

from __future__ import annotations

import asyncio

from rpm.config import Settings
from tests.fixtures.servers import free_port
from tests.fixtures.world import enrol_with_devices
from tests.fuzz.harness import FuzzPublisher, WorkerProcess
from tests.fuzz.messages import READING_TYPES, Devices, draw_messages

MESSAGES = 2000


def generate(devices: Devices, count: int, sink: FuzzPublisher, alive) -> None:
    """Draw `count` messages from hypothesis and send each as it is drawn."""
    # The same messages in every run; bench/fuzz.py takes other seeds.
    draw_messages(devices, count, 20261201, lambda message: sink.send(message, alive))


def worker_env(settings: Settings) -> dict[str, str]:
    return {
        "RPM_DATABASE_URL": settings.database_url or "",
        "RPM_MQTT_URL": settings.mqtt_url,
        "RPM_MQTT_CLIENT_ID": settings.mqtt_client_id,
        "RPM_MQTT_TOPIC_ROOT": settings.mqtt_topic_root,
        "RPM_MQTT_SESSION_EXPIRY_SECONDS": "60",
        "RPM_INGEST_FLUSH_MS": "20",
    }


async def test_thousands_of_bad_messages_are_each_answered_and_kept(settings: Settings, committed, own_organisation):
    enrolled = await enrol_with_devices(committed, own_organisation, sorted(READING_TYPES))
    devices = Devices(
        {type_name: device.serial for type_name, device in zip(sorted(READING_TYPES), enrolled, strict=True)}
    )
    worker = WorkerProcess(worker_env(settings), free_port())
    publisher = FuzzPublisher(settings.mqtt_host, settings.mqtt_port, settings.mqtt_topic_root)
    try:
        await asyncio.to_thread(worker.wait_ready)
        await asyncio.to_thread(publisher.connect)
        await asyncio.to_thread(generate, devices, MESSAGES, publisher, worker.problem)
        await asyncio.to_thread(publisher.wait_answered, 120, worker.problem)
        kept = await asyncio.to_thread(publisher.check_kept, settings.database_url or "")
    finally:
        publisher.close()
        code = await asyncio.to_thread(worker.stop)
    tally = publisher.tally
    assert code == 0, "the worker did not stop cleanly after the fuzzing"
    assert tally.problems == [], f"{tally.problem_count} problems, the first: " + "\n".join(tally.problems)
    assert sum(tally.sent.values()) == MESSAGES
    assert tally.answered_messages == tally.sent["own"]
    assert kept["lost"] == kept["extra"] == 0 and kept["rows"] == kept["expected"]
    # The run covered what it is for: every family, every route, and answers of every kind.
    assert set(tally.families) >= {"valid", "mutated", "junk", "not_json", "deep", "unicode", "oversize", "topic"}
    assert tally.sent["bad_topic"] and tally.sent["outside"] and tally.refused_by_broker
    assert tally.accepted and tally.statuses["rejected:bad_json"] and tally.statuses["rejected:too_large"]
