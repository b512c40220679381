"""Nothing is lost: the worker process killed mid-burst, or stopped with SIGTERM.

The worker runs as a real `rpm ingest` process. A gateway publishes thousands of
readings with a bounded window of unanswered messages (as a real gateway waits for its
acks). The worker is killed or stopped part-way, then started again with the same
client id; every reading must end up stored exactly once and answered.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from rpm.config import Settings
from rpm.observations.models import Observation
from tests.fixtures.mqtt import Gateway, reading
from tests.fixtures.servers import free_port
from tests.fixtures.waiting import wait_until
from tests.fixtures.world import enrol_with_devices

MESSAGES = 500
PER_MESSAGE = 10
WINDOW = 100  # unanswered messages a gateway allows itself


def start_worker(settings: Settings) -> subprocess.Popen[bytes]:
    """`rpm ingest` in its own process, returned once its /readyz says it is subscribed."""
    port = free_port()
    env = {
        **os.environ,
        "RPM_DATABASE_URL": settings.database_url or "",
        "RPM_MQTT_URL": settings.mqtt_url,
        "RPM_MQTT_CLIENT_ID": settings.mqtt_client_id,
        "RPM_MQTT_TOPIC_ROOT": settings.mqtt_topic_root,
        "RPM_MQTT_SESSION_EXPIRY_SECONDS": "120",
        "RPM_METRICS_PORT": str(port),
        "RPM_INGEST_FLUSH_MS": "20",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "rpm.cli", "ingest"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                if response.status == 200:
                    return process
        except OSError:
            pass
        time.sleep(0.05)
    process.kill()
    raise AssertionError("the worker did not become ready")


class Burst:
    """Publishes MESSAGES x PER_MESSAGE readings from a thread, never more than WINDOW unanswered."""

    def __init__(self, gateway: Gateway, serial: str) -> None:
        self.gateway, self.serial = gateway, serial
        self.prefix = f"hub-{uuid.uuid4().hex[:8]}"  # (gateway, id) identifies a reading system-wide
        self.expected = {f"r{m}-{i}" for m in range(MESSAGES) for i in range(PER_MESSAGE)}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.published = 0  # messages handed to the gateway's client so far

    def window_full(self) -> bool:
        """Whether the gateway may publish nothing more until acks come (or has published all)."""
        return self.published == MESSAGES or self.published - self.answered_readings() // PER_MESSAGE > WINDOW

    def answered_readings(self) -> int:
        return sum(1 for (_, rid) in self.gateway.answered_readings() if rid in self.expected)

    def _run(self) -> None:
        start = datetime.now(UTC) - timedelta(hours=2)
        for m in range(MESSAGES):
            while m - self.answered_readings() // PER_MESSAGE > WINDOW:
                time.sleep(0.005)
            self.gateway.publish(
                f"{self.prefix}-{m % 7}",
                {
                    "readings": [
                        reading(
                            f"r{m}-{i}",
                            self.serial,
                            "body-weight",
                            (start + timedelta(seconds=m * PER_MESSAGE + i)).isoformat(),
                            80 + i / 10,
                            "kg",
                        )
                        for i in range(PER_MESSAGE)
                    ]
                },
            )
            self.published = m + 1

    def wait_answered(self, at_least: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.answered_readings() < at_least:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {self.answered_readings()} of {at_least} readings answered")
            time.sleep(0.01)


async def stored(committed, device_id) -> tuple[int, int]:
    """Observations of the device, and how many distinct readings they are."""
    async with committed() as session:
        total, distinct = (
            await session.execute(
                select(func.count(), func.count(func.distinct(Observation.reading_id))).where(
                    Observation.device_id == device_id
                )
            )
        ).one()
    return int(total), int(distinct)


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(30)


def kill(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGKILL)
    return process.wait(10)


async def interrupted_burst(
    settings, committed, orgnr: str, interrupt, expected_code: int, after_readings: int
) -> None:
    """Publish the burst; part-way, interrupt the worker (it must exit with `expected_code`),
    start it again, and check every reading was answered and stored exactly once."""
    [scale] = await enrol_with_devices(committed, orgnr, ["body-weight"])
    gateway = Gateway(settings.mqtt_host, settings.mqtt_port, settings.mqtt_topic_root)
    worker = await asyncio.to_thread(start_worker, settings)
    burst = Burst(gateway, scale.serial)
    try:
        burst.thread.start()
        await asyncio.to_thread(burst.wait_answered, after_readings, 60)
        assert await asyncio.to_thread(interrupt, worker) == expected_code
        assert burst.answered_readings() < len(burst.expected), "the burst ended before the interruption"
        # The gateway keeps publishing into the broker meanwhile, as far as its window lets it.
        await wait_until(burst.window_full, "the gateway filled its window while the worker was away", 60)
        worker = await asyncio.to_thread(start_worker, settings)
        await asyncio.to_thread(burst.wait_answered, len(burst.expected), 90)
        burst.thread.join(10)
        assert await asyncio.to_thread(stop, worker) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
        gateway.close()
    statuses = {r["status"] for (_, rid), results in gateway.results.items() if rid in burst.expected for r in results}
    assert statuses <= {"accepted", "duplicate"}
    total, distinct = await stored(committed, scale.device_id)
    assert (total, distinct) == (len(burst.expected), len(burst.expected))


async def test_sigkill_mid_burst_loses_nothing_and_stores_each_reading_once(settings, committed, own_organisation):
    await interrupted_burst(settings, committed, own_organisation, kill, -signal.SIGKILL, after_readings=1500)


async def test_sigterm_drains_commits_and_exits_zero(settings, committed, own_organisation):
    await interrupted_burst(settings, committed, own_organisation, stop, 0, after_readings=1000)
