"""POST /api/v1/gateways and GET /api/v1/gateways.

Proves: an admin registers a gateway to their organisation (201, with the organisation); an id
registered already is 409, whichever organisation has it; the contract's id (1-64 of A-Z a-z
0-9 . _ -) and a non-empty name are checked (422); other roles get 403; the list holds only the
caller's organisation's gateways, by id, across pages without gaps or repeats, with the last
status and last message time; and, with the real worker and broker, that a registered
gateway's messages and status reach that list.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rpm.gateways import repository as gateways
from rpm.gateways.models import Gateway as RegisteredGateway
from rpm.ingest.worker import IngestWorker
from rpm.organisations.models import Organisation
from tests.api.helpers import assert_error, new_organisation, parse_time, raw_cursor, unique
from tests.conftest import ORG_A, ORG_B
from tests.fixtures.mqtt import Gateway, reading


async def register_gateway(
    client: httpx.AsyncClient, headers: dict[str, str], gateway_id: str, name: str = "Kari's tablet"
) -> dict[str, Any]:
    r = await client.post("/api/v1/gateways", headers=headers, json={"id": gateway_id, "name": name})
    assert r.status_code == 201, r.text
    return r.json()


async def every_page(client: httpx.AsyncClient, headers: dict[str, str], limit: int) -> list[list[dict[str, Any]]]:
    pages, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        r = await client.get("/api/v1/gateways", headers=headers, params=params)
        assert r.status_code == 200, r.text
        pages.append(r.json()["items"])
        cursor = r.json()["next"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "the pages never end"


async def test_an_admin_registers_a_gateway_to_their_organisation(client, tokens):
    before = datetime.now(UTC)
    gateway_id = unique("hub")
    out = await register_gateway(client, tokens(ORG_A, "admin"), gateway_id)
    assert {k: out[k] for k in ("id", "name", "organisation", "status", "status_changed_at", "last_message_at")} == {
        "id": gateway_id,
        "name": "Kari's tablet",
        "organisation": ORG_A,
        "status": None,
        "status_changed_at": None,
        "last_message_at": None,
    }
    # The transaction's time: the test transaction began a moment before the request.
    assert before - timedelta(minutes=1) <= parse_time(out["registered_at"]) <= datetime.now(UTC)


async def test_the_longest_id_and_every_allowed_character(client, tokens):
    admin = tokens(ORG_A, "admin")
    longest = ("Az09._-" + uuid.uuid4().hex * 2)[:64]  # 64 characters, each kind allowed
    assert (await register_gateway(client, admin, longest))["id"] == longest
    assert (await register_gateway(client, admin, uuid.uuid4().hex[:1]))["name"] == "Kari's tablet"


async def test_an_id_taken_is_409_also_by_another_organisation(client, tokens):
    gateway_id = unique("hub")
    await register_gateway(client, tokens(ORG_A, "admin"), gateway_id)
    for org in (ORG_A, ORG_B):
        r = await client.post(
            "/api/v1/gateways", headers=tokens(org, "admin"), json={"id": gateway_id, "name": "another"}
        )
        assert_error(r, 409, gateway_id)
    listed = (await client.get("/api/v1/gateways", headers=tokens(ORG_B, "admin"), params={"limit": 500})).json()
    assert gateway_id not in {g["id"] for g in listed["items"]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"id": "", "name": "x"}, "id", id="empty-id"),
        pytest.param({"id": "x" * 65, "name": "x"}, "id", id="65-characters"),
        pytest.param({"id": "hub 1", "name": "x"}, "id", id="space"),
        pytest.param({"id": "hub/1", "name": "x"}, "id", id="slash"),
        pytest.param({"id": "hub+", "name": "x"}, "id", id="mqtt-wildcard"),
        pytest.param({"id": "høb", "name": "x"}, "id", id="not-ascii"),
        pytest.param({"id": "hub-1\n", "name": "x"}, "id", id="trailing-newline"),
        pytest.param({"name": "x"}, "id", id="no-id"),
        pytest.param({"id": "hub-ok", "name": ""}, "name", id="empty-name"),
        pytest.param({"id": "hub-ok"}, "name", id="no-name"),
        pytest.param({"id": "hub-ok", "name": "x", "organisation": ORG_B}, "organisation", id="extra-field"),
    ],
)
async def test_bad_ids_and_names_are_422(client, tokens, body, field):
    assert_error(await client.post("/api/v1/gateways", headers=tokens(ORG_A, "admin"), json=body), 422, field)


@pytest.mark.parametrize("role", ["nurse", "physician"])
async def test_only_an_admin_registers(client, tokens, session, role):
    gateway_id = unique("hub")
    r = await client.post("/api/v1/gateways", headers=tokens(ORG_A, role), json={"id": gateway_id, "name": "x"})
    assert_error(r, 403)
    assert await gateways.by_id(session, gateway_id) is None


async def test_the_list_is_the_organisations_gateways_by_id_across_pages(client, tokens, session):
    org, other = await new_organisation(session), await new_organisation(session)
    admin, nurse = tokens(org, "admin"), tokens(org, "nurse")
    mine = sorted(unique("hub") for _ in range(7))
    for gateway_id in mine:
        await register_gateway(client, admin, gateway_id)
    theirs = unique("hub")
    await register_gateway(client, tokens(other, "admin"), theirs)

    pages = await every_page(client, nurse, limit=3)  # any staff role may list
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [g["id"] for page in pages for g in page] == mine  # by id: no gaps, no repeats
    assert {g["organisation"] for page in pages for g in page} == {org}
    assert [[g["id"] for g in page] for page in await every_page(client, nurse, limit=7)] == [mine]
    assert [g["id"] for page in await every_page(client, tokens(other), limit=50) for g in page] == [theirs]


async def test_the_list_shows_the_last_status_and_message(client, tokens, session):
    org = await new_organisation(session)
    admin = tokens(org, "admin")
    quiet, heard = sorted(unique("hub") for _ in range(2))
    for gateway_id in (quiet, heard):
        await register_gateway(client, admin, gateway_id)
    t = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    await gateways.set_status(session, heard, "online", t)
    await gateways.set_status(session, heard, "offline", t + timedelta(minutes=5))
    await gateways.set_status(session, heard, "online", t + timedelta(minutes=1))  # late: older than offline
    await gateways.heard_from(session, {heard: t + timedelta(minutes=7)})
    await gateways.heard_from(session, {heard: t + timedelta(minutes=6)})  # never moves backwards
    items = (await client.get("/api/v1/gateways", headers=admin)).json()["items"]
    assert [(g["id"], g["status"]) for g in items] == [(quiet, None), (heard, "offline")]
    assert (items[0]["status_changed_at"], items[0]["last_message_at"]) == (None, None)
    assert parse_time(items[1]["status_changed_at"]) == t + timedelta(minutes=5)
    assert parse_time(items[1]["last_message_at"]) == t + timedelta(minutes=7)


async def test_a_bad_cursor_is_422(client, tokens):
    r = await client.get("/api/v1/gateways", headers=tokens(ORG_A), params={"cursor": raw_cursor([1, 2])})
    assert_error(r, 422, "cursor")
    assert_error(await client.get("/api/v1/gateways", headers=tokens(ORG_A), params={"cursor": "%%%"}), 422, "cursor")
    assert_error(await client.get("/api/v1/gateways", headers=tokens(ORG_A), params={"limit": 501}), 422, "limit")


async def test_no_token_is_401(client):
    r = await client.get("/api/v1/gateways")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")


# -- with the real worker and broker ------------------------------------------------------


async def registered_gateway(committed: async_sessionmaker[AsyncSession]) -> tuple[str, str]:
    """A gateway of a fresh organisation, committed so the worker's transactions see it."""
    async with committed() as session, session.begin():
        orgnr = await new_organisation(session)
        organisation_id = await session.scalar(select(Organisation.id).where(Organisation.orgnr == orgnr))
        gateway_id = unique("hub")
        session.add(RegisteredGateway(id=gateway_id, name="tablet", organisation_id=organisation_id, registered_by="t"))
    return orgnr, gateway_id


