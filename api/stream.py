"""The live alert stream's fan-out: one LISTEN connection per API process.

PostgreSQL notifies on every commit that stored alert events (`rpm.alerts.events`). The
hub then reads the new events once, by id, and hands each to the streams whose caller
may see that patient. A lost connection is re-opened; reading by id catches up whatever
was committed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, field

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rpm.access import service as access
from rpm.access.staff import Staff
from rpm.alerts import events
from rpm.alerts.models import AlertEvent
from rpm.db import async_url

log = logging.getLogger("rpm.api.stream")


@dataclass(eq=False)
class Subscriber:
    """One open stream: the events for it to filter (by the caller's access) and send."""

    queue: asyncio.Queue[AlertEvent] = field(default_factory=lambda: asyncio.Queue(maxsize=10000))
    overflowed: bool = False


class EventHub:
    def __init__(self, url: str, sessions: async_sessionmaker[AsyncSession], queue_events: int = 10000) -> None:
        self.url = url
        self.sessions = sessions
        self.queue_events = queue_events
        self.subscribers: set[Subscriber] = set()
        self.dropped = 0  # streams dropped for falling behind, since the start
        self.last_id = 0
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        async with self.sessions() as session:
            self.last_id = await events.last_id(session)
        self._tasks = [asyncio.create_task(self._listen()), asyncio.create_task(self._dispatch())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def subscribe(self) -> Subscriber:
        subscriber = Subscriber(asyncio.Queue(maxsize=self.queue_events))
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    def _drop(self, subscriber: Subscriber) -> None:
        """A stream that cannot keep up is closed; its client resumes from its Last-Event-ID and
        loses nothing. Its events are let go at once: while its client reads nothing, the
        stream waits on the connection's send and would hold them however long that takes."""
        subscriber.overflowed = True
        self.unsubscribe(subscriber)
        while not subscriber.queue.empty():
            subscriber.queue.get_nowait()
        self.dropped += 1
        log.warning(
            "alert stream dropped: its client fell %d events behind (it resumes from its Last-Event-ID); "
            "%d dropped so far",
            self.queue_events,
            self.dropped,
        )

    async def _listen(self) -> None:
        target, connect_args = async_url(self.url)
        dsn = target.replace("postgresql+asyncpg", "postgresql")
        delay = 0.5
        while True:
            try:
                connection = await asyncpg.connect(
                    dsn, **connect_args, server_settings={"application_name": "rpm-api-listen"}
                )
                try:
                    closed = asyncio.Event()
                    connection.add_termination_listener(lambda *_, closed=closed: closed.set())
                    await connection.add_listener(events.CHANNEL, lambda *_: self._wake.set())
                    delay = 0.5
                    self._wake.set()  # catch up on anything committed while we were away
                    while not closed.is_set():
                        # A probe now and then notices a connection that died without closing.
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(closed.wait(), 30)
                        if not closed.is_set():
                            await connection.execute("select 1")
                finally:
                    with contextlib.suppress(Exception):
                        await connection.close()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("alert event listener lost the database (%s); retrying in %.1fs", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)

    async def _dispatch(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                if not self.subscribers:
                    # Nobody to deliver to (most API processes, most of the night): keep the
                    # position only. A stream that opens later reads what it missed from the
                    # table, from this position or from its Last-Event-ID.
                    async with self.sessions() as session:
                        self.last_id = max(self.last_id, await events.last_id(session))
                    continue
                # Never more at a time than a stream's queue holds: a burst read whole would
                # overflow the queue of a stream that keeps up perfectly well.
                chunk = min(1000, self.queue_events)
                while True:
                    async with self.sessions() as session:
                        found = await events.since(session, self.last_id, None, limit=chunk)
                    for event in found:
                        self.last_id = event.id
                        for subscriber in list(self.subscribers):
                            if subscriber.overflowed:
                                continue  # dropped by an event before this one
                            try:
                                subscriber.queue.put_nowait(event)
                            except asyncio.QueueFull:
                                self._drop(subscriber)
                    if len(found) < chunk:
                        break
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading alert events failed; retrying")
                await asyncio.sleep(1)
                self._wake.set()


class Visibility:
    """Whether a stream's caller may see each patient whose events pass by: asked of the database
    once a minute per patient at most, not once per event (a busy hour has thousands)."""

    TTL = 60.0  # seconds an answer is trusted

    def __init__(self, sessions: async_sessionmaker[AsyncSession], staff: Staff) -> None:
        self.sessions = sessions
        self.staff = staff
        self._known: dict[uuid.UUID, tuple[bool, float]] = {}

    async def may_see(self, patient_id: uuid.UUID) -> bool:
        known = self._known.get(patient_id)
        if known is None or time.monotonic() - known[1] > self.TTL:
            async with self.sessions() as session:
                known = (await access.may_see_patient(session, self.staff, patient_id), time.monotonic())
            self._known[patient_id] = known
        return known[0]

    async def may_see_event(self, event: AlertEvent) -> bool:
        """An event of an alert handed over to the caller's organisation is the caller's
        (resolved too: the partner's queue drops it), and the patient's other events are asked
        afresh: a hand-over opens the patient at once, a resolution closes it."""
        if event.alert.get("handed_over_to") == self.staff.orgnr:
            self._known.pop(event.patient_id, None)
            return True
        return await self.may_see(event.patient_id)


def sse(event: AlertEvent) -> bytes:
    data = json.dumps(event.alert, separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n".encode()
