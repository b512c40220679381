"""Wrong callers refused (issue 10, item 4): every route of the app, called as every kind of
caller, answers what MATRIX says; and nothing of one organisation reaches another.

The callers (columns of MATRIX):
  none       no token / no session cookie
  expired    an expired token / the cookie of a session that was signed out
  audience   a token for another audience / on a page: a valid API token, which pages do not take
  b_nurse    a nurse of organisation B, which does not follow organisation A's patients
  b_admin    an admin of organisation B
  no_role    a token / page session of organisation A with none of the roles
  nurse, physician, admin   of organisation A, which follows the patients the paths name

Path parameters are organisation A's real ids: a patient with a device, readings and an alert,
a gateway, a rejected reading (`world`, committed, in two organisations of its own). The API
runs under uvicorn (the streams need a socket). Pages sign in through the development form.

Every response to a caller outside organisation A is searched for A's identifiers (patient id,
identity number, name, device serial and id, gateway, alert, observation) that the request did
not itself carry: 0 leaks, across every route. The tests after the matrix go after the
indirect ways: list filters, another organisation's cursors, the streams, FHIR search.

A route of the app without a row in MATRIX fails test_every_route_has_a_row: add it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import string
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import uvicorn
from fastapi.routing import iter_route_contexts
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from rpm.access.repository import visible_patient_ids
from rpm.access.staff import Staff
from rpm.access.tokens import DEV_KID, load_or_create_dev_key, mint_dev_token
from rpm.alerts.models import Alert, AlertObservation
from rpm.api.app import create_app
from rpm.config import Settings
from rpm.db import session_factory
from rpm.devices.models import Device
from rpm.gateways.models import Gateway
from rpm.norway import OSLO, today
from rpm.observations.models import Observation
from rpm.organisations.models import Organisation
from rpm.patients.models import Patient
from rpm.pipeline import IncomingMessage, record_messages
from rpm.rules.models import ThresholdProposal
from rpm.sessions import service as web_sessions
from tests.api.helpers import enrolment, unique
from tests.fixtures.identity import fresh_identity
from tests.fixtures.servers import free_port
from tests.fixtures.world import add_patient_with_devices

CALLERS = ("none", "expired", "audience", "b_nurse", "b_admin", "no_role", "nurse", "physician", "admin")
OUTSIDERS = ("none", "expired", "audience", "b_nurse", "b_admin", "no_role")  # must see nothing of A
ROLES = {"b_nurse": "nurse", "b_admin": "admin", "no_role": "receptionist", "nurse": "nurse"}
ROLES |= {"physician": "physician", "admin": "admin"}

# fmt: off
# Pages answer a caller without a session by sending a GET to the sign-in (303) and refusing
# anything else (401). 303 from a signed-in POST: the change was made, and the page follows.
# Columns: none, expired, audience, b_nurse, b_admin, no_role, nurse, physician, admin (CALLERS).
#                                                      none exp  aud  Bnur Badm nrol nurs phys admn
MATRIX: dict[str, tuple[int, ...]] = {
    # -- JSON API: a caller needs a valid token with a role; A's patients are A's care team's
    "GET /api/v1/patients":                           (401, 401, 401, 200, 200, 403, 200, 200, 200),
    "POST /api/v1/patients":                          (401, 401, 401, 403, 403, 403, 403, 403, 201),
    "GET /api/v1/patients/{patient_id}":              (401, 401, 401, 404, 404, 403, 200, 200, 200),
    "PATCH /api/v1/patients/{patient_id}":            (401, 401, 401, 404, 404, 403, 403, 403, 200),
    "GET /api/v1/patients/{patient_id}/dashboard":    (401, 401, 401, 404, 404, 403, 200, 200, 200),
    "GET /api/v1/patients/{patient_id}/trends":       (401, 401, 401, 404, 404, 403, 200, 200, 200),
    "GET /api/v1/patients/{patient_id}/thresholds":   (401, 401, 401, 404, 404, 403, 200, 200, 200),
    "PUT /api/v1/patients/{patient_id}/thresholds":   (401, 401, 401, 404, 404, 403, 403, 200, 200),
    "POST /api/v1/patients/{patient_id}/thresholds/preview": (401, 401, 401, 404, 404, 403, 200, 200, 200),
    "GET /api/v1/patients/{patient_id}/action-plan":  (401, 401, 401, 404, 404, 403, 200, 200, 200),
    "PUT /api/v1/patients/{patient_id}/action-plan":  (401, 401, 401, 404, 404, 403, 403, 200, 200),
    "GET /api/v1/patients/{patient_id}/threshold-proposal": (401, 401, 401, 404, 404, 403, 200, 200, 200),
    "POST /api/v1/patients/{patient_id}/threshold-proposal/decision": (401, 401, 401, 404, 404, 403, 403, 200, 200),
    "GET /api/v1/patients/{patient_id}/audit":        (401, 401, 401, 403, 404, 403, 403, 403, 200),
    "POST /api/v1/devices":                           (401, 401, 401, 403, 201, 403, 403, 403, 201),
    "GET /api/v1/devices":                            (401, 401, 401, 200, 200, 403, 200, 200, 200),
    "GET /api/v1/devices/{serial}":                   (401, 401, 401, 404, 404, 403, 200, 200, 200),
    "PUT /api/v1/devices/{serial}/assignment":        (401, 401, 401, 403, 404, 403, 403, 403, 200),
    "POST /api/v1/gateways":                          (401, 401, 401, 403, 201, 403, 403, 403, 201),
    "GET /api/v1/gateways":                           (401, 401, 401, 200, 200, 403, 200, 200, 200),
    "GET /api/v1/alerts":                             (401, 401, 401, 200, 200, 403, 200, 200, 200),
    "GET /api/v1/alerts/stream":                      (401, 401, 401, 200, 200, 403, 200, 200, 200),
    "GET /api/v1/alerts/{alert_id}":                  (401, 401, 401, 404, 404, 403, 200, 200, 200),
    "POST /api/v1/alerts/{alert_id}/acknowledge":     (401, 401, 401, 404, 404, 403, 200, 200, 200),
    "POST /api/v1/alerts/{alert_id}/resolve":         (401, 401, 401, 404, 404, 403, 200, 200, 200),
    "PUT /api/v1/alerts/{alert_id}/assignment":       (401, 401, 401, 404, 404, 403, 200, 200, 200),
    "PUT /api/v1/alerts/{alert_id}/snooze":           (401, 401, 401, 404, 404, 403, 200, 200, 200),
    "DELETE /api/v1/alerts/{alert_id}/snooze":        (401, 401, 401, 404, 404, 403, 200, 200, 200),
    "GET /api/v1/alerts/{alert_id}/comments":         (401, 401, 401, 404, 404, 403, 200, 200, 200),
    "POST /api/v1/alerts/{alert_id}/comments":        (401, 401, 401, 404, 404, 403, 201, 201, 201),
    # Who may be assigned a patient's alerts: the staff of the organisations that may see it
    "GET /api/v1/staff":                              (401, 401, 401, 404, 404, 403, 200, 200, 200),
    "POST /api/v1/observations/{observation_id}/entered-in-error": (401, 401, 401, 404, 404, 403, 200, 200, 200),
    "GET /api/v1/rejected":                           (401, 401, 401, 200, 200, 403, 200, 200, 200),
    "POST /api/v1/rejected/reprocess":                (401, 401, 401, 403, 404, 403, 403, 403, 200),
    "GET /api/v1/audit":                              (401, 401, 401, 403, 200, 403, 403, 403, 200),
    # An organisation's own settings, for its admin; another's answer 404 whether registered or not
    "GET /api/v1/organisations/{orgnr}/service":      (401, 401, 401, 404, 404, 403, 403, 403, 200),
    "PUT /api/v1/organisations/{orgnr}/service":      (401, 401, 401, 404, 404, 403, 403, 403, 200),
    # -- FHIR: the same rules; the CapabilityStatement is public, as FHIR servers' are
    "GET /fhir/metadata":                             (200, 200, 200, 200, 200, 200, 200, 200, 200),
    "GET /fhir/Patient":                              (401, 401, 401, 200, 200, 403, 200, 200, 200),
    "GET /fhir/Patient/{patient_id}":                 (401, 401, 401, 404, 404, 403, 200, 200, 200),
    "GET /fhir/Observation":                          (401, 401, 401, 404, 404, 403, 200, 200, 200),
    "GET /fhir/Observation/{observation_id}":         (401, 401, 401, 404, 404, 403, 200, 200, 200),
    "GET /fhir/Device":                               (401, 401, 401, 404, 404, 403, 200, 200, 200),
    "GET /fhir/Device/{device_id}":                   (401, 401, 401, 404, 404, 403, 200, 200, 200),
    # -- operations and documentation: no patient data, open to the network they are served on
    "GET /healthz":                                   (200, 200, 200, 200, 200, 200, 200, 200, 200),
    "GET /readyz":                                    (200, 200, 200, 200, 200, 200, 200, 200, 200),
    "GET /metrics":                                   (200, 200, 200, 200, 200, 200, 200, 200, 200),
    "GET /openapi.json":                              (200, 200, 200, 200, 200, 200, 200, 200, 200),
    "GET /docs":                                      (200, 200, 200, 200, 200, 200, 200, 200, 200),
    "GET /docs/oauth2-redirect":                      (200, 200, 200, 200, 200, 200, 200, 200, 200),
    "GET /redoc":                                     (200, 200, 200, 200, 200, 200, 200, 200, 200),
    "GET /static":                                    (200, 200, 200, 200, 200, 200, 200, 200, 200),
    # -- the staff page: signing in and out
    "GET /login":                                     (200, 200, 200, 200, 200, 200, 200, 200, 200),
    "POST /login/development":                        (303, 303, 303, 303, 303, 303, 303, 303, 303),
    "GET /login/issuer":                              (403, 403, 403, 403, 403, 403, 403, 403, 403),
    "GET /auth/callback":                             (303, 303, 303, 303, 303, 303, 303, 303, 303),
    "POST /logout":                                   (401, 401, 401, 303, 303, 303, 303, 303, 303),
    "GET /language":                                  (303, 303, 303, 303, 303, 303, 303, 303, 303),
    # -- the staff page: the worklist, alerts, a patient's course and thresholds
    "GET /":                                          (303, 303, 303, 200, 200, 403, 200, 200, 200),
    "GET /worklist/rows":                             (303, 303, 303, 200, 200, 403, 200, 200, 200),
    "GET /events":                                    (303, 303, 303, 200, 200, 403, 200, 200, 200),
    "GET /alerts/{alert_id}":                         (303, 303, 303, 404, 404, 403, 200, 200, 200),
    "POST /alerts/{alert_id}/acknowledge":            (401, 401, 401, 404, 404, 403, 303, 303, 303),
    "POST /alerts/{alert_id}/resolve":                (401, 401, 401, 404, 404, 403, 303, 303, 303),
    "POST /alerts/{alert_id}/assignment":             (401, 401, 401, 404, 404, 403, 303, 303, 303),
    "POST /alerts/{alert_id}/snooze":                 (401, 401, 401, 404, 404, 403, 303, 303, 303),
    "POST /alerts/{alert_id}/wake":                   (401, 401, 401, 404, 404, 403, 303, 303, 303),
    "POST /alerts/{alert_id}/comments":               (401, 401, 401, 404, 404, 403, 303, 303, 303),
    "POST /alerts/{alert_id}/observations/{observation_id}/entered-in-error":
                                                      (401, 401, 401, 404, 404, 403, 303, 303, 303),
    "GET /patients/{patient_id}":                     (303, 303, 303, 404, 404, 403, 200, 200, 200),
    "GET /patients/{patient_id}/charts":              (303, 303, 303, 404, 404, 403, 200, 200, 200),
    "GET /patients/{patient_id}/observations/{observation_id}": (303, 303, 303, 404, 404, 403, 200, 200, 200),
    "POST /patients/{patient_id}/observations/{observation_id}/entered-in-error":
                                                      (401, 401, 401, 404, 404, 403, 303, 303, 303),
    "GET /patients/{patient_id}/thresholds":          (303, 303, 303, 404, 404, 403, 200, 200, 200),
    "POST /patients/{patient_id}/thresholds/preview": (401, 401, 401, 404, 404, 403, 200, 200, 200),
    "POST /patients/{patient_id}/thresholds":         (401, 401, 401, 404, 404, 403, 403, 303, 303),
    "POST /patients/{patient_id}/thresholds/proposal": (401, 401, 401, 404, 404, 403, 403, 303, 303),
    "GET /patients/{patient_id}/action-plan":         (303, 303, 303, 404, 404, 403, 200, 200, 200),
    "POST /patients/{patient_id}/action-plan":        (401, 401, 401, 404, 404, 403, 403, 303, 303),
    # -- the staff page: administration, for admins (B's admin administers B)
    "GET /admin":                                     (303, 303, 303, 403, 200, 403, 403, 403, 200),
    "GET /admin/patients/new":                        (303, 303, 303, 403, 200, 403, 403, 403, 200),
    "GET /admin/patients/new/care-team-row":          (303, 303, 303, 403, 200, 403, 403, 403, 200),
    "GET /admin/patients/choices":                    (303, 303, 303, 403, 200, 403, 403, 403, 200),
    "POST /admin/patients/identity":                  (401, 401, 401, 403, 200, 403, 403, 403, 200),
    "POST /admin/patients":                           (401, 401, 401, 403, 303, 403, 403, 403, 303),
    "GET /admin/devices":                             (303, 303, 303, 403, 200, 403, 403, 403, 200),
    "GET /admin/devices/rows":                        (303, 303, 303, 403, 200, 403, 403, 403, 200),
    "POST /admin/devices":                            (401, 401, 401, 403, 303, 403, 403, 403, 303),
    "POST /admin/devices/assignment":                 (401, 401, 401, 403, 404, 403, 403, 403, 303),
    "GET /admin/gateways":                            (303, 303, 303, 403, 200, 403, 403, 403, 200),
    "GET /admin/gateways/rows":                       (303, 303, 303, 403, 200, 403, 403, 403, 200),
    "POST /admin/gateways":                           (401, 401, 401, 403, 303, 403, 403, 403, 303),
    "GET /admin/rejected":                            (303, 303, 303, 403, 200, 403, 403, 403, 200),
    "GET /admin/rejected/rows":                       (303, 303, 303, 403, 200, 403, 403, 403, 200),
    "POST /admin/rejected/reprocess":                 (401, 401, 401, 403, 303, 403, 403, 403, 303),
}
# fmt: on


def route_key(method: str, path: str) -> str:
    """As MATRIX names a route: a converter (`{serial:path}`, `{alert_id:uuid}`) is not part of it."""
    return method + " " + re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


def app_routes(settings: Settings) -> set[str]:
    found = set()
    for route in iter_route_contexts(create_app(settings).routes):
        methods = set(route.methods or ()) - {"HEAD"} or {"GET"}  # a mount (/static) serves GET
        found |= {route_key(method, route.path or "") for method in methods}
    return found


# -- the world: organisation A's patients and everything around them --------------------------


@dataclass
class World:
    settings: Settings
    engine: AsyncEngine
    org_a: str
    org_b: str
    ids: dict[str, str] = field(default_factory=dict)  # path parameters and other A identifiers
    b_patient: str = ""
    markers: set[str] = field(default_factory=set)  # what must never reach an outsider
    counter: int = 0

    def next(self) -> int:
        self.counter += 1
        return self.counter


def letters(n: int) -> str:
    return "".join(random.choices(string.ascii_lowercase, k=n)).capitalize()


async def new_organisations(engine: AsyncEngine, count: int) -> list[str]:
    found: list[str] = []
    async with session_factory(engine)() as session, session.begin():
        while len(found) < count:
            orgnr = str(random.randint(100_000_000, 899_999_999))
            if orgnr not in found and not await session.scalar(
                select(Organisation.id).where(Organisation.orgnr == orgnr)
            ):
                session.add(Organisation(orgnr=orgnr, name=f"Matrix {orgnr}", kind="municipality"))
                found.append(orgnr)
    return found


def bearer(settings: Settings, orgnr: str, role: str, **claims: Any) -> dict[str, str]:
    if claims:
        now = int(time.time())
        body = {
            "iss": settings.dev_issuer,
            "aud": settings.oidc_audience,
            "sub": f"{role}-x",
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            settings.claim_orgnr_child: orgnr,
            settings.claim_roles: [role],
        } | claims
        token = jwt.encode(
            body, load_or_create_dev_key(settings.dev_key_file), algorithm="ES256", headers={"kid": DEV_KID}
        )
    else:
        token = mint_dev_token(settings, sub=f"{role}-{orgnr}", orgnr=orgnr, roles=[role], hpr="1234567")
    return {"Authorization": f"Bearer {token}"}


def api_headers(world: World, caller: str) -> dict[str, str]:
    settings, a = world.settings, world.org_a
    if caller == "none":
        return {}
    if caller == "expired":
        return bearer(settings, a, "admin", exp=int(time.time()) - 10)
    if caller == "audience":
        return bearer(settings, a, "admin", aud="another-api")
    return bearer(settings, world.org_b if caller.startswith("b_") else a, ROLES[caller])


async def ingest(world: World, gateway: str, readings: list[dict[str, Any]]) -> None:
    now = datetime.now(UTC)
    payload = json.dumps({"readings": readings}).encode()
    message = IncomingMessage(f"rpm/v1/gateways/{gateway}/measurements", payload, now)
    async with session_factory(world.engine)() as session, session.begin():
        await record_messages(session, [message], now=now, topic_root="rpm/v1")


def spo2(serial: str, value: float, minutes_ago: float = 2) -> dict[str, Any]:
    moment = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return {
        "id": unique("r"),
        "device": {"serial": serial},
        "type": "spo2",
        "time": moment.isoformat(),
        "value": value,
        "unit": "%",
    }


async def fresh_evidence(world: World) -> tuple[str, str]:
    """A new open alert of organisation A and the reading that raised it: for the calls that
    mark a reading entered in error, once each."""
    alert_id = await fresh_alert(world)
    async with session_factory(world.engine)() as session:
        observation_id = await session.scalar(
            select(AlertObservation.observation_id).where(AlertObservation.alert_id == uuid.UUID(alert_id))
        )
    assert observation_id is not None
    return alert_id, str(observation_id)


async def fresh_alert(world: World) -> str:
    """A new open alert of organisation A: for the calls that resolve one each."""
    async with session_factory(world.engine)() as session, session.begin():
        patient_id, (device,) = await add_patient_with_devices(session, world.org_a, ["spo2"], conditions=["copd"])
    await ingest(world, world.ids["gateway"], [spo2(device.serial, 83)])
    async with session_factory(world.engine)() as session:
        alert_id = await session.scalar(select(Alert.id).where(Alert.patient_id == patient_id))
    assert alert_id is not None
    return str(alert_id)


async def add_proposal(world: World, patient_id: str) -> None:
    """A start-period proposal waiting for a decision."""
    async with session_factory(world.engine)() as session, session.begin():
        now = datetime.now(UTC)
        session.add(
            ThresholdProposal(
                patient_id=uuid.UUID(patient_id),
                proposed_at=now,
                period_from=now - timedelta(days=14),
                period_to=now,
                bands={"59408-5": {"yellow": {"low": 90}, "red": {"low": 84}}},
                basis={"59408-5": {"readings": 14, "p5": 91.0, "p95": 95.0, "margin": 1.0}},
                status="proposed",
            )
        )


async def fresh_proposal(world: World) -> str:
    """A new patient of organisation A with a proposal: for the calls that decide one each."""
    async with session_factory(world.engine)() as session, session.begin():
        patient_id, _ = await add_patient_with_devices(session, world.org_a, ["spo2"], conditions=["copd"])
    await add_proposal(world, str(patient_id))
    return str(patient_id)


async def enrol_patient(http: httpx.AsyncClient, world: World, orgnr: str, name: str) -> dict[str, Any]:
    admin = bearer(world.settings, orgnr, "admin")
    payload = enrolment(orgnr, name=name, conditions=["copd"], measurement_plan=[{"type": "spo2", "every_hours": 24}])
    r = await http.post("/api/v1/patients", headers=admin, json=payload)
    assert r.status_code == 201, r.text
    patient = r.json()
    serial = unique("MX")
    device = await http.post(
        "/api/v1/devices",
        headers=admin,
        json={"serial": serial, "type": "spo2", "manufacturer": "Nonin", "model": "3230"},
    )
    assert device.status_code == 201, device.text
    assigned = await http.put(
        f"/api/v1/devices/{serial}/assignment",
        headers=admin,
        json={"patient": patient["id"], "from": "2026-11-01T00:00:00+01:00"},
    )
    assert assigned.status_code == 200, assigned.text
    return {"patient": patient, "device": device.json()}


@contextlib.asynccontextmanager
async def serve(settings: Settings, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, engine=engine)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                assert not task.done(), "the API did not start"
                await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.config.port}", timeout=30) as http:
            yield http
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@pytest.fixture(scope="module")
def matrix_settings(database_url: str, broker: tuple[str, int], dev_key: Path) -> Settings:
    host, port = broker
    return Settings(
        database_url=database_url,
        dev_auth=True,
        dev_key_path=dev_key,
        mqtt_url=f"mqtt://{host}:{port}",
        metrics_port=0,
        sse_heartbeat_seconds=0.5,
    )


@pytest.fixture(scope="module")
async def api(matrix_settings: Settings, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(matrix_settings, engine) as http:
        yield http


@pytest.fixture(scope="module")
async def world(api: httpx.AsyncClient, matrix_settings: Settings, engine: AsyncEngine) -> World:
    org_a, org_b = await new_organisations(engine, 2)
    world = World(matrix_settings, engine, org_a, org_b)
    admin_a, admin_b = bearer(matrix_settings, org_a, "admin"), bearer(matrix_settings, org_b, "admin")
    gateway = unique("gw-a")
    r = await api.post("/api/v1/gateways", headers=admin_a, json={"id": gateway, "name": f"Nettbrett {letters(8)}"})
    assert r.status_code == 201, r.text
    world.ids |= {"gateway": gateway, "gateway_name": r.json()["name"]}
    first = await enrol_patient(api, world, org_a, f"Kari {letters(10)}")
    second = await enrol_patient(api, world, org_a, f"Ola {letters(10)}")
    spare = unique("MX-spare")
    r = await api.post("/api/v1/devices", headers=admin_a, json={"serial": spare, "type": "spo2"})
    assert r.status_code == 201, r.text
    # Each of A's patients: a red SpO2 and a normal one; the spare device is not assigned, so its
    # reading is rejected, and belongs to A (its device's organisation).
    for enrolled in (first, second):
        await ingest(
            world, gateway, [spo2(enrolled["device"]["serial"], 83), spo2(enrolled["device"]["serial"], 97, 1)]
        )
    await ingest(world, gateway, [spo2(spare, 95)])
    async with session_factory(engine)() as session:
        alert = await session.scalar(select(Alert.id).where(Alert.patient_id == uuid.UUID(first["patient"]["id"])))
        observation = await session.scalar(
            select(Observation.id).where(Observation.patient_id == uuid.UUID(first["patient"]["id"])).limit(1)
        )
    world.ids |= {
        "patient_id": first["patient"]["id"],
        "identifier": first["patient"]["identifier"],
        "name": first["patient"]["name"],
        "serial": first["device"]["serial"],
        "device_id": first["device"]["id"],
        "alert_id": str(alert),
        "observation_id": str(observation),
        "spare": spare,
        "second_patient": second["patient"]["id"],
        "second_name": second["patient"]["name"],
        "second_identifier": second["patient"]["identifier"],
        "second_serial": second["device"]["serial"],
    }
    await add_proposal(world, first["patient"]["id"])
    # Organisation B has a patient with an alert of its own: B's lists are not empty by accident.
    b = await enrol_patient(api, world, org_b, f"Per {letters(10)}")
    b_gateway = unique("gw-b")
    assert (await api.post("/api/v1/gateways", headers=admin_b, json={"id": b_gateway, "name": "B"})).status_code == 201
    await ingest(world, b_gateway, [spo2(b["device"]["serial"], 83)])
    world.b_patient = b["patient"]["id"]
    world.ids |= {"b_gateway": b_gateway, "b_serial": b["device"]["serial"]}
    await refresh_markers(world)
    return world


# -- how each route is called ------------------------------------------------------------------


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


Build = Callable[[World, str], Awaitable[Call]]


def fill(path: str, world: World) -> str:
    # An organisation number is no secret of A's (the sign-in page lists them): not in `ids`.
    return re.sub(r"\{(\w+)\}", lambda m: world.org_a if m.group(1) == "orgnr" else world.ids[m.group(1)], path)


async def thresholds_change(world: World, caller: str) -> dict[str, Any]:
    low = 88 - world.next() % 2  # 88 and 87 by turns: every save is a change
    return {"reason": "COPD, habitual SpO2 89-91", "bands": {"59408-5": {"yellow": {"low": low}, "red": {"low": 85}}}}


def later_start(world: World) -> datetime:
    """The spare device's next assignment: later than the one before, so never a conflict."""
    return datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=12) + timedelta(minutes=world.next())


