"""Input that once reached the database as a value it cannot hold answers 4xx, never 500.

A NUL character (PostgreSQL text cannot hold one), years at the ends of the calendar (a day
or an offset added to them overflows), numbers that are digits to Python's `isdigit` but not
to `int`, and hand-made cursors whose parts decode but are out of range: each is refused where
it comes in (422 on the JSON API, a 400 OperationOutcome on FHIR), and any that slips past is
answered 422 by the error handler rather than 500.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from rpm.api.errors import FHIR_JSON
from tests.api.helpers import assign, enrol, raw_cursor, register, unique
from tests.conftest import ORG_A


@pytest.fixture
async def patient(client, tokens) -> dict[str, Any]:
    return await enrol(client, tokens(ORG_A, "admin"))


def refused(response: Any) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if response.headers["content-type"].startswith(FHIR_JSON):
        assert response.json()["resourceType"] == "OperationOutcome"
    else:
        assert set(response.json()) == {"error", "detail"}


ID = "0192a0b0-0000-7000-8000-000000000000"
JSON_API = [
    ("/api/v1/rejected", {"gateway": "hub\x00"}),
    ("/api/v1/rejected", {"serial": "\x00"}),
    ("/api/v1/rejected", {"from": "0001-01-01T00:00:00Z"}),
    ("/api/v1/rejected", {"to": "9999-12-31T23:59:59Z"}),
    ("/api/v1/audit", {"action": "read\x00"}),
    ("/api/v1/audit", {"staff": "\x00"}),
    ("/api/v1/audit", {"from": "0001-01-01T00:00:00+01:00"}),
    ("/api/v1/patients", {"cursor": raw_cursor(["patients", ["name", "Kari\x00", ID]])}),
    ("/api/v1/patients", {"cursor": raw_cursor(["patients", ["last_reading", "0001-01-01T00:00:00Z", ID]])}),
    ("/api/v1/patients", {"cursor": raw_cursor(["patients", ["priority", 2**70, "2026-01-01T00:00:00Z", "K", ID]])}),
    ("/api/v1/audit", {"cursor": raw_cursor(["audit", 2**70])}),
    ("/api/v1/devices", {"cursor": raw_cursor(["devices", "SN\x00"])}),
    ("/api/v1/gateways", {"cursor": raw_cursor(["gateways", "x" * 5000])}),
    ("/fhir/Observation", {"_count": "²"}),
    ("/fhir/Observation", {"_count": "9" * 5000}),
    ("/fhir/Observation", {"date": "9999"}),
    ("/fhir/Observation", {"date": "9999-12"}),
    ("/fhir/Observation", {"date": "9999-12-31"}),
    ("/fhir/Observation", {"date": "9999-12-31T23:59:59Z"}),
    ("/fhir/Observation", {"date": "ge0001-01-01"}),
    ("/fhir/Observation", {"date": "ge2026-11-01T10+01:00"}),
    ("/fhir/Observation", {"date": "ge2026-11-01 10:00:00+01:00"}),
    ("/fhir/Observation", {"_cursor": raw_cursor(["fhir-observations", ["0001-01-01T00:00:00Z", ID]])}),
    ("/fhir/Patient", {"identifier": "urn:oid:2.16.578.1.12.4.1.4.1|1234\x00"}),
    ("/api/v1/devices/SN%00X", {}),
]  # fmt: skip


@pytest.mark.parametrize(("path", "params"), JSON_API, ids=[f"{p} {sorted(q)}" for p, q in JSON_API])
async def test_hostile_query_is_refused(client, tokens, path, params):
    refused(await client.get(path, headers=tokens(ORG_A, "admin"), params=params))


@pytest.mark.parametrize(
    "params",
    [{"to": "9999-12-31"}, {"from": "0001-01-01", "bucket": "raw"}, {"from": "2026-11-01\x00"}],
    ids=["to-9999", "from-year-1", "nul"],
)
async def test_a_trend_period_at_the_ends_of_the_calendar_is_refused(client, tokens, patient, params):
    refused(
        await client.get(
            f"/api/v1/patients/{patient['id']}/trends", headers=tokens(ORG_A), params={"code": "29463-7", **params}
        )
    )


async def test_a_nul_in_a_body_is_refused_not_stored(client, tokens):
    r = await client.post(
        "/api/v1/devices",
        headers=tokens(ORG_A, "admin"),
        json={"serial": unique("SN"), "type": "body-weight", "model": "UC\x00352"},
    )
    refused(r)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
async def test_thresholds_that_are_not_numbers_are_refused(client, tokens, patient, value):
    body = '{"reason": "r", "bands": {"59408-5": {"yellow": {"low": %s}}}}' % value  # noqa: UP031 (JSON text)
    headers = {**tokens(ORG_A, "physician"), "content-type": "application/json"}
    r = await client.put(f"/api/v1/patients/{patient['id']}/thresholds", headers=headers, content=body)
    assert r.status_code == 422, r.text
    preview = '{"days": 7, "weight_gain": {"yellow": %s}}' % value  # noqa: UP031
    r = await client.post(f"/api/v1/patients/{patient['id']}/thresholds/preview", headers=headers, content=preview)
    assert r.status_code == 422, r.text


async def test_a_serial_with_a_nul_in_an_assignment_is_refused(client, tokens, patient):
    admin = tokens(ORG_A, "admin")
    device = await register(client, admin)
    await assign(client, admin, device["serial"], patient["id"])
    r = await client.put(
        "/api/v1/devices/SN%00/assignment",
        headers=admin,
        json={"patient": patient["id"], "from": datetime.now(UTC).isoformat()},
    )
    refused(r)
