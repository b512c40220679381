"""The complete FHIR R4 facade (issue 7, item 7).

Proves that `/fhir/metadata` states exactly the interactions and search parameters the app
implements (derived from the route table and `api.fhir.search.RESOURCES`); that every listed
parameter works and every other one is refused; Patient by both identifier systems; Device read
and search by patient; Observation search by patient, code, category, date (each prefix, on
times and on Norwegian days), `_count` and `_sort`; keyset `next` links that give every
Observation exactly once, newest first, while readings arrive between pages (for one patient
and across an organisation); OperationOutcome errors; refusal for another organisation; and
the audit records of searches and reads. Every resource returned is validated with
`fhir.resources` (tests/api/fhir_checks.py).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.api.app import create_app
from rpm.api.fhir.search import RESOURCES
from rpm.audit.models import AuditRecord
from rpm.config import Settings
from rpm.observations.models import Observation
from tests.api.fhir_checks import FHIR_JSON, fhir_json, link, operation_outcome, validate_bundle, validate_resource
from tests.api.helpers import (
    DNR_SYSTEM,
    FNR_SYSTEM,
    LOINC,
    assign,
    enrol,
    ingest,
    message,
    new_organisation,
    reading,
    register,
    unique,
)
from tests.conftest import ORG_A, ORG_B, Tokens
from tests.fixtures.identity import make_identity_number

CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
UNITS = {
    "body-weight": "kg",
    "spo2": "%",
    "blood-glucose": "mmol/L",
    "peak-flow": "L/min",
    "heart-rate": "/min",
    "blood-pressure": "mm[Hg]",
}
VALUES: dict[str, Any] = {
    "body-weight": 81.4,
    "spo2": 95,
    "blood-glucose": 6.1,
    "peak-flow": 420,
    "heart-rate": 71,
    "blood-pressure": {"systolic": 128, "diastolic": 82},
}


def at(day: int, hour: int = 8, minute: int = 0) -> str:
    """A time in November 2026, in Norway (UTC+01:00 then)."""
    return f"2026-11-{day:02d}T{hour:02d}:{minute:02d}:00+01:00"


@dataclass
class Enrolled:
    """A patient enrolled through the API, with one assigned device per reading type."""

    id: str
    identifier: str
    serials: dict[str, str] = field(default_factory=dict)
    device_ids: dict[str, str] = field(default_factory=dict)


async def enrol_with_devices(
    client: httpx.AsyncClient, tokens: Tokens, org: str, *types: str, **overrides: Any
) -> Enrolled:
    admin = tokens(org, "admin")
    patient = await enrol(client, admin, org, **overrides)
    enrolled = Enrolled(patient["id"], patient["identifier"])
    for kind in types:
        device = await register(client, admin, type=kind)
        await assign(client, admin, device["serial"], patient["id"])
        enrolled.serials[kind] = device["serial"]
        enrolled.device_ids[kind] = device["id"]
    return enrolled


async def send(session: AsyncSession, patient: Enrolled, kind: str, time: str, *, label: str | None = None) -> str:
    """Store one reading of `kind` for the patient (kept within the test's transaction); its
    reading id (prefixed by `label`)."""
    reading_id = unique(label or "r")
    body = reading(patient.serials[kind], time, type=kind, value=VALUES[kind], unit=UNITS[kind], reading_id=reading_id)
    (outcome,) = await ingest(session, message([body]))
    assert [r["status"] for r in outcome.results] == ["accepted"], outcome.results
    # Release the test's savepoint, as a request would: a refused request rolls back to it.
    await session.commit()
    return reading_id


def reading_id_of(resource: dict[str, Any]) -> str:
    """The gateway's reading id, from the Observation's identifier `<gateway>/<reading id>`."""
    return resource["identifier"][0]["value"].split("/")[1]


async def search(
    client: httpx.AsyncClient, headers: dict[str, str], resource: str, params: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    bundle = fhir_json(await client.get(f"/fhir/{resource}", headers=headers, params=params))
    return bundle, validate_bundle(bundle)


async def audit_of(session: AsyncSession, request_id: str) -> list[AuditRecord]:
    rows = await session.scalars(
        select(AuditRecord).where(AuditRecord.request_id == request_id).order_by(AuditRecord.id)
    )
    return list(rows)


def d_number() -> tuple[str, date]:
    """A valid D-number (day + 40), born 1920-1999."""
    rng = random.Random()
    while True:
        born = date(rng.randint(1920, 1999), rng.randint(1, 12), rng.randint(1, 28))
        number = make_identity_number(born, rng.randint(0, 499), d_number=True)
        if number is not None:
            return number, born


# -- the CapabilityStatement --------------------------------------------------------------


def implemented_interactions(settings: Settings) -> dict[str, set[str]]:
    """From the app's route table: `read` for GET /fhir/<type>/{id}, `search-type` for GET
    /fhir/<type>. Any other FHIR route would need a mapping here, so it fails the test."""
    found: dict[str, set[str]] = {}
    for route in iter_route_contexts(create_app(settings).routes):
        path = route.path or ""
        if not path.startswith("/fhir/") or path == "/fhir/metadata":
            continue
        assert set(route.methods or ()) <= {"GET", "HEAD"}, f"an interaction the test does not know: {route}"
        parts = path.removeprefix("/fhir/").split("/")
        if len(parts) == 1:
            found.setdefault(parts[0], set()).add("search-type")
        else:
            assert len(parts) == 2 and parts[1].startswith("{"), f"a FHIR route the test does not know: {path}"
            found.setdefault(parts[0], set()).add("read")
    return found


async def test_metadata_lists_exactly_what_is_implemented(client, settings):
    body = fhir_json(await client.get("/fhir/metadata"))
    validate_resource(body)
    assert body["resourceType"] == "CapabilityStatement"
    assert body["fhirVersion"] == "4.0.1" and body["kind"] == "instance"
    assert body["format"] == [FHIR_JSON]
    (rest,) = body["rest"]
    assert rest["mode"] == "server"
    stated = {r["type"]: r for r in rest["resource"]}

    routes = implemented_interactions(settings)
    assert routes == {kind: {"read", "search-type"} for kind in ("Observation", "Patient", "Device")}
    assert {kind: {i["code"] for i in r["interaction"]} for kind, r in stated.items()} == routes
    assert {kind: set(interactions) for kind, (interactions, _) in RESOURCES.items()} == routes
    for kind, resource in stated.items():
        parameters = {p["name"]: p["type"] for p in resource.get("searchParam", [])}
        assert parameters == RESOURCES[kind][1], kind
        assert ("search-type" in routes[kind]) == bool(parameters), kind


# A value each listed parameter finds the one resource of the test with (a new parameter in
# RESOURCES fails here until it has one).
def sensible_values(patient: Enrolled) -> dict[str, dict[str, str]]:
    return {
        "Observation": {
            "patient": patient.id,
            "subject": f"Patient/{patient.id}",
            "code": f"{LOINC}|29463-7",
            "category": f"{CATEGORY_SYSTEM}|vital-signs",
            "date": "ge2026-11-01",
            "_count": "10",
            "_sort": "date",
        },
        "Patient": {"identifier": f"{FNR_SYSTEM}|{patient.identifier}"},
        "Device": {"patient": f"Patient/{patient.id}"},
    }


@pytest.mark.parametrize(
    ("resource", "parameter"), [(kind, name) for kind, (_, parameters) in RESOURCES.items() for name in parameters]
)
async def test_every_listed_search_parameter_is_accepted(client, tokens, session, resource, parameter):
    org = await new_organisation(session)
    patient = await enrol_with_devices(client, tokens, org, "body-weight")
    reading_id = await send(session, patient, "body-weight", at(20))
    values = sensible_values(patient)[resource]
    assert parameter in values, f"no test value for {resource}?{parameter}"
    _, found = await search(client, tokens(org), resource, {parameter: values[parameter]})
    expected = {
        "Observation": [("Observation", reading_id)],
        "Patient": [("Patient", patient.id)],
        "Device": [("Device", patient.device_ids["body-weight"])],
    }[resource]
    assert [(r["resourceType"], reading_id_of(r) if resource == "Observation" else r["id"]) for r in found] == expected


UNLISTED = ["value-quantity", "_include", "_revinclude", "_summary", "_elements", "_id", "_lastUpdated", "performer"]


@pytest.mark.parametrize(
    ("resource", "parameter"),
    [(kind, name) for kind in RESOURCES for name in UNLISTED if name not in RESOURCES[kind][1]],
)
async def test_an_unlisted_search_parameter_is_refused_by_name(client, tokens, resource, parameter):
    patient = await enrol(client, tokens(ORG_A, "admin"))
    required = {
        "Observation": {"patient": patient["id"]},
        "Patient": {"identifier": patient["identifier"]},
        "Device": {"patient": patient["id"]},
    }[resource]
    response = await client.get(f"/fhir/{resource}", headers=tokens(ORG_A), params={**required, parameter: "x"})
    outcome = operation_outcome(response, 400)
    assert outcome["issue"][0]["code"] == "invalid"
    assert repr(parameter) in outcome["issue"][0]["diagnostics"]


async def test_only_json_formats_are_served(client, tokens):
    patient = await enrol(client, tokens(ORG_A, "admin"))
    nurse = tokens(ORG_A)
    for accepted in ("json", "application/json", FHIR_JSON):
        await search(client, nurse, "Observation", {"patient": patient["id"], "_format": accepted})
    refused = await client.get("/fhir/Observation", headers=nurse, params={"patient": patient["id"], "_format": "xml"})
    assert "_format" in operation_outcome(refused, 400)["issue"][0]["diagnostics"]


# -- Patient --------------------------------------------------------------------------------


async def test_patient_read_and_search_by_either_identifier_system(client, tokens):
    admin, nurse = tokens(ORG_A, "admin"), tokens(ORG_A)
    resident = await enrol(client, admin)
    number, born = d_number()
    visitor = await enrol(client, admin, identifier=number, birth_date=born.isoformat(), name="Ola Nordmann")
    fnr = resident["identifier"]

    _, found = await search(client, nurse, "Patient", {"identifier": f"{FNR_SYSTEM}|{fnr}"})
    assert [p["id"] for p in found] == [resident["id"]]
    assert found[0]["identifier"] == [{"use": "official", "system": FNR_SYSTEM, "value": fnr}]
    bundle, found = await search(client, nurse, "Patient", {"identifier": f"{DNR_SYSTEM}|{number}"})
    assert [p["id"] for p in found] == [visitor["id"]]
    assert link(bundle, "next") is None
    # The right number under the wrong system (or a system of no one) finds nothing.
    for wrong in (f"{DNR_SYSTEM}|{fnr}", f"{FNR_SYSTEM}|{number}", f"urn:oid:2.16.578.1.12.4.1.4.3|{fnr}"):
        _, found = await search(client, nurse, "Patient", {"identifier": wrong})
        assert found == [], wrong

    resource = fhir_json(await client.get(f"/fhir/Patient/{visitor['id']}", headers=nurse))
    validate_resource(resource)
    assert resource["identifier"] == [{"use": "official", "system": DNR_SYSTEM, "value": number}]
    assert resource["birthDate"] == born.isoformat()
    assert resource["name"][0]["family"] == "Nordmann" and resource["name"][0]["given"] == ["Ola"]

    # Another organisation finds neither, and reads neither.
    other = tokens(ORG_B)
    for identifier in (f"{FNR_SYSTEM}|{fnr}", f"{DNR_SYSTEM}|{number}"):
        _, found = await search(client, other, "Patient", {"identifier": identifier})
        assert found == []
    operation_outcome(await client.get(f"/fhir/Patient/{visitor['id']}", headers=other), 404)


# -- Device ---------------------------------------------------------------------------------


async def test_device_read_and_search_by_patient(client, tokens):
    admin, nurse = tokens(ORG_A, "admin"), tokens(ORG_A)
    patient = await enrol_with_devices(client, tokens, ORG_A, "body-weight", "spo2")
    neighbour = await enrol_with_devices(client, tokens, ORG_A, "body-weight")
    returned = await register(client, admin, type="blood-pressure")
    r = await client.put(
        f"/api/v1/devices/{returned['serial']}/assignment",
        headers=admin,
        json={"patient": patient.id, "from": "2026-11-01T00:00:00+01:00", "to": "2026-11-15T00:00:00+01:00"},
    )
    assert r.status_code == 200, r.text

    weight = fhir_json(await client.get(f"/fhir/Device/{patient.device_ids['body-weight']}", headers=nurse))
    validate_resource(weight)
    assert weight["patient"] == {"reference": f"Patient/{patient.id}"}
    assert weight["serialNumber"] == patient.serials["body-weight"]
    # A device whose assignment ended is still the patient's history, but names no patient now.
    ended = fhir_json(await client.get(f"/fhir/Device/{returned['id']}", headers=nurse))
    validate_resource(ended)
    assert "patient" not in ended and ended["serialNumber"] == returned["serial"]

    for reference in (patient.id, f"Patient/{patient.id}"):
        _, found = await search(client, nurse, "Device", {"patient": reference})
        assert sorted(d["id"] for d in found) == sorted(patient.device_ids.values())
        assert {d["patient"]["reference"] for d in found} == {f"Patient/{patient.id}"}
    _, found = await search(client, nurse, "Device", {"patient": neighbour.id})
    assert [d["id"] for d in found] == [neighbour.device_ids["body-weight"]]

    operation_outcome(await client.get("/fhir/Device", headers=nurse), 400)
    operation_outcome(await client.get("/fhir/Device", headers=nurse, params={"patient": "someone"}), 400)
    # Another organisation's patient, and its devices: not found.
    other = tokens(ORG_B)
    outcome = operation_outcome(await client.get("/fhir/Device", headers=other, params={"patient": patient.id}), 404)
    assert outcome["issue"][0]["code"] == "not-found"
    operation_outcome(await client.get(f"/fhir/Device/{patient.device_ids['spo2']}", headers=other), 404)


# -- Observation search ---------------------------------------------------------------------


async def test_search_by_patient_or_subject(client, tokens, session):
    patient = await enrol_with_devices(client, tokens, ORG_A, "body-weight")
    neighbour = await enrol_with_devices(client, tokens, ORG_A, "body-weight")
    mine = {await send(session, patient, "body-weight", at(day)) for day in (10, 11)}
    await send(session, neighbour, "body-weight", at(10))
    nurse = tokens(ORG_A)
    for params in (
        {"patient": patient.id},
        {"patient": f"Patient/{patient.id}"},
        {"subject": f"Patient/{patient.id}"},
        {"subject": patient.id},
    ):
        _, found = await search(client, nurse, "Observation", params)
        assert {reading_id_of(r) for r in found} == mine, params
        assert {r["subject"]["reference"] for r in found} == {f"Patient/{patient.id}"}
    both = {"patient": patient.id, "subject": f"Patient/{patient.id}"}
    operation_outcome(await client.get("/fhir/Observation", headers=nurse, params=both), 400)
    twice = [("patient", patient.id), ("patient", neighbour.id)]
    operation_outcome(await client.get("/fhir/Observation", headers=nurse, params=twice), 400)


@pytest.fixture
async def every_type(client, tokens, session) -> tuple[Enrolled, dict[str, str]]:
    """A patient with one reading of each type at 08:00 on 20 November; reading ids by type."""
    kinds = ("body-weight", "spo2", "blood-glucose", "peak-flow", "heart-rate", "blood-pressure")
    patient = await enrol_with_devices(client, tokens, ORG_A, *kinds)
    readings = {kind: unique(kind) for kind in kinds}
    bodies = [
        reading(patient.serials[k], at(20), type=k, value=VALUES[k], unit=UNITS[k], reading_id=readings[k])
        for k in kinds
    ]
    (outcome,) = await ingest(session, message(bodies))
    assert [r["status"] for r in outcome.results] == ["accepted"] * len(kinds), outcome.results
    await session.commit()
    return patient, readings


async def observation_types(client, tokens, patient: Enrolled, readings: dict[str, str], **params: str) -> set[str]:
    kind_of = {reading_id: kind for kind, reading_id in readings.items()}
    _, found = await search(client, tokens(ORG_A), "Observation", {"patient": patient.id, **params})
    return {kind_of[reading_id_of(r)] for r in found}


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (f"{LOINC}|29463-7", {"body-weight"}),
        ("29463-7", {"body-weight"}),
        (f"{LOINC}|59408-5", {"spo2"}),
        (f"{LOINC}|2708-6", {"spo2"}),  # the vital-signs profile's code of SpO2, its second coding
        ("2708-6", {"spo2"}),
        (f"{LOINC}|85354-9", {"blood-pressure"}),
        (f"{LOINC}|8867-4", {"heart-rate"}),
        (f"{LOINC}|29463-7,{LOINC}|14743-9", {"body-weight", "blood-glucose"}),
        ("19935-6,2708-6,8867-4", {"peak-flow", "spo2", "heart-rate"}),
        (f"{LOINC}|8480-6", set()),  # a component's code is not an Observation's code
        (f"{LOINC}|1234-5", set()),  # a LOINC code no reading has
    ],
)
async def test_search_by_code(client, tokens, every_type, code, expected):
    patient, readings = every_type
    assert await observation_types(client, tokens, patient, readings, code=code) == expected


async def test_spo2_carries_both_codes(client, tokens, every_type):
    patient, readings = every_type
    _, found = await search(client, tokens(ORG_A), "Observation", {"patient": patient.id, "code": "2708-6"})
    (spo2,) = found
    assert reading_id_of(spo2) == readings["spo2"]
    assert [(c["system"], c["code"]) for c in spo2["code"]["coding"]] == [(LOINC, "59408-5"), (LOINC, "2708-6")]


@pytest.mark.parametrize("code", ["http://snomed.info/sct|27113001", "urn:oid:1.2.3|29463-7", f"{LOINC}|", "29463-7,"])
async def test_a_code_of_another_system_or_no_code_is_refused(client, tokens, every_type, code):
    patient, _ = every_type
    response = await client.get(
        "/fhir/Observation", headers=tokens(ORG_A), params={"patient": patient.id, "code": code}
    )
    assert "code" in operation_outcome(response, 400)["issue"][0]["diagnostics"]


VITAL_SIGNS = {"body-weight", "spo2", "heart-rate", "blood-pressure"}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"category": "vital-signs"}, VITAL_SIGNS),
        ({"category": f"{CATEGORY_SYSTEM}|vital-signs"}, VITAL_SIGNS),
        ({"category": "laboratory"}, set()),
        ({"category": "vital-signs,laboratory"}, VITAL_SIGNS),
        ({"category": "vital-signs", "code": "14743-9"}, set()),  # glucose is no vital sign
        ({"category": "vital-signs", "code": "29463-7,19935-6"}, {"body-weight"}),
    ],
)
async def test_search_by_category(client, tokens, every_type, params, expected):
    patient, readings = every_type
    assert await observation_types(client, tokens, patient, readings, **params) == expected


@pytest.mark.parametrize("category", ["vital-sign", "lab", "urn:other|vital-signs"])
async def test_an_unknown_category_is_refused(client, tokens, every_type, category):
    patient, _ = every_type
    response = await client.get(
        "/fhir/Observation", headers=tokens(ORG_A), params={"patient": patient.id, "category": category}
    )
    assert "category" in operation_outcome(response, 400)["issue"][0]["diagnostics"]


# Weights around the 12th of November: B is 00:30 on the 12th in Norway but still the 11th in
# UTC, E 00:30 on the 13th (the 12th in UTC), so a day in UTC would give other answers.
AROUND_THE_12TH = {
    "A": "2026-11-11T23:30:00+01:00",
    "B": "2026-11-12T00:30:00+01:00",
    "C": "2026-11-12T07:30:00+01:00",
    "D": "2026-11-12T23:30:00+01:00",
    "E": "2026-11-13T00:30:00+01:00",
}
C_IN_UTC = "2026-11-12T06:30:00Z"


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        # On days (in Norway)
        (["2026-11-12"], "BCD"),
        (["eq2026-11-12"], "BCD"),
        (["ge2026-11-12"], "BCDE"),
        (["gt2026-11-12"], "E"),
        (["le2026-11-12"], "ABCD"),
        (["lt2026-11-12"], "A"),
        (["ge2026-11-11", "lt2026-11-12"], "A"),
        # On times, at C's instant, with its offset or in UTC
        (["eq2026-11-12T07:30:00+01:00"], "C"),
        (["ge2026-11-12T07:30:00+01:00"], "CDE"),
        (["gt2026-11-12T07:30:00+01:00"], "DE"),
        (["le2026-11-12T07:30:00+01:00"], "ABC"),
        (["lt2026-11-12T07:30:00+01:00"], "AB"),
        ([f"eq{C_IN_UTC}"], "C"),
        ([f"gt{C_IN_UTC}"], "DE"),
        ([f"le{C_IN_UTC}"], "ABC"),
        (["ge2026-11-12T00:30:00+01:00", "lt2026-11-12T23:30:00+01:00"], "BC"),
        (["gt2026-11-11T23:30:00+01:00", "le2026-11-12"], "BCD"),
    ],
)
async def test_search_by_date_with_each_prefix(client, tokens, session, dates, expected):
    patient = await enrol_with_devices(client, tokens, ORG_A, "body-weight")
    label_of = {await send(session, patient, "body-weight", time): label for label, time in AROUND_THE_12TH.items()}
    _, found = await search(client, tokens(ORG_A), "Observation", {"patient": patient.id, "date": dates})
    assert "".join(sorted(label_of[reading_id_of(r)] for r in found)) == expected


async def test_count_and_sort(client, tokens, session):
    patient = await enrol_with_devices(client, tokens, ORG_A, "body-weight")
    days = [14, 11, 12, 13]
    for day in days:
        await send(session, patient, "body-weight", at(day))
    nurse = tokens(ORG_A)

    def times(found: list[dict[str, Any]]) -> list[str]:
        return [r["effectiveDateTime"] for r in found]

    newest_first = [at(d) for d in sorted(days, reverse=True)]
    _, default = await search(client, nurse, "Observation", {"patient": patient.id})
    assert times(default) == newest_first
    _, descending = await search(client, nurse, "Observation", {"patient": patient.id, "_sort": "-date"})
    assert times(descending) == newest_first
    _, ascending = await search(client, nurse, "Observation", {"patient": patient.id, "_sort": "date"})
    assert times(ascending) == newest_first[::-1]

    for count, shown, more in (("1", 1, True), ("3", 3, True), ("4", 4, False), ("500", 4, False)):
        bundle, found = await search(client, nurse, "Observation", {"patient": patient.id, "_count": count})
        assert times(found) == newest_first[:shown]
        assert (link(bundle, "next") is not None) == more, count
    for count in ("0", "501", "-1", "ten", "2.5"):
        response = await client.get("/fhir/Observation", headers=nurse, params={"patient": patient.id, "_count": count})
        assert "_count" in operation_outcome(response, 400)["issue"][0]["diagnostics"], count
    for sort in ("value", "-value", "_lastUpdated", "DATE"):
        response = await client.get("/fhir/Observation", headers=nurse, params={"patient": patient.id, "_sort": sort})
        assert "_sort" in operation_outcome(response, 400)["issue"][0]["diagnostics"], sort


# -- keyset paging while readings arrive ----------------------------------------------------


async def next_page(
    client: httpx.AsyncClient, headers: dict[str, str], url_or_params: str | dict[str, str]
) -> tuple[list[dict[str, Any]], str | None, str]:
    """One page: its Observations, its `next` link, and the request id it was audited under."""
    request_id = unique("req")
    headers = {**headers, "X-Request-ID": request_id}
    if isinstance(url_or_params, str):
        response = await client.get(url_or_params, headers=headers)
    else:
        response = await client.get("/fhir/Observation", headers=headers, params=url_or_params)
    bundle = fhir_json(response)
    found = validate_bundle(bundle)
    assert link(bundle, "self") is not None
    return found, link(bundle, "next"), request_id


@pytest.mark.parametrize("across", ["one patient", "the organisation"])
async def test_next_links_give_every_observation_once_newest_first_while_readings_arrive(
    client, tokens, session, across
):
    """Pages of 3, newest first. After page 1 a reading newer than everything and two older
    than the cursor arrive; after page 3, one newer and one older than that page's cursor.
    The older ones come on later pages, the newer ones never; 8 November holds two readings
    at the same instant, split across pages 2 and 3."""
    org = await new_organisation(session)
    nurse = tokens(org)
    count = 1 if across == "one patient" else 3
    patients = [await enrol_with_devices(client, tokens, org, "body-weight") for _ in range(count)]
    bystander = await enrol_with_devices(client, tokens, org, "body-weight")  # same organisation
    outsider = await enrol_with_devices(client, tokens, ORG_A, "body-weight")  # another organisation

    label_of: dict[str, str] = {}
    patient_of: dict[str, str] = {}

    async def store(label: str, number: int, time: str) -> None:
        patient = patients[number % count]
        reading_id = await send(session, patient, "body-weight", time, label=label)
        label_of[reading_id], patient_of[label] = label, patient.id

    for label, number, day in [
        ("d02", 0, 2), ("d03", 1, 3), ("d04", 2, 4), ("d05", 0, 5), ("d06", 1, 6), ("d07", 2, 7),
        ("d08a", 0, 8), ("d08b", 2, 8), ("d09", 1, 9), ("d10", 2, 10), ("d11", 0, 11), ("d12", 1, 12),
    ]:  # fmt: skip
        await store(label, number, at(day))
    for day in range(2, 14):
        await send(session, outsider, "body-weight", at(day, 9))
        if across == "the organisation":
            continue
        await send(session, bystander, "body-weight", at(day, 9))

    if across == "one patient":
        params = {"patient": patients[0].id, "_count": "3"}
    else:
        params = {"_count": "3"}
    pages: list[list[str]] = []
    page, following, request_id = await next_page(client, nurse, params)
    pages.append([label_of[reading_id_of(r)] for r in page])
    # Arrivals after page 1 (cursor at d10): newer than everything; older than the cursor.
    await store("new1", 0, at(13))
    await store("old1", 1, at(9, 12))
    await store("old2", 2, at(1))
    audits: list[tuple[list[dict[str, Any]], str]] = [(page, request_id)]
    while following is not None:
        assert len(pages) < 10, "next links never end"
        page, following, request_id = await next_page(client, nurse, following)
        audits.append((page, request_id))
        pages.append([label_of[reading_id_of(r)] for r in page])
        if len(pages) == 3:  # cursor at d06: one newer (d07 12:00), one older (d06 06:00)
            await store("new2", 2, at(7, 12))
            await store("old3", 0, at(6, 6))

    # The two readings of 8 November at one instant come by id, highest first.
    tie = await session.scalars(
        select(Observation.reading_id)
        .where(Observation.reading_id.in_([r for r, label in label_of.items() if label.startswith("d08")]))
        .order_by(Observation.id.desc())
    )
    first, second = (label_of[r] for r in tie)
    assert pages == [
        ["d12", "d11", "d10"],
        ["old1", "d09", first],
        [second, "d07", "d06"],
        ["old3", "d05", "d04"],
        ["d03", "d02", "old2"],
    ]
    seen = [label for page_labels in pages for label in page_labels]
    assert len(seen) == len(set(seen)) == 15 and not {"new1", "new2"} & set(seen)

    # Each page is audited: a "search" "Observation" record for each patient on it.
    for page, request_id in audits:
        records = await audit_of(session, request_id)
        assert {(r.action, r.resource_type) for r in records} == {("search", "Observation")}
        assert sorted(str(r.patient_id) for r in records) == sorted(
            {r["subject"]["reference"].removeprefix("Patient/") for r in page}
        )


async def test_a_page_audits_only_the_patients_it_shows(client, tokens, session):
    """The row fetched beyond `_count` (to know there is a next page) is not shown, so its
    patient is not audited."""
    org = await new_organisation(session)
    earlier = await enrol_with_devices(client, tokens, org, "body-weight")
    later = await enrol_with_devices(client, tokens, org, "body-weight")
    await send(session, earlier, "body-weight", at(10))
    await send(session, later, "body-weight", at(11))
    page, following, request_id = await next_page(client, tokens(org), {"_count": "1"})
    assert [r["subject"]["reference"] for r in page] == [f"Patient/{later.id}"] and following is not None
    assert [str(r.patient_id) for r in await audit_of(session, request_id)] == [later.id]


# -- errors ---------------------------------------------------------------------------------


async def test_errors_are_operation_outcomes_in_fhir_json(client, tokens):
    patient = await enrol(client, tokens(ORG_A, "admin"))
    nurse = tokens(ORG_A)
    for path in ("/fhir/Observation", f"/fhir/Patient/{patient['id']}", "/fhir/Device"):
        response = await client.get(path, params={"patient": patient["id"]} if "Patient/" not in path else None)
        outcome = operation_outcome(response, 401)
        assert outcome["issue"][0]["code"] == "login"
        assert response.headers["www-authenticate"].startswith("Bearer")
    for path in (
        f"/fhir/Observation/{uuid.uuid4()}",
        f"/fhir/Patient/{uuid.uuid4()}",
        f"/fhir/Device/{uuid.uuid4()}",
        "/fhir/Device/not-an-id",
        "/fhir/Encounter",
        f"/fhir/Encounter/{uuid.uuid4()}",
    ):
        outcome = operation_outcome(await client.get(path, headers=nurse), 404)
        assert outcome["issue"][0]["code"] == "not-found", path
    for method, path in (
        ("POST", "/fhir/Observation"),
        ("PUT", f"/fhir/Patient/{patient['id']}"),
        ("DELETE", f"/fhir/Patient/{patient['id']}"),
    ):
        response = await client.request(method, path, headers=nurse, json={"resourceType": "Observation"})
        assert operation_outcome(response, 405)["issue"][0]["code"] == "not-supported", path
    bad = await client.get("/fhir/Observation", headers=nurse, params={"date": "yesterday"})
    assert operation_outcome(bad, 400)["issue"][0]["code"] == "invalid"


async def test_another_organisation_sees_none_of_the_patients_observations(client, tokens, session):
    patient = await enrol_with_devices(client, tokens, ORG_A, "body-weight", "spo2")
    readings = [await send(session, patient, "body-weight", at(day)) for day in (18, 19)]
    readings.append(await send(session, patient, "spo2", at(19)))
    stored = await session.scalars(select(Observation.id).where(Observation.patient_id == uuid.UUID(patient.id)))
    observation_ids = {str(i) for i in stored}
    assert len(observation_ids) == 3
    other = tokens(ORG_B)

    outcome = operation_outcome(
        await client.get("/fhir/Observation", headers=other, params={"patient": patient.id}), 404
    )
    assert outcome["issue"][0]["code"] == "not-found"
    by_subject = {"subject": f"Patient/{patient.id}"}
    operation_outcome(await client.get("/fhir/Observation", headers=other, params=by_subject), 404)
    for params in ({}, {"code": "29463-7"}, {"date": "2026-11-19"}, {"category": "vital-signs"}, {"_sort": "date"}):
        shown: set[str] = set()
        page, following, _ = await next_page(client, other, {**params, "_count": "500"})
        while True:
            shown |= {r["id"] for r in page}
            if following is None:
                break
            page, following, _ = await next_page(client, other, following)
        assert not shown & observation_ids, params
    for observation_id in observation_ids:
        operation_outcome(await client.get(f"/fhir/Observation/{observation_id}", headers=other), 404)
    # The care team's own organisation sees them all.
    _, found = await search(client, tokens(ORG_A), "Observation", {"patient": patient.id})
    assert {r["id"] for r in found} == observation_ids


# -- audit ----------------------------------------------------------------------------------


async def test_searches_and_reads_are_audited_per_patient(client, tokens, session):
    org = await new_organisation(session)
    first = await enrol_with_devices(client, tokens, org, "body-weight")
    second = await enrol_with_devices(client, tokens, org, "body-weight")
    unmeasured = await enrol_with_devices(client, tokens, org, "body-weight")
    await send(session, first, "body-weight", at(20))
    await send(session, second, "body-weight", at(21))
    gp = tokens(org, "physician", sub="gp-audit", hpr="4242")

    _, _, request_id = await next_page(client, gp, {"code": "29463-7"})
    records = await audit_of(session, request_id)
    assert sorted((r.action, r.resource_type, str(r.patient_id)) for r in records) == sorted(
        ("search", "Observation", p.id) for p in (first, second)
    )
    assert {(r.actor_sub, r.actor_hpr, r.actor_org) for r in records} == {("gp-audit", "4242", org)}

    _, _, request_id = await next_page(client, gp, {"patient": unmeasured.id})
    assert [(r.action, r.resource_type, str(r.patient_id)) for r in await audit_of(session, request_id)] == [
        ("search", "Observation", unmeasured.id)
    ]

    observation_id = await session.scalar(select(Observation.id).where(Observation.patient_id == uuid.UUID(first.id)))
    reads = [
        (f"/fhir/Observation/{observation_id}", "Observation", str(observation_id)),
        (f"/fhir/Patient/{first.id}", "Patient", first.id),
        (f"/fhir/Device/{first.device_ids['body-weight']}", "Device", first.device_ids["body-weight"]),
    ]
    for path, resource_type, resource_id in reads:
        request_id = unique("req")
        fhir_json(await client.get(path, headers={**gp, "X-Request-ID": request_id}))
        assert [
            (r.action, r.resource_type, r.resource_id, str(r.patient_id)) for r in await audit_of(session, request_id)
        ] == [("read", resource_type, resource_id, first.id)], path
    for resource, params, resource_type in (
        ("Patient", {"identifier": f"{FNR_SYSTEM}|{second.identifier}"}, "Patient"),
        ("Device", {"patient": second.id}, "Device"),
    ):
        request_id = unique("req")
        fhir_json(await client.get(f"/fhir/{resource}", headers={**gp, "X-Request-ID": request_id}, params=params))
        assert [(r.action, r.resource_type, str(r.patient_id)) for r in await audit_of(session, request_id)] == [
            ("search", resource_type, second.id)
        ]


@pytest.mark.parametrize("count", [1, 2, 5])
async def test_across_the_organisation_paging_reaches_back_past_each_look_back_window(client, tokens, session, count):
    """Newest first across patients, the merge looks a day back, then 8 days, then 60, then
    all (observations.repository._LOOK_BACK): readings on either side of each edge, on two
    patients, come back once each in time order whatever the page size."""
    org = await new_organisation(session)
    admin = tokens(org, "admin")
    patients = []
    for _ in range(2):
        patient = Enrolled((await enrol(client, admin, org))["id"], "")
        device = await register(client, admin, type="body-weight")
        await assign(client, admin, device["serial"], patient.id, start="2025-01-01T00:00:00+01:00")
        patient.serials["body-weight"] = device["serial"]
        patients.append(patient)
    now = datetime.now(UTC).replace(microsecond=0)
    ages = [timedelta(hours=2), timedelta(hours=30), timedelta(days=7, hours=20), timedelta(days=8, hours=4),
            timedelta(days=59), timedelta(days=61), timedelta(days=400)]  # fmt: skip
    label_of = {}
    for number, age in enumerate(ages):
        reading_id = await send(
            session, patients[number % 2], "body-weight", (now - age).isoformat(), label=f"a{number}"
        )
        label_of[reading_id] = f"a{number}"
    seen: list[str] = []
    page, following, _ = await next_page(client, tokens(org), {"_count": str(count)})
    seen += [label_of[reading_id_of(r)] for r in page]
    while following is not None:
        assert len(seen) <= len(ages)
        page, following, _ = await next_page(client, tokens(org), following)
        seen += [label_of[reading_id_of(r)] for r in page]
    assert seen == [f"a{n}" for n in range(len(ages))]