def new_device(world: World, caller: str) -> dict[str, Any]:
    return {"serial": unique("MX-new"), "type": "body-weight", "manufacturer": "A&D", "model": "UC-352BLE"}


def enrol_form(world: World, caller: str) -> dict[str, Any]:
    number, _ = fresh_identity()
    return {"identifier": number, "name": f"Eva {letters(8)}", "own_from": "2026-11-01", "conditions": "copd"}


async def build(key: str, world: World, caller: str) -> Call:
    """The request for a route: its path with A's ids, and a body that the allowed callers'
    request would succeed with (a fresh serial, alert, identity number where one is used up)."""
    method, path = key.split(" ", 1)
    call = Call(method, fill(path, world))
    ids = world.ids
    match key:
        case "POST /api/v1/patients":
            call.json = enrolment(world.org_a)
        case "PATCH /api/v1/patients/{patient_id}":
            call.json = {"name": ids["name"]}
        case "GET /api/v1/patients/{patient_id}/trends":
            call.params = {"code": "59408-5", "bucket": "raw"}
        case "PUT /api/v1/patients/{patient_id}/thresholds":
            call.json = await thresholds_change(world, caller)
        case "POST /api/v1/patients/{patient_id}/thresholds/preview":
            call.json = {"days": 7, "bands": {"59408-5": {"yellow": {"low": 90}, "red": {"low": 86}}}}
        case "PUT /api/v1/patients/{patient_id}/action-plan":
            call.json = {"reason": "Agreed with the GP", "actions": {"red": "Call 116 117"}}
        case "POST /patients/{patient_id}/action-plan":
            call.data = {"reason": "Agreed with the GP", "red": "Call 116 117"}
        case "POST /api/v1/patients/{patient_id}/threshold-proposal/decision":
            call.path = path.replace("{patient_id}", await fresh_proposal(world))
            call.json = {"decision": "reject", "reason": "Too few readings in the start period"}
        case "POST /api/v1/devices":
            call.json = new_device(world, caller)
        case "PUT /api/v1/devices/{serial}/assignment":
            call.path = f"/api/v1/devices/{ids['spare']}/assignment"
            call.json = {"patient": ids["patient_id"], "from": later_start(world).isoformat()}
        case "POST /api/v1/gateways":
            call.json = {"id": unique("gw-new"), "name": "Nettbrett"}
        case "POST /api/v1/alerts/{alert_id}/resolve" | "POST /alerts/{alert_id}/resolve":
            call.path = path.replace("{alert_id}", await fresh_alert(world))
            if key.startswith("POST /api"):
                call.json = {"note": "Called; inhaler technique", "outcome": "advice-given"}
            else:
                call.data = {"note": "Called; inhaler technique", "outcome": "advice-given"}
        case "PUT /api/v1/alerts/{alert_id}/assignment":  # to the caller, whom the call wrote down
            call.json = {"assignee": f"{ROLES.get(caller, 'admin')}-{world.org_a}"}
        case "PUT /api/v1/alerts/{alert_id}/snooze":  # a fresh alert: the queue keeps showing A's own
            call.path = path.replace("{alert_id}", await fresh_alert(world))
            call.json = {"until": (datetime.now(UTC) + timedelta(hours=1)).isoformat(), "reason": "New reading at 12"}
        case "POST /api/v1/alerts/{alert_id}/comments":
            call.json = {"text": "Called; no answer"}
        case "POST /alerts/{alert_id}/assignment":  # to the caller, whom signing in wrote down
            call.data = {"to": "me"}
        case "POST /alerts/{alert_id}/snooze":  # a fresh alert: the worklist keeps showing A's own
            call.path = path.replace("{alert_id}", await fresh_alert(world))
            call.data = {"duration": "60", "reason": "New reading at 12"}
        case "POST /alerts/{alert_id}/comments":
            call.data = {"text": "Called; no answer"}
        case "GET /api/v1/staff":
            call.params = {"patient": ids["patient_id"]}
        case "POST /api/v1/observations/{observation_id}/entered-in-error":
            _, observation_id = await fresh_evidence(world)
            call.path = path.replace("{observation_id}", observation_id)
            call.json = {"reason": "the patient forgot the cuff"}
        case "POST /alerts/{alert_id}/observations/{observation_id}/entered-in-error":
            alert_id, observation_id = await fresh_evidence(world)
            call.path = path.replace("{alert_id}", alert_id).replace("{observation_id}", observation_id)
            call.data = {"reason": "the patient forgot the cuff"}
        case "POST /patients/{patient_id}/observations/{observation_id}/entered-in-error":
            _, observation_id = await fresh_evidence(world)
            async with session_factory(world.engine)() as session:
                patient_id = await session.scalar(
                    select(Observation.patient_id).where(Observation.id == uuid.UUID(observation_id))
                )
            call.path = path.replace("{patient_id}", str(patient_id)).replace("{observation_id}", observation_id)
            call.data = {"reason": "the patient forgot the cuff"}
        case "POST /api/v1/rejected/reprocess":
            call.json = {"serial": ids["spare"]}
        case "PUT /api/v1/organisations/{orgnr}/service":  # the defaults, and no partner
            call.json = {"service_hours": {"days": [1, 2, 3, 4, 5], "start": "08:00", "end": "15:30"}}
        case "GET /fhir/Patient":
            call.params = {"identifier": f"urn:oid:2.16.578.1.12.4.1.4.1|{ids['identifier']}"}
        case "GET /fhir/Observation":
            call.params = {"patient": ids["patient_id"], "code": "http://loinc.org|59408-5"}
        case "GET /fhir/Device":
            call.params = {"patient": ids["patient_id"]}
        case "GET /static":
            call.path = "/static/app.js"
        case "POST /login/development":
            call.data = {"organisation": world.org_a, "roles": ["nurse"], "sub": "someone"}
        case "GET /language":
            call.params = {"to": "en", "next": "/"}
        case "GET /admin/patients/choices":
            call.params = {"q": ids["name"][:4]}
        case "POST /admin/patients/identity":
            call.data = {"identifier": ids["identifier"]}
        case "POST /admin/patients":
            call.data = enrol_form(world, caller)
        case "POST /admin/devices":
            call.data = new_device(world, caller)
        case "POST /admin/devices/assignment":
            start = later_start(world).astimezone(OSLO).strftime("%Y-%m-%dT%H:%M")  # as the form's field
            call.data = {"serial": ids["spare"], "patient": ids["patient_id"], "from": start}
        case "POST /admin/gateways":
            call.data = {"id": unique("gw-new"), "name": "Nettbrett"}
        case "POST /admin/rejected/reprocess":
            call.data = {"serial": ids["spare"]}
        case "POST /patients/{patient_id}/thresholds/preview":
            call.data = {"59408-5.yellow.low": "90", "days": "7"}
            call.headers = {"HX-Request": "true"}
        case "POST /patients/{patient_id}/thresholds/proposal":
            call.path = path.replace("{patient_id}", await fresh_proposal(world))
            call.data = {"decision": "reject", "reason": "Too few readings in the start period"}
        case "POST /patients/{patient_id}/thresholds":
            change = await thresholds_change(world, caller)
            call.data = {
                "reason": change["reason"],
                "59408-5.yellow.low": str(change["bands"]["59408-5"]["yellow"]["low"]),
            }
    return call


