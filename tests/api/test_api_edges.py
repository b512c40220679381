"""The typed edges of the API (issue 7, item 9).

Proves that every route documents the payload of its success response in `/openapi.json`;
that every list (a GET whose response model is `api.pagination.Page[...]`) answers
`{"items": [...], "next": ...}`, takes `limit` 1..500 and refuses a malformed cursor or
another list's cursor with 422 `invalid_cursor`; that the one cursor codec round-trips each
list's position and refuses anything it did not give out, and `Page.of` sets `next` exactly
when there is more; and that `rpm.alerts.models.AlertStatus` and `ResolutionOutcome` are what
the API, its schema and the database accept.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.alerts.models import Alert, AlertStatus, ResolutionOutcome
from rpm.api.app import create_app
from rpm.api.fhir.router import SEARCH_CURSOR
from rpm.api.pagination import Cursor, Page
from rpm.api.routers.alerts import COMMENTS_CURSOR, QUEUE_CURSOR
from rpm.api.routers.audit import AUDIT_CURSOR
from rpm.api.routers.devices import DEVICE_CURSOR
from rpm.api.routers.gateways import GATEWAY_CURSOR
from rpm.api.routers.patients import WORKLIST_CURSOR
from rpm.api.routers.rejected import REJECTED_CURSOR
from rpm.api.routers.staff import STAFF_CURSOR
from rpm.config import Settings
from rpm.errors import InvalidInput
from tests.api.helpers import (
    assert_error,
    assign,
    enrol,
    ingest,
    message,
    new_organisation,
    raw_cursor,
    reading,
    register,
    unique,
)
from tests.conftest import Tokens

# Routes FastAPI serves for its own documentation, and /metrics (Prometheus text, kept out of
# the schema on purpose).
UNDOCUMENTED = ("/docs", "/redoc", "/openapi.json", "/metrics")
SCHEMA_SETTINGS = Settings(database_url="postgresql://unused@127.0.0.1/unused", dev_auth=True)


@dataclass(frozen=True)
class RouteInfo:
    method: str
    path: str
    status: int
    response_model: Any


def app_routes() -> Iterator[RouteInfo]:
    """Every route of the app with each of its methods (`app.routes` holds included routers
    as groups in this FastAPI; `iter_route_contexts` walks them)."""
    for route in iter_route_contexts(create_app(SCHEMA_SETTINGS).routes):
        # As OpenAPI names it: a converter (`{serial:path}`) is not part of the name.
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path or "")
        if path.startswith(UNDOCUMENTED) or not getattr(route, "include_in_schema", True):
            continue  # the staff page's routes answer HTML, not an API payload
        for method in sorted(route.methods or ()):
            yield RouteInfo(method, path, route.status_code or 200, route.response_model)


ROUTES = list(app_routes())


def is_page(model: Any) -> bool:
    return isinstance(model, type) and issubclass(model, Page)


# -- every route documents its response -----------------------------------------------------


@pytest.fixture
async def openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        assert name in spec["components"]["schemas"], schema["$ref"]
        return spec["components"]["schemas"][name]
    return schema


def test_the_route_table_is_what_the_tests_walk():
    assert len(ROUTES) >= 30
    assert {(r.method, r.path) for r in ROUTES} >= {
        ("GET", "/api/v1/alerts/stream"),
        ("GET", "/api/v1/patients/{patient_id}/audit"),
        ("GET", "/fhir/Observation"),
        ("GET", "/healthz"),
    }
    assert not any(r.path.startswith(UNDOCUMENTED) for r in ROUTES)


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
async def test_every_route_documents_the_schema_of_its_success_response(openapi, route: RouteInfo):
    operation = openapi["paths"][route.path][route.method.lower()]
    documented = operation["responses"][str(route.status)]
    content = documented.get("content", {})
    assert content, f"{route.method} {route.path}: no content documented for {route.status}"
    for media_type, body in content.items():
        schema = resolve(openapi, body.get("schema", {}))
        assert schema, f"{media_type} has no schema"
        if media_type == "text/event-stream":
            # Each event as a client reads it: the SSE fields, `data` the alert as JSON text.
            assert schema["type"] == "object" and schema["required"] == ["event", "id", "data"]
            assert schema["properties"]["event"]["enum"] == ["opened", "changed", "escalated", "resolved"]
        elif media_type == "text/csv":
            assert schema == {"type": "string"}
        else:
            assert media_type in ("application/json", "application/fhir+json"), media_type
            # An object with named fields, or a map (the thresholds by code).
            assert schema.get("type") == "object", schema
            assert schema.get("properties") or schema.get("additionalProperties"), schema
    if route.path == "/api/v1/alerts/stream":
        assert set(content) == {"text/event-stream"}
    else:
        # Every other route names its model, which is what the JSON content documents.
        assert route.response_model is not None
        json_content = content.get("application/json") or content["application/fhir+json"]
        name = re.sub(r"[^A-Za-z0-9.\-_]", "_", route.response_model.__name__)  # as FastAPI names schemas
        assert json_content["schema"] == {"$ref": f"#/components/schemas/{name}"}
    if route.path == "/api/v1/patients/{patient_id}/audit":
        assert set(content) == {"application/json", "text/csv"}
    if is_page(route.response_model):
        page = resolve(openapi, content["application/json"]["schema"])
        assert set(page["properties"]) == {"items", "next"}
        assert page["properties"]["items"]["type"] == "array" and "$ref" in page["properties"]["items"]["items"]


# -- every list: the page shape, limit and cursors ------------------------------------------

# Each list of the API and the cursor codec it pages with.
LISTS: dict[str, Cursor[Any]] = {
    "/api/v1/patients": WORKLIST_CURSOR,
    "/api/v1/devices": DEVICE_CURSOR,
    "/api/v1/gateways": GATEWAY_CURSOR,
    "/api/v1/alerts": QUEUE_CURSOR,
    "/api/v1/rejected": REJECTED_CURSOR,
    "/api/v1/audit": AUDIT_CURSOR,
    "/api/v1/patients/{patient_id}/audit": AUDIT_CURSOR,
    "/api/v1/alerts/{alert_id}/comments": COMMENTS_CURSOR,
    "/api/v1/staff": STAFF_CURSOR,
}
# Lists whose positions have the same type: neither can tell the other's cursor from its own.
SAME_POSITION_TYPE = {
    ("/api/v1/devices", "/api/v1/gateways"),
    ("/api/v1/gateways", "/api/v1/devices"),
    ("/api/v1/audit", "/api/v1/patients/{patient_id}/audit"),
    ("/api/v1/patients/{patient_id}/audit", "/api/v1/audit"),
    ("/api/v1/alerts/{alert_id}/comments", "/api/v1/audit"),
    ("/api/v1/audit", "/api/v1/alerts/{alert_id}/comments"),
    ("/api/v1/alerts/{alert_id}/comments", "/api/v1/patients/{patient_id}/audit"),
    ("/api/v1/patients/{patient_id}/audit", "/api/v1/alerts/{alert_id}/comments"),
}


def test_the_lists_are_the_get_routes_answering_a_page():
    pages = {r.path for r in ROUTES if is_page(r.response_model)}
    assert pages == set(LISTS)
    assert all(r.method == "GET" for r in ROUTES if is_page(r.response_model))


@dataclass
class Lists:
    """A fresh organisation with at least two items in every list."""

    headers: dict[str, str]
    patient: str
    alert: str

    def url(self, path: str) -> str:
        return path.format(patient_id=self.patient, alert_id=self.alert)


async def with_red_alert(client: httpx.AsyncClient, session: AsyncSession, admin: dict[str, str], org: str) -> str:
    """A COPD patient whose SpO2 meter sent 80 % an hour ago: a red alert opens. The patient."""
    patient = await enrol(client, admin, org, conditions=["copd"])
    device = await register(client, admin, type="spo2")
    await assign(client, admin, device["serial"], patient["id"])
    taken = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    (outcome,) = await ingest(session, message([reading(device["serial"], taken, type="spo2", value=80, unit="%")]))
    assert outcome.results[0]["status"] == "accepted"
    await session.commit()  # kept when a refused request rolls back to the test's savepoint
    return patient["id"]


@pytest.fixture
async def lists(client: httpx.AsyncClient, tokens: Tokens, session: AsyncSession) -> Lists:
    org = await new_organisation(session)
    admin = tokens(org, "admin", "nurse")
    first = await with_red_alert(client, session, admin, org)
    await with_red_alert(client, session, admin, org)
    gateway = unique("gw")
    for name in (gateway, unique("gw")):
        r = await client.post("/api/v1/gateways", headers=admin, json={"id": name, "name": "Kari's tablet"})
        assert r.status_code == 201, r.text
    unknown = [reading(unique("NOSUCH"), "2026-11-20T08:00:00+01:00") for _ in range(2)]
    (outcome,) = await ingest(session, message(unknown, gateway))
    assert [r["reason"] for r in outcome.results] == ["unknown_device"] * 2
    await session.commit()
    (alert,) = (await client.get("/api/v1/alerts", headers=admin, params={"patient": first})).json()["items"]
    for comment in ("Called, no answer", "Called again: fine"):
        r = await client.post(f"/api/v1/alerts/{alert['id']}/comments", headers=admin, json={"text": comment})
        assert r.status_code == 201, r.text
    # A second staff member of the organisation: the staff directory writes down each caller.
    assert (await client.get("/api/v1/staff", headers=tokens(org, "nurse", sub="staff-2"))).status_code == 200
    return Lists(admin, first, alert["id"])


async def first_page(client: httpx.AsyncClient, lists: Lists, path: str, **params: Any) -> dict[str, Any]:
    response = await client.get(lists.url(path), headers=lists.headers, params={"limit": 1, **params})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("path", list(LISTS))
async def test_a_list_answers_pages_of_limit_items(client, lists: Lists, path: str):
    page = await first_page(client, lists, path)
    assert set(page) == {"items", "next"}
    assert isinstance(page["items"], list) and len(page["items"]) == 1
    assert isinstance(page["next"], str) and re.fullmatch(r"[A-Za-z0-9_-]+", page["next"])
    following = await first_page(client, lists, path, cursor=page["next"])
    assert len(following["items"]) == 1 and following["items"] != page["items"]

    everything = await first_page(client, lists, path, limit=500)
    assert len(everything["items"]) >= 2 and everything["next"] is None
    # (The audit lists grow as they are read, so the pages are compared by membership.)
    assert all(item in everything["items"] for item in page["items"] + following["items"])
    for limit in (0, 501, -1, "ten"):
        response = await client.get(lists.url(path), headers=lists.headers, params={"limit": limit})
        assert_error(response, 422, "limit")


@pytest.mark.parametrize("path", list(LISTS))
async def test_a_list_refuses_a_malformed_cursor(client, lists: Lists, path: str):
    genuine = (await first_page(client, lists, path))["next"]
    for cursor in (
        "not a cursor",
        "%%%",
        genuine + "!",  # a character outside the alphabet
        "~" + genuine,
        raw_cursor({"position": 1}),
        raw_cursor(None),
        raw_cursor([]),
    ):
        response = await client.get(lists.url(path), headers=lists.headers, params={"cursor": cursor})
        assert assert_error(response, 422, "cursor")["error"] == "invalid_cursor", cursor


@pytest.mark.parametrize("path", list(LISTS))
async def test_a_list_refuses_the_cursor_of_another_list(client, lists: Lists, path: str):
    others = [other for other in LISTS if other != path and (path, other) not in SAME_POSITION_TYPE]
    assert len(others) >= 4
    for other in others:
        cursor = (await first_page(client, lists, other))["next"]
        response = await client.get(lists.url(path), headers=lists.headers, params={"cursor": cursor})
        assert assert_error(response, 422, "cursor")["error"] == "invalid_cursor", other


@pytest.mark.parametrize(("path", "other"), sorted(SAME_POSITION_TYPE))
async def test_lists_with_the_same_kind_of_key_refuse_each_others_cursors(client, lists: Lists, path, other):
    cursor = (await first_page(client, lists, other))["next"]
    response = await client.get(lists.url(path), headers=lists.headers, params={"cursor": cursor})
    assert assert_error(response, 422, "cursor")["error"] == "invalid_cursor"


# -- the cursor codec and the page model ----------------------------------------------------

OSLO_WINTER = timezone(timedelta(hours=1))
AT = datetime(2026, 11, 1, 8, 30, 15, 123456, tzinfo=OSLO_WINTER)
ID = uuid.UUID("01a23130-b67a-76f4-aeed-dc19a4280cec")
POSITIONS: list[tuple[str, Cursor[Any], Any]] = [
    ("worklist by priority", WORKLIST_CURSOR, ("priority", 0, AT, "Kari Nordmann", ID)),
    ("worklist by name", WORKLIST_CURSOR, ("name", "Kari Nordmann", ID)),
    ("worklist by last reading", WORKLIST_CURSOR, ("last_reading", AT, ID)),
    ("worklist by newest reading", WORKLIST_CURSOR, ("-last_reading", AT, ID)),
    ("alert queue", QUEUE_CURSOR, (0, 1, AT, ID)),
    ("rejected readings", REJECTED_CURSOR, (AT, ID)),
    ("audit", AUDIT_CURSOR, 9_007_199_254_740_993),
    ("devices", DEVICE_CURSOR, "UA651-12345"),
    ("gateways", GATEWAY_CURSOR, "hub-0042 ÆØÅ"),
    ("FHIR search", SEARCH_CURSOR, (AT, ID)),
    ("alert comments", COMMENTS_CURSOR, 9_007_199_254_740_993),
    ("staff", STAFF_CURSOR, (0, "Kari Nordmann ÆØÅ", "sub-1", "974600951")),
]


@pytest.mark.parametrize(("codec", "position"), [(c, p) for _, c, p in POSITIONS], ids=[n for n, _, _ in POSITIONS])
def test_a_cursor_round_trips_its_lists_position(codec: Cursor[Any], position: Any):
    encoded = codec.encode(position)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", encoded), "URL-safe, without padding"
    decoded = codec.decode(encoded)
    assert decoded == position
    if isinstance(position, tuple):
        times = [v for v in decoded if isinstance(v, datetime)]
        assert all(t.utcoffset() == timedelta(hours=1) for t in times)  # the offset is kept


def test_no_cursor_is_the_first_page():
    assert QUEUE_CURSOR.decode(None) is None
    assert QUEUE_CURSOR.decode("") is None


def refused(codec: Cursor[Any], cursor: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        codec.decode(cursor)
    assert caught.value.code == "invalid_cursor" and caught.value.status == 422
    return caught.value


def test_tampered_base64_is_refused():
    genuine = QUEUE_CURSOR.encode((0, 1, AT, ID))
    for tampered in (genuine[:-1], genuine[:-5], genuine + "!!", "*" + genuine, genuine[:8] + "." + genuine[9:]):
        refused(QUEUE_CURSOR, tampered)
    assert "cursor" in refused(QUEUE_CURSOR, "@@@@").detail
    assert "_cursor" in refused(SEARCH_CURSOR, "@@@@").detail  # the FHIR parameter's own name


@pytest.mark.parametrize(
    ("codec", "position"),
    [
        (QUEUE_CURSOR, [0, 1]),
        (QUEUE_CURSOR, [0, 1, AT.isoformat(), str(ID), 5]),
        (QUEUE_CURSOR, ["red", 1, AT.isoformat(), str(ID)]),
        (QUEUE_CURSOR, [0, 1, "yesterday", str(ID)]),
        (QUEUE_CURSOR, [0, 1, AT.isoformat(), "not-a-uuid"]),
        (QUEUE_CURSOR, {"level": 0}),
        (REJECTED_CURSOR, [str(ID), AT.isoformat()]),
        (AUDIT_CURSOR, "forty-two"),
        (AUDIT_CURSOR, [42]),
        (AUDIT_CURSOR, 4.5),
        (DEVICE_CURSOR, 12345),
        (DEVICE_CURSOR, None),
        (WORKLIST_CURSOR, ["oldest", AT.isoformat(), str(ID)]),
        (WORKLIST_CURSOR, ["name", 7, str(ID)]),
        (WORKLIST_CURSOR, ["priority", 0, AT.isoformat(), str(ID)]),
        (SEARCH_CURSOR, [AT.isoformat()]),
        (COMMENTS_CURSOR, -1),
        (COMMENTS_CURSOR, "twelve"),
        (STAFF_CURSOR, [0, "Kari", "sub-1"]),
        (STAFF_CURSOR, [10, "Kari", "sub-1", "974600951"]),
    ],
)
def test_a_position_of_the_wrong_shape_is_refused(codec: Cursor[Any], position: Any):
    refused(codec, raw_cursor([codec.name, position]))


@pytest.mark.parametrize(
    ("codec", "position"),
    [
        (QUEUE_CURSOR, [0, 1, "2026-11-01T08:30:00", str(ID)]),
        (REJECTED_CURSOR, ["2026-11-01T08:30:00", str(ID)]),
        (WORKLIST_CURSOR, ["last_reading", "2026-11-01T08:30:00", str(ID)]),
        (SEARCH_CURSOR, ["2026-11-01T08:30:00.123456", str(ID)]),
    ],
)
def test_a_time_without_offset_is_refused(codec: Cursor[Any], position: Any):
    refused(codec, raw_cursor([codec.name, position]))
    # The same position with an offset is taken.
    with_offset = [*position[:-2], position[-2] + "+01:00", position[-1]]
    assert codec.decode(raw_cursor([codec.name, with_offset])) is not None


def test_page_of_sets_next_exactly_when_a_row_more_was_found():
    codec: Cursor[int] = Cursor("numbers", int)
    more = Page[int].of([1, 2, 3, 4], 3, codec, lambda n: n * 10)
    assert more.items == [1, 2, 3]
    assert more.next is not None and codec.decode(more.next) == 30  # the last row shown
    exactly = Page[int].of([1, 2, 3], 3, codec, lambda n: n * 10)
    assert exactly.items == [1, 2, 3] and exactly.next is None
    fewer = Page[int].of([1], 3, codec, lambda n: n * 10)
    assert fewer.items == [1] and fewer.next is None
    empty = Page[int].of([], 3, codec, lambda n: n * 10)
    assert empty.items == [] and empty.next is None
    assert Page[int].of([5, 6], 1, codec, lambda n: n).model_dump() == {"items": [5], "next": codec.encode(5)}


# -- alert status and resolution outcome: one enum each -------------------------------------


@dataclass
class Queue:
    headers: dict[str, str]
    by_status: dict[AlertStatus, str]  # an alert id in each status


@pytest.fixture
async def queue(client: httpx.AsyncClient, tokens: Tokens, session: AsyncSession) -> Queue:
    """A fresh organisation with one alert open, one acknowledged and one resolved."""
    org = await new_organisation(session)
    nurse = tokens(org, "admin", "nurse")
    alerts: dict[AlertStatus, str] = {}
    for status in AlertStatus:
        patient = await with_red_alert(client, session, nurse, org)
        (alert,) = (await client.get("/api/v1/alerts", headers=nurse, params={"patient": patient})).json()["items"]
        alerts[status] = alert["id"]
    acknowledged = await client.post(f"/api/v1/alerts/{alerts[AlertStatus.acknowledged]}/acknowledge", headers=nurse)
    assert acknowledged.status_code == 200, acknowledged.text
    resolved = await client.post(
        f"/api/v1/alerts/{alerts[AlertStatus.resolved]}/resolve", headers=nurse, json={"note": "Called"}
    )
    assert resolved.status_code == 200, resolved.text
    return Queue(nurse, alerts)


async def queue_of(client: httpx.AsyncClient, queue: Queue, **params: str) -> dict[str, str]:
    response = await client.get("/api/v1/alerts", headers=queue.headers, params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    return {item["id"]: item["status"] for item in response.json()["items"]}


async def test_the_status_filter_takes_exactly_the_alert_statuses(client, queue: Queue):
    assert {s.value for s in AlertStatus} == {"open", "acknowledged", "resolved"}
    for status, alert_id in queue.by_status.items():
        assert await queue_of(client, queue, status=status.value) == {alert_id: status.value}
    everything = await queue_of(client, queue, status=",".join(s.value for s in AlertStatus))
    assert everything == {alert_id: status.value for status, alert_id in queue.by_status.items()}
    assert set(everything.values()) <= {s.value for s in AlertStatus}
    default = await queue_of(client, queue)
    assert default == {queue.by_status[s]: s.value for s in (AlertStatus.open, AlertStatus.acknowledged)}
    assert await queue_of(client, queue, status="resolved, open") == {
        queue.by_status[s]: s.value for s in (AlertStatus.open, AlertStatus.resolved)
    }
    for wrong in ("closed", "OPEN", "escalated", "late", "open,closed", "", ",", "acknowledge"):
        response = await client.get("/api/v1/alerts", headers=queue.headers, params={"status": wrong})
        assert assert_error(response, 422, "status")["error"] == "invalid_filter", wrong


async def test_the_schema_and_the_database_spell_the_enums_alike(openapi, session):
    schemas = openapi["components"]["schemas"]
    assert schemas["AlertStatus"]["enum"] == [s.value for s in AlertStatus]
    assert schemas["ResolutionOutcome"]["enum"] == [o.value for o in ResolutionOutcome]
    status_of_item = schemas["AlertItem"]["properties"]["status"]
    assert status_of_item == {"$ref": "#/components/schemas/AlertStatus"}
    for constraint, enum in (("ck_alerts_status_known", AlertStatus), ("ck_alerts_outcome_known", ResolutionOutcome)):
        definition = await session.scalar(
            text("select pg_get_constraintdef(oid) from pg_constraint where conname = :name"), {"name": constraint}
        )
        assert definition is not None, constraint
        assert set(re.findall(r"'([^']+)'", definition)) == {e.value for e in enum}, definition


@pytest.mark.parametrize("outcome", [o.value for o in ResolutionOutcome] + [None])
async def test_a_resolution_outcome_is_stored_and_returned(client, session, queue: Queue, outcome: str | None):
    alert_id = queue.by_status[AlertStatus.open]
    body: dict[str, Any] = {"note": "Called; inhaler technique"}
    if outcome is not None:
        body["outcome"] = outcome
    response = await client.post(f"/api/v1/alerts/{alert_id}/resolve", headers=queue.headers, json=body)
    assert response.status_code == 200, response.text
    item = response.json()
    assert (item["status"], item["outcome"], item["note"]) == ("resolved", outcome, "Called; inhaler technique")
    stored = await session.scalar(select(Alert).where(Alert.id == uuid.UUID(alert_id)))
    assert stored is not None and (stored.status, stored.outcome) == (AlertStatus.resolved, outcome)
    (listed,) = [
        i
        for i in (
            await client.get("/api/v1/alerts", headers=queue.headers, params={"status": "resolved", "limit": 500})
        ).json()["items"]
        if i["id"] == alert_id
    ]
    assert listed["outcome"] == outcome
    detail = (await client.get(f"/api/v1/alerts/{alert_id}", headers=queue.headers)).json()
    assert detail["outcome"] == outcome


@pytest.mark.parametrize("outcome", ["fixed", "Advice-Given", "advice_given", "", 3])
async def test_a_resolution_outcome_outside_the_enum_is_refused(client, session, queue: Queue, outcome: Any):
    alert_id = queue.by_status[AlertStatus.open]
    response = await client.post(
        f"/api/v1/alerts/{alert_id}/resolve", headers=queue.headers, json={"note": "Called", "outcome": outcome}
    )
    assert_error(response, 422, "outcome")
    still = (await client.get(f"/api/v1/alerts/{alert_id}", headers=queue.headers)).json()
    assert (still["status"], still["outcome"], still["note"]) == ("open", None, None)
