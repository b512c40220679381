"""Nothing stranded (mqtt.md, "End to end: the gateway's side"): a worker stopped for good, or
killed and never back, must not keep readings in its broker session past the gateways' resend
timeout.

Real `rpm ingest` processes share one group on the test broker (Mosquitto 2.0, which goes on
handing a share of the readings to a stopped worker's session). A reference gateway with a
5 s resend timeout publishes 1,000 readings, one per message; every reading must be stored
exactly once and acknowledged within that timeout plus a margin shorter than the gateway's
second resend (10 s later), so a reading that had to bounce off a stranded session twice
fails the test. Sessions are kept 600 s where the test proves a retirement, so only the
retirement can make the deadline; 2 s where it proves the short expiry.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import func, select

from rpm.cli import main
from rpm.config import MqttProtocol, Settings
from rpm.ingest.worker import IngestWorker, looks_generated, warn_about_identity
from rpm.observations.models import Observation
from rpm.simulator.cohort import SimDevice
from rpm.simulator.gateway import ReferenceGateway
from rpm.simulator.physiology import SimReading
from tests.fixtures.servers import free_port
from tests.fixtures.waiting import wait_until
from tests.fixtures.world import enrol_with_devices

READINGS = 1000
RESEND_AFTER = 5.0
MARGIN = 8.0  # < the gateway's second resend, 2 x RESEND_AFTER after its first
LONG_EXPIRY = 600


class Worker:
    """`rpm ingest` (or `rpm ingest --retire ID`) as a process, its output in a file."""

    def __init__(self, settings: Settings, log_dir: Path, client_id: str, group: str, *args: str, **env: str) -> None:
        self.client_id = client_id
        self.port = free_port()
        self.log_path = log_dir / f"{client_id}-{uuid.uuid4().hex[:4]}.log"
        environment = {
            **os.environ,
            "RPM_DATABASE_URL": settings.database_url or "",
            "RPM_MQTT_URL": settings.mqtt_url,
            "RPM_MQTT_CLIENT_ID": client_id,
            "RPM_MQTT_SHARE_GROUP": group,
            "RPM_MQTT_TOPIC_ROOT": settings.mqtt_topic_root,
            "RPM_METRICS_PORT": str(self.port),
            "RPM_INGEST_FLUSH_MS": "20",
            "RPM_RULES_ENABLED": "false",
            **env,
        }
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "rpm.cli", "ingest", *args], env=environment, stdout=out, stderr=out
            )

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> Worker:
        """Until its /readyz says it is subscribed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"{self.client_id} exited:\n{self.text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"{self.client_id} did not become ready:\n{self.text()[-3000:]}")

    def exit_code(self, timeout: float = 60) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"{self.client_id} did not exit within {timeout}s:\n{self.text()[-3000:]}") from None

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.exit_code()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """Every worker the test starts; any still running at the end is killed."""
    started: list[Worker] = []
    yield started
    for worker in started:
        if worker.process.poll() is None:
            worker.kill()


def session_held(settings: Settings, client_id: str) -> bool:
    """Whether the broker holds a session for `client_id`. Ends it if so: call it last."""
    answered = threading.Event()
    present: list[bool] = []
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)

    def on_connect(c: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags, reason: object, p: object) -> None:
        present.append(flags.session_present)
        answered.set()

    client.on_connect = on_connect
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 0  # whatever was there ends with this connection
    client.connect(settings.mqtt_host, settings.mqtt_port, clean_start=False, properties=properties)
    client.loop_start()
    try:
        assert answered.wait(10), "the broker did not answer"
    finally:
        client.disconnect()
        client.loop_stop()
    return present[0]


def readings(serial: str, gateway_id: str, count: int) -> list[SimReading]:
    scale = SimDevice(serial=serial, type="body-weight", unit="kg", manufacturer="A&D", model="UC-352BLE")
    start = datetime.now(UTC) - timedelta(hours=3)
    return [
        SimReading("P", gateway_id, f"w-{n}", scale, scale.type, start + timedelta(seconds=n), 80.0 + n % 9, None, "kg")
        for n in range(count)
    ]