# -- who calls: bearer tokens for the API, sessions for the page ------------------------------

NOT_PAGES = ("/api/", "/fhir", "/healthz", "/readyz", "/metrics", "/docs", "/redoc", "/openapi.json", "/static")
# Rows whose call ends the session it is made with: those get a session of their own.
ENDS_SESSION = ("POST /login/development", "POST /logout")


@dataclass
class PageSession:
    cookie: str
    csrf: str


async def sign_in(api: httpx.AsyncClient, world: World, caller: str) -> PageSession:
    """Through the development form, as the page's users do (no_role: a session written as one
    from before sign-in refused people without a role)."""
    orgnr = world.org_b if caller.startswith("b_") else world.org_a
    if caller == "no_role":
        async with session_factory(world.engine)() as session, session.begin():
            staff = Staff(sub="no-role", name=None, hpr=None, orgnr=orgnr, roles=frozenset())
            token, signed = await web_sessions.start(session, staff, now=datetime.now(UTC), hours=1)
        return PageSession(token, signed.csrf_token)
    api.cookies.clear()
    r = await api.post(
        "/login/development", data={"organisation": orgnr, "roles": [ROLES[caller]], "sub": f"{caller}-web"}
    )
    assert r.status_code == 303, r.text
    cookie = r.cookies["rpm_session"]
    page = await api.get("/", headers={"Cookie": f"rpm_session={cookie}"})
    api.cookies.clear()
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return PageSession(cookie, found.group(1))


