"""FHIR R4 JSON for patients, devices, search Bundles and the CapabilityStatement. Pure."""

from __future__ import annotations

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


def device_resource(device: Device) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Device",
        "id": str(device.id),
        "identifier": [{"system": DEVICE_SERIAL_SYSTEM, "value": device.serial}],
        "serialNumber": device.serial,
        "status": "active",
        "type": {"text": device.type},
    }
    if device.manufacturer:
        resource["manufacturer"] = device.manufacturer
    if device.model:
        resource["modelNumber"] = device.model
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


def capability_statement(base: str, released: datetime) -> dict[str, Any]:
    def read_only(kind: str, params: list[tuple[str, str]]) -> dict[str, Any]:
        return {
            "type": kind,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": [{"name": n, "type": t} for n, t in params],
        }

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
                    read_only(
                        "Observation",
                        [
                            ("patient", "reference"),
                            ("code", "token"),
                            ("date", "date"),
                            ("_count", "number"),
                            ("_sort", "string"),
                        ],
                    ),
                    read_only("Patient", [("identifier", "token")]),
                    {"type": "Device", "interaction": [{"code": "read"}]},
                ],
            }
        ],
    }