async def listed_gateway(client: httpx.AsyncClient, headers: dict[str, str], gateway_id: str) -> dict[str, Any]:
    [item] = [
        g for g in (await client.get("/api/v1/gateways", headers=headers)).json()["items"] if g["id"] == gateway_id
    ]
    return item


async def wait_for_listing(
    client: httpx.AsyncClient, headers: dict[str, str], gateway_id: str, done: Any, timeout: float = 15.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        item = await listed_gateway(client, headers, gateway_id)
        if done(item):
            return item
        assert time.monotonic() < deadline, f"the gateway list never showed it: {item}"
        await asyncio.sleep(0.05)


async def test_a_registered_gateways_messages_and_status_reach_the_list(
    client, tokens, committed, worker: IngestWorker, gateway: Gateway
):
    orgnr, hub = await registered_gateway(committed)
    admin = tokens(orgnr, "admin")
    assert (await listed_gateway(client, admin, hub))["last_message_at"] is None

    published = datetime.now(UTC)
    gateway.publish(hub, b"online", topic=f"{gateway.root}/gateways/{hub}/status")
    gateway.publish(hub, reading("r-1", unique("NOSUCH"), "body-weight", published.isoformat(), 80.0, "kg"))
    [(acked_by, document)] = await asyncio.to_thread(gateway.wait_for_acks, 1)
    assert (acked_by, document["results"][0]["reason"]) == (hub, "unknown_device")

    online = await wait_for_listing(client, admin, hub, lambda g: g["status"] == "online")
    # The worker writes last message times every few seconds; here, at once.
    await worker.record_gateway_activity()
    item = await listed_gateway(client, admin, hub)
    heard = parse_time(item["last_message_at"])
    assert published - timedelta(seconds=1) <= heard <= datetime.now(UTC)
    assert parse_time(online["status_changed_at"]) <= heard

    gateway.publish(hub, b"offline", topic=f"{gateway.root}/gateways/{hub}/status")
    offline = await wait_for_listing(client, admin, hub, lambda g: g["status"] == "offline")
    assert parse_time(offline["status_changed_at"]) >= parse_time(online["status_changed_at"])
    await worker.record_gateway_activity()
    later = await listed_gateway(client, admin, hub)
    assert parse_time(later["last_message_at"]) >= heard
    # Another organisation's list does not show it.
    others = (await client.get("/api/v1/gateways", headers=tokens(ORG_A, "admin"), params={"limit": 500})).json()
    assert hub not in {g["id"] for g in others["items"]}


async def test_the_worker_writes_activity_by_itself_on_its_period(
    client, tokens, committed, settings, gateway: Gateway
):
    orgnr, hub = await registered_gateway(committed)
    worker = IngestWorker(settings.model_copy(update={"gateway_activity_seconds": 0.2}))
    await worker.start()
    task = asyncio.create_task(worker.run())
    try:
        deadline = time.monotonic() + 10
        while not worker.ready():
            assert time.monotonic() < deadline, "the worker did not connect"
            await asyncio.sleep(0.05)
        gateway.publish(hub, reading("r-1", unique("NOSUCH"), "spo2", datetime.now(UTC).isoformat(), 95, "%"))
        await asyncio.to_thread(gateway.wait_for_acks, 1)
        item = await wait_for_listing(client, tokens(orgnr, "nurse"), hub, lambda g: g["last_message_at"] is not None)
    finally:
        worker.request_stop()
        await asyncio.wait_for(task, 15)
    assert item["status"] is None  # it never announced one