async def page_credentials(
    api: httpx.AsyncClient, world: World, caller: str, cache: dict[str, PageSession], fresh: bool
) -> dict[str, str]:
    if caller == "none":
        return {}
    if caller == "audience":
        return bearer(world.settings, world.org_a, "admin")  # a good API token: not a page session
    if caller == "expired":
        ended = await sign_in(api, world, "admin")
        async with session_factory(world.engine)() as session, session.begin():
            await web_sessions.end(session, ended.cookie)
        return {"Cookie": f"rpm_session={ended.cookie}", "X-CSRF-Token": ended.csrf}
    if fresh or caller not in cache:
        signed = await sign_in(api, world, caller)
        if fresh:
            return {"Cookie": f"rpm_session={signed.cookie}", "X-CSRF-Token": signed.csrf}
        cache[caller] = signed
    signed = cache[caller]
    return {"Cookie": f"rpm_session={signed.cookie}", "X-CSRF-Token": signed.csrf}


@pytest.fixture(scope="module")
def page_sessions() -> dict[str, PageSession]:
    return {}


async def send(api: httpx.AsyncClient, call: Call, headers: dict[str, str]) -> httpx.Response:
    """One request; a stream is read up to its first comment and closed."""
    api.cookies.clear()
    request = api.build_request(
        call.method, call.path, params=call.params, json=call.json, data=call.data, headers=headers | call.headers
    )
    response = await api.send(request, stream=True)
    try:
        if response.status_code == 200 and response.headers.get("content-type", "").startswith("text/event-stream"):
            async with asyncio.timeout(15):
                async for line in response.aiter_lines():
                    if line.startswith(": connected"):
                        break
            response._content = b""
        else:
            await response.aread()
    finally:
        await response.aclose()
        api.cookies.clear()
    return response


