"""FHIR R4 JSON for patients, devices, search Bundles and the CapabilityStatement. Pure."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from rpm.devices.models import Device
from rpm.patients.models import Patient

DEVICE_SERIAL_SYSTEM = "urn:rpm:device-serial"


def patient_resource(patient: Patient) -> dict[str, Any]:
    given, _, family = patient.name.rpartition(" ")
    name: dict[str, Any] = {"use": "official", "text": patient.name}
    if family:
        name["family"] = family
    if given:
        name["given"] = given.split()
    return {
        "resourceType": "Patient",
        "id": str(patient.id),
        "identifier": [{"use": "official", "system": patient.identifier_system, "value": patient.identifier}],
        "active": patient.status == "active",
        "name": [name],
        "birthDate": patient.birth_date.isoformat(),
    }


def device_resource(device: Device, patient_id: uuid.UUID | None = None) -> dict[str, Any]:
    """`patient_id`: the patient the device is assigned to now, where the caller may know it."""
    resource: dict[str, Any] = {
        "resourceType": "Device",
        "id": str(device.id),
        "identifier": [{"system": DEVICE_SERIAL_SYSTEM, "value": device.serial}],
        "status": "active",
        "serialNumber": device.serial,
        "type": {"text": device.type},
    }
    if device.manufacturer:
        resource["manufacturer"] = device.manufacturer
    if device.model:
        resource["modelNumber"] = device.model
    if patient_id is not None:
        resource["patient"] = {"reference": f"Patient/{patient_id}"}
    return resource


def searchset(resources: list[dict[str, Any]], base: str, self_url: str, next_url: str | None) -> dict[str, Any]:
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [
            {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
            for r in resources
        ],
    }


def capability_statement(
    base: str, released: datetime, resources: dict[str, tuple[list[str], dict[str, str]]]
) -> dict[str, Any]:
    """`resources`: for each resource type, its interactions and its search parameters (name:
    type), exactly as the facade implements them."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": released.isoformat(),
        "kind": "instance",
        "software": {"name": "rpm-backend"},
        "implementation": {"description": "Remote patient monitoring FHIR facade", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "security": {"cors": False, "description": "OpenID Connect bearer tokens"},
                "resource": [
                    {
                        "type": kind,
                        "interaction": [{"code": code} for code in interactions],
                        **(
                            {"searchParam": [{"name": n, "type": t} for n, t in parameters.items()]}
                            if parameters
                            else {}
                        ),
                    }
                    for kind, (interactions, parameters) in resources.items()
                ],
            }
        ],
    }
