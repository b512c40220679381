"""For the simulator's end-to-end tests: an organisation of the test's own, an admin's token,
a broker observer that records every message gateways publish, and an ingest worker the test
starts and stops itself."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rpm.access.tokens import mint_dev_token
from rpm.config import Settings
from rpm.ingest.worker import IngestWorker
from rpm.organisations.models import Organisation


@pytest.fixture
async def organisation(committed: async_sessionmaker[AsyncSession]) -> str:
    """A municipality of this test alone (tests that commit never share an organisation)."""
    orgnr = f"{random.randrange(10**8, 10**9)}"
    async with committed() as session, session.begin():
        session.add(Organisation(orgnr=orgnr, name=f"Simulert kommune {orgnr}", kind="municipality"))
    return orgnr


@pytest.fixture
def admin_token(settings: Settings, organisation: str) -> str:
    return mint_dev_token(settings, sub="sim-admin", orgnr=organisation, roles=["admin", "nurse"])


@pytest.fixture
def unique() -> str:
    """A prefix for serials and client ids, so nothing of this test meets another's."""
    return f"T{uuid.uuid4().hex[:8].upper()}"


@dataclass(frozen=True)
class Seen:
    topic: str
    payload: bytes
    retain: bool


class Observer:
    """A client of the broker that records what gateways publish under a topic root."""

    def __init__(self, host: str, port: int, root: str, pattern: str = "gateways/+/+") -> None:
        self.root = root
        self.messages: list[Seen] = []
        self._changed = threading.Condition()
        subscribed = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"observer-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.on_connect = lambda client, *args: client.subscribe(f"{root}/{pattern}", qos=1)
        self.client.connect(host, port)
        self.client.loop_start()
        assert subscribed.wait(10), "the observer did not subscribe"

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._changed:
            self.messages.append(Seen(message.topic, bytes(message.payload), bool(message.retain)))
            self._changed.notify_all()

    def measurements(self) -> list[Seen]:
        with self._changed:
            return [m for m in self.messages if m.topic.endswith("/measurements")]

    def statuses(self) -> list[Seen]:
        with self._changed:
            return [m for m in self.messages if m.topic.endswith("/status")]

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"the observer waited {timeout:.0f} s for {what}")
                self._changed.wait(min(remaining, 0.2))

    def reading_ids(self) -> set[str]:
        found: set[str] = set()
        for message in self.measurements():
            try:
                document = json.loads(message.payload)
                found |= {r["id"] for r in document.get("readings", [document])}
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
        return found

    def acked(self) -> set[str]:
        """Reading ids named by the worker's acks so far."""
        with self._changed:
            acks = [m for m in self.messages if m.topic.endswith("/acks")]
        return {r["id"] for m in acks for r in json.loads(m.payload)["results"] if r["id"]}

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def observer(settings: Settings) -> Iterator[Observer]:
    watching = Observer(settings.mqtt_host, settings.mqtt_port, settings.mqtt_topic_root)
    yield watching
    watching.close()


@asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[IngestWorker]:
    """The ingest worker in this loop until the block ends, then stopped and drained. Its
    broker session (fixed client id) outlives it, like a worker that is restarted."""
    worker = IngestWorker(settings)
    await worker.start()
    task = asyncio.create_task(worker.run())
    deadline = time.monotonic() + 10
    while not worker.ready():
        assert time.monotonic() < deadline, "the worker did not connect to the broker"
        await asyncio.sleep(0.05)
    try:
        yield worker
    finally:
        worker.request_stop()
        await asyncio.wait_for(task, 15)


async def wait_until(condition: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll an async or plain condition until it holds, within a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(0.1)