def gateway_for(settings: Settings) -> ReferenceGateway:
    gateway_id = f"hub-{uuid.uuid4().hex[:8]}"
    gateway = ReferenceGateway(
        gateway_id,
        settings.mqtt_host,
        settings.mqtt_port,
        topic_root=settings.mqtt_topic_root,
        client_id=f"test-gw-{gateway_id}",
        session_expiry=60,
        resend_after=RESEND_AFTER,
        resend_at_most=4 * RESEND_AFTER,
    )
    gateway.connect()
    return gateway


def publish_one_per_message(gateway: ReferenceGateway, batch: list[SimReading]) -> None:
    """One message each, so the broker spreads them over the group's sessions."""
    for reading in batch:
        gateway.send([reading])


async def stored(committed, device_id: uuid.UUID) -> tuple[int, int]:
    async with committed() as session:
        total, distinct = (
            await session.execute(
                select(func.count(), func.count(func.distinct(Observation.reading_id))).where(
                    Observation.device_id == device_id
                )
            )
        ).one()
    return int(total), int(distinct)


def settled_in_time(gateway: ReferenceGateway, last_sent: float) -> None:
    """Every reading acknowledged within the resend timeout plus the margin after the last was sent."""
    remaining = last_sent + RESEND_AFTER + MARGIN - time.monotonic()
    settled = gateway.wait_until_settled(max(0.0, remaining))
    stats = gateway.stats()
    assert settled, f"not every reading acknowledged {RESEND_AFTER + MARGIN:g} s after the last: {stats.summary()}"
    assert not stats.unexpected and stats.accepted + stats.duplicate == READINGS, stats.summary()


def unique_names() -> tuple[str, str, str]:
    tag = uuid.uuid4().hex[:6]
    return f"rpm-ingest-{tag}-1", f"rpm-ingest-{tag}-2", f"scale-{tag}"


@pytest.mark.slow
async def test_a_worker_stopped_for_good_hands_back_its_session(
    settings, committed, own_organisation, workers, tmp_path
):
    [scale] = await enrol_with_devices(committed, own_organisation, ["body-weight"])
    staying, leaving, group = unique_names()
    env = {"RPM_MQTT_SESSION_EXPIRY_SECONDS": str(LONG_EXPIRY), "RPM_MQTT_RETIRE_ON_STOP": "true"}
    workers += [Worker(settings, tmp_path, staying, group, **env), Worker(settings, tmp_path, leaving, group, **env)]
    for worker in workers:
        worker.wait_ready()
    gateway = gateway_for(settings)
    try:
        batch = readings(scale.serial, gateway.gateway_id, READINGS)
        # A burst while both share the group; the stop comes with readings still in the leaving
        # worker's hands and queue, which it records before ending its session.
        publish_one_per_message(gateway, batch[:300])
        assert workers[1].stop() == 0
        publish_one_per_message(gateway, batch[300:])
        last_sent = time.monotonic()
        settled_in_time(gateway, last_sent)
        assert await stored(committed, scale.device_id) == (READINGS, READINGS)
        assert workers[0].stop() == 0
    finally:
        gateway.close(forget_session=True)
    log = workers[1].text()
    assert f"retired {leaving}: its broker session ended" in log, log[-3000:]
    assert "dropped with it" not in log, log[-3000:]  # everything it was sent, it recorded
    assert not session_held(settings, leaving)
    assert not session_held(settings, staying)


@pytest.mark.slow
async def test_a_killed_worker_strands_nothing_past_its_short_session_expiry(
    settings, committed, own_organisation, workers, tmp_path
):
    [scale] = await enrol_with_devices(committed, own_organisation, ["body-weight"])
    staying, killed, group = unique_names()
    env = {"RPM_MQTT_SESSION_EXPIRY_SECONDS": "2", "RPM_MQTT_RETIRE_ON_STOP": "true"}
    workers += [Worker(settings, tmp_path, staying, group, **env), Worker(settings, tmp_path, killed, group, **env)]
    for worker in workers:
        worker.wait_ready()
    gateway = gateway_for(settings)
    try:
        workers[1].kill()
        publish_one_per_message(gateway, readings(scale.serial, gateway.gateway_id, READINGS))
        last_sent = time.monotonic()
        settled_in_time(gateway, last_sent)
        assert gateway.stats().resent > 0, "no reading went to the dead session: the test proved nothing"
        assert await stored(committed, scale.device_id) == (READINGS, READINGS)
        assert workers[0].stop() == 0
    finally:
        gateway.close(forget_session=True)
    assert not session_held(settings, killed)


