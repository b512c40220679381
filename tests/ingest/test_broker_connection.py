"""How the worker meets its broker: with a user and password where the broker demands them
(deploy/mosquitto), and on a plain subscription where the broker has no shared subscriptions
(the demo's embedded broker)."""

from __future__ import annotations

import asyncio
import getpass
import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rpm.config import Settings
from rpm.ingest.worker import IngestWorker
from tests.fixtures.mqtt import Gateway, reading
from tests.fixtures.servers import free_port, reachable
from tests.fixtures.world import enrol_with_devices

PASSWORD_BROKER_CONF = """\
listener {port} 127.0.0.1
allow_anonymous false
password_file {passwords}
persistence false
# Run as root (CI), mosquitto would drop to its own user, who cannot read the test's files.
user {user}
"""


@pytest.fixture
def broker_with_passwords(tmp_path: Path) -> Iterator[int]:
    """A mosquitto on a free port that admits only `ingest` with password `s3cret`."""
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    passwords = tmp_path / "passwords"
    subprocess.run([passwd, "-c", "-b", str(passwords), "ingest", "s3cret"], check=True, capture_output=True)
    passwords.chmod(0o600)
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    config.write_text(PASSWORD_BROKER_CONF.format(port=port, passwords=passwords, user=getpass.getuser()))
    process = subprocess.Popen([mosquitto, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not reachable("127.0.0.1", port):
            assert process.poll() is None and time.monotonic() < deadline, "the password broker did not start"
            time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(5)


async def _started(worker: IngestWorker, seconds: float = 10) -> asyncio.Task[None]:
    await worker.start()
    task = asyncio.create_task(worker.run())
    deadline = time.monotonic() + seconds
    while not worker.ready() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return task


async def _stopped(worker: IngestWorker, task: asyncio.Task[None]) -> None:
    worker.request_stop()
    await asyncio.wait_for(task, 15)


async def test_the_worker_signs_in_to_a_broker_that_demands_a_password(settings: Settings, broker_with_passwords):
    own = settings.model_copy(
        update={
            "mqtt_url": f"mqtt://127.0.0.1:{broker_with_passwords}",
            "mqtt_username": "ingest",
            "mqtt_password": "s3cret",
        }
    )
    own = Settings.model_validate(own.model_dump())
    worker = IngestWorker(own)
    task = await _started(worker)
    try:
        assert worker.ready(), "the worker did not sign in with RPM_MQTT_USERNAME and RPM_MQTT_PASSWORD"
    finally:
        await _stopped(worker, task)


async def test_a_wrong_password_is_refused_and_said_so(settings: Settings, broker_with_passwords, caplog):
    caplog.set_level(logging.ERROR, logger="rpm.ingest.bridge")
    wrong = Settings.model_validate(
        settings.model_dump()
        | {"mqtt_url": f"mqtt://127.0.0.1:{broker_with_passwords}", "mqtt_username": "ingest", "mqtt_password": "no"}
    )
    worker = IngestWorker(wrong)
    await worker.start()
    task = asyncio.create_task(worker.run())
    try:
        deadline = time.monotonic() + 10
        while "refused the connection" not in caplog.text:
            assert time.monotonic() < deadline, "no log line said the broker refused the worker"
            await asyncio.sleep(0.05)
        assert not worker.ready()
    finally:
        await _stopped(worker, task)


async def test_an_empty_share_group_subscribes_plainly_and_readings_are_stored(
    settings: Settings, committed, own_organisation
):
    plain = settings.model_copy(update={"mqtt_share_group": ""})
    (device,) = await enrol_with_devices(committed, own_organisation, ["spo2"])
    worker = IngestWorker(plain)
    task = await _started(worker)
    gateway = Gateway(plain.mqtt_host, plain.mqtt_port, plain.mqtt_topic_root)
    try:
        assert worker.ready()
        assert worker.bridge is not None and not worker.bridge.subscription.startswith("$share/")
        taken = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
        gateway.publish("hub-plain", reading("plain-1", device.serial, "spo2", taken, 96, "%"))
        (_, ack), *_ = await asyncio.to_thread(gateway.wait_for_acks, 1)
        assert ack["results"] == [{"id": "plain-1", "status": "accepted"}]
    finally:
        gateway.close()
        await _stopped(worker, task)


def test_a_share_group_of_other_characters_is_refused(settings: Settings):
    with pytest.raises(ValueError, match="mqtt_share_group"):
        Settings.model_validate(settings.model_dump() | {"mqtt_share_group": "a/b"})


async def test_the_metrics_listen_on_the_configured_address(settings: Settings):
    """RPM_METRICS_HOST: a container sets 0.0.0.0 so Prometheus beside it can scrape the worker.
    127.0.0.2 stands in here: it answers there and not on 127.0.0.1."""
    port = free_port()
    worker = IngestWorker(settings.model_copy(update={"metrics_port": port, "metrics_host": "127.0.0.2"}))
    task = await _started(worker)
    try:
        assert reachable("127.0.0.2", port)
        assert not reachable("127.0.0.1", port)
    finally:
        await _stopped(worker, task)
