"""Validation of FHIR responses with the R4B models and the vital-signs profile's required parts."""

from __future__ import annotations

from typing import Any

import httpx
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

FHIR_JSON = "application/fhir+json"
UCUM = "http://unitsofmeasure.org"
VITAL_SIGNS = "http://terminology.hl7.org/CodeSystem/observation-category"
# The profile's codes for the types the service stores as vital signs.
VITAL_SIGNS_CODES = {"85354-9", "8867-4", "2708-6", "9279-1", "8310-5", "29463-7"}
OBSERVATION_STATUS = {
    "registered", "preliminary", "final", "amended", "corrected", "cancelled",
    "entered-in-error", "unknown",
}  # fmt: skip


def fhir_json(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0].strip() == FHIR_JSON
    return response.json()


def validate_resource(resource: dict[str, Any]) -> None:
    """The resource parses as its R4B model; Observations also meet the vital-signs profile."""
    model = get_fhir_model_class(resource["resourceType"])
    model.model_validate(resource)
    if resource["resourceType"] == "Observation":
        check_observation(resource)


def check_observation(resource: dict[str, Any]) -> None:
    assert resource["status"] in OBSERVATION_STATUS
    codes = {c["code"] for c in resource["code"]["coding"] if c["system"] == "http://loinc.org"}
    assert codes, resource["code"]
    assert resource["subject"]["reference"].startswith("Patient/")
    assert "effectiveDateTime" in resource
    if codes & VITAL_SIGNS_CODES:
        categories = [c for cat in resource.get("category", []) for c in cat["coding"]]
        assert any(c["system"] == VITAL_SIGNS and c["code"] == "vital-signs" for c in categories)
    quantities = [resource["valueQuantity"]] if "valueQuantity" in resource else []
    quantities += [c["valueQuantity"] for c in resource.get("component", [])]
    assert quantities or "dataAbsentReason" in resource
    for q in quantities:
        assert q["system"] == UCUM and q["code"] and isinstance(q["value"], int | float)


def validate_bundle(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """Validate a searchset and each resource in it; the resources in order."""
    Bundle.model_validate(bundle)
    assert bundle["type"] == "searchset"
    resources = []
    for entry in bundle.get("entry", []):
        resource = entry["resource"]
        validate_resource(resource)
        assert entry["fullUrl"].endswith(f"/{resource['resourceType']}/{resource['id']}")
        assert entry["search"]["mode"] == "match"
        resources.append(resource)
    return resources


def link(bundle: dict[str, Any], relation: str) -> str | None:
    found = [entry["url"] for entry in bundle.get("link", []) if entry["relation"] == relation]
    assert len(found) <= 1
    return found[0] if found else None


def operation_outcome(response: httpx.Response, status: int) -> dict[str, Any]:
    body = fhir_json(response, status)
    assert body["resourceType"] == "OperationOutcome", body
    OperationOutcome.model_validate(body)
    assert body["issue"] and all(i["severity"] in {"fatal", "error"} for i in body["issue"])
    return body