@pytest.mark.slow
async def test_retire_hands_back_the_session_of_a_killed_worker(
    settings, committed, own_organisation, workers, tmp_path
):
    [scale] = await enrol_with_devices(committed, own_organisation, ["body-weight"])
    staying, killed, group = unique_names()
    env = {"RPM_MQTT_SESSION_EXPIRY_SECONDS": str(LONG_EXPIRY), "RPM_MQTT_RETIRE_ON_STOP": "true"}
    workers += [Worker(settings, tmp_path, staying, group, **env), Worker(settings, tmp_path, killed, group, **env)]
    for worker in workers:
        worker.wait_ready()
    gateway = gateway_for(settings)
    try:
        workers[1].kill()
        publish_one_per_message(gateway, readings(scale.serial, gateway.gateway_id, READINGS))
        last_sent = time.monotonic()
        assert gateway.flush(), "the broker did not take every message"  # half now wait in the dead session
        retiring = Worker(settings, tmp_path, staying, group, "--retire", killed, **env)
        workers.append(retiring)
        assert retiring.exit_code() == 0, retiring.text()[-3000:]
        settled_in_time(gateway, last_sent)
        assert await stored(committed, scale.device_id) == (READINGS, READINGS)
        assert workers[0].stop() == 0
    finally:
        gateway.close(forget_session=True)
    log = retiring.text()
    assert f"--retire {killed}: the broker kept its session" in log, log[-3000:]
    handed_back = int(log.split(f"--retire {killed}: ")[-1].split(" readings")[0])
    assert handed_back > 0, log[-3000:]
    assert f"retired {killed}: its broker session ended" in log, log[-3000:]
    assert not session_held(settings, killed)


@pytest.fixture
def environment(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The test's settings as the environment `rpm` reads, for commands run in this process."""
    for variable, value in {
        "RPM_DATABASE_URL": settings.database_url or "",
        "RPM_MQTT_URL": settings.mqtt_url,
        "RPM_MQTT_TOPIC_ROOT": settings.mqtt_topic_root,
        "RPM_METRICS_PORT": "0",
    }.items():
        monkeypatch.setenv(variable, value)
    return monkeypatch


def test_retiring_an_id_the_broker_does_not_know_changes_nothing_and_fails(settings, environment, caplog):
    unknown = f"rpm-ingest-{uuid.uuid4().hex[:6]}-9"
    assert main(["ingest", "--retire", unknown]) == 1
    assert "holds no session for this client id" in caplog.text
    assert "its broker session ended" not in caplog.text  # it does not claim to have retired anything
    assert not session_held(settings, unknown), "the attempt left a session behind"


@pytest.mark.slow
def test_retire_leaves_a_session_alone_when_another_client_takes_the_id(settings, workers, tmp_path):
    """A worker still running under the id pushes the retiring process off the broker: retire
    stops, says so, and does not end a session that is not its own."""
    client_id = f"rpm-ingest-{uuid.uuid4().hex[:6]}-4"
    first = connected_client(settings, client_id)  # a session to retire
    first.disconnect()
    first.loop_stop()
    retiring = Worker(settings, tmp_path, client_id, "none", "--retire", client_id)
    workers.append(retiring)
    deadline = time.monotonic() + 60
    while "the broker kept its session" not in retiring.text():
        assert retiring.process.poll() is None and time.monotonic() < deadline, retiring.text()[-3000:]
        time.sleep(0.02)
    other = connected_client(settings, client_id)  # within the second the retire waits for quiet
    try:
        assert retiring.exit_code() == 1, retiring.text()[-3000:]
    finally:
        other.disconnect()
        other.loop_stop()
    assert "is a worker with this id still running?" in retiring.text(), retiring.text()[-3000:]
    assert "its broker session ended" not in retiring.text()
    assert session_held(settings, client_id), "retire ended a session it had lost"


def connected_client(settings: Settings, client_id: str) -> mqtt.Client:
    """A client of `client_id` with a session the broker keeps (60 s), once connected."""
    answered = threading.Event()
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.on_connect = lambda *args: answered.set()
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 60
    client.connect(settings.mqtt_host, settings.mqtt_port, clean_start=False, properties=properties)
    client.loop_start()
    assert answered.wait(10), "the broker did not answer"
    return client


@pytest.mark.parametrize(
    ("argument", "env", "expected"),
    [
        ("a+b", {}, "is not a worker's client id"),
        ("x" * 65, {}, "is not a worker's client id"),
        ("rpm-ingest-1", {"RPM_MQTT_URL": f"mqtt://127.0.0.1:{free_port()}"}, "cannot reach the broker"),
    ],
)
def test_retire_refuses_a_bad_id_or_a_missing_broker(environment, caplog, argument, env, expected):
    for variable, value in env.items():
        environment.setenv(variable, value)
    assert main(["ingest", "--retire", argument]) == 1
    assert expected in caplog.text


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RPM_MQTT_RETIRE_ON_STOP", "perhaps"),
        ("RPM_MQTT_SESSION_EXPIRY_SECONDS", "-1"),
        ("RPM_MQTT_SESSION_EXPIRY_SECONDS", str(2**32)),  # beyond MQTT 5's session expiry interval
    ],
)
@pytest.mark.parametrize("command", [["ingest"], ["ingest", "--retire", "rpm-ingest-3"]])
def test_bad_settings_stop_the_worker_and_retire_naming_the_variable(environment, command, variable, value):
    environment.setenv(variable, value)
    with pytest.raises(SystemExit, match=f"rpm: bad settings: {variable}"):
        main(command)