async def refresh_markers(world: World) -> None:
    """Everything of organisation A's that B may not see, as it stands now (the calls above
    made more: patients, devices, gateways, alerts): ids, identity numbers, names, serials."""
    async with session_factory(world.engine)() as session:
        only_a = set(await session.scalars(visible_patient_ids(world.org_a, today()))) - set(
            await session.scalars(visible_patient_ids(world.org_b, today()))
        )
        org_a = select(Organisation.id).where(Organisation.orgnr == world.org_a).scalar_subquery()
        found: set[Any] = set(only_a)
        for number, name in await session.execute(
            select(Patient.identifier, Patient.name).where(Patient.id.in_(only_a))
        ):
            found |= {number} | ({name} if name != "Test Pasient" else set())  # the fixtures' name is everyone's
        for device_id, serial in await session.execute(
            select(Device.id, Device.serial).where(Device.organisation_id == org_a)
        ):
            found |= {device_id, serial}
        found |= set(await session.scalars(select(Gateway.id).where(Gateway.organisation_id == org_a)))
        found |= set(await session.scalars(select(Alert.id).where(Alert.patient_id.in_(only_a))))
        found |= set(await session.scalars(select(Observation.id).where(Observation.patient_id.in_(only_a))))
    world.markers = {str(marker) for marker in found} | set(world.ids.values()) - {
        world.ids["b_gateway"],
        world.ids["b_serial"],
    }


