"""The alert stream under 200 clients at once and a client that stops reading: every client gets
every event of a burst; the one that falls behind is dropped (its stream ends) instead of the
API holding more and more for it, and when it comes back with Last-Event-ID it gets every event
it missed, none twice.

Real processes and connections: `rpm api` (uvicorn) in its own process, 200 streams over TCP
from httpx, and alert events committed as the rules commit them (rpm.alerts.events), which the
API hears of through PostgreSQL's NOTIFY.

What makes the API drop a client: each stream has a queue of at most RPM_SSE_QUEUE_EVENTS
events. A client that reads nothing first fills the kernel's socket buffers and the server's
transport buffer; then the stream waits on its send, its queue fills, and the hub drops it (and
lets go of its queued events). The stream ends when the send gets through, that is when the
client reads again: the connection closes then, and the client resumes from its last id.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rpm.alerts import events
from rpm.alerts.models import Alert
from tests.fixtures.waiting import wait_until
from tests.fixtures.world import add_patient_with_devices
from tests.reliability.processes import start_api

CLIENTS = 200
BURST_FOR_ALL = 100  # events while the 200 clients listen
BURST_PAST_THE_SLOW_ONE = 50000  # events while one client reads nothing
QUEUE_EVENTS = 2000  # RPM_SSE_QUEUE_EVENTS for the test's API
# What the API may grow by while one client reads nothing through the burst. The kernel's and
# the transport's buffers take some 15,000 events before its stream stops sending; with a queue
# that held the rest for it (RPM_SSE_QUEUE_EVENTS=1000000), the API grew by 41 MiB.
RSS_GROWTH_BOUND_MB = 20.0


class Reader:
    """One SSE stream as a client parses it: the event ids, in the order received."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.connected = asyncio.Event()
        self.ended = False
        self._id: int | None = None

    def take(self, line: str) -> None:
        if line.startswith(": connected"):
            self.connected.set()
        elif line.startswith("id: "):
            self._id = int(line[4:])
        elif line == "" and self._id is not None:
            self.ids.append(self._id)
            self._id = None

    async def read(self, lines: AsyncIterator[str], until: int | None = None) -> None:
        """Until the server ends the stream, or `until` events have come."""
        async for line in lines:
            self.take(line)
            if until is not None and len(self.ids) >= until:
                return
        self.ended = True


async def listen(client: httpx.AsyncClient, headers: dict[str, str], reader: Reader) -> None:
    async with client.stream("GET", "/api/v1/alerts/stream", headers=headers) as response:
        assert response.status_code == 200, response.status_code
        await reader.read(response.aiter_lines())


async def commit_events(
    sessions: async_sessionmaker[AsyncSession], alert: Alert, first: int, count: int, per_commit: int
) -> None:
    """`count` `changed` events of the alert, committed `per_commit` at a time as the rules do."""
    for start in range(first, first + count, per_commit):
        async with sessions() as session, session.begin():
            await events.append(
                session,
                [
                    (
                        "changed",
                        {
                            "id": str(alert.id),
                            "patient": str(alert.patient_id),
                            "rule": alert.rule,
                            "level": "red",
                            "status": "open",
                            "escalated": False,
                            "occurrences": n,
                            "value": 84.0,
                            "unit": "%",
                            "opened_at": alert.opened_at.isoformat(),
                        },
                    )
                    for n in range(start, min(start + per_commit, first + count))
                ],
                datetime.now(UTC),
            )


async def new_alert(sessions: async_sessionmaker[AsyncSession], orgnr: str) -> Alert:
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        patient_id, _ = await add_patient_with_devices(session, orgnr, ["spo2"])
        alert = Alert(
            patient_id=patient_id,
            rule=f"threshold:59408-5:low:{uuid.uuid4().hex[:6]}",
            level="red",
            opened_at=now,
            raised_at=now,
            updated_at=now,
            value=84.0,
            unit="%",
        )
        session.add(alert)
    return alert


