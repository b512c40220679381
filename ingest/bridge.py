"""The bridge between paho's network thread and the worker's asyncio loop.

Messages cross through a bounded hand-off. paho's thread only waits when it is full, so
the broker stops sending (its in-flight window fills) instead of anything being dropped;
otherwise receiving goes on while the loop is busy with a batch. Messages are
acknowledged to the broker (PUBACK) only when the worker says so, after its transaction
has committed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from rpm.config import MqttProtocol, Settings
from rpm.observations.service import IncomingMessage

log = logging.getLogger("rpm.ingest.bridge")


@dataclass(frozen=True)
class Delivery:
    """A message as the core records it, and what the broker needs for its PUBACK."""

    message: IncomingMessage
    mid: int
    qos: int


class Handoff:
    """A bounded queue from paho's thread to the asyncio loop.

    The slots bound it: paho's thread waits for a free one, and the broker then stops
    sending. The loop is woken only when it waits for a message, not once per message: at
    thousands of messages a second, a wake-up each was a visible share of the worker's time.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, capacity: int) -> None:
        self._loop = loop
        self._items: deque[Delivery] = deque()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(capacity)
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: Delivery, keep_trying: Callable[[], bool]) -> bool:
        """From paho's thread: wait for a slot while `keep_trying()`; False if given up."""
        while not self._slots.acquire(timeout=0.5):
            if not keep_trying():
                return False
        with self._lock:
            self._items.append(item)
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._loop.call_soon_threadsafe(_wake, waiter)
        return True

    async def wait(self) -> None:
        """Until at least one message is queued."""
        with self._lock:
            if self._items:
                return
            waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            with self._lock:
                if self._waiter is waiter:
                    self._waiter = None

    def take(self) -> Delivery | None:
        """The oldest message, or None if there is none."""
        with self._lock:
            if not self._items:
                return None
            item = self._items.popleft()
        self._slots.release()
        return item

    def qsize(self) -> int:
        return len(self._items)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class MqttBridge:
    def __init__(self, settings: Settings, handoff: Handoff, loop: asyncio.AbstractEventLoop) -> None:
        self.settings = settings
        self.handoff = handoff
        self.loop = loop
        self.connected = threading.Event()
        self._intake_open = threading.Event()
        self._intake_open.set()
        v5 = settings.mqtt_protocol is MqttProtocol.v5
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=settings.mqtt_client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else False,
            manual_ack=True,
        )
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(1000)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        if settings.mqtt_username:
            password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
            self.client.username_pw_set(settings.mqtt_username, password)
        root = settings.mqtt_topic_root
        group = f"$share/{settings.mqtt_share_group}/" if settings.mqtt_share_group else ""
        self.subscription = f"{group}{root}/gateways/+/measurements"
        self.status_subscription = f"{group}{root}/gateways/+/status"

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        properties = None
        kwargs: dict[str, Any] = {}
        if self.settings.mqtt_protocol is MqttProtocol.v5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self.settings.mqtt_session_expiry_seconds
            properties.ReceiveMaximum = self.settings.mqtt_receive_maximum
            kwargs["clean_start"] = False
        self.client.connect_async(
            self.settings.mqtt_host, self.settings.mqtt_port, keepalive=30, properties=properties, **kwargs
        )
        self.client.loop_start()

    def close_intake(self) -> None:
        """Stop handing new messages to the loop; unacknowledged ones are redelivered later."""
        self._intake_open.clear()

    def stop(self, flush_timeout: float = 5.0) -> None:
        """Wait for queued acks and PUBACKs to leave, then disconnect (the session stays)."""
        deadline = threading.Event()
        waited = 0.0
        while self._has_outgoing() and waited < flush_timeout and self.connected.is_set():
            deadline.wait(0.05)
            waited += 0.05
        self.client.disconnect()
        self.client.loop_stop()

    def _has_outgoing(self) -> bool:
        client = self.client
        return bool(client._out_packet) or bool(client._out_messages)

    # -- paho callbacks (paho's thread) ----------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        log.info(
            "connected to %s:%s (session present: %s)",
            self.settings.mqtt_host,
            self.settings.mqtt_port,
            flags.session_present,
        )
        client.subscribe([(self.subscription, 1), (self.status_subscription, 1)])

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        if any(r.is_failure for r in reasons):
            log.error("the broker refused the subscription %s: %s", self.subscription, reasons)
            return
        self.connected.set()  # ready only once readings can actually arrive

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.connected.clear()
        if reason.is_failure:
            log.warning("lost the broker (%s); reconnecting with backoff", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if not self._intake_open.is_set():
            return  # not acknowledged: the broker delivers it again to this session or another worker
        delivery = Delivery(
            IncomingMessage(message.topic, bytes(message.payload), datetime.now(UTC)), message.mid, message.qos
        )
        # Back-pressure: when the hand-off is full, paho's thread waits here.
        self.handoff.put(delivery, keep_trying=lambda: self._intake_open.is_set() and not self.loop.is_closed())

    # -- called from the loop after commit ---------------------------------------------

    def publish_ack(self, gateway_id: str, results: list[dict[str, Any]]) -> None:
        topic = f"{self.settings.mqtt_topic_root}/gateways/{gateway_id}/acks"
        self.client.publish(topic, orjson.dumps({"results": results}), qos=1)

    def acknowledge(self, delivery: Delivery) -> None:
        if delivery.qos > 0:
            self.client.ack(delivery.mid, delivery.qos)
