"""Who sees a rejected reading: GET /api/v1/rejected, `rpm rejected list`, and reprocessing.

A rejected reading belongs to the organisation that registered its device, else to the one
that registered its gateway, else to none, and then only an operator sees it (`rpm rejected
list`); raw payloads never cross organisations. Proves each case, the filters (gateway, serial,
reason, from/to, include_reprocessed), pagination newest first without gaps or repeats, the
cursor check, and the issue's Done-means path: an unknown device's reading on a registered
gateway is seen by that gateway's organisation only, and stored for the patient once its admin
registers, assigns and reprocesses the device, with an audit record naming the patient.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rpm.audit.models import AuditRecord
from rpm.gateways.models import Gateway
from rpm.organisations.models import Organisation
from tests.api.helpers import (
    assert_error,
    assign,
    enrol,
    ingest,
    message,
    new_organisation,
    observations_of,
    parse_time,
    raw_cursor,
    reading,
    register,
    unique,
)
from tests.conftest import ORG_A, ORG_B

TAKEN = "2026-11-20T08:00:00+01:00"  # when the readings were taken (the assignment starts 2026-11-01)


async def register_gateway(client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    gateway_id = unique("hub")
    r = await client.post("/api/v1/gateways", headers=headers, json={"id": gateway_id, "name": "tablet"})
    assert r.status_code == 201, r.text
    return gateway_id


async def rejected(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    """Every page of the caller's rejected readings."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"limit": 500, **params} | ({"cursor": cursor} if cursor else {})
        r = await client.get("/api/v1/rejected", headers=headers, params=query)
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next"]
        if cursor is None:
            return items


async def reject(
    session: AsyncSession, gateway: str, *readings: dict[str, Any], received_at: datetime | None = None
) -> list[str]:
    """Store one message through the ingest path; returns each reading's rejection reason."""
    [outcome] = await ingest(session, message(list(readings), gateway, received_at=received_at))
    return [r.get("reason", r["status"]) for r in outcome.results]


# -- (a) (b) ownership ----------------------------------------------------------------------


async def test_an_unknown_serial_on_a_registered_gateway_belongs_to_the_gateways_organisation(client, tokens, session):
    org_a, org_b = await new_organisation(session), await new_organisation(session)
    hub = await register_gateway(client, tokens(org_a, "admin"))
    serial = unique("NOSUCH")
    assert await reject(session, hub, reading(serial, TAKEN, reading_id="r-1", value=80.5)) == ["unknown_device"]

    for role in ("admin", "nurse", "physician"):
        [row] = await rejected(client, tokens(org_a, role))
        assert (row["gateway_id"], row["device_serial"], row["reading_id"], row["reason"]) == (
            hub,
            serial,
            "r-1",
            "unknown_device",
        )
        assert json.loads(row["payload"])["value"] == 80.5  # the reading as it came
        assert row["topic"] == f"rpm/v1/gateways/{hub}/measurements"
    for org in (org_b, ORG_A, ORG_B):
        assert await rejected(client, tokens(org, "admin"), gateway=hub) == []
    assert await rejected(client, tokens(org_b, "admin")) == []


async def test_a_whole_message_rejected_on_a_registered_gateway_is_its_organisations(client, tokens, session):
    org = await new_organisation(session)
    hub = await register_gateway(client, tokens(org, "admin"))
    [outcome] = await ingest(session, message({"readings": "nope"}, hub))
    assert [r["reason"] for r in outcome.results] == ["schema"]
    [row] = await rejected(client, tokens(org, "nurse"))
    assert (row["gateway_id"], row["device_serial"], row["reason"]) == (hub, None, "schema")
    assert await rejected(client, tokens(ORG_B, "admin"), gateway=hub) == []


async def test_a_device_registered_by_another_organisation_takes_its_rejections_with_it(client, tokens, session):
    org_a, org_b = await new_organisation(session), await new_organisation(session)
    hub = await register_gateway(client, tokens(org_a, "admin"))
    device = await register(client, tokens(org_b, "admin"), type="body-weight")  # registered, never assigned
    unknown = unique("NOSUCH")
    reasons = await reject(
        session,
        hub,
        reading(device["serial"], TAKEN, reading_id="theirs", value=77.7),
        reading(unknown, TAKEN, reading_id="nobodys"),
    )
    assert reasons == ["device_not_assigned", "unknown_device"]

    # B's device: B's alone, though it came through A's gateway; A keeps only the unknown serial.
    [theirs] = await rejected(client, tokens(org_b, "nurse"))
    assert (theirs["reading_id"], theirs["reason"], theirs["gateway_id"]) == ("theirs", "device_not_assigned", hub)
    assert json.loads(theirs["payload"])["value"] == 77.7
    [ours] = await rejected(client, tokens(org_a, "admin"))
    assert (ours["reading_id"], ours["device_serial"]) == ("nobodys", unknown)
    assert "77.7" not in ours["payload"]

    # Once B registers the unknown serial too, that rejection is B's as well: decided when asked.
    await register(client, tokens(org_b, "admin"), serial=unknown)
    assert await rejected(client, tokens(org_a, "admin")) == []
    assert sorted(r["reading_id"] for r in await rejected(client, tokens(org_b, "admin"))) == ["nobodys", "theirs"]