async def test_200_streams_get_every_event_and_a_client_that_stops_reading_is_dropped_and_resumes(
    committed, own_organisation, database_url: str, dev_key: Path, tokens, tmp_path: Path
):
    alert = await new_alert(committed, own_organisation)
    log = tmp_path / "api.log"
    api = await asyncio.to_thread(start_api, database_url, dev_key, log, {"RPM_SSE_QUEUE_EVENTS": str(QUEUE_EVENTS)})
    nurse = tokens(own_organisation, "nurse")
    limits = httpx.Limits(max_connections=CLIENTS + 10, max_keepalive_connections=0)
    timeout = httpx.Timeout(60, pool=60)
    tasks: list[asyncio.Task[None]] = []
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.port}", limits=limits, timeout=timeout) as client:
            rss_idle = api.rss_mb()
            # 1. 200 clients at once, and a burst of events.
            readers = [Reader() for _ in range(CLIENTS)]
            tasks = [asyncio.create_task(listen(client, nurse, reader)) for reader in readers]
            await wait_until(
                lambda: all(r.connected.is_set() for r in readers) or any(t.done() for t in tasks),
                f"{CLIENTS} streams open",
                60,
            )
            assert not any(t.done() for t in tasks), [t.exception() for t in tasks if t.done()]
            await commit_events(committed, alert, 0, BURST_FOR_ALL, per_commit=10)
            await wait_until(
                lambda: all(len(r.ids) >= BURST_FOR_ALL for r in readers), "every stream got the burst", 60
            )
            rss_200 = api.rss_mb()
            burst_ids = readers[0].ids[:BURST_FOR_ALL]
            assert len(burst_ids) == BURST_FOR_ALL and burst_ids == sorted(set(burst_ids))
            assert all(r.ids == burst_ids for r in readers), "a stream missed, doubled or reordered an event"
            received_by_all = sum(len(r.ids) for r in readers)
            witness = readers[0]
            for task in tasks[1:]:
                task.cancel()
            for task in tasks[1:]:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            tasks = tasks[:1]

            # 2. One client stops reading after its stream opened; the burst goes on past it.
            async with client.stream("GET", "/api/v1/alerts/stream", headers=nurse) as response:
                assert response.status_code == 200
                slow = Reader()
                lines = response.aiter_lines()
                async for line in lines:
                    slow.take(line)
                    if slow.connected.is_set():
                        break
                rss_before = api.rss_mb()
                # At the pace of a client that reads: a thousand events a commit, the next once it
                # has them (a burst faster than any client takes drops every stream; they all
                # resume, but that is not what is tested here).
                for first in range(BURST_FOR_ALL, BURST_FOR_ALL + BURST_PAST_THE_SLOW_ONE, 1000):
                    await commit_events(committed, alert, first, 1000, per_commit=1000)
                    await wait_until(
                        lambda first=first: len(witness.ids) >= first + 1000, "the reading client keeping up", 30
                    )
                await wait_until(lambda: "alert stream dropped" in log.read_text(), "the API dropping the slow one", 30)
                rss_after = api.rss_mb()
                # It reads again: what was on its way before the drop, then the end of the stream.
                await asyncio.wait_for(slow.read(lines), 60)
            assert slow.ended
            first_connection = list(slow.ids)
            everything = witness.ids[BURST_FOR_ALL:]
            assert 0 < len(first_connection) < len(everything), len(first_connection)
            assert first_connection == everything[: len(first_connection)]

            # 3. It comes back from its last event id and gets the rest, each event once.
            resumed = Reader()
            headers = {**nurse, "Last-Event-ID": str(first_connection[-1])}
            async with client.stream("GET", "/api/v1/alerts/stream", headers=headers) as response:
                assert response.status_code == 200
                missing = len(everything) - len(first_connection)
                await asyncio.wait_for(resumed.read(response.aiter_lines(), until=missing), 60)
            assert first_connection + resumed.ids == everything
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        print(
            f"\nstream under load: {CLIENTS} streams got {received_by_all} events ({BURST_FOR_ALL} each); "
            f"slow client: {len(first_connection)} events before it was dropped, {len(resumed.ids)} on resuming, "
            f"of {len(everything)}; API RSS idle {rss_idle:.1f} MiB, with {CLIENTS} streams {rss_200:.1f}, "
            f"before the burst past the slow one {rss_before:.1f}, after {rss_after:.1f}"
        )
        assert rss_after - rss_before < RSS_GROWTH_BOUND_MB, (rss_before, rss_after)
        assert api.process.poll() is None
        assert await asyncio.to_thread(api.stop) == 0
    finally:
        for task in tasks:
            task.cancel()
        api.kill()
