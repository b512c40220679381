"""Real Mosquitto brokers for the packaging tests: the repository's ACL, generated password files."""

from __future__ import annotations

import getpass
import queue
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from tests.fixtures.servers import reachable

REPO = Path(__file__).resolve().parents[2]
ACL_FILE = REPO / "deploy" / "mosquitto" / "acl"
SHARE_GROUP = "rpm-ingest"
INGEST_USER = "rpm-ingest"

# username -> password; "+" tries to turn the gateways' %u patterns into a wildcard.
USERS = {"gw-a": "a-secret", "gw-b": "b-secret", INGEST_USER: "ingest-secret", "+": "plus-secret"}

ACL_BROKER_CONF = """\
listener {port} 127.0.0.1
allow_anonymous false
password_file {passwords}
acl_file {acl}
persistence false
"""


def mosquitto_passwd(*arguments: str) -> None:
    passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    subprocess.run([passwd, *arguments], check=True, capture_output=True)


def write_passwords(path: Path, users: dict[str, str]) -> Path:
    """Add users to a mosquitto password file (made if missing), as docs/operations.md tells the operator."""
    path.touch(mode=0o600)
    for username, password in users.items():
        mosquitto_passwd("-b", str(path), username, password)
    return path


@contextmanager
def running_mosquitto(config_text: str, folder: Path, ports: list[int]) -> Iterator[subprocess.Popen[bytes]]:
    """Mosquitto with this configuration, until every port in `ports` accepts connections."""
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    config = folder / "mosquitto.conf"
    # Run as root (CI), mosquitto would drop to its own user, who cannot read the test's files.
    config.write_text(config_text + f"\nuser {getpass.getuser()}\n")
    log_path = folder / "mosquitto.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([mosquitto, "-c", str(config)], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 10
            while not all(reachable("127.0.0.1", port) for port in ports):
                assert process.poll() is None, "mosquitto exited: " + log_path.read_text()
                assert time.monotonic() < deadline, "mosquitto did not open its ports within 10 s"
                time.sleep(0.05)
            yield process
        finally:
            process.terminate()
            process.wait(5)


@dataclass
class Received:
    topic: str
    payload: bytes


class Client:
    """A paho MQTT 5 client that records what it receives, with waits that have deadlines."""

    def __init__(
        self, port: int, username: str | None, password: str | None = None, *, tls_ca: Path | None = None
    ) -> None:
        self.received: queue.Queue[Received] = queue.Queue()
        self._connack: queue.Queue[ReasonCode] = queue.Queue()
        self._subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.dropped = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"packaging-test-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls_ca is not None:
            self.client.tls_set(ca_certs=str(tls_ca))
        self.client.on_connect = lambda client, userdata, flags, reason, properties: self._connack.put(reason)
        self.client.on_subscribe = lambda client, userdata, mid, reasons, properties: self._subacks.put(reasons)
        self.client.on_message = self._on_message
        self.client.on_disconnect = lambda client, userdata, flags, reason, properties: self.dropped.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.received.put(Received(message.topic, bytes(message.payload)))

    def connack(self, timeout: float = 5) -> ReasonCode:
        return self._connack.get(timeout=timeout)

    def connack_now(self) -> ReasonCode | None:
        try:
            return self._connack.get_nowait()
        except queue.Empty:
            return None

    def signed_in(self) -> Client:
        reason = self.connack()
        assert not reason.is_failure, f"the broker refused the connection: {reason}"
        return self

    def subscribe(self, topic: str) -> list[ReasonCode]:
        self.client.subscribe(topic, qos=1)
        return self._subacks.get(timeout=5)

    def publish(self, topic: str, payload: bytes) -> None:
        """QoS 1, waiting for the broker's PUBACK, so that the broker has handled it on return."""
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=5)
        assert info.is_published(), f"no PUBACK for {topic}"

    def next_message(self, timeout: float = 5) -> Received:
        try:
            return self.received.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"nothing arrived within {timeout} s") from None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
