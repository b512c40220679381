"""Shared steps of the staff API tests: enrol, register, assign, send readings."""

from __future__ import annotations

import base64
import json
import random
import uuid
from datetime import UTC, date, datetime
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rpm import norway
from rpm.observations.models import Observation
from rpm.organisations.models import Organisation
from rpm.pipeline import IncomingMessage, MessageOutcome, record_messages
from tests.conftest import ORG_A
from tests.fixtures.identity import fresh_identity

TOPIC_ROOT = "rpm/v1"
FNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.1"
DNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.2"
LOINC = "http://loinc.org"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def enrolment(org: str = ORG_A, **overrides: Any) -> dict[str, Any]:
    """The api.md example payload with a fresh identity number, without a start period."""
    number, born = fresh_identity()
    payload: dict[str, Any] = {
        "identifier": number,
        "name": "Kari Nordmann",
        "birth_date": born.isoformat(),
        "conditions": ["copd", "heart-failure"],
        "care_team": [{"organisation": org, "from": "2026-11-01"}],
        "measurement_plan": [
            {"type": "body-weight", "every_hours": 24},
            {"type": "spo2", "every_hours": 24},
        ],
        # No start period: these patients' readings are judged by the bands in force from the
        # first one (the start period has tests of its own, tests/rules/test_start_period.py).
        "start_period_days": 0,
    }
    payload.update(overrides)
    return payload


async def enrol(
    client: httpx.AsyncClient, headers: dict[str, str], org: str = ORG_A, **overrides: Any
) -> dict[str, Any]:
    r = await client.post("/api/v1/patients", headers=headers, json=enrolment(org, **overrides))
    assert r.status_code == 201, r.text
    return r.json()


async def register(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    *,
    serial: str | None = None,
    type: str = "body-weight",
) -> dict[str, Any]:
    body = {
        "serial": serial or unique("SC"),
        "type": type,
        "manufacturer": "A&D",
        "model": "UC-352BLE",
    }
    r = await client.post("/api/v1/devices", headers=headers, json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def assign(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    serial: str,
    patient: str,
    start: str = "2026-11-01T00:00:00+01:00",
) -> dict[str, Any]:
    r = await client.put(
        f"/api/v1/devices/{serial}/assignment",
        headers=headers,
        json={"patient": patient, "from": start},
    )
    assert r.status_code == 200, r.text
    return r.json()


async def new_organisation(session: AsyncSession, kind: str = "municipality") -> str:
    """A registered organisation no other test uses, so its lists are exactly this test's."""
    orgnr = f"{random.randint(100_000_000, 899_999_999)}"
    session.add(Organisation(orgnr=orgnr, name=f"Org {orgnr}", kind=kind))
    await session.flush()
    return orgnr


def reading(
    serial: str,
    time: str,
    *,
    type: str = "body-weight",
    value: Any = 81.4,
    unit: str = "kg",
    reading_id: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": reading_id or unique("r"),
        "device": {"serial": serial},
        "type": type,
        "time": time,
        "unit": unit,
    }
    body["values" if type == "blood-pressure" else "value"] = value
    return body


def message(
    readings: list[dict[str, Any]] | dict[str, Any],
    gateway: str = "gw-1",
    received_at: datetime | None = None,
) -> IncomingMessage:
    payload = readings if isinstance(readings, dict) else {"readings": readings}
    return IncomingMessage(
        f"{TOPIC_ROOT}/gateways/{gateway}/measurements",
        json.dumps(payload).encode(),
        received_at or datetime.now(UTC),
    )


async def ingest(
    session: AsyncSession, *messages: IncomingMessage, now: datetime | None = None
) -> list[MessageOutcome]:
    return await record_messages(session, list(messages), now=now or datetime.now(UTC), topic_root=TOPIC_ROOT)


async def observations_of(session: AsyncSession, patient_id: str) -> list[Observation]:
    rows = await session.scalars(
        select(Observation).where(Observation.patient_id == uuid.UUID(patient_id)).order_by(Observation.effective_at)
    )
    return list(rows)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def today() -> date:
    """Today in Norway: care-team periods and plans are dates there (in the hour after
    midnight in Oslo, the UTC date is still yesterday)."""
    return norway.today()


def assert_error(response: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"}, body
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["detail"], str) and body["detail"]
    if field is not None:
        assert field in body["detail"], body
    return body


def raw_cursor(position: Any) -> str:
    """A cursor as the API encodes them, around any JSON: for cursors the API must refuse."""
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")
