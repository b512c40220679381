"""The live alert stream: the right organisation's nurses get the event, others don't, and a
client that reconnects with Last-Event-ID misses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from rpm.alerts import events
from rpm.api import stream
from rpm.config import Settings
from rpm.db import session_factory
from tests.alerts.test_scenario import enrol, send
from tests.conftest import ORG_B
from tests.fixtures.mqtt import reading


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"sse_heartbeat_seconds": 0.3})


class Stream:
    """Reads an SSE response in the background into events and comments."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.comments: list[str] = []
        self.changed = asyncio.Event()

    async def consume(self, response: httpx.Response) -> None:
        event: dict[str, Any] = {}
        async for line in response.aiter_lines():
            if line.startswith(":"):
                self.comments.append(line)
                self.changed.set()
            elif line == "":
                if "data" in event:  # a block without data (e.g. only `retry:`) is no event
                    self.events.append(event)
                    self.changed.set()
                event = {}
            else:
                field, _, value = line.partition(": ")
                event[field] = json.loads(value) if field == "data" else value

    async def wait_for(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while len(self.events) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.events

    async def wait_for_comments(self, count: int, timeout: float = 10) -> list[str]:
        async with asyncio.timeout(timeout):
            while len(self.comments) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.comments

    async def idle(self, timeout: float = 10) -> None:
        """Until the server has had nothing to send for a whole heartbeat, twice: whatever was
        queued for this stream before the call has been sent or filtered out by then (the
        first keep-alive may have left just before it; the second comes from an empty queue)."""
        await self.wait_for_comments(len(self.comments) + 2, timeout)


@contextlib.asynccontextmanager
async def open_stream(api: httpx.AsyncClient, headers: dict[str, str]) -> AsyncIterator[Stream]:
    stream = Stream()
    async with api.stream("GET", "/api/v1/alerts/stream", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        task = asyncio.create_task(stream.consume(response))
        try:
            # The server subscribes the stream before its first comment, `: connected`.
            await stream.wait_for_comments(1)
            yield stream
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.StreamError):
                await task


async def test_an_alert_reaches_the_care_teams_stream_and_no_other(live_api, worker, gateway, tokens, own_organisation):
    org = own_organisation
    admin = tokens(org, "admin")
    patient, serial = await enrol(live_api, admin, ["copd"], "spo2", org)
    hub = f"hub-{uuid.uuid4().hex[:8]}"
    async with (
        open_stream(live_api, tokens(org, "nurse")) as ours,
        open_stream(live_api, tokens(ORG_B, "nurse")) as theirs,
    ):
        await send(gateway, hub, reading("x1", serial, "spo2", datetime.now(UTC).isoformat(), 83, "%"))
        [event] = await ours.wait_for(1)
        assert event["event"] == "opened"
        assert (event["data"]["patient"], event["data"]["rule"], event["data"]["level"]) == (
            patient,
            "threshold:59408-5:low",
            "red",
        )
        await theirs.idle()
        assert theirs.events == []
        assert any("keep-alive" in c for c in theirs.comments), "heartbeats keep idle streams open"

        alert_id = event["data"]["id"]
        await live_api.post(f"/api/v1/alerts/{alert_id}/acknowledge", headers=tokens(org, "nurse"))
        await live_api.post(f"/api/v1/alerts/{alert_id}/resolve", headers=tokens(org, "nurse"), json={"note": "ok"})
        kinds = [e["event"] for e in await ours.wait_for(3)]
        assert kinds == ["opened", "changed", "resolved"]
        assert theirs.events == []


async def test_reconnecting_with_last_event_id_resumes_without_loss(
    live_api, worker, gateway, tokens, own_organisation
):
    admin, nurse = tokens(own_organisation, "admin"), tokens(own_organisation, "nurse")
    _, serial = await enrol(live_api, admin, ["copd"], "spo2", own_organisation)
    hub, now = f"hub-{uuid.uuid4().hex[:8]}", datetime.now(UTC)
    async with open_stream(live_api, nurse) as first:
        await send(gateway, hub, reading("y1", serial, "spo2", (now - timedelta(minutes=5)).isoformat(), 85, "%"))
        [opened] = await first.wait_for(1)
    # While the nurse's client is away, the alert changes twice and another opens.
    await send(gateway, hub, reading("y2", serial, "spo2", (now - timedelta(minutes=4)).isoformat(), 83, "%"))
    await send(gateway, hub, reading("y3", serial, "spo2", (now - timedelta(minutes=3)).isoformat(), 150, "/min"))
    await send(gateway, hub, reading("y4", serial, "spo2", (now - timedelta(minutes=2)).isoformat(), 84.5, "%"))
    headers = {**nurse, "Last-Event-ID": opened["id"]}
    async with open_stream(live_api, headers) as resumed:
        events = await resumed.wait_for(2)
        await resumed.idle()
    assert [e["event"] for e in resumed.events] == ["changed", "changed"]
    assert [e["data"]["occurrences"] for e in resumed.events] == [2, 3]
    assert all(int(e["id"]) > int(opened["id"]) for e in events)
    assert [int(e["id"]) for e in events] == sorted(int(e["id"]) for e in events)


async def test_with_no_stream_open_the_hub_keeps_its_place_without_reading_events(
    engine, live_api, worker, gateway, tokens, monkeypatch, own_organisation
):
    """An API process with no stream open reads no events, only the newest id; a stream that
    opens afterwards still gets the next alert."""
    hub = stream.EventHub(worker.settings.database_url or "", session_factory(engine))
    await hub.start()
    try:
        reads = []
        real_since = events.since

        async def counted_since(*args, **kwargs):
            reads.append(args)
            return await real_since(*args, **kwargs)

        monkeypatch.setattr(stream.events, "since", counted_since)
        admin = tokens(own_organisation, "admin")
        _, serial = await enrol(live_api, admin, ["copd"], "spo2", own_organisation)
        before = hub.last_id
        gateway_id = f"hub-{uuid.uuid4().hex[:8]}"
        await send(gateway, gateway_id, reading("q1", serial, "spo2", datetime.now(UTC).isoformat(), 83, "%"))
        for _ in range(100):
            if hub.last_id > before:
                break
            await asyncio.sleep(0.05)
        assert hub.last_id > before, "the hub follows the newest event id"
        assert reads == [], "with no subscriber, no events are read"
    finally:
        await hub.stop()
