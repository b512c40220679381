"""The administration pages over ASGI: the identity number check as the admin types, enrolment
(redirect on success, errors next to the fields with the form kept), devices registered and
assigned, gateways registered (a duplicate said so), rejected readings listed, filtered, paged
and reprocessed; only admins get in, and every change needs the CSRF token.

Each test signs in through the development form as the admin of a fresh organisation, so the
lists it reads are exactly its own; the data lives in the test's rolled-back transaction.
"""

from __future__ import annotations

import html
import importlib
import pkgutil
import re
import uuid
from datetime import UTC, date, datetime

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select

from rpm.api.web import pages
from rpm.api.web.texts import admin as admin_texts
from rpm.audit.models import AuditRecord
from rpm.devices.models import Device, DeviceAssignment
from rpm.gateways.models import Gateway
from rpm.organisations.repository import by_orgnr
from rpm.patients import repository as patients_repository
from rpm.patients.models import Patient
from tests.api.helpers import ingest, message, new_organisation, observations_of, reading, unique
from tests.conftest import ORG_B
from tests.fixtures.identity import fresh_identity, make_identity_number

NB = admin_texts.NB
TAKEN = "2026-11-20T08:00:00+01:00"  # when the readings were taken (assignments start 2026-11-01)


def identity(born: date, *, d_number: bool = False) -> str:
    # Individual numbers 000-499 are births of the 1900s, 500-749 of the 2000s (before 2040).
    for individual in range(100, 500) if born.year < 2000 else range(500, 750):
        number = make_identity_number(born, individual, d_number=d_number)
        if number is not None:
            return number
    raise AssertionError("no identity number for that date")


async def sign_in(client: httpx.AsyncClient, org: str, *roles: str, sub: str = "admin-1") -> str:
    """Signs in; returns the session's CSRF token (from a page's hidden field)."""
    r = await client.post(
        "/login/development", data={"organisation": org, "roles": list(roles or ("admin",)), "sub": sub}
    )
    assert r.status_code == 303, r.text
    r = await client.get("/")
    found = re.search(r'name="csrf_token" value="([^"]+)"', r.text)
    assert found, "no CSRF token on the page"
    return found.group(1)


@pytest.fixture
async def admin(client, session) -> tuple[str, str]:
    """(organisation number, CSRF token) of an admin signed in to a fresh organisation."""
    org = await new_organisation(session)
    return org, await sign_in(client, org)


def text_of(page: str) -> str:
    """The page's text, unescaped and with runs of space as one: what a reader sees."""
    spaced = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))
    return re.sub(r" ([:.,])", r"\1", spaced)


def enrol_form(token: str, number: str, born: date, **changes: object) -> dict[str, object]:
    form: dict[str, object] = {
        "csrf_token": token,
        "identifier": number,
        "name": "Kari Nordmann",
        "birth_date": born.isoformat(),
        "conditions": ["copd", "heart-failure"],
        "own_from": "2026-11-01",
        "care_organisation": [""],
        "care_from": ["2026-11-01"],
        "plan": ["spo2", "body-weight"],
        **{f"every_{t}": "24" for t in ("spo2", "body-weight", "heart-rate")},
    }
    form.update(changes)
    return form


async def enrolled(client: httpx.AsyncClient, token: str, name: str = "Kari Nordmann") -> uuid.UUID:
    number, born = fresh_identity()
    r = await client.post("/admin/patients", data=enrol_form(token, number, born, name=name))
    assert r.status_code == 303, r.text
    return uuid.UUID(r.headers["location"].removeprefix("/patients/"))


# -- the identity number check ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "says"),
    [
        (identity(date(1985, 3, 12)), [NB["admin.identity.valid_fnr"], "12.03.1985"]),
        (identity(date(1985, 3, 12), d_number=True), [NB["admin.identity.valid_dnr"], "12.03.1985"]),
        (identity(date(2004, 2, 29))[:6] + " " + identity(date(2004, 2, 29))[6:], ["29.02.2004"]),
    ],
)
async def test_the_identity_check_says_valid_with_the_birth_date_and_fills_it_in(client, admin, number, says):
    _, token = admin
    r = await client.post("/admin/patients/identity", data={"identifier": number}, headers={"X-CSRF-Token": token})
    assert r.status_code == 200, r.text
    for words in says:
        assert words in text_of(r.text)
    born = datetime.strptime(says[-1], "%d.%m.%Y").date()
    # The birth date field, swapped in out of band with the date the number implies.
    field = re.search(r"<input[^>]*id=\"birth_date\"[^>]*>", r.text)
    assert field and 'hx-swap-oob="true"' in field.group(0) and f'value="{born.isoformat()}"' in field.group(0)


