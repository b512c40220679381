"""Reference gateways: the gateway's side of the MQTT contract (mqtt.md), end to end.

A broker's PUBACK only says the broker has a message; the backend's ack on
`<root>/gateways/<id>/acks` says each reading was stored or kept as rejected. So a gateway:
- keeps every reading until an ack names it (`duplicate` counts: the reading is stored),
  and publishes it again, with the same id, when no ack came within the resend timeout
  (60 s by default, doubling up to 15 minutes);
- subscribes to its acks with a persistent session (MQTT 5 clean start off with a session
  expiry, or MQTT 3.1.1 clean session off) under the fixed client id `rpm-gw-<gateway id>`,
  so that acks sent while it was away reach it when it returns;
- announces `online` (retained) on its status topic, with `offline` as its last will;
- publishes batches of at most 1,000 readings and 256 KiB, at QoS 1.

A hub that loses its connection keeps measuring: `go_offline()` keeps what is sent meanwhile
and `come_online()` sends it as one batch. A vendor cloud gateway is just a gateway that
carries many patients' readings.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from rpm.norway import OSLO
from rpm.simulator.physiology import Fault, SimReading

log = logging.getLogger("rpm.simulator.gateway")

MAX_BATCH_READINGS = 1000
MAX_PAYLOAD_BYTES = 256 * 1024
RESEND_AFTER_SECONDS = 60.0
RESEND_AT_MOST_SECONDS = 15 * 60.0
SESSION_EXPIRY_SECONDS = 2 * 24 * 3600  # longer than a hub is offline in the simulation
STORED = "stored"  # what a good reading expects: accepted, or duplicate (stored before)
DISCONNECT_WITH_WILL = 4  # MQTT 5 reason code: the broker publishes the will


def resend_delay(published: int, first: float = RESEND_AFTER_SECONDS, longest: float = RESEND_AT_MOST_SECONDS) -> float:
    """How long to wait for an ack after the `published`-th publication of a reading."""
    return min(first * 2 ** max(0, published - 1), longest)


def batches(
    bodies: list[dict[str, Any]],
    sent_at: str,
    *,
    max_readings: int = MAX_BATCH_READINGS,
    max_bytes: int = MAX_PAYLOAD_BYTES,
) -> Iterator[tuple[bytes, list[dict[str, Any]]]]:
    """Batch messages of the contract holding `bodies` in order, each within both limits."""
    head = json.dumps({"sent_at": sent_at, "readings": []}, separators=(",", ":")).encode()[:-2]  # up to the opening [
    parts: list[bytes] = []
    members: list[dict[str, Any]] = []
    size = len(head) + 2  # "]}"
    for body in bodies:
        part = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        if len(head) + len(part) + 2 > max_bytes:
            raise ValueError(f"reading {body.get('id')!r} alone is larger than {max_bytes} bytes")
        if parts and (len(parts) >= max_readings or size + 1 + len(part) > max_bytes):
            yield head + b",".join(parts) + b"]}", members
            parts, members, size = [], [], len(head) + 2
        size += len(part) + (1 if parts else 0)
        parts.append(part)
        members.append(body)
    if parts:
        yield head + b",".join(parts) + b"]}", members


@dataclass
class GatewayStats:
    sent: int = 0  # readings (and deliberate messages) published for the first time
    accepted: int = 0
    duplicate: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # by reason code
    resent: int = 0  # publications again after no ack came in time
    pending: int = 0  # kept until an ack names them
    # Answers other than expected: (reading id, expected, answered). Empty when all is well.
    unexpected: list[tuple[str | None, str, str]] = field(default_factory=list)
    stray_acks: int = 0  # results naming nothing pending: the answer to a reading published twice

    def add(self, other: GatewayStats) -> GatewayStats:
        return GatewayStats(
            sent=self.sent + other.sent,
            accepted=self.accepted + other.accepted,
            duplicate=self.duplicate + other.duplicate,
            rejected=self.rejected + other.rejected,
            resent=self.resent + other.resent,
            pending=self.pending + other.pending,
            unexpected=self.unexpected + other.unexpected,
            stray_acks=self.stray_acks + other.stray_acks,
        )

    def summary(self) -> str:
        rejected = ", ".join(f"{reason} {count}" for reason, count in sorted(self.rejected.items())) or "none"
        return (
            f"sent {self.sent}, accepted {self.accepted}, duplicate {self.duplicate}, rejected: {rejected}; "
            f"resent {self.resent}, pending {self.pending}, unexpected answers {len(self.unexpected)}"
        )


@dataclass
class _Kept:
    """A reading (or deliberate message) waiting for its ack."""

    reading_id: str | None
    expected: str  # STORED for a reading; for a deliberate message, "duplicate" or a reason code
    body: dict[str, Any] | None = None  # a reading: republished in a batch
    raw: bytes | None = None  # a deliberate message: republished as it is
    publications: int = 0
    due: float = 0.0  # monotonic time after which it is published again


class ReferenceGateway:
    def __init__(
        self,
        gateway_id: str,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        topic_root: str = "rpm/v1",
        protocol: str = "5",
        client_id: str | None = None,
        session_expiry: int = SESSION_EXPIRY_SECONDS,
        resend_after: float = RESEND_AFTER_SECONDS,
        resend_at_most: float = RESEND_AT_MOST_SECONDS,
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 30,
        own_timer: bool = True,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        if protocol not in ("5", "3.1.1"):
            raise ValueError("protocol: 5 or 3.1.1")
        self.gateway_id = gateway_id
        self.host, self.port, self.keepalive = host, port, keepalive
        self.v5 = protocol == "5"
        self.session_expiry = session_expiry
        self.resend_after, self.resend_at_most = resend_after, resend_at_most
        self.measurements_topic = f"{topic_root}/gateways/{gateway_id}/measurements"
        self.acks_topic = f"{topic_root}/gateways/{gateway_id}/acks"
        self.status_topic = f"{topic_root}/gateways/{gateway_id}/status"
        self._on_change = on_change
        self._lock = threading.Condition()
        self._readings: dict[str, _Kept] = {}  # by id, in the order sent
        self._deliberate: dict[str | None, deque[_Kept]] = {}  # by the id their answer names
        self._stats = GatewayStats()
        self._in_flight: list[mqtt.MQTTMessageInfo] = []  # published, the broker's PUBACK not yet in
        self._online = False  # wanted: connected, or connecting
        self._subscribed = threading.Event()  # acks can arrive: safe to publish
        self._connected = threading.Event()
        self._disconnected = threading.Event()  # set by the DISCONNECT's completion
        self._closed = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"rpm-gw-{gateway_id}",
            protocol=mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311,
            clean_session=None if self.v5 else False,
        )
        if username:
            self.client.username_pw_set(username, password)
        self.client.will_set(self.status_topic, "offline", qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self._timer = threading.Thread(target=self._resend_loop, daemon=True) if own_timer else None

    # -- connection ----------------------------------------------------------------------

    def connect(self, timeout: float = 30.0) -> None:
        """Connect and subscribe to the acks; return once acks can arrive."""
        self._start()
        self._await_subscription(timeout)

    def _await_subscription(self, timeout: float) -> None:
        if not self._subscribed.wait(timeout):
            raise TimeoutError(f"gateway {self.gateway_id}: no subscription to {self.acks_topic} within {timeout}s")
        if self._timer is not None and not self._timer.is_alive():
            self._timer.start()

    def _start(self) -> None:
        with self._lock:
            self._online = True
        properties = None
        if self.v5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self.session_expiry
            self.client.connect_async(self.host, self.port, self.keepalive, clean_start=False, properties=properties)
        else:
            self.client.connect_async(self.host, self.port, self.keepalive)
        self.client.loop_start()

    def go_offline(self, *, forget_session: bool = False) -> None:
        """Lose the connection as a hub does: the broker publishes the will (`offline`); readings
        sent from now on are kept until `come_online()`. `forget_session` (MQTT 5): the hub
        restarts and its broker session ends, so acks sent meanwhile are lost; only the resend
        can then settle its readings."""
        with self._lock:
            self._online = False
        connected = self._connected.is_set()
        self._subscribed.clear()
        if self.v5:
            properties = None
            if forget_session:
                properties = Properties(PacketTypes.DISCONNECT)
                properties.SessionExpiryInterval = 0
            self.client.disconnect(
                reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=DISCONNECT_WITH_WILL), properties=properties
            )
        else:  # MQTT 3.1.1 has no disconnect with will: say it before leaving
            if connected:
                self.client.publish(self.status_topic, "offline", qos=1, retain=True).wait_for_publish(5)
            self.client.disconnect()
        self._stop_loop(connected)
        self._changed()

    def come_online(self, timeout: float = 30.0) -> None:
        """Reconnect to the same session (acks sent meanwhile arrive now) and send what was kept."""
        self.connect(timeout)
        self._flush_kept()

    def _stop_loop(self, connected: bool) -> None:
        """After a disconnect: let the DISCONNECT packet leave before the network thread stops,
        else the broker sees a lost connection (and keeps a session meant to end)."""
        if connected:
            self._disconnected.wait(5)
        self.client.loop_stop()

    @property
    def online(self) -> bool:
        with self._lock:
            return self._online

    def close(self, *, forget_session: bool = False) -> None:
        """Say `offline` and disconnect. The session stays on the broker (with its unread acks)
        unless `forget_session`, which ends an MQTT 5 session at once."""
        self._closed.set()
        with self._lock:
            was_online, self._online = self._online, False
        if was_online:
            connected = self._connected.is_set()
            if connected:
                self.client.publish(self.status_topic, "offline", qos=1, retain=True).wait_for_publish(5)
            properties = None
            if forget_session and self.v5:
                properties = Properties(PacketTypes.DISCONNECT)
                properties.SessionExpiryInterval = 0
            self.client.disconnect(properties=properties)
            self._stop_loop(connected)
        if self._timer is not None and self._timer.is_alive():
            self._timer.join(5)

    # -- sending -------------------------------------------------------------------------

    def send(self, readings: Iterable[SimReading]) -> int:
        """Publish readings in batches (kept until acknowledged); while offline, only keep them."""
        kept = [_Kept(r.id, STORED, body=r.to_contract()) for r in readings]
        if not kept:
            return 0
        with self._lock:
            for item in kept:
                assert item.reading_id is not None
                self._readings[item.reading_id] = item
            self._stats.sent += len(kept)
            online = self._online
        if online:
            self._publish_readings(kept)
        self._changed()
        return len(kept)

    def send_raw(self, payload: bytes, expected_reason: str, reading_id: str | None = None) -> None:
        """Publish a message as it is (a deliberately bad one, or a reading again) and expect the
        ack for `reading_id` (None for a message that is not JSON) to answer `expected_reason`:
        a reason code, or `duplicate`. It is kept and republished like a reading."""
        item = _Kept(reading_id, expected_reason, raw=payload)
        with self._lock:
            self._deliberate.setdefault(reading_id, deque()).append(item)
            self._stats.sent += 1
            online = self._online
        if online:
            self._publish_raw(item)
        self._changed()

    def send_fault(self, fault: Fault, stamp: datetime | None = None) -> None:
        self.send_raw(fault.payload(stamp), fault.kind, fault.reading_id)

    def _publish_readings(self, items: list[_Kept], *, again: bool = False) -> None:
        sent_at = datetime.now(OSLO).isoformat(timespec="seconds")
        by_body = {id(item.body): item for item in items}
        for payload, members in batches([item.body for item in items if item.body is not None], sent_at):
            now = time.monotonic()
            with self._lock:
                for body in members:
                    item = by_body[id(body)]
                    item.publications += 1
                    item.due = now + resend_delay(item.publications, self.resend_after, self.resend_at_most)
                if again:
                    self._stats.resent += len(members)
            self._track(self.client.publish(self.measurements_topic, payload, qos=1))

    def _publish_raw(self, item: _Kept, *, again: bool = False) -> None:
        assert item.raw is not None
        with self._lock:
            item.publications += 1
            item.due = time.monotonic() + resend_delay(item.publications, self.resend_after, self.resend_at_most)
            if again:
                self._stats.resent += 1
        self._track(self.client.publish(self.measurements_topic, item.raw, qos=1))

    def _track(self, info: mqtt.MQTTMessageInfo) -> None:
        # A message published while the broker was away (rc: not connected) is not in flight:
        # paho's is_published() raises for it, and the resend takes care of its readings.
        with self._lock:
            self._in_flight = [i for i in self._in_flight if i.rc == mqtt.MQTT_ERR_SUCCESS and not i.is_published()]
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                self._in_flight.append(info)

    def flush(self, timeout: float = 10.0) -> bool:
        """Until the broker has everything published so far (its PUBACK: not yet the backend's ack)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            waiting = list(self._in_flight)
        for info in waiting:
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError):  # not queued: the resend will take care of it
                return False
            if not info.is_published():
                return False
        return True

    def _flush_kept(self) -> None:
        """Everything kept while offline, as batches (the oldest first)."""
        with self._lock:
            kept = [item for item in self._readings.values() if item.publications == 0]
            raw = [item for queue in self._deliberate.values() for item in queue if item.publications == 0]
        if kept:
            log.debug("gateway %s back online: sending %d kept readings", self.gateway_id, len(kept))
            self._publish_readings(kept)
        for item in raw:
            self._publish_raw(item)

    def resend_due(self, now: float | None = None) -> int:
        """Publish again what has waited for its ack past its timeout; how many."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if not self._online or not self._subscribed.is_set():
                return 0
            readings = [i for i in self._readings.values() if 0 < i.publications and i.due <= now]
            raw = [i for q in self._deliberate.values() for i in q if 0 < i.publications and i.due <= now]
        if readings:
            log.info(
                "gateway %s: no ack for %d readings in time; publishing them again", self.gateway_id, len(readings)
            )
            self._publish_readings(readings, again=True)
        for item in raw:
            self._publish_raw(item, again=True)
        return len(readings) + len(raw)

    def _resend_loop(self) -> None:
        tick = max(0.05, min(1.0, self.resend_after / 4))
        while not self._closed.wait(tick):
            try:
                self.resend_due()
            except Exception:  # the next tick tries again; nothing is dropped here
                log.exception("gateway %s: resending failed", self.gateway_id)

    # -- what is left --------------------------------------------------------------------

    def pending(self) -> int:
        with self._lock:
            return len(self._readings) + sum(len(q) for q in self._deliberate.values())

    def pending_ids(self) -> list[str | None]:
        with self._lock:
            return [*self._readings, *(i.reading_id for q in self._deliberate.values() for i in q)]

    def stats(self) -> GatewayStats:
        with self._lock:
            snapshot = GatewayStats(
                sent=self._stats.sent,
                accepted=self._stats.accepted,
                duplicate=self._stats.duplicate,
                rejected=Counter(self._stats.rejected),
                resent=self._stats.resent,
                unexpected=list(self._stats.unexpected),
                stray_acks=self._stats.stray_acks,
            )
            snapshot.pending = len(self._readings) + sum(len(q) for q in self._deliberate.values())
            return snapshot

    def wait_until_settled(self, timeout: float, stop: threading.Event | None = None) -> bool:
        """Until every reading sent has its ack (True), `timeout` seconds pass or `stop` is set."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._readings or any(self._deliberate.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (stop is not None and stop.is_set()):
                    return False
                self._lock.wait(min(remaining, 0.2))
            return True

    def _changed(self) -> None:
        with self._lock:
            self._lock.notify_all()
        if self._on_change is not None:
            self._on_change()

    # -- paho callbacks (its network thread) ------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            log.error("gateway %s: the broker refused the connection: %s", self.gateway_id, reason)
            return
        self._disconnected.clear()
        self._connected.set()
        client.subscribe(self.acks_topic, qos=1)
        client.publish(self.status_topic, "online", qos=1, retain=True)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        if any(r.is_failure for r in reasons):
            log.error("gateway %s: the broker refused the subscription to %s", self.gateway_id, self.acks_topic)
            return
        self._subscribed.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self._subscribed.clear()
        self._connected.clear()
        self._disconnected.set()
        if reason.is_failure and self.online:
            log.warning("gateway %s lost the broker (%s); reconnecting", self.gateway_id, reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            results = json.loads(message.payload)["results"]
        except (ValueError, KeyError, TypeError):
            log.error("gateway %s: an ack that breaks the contract: %r", self.gateway_id, message.payload[:200])
            return
        with self._lock:
            for result in results:
                self._settle(result)
        self._changed()

    def _settle(self, result: dict[str, Any]) -> None:
        """One result of an ack: the reading it names is done (under the lock)."""
        reading_id, status = result.get("id"), result.get("status")
        answer = str(result.get("reason")) if status == "rejected" else str(status)
        stats = self._stats
        item = self._readings.pop(reading_id, None) if isinstance(reading_id, str) else None
        if item is None:
            queue = self._deliberate.get(reading_id)
            if not queue:
                stats.stray_acks += 1  # e.g. the second answer to a reading published twice
                return
            item = queue.popleft()
            if not queue:
                del self._deliberate[reading_id]
        if status == "accepted":
            stats.accepted += 1
        elif status == "duplicate":
            stats.duplicate += 1
        else:
            stats.rejected[answer] += 1
        if answer != item.expected and not (item.expected == STORED and status in ("accepted", "duplicate")):
            stats.unexpected.append((reading_id, item.expected, answer))
            log.warning(
                "gateway %s: reading %s answered %s, expected %s", self.gateway_id, reading_id, answer, item.expected
            )


def mqtt_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise ValueError(f"not an mqtt://host:port URL: {url!r}")
    return parts.hostname, parts.port or 1883


class Fleet:
    """Many gateways on one broker; one timer resends for all of them."""

    def __init__(
        self,
        host: str,
        port: int,
        gateway_ids: Iterable[str],
        *,
        client_id_prefix: str = "rpm-gw-",
        **options: Any,
    ) -> None:
        self._changed = threading.Condition()
        self.gateways: dict[str, ReferenceGateway] = {
            gateway_id: ReferenceGateway(
                gateway_id,
                host,
                port,
                client_id=f"{client_id_prefix}{gateway_id}",
                own_timer=False,
                on_change=self._notify,
                **options,
            )
            for gateway_id in dict.fromkeys(gateway_ids)
        }
        self._closed = threading.Event()
        resend_after = options.get("resend_after", RESEND_AFTER_SECONDS)
        self._tick = max(0.05, min(1.0, resend_after / 4))
        self._timer = threading.Thread(target=self._resend_loop, daemon=True)

    @classmethod
    def from_url(cls, mqtt_url: str, gateway_ids: Iterable[str], **options: Any) -> Fleet:
        host, port = mqtt_address(mqtt_url)
        return cls(host, port, gateway_ids, **options)

    def __getitem__(self, gateway_id: str) -> ReferenceGateway:
        return self.gateways[gateway_id]

    def connect(self, timeout: float = 30.0) -> None:
        for gateway in self.gateways.values():
            gateway._start()
        deadline = time.monotonic() + timeout
        for gateway in self.gateways.values():
            gateway._await_subscription(max(0.1, deadline - time.monotonic()))
        if not self._timer.is_alive():
            self._timer.start()

    def send(self, readings: Iterable[SimReading]) -> int:
        """Each reading through its patient's gateway, one batch per gateway."""
        by_gateway: dict[str, list[SimReading]] = {}
        for reading in readings:
            by_gateway.setdefault(reading.gateway_id, []).append(reading)
        return sum(self.gateways[g].send(group) for g, group in by_gateway.items())

    def send_fault(self, fault: Fault, stamp: datetime | None = None) -> None:
        self.gateways[fault.gateway_id].send_fault(fault, stamp)

    def pending(self) -> int:
        return sum(g.pending() for g in self.gateways.values())

    def stats(self) -> GatewayStats:
        total = GatewayStats()
        for gateway in self.gateways.values():
            total = total.add(gateway.stats())
        return total

    def wait_until_settled(
        self, timeout: float, *, include_offline: bool = False, stop: threading.Event | None = None
    ) -> bool:
        """Until the online gateways (or all) have an ack for everything they sent."""
        deadline = time.monotonic() + timeout

        def settled() -> bool:
            return all(g.pending() == 0 for g in self.gateways.values() if include_offline or g.online)

        with self._changed:
            while not settled():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (stop is not None and stop.is_set()):
                    return False
                self._changed.wait(min(remaining, 0.2))
        return True

    def close(self, *, forget_sessions: bool = False) -> None:
        self._closed.set()
        for gateway in self.gateways.values():
            gateway.close(forget_session=forget_sessions)
        if self._timer.is_alive():
            self._timer.join(5)

    def __enter__(self) -> Fleet:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _resend_loop(self) -> None:
        while not self._closed.wait(self._tick):
            for gateway in self.gateways.values():
                try:
                    gateway.resend_due()
                except Exception:  # the next tick tries again; nothing is dropped here
                    log.exception("gateway %s: resending failed", gateway.gateway_id)


def unique_client_prefix() -> str:
    """A client id prefix of its own, for runs that must not take over another run's sessions."""
    return f"rpm-gw-{uuid.uuid4().hex[:6]}-"
