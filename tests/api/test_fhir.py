"""The FHIR R4 facade: Observation search with paging, reads, Patient search, metadata, errors."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from rpm.api.fhir.search import BadSearch, date_bounds
from tests.api.fhir_checks import (
    fhir_json,
    link,
    operation_outcome,
    validate_bundle,
    validate_resource,
)
from tests.api.helpers import (
    DNR_SYSTEM,
    FNR_SYSTEM,
    LOINC,
    assign,
    enrol,
    ingest,
    message,
    observations_of,
    raw_cursor,
    reading,
    register,
)
from tests.conftest import ORG_A

WEIGHT = f"{LOINC}|29463-7"


async def _patient_with_devices(client, tokens, *types: str):
    admin = tokens(ORG_A, "admin")
    patient = await enrol(client, admin)
    devices = {}
    for kind in types:
        devices[kind] = await register(client, admin, type=kind)
        await assign(client, admin, devices[kind]["serial"], patient["id"])
    return patient, devices


async def _weight_series(client, tokens, session, *, with_serial: bool = False):
    """Daily weights 8-22 November at 07:30 Oslo time, a second weight at the same instant on
    the 15th, and SpO2 readings on the same days (another code)."""
    patient, devices = await _patient_with_devices(client, tokens, "body-weight", "spo2")
    weight, spo2 = devices["body-weight"]["serial"], devices["spo2"]["serial"]
    readings = []
    for day in range(8, 23):
        at = f"2026-11-{day:02d}T07:30:00+01:00"
        readings.append(reading(weight, at, value=80 + day / 10))
        readings.append(reading(spo2, at, type="spo2", value=94, unit="%"))
    readings.append(reading(weight, "2026-11-15T07:30:00+01:00", value=81.9))
    (outcome,) = await ingest(session, message(readings))
    assert all(r["status"] == "accepted" for r in outcome.results), outcome.results
    return (patient, weight) if with_serial else patient


async def _search_all(client, headers, params):
    """Every page of a search, following `next`; the resources in order and the page count."""
    response = await client.get("/fhir/Observation", headers=headers, params=params)
    found, pages = [], 0
    while True:
        bundle = fhir_json(response)
        pages += 1
        found += validate_bundle(bundle)
        assert link(bundle, "self") is not None
        following = link(bundle, "next")
        if following is None:
            return found, pages
        assert pages < 50, "next links never end"
        response = await client.get(following, headers=headers)


async def test_observation_search_pages_newest_first(client, tokens, session):
    patient = await _weight_series(client, tokens, session)
    params = [
        ("patient", patient["id"]),
        ("code", WEIGHT),
        ("date", "ge2026-11-10"),
        ("date", "le2026-11-20"),
        ("_count", "2"),
        ("_sort", "-date"),
    ]
    nurse = tokens(ORG_A, "nurse")
    first = await client.get("/fhir/Observation", headers=nurse, params=params)
    bundle = fhir_json(first)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    assert len(bundle["entry"]) == 2
    assert link(bundle, "next") is not None

    found, pages = await _search_all(client, nurse, params)
    expected = {
        o.id
        for o in await observations_of(session, patient["id"])
        if o.code == "29463-7"
        and datetime.fromisoformat("2026-11-10T00:00:00+01:00")
        <= o.effective_at
        < datetime.fromisoformat("2026-11-21T00:00:00+01:00")
    }
    assert len(expected) == 12  # the 10th to the 20th, and the second weight on the 15th
    ids = [uuid.UUID(r["id"]) for r in found]
    assert len(ids) == len(set(ids)), "a resource came twice"
    assert set(ids) == expected
    assert pages == 6
    times = [datetime.fromisoformat(r["effectiveDateTime"]) for r in found]
    assert times == sorted(times, reverse=True)
    assert times[0] == datetime.fromisoformat("2026-11-20T07:30:00+01:00")
    assert times[-1] == datetime.fromisoformat("2026-11-10T07:30:00+01:00")
    assert all(r["code"]["coding"][0]["code"] == "29463-7" for r in found)
    assert {r["subject"]["reference"] for r in found} == {f"Patient/{patient['id']}"}


async def test_observation_search_oldest_first_with_time_bounds(client, tokens, session):
    patient = await _weight_series(client, tokens, session)
    params = {
        "subject": f"Patient/{patient['id']}",
        "code": WEIGHT,
        "date": ["gt2026-11-10T07:30:00+01:00", "le2026-11-13T06:30:00Z"],
        "_count": "1",
        "_sort": "date",
    }
    found, pages = await _search_all(client, tokens(ORG_A, "nurse"), params)
    times = [r["effectiveDateTime"] for r in found]
    assert times == [f"2026-11-{d}T07:30:00+01:00" for d in (11, 12, 13)]
    assert pages == 3


async def test_observation_search_by_code_alone_and_several_codes(client, tokens, session):
    patient = await _weight_series(client, tokens, session)
    nurse = tokens(ORG_A, "nurse")
    base = {"patient": patient["id"], "date": "2026-11-15", "_count": "50"}
    weights = validate_bundle(
        fhir_json(await client.get("/fhir/Observation", headers=nurse, params={**base, "code": "29463-7"}))
    )
    assert len(weights) == 2
    both = validate_bundle(
        fhir_json(
            await client.get(
                "/fhir/Observation",
                headers=nurse,
                params={**base, "code": f"{LOINC}|29463-7,{LOINC}|59408-5"},
            )
        )
    )
    assert len(both) == 3
    assert {r["code"]["coding"][0]["code"] for r in both} == {"29463-7", "59408-5"}


async def test_values_come_back_in_canonical_units(client, tokens, session):
    patient, devices = await _patient_with_devices(
        client, tokens, "body-weight", "blood-glucose", "body-temperature", "spo2"
    )
    at = "2026-11-20T08:00:00+01:00"
    (outcome,) = await ingest(
        session,
        message(
            [
                reading(devices["body-weight"]["serial"], at, value=180, unit="[lb_av]"),
                reading(
                    devices["blood-glucose"]["serial"],
                    at,
                    type="blood-glucose",
                    value=100,
                    unit="mg/dL",
                ),
                reading(
                    devices["body-temperature"]["serial"],
                    at,
                    type="body-temperature",
                    value=98.6,
                    unit="[degF]",
                ),
                reading(devices["spo2"]["serial"], at, type="spo2", value=0.95, unit="1"),
            ]
        ),
    )
    assert [r["status"] for r in outcome.results] == ["accepted"] * 4
    bundle = fhir_json(
        await client.get("/fhir/Observation", headers=tokens(ORG_A, "nurse"), params={"patient": patient["id"]})
    )
    by_code = {r["code"]["coding"][0]["code"]: r["valueQuantity"] for r in validate_bundle(bundle)}
    assert by_code["29463-7"]["unit"] == by_code["29463-7"]["code"] == "kg"
    assert abs(by_code["29463-7"]["value"] - 81.647) < 0.001
    assert by_code["14743-9"]["code"] == "mmol/L"
    assert abs(by_code["14743-9"]["value"] - 100 / 18.016) < 0.001
    assert by_code["8310-5"]["code"] == "Cel"
    assert abs(by_code["8310-5"]["value"] - 37.0) < 0.001
    assert by_code["59408-5"]["code"] == "%"
    assert abs(by_code["59408-5"]["value"] - 95.0) < 0.001


async def test_blood_pressure_panel_and_pulse(client, tokens, session):
    patient, devices = await _patient_with_devices(client, tokens, "blood-pressure")
    sent = reading(
        devices["blood-pressure"]["serial"],
        "2026-11-20T07:59:41+01:00",
        type="blood-pressure",
        value={"systolic": 18.9, "diastolic": 12.1, "pulse": 77},
        unit="kPa",
    )
    await ingest(session, message([sent]))
    bundle = fhir_json(
        await client.get("/fhir/Observation", headers=tokens(ORG_A, "nurse"), params={"patient": patient["id"]})
    )
    by_code = {r["code"]["coding"][0]["code"]: r for r in validate_bundle(bundle)}
    assert set(by_code) == {"85354-9", "8867-4"}
    panel = by_code["85354-9"]
    components = {c["code"]["coding"][0]["code"]: c["valueQuantity"] for c in panel["component"]}
    assert components["8480-6"]["code"] == "mm[Hg]"
    assert abs(components["8480-6"]["value"] - 18.9 * 7.50062) < 0.001
    assert abs(components["8462-4"]["value"] - 12.1 * 7.50062) < 0.001
    assert "valueQuantity" not in panel
    pulse = by_code["8867-4"]
    assert pulse["valueQuantity"]["value"] == 77 and pulse["valueQuantity"]["code"] == "/min"
    assert pulse["derivedFrom"] == [{"reference": f"Observation/{panel['id']}"}]


async def test_read_observation(client, tokens, session):
    patient = await _weight_series(client, tokens, session)
    stored = (await observations_of(session, patient["id"]))[0]
    r = await client.get(f"/fhir/Observation/{stored.id}", headers=tokens(ORG_A, "nurse"))
    resource = fhir_json(r)
    validate_resource(resource)
    assert resource["resourceType"] == "Observation"
    assert resource["id"] == str(stored.id)
    assert resource["subject"] == {"reference": f"Patient/{patient['id']}"}
    assert resource == stored.resource


async def test_read_patient(client, tokens):
    patient = await enrol(client, tokens(ORG_A, "admin"), name="Kari Anne Nordmann")
    resource = fhir_json(await client.get(f"/fhir/Patient/{patient['id']}", headers=tokens(ORG_A)))
    validate_resource(resource)
    assert resource["resourceType"] == "Patient"
    assert resource["id"] == patient["id"]
    assert resource["identifier"][0]["system"] == FNR_SYSTEM
    assert resource["identifier"][0]["value"] == patient["identifier"]
    assert resource["birthDate"] == patient["birth_date"]
    assert resource["active"] is True
    assert resource["name"][0]["family"] == "Nordmann"
    assert resource["name"][0]["given"] == ["Kari", "Anne"]


async def test_search_patient_by_identifier(client, tokens):
    patient = await enrol(client, tokens(ORG_A, "admin"))
    await enrol(client, tokens(ORG_A, "admin"))  # another patient, who must not match
    nurse = tokens(ORG_A, "nurse")
    number = patient["identifier"]
    bundle = fhir_json(
        await client.get("/fhir/Patient", headers=nurse, params={"identifier": f"{FNR_SYSTEM}|{number}"})
    )
    (found,) = validate_bundle(bundle)
    assert found["id"] == patient["id"]
    assert link(bundle, "next") is None

    # Without a system, the number alone; with the D-number system, nothing.
    bare = validate_bundle(fhir_json(await client.get("/fhir/Patient", headers=nurse, params={"identifier": number})))
    assert [p["id"] for p in bare] == [patient["id"]]
    wrong = fhir_json(await client.get("/fhir/Patient", headers=nurse, params={"identifier": f"{DNR_SYSTEM}|{number}"}))
    assert validate_bundle(wrong) == []


async def test_read_device(client, tokens):
    admin = tokens(ORG_A, "admin")
    device = await register(client, admin, type="blood-pressure")
    resource = fhir_json(await client.get(f"/fhir/Device/{device['id']}", headers=tokens(ORG_A)))
    validate_resource(resource)
    assert resource["resourceType"] == "Device" and resource["id"] == device["id"]
    assert resource["serialNumber"] == device["serial"]
    assert resource["manufacturer"] == "A&D"


async def test_metadata_is_a_capability_statement(client):
    body = fhir_json(await client.get("/fhir/metadata"))
    assert body["resourceType"] == "CapabilityStatement"
    validate_resource(body)
    assert body["fhirVersion"].startswith("4.0")
    assert "application/fhir+json" in body["format"]
    resources = {r["type"]: r for r in body["rest"][0]["resource"]}
    assert set(resources) >= {"Observation", "Patient", "Device"}
    params = {p["name"] for p in resources["Observation"]["searchParam"]}
    assert params >= {"patient", "code", "date", "_count", "_sort"}
    assert {p["name"] for p in resources["Patient"]["searchParam"]} == {"identifier"}


async def test_errors_are_operation_outcomes(client, tokens):
    nurse = tokens(ORG_A, "nurse")
    operation_outcome(await client.get(f"/fhir/Observation/{uuid.uuid4()}", headers=nurse), 404)
    operation_outcome(await client.get(f"/fhir/Patient/{uuid.uuid4()}", headers=nurse), 404)
    operation_outcome(await client.get(f"/fhir/Device/{uuid.uuid4()}", headers=nurse), 404)
    # An id that is no UUID names no resource: not found, like any unknown id.
    malformed = operation_outcome(await client.get("/fhir/Observation/not-a-uuid", headers=nurse), 404)
    assert malformed["issue"][0]["code"] == "not-found"
    operation_outcome(await client.get("/fhir/Nothing", headers=nurse), 404)
    # A Patient search without its one parameter is a bad search: 400 invalid.
    outcome = operation_outcome(await client.get("/fhir/Patient", headers=nurse), 400)
    assert outcome["issue"][0]["code"] == "invalid"
    assert "identifier" in outcome["issue"][0]["diagnostics"]


async def test_bad_searches_are_400(client, tokens):
    nurse = tokens(ORG_A, "nurse")
    patient = await enrol(client, tokens(ORG_A, "admin"))
    bad = [
        {"patient": patient["id"], "value-quantity": "gt80"},
        {"patient": patient["id"], "_count": "0"},
        {"patient": patient["id"], "_count": "many"},
        {"patient": patient["id"], "_sort": "value"},
        {"patient": patient["id"], "date": "ge2026-11-10T07:30:00"},
        {"patient": patient["id"], "date": "ge2026-13-45"},
        {"patient": patient["id"], "code": "http://snomed.info/sct|27113001"},
        {"patient": "not-a-patient"},
        {"patient": patient["id"], "_cursor": raw_cursor(["fhir-observations", ["yesterday", "x"]])},
        {"patient": patient["id"], "_cursor": raw_cursor(["fhir-observations", ["2026-11-01T00:00:00+00:00", 5]])},
        {"patient": patient["id"], "_cursor": raw_cursor(123)},
    ]
    for params in bad:
        r = await client.get("/fhir/Observation", headers=nurse, params=params)
        outcome = operation_outcome(r, 400)
        assert outcome["issue"][0]["code"] == "invalid", params
    r = await client.get("/fhir/Observation", headers=nurse, params={"patient": patient["id"], "foo": "bar"})
    assert "foo" in operation_outcome(r, 400)["issue"][0]["diagnostics"]


async def test_search_paging_is_stable_when_data_arrives(client, tokens, session):
    """A newer reading stored between two pages shifts nothing on the later pages."""
    patient, weight = await _weight_series(client, tokens, session, with_serial=True)
    nurse = tokens(ORG_A, "nurse")
    params = {"patient": patient["id"], "code": WEIGHT, "_count": "5"}
    first = fhir_json(await client.get("/fhir/Observation", headers=nurse, params=params))
    seen = [r["id"] for r in validate_bundle(first)]
    (outcome,) = await ingest(session, message([reading(weight, "2026-11-23T07:30:00+01:00")]))
    assert outcome.results[0]["status"] == "accepted"
    following = link(first, "next")
    while following:
        bundle = fhir_json(await client.get(following, headers=nurse))
        seen += [r["id"] for r in validate_bundle(bundle)]
        following = link(bundle, "next")
    assert len(seen) == len(set(seen)) == 16


async def test_a_bare_date_is_a_day_in_norway(client, tokens, session):
    patient, devices = await _patient_with_devices(client, tokens, "body-weight")
    serial = devices["body-weight"]["serial"]
    late_9th_utc = reading(serial, "2026-11-09T23:30:00Z")  # 00:30 on the 10th in Oslo
    early_10th = reading(serial, "2026-11-10T05:00:00Z")
    late_10th_utc = reading(serial, "2026-11-10T23:30:00Z")  # 00:30 on the 11th in Oslo
    await ingest(session, message([late_9th_utc, early_10th, late_10th_utc]))
    bundle = fhir_json(
        await client.get(
            "/fhir/Observation",
            headers=tokens(ORG_A),
            params={"patient": patient["id"], "date": "2026-11-10"},
        )
    )
    found = {r["identifier"][0]["value"].split("/")[-1] for r in validate_bundle(bundle)}
    assert found == {late_9th_utc["id"], early_10th["id"]}
    ge = fhir_json(
        await client.get(
            "/fhir/Observation",
            headers=tokens(ORG_A),
            params={"patient": patient["id"], "date": ["ge2026-11-11", "le2026-11-11"]},
        )
    )
    assert [r["effectiveDateTime"] for r in validate_bundle(ge)] == ["2026-11-10T23:30:00Z"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026", [("ge", "2026-01-01T00:00:00+01:00"), ("lt", "2027-01-01T00:00:00+01:00")]),
        ("ge2026-11", [("ge", "2026-11-01T00:00:00+01:00")]),
        ("le2026-12", [("lt", "2027-01-01T00:00:00+01:00")]),
        ("lt2026-07-01", [("lt", "2026-07-01T00:00:00+02:00")]),
        ("gt2026-11-23", [("ge", "2026-11-24T00:00:00+01:00")]),
        ("ge2026-11-23T08:00:00Z", [("ge", "2026-11-23T08:00:00+00:00")]),
    ],
)
def test_fhir_dates_of_every_precision_become_bounds_in_norwegian_time(value, expected):
    assert [(b.prefix, b.at.isoformat()) for b in date_bounds([value])] == expected


@pytest.mark.parametrize("value", ["2026-13", "2026-02-30", "20261", "ge2026-11-23T08:00:00"])
def test_fhir_dates_that_are_not_dates_are_refused(value):
    with pytest.raises(BadSearch):
        date_bounds([value])
