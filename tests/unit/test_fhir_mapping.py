"""rpm.fhir.observation and rpm.fhir.resources: FHIR R4 JSON, checked with the R4B models of
fhir.resources and against the vital-signs profile's required elements."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.device import Device as FhirDevice
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient as FhirPatient
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from rpm.api.fhir.search import RESOURCES
from rpm.devices.models import Device
from rpm.fhir.observation import observation_resource
from rpm.fhir.resources import (
    capability_statement,
    device_resource,
    patient_resource,
    searchset,
)
from rpm.observations.readings import ValidReading, validate_reading
from rpm.patients.models import Patient

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
FNR = "urn:oid:2.16.578.1.12.4.1.4.1"
DNR = "urn:oid:2.16.578.1.12.4.1.4.2"
NOW = datetime(2026, 11, 23, 8, 0, 0, tzinfo=UTC)
ISSUED = datetime(2026, 11, 23, 8, 0, 1, 250000, tzinfo=UTC)
GATEWAY = "hub-0042"
TIME = "2026-11-23T07:59:41+01:00"
PATIENT_ID = uuid.UUID("6f1c2f57-6bd8-4d43-9a4b-0a4c8c1e0001")
DEVICE_ID = uuid.UUID("6f1c2f57-6bd8-4d43-9a4b-0a4c8c1e0002")
OBSERVATION_ID = uuid.UUID("6f1c2f57-6bd8-4d43-9a4b-0a4c8c1e0003")
PANEL_ID = uuid.UUID("6f1c2f57-6bd8-4d43-9a4b-0a4c8c1e0004")

# Per type, from the contract: the value sent, its unit, and what the Observation must say.
# vital: whether the FHIR R4 vital-signs profile covers it (and with which UCUM unit).
CASES: dict[str, dict[str, Any]] = {
    "heart-rate": {"value": 72, "unit": "bpm", "codes": ["8867-4"], "ucum": "/min",
                   "expected": 72, "vital": True},
    "spo2": {"value": 0.96, "unit": "1", "codes": ["59408-5", "2708-6"], "ucum": "%",
             "expected": 96, "vital": True},
    "respiratory-rate": {"value": 16, "unit": "/min", "codes": ["9279-1"], "ucum": "/min",
                         "expected": 16, "vital": True},
    "body-temperature": {"value": 98.6, "unit": "[degF]", "codes": ["8310-5"], "ucum": "Cel",
                         "expected": 37, "vital": True},
    "body-weight": {"value": 180, "unit": "[lb_av]", "codes": ["29463-7"], "ucum": "kg",
                    "expected": Decimal("81.647"), "vital": True},
    "blood-glucose": {"value": 6.1, "unit": "mmol/L", "codes": ["14743-9"], "ucum": "mmol/L",
                      "expected": Decimal("6.1"), "vital": False},
    "peak-flow": {"value": 420, "unit": "L/min", "codes": ["19935-6"], "ucum": "L/min",
                  "expected": 420, "vital": False},
}


def reading(type_name: str, time: str = TIME, **fields: Any) -> dict[str, Any]:
    body = {"id": "r-000123", "device": {"serial": "SC-7788"}, "type": type_name, "time": time}
    if type_name == "blood-pressure":
        body |= {"values": {"systolic": 142, "diastolic": 91, "pulse": 77}, "unit": "mm[Hg]"}
    else:
        body |= {"value": CASES[type_name]["value"], "unit": CASES[type_name]["unit"]}
    return body | fields


def valid(body: dict[str, Any]) -> ValidReading:
    outcome = validate_reading(body, GATEWAY, NOW)
    assert isinstance(outcome, ValidReading), outcome
    return outcome


def resources_of(outcome: ValidReading) -> list[dict[str, Any]]:
    """The Observations of a reading, as the ingest service builds them."""
    out, panel_id = [], None
    for index, draft in enumerate(outcome.drafts):
        observation_id = OBSERVATION_ID if index == 0 else PANEL_ID
        out.append(observation_resource(
            draft, observation_id=observation_id, patient_id=PATIENT_ID, device_id=DEVICE_ID,
            effective=outcome.time_text, issued=ISSUED, panel_id=panel_id,
        ))
        panel_id = panel_id or observation_id
    return out


def assert_vital_signs_profile(resource: dict[str, Any]) -> None:
    """The required elements of the FHIR R4 vital-signs profile."""
    assert resource["status"] == "final"
    categories = [c for cat in resource["category"] for c in cat["coding"]]
    assert {"system": CATEGORY_SYSTEM, "code": "vital-signs"}.items() <= categories[0].items()
    assert any(c["system"] == LOINC for c in resource["code"]["coding"])
    assert resource["subject"]["reference"].startswith("Patient/")
    assert "effectiveDateTime" in resource
    assert "valueQuantity" in resource or "component" in resource
    quantities = [resource["valueQuantity"]] if "valueQuantity" in resource else [
        c["valueQuantity"] for c in resource["component"]
    ]
    for q in quantities:
        assert set(q) >= {"value", "unit", "system", "code"}
        assert q["system"] == UCUM


# --- single-valued types ------------------------------------------------------------------------


@pytest.mark.parametrize("type_name", sorted(CASES))
def test_every_single_valued_type_maps_to_a_valid_observation(type_name):
    case = CASES[type_name]
    (resource,) = resources_of(valid(reading(type_name)))
    model = Observation.model_validate(resource)
    json.dumps(resource)  # plain JSON, nothing that needs a custom encoder

    assert resource["resourceType"] == "Observation"
    assert resource["id"] == str(OBSERVATION_ID)
    assert resource["status"] == "final"
    assert [c["code"] for c in resource["code"]["coding"]] == case["codes"]
    assert all(c["system"] == LOINC and c["display"] for c in resource["code"]["coding"])
    assert resource["subject"] == {"reference": f"Patient/{PATIENT_ID}"}
    assert resource["device"] == {"reference": f"Device/{DEVICE_ID}"}
    assert resource["effectiveDateTime"] == TIME
    assert resource["identifier"] == [{"system": "urn:rpm:reading", "value": f"{GATEWAY}/r-000123"}]
    assert resource["valueQuantity"] == {
        "value": resource["valueQuantity"]["value"], "unit": case["ucum"], "system": UCUM,
        "code": case["ucum"],
    }
    assert model.valueQuantity.value == case["expected"]
    assert "component" not in resource
    assert "derivedFrom" not in resource
    assert datetime.fromisoformat(resource["issued"]) == ISSUED
    if case["vital"]:
        assert_vital_signs_profile(resource)
        assert resource["category"][0]["coding"][0]["code"] == "vital-signs"
    else:
        assert "category" not in resource


def test_spo2_carries_both_codes():
    (resource,) = resources_of(valid(reading("spo2")))
    codes = {(c["system"], c["code"]) for c in resource["code"]["coding"]}
    assert codes == {(LOINC, "59408-5"), (LOINC, "2708-6")}
    assert resource["valueQuantity"]["value"] == 96.0
    assert resource["valueQuantity"]["code"] == "%"


# --- blood pressure -----------------------------------------------------------------------------


def test_blood_pressure_maps_to_a_panel_and_a_heart_rate_derived_from_it():
    panel, pulse = resources_of(valid(reading("blood-pressure")))
    Observation.model_validate(panel)
    Observation.model_validate(pulse)
    assert_vital_signs_profile(panel)
    assert_vital_signs_profile(pulse)

    assert [c["code"] for c in panel["code"]["coding"]] == ["85354-9"]
    assert "valueQuantity" not in panel
    components = {
        c["code"]["coding"][0]["code"]: c["valueQuantity"] for c in panel["component"]
    }
    assert components == {
        "8480-6": {"value": 142.0, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"},
        "8462-4": {"value": 91.0, "unit": "mm[Hg]", "system": UCUM, "code": "mm[Hg]"},
    }
    for component in panel["component"]:
        assert component["code"]["coding"][0]["system"] == LOINC
    assert panel["identifier"][0]["value"] == f"{GATEWAY}/r-000123"
    assert "derivedFrom" not in panel

    assert [c["code"] for c in pulse["code"]["coding"]] == ["8867-4"]
    assert pulse["valueQuantity"] == {"value": 77.0, "unit": "/min", "system": UCUM, "code": "/min"}
    assert pulse["identifier"] == [
        {"system": "urn:rpm:reading", "value": f"{GATEWAY}/r-000123/pulse"}
    ]
    assert pulse["derivedFrom"] == [{"reference": f"Observation/{OBSERVATION_ID}"}]
    assert pulse["effectiveDateTime"] == panel["effectiveDateTime"] == TIME
    assert pulse["subject"] == panel["subject"]


def test_blood_pressure_in_kpa_is_stored_in_mm_hg():
    body = reading("blood-pressure", values={"systolic": 16, "diastolic": 10.7}, unit="kPa")
    (panel,) = resources_of(valid(body))
    Observation.model_validate(panel)
    values = {
        c["code"]["coding"][0]["code"]: c["valueQuantity"]["value"] for c in panel["component"]
    }
    assert values == {"8480-6": 120.01, "8462-4": 80.257}


# --- effective time -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("time", "effective"),
    [
        ("2026-11-23T07:59:41+01:00", "2026-11-23T07:59:41+01:00"),
        ("2026-11-23T07:59:41Z", "2026-11-23T07:59:41Z"),
        ("2026-11-23T02:59:41-05:00", "2026-11-23T02:59:41-05:00"),
        ("2026-11-23T13:29:41.123456789+05:30", "2026-11-23T13:29:41.123456789+05:30"),
        ("2026-11-23T21:44:41+13:45", "2026-11-23T21:44:41+13:45"),
        ("2026-11-23T21:59:41+14:00", "2026-11-23T21:59:41+14:00"),
        ("2026-11-22T19:59:41-12:00", "2026-11-22T19:59:41-12:00"),
        ("2026-11-23t07:59:41z", "2026-11-23T07:59:41Z"),  # RFC 3339 allows lower case; FHIR not
        ("2026-11-23t07:59:41+01:00", "2026-11-23T07:59:41+01:00"),
    ],
)
def test_effective_date_time_keeps_the_readings_own_offset(time, effective):
    (resource,) = resources_of(valid(reading("body-weight", time=time)))
    Observation.model_validate(resource)
    assert resource["effectiveDateTime"] == effective
    assert datetime.fromisoformat(effective.replace("Z", "+00:00")).utcoffset() == (
        datetime.fromisoformat(time.upper().replace("Z", "+00:00")).utcoffset()
    )


@pytest.mark.parametrize("time", ["2026-11-23T22:59:41+15:00", "2026-11-22T08:00:00-23:59"])
def test_an_offset_fhir_cannot_express_is_rejected_or_still_maps_to_valid_fhir(time):
    # RFC 3339 allows offsets up to +-23:59; FHIR dateTime only -14:00 to +14:00.
    outcome = validate_reading(reading("body-weight", time=time), GATEWAY, NOW)
    if isinstance(outcome, ValidReading):
        for resource in resources_of(outcome):
            Observation.model_validate(resource)


def _time_text(instant: datetime, offset_minutes: int, fraction: str, lower: bool) -> str:
    local = instant + timedelta(minutes=offset_minutes)
    sign = "+" if offset_minutes >= 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    offset = "Z" if offset_minutes == 0 else f"{sign}{hours:02d}:{minutes:02d}"
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + fraction + offset
    return text.lower() if lower else text


@given(
    type_name=st.sampled_from([*sorted(CASES), "blood-pressure"]),
    age=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3650)),
    offset=st.integers(min_value=-12 * 60, max_value=14 * 60),
    fraction=st.sampled_from(["", ".5", ".123", ".123456", ".123456789"]),
    lower=st.booleans(),
    position=st.floats(min_value=0, max_value=1),
    pulse=st.booleans(),
)
def test_every_accepted_reading_maps_to_valid_fhir(
    type_name, age, offset, fraction, lower, position, pulse
):
    instant = (NOW - age).replace(microsecond=0)
    time = _time_text(instant, offset, fraction, lower)
    if type_name == "blood-pressure":
        values = {"systolic": 40 + 260 * position, "diastolic": 20 + 180 * position}
        if pulse:
            values["pulse"] = 20 + 280 * position
        body = reading(type_name, time=time, values=values)
    else:
        body = reading(type_name, time=time)
    outcome = valid(body)
    resources = resources_of(outcome)
    assert len(resources) == (2 if type_name == "blood-pressure" and pulse else 1)
    for resource in resources:
        model = Observation.model_validate(resource)
        assert model.effectiveDateTime is not None
        assert resource["effectiveDateTime"] == time.upper()
        if CASES.get(type_name, {"vital": True})["vital"]:
            assert_vital_signs_profile(resource)


def test_the_observation_model_really_checks():
    """The validations above would catch a broken resource."""
    (resource,) = resources_of(valid(reading("body-weight")))
    for broken in (
        {k: v for k, v in resource.items() if k != "code"},
        resource | {"effectiveDateTime": "23.11.2026 07:59"},
        resource | {"valueQuantity": {"value": "heavy", "unit": "kg"}},
        resource | {"subject": "Patient/1"},
    ):
        with pytest.raises(ValidationError):
            Observation.model_validate(broken)


# --- Patient and Device -----------------------------------------------------------------------


def patient(name: str = "Kari Nordmann", *, status: str = "active", system: str = FNR,
            identifier: str = "13097248022") -> Patient:
    return Patient(
        id=uuid.uuid4(), identifier=identifier, identifier_system=system, name=name,
        birth_date=date(1972, 9, 13), status=status, conditions=[],
    )


def test_patient_resource():
    p = patient()
    resource = patient_resource(p)
    model = FhirPatient.model_validate(resource)
    assert resource["resourceType"] == "Patient"
    assert resource["id"] == str(p.id)
    assert resource["identifier"] == [{"use": "official", "system": FNR, "value": "13097248022"}]
    assert resource["active"] is True
    assert resource["birthDate"] == "1972-09-13"
    assert model.birthDate == date(1972, 9, 13)
    assert resource["name"] == [
        {"use": "official", "text": "Kari Nordmann", "family": "Nordmann", "given": ["Kari"]}
    ]


@pytest.mark.parametrize(
    ("name", "family", "given"),
    [
        ("Kari Nordmann", "Nordmann", ["Kari"]),
        ("Kari Anne Nordmann", "Nordmann", ["Kari", "Anne"]),
        ("Ola  Nordmann", "Nordmann", ["Ola"]),
        ("Åse Ørnulf Bjørnstjerne Ødegård", "Ødegård", ["Åse", "Ørnulf", "Bjørnstjerne"]),
        ("Nordmann", "Nordmann", None),
    ],
)
def test_patient_names(name, family, given):
    resource = patient_resource(patient(name))
    FhirPatient.model_validate(resource)
    (human,) = resource["name"]
    assert human["text"] == name
    assert human.get("family") == family
    assert human.get("given") == given


def test_an_ended_patient_is_not_active():
    resource = patient_resource(patient(status="ended"))
    FhirPatient.model_validate(resource)
    assert resource["active"] is False


def test_a_d_number_patient_has_the_d_number_system():
    resource = patient_resource(patient(system=DNR, identifier="53097248016"))
    FhirPatient.model_validate(resource)
    assert resource["identifier"][0]["system"] == DNR


def device(manufacturer: str | None = "A&D", model: str | None = "UA-651BLE") -> Device:
    return Device(
        id=uuid.uuid4(), serial="UA651-12345", type="blood-pressure", manufacturer=manufacturer,
        model=model, organisation_id=uuid.uuid4(),
    )


def test_device_resource():
    d = device()
    resource = device_resource(d)
    FhirDevice.model_validate(resource)
    assert resource == {
        "resourceType": "Device",
        "id": str(d.id),
        "identifier": [{"system": "urn:rpm:device-serial", "value": "UA651-12345"}],
        "serialNumber": "UA651-12345",
        "status": "active",
        "type": {"text": "blood-pressure"},
        "manufacturer": "A&D",
        "modelNumber": "UA-651BLE",
    }


@pytest.mark.parametrize(("manufacturer", "model"), [(None, None), ("A&D", None), (None, "X1")])
def test_device_resource_leaves_out_what_is_unknown(manufacturer, model):
    resource = device_resource(device(manufacturer, model))
    FhirDevice.model_validate(resource)
    assert ("manufacturer" in resource) == (manufacturer is not None)
    assert ("modelNumber" in resource) == (model is not None)
    assert resource["status"] in {"active", "inactive", "entered-in-error", "unknown"}


# --- Bundle and CapabilityStatement ---------------------------------------------------------------

BASE = "https://rpm.example.no/fhir"


@pytest.mark.parametrize("next_url", [None, f"{BASE}/Observation?patient=x&_count=2&cursor=abc"])
def test_searchset(next_url):
    observations = resources_of(valid(reading("blood-pressure")))
    p = patient_resource(patient())
    self_url = f"{BASE}/Observation?patient=x&_count=2"
    bundle = searchset([*observations, p], BASE, self_url, next_url)
    model = Bundle.model_validate(bundle)
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "searchset"
    expected_links = [{"relation": "self", "url": self_url}]
    if next_url:
        expected_links.append({"relation": "next", "url": next_url})
    assert bundle["link"] == expected_links
    assert [e["fullUrl"] for e in bundle["entry"]] == [
        f"{BASE}/Observation/{OBSERVATION_ID}", f"{BASE}/Observation/{PANEL_ID}",
        f"{BASE}/Patient/{p['id']}",
    ]
    assert all(e["search"] == {"mode": "match"} for e in bundle["entry"])
    assert [e.resource.get_resource_type() for e in model.entry] == [
        "Observation", "Observation", "Patient",
    ]


def test_an_empty_searchset_is_a_valid_bundle():
    bundle = searchset([], BASE, f"{BASE}/Observation?patient=x", None)
    Bundle.model_validate(bundle)
    assert not bundle.get("entry")


def test_the_bundle_model_checks_its_entries():
    """Validating a Bundle validates the resources in it, so the test above means something."""
    broken = {"resourceType": "Observation", "id": "x", "status": "final"}  # no code
    with pytest.raises(ValidationError):
        Bundle.model_validate(searchset([broken], BASE, BASE, None))


SEARCH_PARAM_TYPES = {"number", "date", "string", "token", "reference", "composite", "quantity",
                      "uri", "special"}
INTERACTIONS = {"read", "vread", "update", "patch", "delete", "history-instance",
                "history-type", "create", "search-type"}


def test_capability_statement():
    released = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    statement = capability_statement(BASE, released, RESOURCES)
    model = CapabilityStatement.model_validate(statement)
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["status"] in {"draft", "active", "retired", "unknown"}
    assert statement["kind"] == "instance"
    assert "application/fhir+json" in statement["format"]
    assert statement["implementation"]["url"] == BASE
    assert datetime.fromisoformat(statement["date"]) == released
    assert model.date is not None
    (rest,) = statement["rest"]
    assert rest["mode"] == "server"
    resources = {r["type"]: r for r in rest["resource"]}
    assert set(resources) == {"Observation", "Patient", "Device"}
    for resource in rest["resource"]:
        interactions = {i["code"] for i in resource["interaction"]}
        assert "read" in interactions
        assert interactions <= INTERACTIONS
        for param in resource.get("searchParam", []):
            assert param["type"] in SEARCH_PARAM_TYPES
    observation_params = {p["name"]: p["type"] for p in resources["Observation"]["searchParam"]}
    assert observation_params["patient"] == "reference"
    assert observation_params["code"] == "token"
    assert observation_params["date"] == "date"
    assert {"_count", "_sort"} <= set(observation_params)
    assert "search-type" in {i["code"] for i in resources["Observation"]["interaction"]}
    assert {p["name"]: p["type"] for p in resources["Patient"]["searchParam"]} == {
        "identifier": "token"
    }
    assert [i["code"] for i in resources["Device"]["interaction"]] == ["read", "search-type"]
    assert {p["name"]: p["type"] for p in resources["Device"]["searchParam"]} == {"patient": "reference"}