def a_data(world: World, response: httpx.Response) -> set[str]:
    """Organisation A's identifiers in a response, asked for or not: A's own staff should see some."""
    return {marker for marker in world.markers if marker in response.text}


def leaks(world: World, call: Call, response: httpx.Response) -> set[str]:
    """A's identifiers in the response that the request did not itself carry."""
    asked = json.dumps([call.path, call.params, call.json, call.data], default=str)
    shown = response.text + json.dumps(dict(response.headers))
    return {marker for marker in world.markers if marker in shown and marker not in asked}


# -- the matrix ---------------------------------------------------------------------------------


def test_every_route_has_a_row(matrix_settings: Settings):
    routes = app_routes(matrix_settings)
    assert sorted(routes - set(MATRIX)) == [], "routes without a row in MATRIX: add them"
    assert sorted(set(MATRIX) - routes) == [], "rows of MATRIX for routes the app no longer has"
    assert all(len(expected) == len(CALLERS) for expected in MATRIX.values())


@pytest.mark.parametrize("key", list(MATRIX))
async def test_the_route_answers_each_caller_as_the_matrix_says(api, world, page_sessions, key):
    expected = dict(zip(CALLERS, MATRIX[key], strict=True))
    await refresh_markers(world)
    got: dict[str, int] = {}
    leaked: dict[str, set[str]] = {}
    for caller in CALLERS:
        call = await build(key, world, caller)
        if call.path.startswith(NOT_PAGES):
            headers = api_headers(world, caller)
        else:
            headers = await page_credentials(api, world, caller, page_sessions, fresh=key in ENDS_SESSION)
        response = await send(api, call, headers)
        got[caller] = response.status_code
        if caller in OUTSIDERS and (found := leaks(world, call, response)):
            leaked[caller] = found
        if response.status_code == 401 and call.path.startswith(("/api/", "/fhir")):
            assert response.headers["www-authenticate"].startswith("Bearer"), (key, caller)
        signs_in = MATRIX[key][CALLERS.index("admin")] != 303  # the route itself redirects everyone
        if response.status_code == 303 and signs_in and caller in ("none", "expired", "audience"):
            assert response.headers["location"].startswith("/login"), (key, caller, response.headers["location"])
    wrong = {
        caller: f"{got[caller]} (expected {expected[caller]})" for caller in CALLERS if got[caller] != expected[caller]
    }
    assert wrong == {}, key
    assert leaked == {}, f"{key}: organisation A's data reached outsiders"


