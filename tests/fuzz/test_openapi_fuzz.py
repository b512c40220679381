"""The staff API against its own OpenAPI document: schemathesis generates requests for every
operation of /openapi.json (valid and invalid parameters and bodies) and sends them, with the
token of an admin who is also nurse and physician, to the app in-process (its own lifespan,
the test database). No answer may be a server error, and every answer must be one the
document describes: its status code, content type and schema.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from rpm.access.tokens import mint_dev_token
from rpm.alerts.models import Alert
from rpm.api.app import create_app
from rpm.config import Settings
from rpm.observations.models import Observation
from rpm.pipeline import IncomingMessage, record_messages
from tests.fixtures.world import enrol_with_devices

# CI's share; FUZZ_API_EXAMPLES=200 for a deeper look by hand.
EXAMPLES_PER_OPERATION = int(os.environ.get("FUZZ_API_EXAMPLES", "25"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@dataclass(frozen=True)
class World:
    """The test organisation and the ids of what it holds, for path parameters that exist."""

    orgnr: str
    path_parameters: dict[str, str]


@pytest.fixture
async def world(committed, own_organisation) -> AsyncIterator[World]:
    """An organisation with a patient, devices and readings (one of them out of band, so an
    alert), so that lists, searches and the operations on one resource have something to return."""
    weight, pressure = await enrol_with_devices(
        committed, own_organisation, ["body-weight", "blood-pressure"], conditions=["heart-failure", "hypertension"]
    )
    now = datetime.now(UTC)
    readings = [
        {
            "id": f"r-{number}",
            "device": {"serial": weight.serial},
            "type": "body-weight",
            "time": (now - timedelta(hours=number)).isoformat(),
            "value": 80 + number,
            "unit": "kg",
        }
        for number in range(5)
    ] + [
        {
            "id": "bp-1",
            "device": {"serial": pressure.serial},
            "type": "blood-pressure",
            "time": now.isoformat(),
            "values": {"systolic": 190, "diastolic": 120, "pulse": 80},
            "unit": "mm[Hg]",
        }
    ]
    gateway = f"gw-{uuid.uuid4().hex[:8]}"
    message = IncomingMessage(
        f"rpm/v1/gateways/{gateway}/measurements", json.dumps({"readings": readings}).encode(), now
    )
    async with committed() as session, session.begin():
        await record_messages(session, [message, IncomingMessage(message.topic, b"not json", now)], now=now)
    async with committed() as session:
        alert_id = await session.scalar(select(Alert.id).where(Alert.patient_id == pressure.patient_id))
        observation_id = await session.scalar(select(Observation.id).where(Observation.device_id == weight.device_id))
    assert alert_id is not None and observation_id is not None
    yield World(
        own_organisation,
        {
            "patient_id": str(weight.patient_id),
            "serial": weight.serial,
            "device_id": str(weight.device_id),
            "alert_id": str(alert_id),
            "observation_id": str(observation_id),
        },
    )


def fuzz(
    operation: schemathesis.APIOperation, headers: dict[str, str], known: dict[str, str]
) -> tuple[int, str | None]:
    """Valid and invalid requests for one operation: how many, and what went wrong (or None).
    Where the path names something, some of the requests name what exists (from `known`)."""
    strategy = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)
    names = [parameter.name for parameter in operation.path_parameters]
    if names and all(name in known for name in names):
        existing = {name: known[name] for name in names}
        strategy = strategy | operation.as_strategy(GenerationMode.POSITIVE, path_parameters=existing)
    # The alert stream never ends by itself: what it sent within the read timeout is its answer.
    stream = operation.path.endswith("/stream")
    timeout = 0.5 if stream else 30.0
    calls = 0

    @hypothesis_settings(
        max_examples=10 if stream else EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        phases=[Phase.explicit, Phase.generate],
    )
    @given(case=strategy)
    def answers_as_documented(case: schemathesis.Case) -> None:
        nonlocal calls
        calls += 1
        case.call_and_validate(headers=headers, checks=CHECKS, timeout=timeout)

    try:
        answers_as_documented()
    except (Exception, BaseExceptionGroup) as error:  # schemathesis groups what it found
        return calls, str(error)[:3000]
    return calls, None


def test_every_operation_answers_as_documented_and_never_with_a_server_error(settings: Settings, world: World):
    # The app makes its own engine in its lifespan: schemathesis runs it on an event loop of its own.
    app = create_app(settings)
    token = mint_dev_token(
        settings, sub="fuzz-staff", orgnr=world.orgnr, roles=["admin", "nurse", "physician"], hpr="1234567"
    )
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: dict[str, str] = {}
    calls: Counter[str] = Counter()
    operations = 0
    try:
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            # Every operation is tried, and all failures are reported together.
            calls[operation.label], problem = fuzz(operation, headers, world.path_parameters)
            if problem:
                failures[operation.label] = problem
    finally:
        asgi.shutdown_lifespans()
    assert operations >= 30, "the document lost operations"
    assert failures == {}, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
    assert len(calls) == operations and sum(calls.values()) >= 10 * operations, calls
    print(f"{sum(calls.values())} requests to {operations} operations, none answered outside the document")
