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
import time
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
from rpm.pipeline import IncomingMessage

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
        self.connected = threading.Event()  # subscribed: readings can arrive
        self.link_up = threading.Event()  # the broker accepted the connection, not lost since
        self.answered = threading.Event()  # a CONNACK came (accepting or refusing)
        self.session_present: bool | None = None  # what the last CONNACK said
        self.unexpected_disconnects = 0
        self._intake_open = threading.Event()
        self._intake_open.set()
        # In the share group, the worker subscribes on every connect. Retiring clears it: it then
        # unsubscribes instead, so the broker routes no new reading to this session.
        self._in_group = threading.Event()
        self._in_group.set()
        self._left_group = threading.Event()
        self._held = 0  # messages handed to the loop and not yet acknowledged
        self._held_lock = threading.Lock()
        self.last_delivery = time.monotonic()
        self.refused = 0  # messages that arrived after intake closed (left unacknowledged)
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
        self.client.on_unsubscribe = self._on_unsubscribe
        if settings.mqtt_username:
            password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
            self.client.username_pw_set(settings.mqtt_username, password)
        root = settings.mqtt_topic_root
        group = f"$share/{settings.mqtt_share_group}/" if settings.mqtt_share_group else ""
        self.subscription = f"{group}{root}/gateways/+/measurements"
        self.status_subscription = f"{group}{root}/gateways/+/status"

    # -- lifecycle -----------------------------------------------------------------

    def start(self, *, join_group: bool = True) -> None:
        """Connect; subscribe in the share group, or (not `join_group`) only take over the
        session to hand it back."""
        if not join_group:
            self._in_group.clear()
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

    def leave_group(self, timeout: float) -> bool:
        """Unsubscribe, so that the broker sends this session nothing new; what it already holds
        for it still arrives. True once the broker confirmed (now, or on the next connect)."""
        self._in_group.clear()
        if self.link_up.is_set() and not self._left_group.is_set():
            self.client.unsubscribe([self.subscription, self.status_subscription])
        return self._left_group.wait(timeout)

    def quiet_for(self, seconds: float) -> bool:
        """Nothing held unacknowledged, and nothing delivered for `seconds`: having left the
        group, the broker then has nothing more for this session (it sends what it holds as
        soon as the in-flight window allows)."""
        with self._held_lock:
            held = self._held
        return held == 0 and time.monotonic() - self.last_delivery >= seconds

    def stop(self, flush_timeout: float = 5.0, *, end_session: bool = False) -> bool:
        """Wait for queued acks and PUBACKs to leave, then disconnect. The session stays,
        unless `end_session`: then the broker drops it, and with it any message still in it.
        Returns whether a session that was to end did end."""
        deadline = threading.Event()
        waited = 0.0
        while self._has_outgoing() and waited < flush_timeout and self.link_up.is_set():
            deadline.wait(0.05)
            waited += 0.05
        v5 = self.settings.mqtt_protocol is MqttProtocol.v5
        ended_by_disconnect = end_session and v5 and self.link_up.is_set()
        properties = None
        if ended_by_disconnect:
            properties = Properties(PacketTypes.DISCONNECT)
            properties.SessionExpiryInterval = 0
        connected = self.link_up.is_set()
        self.client.disconnect(properties=properties)
        if connected:  # let the DISCONNECT leave: a lost connection would keep the session
            waited = 0.0
            while self.link_up.is_set() and waited < flush_timeout:
                deadline.wait(0.05)
                waited += 0.05
        self.client.loop_stop()
        if end_session and not ended_by_disconnect:
            return self._forget_session(flush_timeout)
        return end_session

    def _forget_session(self, timeout: float) -> bool:
        """End this client id's session with a clean connection of its own: MQTT 3.1.1 cannot
        end it on disconnect, and a worker that lost the broker cannot either."""
        v5 = self.settings.mqtt_protocol is MqttProtocol.v5
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.settings.mqtt_client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else True,
        )
        if self.settings.mqtt_username:
            password = self.settings.mqtt_password.get_secret_value() if self.settings.mqtt_password else None
            client.username_pw_set(self.settings.mqtt_username, password)
        accepted, gone = threading.Event(), threading.Event()
        client.on_connect = lambda c, u, f, reason, p: None if reason.is_failure else accepted.set()
        client.on_disconnect = lambda *args: gone.set()
        properties = None
        kwargs: dict[str, Any] = {}
        if v5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 0
            kwargs["clean_start"] = True
        try:
            client.connect(self.settings.mqtt_host, self.settings.mqtt_port, properties=properties, **kwargs)
        except OSError as error:
            log.error("could not end the session of %s: %s", self.settings.mqtt_client_id, error)
            return False
        client.loop_start()
        ended = accepted.wait(timeout)
        client.disconnect()
        gone.wait(timeout)
        client.loop_stop()
        if not ended:
            log.error("could not end the session of %s: the broker did not accept it", self.settings.mqtt_client_id)
        return ended

    def _has_outgoing(self) -> bool:
        client = self.client
        return bool(client._out_packet) or bool(client._out_messages)

    # -- paho callbacks (paho's thread) ----------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.answered.set()
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        self.session_present = bool(flags.session_present)
        self.last_delivery = time.monotonic()  # what a kept session holds comes right after this
        self.link_up.set()
        v5 = self.settings.mqtt_protocol is MqttProtocol.v5
        log.info(
            "connected to %s:%s as %s (session present: %s; the broker keeps it %s after a disconnect)",
            self.settings.mqtt_host,
            self.settings.mqtt_port,
            self.settings.mqtt_client_id,
            flags.session_present,
            f"{self.settings.mqtt_session_expiry_seconds} s" if v5 else "until its persistent_client_expiration",
        )
        if self._in_group.is_set():
            client.subscribe([(self.subscription, 1), (self.status_subscription, 1)])
        else:
            client.unsubscribe([self.subscription, self.status_subscription])

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        if any(r.is_failure for r in reasons):
            log.error("the broker refused the subscription %s: %s", self.subscription, reasons)
            return
        if self._in_group.is_set():
            self.connected.set()  # ready only once readings can actually arrive

    def _on_unsubscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        self.connected.clear()
        self._left_group.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.connected.clear()
        self.link_up.clear()
        if reason.is_failure:
            self.unexpected_disconnects += 1
            log.warning("lost the broker (%s); reconnecting with backoff", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.last_delivery = time.monotonic()
        if not self._intake_open.is_set():
            # Not acknowledged: the broker delivers it again to this session, or drops it with a
            # session that ends (retiring); the gateway's resend then brings it to another worker.
            self.refused += 1
            return
        delivery = Delivery(
            IncomingMessage(message.topic, bytes(message.payload), datetime.now(UTC)), message.mid, message.qos
        )
        # Back-pressure: when the hand-off is full, paho's thread waits here.
        if not self.handoff.put(delivery, keep_trying=lambda: self._intake_open.is_set() and not self.loop.is_closed()):
            self.refused += 1
        elif delivery.qos > 0:
            with self._held_lock:
                self._held += 1

    # -- called from the loop after commit ---------------------------------------------

    def publish_ack(self, gateway_id: str, results: list[dict[str, Any]]) -> None:
        topic = f"{self.settings.mqtt_topic_root}/gateways/{gateway_id}/acks"
        self.client.publish(topic, orjson.dumps({"results": results}), qos=1)

    def acknowledge(self, delivery: Delivery) -> None:
        if delivery.qos > 0:
            self.client.ack(delivery.mid, delivery.qos)
            with self._held_lock:
                self._held -= 1