# -- the indirect ways: filters, cursors, streams, FHIR search ----------------------------------


def outsider_headers(world: World) -> dict[str, dict[str, str]]:
    return {caller: api_headers(world, caller) for caller in ("b_nurse", "b_admin")}


def shown_markers(world: World, response: httpx.Response, asked: Any) -> set[str]:
    return leaks(world, Call("GET", "", params=asked), response)


async def test_list_filters_and_fhir_search_show_outsiders_nothing(api, world, page_sessions):
    """Each filter that names A's patient, organisation, device or gateway: A's own staff see
    A's data through it (so the query works), B's staff see none of it."""
    await refresh_markers(world)
    ids, a = world.ids, world.org_a
    a_nurse, a_admin = api_headers(world, "nurse"), api_headers(world, "admin")
    searches: list[tuple[str, dict[str, Any], dict[str, str]]] = [
        ("/api/v1/patients", {"organisation": a}, a_nurse),
        ("/api/v1/patients", {"sort": "name", "limit": 500}, a_nurse),
        ("/api/v1/alerts", {"patient": ids["patient_id"]}, a_nurse),
        ("/api/v1/alerts", {"organisation": a, "status": "open,acknowledged,resolved"}, a_nurse),
        ("/api/v1/devices", {"patient": ids["patient_id"]}, a_nurse),
        ("/api/v1/devices", {"type": "spo2", "limit": 500}, a_nurse),
        ("/api/v1/gateways", {"limit": 500}, a_nurse),
        ("/api/v1/rejected", {"serial": ids["spare"], "include_reprocessed": "true"}, a_nurse),
        ("/api/v1/rejected", {"gateway": ids["gateway"], "include_reprocessed": "true"}, a_nurse),
        ("/api/v1/audit", {"patient": ids["patient_id"]}, a_admin),
        ("/api/v1/audit", {"limit": 500}, a_admin),
        ("/fhir/Observation", {"code": "http://loinc.org|59408-5", "_count": 500}, a_nurse),
        ("/fhir/Observation", {"subject": f"Patient/{ids['patient_id']}"}, a_nurse),
        ("/fhir/Patient", {"identifier": ids["identifier"]}, a_nurse),
        ("/fhir/Patient", {"identifier": f"urn:oid:2.16.578.1.12.4.1.4.1|{ids['identifier']}"}, a_nurse),
        ("/fhir/Device", {"patient": f"Patient/{ids['patient_id']}"}, a_nurse),
    ]
    checked = 0
    for path, params, own in searches:
        mine = await api.get(path, params=params, headers=own)
        assert mine.status_code == 200 and a_data(world, mine), (path, params, "A sees its own data")
        for caller, headers in outsider_headers(world).items():
            theirs = await api.get(path, params=params, headers=headers)
            assert theirs.status_code in (200, 403, 404), (path, params, caller, theirs.text)
            assert shown_markers(world, theirs, params) == set(), (path, params, caller)
            checked += 1
    # The page's filters and searches, signed in as B's staff.
    for caller in ("b_nurse", "b_admin"):
        cookie = await page_credentials(api, world, caller, page_sessions, fresh=False)
        for path, params in [
            ("/", {"organisation": a}),
            ("/worklist/rows", {"organisation": a}),
            ("/admin/patients/choices", {"q": ids["name"]}),
            ("/admin/patients/choices", {"q": ids["identifier"]}),
            ("/admin/devices", {"q": ids["name"], "serial": ids["serial"]}),
            ("/admin/rejected", {"serial": ids["spare"], "include_reprocessed": "true"}),
        ]:
            r = await api.get(path, params=params, headers=cookie)
            assert r.status_code in (200, 403), (path, caller)
            assert shown_markers(world, r, params) == set(), (path, params, caller)
            checked += 1
    assert checked == 2 * len(searches) + 12


def size(path: str) -> str:
    return "_count" if path.startswith("/fhir") else "limit"