@pytest.mark.parametrize(
    ("client_id", "generated"),
    [
        ("rpm-ingest-1", False),
        ("rpm-ingest-12", False),
        ("ingest-eu-north-3", False),
        ("3f2a9c1b7d4e", True),  # a container's hostname
        (str(uuid.uuid4()), True),
        ("rpm-ingest-7d9f8b6c5-x2k4q", True),  # a Kubernetes Deployment's pod
    ],
)
def test_a_generated_client_id_is_told_apart_from_a_slot(client_id, generated):
    assert looks_generated(client_id) is generated


def test_the_worker_warns_at_start_about_what_would_strand_readings(settings, caplog):
    caplog.set_level(logging.WARNING, logger="rpm.ingest")
    warn_about_identity(settings.model_copy(update={"mqtt_client_id": "3f2a9c1b7d4e"}))
    warn_about_identity(settings.model_copy(update={"mqtt_session_expiry_seconds": 3600}))
    warn_about_identity(settings.model_copy(update={"mqtt_protocol": MqttProtocol.v311}))
    text = caplog.text
    assert "looks generated" in text and "3600 is not shorter" in text and "no session expiry" in text
    caplog.clear()
    warn_about_identity(
        settings.model_copy(update={"mqtt_client_id": "rpm-ingest-2", "mqtt_session_expiry_seconds": 30})
    )
    # One worker on a plain subscription (the demo's broker): no session holds a share of anything.
    warn_about_identity(
        settings.model_copy(
            update={"mqtt_share_group": "", "mqtt_client_id": "3f2a9c1b7d4e", "mqtt_protocol": MqttProtocol.v311}
        )
    )
    assert caplog.text == ""


@pytest.mark.parametrize("protocol", [MqttProtocol.v5, MqttProtocol.v311])
async def test_a_retiring_worker_ends_its_session_in_either_protocol(settings, protocol):
    """MQTT 5 ends the session with its DISCONNECT; 3.1.1 cannot, and ends it with a clean connection."""
    worker = IngestWorker(settings.model_copy(update={"mqtt_protocol": protocol, "mqtt_retire_on_stop": True}))
    await worker.start()
    running = asyncio.create_task(worker.run())
    await wait_until(worker.ready, "the worker subscribed")
    worker.request_stop()
    await asyncio.wait_for(running, 30)
    assert worker.end_session
    assert not await asyncio.to_thread(session_held, settings, settings.mqtt_client_id)
