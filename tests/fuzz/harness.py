"""Sending fuzz messages through the real broker to a real worker and checking every answer.

Used by tests/fuzz/test_worker_fuzz.py (a few thousand messages) and bench/fuzz.py (100,000).
One MQTT connection publishes (QoS 1) with at most `window` messages unanswered, driven from
the calling thread, and collects the acks: each message of route "own" has a gateway id of its
own, so its ack is the one on that gateway's acks topic. At the end, `check_kept` reads
rejected_readings and matches every row to a rejected result (or a bad topic), by reason,
reading id and payload bytes, both ways: nothing lost, nothing extra.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import psutil
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.fuzz.messages import ACCEPTED, REASONS, Expected, FuzzMessage, digest, expected_answer, raw_digest

MAX_PROBLEMS = 50  # problems kept verbatim for the report; all are counted


@dataclass
class Pending:
    family: str
    expected: Expected
    intended: tuple[str, ...] | None
    payload_digest: str
    sent_at: float


@dataclass
class Tally:
    sent: Counter[str] = field(default_factory=Counter)  # by route
    families: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)  # "accepted", "duplicate", "rejected:<reason>"
    answered_messages: int = 0
    readings_answered: int = 0
    accepted: int = 0
    bytes_sent: int = 0
    refused_by_broker: int = 0
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text[:2000])


class FuzzPublisher:
    """Publishes fuzz messages under `root` and checks each ack as it arrives."""

    def __init__(self, host: str, port: int, root: str, window: int = 300, check: bool = True) -> None:
        """`check=False`: only count answers (against an echo that answers anything at once)."""
        self.host, self.port, self.root, self.window, self.check = host, port, root, window, check
        self.prefix = f"fz{uuid.uuid4().hex[:6]}-"
        self.tally = Tally()
        self.pending: dict[str, Pending] = {}  # own gateway id -> what its ack must say
        # Kept rows that must exist: by gateway id (or topic, for bad topics) -> Counter of
        # (how the payload is compared, reason, reading id, digest).
        self.kept: dict[str, Counter[tuple[str, str, str | None, str]]] = {}
        self.outside_topics: set[str] = set()
        self._number = 0
        self._subscribed = False
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"fuzz-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.max_inflight_messages_set(65535)  # the window is the only limit
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_ack

    # -- connection ------------------------------------------------------------------

    def connect(self, timeout: float = 15) -> None:
        properties = Properties(PacketTypes.CONNECT)
        properties.ReceiveMaximum = 65535
        self.client.connect(self.host, self.port, keepalive=60, clean_start=True, properties=properties)
        deadline = time.monotonic() + timeout
        while not self._subscribed:
            if time.monotonic() > deadline:
                raise AssertionError(f"no SUBACK for the acks within {timeout}s")
            self.client.loop(0.1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop(0.1)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if not reason.is_failure:
            client.subscribe(f"{self.root}/gateways/+/acks", qos=1)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        self._subscribed = True

    def _loop(self, timeout: float) -> None:
        rc = self.client.loop(timeout)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError(f"lost the broker: {mqtt.error_string(rc)}")

    # -- sending -----------------------------------------------------------------------

    def send(self, message: FuzzMessage, alive: Callable[[], str | None] = lambda: None) -> None:
        """Publish one message once fewer than `window` are unanswered."""
        while len(self.pending) >= self.window:
            self._loop(0.05)
            self._give_up_if(alive())
        self._number += 1
        gateway = f"{self.prefix}{self._number}"
        payload = message.payload()
        self.tally.sent[message.route] += 1
        self.tally.families[message.family] += 1
        self.tally.bytes_sent += len(payload)
        if message.route == "refused":
            assert isinstance(message.topic, bytes)
            self._publish_refused(self.root.encode() + b"/" + message.topic, payload)
            return
        if message.route == "own":
            topic = f"{self.root}/gateways/{gateway}/measurements"
            self.pending[gateway] = (
                Pending(
                    message.family, expected_answer(payload), message.intended, raw_digest(payload), time.monotonic()
                )
                if self.check
                else Pending(message.family, Expected(), None, "", time.monotonic())
            )
        else:
            assert isinstance(message.topic, str)
            topic = f"{self.root}/" + message.topic.replace("{gateway}", gateway)
            if message.route == "bad_topic":
                self._expect_kept(topic, ("raw", "bad_topic", None, raw_digest(payload)))
            else:
                self.outside_topics.add(topic)
        info = self.client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise AssertionError(f"publish failed: {mqtt.error_string(info.rc)}")
        self._loop(0)

    def send_all(self, messages: Iterable[FuzzMessage], alive: Callable[[], str | None] = lambda: None) -> None:
        for message in messages:
            self.send(message, alive)

    def wait_answered(self, timeout: float, alive: Callable[[], str | None] = lambda: None) -> None:
        deadline = time.monotonic() + timeout
        while self.pending:
            self._give_up_if(alive())
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.pending)} messages unanswered after {timeout}s")
            self._loop(0.05)

    def _give_up_if(self, problem: str | None) -> None:
        if problem:
            raise AssertionError(f"{problem}; {len(self.pending)} messages unanswered")

    def _expect_kept(self, key: str, row: tuple[str, str, str | None, str]) -> None:
        self.kept.setdefault(key, Counter())[row] += 1

    def _publish_refused(self, topic: bytes, payload: bytes) -> None:
        """On a connection of its own (the broker drops it): the broker must not take it."""
        if publish_raw(self.host, self.port, topic, payload):
            self.tally.problem(f"the broker accepted the topic {topic!r}, which it must refuse")
        else:
            self.tally.refused_by_broker += 1

    # -- answers -------------------------------------------------------------------------

    def _on_ack(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic in self.outside_topics:
            return  # one of ours: a gateway publishing on the backend's acks topic
        gateway = message.topic.split("/")[-2]
        pending = self.pending.pop(gateway, None)
        if not self.check:
            self.tally.answered_messages += pending is not None
            return
        if pending is None:
            self.tally.problem(f"an ack nobody waits for (twice, or for no message) on {message.topic}")
            return
        self.tally.answered_messages += 1
        try:
            results = orjson.loads(message.payload)["results"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.tally.problem(f"{pending.family}: an ack that is no results document: {message.payload[:300]!r}")
            return
        self._check_results(gateway, pending, results)

    def _check_results(self, gateway: str, pending: Pending, results: list[dict[str, Any]]) -> None:
        expected = pending.expected
        where = f"{pending.family} message on {gateway}"
        for result in results:
            status = result.get("status")
            reason = result.get("reason")
            self.tally.statuses[status if status != "rejected" else f"rejected:{reason}"] += 1
            if status not in ("accepted", "duplicate", "rejected"):
                self.tally.problem(f"{where}: unknown status in {result}")
            elif status == "rejected" and reason not in REASONS:
                self.tally.problem(f"{where}: reason outside the contract in {result}")
            elif reason == "schema" and not result.get("detail"):
                self.tally.problem(f"{where}: a schema rejection without detail: {result}")
        self.tally.readings_answered += len(results)
        self.tally.accepted += sum(1 for r in results if r.get("status") == "accepted")
        if expected.message_reasons is not None:
            if len(results) != 1 or results[0].get("id") is not None:
                self.tally.problem(f"{where}: expected one result with id null, got {results[:3]}")
            elif results[0].get("reason") not in expected.message_reasons:
                self.tally.problem(f"{where}: expected {sorted(expected.message_reasons)}, got {results[0]}")
            else:
                self._expect_kept(gateway, ("raw", results[0]["reason"], None, pending.payload_digest))
            return
        if len(results) != len(expected.reading_ids):
            self.tally.problem(f"{where}: {len(expected.reading_ids)} readings, {len(results)} results: {results[:3]}")
            return
        for number, (result, reading_id) in enumerate(zip(results, expected.reading_ids, strict=True)):
            if result.get("id") != reading_id:
                self.tally.problem(f"{where}: result {number} names {result.get('id')!r}, the reading {reading_id!r}")
            intended = pending.intended[number] if pending.intended else None
            if intended == ACCEPTED and result.get("status") not in ("accepted", "duplicate"):
                self.tally.problem(f"{where}: reading {number} must be stored, got {result}")
            elif intended not in (None, ACCEPTED) and result.get("reason") != intended:
                self.tally.problem(f"{where}: reading {number} must be rejected {intended}, got {result}")
            if result.get("status") == "rejected":
                stored_id = reading_id.replace("\x00", "\ufffd") if reading_id else reading_id
                self._expect_kept(
                    gateway, ("reading", str(result.get("reason")), stored_id, expected.reading_digests[number])
                )

    # -- what the database kept --------------------------------------------------------------

    def check_kept(self, database_url: str, timeout: float = 60) -> dict[str, int]:
        """Match rejected_readings under this run's root against what must be kept."""
        expected_rows = sum(sum(c.values()) for c in self.kept.values())
        pattern = self.root.replace("%", r"\%").replace("_", r"\_") + "/%"
        with psycopg.connect(database_url, autocommit=True) as connection:
            deadline = time.monotonic() + timeout
            while True:  # bad-topic messages are answered to nobody: wait for their rows
                found = connection.execute(
                    "select count(*) from rejected_readings where topic like %s", [pattern]
                ).fetchone()
                if (found and found[0] >= expected_rows) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            missing = {key: Counter(rows) for key, rows in self.kept.items()}
            extra = 0
            rows = 0
            with connection.transaction(), connection.cursor(name="kept") as cursor:
                cursor.execute(
                    "select gateway_id, topic, reason, reading_id, payload from rejected_readings where topic like %s",
                    [pattern],
                )
                for gateway, topic, reason, reading_id, payload in cursor:
                    rows += 1
                    if not self._match(missing, gateway, topic, reason, reading_id, bytes(payload)):
                        extra += 1
                        self.tally.problem(
                            f"a kept row nobody expects: {gateway} {topic[:120]!r} {reason} {reading_id!r}"
                        )
            outside = connection.execute(
                "select count(*) from rejected_readings where topic = any(%s)", [sorted(self.outside_topics)]
            ).fetchone()
            stored = connection.execute(
                "select count(distinct (gateway_id, reading_id)) from observations where gateway_id like %s",
                [self.prefix.replace("_", r"\_") + "%"],
            ).fetchone()
        lost = 0
        for key, counter in missing.items():
            for row, count in counter.items():
                if count > 0:
                    lost += count
                    self.tally.problem(f"not kept ({count}x): {key[:120]!r} {row[:3]}")
        if outside and outside[0]:
            self.tally.problem(f"{outside[0]} messages outside the subscription reached the worker")
        if stored and stored[0] != self.tally.accepted:
            self.tally.problem(f"{self.tally.accepted} readings accepted in acks, {stored[0]} stored")
        return {
            "expected": expected_rows,
            "rows": rows,
            "lost": lost,
            "extra": extra,
            "stored": stored[0] if stored else 0,
        }

    def _match(
        self,
        missing: dict[str, Counter[tuple[str, str, str | None, str]]],
        gateway: str | None,
        topic: str,
        reason: str,
        reading_id: str | None,
        payload: bytes,
    ) -> bool:
        counter = missing.get(gateway if gateway is not None else topic)
        if counter is None:
            return False
        raw = ("raw", reason, reading_id, raw_digest(payload))
        if counter.get(raw, 0) > 0:
            counter[raw] -= 1
            return True
        try:
            reading = ("reading", reason, reading_id, digest(kept_json(payload)))
        except (ValueError, RecursionError):
            return False
        if counter.get(reading, 0) > 0:
            counter[reading] -= 1
            return True
        return False


