"""Real processes for the fault tests: `rpm ingest`, `rpm api`, a broker that can be restarted,
and a burst of readings from a reference gateway that follows the contract (it keeps each
reading until an ack names it, and publishes it again when none came in time)."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rpm.config import Settings
from rpm.observations.models import Observation
from rpm.simulator.cohort import SimDevice
from rpm.simulator.gateway import ReferenceGateway
from rpm.simulator.physiology import SimReading
from tests.fixtures.servers import free_port, reachable

RESTARTABLE_BROKER_CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
# Sessions and the messages queued for them outlive a restart, as on a production broker.
persistence true
persistence_location {folder}/
max_queued_messages 0
max_inflight_messages 0
# Run as root (CI), mosquitto would drop to its own user, who cannot write the test's folder.
user {user}
"""


def http_status(url: str) -> int | None:
    """The HTTP status `url` answers with, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None


def wait_for(condition, what: str, timeout: float):  # type: ignore[no-untyped-def]
    """From a thread or plain code: the first true value of `condition`, within `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.05)


class RestartableBroker:
    """A mosquitto of the test's own on a free port, with persistence, stopped and started again
    on the same port and folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.config = folder / "mosquitto.conf"
        self.config.write_text(RESTARTABLE_BROKER_CONF.format(port=self.port, folder=folder, user=getpass.getuser()))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        with open(self.folder / "mosquitto.log", "ab") as log:
            self.process = subprocess.Popen([binary, "-c", str(self.config)], stdout=log, stderr=log)
        wait_for(lambda: reachable("127.0.0.1", self.port), "the test's broker listening", 15)

    def stop(self) -> None:
        """SIGTERM: mosquitto writes its sessions and queued messages to disk, then exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    metrics_port: int

    def ready(self) -> bool:
        return http_status(f"http://127.0.0.1:{self.metrics_port}/readyz") == 200

    def metric(self, name: str) -> float:
        """A sample of the worker's /metrics (0 when it has none yet)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        return 0.0

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def start_worker(settings: Settings, log: Path) -> Worker:
    """`rpm ingest` in its own process, returned once its /readyz says it is subscribed."""
    port = free_port()
    env = {
        **os.environ,
        "RPM_DATABASE_URL": settings.database_url or "",
        "RPM_MQTT_URL": settings.mqtt_url,
        "RPM_MQTT_CLIENT_ID": settings.mqtt_client_id,
        "RPM_MQTT_TOPIC_ROOT": settings.mqtt_topic_root,
        "RPM_MQTT_SESSION_EXPIRY_SECONDS": "300",
        "RPM_METRICS_PORT": str(port),
        "RPM_INGEST_FLUSH_MS": "20",
    }
    with open(log, "ab") as output:
        process = subprocess.Popen([sys.executable, "-m", "rpm.cli", "ingest"], env=env, stdout=output, stderr=output)
    worker = Worker(process, port)
    try:
        wait_for(lambda: worker.ready() or process.poll() is not None, "the worker ready", 60)
    except AssertionError:
        worker.kill()
        raise
    assert process.poll() is None, f"the worker exited:\n{log.read_text()[-3000:]}"
    return worker


@dataclass
class Api:
    process: subprocess.Popen[bytes]
    port: int

    def readiness(self) -> int | None:
        return http_status(f"http://127.0.0.1:{self.port}/readyz")

    def rss_mb(self) -> float:
        """The process's resident memory now, in MiB (from /proc: Linux only, as is CI)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS for the API process")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def start_api(database_url: str, dev_key: Path, log: Path, environment: dict[str, str] | None = None) -> Api:
    """`rpm api` in its own process, returned once its /readyz answers 200; `environment`: more
    RPM_ settings."""
    port = free_port()
    env = {
        **os.environ,
        "RPM_DATABASE_URL": database_url,
        "RPM_DEV_AUTH": "true",
        "RPM_DEV_KEY_PATH": str(dev_key),
        "RPM_ENVIRONMENT": "development",
        **(environment or {}),
    }
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "rpm.cli", "api", "--port", str(port)], env=env, stdout=output, stderr=output
        )
    api = Api(process, port)
    try:
        wait_for(lambda: api.readiness() == 200 or process.poll() is not None, "the API ready", 60)
    except AssertionError:
        api.kill()
        raise
    assert process.poll() is None, f"the API exited:\n{log.read_text()[-3000:]}"
    return api


class Burst:
    """`total` body weights from one reference gateway, `per_message` to a message, published
    from a thread with at most `window` readings waiting for their acks (as a gateway bounds
    what it keeps), and at most `per_second` readings a second if given (a fleet's steady rate
    rather than a flood, so the burst lasts while faults are made)."""

    def __init__(
        self,
        mqtt_url: str,
        topic_root: str,
        serial: str,
        *,
        total: int = 2000,
        per_message: int = 10,
        window: int = 300,
        resend_after: float = 5.0,
        per_second: float | None = None,
    ) -> None:
        self.per_second = per_second
        self.gateway_id = f"hub-{uuid.uuid4().hex[:8]}"
        host, port = mqtt_url.removeprefix("mqtt://").split(":")
        self.gateway = ReferenceGateway(
            self.gateway_id,
            host,
            int(port),
            topic_root=topic_root,
            resend_after=resend_after,
            resend_at_most=resend_after * 4,
        )
        device = SimDevice(serial=serial, type="body-weight", unit="kg", manufacturer="A&D", model="UC-352BLE")
        start = datetime.now(UTC) - timedelta(hours=3)
        self.readings = [
            SimReading(
                patient="test",
                gateway_id=self.gateway_id,
                id=f"b-{number}",
                device=device,
                type="body-weight",
                time=start + timedelta(seconds=number),
                value=80.0 + (number % 10) / 10,
                values=None,
                unit="kg",
            )
            for number in range(total)
        ]
        self.per_message, self.window = per_message, window
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.stop = threading.Event()

    def answered(self) -> int:
        stats = self.gateway.stats()
        return stats.accepted + stats.duplicate + sum(stats.rejected.values())

    def start(self) -> None:
        self.gateway.connect()
        self.thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        for first in range(0, len(self.readings), self.per_message):
            if self.per_second is not None:
                self.stop.wait(max(0.0, started + first / self.per_second - time.monotonic()))
            while self.gateway.pending() >= self.window and not self.stop.is_set():
                time.sleep(0.01)
            if self.stop.is_set():
                return
            self.gateway.send(self.readings[first : first + self.per_message])

    def finish(self, timeout: float) -> None:
        """Until every reading is published and answered (the gateway resending as it must)."""
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the gateway could not publish all its readings"
        assert self.gateway.wait_until_settled(timeout), f"readings still unanswered: {self.gateway.stats().summary()}"

    def close(self) -> None:
        self.stop.set()
        self.gateway.close(forget_session=True)


async def stored(sessions: async_sessionmaker[AsyncSession], device_id: uuid.UUID) -> tuple[int, int]:
    """Observations of the device, and how many distinct readings they are."""
    async with sessions() as session:
        total, distinct = (
            await session.execute(
                select(func.count(), func.count(func.distinct(Observation.reading_id))).where(
                    Observation.device_id == device_id
                )
            )
        ).one()
    return int(total), int(distinct)