def wrong_check_digit(number: str) -> str:
    return number[:10] + str((int(number[10]) + 1) % 10)


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("12038", "admin.identity.length"),
        ("1203851234a", "admin.identity.length"),
        (wrong_check_digit(identity(date(1985, 3, 12))), "admin.identity.check_second"),
        (wrong_check_digit(identity(date(1985, 3, 12), d_number=True)), "admin.identity.check_second"),
        ("31028512345", "admin.identity.date"),
        ("12038575012", "admin.identity.individual"),
    ],
)
async def test_the_identity_check_says_why_a_number_is_not_valid(client, admin, number, reason):
    _, token = admin
    r = await client.post("/admin/patients/identity", data={"identifier": number}, headers={"X-CSRF-Token": token})
    assert r.status_code == 200
    assert f"{NB['admin.identity.not_valid']} {NB[reason]}" in text_of(r.text)
    assert "birth_date" not in r.text


async def test_the_identity_check_answers_nothing_for_nothing_and_the_first_check_digit(client, admin):
    _, token = admin
    r = await client.post("/admin/patients/identity", data={"identifier": " "}, headers={"X-CSRF-Token": token})
    assert r.status_code == 200 and text_of(r.text).strip() == ""
    number = identity(date(1985, 3, 12))
    first_wrong = number[:9] + str((int(number[9]) + 1) % 10) + number[10]
    r = await client.post("/admin/patients/identity", data={"identifier": first_wrong}, headers={"X-CSRF-Token": token})
    reasons = {NB["admin.identity.check_first"], NB["admin.identity.check_second"]}
    assert any(reason in text_of(r.text) for reason in reasons)


async def test_the_form_checks_the_number_with_htmx_on_the_server(client, admin):
    r = await client.get("/admin/patients/new")
    assert r.status_code == 200
    field = re.search(r"<input id=\"identifier\"[^>]*>", r.text, re.S)
    assert field, r.text
    assert 'hx-post="/admin/patients/identity"' in field.group(0)
    assert 'hx-trigger="input changed delay:300ms"' in field.group(0)
    assert 'role="status"' in r.text and 'id="identifier-check"' in r.text


# -- enrolment --------------------------------------------------------------------------------


async def test_enrolment_redirects_to_the_new_patients_page(client, admin, session):
    org, token = admin
    number, born = fresh_identity()
    page = await client.get("/admin/patients/new")
    assert org in page.text and 'name="own_from"' in page.text
    form = enrol_form(token, number, born, care_organisation=["", ORG_B], care_from=["", "2026-11-15"])
    form["every_spo2"] = "12"
    r = await client.post("/admin/patients", data=form)
    assert r.status_code == 303, text_of(r.text)
    patient_id = uuid.UUID(r.headers["location"].removeprefix("/patients/"))
    patient = await session.scalar(select(Patient).where(Patient.id == patient_id))
    assert patient is not None and (patient.identifier, patient.name, patient.birth_date) == (
        number,
        "Kari Nordmann",
        born,
    )
    assert patient.conditions == ["copd", "heart-failure"]
    # The care team and the plan as given.
    stored = await patients_repository.full(session, patient_id)
    assert stored is not None
    assert sorted((m.organisation.orgnr, m.period_from.isoformat()) for m in stored.care_team) == sorted(
        [(org, "2026-11-01"), (ORG_B, "2026-11-15")]
    )
    assert {(p.reading_type, p.every_hours) for p in stored.measurement_plan} == {("spo2", 12), ("body-weight", 24)}
    audit = await session.scalars(
        select(AuditRecord).where(AuditRecord.patient_id == patient_id, AuditRecord.action == "create")
    )
    assert [(a.actor_org, a.actor_sub, a.resource_type) for a in audit] == [(org, "admin-1", "Patient")]


