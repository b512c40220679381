"""The ingest worker process: `rpm ingest`.

Start: engine (tagged `rpm-ingest`), schema check, metrics server, MQTT bridge.
Run: take messages from the bridge's queue, flush a batch when it holds enough readings
or when the flush timer fires, record it in one transaction, then publish the acks and
PUBACK each message. Stop (SIGTERM/SIGINT): close intake, drain what is queued within
`ingest_drain_seconds`, commit and acknowledge it, disconnect, dispose the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections import deque
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from rpm.alerts import service as alerts
from rpm.config import Settings
from rpm.db import create_engine, require_migrated, session_factory
from rpm.gateways import repository as gateways
from rpm.ingest.bridge import Delivery, Handoff, MqttBridge
from rpm.ingest.metrics import IngestMetrics, serve
from rpm.observations.service import MessageOutcome, RulesReport, record_messages
from rpm.runtime import tune_garbage_collection

log = logging.getLogger("rpm.ingest")


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

    async def start(self) -> None:
        self.engine = create_engine(self.settings, "rpm-ingest", pre_ping=False)
        await require_migrated(self.engine)
        self.sessions = session_factory(self.engine)
        if self.settings.metrics_port:
            serve(self.metrics, self.settings.metrics_port, self.ready, self.settings.metrics_host)
        loop = asyncio.get_running_loop()
        self.queue = Handoff(loop, self.settings.ingest_queue_messages)
        self.bridge = MqttBridge(self.settings, self.queue, loop)
        self.bridge.start()

    def ready(self) -> bool:
        return self.bridge is not None and self.bridge.connected.is_set()

    def request_stop(self) -> None:
        log.info("stopping: intake closed, draining")
        if self.bridge is not None:
            self.bridge.close_intake()
        self._stopping.set()

    async def run(self) -> None:
        """Process batches until asked to stop, then drain and close."""
        checks = asyncio.create_task(self._periodic_checks()) if self.settings.rules_enabled else None
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
        finally:
            for task in [activity] if checks is None else [checks, activity]:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with contextlib.suppress(Exception):
                await self.record_gateway_activity()
            await self._close()

    async def run_checks(self, now: datetime) -> tuple[int, int]:
        """Missing measurements and escalation, once; safe while other workers do the same."""
        assert self.sessions is not None
        settings = self.settings
        async with self.sessions() as session, session.begin():
            missing = await alerts.check_missing(session, now, timedelta(hours=settings.missing_grace_hours))
        async with self.sessions() as session, session.begin():
            escalated = await alerts.escalate(
                session,
                now,
                timedelta(minutes=settings.escalate_red_minutes),
                timedelta(hours=settings.escalate_yellow_hours),
            )
        self.metrics.alerts_escalated.inc(escalated)
        if missing:
            self.metrics.alerts_opened.labels("missing").inc(missing)
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

    async def _close(self) -> None:
        if self.bridge is not None:
            await asyncio.to_thread(self.bridge.stop)
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
                report=report,
            )
        return outcomes, report

    async def _process(self, batch: list[Delivery], after: asyncio.Task[None] | None = None) -> None:
        """Record the batch in one transaction; on failure retry, then message by message.
        Acknowledge only once the batch `after` (the one before it) has acknowledged its own."""
        delay = 0.5
        while True:
            try:
                outcomes, report = await self._record(batch)
                break
            except (OperationalError, InterfaceError, OSError) as error:
                # The database is away: keep the batch (nothing acknowledged) and retry.
                self.metrics.batch_failures.inc()
                log.warning("database unavailable (%s); retrying batch of %d in %.1fs", error, len(batch), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                if self._stopping.is_set() and delay >= 10.0:
                    log.error("giving up on a batch of %d while stopping; the broker redelivers it", len(batch))
                    return
            except DBAPIError:
                self.metrics.batch_failures.inc()
                log.exception("batch of %d failed; recording its messages one by one", len(batch))
                if after is not None:
                    await after
                if len(batch) == 1:
                    self.metrics.message_failures.inc()
                    log.error("message on %s left unacknowledged after an error", batch[0].message.topic)
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
            readings += len(outcome.results)
            self.metrics.accepted.inc(len(outcome.accepted))
            self.metrics.duplicates.inc(outcome.duplicates)
            for rejection in outcome.rejected:
                self.metrics.rejected.labels(str(rejection.reason)).inc()
            for reading in outcome.accepted:
                self.metrics.lag.observe(max(0.0, (committed - reading.time).total_seconds()))
        self.metrics.batch_readings.observe(readings)


async def run_worker(settings: Settings) -> None:
    worker = IngestWorker(settings)
    await worker.start()
    tune_garbage_collection()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.request_stop)
    log.info(
        "ingest worker %s listening on %s", settings.mqtt_client_id, worker.bridge.subscription if worker.bridge else ""
    )
    await worker.run()
    log.info("ingest worker stopped cleanly")