async def test_a_whole_message_naming_another_organisations_device_is_only_an_operators(client, tokens, session):
    """A message kept whole (here: not JSON, so no reading could be split off) carries every
    reading's raw bytes. It is the gateway's organisation's only while every serial it names is
    unregistered or that organisation's own; one naming B's device stays with the operator."""
    org_a, org_b = await new_organisation(session), await new_organisation(session)
    hub = await register_gateway(client, tokens(org_a, "admin"))
    theirs = await register(client, tokens(org_b, "admin"), type="body-weight")
    ours = await register(client, tokens(org_a, "admin"), type="body-weight")
    unknown = unique("NOSUCH")

    def broken(*serials: str) -> bytes:  # a message cut off: bad_json
        readings = [reading(s, TAKEN, value=70.1) for s in serials]
        return json.dumps({"readings": readings}).encode()[:-3]

    for payload in (broken(ours["serial"], unknown), broken(unknown, theirs["serial"])):
        [outcome] = await ingest(session, message_of_bytes(payload, hub))
        assert [r["reason"] for r in outcome.results] == ["bad_json"]
    [seen] = await rejected(client, tokens(org_a, "admin"))
    assert theirs["serial"] not in seen["payload"] and ours["serial"] in seen["payload"]
    assert await rejected(client, tokens(org_b, "admin")) == []
    # Registering the unknown serial to A changes nothing: B's device is still in the other one.
    await register(client, tokens(org_a, "admin"), serial=unknown)
    assert [r["id"] for r in await rejected(client, tokens(org_a, "admin"))] == [seen["id"]]


def message_of_bytes(payload: bytes, gateway: str) -> Any:
    from rpm.pipeline import IncomingMessage

    return IncomingMessage(f"rpm/v1/gateways/{gateway}/measurements", payload, datetime.now(UTC))


def test_the_serials_a_payload_names_are_read_from_its_bytes():
    from rpm.pipeline import mentioned_serials

    assert mentioned_serials(b'{"readings":[{"device":{"serial":"A-1"}},{"device": {"serial" : "B\\"2"}}') == [
        "A-1",
        'B"2',
    ]
    assert mentioned_serials(b'{"device":{"serial":"A-1"},"x":{"serial":"A-1"}}') == ["A-1"]
    assert mentioned_serials(b'\xff "serial":"X\x00Y" "serial":"\\u00e6"') == ["X\ufffdY", "\u00e6"]
    assert mentioned_serials(b"not json at all") == []


async def test_listing_rejections_of_a_known_patients_device_is_audited(client, tokens, session):
    """A reading refused as implausible from an assigned device is still a measurement of that
    patient: listing it is recorded as a search of the patient's data."""
    org = await new_organisation(session)
    admin = tokens(org, "admin")
    patient = await enrol(client, admin, org)
    device = await register(client, admin, type="body-weight")
    await assign(client, admin, device["serial"], patient["id"])
    assert await reject(session, "gw-1", reading(device["serial"], TAKEN, value=900)) == ["implausible_value"]
    request_id = unique("req")
    r = await client.get("/api/v1/rejected", headers={**tokens(org, "nurse"), "X-Request-ID": request_id})
    assert [row["reason"] for row in r.json()["items"]] == ["implausible_value"]
    records = await session.scalars(select(AuditRecord).where(AuditRecord.request_id == request_id))
    assert [(a.action, a.resource_type, str(a.patient_id)) for a in records] == [
        ("search", "RejectedReading", patient["id"])
    ]


# -- (c) nobody's: only an operator sees it ---------------------------------------------------