async def test_the_birth_date_comes_from_the_identity_number_when_left_empty(client, admin, session):
    _, token = admin
    number, born = fresh_identity()
    number = make_identity_number(born, int(number[6:9]), d_number=True) or number  # a D-number where one exists
    r = await client.post("/admin/patients", data=enrol_form(token, number, born, birth_date=""))
    assert r.status_code == 303, text_of(r.text)
    patient = await session.scalar(select(Patient).where(Patient.identifier == number))
    assert patient is not None and patient.birth_date == born
    assert patient.identifier_system.endswith("4.1" if int(number[0]) < 4 else "4.2")


async def test_enrolment_errors_are_shown_next_to_the_fields_with_the_form_kept(client, admin, session):
    _, token = admin
    number, born = fresh_identity()
    form = enrol_form(token, wrong_check_digit(number), born, name="Ola Normann", every_spo2="0")
    form["plan"] = ["spo2", "heart-rate"]
    r = await client.post("/admin/patients", data=form)
    assert r.status_code == 422
    seen = text_of(r.text)
    assert NB["admin.error.summary"] in seen
    assert NB["admin.identity.check_second"] in seen
    assert 'id="identifier-error"' in r.text and 'aria-invalid="true"' in r.text
    # Kept as typed: the number, the name, the conditions and the plan.
    assert f'value="{wrong_check_digit(number)}"' in r.text and 'value="Ola Normann"' in r.text
    assert re.search(r'value="copd" checked', r.text) and not re.search(r'value="diabetes" checked', r.text)
    assert re.search(r'value="heart-rate" checked', r.text) and not re.search(r'value="blood-glucose" checked', r.text)
    assert await session.scalar(select(Patient).where(Patient.name == "Ola Normann")) is None

    # A valid number, but a plan of every 0 hours; no name; a birth date that does not match.
    form = enrol_form(token, number, born, every_spo2="0")
    form["plan"] = ["spo2"]
    r = await client.post("/admin/patients", data=form)
    assert r.status_code == 422
    assert 'id="plan_spo2-error"' in r.text and NB["admin.error.every_hours"] in text_of(r.text)
    other_day = born.replace(day=born.day % 28 + 1)  # fresh_identity's days are 1-28
    form = enrol_form(token, number, born, name="")
    r = await client.post("/admin/patients", data=form)
    assert r.status_code == 422
    assert 'id="name-error"' in r.text and NB["admin.error.required"] in text_of(r.text)
    r = await client.post("/admin/patients", data=enrol_form(token, number, other_day))
    assert r.status_code == 422 and NB["admin.error.birth_date_mismatch"] in text_of(r.text)
    assert 'id="birth_date-error"' in r.text


async def test_enrolment_refused_by_the_service_keeps_the_form_and_stores_nothing(client, admin, session):
    _, token = admin
    number, born = fresh_identity()
    # An organisation number nobody registered: the service refuses it after adding the patient,
    # and the page must not keep that half of the enrolment.
    form = enrol_form(token, number, born, name="Per Halvveis", care_organisation=["123456789"])
    r = await client.post("/admin/patients", data=form)
    assert r.status_code == 422, text_of(r.text)
    assert NB["admin.error.unknown_organisation"] in text_of(r.text)
    assert 'value="Per Halvveis"' in r.text
    assert await session.scalar(select(Patient).where(Patient.identifier == number)) is None

    # The same number twice: the second is a conflict, said next to the number.
    assert (await client.post("/admin/patients", data=enrol_form(token, number, born))).status_code == 303
    r = await client.post("/admin/patients", data=enrol_form(token, number, born, name="Kari Igjen"))
    assert r.status_code == 409
    assert NB["admin.error.patient_exists"] in text_of(r.text) and 'value="Kari Igjen"' in r.text


# -- devices ----------------------------------------------------------------------------------