def kept_json(payload: bytes) -> Any:
    """A kept reading's JSON (written by the standard library, so Infinity may appear)."""
    return json.loads(payload)


def publish_raw(host: str, port: int, topic: bytes, payload: bytes, timeout: float = 5) -> bool:
    """Publish QoS 1 over a bare MQTT 3.1.1 connection, topic bytes as given (no client library
    would send most of them); True if the broker acknowledged it (PUBACK)."""

    def packet(kind: int, body: bytes) -> bytes:
        length, encoded = len(body), b""
        while True:
            byte, length = length % 128, length // 128
            encoded += bytes([byte | (0x80 if length else 0)])
            if not length:
                return bytes([kind]) + encoded + body

    client_id = f"fuzz-raw-{uuid.uuid4().hex[:8]}".encode()
    connect = b"\x00\x04MQTT\x04\x02\x00\x1e" + struct.pack("!H", len(client_id)) + client_id
    with socket.create_connection((host, port), timeout=timeout) as connection:
        connection.sendall(packet(0x10, connect))
        if connection.recv(4)[:1] != b"\x20":
            raise AssertionError("the broker refused a plain connection")
        connection.sendall(packet(0x32, struct.pack("!H", len(topic)) + topic + b"\x00\x01" + payload))
        try:
            answer = connection.recv(4)
        except (ConnectionResetError, TimeoutError):
            return False
        return answer[:1] == b"\x40"


class WorkerProcess:
    """`rpm ingest` as a process of its own, so a crash shows as its exit and its memory is its own."""

    def __init__(self, env: dict[str, str], port: int, log_path: str | None = None) -> None:
        self.port = port
        self.log = open(log_path, "wb") if log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rpm.cli", "ingest"],
            env={**os.environ, **env, "RPM_METRICS_PORT": str(port)},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.memory = psutil.Process(self.process.pid)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the worker exited with {self.process.returncode} before it was ready")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"the worker was not ready within {timeout}s")

    def rss(self) -> int:
        return int(self.memory.memory_info().rss)

    def problem(self) -> str | None:
        code = self.process.poll()
        return None if code is None else f"the worker exited with {code}"

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (it drains and exits 0); killed if it does not exit in time."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.log is not subprocess.DEVNULL:
            self.log.close()
        return self.process.returncode
