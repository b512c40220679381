"""The ingest worker process: `rpm ingest`.

Start: engine (tagged `rpm-ingest`), schema check, metrics server, MQTT bridge.
Run: take messages from the bridge's queue, flush a batch when it holds enough readings
or when the flush timer fires, record it in one transaction, then publish the acks and
PUBACK each message. Stop (SIGTERM/SIGINT): close intake, drain what is queued within
`ingest_drain_seconds`, commit and acknowledge it, disconnect, dispose the engine.

Retire (a worker stopped for good: SIGTERM with `mqtt_retire_on_stop`, or `rpm ingest --retire
ID` for one that is gone): leave the share group first, record what the broker still holds for
the session until it sends nothing more, then stop as above and end the session, so that no
reading waits in it (docs/operations.md#scaling-out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rpm.alerts import service as alerts
from rpm.config import MqttProtocol, Settings
from rpm.db import create_engine, require_migrated, session_factory
from rpm.gateways import repository as gateways
from rpm.ingest.bridge import Delivery, Handoff, MqttBridge
from rpm.ingest.metrics import IngestMetrics, serve
from rpm.pipeline import MessageOutcome, RulesReport, record_messages, run_clock_rules
from rpm.rules import service as thresholds
from rpm.runtime import FreeMemoryReturner, tune_garbage_collection

log = logging.getLogger("rpm.ingest")

# Retiring: the broker has nothing more for a session that left its group once the worker
# holds nothing unacknowledged and nothing has arrived for this long.
QUIET_SECONDS = 1.0
# The gateways' first resend timeout in the contract (mqtt.md, "End to end").
GATEWAY_RESEND_SECONDS = 60
# Container ids, UUIDs, and Kubernetes Deployment pod names: names that change at each restart.
_GENERATED = re.compile(
    r"(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{8,}|-[bcdfghjklmnpqrstvwxz2-9]{6,10}-[bcdfghjklmnpqrstvwxz2-9]{5}$"
)


def looks_generated(client_id: str) -> bool:
    """Whether a client id looks made up at each start rather than a fixed slot (`rpm-ingest-3`)."""
    return _GENERATED.search(client_id.lower()) is not None


# SQLSTATE classes and codes that say the database cannot be used now, whatever a batch holds:
# 08 connection exception, 53 insufficient resources (too many connections, disk full),
# 57P01-57P05 shut down by an administrator or a crash, cannot connect now, idle timeouts.
DATABASE_AWAY_SQLSTATES = ("08", "53", "57P")


def database_away(error: BaseException) -> bool:
    """Whether `error` means the database is unavailable (retry the batch whole later) rather
    than that something in the batch fails (try its messages one by one).

    asyncpg's errors mostly reach SQLAlchemy as a plain DBAPIError, not an OperationalError:
    a connection terminated under a transaction (SQLSTATE 08003, the connection invalidated),
    or a database refusing new connections while it restarts (55000 "not currently accepting
    connections", raised before any statement)."""
    if isinstance(error, (OperationalError, InterfaceError, OSError)):
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated or error.statement is None:
        return True  # the connection was lost, or none could be had
    sqlstate = str(getattr(error.orig, "sqlstate", None) or "")
    return sqlstate.startswith(DATABASE_AWAY_SQLSTATES)


# A message that fails alone (not the database away: a statement timeout, a constraint or
# trigger refusing its rows) is retried on its own after this long, doubling up to the most.
RETRY_ALONE_FIRST_SECONDS = 1.0
RETRY_ALONE_MOST_SECONDS = 60.0


def estimated_readings(payload: bytes) -> int:
    """A cheap upper-bound guess of readings in a message, to size batches before parsing."""
    return max(1, payload.count(b'"id"'))


class IngestWorker:
    queue: Handoff  # made in start(), on the running loop

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = IngestMetrics()
        self.engine: AsyncEngine | None = None
        self.sessions: async_sessionmaker[AsyncSession] | None = None
        self.bridge: MqttBridge | None = None
        self._stopping = asyncio.Event()
        # When each gateway's newest message arrived, since it was last written down: kept
        # here and written every few seconds, not in each batch's transaction, where two
        # workers would wait on each other's gateway rows.
        self._heard_from: dict[str, datetime] = {}
        self._retiring: asyncio.Future[None] | None = None
        self.end_session = False  # on close: end the broker session (retiring)
        self._join_group = True
        self.recorded_messages = 0
        self.recorded_readings = 0
        self._recorded_before_leaving: int | None = None  # set on leaving the share group
        # Messages that failed alone, each waiting (unacknowledged) for its next try.
        self._set_aside: set[asyncio.Task[None]] = set()

    async def start(self, *, join_group: bool = True) -> None:
        """Connect and subscribe; without `join_group`, only take over the session (retiring it)."""
        self._join_group = join_group
        self.engine = create_engine(self.settings, "rpm-ingest", pre_ping=False)
        await require_migrated(self.engine)
        self.sessions = session_factory(self.engine)
        if self.settings.metrics_port:
            serve(self.metrics, self.settings.metrics_port, self.ready, self.settings.metrics_host)
        loop = asyncio.get_running_loop()
        self.queue = Handoff(loop, self.settings.ingest_queue_messages)
        self.bridge = MqttBridge(self.settings, self.queue, loop)
        self.bridge.start(join_group=join_group)
        self.metrics.session_present.set_function(lambda: float(bool(self.bridge and self.bridge.session_present)))
        self.metrics.session_expiry.set(self.settings.mqtt_session_expiry_seconds)

    def ready(self) -> bool:
        return self.bridge is not None and self.bridge.connected.is_set()

    def request_stop(self) -> None:
        if self.settings.mqtt_retire_on_stop and self._retiring is None:
            log.info("stopping for good (RPM_MQTT_RETIRE_ON_STOP): leaving the share group, recording what is left")
            self._retiring = asyncio.ensure_future(self._retire_then_stop())
            return
        self.close_intake()

    def close_intake(self) -> None:
        log.info("stopping: intake closed, draining")
        if self.bridge is not None:
            self.bridge.close_intake()
        self._stopping.set()

    async def _retire_then_stop(self) -> None:
        try:
            await self.hand_back()
        finally:
            self.close_intake()

    async def hand_back(self) -> bool:
        """Leave the share group and go on recording until the broker has nothing more for this
        session (at most `ingest_drain_seconds`); the session ends when the worker closes.
        Whether it got that far; if not, what is left in the session is resent by its gateways."""
        assert self.bridge is not None
        self.end_session = True
        self._recorded_before_leaving = self.recorded_messages
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.ingest_drain_seconds
        left = await asyncio.to_thread(self.bridge.leave_group, self.settings.ingest_drain_seconds)
        quiet = False
        while left and not quiet and loop.time() < deadline:
            await asyncio.sleep(0.05)  # polling the paho thread's counters
            quiet = self.bridge.quiet_for(QUIET_SECONDS)
        if not quiet:
            log.warning(
                "retiring %s: the broker still had messages for it after %.0f s; they are dropped with the session "
                "and their gateways resend them",
                self.settings.mqtt_client_id,
                self.settings.ingest_drain_seconds,
            )
            return False
        return True

    async def run(self) -> None:
        """Process batches until asked to stop, then drain and close."""
        checks_wanted = self.settings.rules_enabled and self._join_group
        checks = asyncio.create_task(self._periodic_checks()) if checks_wanted else None
        activity = asyncio.create_task(self._periodic_gateway_activity())
        try:
            # Up to `ingest_batches_in_flight` batches overlap: while older ones wait for
            # PostgreSQL, the newest is checked and judged. Each acknowledges only after the one
            # before it, so acks still leave in the order messages arrived.
            in_flight: deque[asyncio.Task[None]] = deque()
            while not self._stopping.is_set():
                newest = in_flight[-1] if in_flight else None
                batch = await self._next_batch(in_flight=newest)
                if batch:
                    in_flight.append(asyncio.create_task(self._process(batch, after=newest)))
                while in_flight and (len(in_flight) >= self.settings.ingest_batches_in_flight or in_flight[0].done()):
                    await in_flight.popleft()
            for task in in_flight:
                await task
            await self._drain()
            if self._set_aside:
                # Woken by the stop, they end without a try; what they hold stays unacknowledged.
                await asyncio.gather(*self._set_aside)
        finally:
            for task in [activity] if checks is None else [checks, activity]:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with contextlib.suppress(Exception):
                await self.record_gateway_activity()
            await self._close()

    async def run_checks(self, now: datetime) -> tuple[int, int]:
        """Missing measurements, escalation, the hand-over of unattended red alerts at closing
        time, the end of snoozes whose time has come and the start periods' proposals, once,
        each in a transaction of its own; safe while other workers do the same. A step that
        fails (a deadlock with a batch, say) does not keep the later ones from running; the
        failures are raised together at the end. Returns (missing alerts opened, escalated)."""
        assert self.sessions is not None
        settings = self.settings
        steps: dict[str, tuple[Callable[[AsyncSession], Awaitable[int]], str]] = {
            "missing measurements": (
                lambda s: run_clock_rules(s, now, timedelta(hours=settings.missing_grace_hours)),
                "opened %d missing-measurement alerts",
            ),
            "escalation": (
                lambda s: alerts.escalate(
                    s,
                    now,
                    timedelta(minutes=settings.escalate_red_minutes),
                    timedelta(hours=settings.escalate_yellow_hours),
                ),
                "escalated %d alerts",
            ),
            "hand-over at closing time": (
                lambda s: alerts.hand_over_at_closing(s, now),
                "handed %d red alerts over to out-of-hours partners at closing time",
            ),
            "snoozes ending": (lambda s: alerts.wake_due(s, now), "woke %d snoozed alerts whose snooze had run out"),
            "start-period proposals": (
                lambda s: thresholds.propose_due(s, now),
                "proposed thresholds to %d patients at the end of their start period",
            ),
        }
        done: dict[str, int] = {}
        failed: list[str] = []
        for name, (step, message) in steps.items():
            try:
                async with self.sessions() as session, session.begin():
                    done[name] = await step(session)
            except Exception:  # the next round tries again; a reading is never at stake here
                log.exception("rule check %r failed", name)
                failed.append(name)
                continue
            if done[name]:
                log.info(message, done[name])
        missing, escalated = done.get("missing measurements", 0), done.get("escalation", 0)
        self.metrics.alerts_escalated.inc(escalated)
        if missing:
            self.metrics.alerts_opened.labels("missing").inc(missing)
        if failed:
            raise RuntimeError(f"rule checks failed: {', '.join(failed)}")
        return missing, escalated

    async def _periodic_checks(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_checks(datetime.now(UTC))
            except Exception:  # the next round tries again; a reading is never at stake here
                log.exception("periodic rule checks failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.settings.rules_check_seconds)

    async def record_gateway_activity(self) -> None:
        """Write down when each gateway was last heard from; kept for next time on failure."""
        if not self._heard_from:
            return
        assert self.sessions is not None
        heard, self._heard_from = self._heard_from, {}
        try:
            async with self.sessions() as session, session.begin():
                await gateways.heard_from(session, heard)
        except BaseException:
            for gateway_id, at in heard.items():
                self._heard_from[gateway_id] = max(at, self._heard_from.get(gateway_id, at))
            raise

    async def _periodic_gateway_activity(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.settings.gateway_activity_seconds)
            try:
                await self.record_gateway_activity()
            except Exception:  # an operator's view only: the next round tries again
                log.exception("recording gateway activity failed")

    async def _next_batch(self, in_flight: asyncio.Task[None] | None) -> list[Delivery]:
        """The next batch; empty when asked to stop.

        It closes when it holds `ingest_batch_readings` readings, or when no more messages are
        waiting and the batch before it (`in_flight`) is done: the database is then idle, and
        waiting would only add latency. While that batch is still being recorded, this one
        keeps growing, for at most `ingest_flush_ms`: under load, batches grow by themselves
        (like group commit), and a quiet hour still gets each reading through at once.
        """
        stop = asyncio.ensure_future(self._stopping.wait())
        arrived = asyncio.ensure_future(self.queue.wait())
        await asyncio.wait({stop, arrived}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        arrived.cancel()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.ingest_flush_ms / 1000
        batch: list[Delivery] = []
        readings = 0
        while not self._stopping.is_set() and readings < self.settings.ingest_batch_readings:
            item = self.queue.take()
            if item is not None:
                batch.append(item)
                readings += estimated_readings(item.message.payload)
                continue
            remaining = deadline - loop.time()
            if in_flight is None or in_flight.done() or remaining <= 0:
                break
            more = asyncio.ensure_future(self.queue.wait())
            await asyncio.wait({more, in_flight}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            more.cancel()
        return batch

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.ingest_drain_seconds
        while self.queue.qsize() and loop.time() < deadline:
            batch: list[Delivery] = []
            while len(batch) < 1000 and (item := self.queue.take()) is not None:
                batch.append(item)
            await self._process(batch)
        if self.queue.qsize():
            log.warning("drain timed out with %d messages unacknowledged; the broker keeps them", self.queue.qsize())

    async def close(self) -> None:
        """Disconnect (ending the session when retiring) and release the database."""
        await self._close()

    async def _close(self) -> None:
        if self.bridge is not None:
            ended = await asyncio.to_thread(self.bridge.stop, end_session=self.end_session)
            if self.end_session and self._recorded_before_leaving is not None:
                refused = self.bridge.refused
                log.log(
                    logging.INFO if ended and not refused else logging.WARNING,
                    "retired %s: %s; %d messages recorded since it left the share group%s",
                    self.settings.mqtt_client_id,
                    "its broker session ended" if ended else "ending its broker session FAILED (it expires by itself)",
                    self.recorded_messages - (self._recorded_before_leaving or 0),
                    f"; {refused} that came after intake closed were dropped with it (their gateways resend them)"
                    if refused
                    else "",
                )
        if self.engine is not None:
            await self.engine.dispose()

    async def _record(self, deliveries: list[Delivery]) -> tuple[list[MessageOutcome], RulesReport]:
        assert self.sessions is not None
        messages = [d.message for d in deliveries]
        report = RulesReport()
        async with self.sessions() as session, session.begin():
            outcomes = await record_messages(
                session,
                messages,
                now=datetime.now(UTC),
                topic_root=self.settings.mqtt_topic_root,
                rules=self.settings.rules_enabled,
                news2_window=timedelta(minutes=self.settings.news2_window_minutes),
                report=report,
            )
        return outcomes, report

    async def _process(self, batch: list[Delivery], after: asyncio.Task[None] | None = None, *, tries: int = 0) -> None:
        """Record the batch in one transaction; on failure retry, then message by message.
        Acknowledge only once the batch `after` (the one before it) has acknowledged its own.
        `tries`: how often a message set aside alone has failed before."""
        delay = 0.5
        while True:
            try:
                outcomes, report = await self._record(batch)
                break
            except Exception as error:
                if database_away(error):
                    # The database is away, not this batch at fault: keep it (nothing
                    # acknowledged) and retry, backing off.
                    self.metrics.batch_failures.inc()
                    log.warning("database unavailable (%s); retrying batch of %d in %.1fs", error, len(batch), delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
                    if self._stopping.is_set() and delay >= 10.0:
                        log.error("giving up on a batch of %d while stopping; the broker redelivers it", len(batch))
                        return
                    continue
                if not isinstance(error, DBAPIError):
                    raise
                self.metrics.batch_failures.inc()
                log.exception("batch of %d failed; recording its messages one by one", len(batch))
                if after is not None:
                    await after
                if len(batch) == 1:
                    self.metrics.message_failures.inc()
                    self._retry_alone_later(batch[0], tries)
                    return
                for delivery in batch:
                    await self._process([delivery])
                return
        if after is not None:
            await after
        self._after_commit(batch, outcomes)
        self.metrics.rule_errors.inc(report.errors)
        for rule in report.opened:
            self.metrics.alerts_opened.labels(rule.split(":")[0]).inc()

    def _retry_alone_later(self, delivery: Delivery, tries: int) -> None:
        """Set a message that failed on its own aside, unacknowledged, and try it again later.

        Neither dropped nor retried on the spot. A statement timeout (57014), a lock not
        available, or a constraint or trigger refusing its rows may pass (a lock released, a
        maintenance trigger dropped) or may be this message's own fault; either way the message
        must not be lost, and it must not hold up the messages after it (the batches behind
        wait for their turn to acknowledge). So it waits on its own, backing off, as long as the
        worker runs: recorded once when the cause has gone, its ack and PUBACK sent then. A
        statement timeout is not taken for the database being away: it can be the batch's own
        doing (one huge message), and retrying the whole batch would stall every reading behind
        it. While it waits the broker holds the message for this session (no PUBACK), and the
        gateway resends its readings after its timeout; a resent reading is answered `duplicate`
        if the first copy was stored by then (a resent rejection is kept again: kept rejections
        are not deduplicated). On stop, what is still set aside stays unacknowledged:
        the broker delivers it again when the session resumes, or drops it with the session and
        the gateway's resend brings it to another worker.
        """
        delay = min(RETRY_ALONE_FIRST_SECONDS * 2**tries, RETRY_ALONE_MOST_SECONDS)
        log.error(
            "message on %s failed on its own (%d times); set aside unacknowledged, next try in %.0f s",
            delivery.message.topic,
            tries + 1,
            delay,
        )

        async def later() -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                log.warning(
                    "stopping: a message on %s left unacknowledged; the broker keeps it", delivery.message.topic
                )
                return
            await self._process([delivery], tries=tries + 1)

        task = asyncio.create_task(later())
        self._set_aside.add(task)
        task.add_done_callback(self._set_aside.discard)

    def _after_commit(self, batch: list[Delivery], outcomes: list[MessageOutcome]) -> None:
        assert self.bridge is not None
        committed = datetime.now(UTC)
        readings = 0
        heard_from = self._heard_from
        for delivery, outcome in zip(batch, outcomes, strict=True):
            if outcome.gateway_id is not None:
                received = delivery.message.received_at
                if heard_from.get(outcome.gateway_id, received) <= received:
                    heard_from[outcome.gateway_id] = received
            if outcome.answered and outcome.gateway_id is not None:
                self.bridge.publish_ack(outcome.gateway_id, outcome.results)
            self.bridge.acknowledge(delivery)
            self.recorded_messages += 1
            readings += len(outcome.results)
            self.metrics.accepted.inc(len(outcome.accepted))
            self.metrics.duplicates.inc(outcome.duplicates)
            for rejection in outcome.rejected:
                self.metrics.rejected.labels(str(rejection.reason)).inc()
            for reading in outcome.accepted:
                self.metrics.lag.observe(max(0.0, (committed - reading.time).total_seconds()))
        self.metrics.batch_readings.observe(readings)
        self.recorded_readings += readings


def warn_about_identity(settings: Settings) -> None:
    """Say at start what would strand readings in this worker's session when it goes away. Only
    in a share group: on a plain subscription every session gets its own copy of each reading."""
    client_id, expiry = settings.mqtt_client_id, settings.mqtt_session_expiry_seconds
    if not settings.mqtt_share_group:
        return
    if looks_generated(client_id) and not settings.mqtt_retire_on_stop:
        log.warning(
            "RPM_MQTT_CLIENT_ID=%s looks generated: a worker that gets a new id at each start leaves its old "
            "session behind, holding a share of the readings for RPM_MQTT_SESSION_EXPIRY_SECONDS. Give each worker "
            "a fixed slot (rpm-ingest-1, rpm-ingest-2, ...) or set RPM_MQTT_RETIRE_ON_STOP=true",
            client_id,
        )
    if settings.mqtt_protocol is MqttProtocol.v311:
        log.warning(
            "MQTT 3.1.1 has no session expiry: the broker keeps this worker's session until its "
            "persistent_client_expiration; retire a worker that is gone for good (rpm ingest --retire %s)",
            client_id,
        )
    elif expiry >= GATEWAY_RESEND_SECONDS:
        log.warning(
            "RPM_MQTT_SESSION_EXPIRY_SECONDS=%d is not shorter than the gateways' resend timeout (%d s): readings "
            "queued for this worker when it dies wait up to %d s and may be resent into its session again",
            expiry,
            GATEWAY_RESEND_SECONDS,
            expiry,
        )


async def retire(settings: Settings, client_id: str, connect_timeout: float = 30.0) -> int:
    """`rpm ingest --retire CLIENT_ID`: hand back the broker session of a worker that is gone.

    Takes over the session, leaves the share group, records the readings queued in it, then
    ends it. Only for a worker that is not running: a running one would take its id back.
    Returns the exit status: 0 retired; 1 no such session, broker unreachable, or interrupted.
    """
    if not 1 <= len(client_id) <= 64 or any(c in client_id for c in "+#/"):
        log.error("--retire: %r is not a worker's client id (1-64 characters, no + # /)", client_id)
        return 1
    try:  # a broker that is not there at all: say so now, not after connect_timeout
        socket.create_connection((settings.mqtt_host, settings.mqtt_port), timeout=10).close()
    except OSError as error:
        log.error("--retire %s: cannot reach the broker at %s: %s", client_id, settings.mqtt_url, error)
        return 1
    worker = IngestWorker(settings.model_copy(update={"mqtt_client_id": client_id, "metrics_port": 0}))
    await worker.start(join_group=False)
    bridge = worker.bridge
    assert bridge is not None
    worker.end_session = True  # also when there was none: the connection just made one
    if not await asyncio.to_thread(bridge.answered.wait, connect_timeout) or not bridge.link_up.is_set():
        log.error("--retire %s: the broker at %s did not accept a connection", client_id, settings.mqtt_url)
        worker.end_session = False
        await worker.close()
        return 1
    if not bridge.session_present:
        log.error(
            "--retire %s: the broker holds no session for this client id (retired or expired already, or a "
            "wrong id); nothing to do",
            client_id,
        )
        await worker.close()
        return 1
    log.info("--retire %s: the broker kept its session; recording the readings queued in it", client_id)
    running = asyncio.create_task(worker.run())
    handed_back = await worker.hand_back()
    if bridge.unexpected_disconnects:
        log.error(
            "--retire %s: the broker closed the connection (is a worker with this id still running?); "
            "its session is left as it is",
            client_id,
        )
        worker.end_session = False
        handed_back = False
    worker.close_intake()
    await running
    recorded = worker.recorded_readings, worker.recorded_messages
    log.info("--retire %s: %d readings in %d messages recorded", client_id, *recorded)
    return 0 if handed_back else 1


async def run_worker(settings: Settings) -> None:
    warn_about_identity(settings)
    worker = IngestWorker(settings)
    await worker.start()
    tune_garbage_collection()
    returner = FreeMemoryReturner(settings.memory_return_seconds).start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.request_stop)
    log.info(
        "ingest worker %s listening on %s", settings.mqtt_client_id, worker.bridge.subscription if worker.bridge else ""
    )
    try:
        await worker.run()
    finally:
        returner.stop()
    log.info("ingest worker stopped cleanly")