async def test_a_device_is_registered_assigned_and_listed(client, admin, session):
    _, token = admin
    serial = unique("SC")
    r = await client.post(
        "/admin/devices",
        data={"csrf_token": token, "serial": serial, "type": "body-weight", "manufacturer": "A&D", "model": ""},
    )
    assert r.status_code == 303 and r.headers["location"] == f"/admin/devices?registered={serial}"
    page = await client.get(r.headers["location"])
    seen = text_of(page.text)
    assert f"{NB['admin.devices.registered']}: {serial}" in seen
    assert re.search(rf'id="assign_serial" name="serial" value="{serial}"', page.text)
    assert NB["admin.devices.unassigned"] in seen and "A&D" in seen
    device = await session.scalar(select(Device).where(Device.serial == serial))
    assert device is not None and device.type == "body-weight" and device.model is None

    r = await client.post("/admin/devices", data={"csrf_token": token, "serial": serial, "type": "spo2"})
    assert r.status_code == 409 and NB["admin.error.device_exists"] in text_of(r.text)
    assert f'value="{serial}"' in r.text
    r = await client.post("/admin/devices", data={"csrf_token": token, "serial": "", "type": "no-such-type"})
    assert r.status_code == 422 and 'id="serial-error"' in r.text and 'id="type-error"' in r.text

    patient = await enrolled(client, token, name="Berit Vektmåler")
    # The patient is found by a part of the name, and by the identity number.
    choices = await client.get("/admin/patients/choices", params={"q": "vektmål"})
    assert f'value="{patient}"' in choices.text and "hx-swap-oob" in choices.text
    assert "Berit Vektmåler" in choices.text
    none = await client.get("/admin/patients/choices", params={"q": "ingen slik"})
    assert NB["admin.devices.no_match"] in text_of(none.text)
    by_search_page = await client.get("/admin/devices", params={"q": "Berit", "serial": serial})
    assert f'value="{patient}"' in by_search_page.text

    form = {"csrf_token": token, "serial": serial, "patient": str(patient), "from": "2026-11-01T08:00"}
    r = await client.post("/admin/devices/assignment", data=form)
    assert r.status_code == 303, text_of(r.text)
    assignment = await session.scalar(select(DeviceAssignment).where(DeviceAssignment.device_id == device.id))
    assert assignment is not None and assignment.patient_id == patient
    assert assignment.valid_from == datetime(2026, 11, 1, 7, 0, tzinfo=UTC)  # 08:00 in Oslo, winter time
    listed = text_of((await client.get("/admin/devices")).text)
    assert "Berit Vektmåler" in listed and "01.11.2026 08:00" in listed

    # Refusals: the same start again, an unknown serial, no patient, no time.
    r = await client.post("/admin/devices/assignment", data=form)
    assert r.status_code == 409 and NB["admin.error.assignment_conflict"] in text_of(r.text)
    assert f'value="{patient}" selected' in r.text  # the chosen patient is kept
    r = await client.post("/admin/devices/assignment", data=form | {"serial": unique("NOSUCH")})
    assert r.status_code == 404 and NB["admin.error.no_device"] in text_of(r.text)
    r = await client.post("/admin/devices/assignment", data=form | {"patient": str(uuid.uuid4())})
    assert r.status_code == 404 and NB["admin.error.no_patient"] in text_of(r.text)
    r = await client.post("/admin/devices/assignment", data=form | {"patient": "", "from": "1.11.2026"})
    assert r.status_code == 422
    assert NB["admin.error.choose_patient"] in text_of(r.text) and NB["admin.error.date_time"] in text_of(r.text)


async def test_the_device_list_loads_more_by_cursor(client, admin, session):
    org, _ = admin
    serials = sorted(unique(f"PG{n:02d}") for n in range(53))
    organisation_id = await _org_id(session, org)
    for serial in serials:
        session.add(Device(serial=serial, type="spo2", organisation_id=organisation_id))
    await session.flush()
    page = await client.get("/admin/devices")
    first = re.findall(r'<span class="serial">([^<]+)</span>', page.text)
    assert first == serials[:50]
    more = re.search(r'hx-get="(/admin/devices/rows\?cursor=[^"]+)"', page.text)
    assert more
    rest = await client.get(html.unescape(more.group(1)))
    assert re.findall(r'<span class="serial">([^<]+)</span>', rest.text) == serials[50:]
    assert "hx-get" not in rest.text


async def _org_id(session, orgnr: str) -> uuid.UUID:
    organisation = await by_orgnr(session, orgnr)
    assert organisation is not None
    return organisation.id


# -- gateways ---------------------------------------------------------------------------------