async def first_page(api: httpx.AsyncClient, path: str, params: dict[str, Any], headers: dict[str, str]) -> str:
    """The cursor to A's second page of a list (limit 1)."""
    r = await api.get(path, params=params | {size(path): 1}, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    if path.startswith("/fhir"):
        (link,) = [entry["url"] for entry in body["link"] if entry["relation"] == "next"]
        return httpx.URL(link).params["_cursor"]
    assert body["next"], (path, "A's list has a second page")
    return str(body["next"])


async def test_a_cursor_from_another_organisations_list_shows_nothing_of_it(api, world):
    """B takes the cursors A's lists gave out (a position, say the name of the patient it
    stopped at) and follows them: B's own items after that position, never A's."""
    ids = world.ids
    a_admin, b_admin = api_headers(world, "admin"), api_headers(world, "b_admin")
    # Two rejections that belong to A through its gateway (devices no one registered).
    await ingest(world, ids["gateway"], [spo2(unique("MX-unknown"), 95), spo2(unique("MX-unknown"), 96)])
    await refresh_markers(world)
    lists: list[tuple[str, dict[str, Any]]] = [
        ("/api/v1/patients", {"sort": "name"}),
        ("/api/v1/patients", {"sort": "priority"}),
        ("/api/v1/alerts", {"status": "open,acknowledged,resolved"}),
        ("/api/v1/devices", {}),
        ("/api/v1/rejected", {"include_reprocessed": "true"}),
        ("/api/v1/audit", {}),
        (f"/api/v1/patients/{ids['patient_id']}/audit", {}),
        ("/fhir/Observation", {"code": "http://loinc.org|59408-5"}),
    ]
    for path, params in lists:
        cursor = await first_page(api, path, params, a_admin)
        name = "_cursor" if path.startswith("/fhir") else "cursor"
        own = await api.get(path, params=params | {name: cursor, size(path): 1}, headers=a_admin)
        assert own.status_code == 200 and a_data(world, own), (path, "A follows its own cursor")
        theirs = await api.get(path, params=params | {name: cursor, size(path): 500}, headers=b_admin)
        assert theirs.status_code in (200, 404, 422), (path, theirs.text)
        assert shown_markers(world, theirs, params | {name: cursor}) == set(), (path, "B with A's cursor")
    # Gateways: A registers a second, so its list has a second page.
    r = await api.post("/api/v1/gateways", headers=a_admin, json={"id": unique("gw-a2"), "name": "Nettbrett 2"})
    assert r.status_code == 201
    cursor = await first_page(api, "/api/v1/gateways", {}, a_admin)
    theirs = await api.get("/api/v1/gateways", params={"cursor": cursor}, headers=b_admin)
    assert theirs.status_code == 200 and shown_markers(world, theirs, {"cursor": cursor}) == set()


class Listener:
    """An open event stream, read in the background into (id, event, data) triples."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.events: list[tuple[int, str, str]] = []
        self.connected = asyncio.Event()
        self.changed = asyncio.Event()

    async def read(self) -> None:
        event: dict[str, str] = {}
        async for line in self.response.aiter_lines():
            if line.startswith(": connected"):
                self.connected.set()
            elif line == "":
                if "data" in event:
                    self.events.append((int(event["id"]), event["event"], event["data"]))
                    self.changed.set()
                event = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                event[name] = value

    async def until(self, done: Callable[[list[tuple[int, str, str]]], bool], seconds: float = 30) -> None:
        async with asyncio.timeout(seconds):
            while not done(self.events):
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def listening(api: httpx.AsyncClient, path: str, headers: dict[str, str]) -> AsyncIterator[Listener]:
    async with api.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, path
        listener = Listener(response)
        task = asyncio.create_task(listener.read())
        try:
            async with asyncio.timeout(30):
                await listener.connected.wait()
            yield listener
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await task


async def new_patient_with_alert(world: World, orgnr: str) -> tuple[str, str]:
    """A patient of `orgnr` with a device, and a red reading that opens an alert (committed)."""
    async with session_factory(world.engine)() as session, session.begin():
        patient_id, (device,) = await add_patient_with_devices(session, orgnr, ["spo2"], conditions=["copd"])
    gateway = world.ids["gateway"] if orgnr == world.org_a else world.ids["b_gateway"]
    await ingest(world, gateway, [spo2(device.serial, 83)])
    return str(patient_id), device.serial


async def test_streams_carry_no_event_of_another_organisation(api, world, page_sessions):
    """The API's alert stream and the page's nudges: A's alert reaches A's streams and not B's.
    B's own alert, opened after A's, reaches B: by then A's would have too, had it leaked (the
    hub hands events out in order). A stream that resumes from before A's event (Last-Event-ID,
    read from the database) gets B's event and not A's."""
    a_nurse, b_nurse = api_headers(world, "nurse"), api_headers(world, "b_nurse")
    b_page = await page_credentials(api, world, "b_nurse", page_sessions, fresh=False)
    a_page = await page_credentials(api, world, "nurse", page_sessions, fresh=False)
    async with (
        listening(api, "/api/v1/alerts/stream", a_nurse) as a_stream,
        listening(api, "/api/v1/alerts/stream", b_nurse) as b_stream,
        listening(api, "/events", a_page) as a_nudges,
        listening(api, "/events", b_page) as b_nudges,
    ):
        a_patient, _ = await new_patient_with_alert(world, world.org_a)
        await a_stream.until(lambda events: any(json.loads(d)["patient"] == a_patient for _, _, d in events))
        b_patient, _ = await new_patient_with_alert(world, world.org_b)
        await b_stream.until(lambda events: any(json.loads(d)["patient"] == b_patient for _, _, d in events))
        a_ids = {i for i, _, d in a_stream.events if json.loads(d)["patient"] == a_patient}
        b_ids = {i for i, _, d in b_stream.events if json.loads(d)["patient"] == b_patient}
        await a_nudges.until(lambda events: a_ids <= {i for i, _, _ in events})
        await b_nudges.until(lambda events: b_ids <= {i for i, _, _ in events})
    assert {json.loads(d)["patient"] for _, _, d in b_stream.events} <= {b_patient, world.b_patient}
    assert not {i for i, _, _ in b_nudges.events} & a_ids
    assert not {i for i, _, _ in a_nudges.events} & b_ids
    assert a_patient not in json.dumps(b_stream.events) and a_patient not in json.dumps(b_nudges.events)

    # Resuming from before A's event: the backlog comes from the database, filtered the same way.
    resume = {**b_nurse, "Last-Event-ID": str(min(a_ids) - 1)}
    async with listening(api, "/api/v1/alerts/stream", resume) as resumed:
        await resumed.until(lambda events: b_ids <= {i for i, _, _ in events})
    assert not {i for i, _, _ in resumed.events} & a_ids
    assert {json.loads(d)["patient"] for _, _, d in resumed.events} <= {b_patient, world.b_patient}