def rpm_rejected_list(database_url: str, *args: str) -> list[dict[str, Any]]:
    """`rpm rejected list ARGS` as an operator runs it, its JSON lines parsed."""
    env = {**os.environ, "RPM_DATABASE_URL": database_url, "RPM_ENVIRONMENT": "development"}
    done = subprocess.run(
        [sys.executable, "-m", "rpm.cli", "rejected", "list", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


async def committed_gateway(committed: async_sessionmaker[AsyncSession]) -> tuple[str, str]:
    """A gateway registered (committed) to a fresh organisation: (organisation number, gateway id)."""
    async with committed() as session, session.begin():
        orgnr = await new_organisation(session)
        organisation_id = await session.scalar(select(Organisation.id).where(Organisation.orgnr == orgnr))
        gateway_id = unique("hub")
        session.add(Gateway(id=gateway_id, name="tablet", organisation_id=organisation_id, registered_by="test"))
    return orgnr, gateway_id


async def test_nobodys_rejection_is_seen_only_by_the_operator(client, tokens, committed, database_url):
    # Committed with fresh ids, so the operator's command (its own connection) sees the rows.
    orgnr, registered = await committed_gateway(committed)
    unregistered, serial = unique("hub"), unique("NOSUCH")
    async with committed() as session, session.begin():
        assert await reject(session, unregistered, reading(serial, TAKEN, reading_id="lost", value=81.2)) == [
            "unknown_device"
        ]
        assert await reject(session, registered, reading(serial, TAKEN, reading_id="owned", value=81.3)) == [
            "unknown_device"
        ]

    for org in (orgnr, ORG_A, ORG_B):
        for params in ({"gateway": unregistered}, {"serial": serial}):
            shown = await rejected(client, tokens(org, "admin"), **params)
            assert "lost" not in {r["reading_id"] for r in shown}
    assert [r["reading_id"] for r in await rejected(client, tokens(orgnr, "admin"))] == ["owned"]

    [line] = await asyncio.to_thread(rpm_rejected_list, database_url, "--gateway", unregistered)
    assert (line["gateway_id"], line["device_serial"], line["reading_id"], line["reason"]) == (
        unregistered,
        serial,
        "lost",
        "unknown_device",
    )
    assert json.loads(line["payload"])["value"] == 81.2
    assert line["reprocessed_at"] is None
    # Without --all, only what belongs to nobody; with it, every rejection, newest first.
    assert [r["reading_id"] for r in await asyncio.to_thread(rpm_rejected_list, database_url, "--serial", serial)] == [
        "lost"
    ]
    everything = await asyncio.to_thread(rpm_rejected_list, database_url, "--all", "--serial", serial)
    assert [r["reading_id"] for r in everything] == ["owned", "lost"]
    assert await asyncio.to_thread(rpm_rejected_list, database_url, "--gateway", registered) == []


# -- (d) filters and pages ------------------------------------------------------------------


async def test_filters_by_gateway_serial_reason_and_time(client, tokens, session):
    org = await new_organisation(session)
    admin = tokens(org, "admin")
    hub_1, hub_2 = await register_gateway(client, admin), await register_gateway(client, admin)
    s1, s2 = unique("NOSUCH"), unique("NOSUCH")
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    minute = timedelta(minutes=1)
    sent = [  # (gateway, reading id, serial, unit, value): each in its own message a minute apart
        (hub_1, "a", s1, "kg", 80),  # unknown_device      t0
        (hub_1, "b", s1, "stone", 80),  # bad_unit         t0 + 1
        (hub_2, "c", s2, "kg", 80),  # unknown_device      t0 + 2
        (hub_2, "d", s1, "kg", 900),  # implausible_value  t0 + 3
        (hub_1, "e", s2, "kg", 80),  # unknown_device      t0 + 4
    ]
    for n, (hub, reading_id, serial, unit, value) in enumerate(sent):
        body = reading(serial, TAKEN, reading_id=reading_id, unit=unit, value=value)
        await reject(session, hub, body, received_at=t0 + n * minute)

    async def ids(**params: Any) -> list[str]:
        return [r["reading_id"] for r in await rejected(client, admin, **params)]

    assert await ids() == ["e", "d", "c", "b", "a"]  # newest first
    assert await ids(gateway=hub_1) == ["e", "b", "a"]
    assert await ids(serial=s1) == ["d", "b", "a"]
    assert await ids(reason="unknown_device") == ["e", "c", "a"]
    assert await ids(gateway=hub_1, serial=s2) == ["e"]
    assert await ids(gateway=hub_2, reason="bad_unit") == []
    # from is inclusive, to exclusive.
    window = {"from": (t0 + minute).isoformat(), "to": (t0 + 3 * minute).isoformat()}
    assert await ids(**window) == ["c", "b"]
    assert await ids(**{"from": (t0 + 4 * minute).isoformat()}) == ["e"]
    assert await ids(to=t0.isoformat()) == []
    assert await ids(gateway=unique("hub")) == []
    [row] = await rejected(client, admin, reason="implausible_value")
    assert parse_time(row["received_at"]) == t0 + 3 * minute


@pytest.mark.parametrize(
    ("params", "field"),
    [
        pytest.param({"reason": "because"}, "reason", id="unknown-reason"),
        pytest.param({"from": "2026-11-20T08:00:00"}, "from", id="from-without-offset"),
        pytest.param({"to": "yesterday"}, "to", id="bad-to"),
        pytest.param({"cursor": "not a cursor"}, "cursor", id="garbage-cursor"),
        pytest.param({"cursor": raw_cursor("hub-1")}, "cursor", id="another-lists-cursor"),
        pytest.param(
            {"cursor": raw_cursor(["rejected", ["2026-11-20T08:00:00Z", "nope"]])}, "cursor", id="bad-id-in-cursor"
        ),
        pytest.param({"limit": 0}, "limit", id="limit-0"),
    ],
)
async def test_bad_filters_and_cursors_are_422(client, tokens, params, field):
    assert_error(await client.get("/api/v1/rejected", headers=tokens(ORG_A, "admin"), params=params), 422, field)


async def test_pages_newest_first_without_gaps_or_repeats(client, tokens, session):
    org = await new_organisation(session)
    admin = tokens(org, "admin")
    hub = await register_gateway(client, admin)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    # Eight rejections; three messages of two or three readings share their received time.
    for n, count in enumerate([3, 1, 2, 2]):
        bodies = [reading(unique("NOSUCH"), TAKEN, reading_id=f"m{n}-{i}") for i in range(count)]
        await reject(session, hub, *bodies, received_at=t0 + n * timedelta(minutes=1))
    everything = await rejected(client, admin)
    assert len(everything) == 8
    keys = [(parse_time(r["received_at"]), uuid.UUID(r["id"])) for r in everything]
    assert keys == sorted(keys, reverse=True)

    pages, cursor = [], None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/api/v1/rejected", headers=admin, params=params)).json()
        pages.append([r["id"] for r in page["items"]])
        cursor = page["next"]
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [i for p in pages for i in p] == [r["id"] for r in everything]
    # A full last page says there is nothing more.
    page = (await client.get("/api/v1/rejected", headers=admin, params={"limit": 8})).json()
    assert len(page["items"]) == 8 and page["next"] is None


# -- (e) the Done-means path --------------------------------------------------------


async def test_an_unknown_device_on_a_registered_gateway_is_stored_once_registered_and_reprocessed(
    client, tokens, session
):
    org = await new_organisation(session)
    admin = tokens(org, "admin", sub="admin-e")
    hub = await register_gateway(client, admin)
    serial = unique("UC352")
    assert await reject(session, hub, reading(serial, TAKEN, reading_id="w-1", value=82.4)) == ["unknown_device"]

    [seen] = await rejected(client, tokens(org, "nurse"))
    assert (seen["device_serial"], seen["reason"]) == (serial, "unknown_device")
    for other in (ORG_A, ORG_B):
        assert await rejected(client, tokens(other, "admin"), serial=serial) == []

    patient = await enrol(client, admin, org)
    device = await register(client, admin, serial=serial, type="body-weight")
    await assign(client, admin, serial, patient["id"])
    r = await client.post("/api/v1/rejected/reprocess", headers=admin, json={"serial": serial})
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 1, "duplicate": 0, "rejected": 0}

    [stored] = await observations_of(session, patient["id"])
    assert (stored.code, stored.value, stored.gateway_id, stored.reading_id) == ("29463-7", 82.4, hub, "w-1")
    assert stored.effective_at == parse_time(TAKEN)
    # The rejection is closed: listed only with include_reprocessed.
    assert await rejected(client, admin, serial=serial) == []
    [done] = await rejected(client, admin, serial=serial, include_reprocessed="true")
    assert done["id"] == seen["id"] and done["reprocessed_at"] is not None
    assert done["reprocess_outcome"] == {"id": "w-1", "status": "accepted"}
    # Nothing left to do the second time.
    again = await client.post("/api/v1/rejected/reprocess", headers=admin, json={"serial": serial})
    assert again.json() == {"accepted": 0, "duplicate": 0, "rejected": 0}

    trail = (
        await session.execute(
            select(AuditRecord.actor_sub, AuditRecord.resource_id, AuditRecord.patient_id)
            .where(AuditRecord.action == "reprocess", AuditRecord.resource_type == "Device")
            .where(AuditRecord.resource_id == device["id"])
            .order_by(AuditRecord.id)
        )
    ).all()
    # The first reprocess stored a reading of the patient; the second touched nobody's data.
    assert [tuple(t) for t in trail] == [("admin-e", device["id"], uuid.UUID(patient["id"]))]