async def test_a_gateway_is_registered_and_a_duplicate_is_said_so(client, admin, session):
    _, token = admin
    hub = unique("hub")
    r = await client.post("/admin/gateways", data={"csrf_token": token, "id": hub, "name": "Nettbrett stue"})
    assert r.status_code == 303 and r.headers["location"] == f"/admin/gateways?registered={hub}"
    seen = text_of((await client.get(r.headers["location"])).text)
    assert f"{NB['admin.gateways.registered']}: {hub}" in seen
    assert "Nettbrett stue" in seen and NB["admin.gateways.status_unknown"] in seen
    gateway = await session.scalar(select(Gateway).where(Gateway.id == hub))
    assert gateway is not None and gateway.registered_by == "admin-1"

    r = await client.post("/admin/gateways", data={"csrf_token": token, "id": hub, "name": "Igjen"})
    assert r.status_code == 409
    assert NB["admin.error.gateway_exists"] in text_of(r.text) and 'value="Igjen"' in r.text
    r = await client.post("/admin/gateways", data={"csrf_token": token, "id": "no spaces!", "name": ""})
    assert r.status_code == 422
    assert NB["admin.gateways.id_rule"] in text_of(r.text) and 'id="name-error"' in r.text

    # Another organisation's admin does not see it.
    other = await new_organisation(session)
    await sign_in(client, other)
    assert hub not in (await client.get("/admin/gateways")).text


# -- rejected readings ------------------------------------------------------------------------


async def test_rejected_readings_are_listed_filtered_and_reprocessed(client, admin, session):
    org, token = admin
    hub = unique("hub")
    assert (await client.post("/admin/gateways", data={"csrf_token": token, "id": hub, "name": "t"})).status_code == 303
    serial = unique("LATE")
    [outcome] = await ingest(session, message([reading(serial, TAKEN, value=80.5)], hub))
    assert outcome.results[0]["reason"] == "unknown_device"
    await ingest(session, message({"not": "a reading list"}, hub))

    page = await client.get("/admin/rejected")
    seen = text_of(page.text)
    assert serial in seen and hub in seen and NB["admin.reason.unknown_device"] in seen
    assert NB["admin.reason.schema"] in seen
    assert "<details>" in page.text and "&#34;serial&#34;" in page.text  # the raw payload, escaped
    # Each open reading of a device has the button that reprocesses that device.
    assert re.search(rf'action="/admin/rejected/reprocess".*?name="serial" value="{serial}"', page.text, re.S)
    # Newest first: the malformed message came last.
    assert seen.index(NB["admin.reason.schema"]) < seen.index(NB["admin.reason.unknown_device"])

    # Filters.
    only = text_of((await client.get("/admin/rejected", params={"reason": "unknown_device"})).text)
    assert serial in only and NB["admin.reason.schema"] + " " not in only.split(NB["admin.rejected.list"])[-1]
    assert serial not in text_of((await client.get("/admin/rejected", params={"serial": "other"})).text)
    assert serial in text_of((await client.get("/admin/rejected", params={"gateway": hub})).text)
    assert serial not in text_of((await client.get("/admin/rejected", params={"gateway": "elsewhere"})).text)
    assert (await client.get("/admin/rejected", params={"reason": "no_such_reason"})).status_code == 422

    # Reprocessing a device nobody registered sends the admin to register it.
    r = await client.post("/admin/rejected/reprocess", data={"csrf_token": token, "serial": serial})
    assert r.status_code == 303 and "unknown=" in r.headers["location"]
    told = await client.get(r.headers["location"])
    assert NB["admin.rejected.unknown_device"] in text_of(told.text)
    assert f"/admin/devices?serial={serial}" in told.text

    # Register, assign, reprocess: the reading is stored for the patient.
    form = {"csrf_token": token, "serial": serial, "type": "body-weight"}
    assert (await client.post("/admin/devices", data=form)).status_code == 303
    patient = await enrolled(client, token)
    form = {"csrf_token": token, "serial": serial, "patient": str(patient), "from": "2026-11-01T00:00"}
    assert (await client.post("/admin/devices/assignment", data=form)).status_code == 303
    r = await client.post(
        "/admin/rejected/reprocess", data={"csrf_token": token, "serial": serial, "reason": "unknown_device"}
    )
    assert r.status_code == 303
    assert "reason=unknown_device" in r.headers["location"] and "accepted=1" in r.headers["location"]
    done = text_of((await client.get(r.headers["location"])).text)
    assert f"{NB['admin.rejected.reprocessed']} {serial}: 1 {NB['admin.rejected.accepted']}" in done
    assert [o.value for o in await observations_of(session, str(patient))] == [80.5]
    # Reprocessed readings leave the list, unless asked for.
    assert serial not in text_of((await client.get("/admin/rejected")).text)
    with_done = text_of((await client.get("/admin/rejected", params={"include_reprocessed": "true"})).text)
    assert serial in with_done and NB["admin.rejected.reprocessed_at"] in with_done
    audit = await session.scalars(
        select(AuditRecord).where(AuditRecord.patient_id == patient, AuditRecord.action == "reprocess")
    )
    assert [a.actor_org for a in audit] == [org]


async def test_the_rejected_list_loads_more_by_cursor(client, admin, session):
    _, token = admin
    hub = unique("hub")
    assert (await client.post("/admin/gateways", data={"csrf_token": token, "id": hub, "name": "t"})).status_code == 303
    ids = [f"r-{n:02d}" for n in range(55)]
    await ingest(session, message([reading(unique("NOSUCH"), TAKEN, reading_id=i) for i in ids], hub))
    page = await client.get("/admin/rejected")
    first = set(re.findall(r"r-\d\d", text_of(page.text)))
    more = re.search(r'hx-get="(/admin/rejected/rows\?[^"]+)"', page.text)
    assert more and len(first) == 50
    rest = await client.get(html.unescape(more.group(1)))
    assert rest.status_code == 200
    second = set(re.findall(r"r-\d\d", text_of(rest.text)))
    assert len(second) == 5 and not second & first and second | first == set(ids)
    assert "hx-get" not in rest.text


# -- who may ----------------------------------------------------------------------------------

GETS = [
    "/admin",
    "/admin/patients/new",
    "/admin/patients/new/care-team-row",
    "/admin/patients/choices?q=a",
    "/admin/devices",
    "/admin/devices/rows",
    "/admin/gateways",
    "/admin/gateways/rows",
    "/admin/rejected",
    "/admin/rejected/rows",
]
POSTS = {
    "/admin/patients/identity": {"identifier": "12038512345"},
    "/admin/patients": {"identifier": "12038512345", "name": "X"},
    "/admin/devices": {"serial": "S-1", "type": "spo2"},
    "/admin/devices/assignment": {"serial": "S-1", "patient": str(uuid.uuid4()), "from": "2026-11-01T08:00"},
    "/admin/gateways": {"id": "gw-nurse", "name": "x"},
    "/admin/rejected/reprocess": {"serial": "S-1"},
}


def test_every_admin_route_is_checked_below():
    routes = set()
    for found in pkgutil.iter_modules(pages.__path__):
        router = importlib.import_module(f"{pages.__name__}.{found.name}").router
        routes |= {
            (method, route.path)
            for route in router.routes
            if isinstance(route, APIRoute) and route.path.startswith("/admin")
            for method in route.methods
        }
    tested = {("GET", path.split("?")[0]) for path in GETS} | {("POST", path) for path in POSTS}
    assert routes == tested


async def test_a_nurse_gets_403_on_every_admin_route(client, session):
    org = await new_organisation(session)
    token = await sign_in(client, org, "nurse", "physician", sub="nurse-1")
    for path in GETS:
        r = await client.get(path)
        assert r.status_code == 403, path
        assert "error.forbidden" not in r.text and "Du har ikke tilgang" in r.text
    for path, data in POSTS.items():
        r = await client.post(path, data={"csrf_token": token, **data})
        assert r.status_code == 403, path
    # The menu shows no administration either.
    assert 'href="/admin"' not in (await client.get("/")).text


async def test_a_change_without_the_csrf_token_is_403(client, admin, session):
    for path, data in POSTS.items():
        r = await client.post(path, data=data)
        assert r.status_code == 403, path
        r = await client.post(path, data={"csrf_token": "not-the-token", **data})
        assert r.status_code == 403, path
    assert await session.scalar(select(Gateway).where(Gateway.id == "gw-nurse")) is None
    assert await session.scalar(select(Device).where(Device.serial == "S-1")) is None


async def test_the_admin_pages_speak_english_too(client, admin):
    await client.get("/language", params={"to": "en"})
    for path in ("/admin", "/admin/patients/new", "/admin/devices", "/admin/gateways", "/admin/rejected"):
        r = await client.get(path)
        assert r.status_code == 200 and r.headers["content-language"] == "en"
        assert re.search(r"\badmin\.[a-z_]+\.", text_of(r.text)) is None, path  # no key left untranslated
    assert admin_texts.EN["admin.enrol.title"] in (await client.get("/admin/patients/new")).text


def test_norwegian_and_english_have_the_same_admin_texts():
    assert set(admin_texts.NB) == set(admin_texts.EN)
